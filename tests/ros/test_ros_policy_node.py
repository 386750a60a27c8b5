"""policy_node over real DDS, hardware in the loop with sim_robot_node (loopback only,
inside a private network namespace).

A tiny policy is trained in the fixture on the scripted expert's first seconds of one
episode (seconds of CPU, with policy.objective), then runs against the simulated robot
on the same episode: the arm must head for the expert's first target, and every command
must respect the safety limits. The fault matrix goes through the simulator's fault plan.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.ros, pytest.mark.sim]

rclpy = pytest.importorskip("rclpy")

from df_policy import qos  # noqa: E402
from df_policy.conversions import msg_to_pose, time_to_seconds  # noqa: E402
from df_policy.policy_node import PolicyNode, PolicyNodeError  # noqa: E402
from df_policy.policy_outputs import predicted_frame_topic  # noqa: E402
from df_policy.sim_robot_node import SimRobotNode  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from harness import RosHarness, robot_topics, write_robot_description  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from policy.checkpoint import save_checkpoint  # noqa: E402
from policy.commanding import PoseCommand, audit_command  # noqa: E402
from policy.imaging import resize_area  # noqa: E402
from policy.model import DFPolicyModel, ModelConfig  # noqa: E402
from policy.normalizer import Normalizer, images_to_unit_range  # noqa: E402
from policy.objective import ObjectiveConfig, TokenBatch, diffusion_forcing_loss  # noqa: E402
from sim.env import EnvConfig  # noqa: E402
from sim.faults import FaultEvent, FaultPlan  # noqa: E402
from sim.tasks.swap_fruit import ScriptedExpert, SwapFruitEnv  # noqa: E402
from training.config import task_policy_spec  # noqa: E402

SEED = 3
POLICY_IMAGE = 16
SIM_IMAGE = 32
SPEC = task_policy_spec([f"task.image_size={POLICY_IMAGE}"])  # the swap-fruit task on small frames
PER_TOKEN = SPEC.actions_per_token
TOKENS = 40 // PER_TOKEN  # 4 s of the expert: its first move and a little more
PACKAGE = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "df_policy"


# ------------------------------------------------------------------ a tiny policy


def expert_tokens(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frames (T, 2, s, s, 3) uint8, proprio (T, 10), actions (T, PER_TOKEN, 10) where
    token t holds the actions executed between token t-1 and t (zeros before the first)."""
    env = SwapFruitEnv(EnvConfig(image_size=SIM_IMAGE))
    try:
        observation = env.reset(seed)
        expert = ScriptedExpert(env)
        expert.reset()
        frames, proprio, actions = [], [], [np.zeros((PER_TOKEN, 10))]
        executed: list[np.ndarray] = []
        for step in range(PER_TOKEN * TOKENS):
            if step % PER_TOKEN == 0:
                frames.append(
                    np.stack(
                        [resize_area(observation.images[c], POLICY_IMAGE, POLICY_IMAGE) for c in ("front", "wrist")]
                    )
                )
                proprio.append(observation.proprio())
                if executed:
                    actions.append(np.stack(executed))
                executed = []
            action = expert.act()
            executed.append(action)
            observation = env.step(action)
        return np.stack(frames), np.stack(proprio), np.stack(actions)
    finally:
        env.close()


def expert_first_target(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The start position and the end of the expert's first segment (physics only)."""
    env = SwapFruitEnv(EnvConfig(cameras=()))
    try:
        env.reset(seed)
        expert = ScriptedExpert(env)
        expert.reset()
        start = env.robot_state().ee_position.copy()
        first = expert.act()
        phase = expert.phase
        target = first[:3]
        while expert.phase == phase:
            target = expert.act()[:3]
        return start, target
    finally:
        env.close()


def train_tiny_policy(directory: Path) -> Path:
    """~250 Adam steps on one episode's tokens: seconds on one thread. One thread, since
    OpenMP workers spin-waiting on a loaded 2-core machine slow training tenfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(directory)
    finally:
        torch.set_num_threads(threads)


def _train(directory: Path) -> Path:
    torch.manual_seed(0)
    frames, proprio, actions = expert_tokens(SEED)
    model = DFPolicyModel(
        SPEC,
        ModelConfig(latent_dim=64, embed_dim=64, encoder_channels=(16, 32), frame_prediction_size=8, num_levels=100),
    )
    normalizer = Normalizer.fit(actions[1:].reshape(-1, 10), proprio, margin=0.05)
    batch = TokenBatch(
        frames=images_to_unit_range(frames)[None],
        proprio=torch.from_numpy(normalizer.normalize_proprio(proprio))[None].float(),
        actions=torch.from_numpy(
            normalizer.normalize_actions(actions.reshape(-1, 10)).reshape(1, TOKENS, PER_TOKEN * 10)
        ).float(),
        valid=torch.ones(1, TOKENS, dtype=torch.bool),
    )
    batch = TokenBatch(*(t.expand(8, *t.shape[1:]) for t in (batch.frames, batch.proprio, batch.actions, batch.valid)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(250):
        loss, _ = diffusion_forcing_loss(model, batch, ObjectiveConfig(), generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    return save_checkpoint(directory, model, normalizer, metadata={"trained_on": f"expert seed {SEED}"})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_policy(tmp_path_factory.mktemp("policy") / "tiny")


# ----------------------------------------------------------------------- harness


class Harness(RosHarness):
    """sim_robot_node, policy_node and a probe in one private context."""

    def __init__(self, checkpoint: Path, robot: str) -> None:
        super().__init__()
        self.sim = SimRobotNode(
            parameter_overrides=[
                Parameter("robot_description", value=robot),
                Parameter("real_time_factor", value=1.0),
                Parameter("seed", value=SEED),
            ],
            context=self.context,
        )
        self.policy = PolicyNode(
            parameter_overrides=[
                Parameter("checkpoint", value=str(checkpoint)),
                Parameter("robot_description", value=robot),
                # Frames 300 ms old (the delay fault) are doubtful, not unusable.
                Parameter("health.stale_age_s", value=0.7),
                Parameter("diagnostics_rate_hz", value=10.0),
                Parameter("torch_threads", value=1),
            ],
            context=self.context,
        )
        # (arrival time, command, the measured pose last seen before it)
        self.commands: list[tuple[float, PoseCommand, PoseCommand | None]] = []
        self.diagnostics: list[tuple[float, DiagnosticArray]] = []
        self.poses: list[PoseStamped] = []
        self.topics = topics = robot_topics(robot)
        self.probe.create_subscription(PoseStamped, topics.command, self._on_command, 100)
        self.probe.create_subscription(
            DiagnosticArray, "/diagnostics", lambda m: self.diagnostics.append((time.monotonic(), m)), 100
        )
        self.probe.create_subscription(PoseStamped, topics.current_pose, self.poses.append, qos_profile_sensor_data)
        self.gripper: list[float] = []
        self.probe.create_subscription(Float64, topics.gripper_command, lambda m: self.gripper.append(m.data), 10)
        self.spin(self.sim, self.policy)
        self.sim.start()
        self.policy.start()

    def _on_command(self, msg: PoseStamped) -> None:
        position, quat = msg_to_pose(msg)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        measured = None
        if self.poses:
            measured_position, measured_quat = msg_to_pose(self.poses[-1])
            measured = PoseCommand(stamp, measured_position, measured_quat, self.limits.gripper_max_m)
        self.commands.append(
            (time.monotonic(), PoseCommand(stamp, position, quat, self.limits.gripper_max_m), measured)
        )

    @property
    def limits(self):
        """The limits the node holds commands to now (its robot description's, or as set live)."""
        return self.policy.commander.limits

    def start_episode(self, plan: FaultPlan | None) -> float:
        """Disable, set the fault plan, reset both nodes, enable; returns the start time."""
        self.call(SetBool, "/policy_node/enable", SetBool.Request(data=False))
        request = SetParameters.Request()
        request.parameters = [
            Parameter("seed", value=SEED).to_parameter_msg(),
            Parameter("fault_plan", value=plan.to_json() if plan else "").to_parameter_msg(),
        ]
        assert all(r.successful for r in self.call(SetParameters, "/sim_robot/set_parameters", request).results)
        assert self.call(Trigger, "/sim_robot/reset_episode", Trigger.Request()).success
        start = time.monotonic()
        self.commands.clear()
        self.diagnostics.clear()
        self.poses.clear()
        assert self.call(SetBool, "/policy_node/enable", SetBool.Request(data=True)).success
        return start

    def camera_status(self, camera: str) -> list[dict[str, str]]:
        found = []
        for _, array in self.diagnostics:
            for status in array.status:
                if status.name.endswith(f"camera {camera}"):
                    found.append({kv.key: kv.value for kv in status.values} | {"message": status.message})
        return found

    def loop_status(self) -> list[tuple[float, dict[str, str]]]:
        found = []
        for t, array in self.diagnostics:
            for status in array.status:
                if status.name.endswith("policy loop"):
                    found.append((t, {kv.key: kv.value for kv in status.values}))
        return found

    def unsafe_commands(self) -> list[str]:
        problems, previous = [], None
        for _, command, measured in self.commands:
            problems += audit_command(self.limits, command, previous, measured)
            previous = command
        return problems

    def close(self) -> None:
        self.policy.stop()
        self.sim.stop()
        super().close()


@pytest.fixture(scope="module")
def robot(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The simulated FR3 with its cameras at SIM_IMAGE px (cheap rendering)."""
    return write_robot_description(tmp_path_factory.mktemp("robot") / "fr3_sim_32.yaml", camera_size=SIM_IMAGE)


@pytest.fixture(scope="module")
def harness(checkpoint: Path, robot: str):
    h = Harness(checkpoint, robot)
    yield h
    h.close()


# ------------------------------------------------------------------ the tests


def test_refuses_a_checkpoint_that_does_not_fit_the_robot_naming_every_mismatch(
    checkpoint: Path, tmp_path: Path
) -> None:
    other = write_robot_description(
        tmp_path / "other.yaml",
        embodiment="joint_position",
        cameras=[
            {"name": "front", "topic": "camera/front/color/image_raw", "height": 96, "width": 96, "rate_hz": 10.0}
        ],
    )
    context = rclpy.Context()
    rclpy.init(context=context)

    def start(*overrides: Parameter) -> None:
        PolicyNode(parameter_overrides=list(overrides), context=context)

    try:
        with pytest.raises(PolicyNodeError) as raised:
            start(Parameter("checkpoint", value=str(checkpoint)), Parameter("robot_description", value=other))
        message = str(raised.value)
        assert "refusing to start" in message
        assert "cameras ['wrist'] of the checkpoint are not on robot 'fr3_sim_test'" in message
        assert "embodiment: checkpoint 'ee_pose', robot 'fr3_sim_test' 'joint_position'" in message
        with pytest.raises(PolicyNodeError, match="'checkpoint' is empty"):
            start()
        teleport = write_robot_description(tmp_path / "teleport.yaml", command={"sink": "teleport", "topic": "t"})
        with pytest.raises(PolicyNodeError, match=r"command.sink must be one of \['pose', 'joint_trajectory'\]"):
            start(Parameter("checkpoint", value=str(checkpoint)), Parameter("robot_description", value=teleport))
        with pytest.raises(PolicyNodeError, match="unknown robot description 'fr4'"):
            start(Parameter("checkpoint", value=str(checkpoint)), Parameter("robot_description", value="fr4"))
        with pytest.raises(PolicyNodeError, match=r"'safety.max_step_m' is out of range: it must be >= 0\.0"):
            start(Parameter("checkpoint", value=str(checkpoint)), Parameter("safety.max_step_m", value=-1.0))
        with pytest.raises(PolicyNodeError, match="max_step_m must be a positive number"):
            start(Parameter("checkpoint", value=str(checkpoint)), Parameter("safety.max_step_m", value=0.0))
        with pytest.raises(PolicyNodeError, match=r"parameter 'runner.schedule' must be one of"):
            start(Parameter("checkpoint", value=str(checkpoint)), Parameter("runner.schedule", value="spiral"))
        with pytest.raises(PolicyNodeError, match=r"'safety.max_step_m' must be of the type of its default"):
            start(Parameter("checkpoint", value=str(checkpoint)), Parameter("safety.max_step_m", value=1))
    finally:
        rclpy.shutdown(context=context)


def test_node_cli_has_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "df_policy.policy_node", "--help"],
        capture_output=True,
        text=True,
        cwd=PACKAGE,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for word in ("checkpoint", "robot_description", "~/enable", "/diagnostics", "safety.workspace_mode"):
        assert word in result.stdout


def test_subscriptions_use_the_documented_qos(harness: Harness) -> None:
    from rclpy.qos import ReliabilityPolicy

    def reliability(topic: str) -> set:
        return {
            info.qos_profile.reliability
            for info in harness.probe.get_subscriptions_info_by_topic(topic)
            if info.node_name == "policy_node"
        }

    topics = harness.topics
    assert reliability(topics.current_pose) == {ReliabilityPolicy.BEST_EFFORT}
    assert reliability(topics.gripper_joint_states) == {ReliabilityPolicy.BEST_EFFORT}
    assert reliability(topics.cameras["front"]) == {ReliabilityPolicy.RELIABLE}


def test_policy_moves_the_arm_toward_the_experts_first_target_safely(harness: Harness) -> None:
    start, target = expert_first_target(SEED)
    debug: list[Image] = []
    harness.probe.create_subscription(Image, "/policy_node/debug_image", debug.append, 10)
    predicted: list[Image] = []
    harness.probe.create_subscription(Image, predicted_frame_topic("wrist", "policy_node"), predicted.append, 10)
    harness.start_episode(None)

    def distance() -> float:
        if not harness.poses:
            return float("inf")
        return float(np.linalg.norm(msg_to_pose(harness.poses[-1])[0] - target))

    initial = float(np.linalg.norm(start - target))
    harness.wait_for(lambda: distance() < 0.5 * initial, 20.0, f"the arm within half of {initial:.3f} m of {target}")
    assert len(harness.commands) > 5  # the policy's commands moved it (at 50 Hz, within the speed limit)
    assert harness.unsafe_commands() == []
    harness.wait_for(lambda: bool(debug), 5.0, "a debug image")
    assert debug[-1].height == 2 * 96 and debug[-1].width == 2 * 96  # frame | prediction, per camera
    # Each camera's predicted frame also comes alone, at the model's size, stamped like its tick's debug image.
    harness.wait_for(lambda: bool(predicted), 5.0, "a predicted wrist frame")
    assert (predicted[-1].height, predicted[-1].width, predicted[-1].encoding) == (8, 8, "rgb8")
    debug_stamps = {time_to_seconds(d.header.stamp) for d in debug}
    assert any(time_to_seconds(p.header.stamp) in debug_stamps for p in predicted)
    harness.wait_for(
        lambda: int(harness.loop_status()[-1][1]["ticks"]) >= 3, 10.0, "three ticks (one per token period)"
    )
    loops = [status for _, status in harness.loop_status()]
    assert float(loops[-1]["tick_rate_hz"]) > 0.9 / SPEC.token_period_s, loops[-1]
    # Fresh frames: only the action due at the observation time itself (and, on a slow
    # tick, the next one) has passed when the chunk arrives.
    dropped = [int(status["dropped_actions_last_chunk"]) for status in loops]
    assert np.median(dropped) <= 2, dropped


def test_camera_blackout_is_marked_unusable_and_commands_stay_safe(harness: Harness) -> None:
    harness.start_episode(FaultPlan((FaultEvent("blackout", 0.0, 100.0, camera="front"),)))
    K = str(harness.policy.K)
    harness.wait_for(
        lambda: any(s["noise_level"] == K and "black" in s["issues"] for s in harness.camera_status("front")),
        10.0,
        f"front camera at k = {K} in /diagnostics",
    )
    harness.wait_for(lambda: len(harness.commands) > 20, 10.0, "commands during the blackout")
    assert harness.unsafe_commands() == []
    assert all(s["noise_level"] != K for s in harness.camera_status("wrist")[-3:])


def test_frozen_frames_are_flagged(harness: Harness) -> None:
    harness.start_episode(FaultPlan((FaultEvent("frozen", 0.5, 100.0, camera="wrist"),)))
    harness.wait_for(
        lambda: any("frozen" in s["issues"] for s in harness.camera_status("wrist")),
        10.0,
        "the wrist camera flagged frozen",
    )
    assert harness.unsafe_commands() == []


def test_state_dropout_stops_commanding_until_state_returns(harness: Harness) -> None:
    start = harness.start_episode(FaultPlan((FaultEvent("state_dropout", 1.0, 2.5),)))
    harness.wait_for(
        lambda: any(
            s["command_status"] == "watchdog" and "robot state stale" in s["watchdog"] for _, s in harness.loop_status()
        ),
        10.0,
        "the watchdog stopping on stale robot state",
    )
    harness.wait_for(lambda: time.monotonic() - start > 3.5, 10.0, "the dropout to end")
    harness.wait_for(
        lambda: harness.commands and harness.commands[-1][0] > start + 2.5, 10.0, "commands after state returns"
    )
    times = np.array([t for t, _, _ in harness.commands])
    gaps = np.diff(times)
    # No command while the state was missing: one gap spans most of the 1.5 s dropout.
    assert gaps.max() > 1.0, f"longest gap between commands {gaps.max():.2f} s"
    assert harness.unsafe_commands() == []
    assert int(harness.loop_status()[-1][1]["watchdog_stops"]) >= 1


def test_delayed_observations_drop_stale_actions(harness: Harness) -> None:
    plan = FaultPlan(
        tuple(FaultEvent("delayed", 0.0, 100.0, camera=c, params={"delay_s": 0.3}) for c in ("front", "wrist"))
    )
    harness.start_episode(plan)
    harness.wait_for(lambda: len(harness.loop_status()) > 20, 10.0, "diagnostics during the delay")
    harness.wait_for(lambda: len(harness.commands) > 20, 10.0, "commands during the delay")
    dropped = [int(s["dropped_actions_last_chunk"]) for _, s in harness.loop_status()[5:]]
    # Actions are due from the (300 ms old) observation time on: the first three or more
    # of every chunk have passed when it arrives and are never sent.
    assert np.median(dropped) >= 3, dropped
    assert harness.unsafe_commands() == []
    status = harness.camera_status("front")[-1]
    assert "stale" in status["issues"] and 0 < int(status["noise_level"]) < harness.policy.K, json.dumps(status)


def set_parameters(harness: Harness, **values: object) -> list:
    request = SetParameters.Request()
    request.parameters = [Parameter(name, value=value).to_parameter_msg() for name, value in values.items()]
    return harness.call(SetParameters, "/policy_node/set_parameters", request).results


def test_a_live_safety_limit_changes_the_commands_that_leave_or_is_refused(harness: Harness) -> None:
    original = harness.limits
    harness.start_episode(None)
    harness.wait_for(lambda: len(harness.commands) > 10, 10.0, "commands before the change")
    slow = 0.02  # m/s: far below what the policy asks for, so every command is held to it
    try:
        [result] = set_parameters(harness, **{"safety.max_linear_speed_m_s": slow})
        assert result.successful, result.reason
        assert harness.limits.max_linear_speed_m_s == slow
        start = len(harness.commands)
        harness.wait_for(lambda: len(harness.commands) > start + 30, 10.0, "commands after the change")
        after = [command for _, command, _ in harness.commands[start + 1 :]]
        speeds = [
            float(np.linalg.norm(b.position - a.position)) / (b.stamp - a.stamp)
            for a, b in itertools.pairwise(after)
            if b.stamp > a.stamp
        ]
        assert speeds and max(speeds) <= slow * 1.01, max(speeds)
        # Refused: out of the declared range, rejected by SafetyLimits itself, read-only.
        [negative] = set_parameters(harness, **{"safety.max_linear_speed_m_s": -1.0})
        [inverted] = set_parameters(harness, **{"safety.workspace_low": [0.9, 0.9, 0.9]})
        [horizon] = set_parameters(harness, **{"runner.horizon": 4})
        assert not negative.successful and not inverted.successful and not horizon.successful
        assert "must be below workspace_high" in inverted.reason
        assert "read-only" in horizon.reason or "read only" in horizon.reason.lower(), horizon.reason
        assert harness.limits.max_linear_speed_m_s == slow and harness.limits.workspace_low == original.workspace_low
        assert harness.policy.get_parameter("runner.horizon").value == harness.policy.runner_config.horizon
    finally:
        set_parameters(harness, **{"safety.max_linear_speed_m_s": original.max_linear_speed_m_s})


def test_declared_parameters_are_the_config_dataclasses_fields(harness: Harness) -> None:
    from dataclasses import fields

    from df_policy.policy_node import PARAMETER_GROUPS, declared_parameter_names

    from policy.commanding import SafetyLimits, WatchdogConfig
    from policy.frame_health import HealthConfig
    from policy.runner import RunnerConfig

    expected = {f"safety.{f.name}" for f in fields(SafetyLimits)}
    expected |= {f"watchdog.{f.name}" for f in fields(WatchdogConfig)}
    expected |= {f"runner.{f.name}" for f in fields(RunnerConfig)}
    expected |= {f"health.{f.name}" for f in fields(HealthConfig)}
    assert {prefix for prefix in PARAMETER_GROUPS} == {"", "safety.", "watchdog.", "runner.", "health."}
    declared = set(harness.policy.list_parameters([], 10).names) - {"use_sim_time", "start_type_description_service"}
    assert expected <= declared and declared == declared_parameter_names()
    # The values in force are the robot description's limits and the checkpoint's runner settings.
    assert list(harness.policy.get_parameter("safety.workspace_low").value) == list(
        harness.policy.robot.safety.workspace_low
    )
    descriptor = harness.policy.describe_parameter("safety.max_step_m")
    assert "between two commands" in descriptor.description and not descriptor.read_only
    assert harness.policy.describe_parameter("runner.horizon").read_only


def test_an_oversized_image_from_another_dds_never_freezes_the_node(harness: Harness) -> None:
    """A 3840x2160 frame (25 MB) from a Cyclone DDS writer on the front camera's topic,
    twice: the node takes it like any frame (crop and resize) and keeps ticking and
    commanding through and after it."""
    pytest.importorskip("cyclonedds")
    import os

    from cyclone_image_publisher import CYCLONE_LOOPBACK

    harness.start_episode(None)
    harness.wait_for(lambda: len(harness.commands) > 5, 10.0, "commands before the oversized frames")
    topic = harness.policy.robot.camera("front").topic
    oversized: list[int] = []
    harness.probe.create_subscription(
        Image, topic, lambda msg: oversized.append(msg.height) if msg.height == 2160 else None, qos.image_qos()
    )
    publisher = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("cyclone_image_publisher.py")), topic, "2160", "3840", "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CYCLONEDDS_URI": CYCLONE_LOOPBACK},
    )
    try:
        written = [publisher.stdout.readline() for _ in range(2)]
        assert written == ["wrote 0\n", "wrote 1\n"], written
        ticks, commands = harness.policy.tick_count, len(harness.commands)
        harness.wait_for(
            lambda: harness.policy.tick_count >= ticks + 3 and len(harness.commands) >= commands + 20,
            30.0,
            "ticks and commands after the oversized frames",
        )
        harness.wait_for(
            lambda: bool(oversized), 30.0, "an oversized frame delivered over DDS (a subscriber like the node's)"
        )
    finally:
        publisher.stdin.close()
        publisher.wait(timeout=30)
    assert harness.unsafe_commands() == []
    assert harness.policy.tick_failures == 0, harness.policy.last_tick_error
