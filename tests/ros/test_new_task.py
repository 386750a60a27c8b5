"""docs/new_task.md, followed: a task of one's own, defined outside the repository, from
its two files to a policy driving the robot.

The user writes a robot description (three cameras: front, wrist and a side camera the
task's simulated scene mounts; 48x64 native frames, the side camera at its own rate;
joint-space actions through a joint_trajectory sink; the simulator's gripper topic) and
a task config (non-square 24x32 policy frames, a crop on the wrist camera, a `sim:`
section naming the scene, expert and success test). Then, as the doc says:
`dfstack collect-sim --task <file>` records a few short episodes, `dfstack train
task=<file> model=tiny` trains a few steps, and policy_node runs the checkpoint on the
robot description against sim_robot_node running the same task (in-process nodes in a
private rclpy context) until JointTrajectory commands arrive on the description's
command topic and the arm's measured joints move, every command within the joint limits.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.sim]

rclpy = pytest.importorskip("rclpy")

from df_policy.policy_node import PolicyNode  # noqa: E402
from df_policy.sim_robot_node import SimRobotNode  # noqa: E402
from harness import RosHarness  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from dfstack.cli import main as dfstack  # noqa: E402
from robots.description import load_robot_description  # noqa: E402

NATIVE = (48, 64)  # height, width of every camera's frames
POLICY_SIZE = [24, 32]
WRIST_CROP = [8, 0, 40, 64]  # top, left, height, width in the wrist camera's own pixels
SIDE_RATE_HZ = 5.0

ROBOT = {
    "name": "my_arm",
    "robot_type": "fr3",
    "embodiment": "joint_position",
    "frame_id": "fr3_link0",
    "cameras": [
        {"name": "front", "topic": "camera/front/color/image_raw", "height": 48, "width": 64, "rate_hz": 10.0},
        {"name": "wrist", "topic": "camera/wrist/color/image_raw", "height": 48, "width": 64, "rate_hz": 10.0},
        {"name": "side", "topic": "camera/side/color/image_raw", "height": 48, "width": 64, "rate_hz": SIDE_RATE_HZ},
    ],
    "state": {
        "current_pose_topic": "franka_robot_state_broadcaster/current_pose",
        "measured_joint_states_topic": "franka_robot_state_broadcaster/measured_joint_states",
        "gripper_joint_states_topic": "franka_gripper/joint_states",
        "rate_hz": 100.0,
        "gripper_rate_hz": 15.0,
    },
    "command": {"sink": "joint_trajectory", "topic": "fr3_arm_controller/joint_trajectory"},
    "gripper": {"sink": "width_topic", "topic": "franka_gripper/width_command"},
    "safety": {"workspace_low": [0.15, -0.45, 0.005], "workspace_high": [0.75, 0.45, 0.6]},
}


def task_config(robot: Path, store: Path) -> dict:
    return {
        "name": "my_task",
        "robot": str(robot),
        "dataset": str(store),
        "cameras": ["front", "wrist", "side"],
        "image_size": POLICY_SIZE,
        "crops": {"wrist": WRIST_CROP},
        "channels": 3,
        "actions_per_token": 4,
        "token_period_s": 0.4,
        "tolerance_s": None,
        "max_tokens": None,
        "hold_tokens_after_end": 0,
        "val_fraction": 0.0,
        "max_episodes": None,
        "normalizer_margin": 0.02,
        "augmentation": {"shift_px": 1, "brightness": 0.1, "contrast": 0.1},
        "sim": {
            "_target_": "sim.tasks.swap_fruit.SwapFruitTask",
            "cameras": {"side": {"position": [0.5, -0.9, 0.45], "look_at": [0.5, 0.0, 0.05], "fovy": 60}},
        },
    }


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The two files the user writes, in a folder of their own."""
    folder = tmp_path_factory.mktemp("my_task")
    work = tmp_path_factory.mktemp("work")
    robot, task = folder / "robot.yaml", folder / "task.yaml"
    robot.write_text(yaml.safe_dump(ROBOT, sort_keys=False))
    task.write_text(yaml.safe_dump(task_config(robot, work / "demos.zarr"), sort_keys=False))
    return robot, task


@pytest.fixture(scope="module")
def store(user_files: tuple[Path, Path]) -> Path:
    _, task = user_files
    path = Path(yaml.safe_load(task.read_text())["dataset"])
    arguments = ["--task", str(task), "--store", str(path), "--episodes", "2", "--max-steps", "30"]
    assert dfstack(["collect-sim", *arguments, "--hold-steps", "0", "--processes", "1", "--no-progress"]) == 0
    return path


@pytest.fixture(scope="module")
def checkpoint(user_files: tuple[Path, Path], store: Path) -> Path:
    _, task = user_files
    run = store.parent / "run"
    overrides = [f"task={task}", "model=tiny", f"run_dir={run}", "optim.total_steps=3", "optim.batch_size=2"]
    overrides += ["optim.warmup_steps=1", "optim.num_threads=1", "logging.progress=false"]
    overrides += ["logging.tensorboard=false", "evaluation.every_steps=0"]
    assert dfstack(["train", *overrides]) == 0
    return run / "checkpoints" / "latest"


def test_the_user_writes_two_files(user_files: tuple[Path, Path], store: Path) -> None:
    robot, _ = user_files
    assert sorted(p.name for p in robot.parent.iterdir()) == ["robot.yaml", "task.yaml"]


def test_collect_sim_records_the_robots_cameras_and_both_action_labels(store: Path) -> None:
    from data_collection.store import EpisodeStore

    episodes = EpisodeStore.open(store)
    assert len(episodes.episode_ids()) == 2
    episode = episodes.episode(0)
    for camera in ("front", "wrist", "side"):
        assert tuple(episode.spec(camera).shape) == (*NATIVE, 3), camera
        assert np.asarray(episode.frames(camera)).std() > 5, camera  # rendered, not blank
    assert episode.spec("side").rate_hz == SIDE_RATE_HZ
    assert np.median(np.diff(episode.stamps("side"))) == pytest.approx(1 / SIDE_RATE_HZ)
    assert {"joint_states", "gripper", "joint_command", "command"} <= set(episode.stream_names)
    assert episode.metadata["embodiment"] == "joint_position"


def test_the_checkpoint_holds_the_tasks_policy(checkpoint: Path) -> None:
    from policy.checkpoint import load_checkpoint

    spec = load_checkpoint(checkpoint).spec
    assert spec.camera_names == ("front", "wrist", "side")
    assert all((c.height, c.width) == tuple(POLICY_SIZE) for c in spec.cameras)
    assert {c.name: c.crop for c in spec.cameras} == {"front": None, "wrist": tuple(WRIST_CROP), "side": None}
    assert spec.embodiment == "joint_position" and spec.action.dim == 8 and spec.proprio_dim == 8


def test_evaluate_sim_runs_the_checkpoints_own_task(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    output = tmp_path / "eval.json"
    arguments = ["--checkpoint", str(checkpoint), "--episodes", "1", "--max-steps", "8", "--output", str(output)]
    assert dfstack(["evaluate-sim", *arguments]) == 0
    assert "task my_task" in capsys.readouterr().out
    episode = json.loads(output.read_text())["per_episode"][0]
    # Joint actions stepped the task's env (the policy is untrained: its success is not the point).
    assert episode["steps"] == 8 and episode["ticks"] == 2 and set(episode["report"]["fruits"]) == {"apple", "orange"}


class Harness:
    """sim_robot_node running the task, policy_node running the checkpoint on the robot
    description, and a probe, in one private rclpy context."""

    def __init__(self, checkpoint: Path, robot: Path, task: Path) -> None:
        description = load_robot_description(robot)
        self.ros = RosHarness()
        self.sim = SimRobotNode(
            parameter_overrides=[Parameter("task", value=str(task)), Parameter("seed", value=3)],
            context=self.ros.context,
        )
        self.policy = PolicyNode(
            parameter_overrides=[
                Parameter("checkpoint", value=str(checkpoint)),
                Parameter("robot_description", value=str(robot)),
                Parameter("torch_threads", value=1),
                Parameter("start_enabled", value=True),
            ],
            context=self.ros.context,
        )
        self._lock = threading.Lock()
        self.commands: list[JointTrajectory] = []
        self.joints: list[JointState] = []
        self.side_frames: list[Image] = []
        probe = self.ros.probe
        probe.create_subscription(JointTrajectory, "/" + description.command.topic, self._keep(self.commands), 100)
        probe.create_subscription(
            JointState,
            "/" + description.state.measured_joint_states_topic,
            self._keep(self.joints),
            qos_profile_sensor_data,
        )
        probe.create_subscription(Image, "/" + description.camera("side").topic, self._keep(self.side_frames), 10)
        self.ros.spin(self.sim, self.policy)
        self.sim.start()
        self.policy.start()

    def _keep(self, into: list) -> object:
        def keep(msg: object) -> None:
            with self._lock:
                into.append(msg)

        return keep

    def close(self) -> None:
        self.policy.stop()
        self.sim.stop()
        self.ros.close()


def test_policy_node_drives_the_simulated_arm_in_joint_space(checkpoint: Path, user_files: tuple[Path, Path]) -> None:
    robot, task = user_files
    arm = load_robot_description(robot).arm
    lower, upper = arm.limits
    harness = Harness(checkpoint, robot, task)
    try:
        harness.ros.wait_for(lambda: bool(harness.joints) and bool(harness.side_frames), 60.0, "joints and frames")
        with harness._lock:
            start = np.array(harness.joints[0].position[:7])

        def moved() -> float:
            with harness._lock:
                return float(np.max(np.abs(np.array(harness.joints[-1].position[:7]) - start)))

        harness.ros.wait_for(
            lambda: len(harness.commands) >= 10 and moved() > 2e-3,
            120.0,
            "joint trajectory commands from policy_node and the arm's measured joints moving",
        )
        with harness._lock:
            commands, frame = list(harness.commands), harness.side_frames[-1]
    finally:
        harness.close()
    # The simulated robot publishes the description's cameras at their native size.
    assert (frame.height, frame.width) == NATIVE
    for command in commands:
        assert list(command.joint_names) == list(arm.joint_names)
        positions = np.array(command.points[-1].positions)
        assert positions.shape == (7,) and np.all(np.isfinite(positions))
        assert np.all(positions >= lower) and np.all(positions <= upper), positions


# -------------------------------------------------------------- the doc itself

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "new_task.md"


def _doc_commands() -> list[str]:
    """Every shell command of docs/new_task.md: the lines of its bash blocks (continuations
    joined) and its inline `...` spans that start with a command."""
    import re

    text = DOC.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        commands += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = [span for span in re.findall(r"`([^`]+)`", prose) if " " in span]
    commands += [span for span in spans if span.split()[0] in ("dfstack", "ros2") or span.startswith("scripts/")]
    return [command.split(" #")[0] for command in commands]


def test_the_doc_states_two_files_and_every_command_and_path_it_names_exists() -> None:
    import ast
    import re

    from df_policy.policy_node import declared_parameter_names
    from df_policy.sim_robot_node import PARAMETER_DEFAULTS

    from dfstack.cli import SUBCOMMANDS

    text = DOC.read_text()
    assert "Files you write: two** for a real-robot task" in text
    entry_points = set(re.findall(r"([a-z_]+) = \{PACKAGE\}", (ROOT / "ros2_ws/src/df_policy/setup.py").read_text()))
    node_parameters = {"policy_node": declared_parameter_names(), "sim_robot_node": set(PARAMETER_DEFAULTS)}

    def launch_arguments(name: str) -> set[str]:
        """Arguments a launch file declares, with those of the df_policy launch files it includes."""
        source = (ROOT / "launch" / name).read_text()
        tree = ast.parse(source)
        declared = {
            key.value
            for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets)
            for key in node.value.keys
        }
        declared |= set(re.findall(r'DeclareLaunchArgument\(\s*"([a-z_]+)"', source))
        for included in re.findall(r'share, "launch", "([a-z_]+\.launch\.py)"', source):
            declared |= launch_arguments(included)
        return declared

    commands = _doc_commands()
    assert commands
    for command in commands:
        words = command.split()
        if words[0] == "dfstack":
            assert words[1] in SUBCOMMANDS, command
        elif words[:2] == ["ros2", "launch"]:
            assert words[2] == "df_policy" and (ROOT / "launch" / words[3]).is_file(), command
            given = {word.split(":=")[0] for word in words[4:] if ":=" in word}
            assert given <= launch_arguments(words[3]), (command, given - launch_arguments(words[3]))
        elif words[:2] == ["ros2", "run"]:
            assert words[2] == "df_policy" and words[3] in entry_points, command
            given = {word.split(":=")[0] for word in words[4:] if ":=" in word}
            assert given <= node_parameters[words[3]], (command, given - node_parameters[words[3]])
        elif words[0].startswith("scripts/"):
            assert (ROOT / words[0]).is_file(), command
            module = words[words.index("-m") + 1]
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), command
    # Every repository path it names.
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for path in re.findall(r"`((?:robots|training|sim|docs|launch|tests|evaluation|dfstack)/[\w./]+)`", prose):
        assert (ROOT / path).exists(), path


def test_the_docs_sim_section_makes_a_task() -> None:
    import re

    from evaluation.sim_task import sim_task_from_config

    block = re.search(r"```yaml\n(sim:.*?)```", DOC.read_text(), flags=re.S)
    assert block is not None
    section = yaml.safe_load(block.group(1))["sim"]
    setup = sim_task_from_config({"name": "doc", "robot": "fr3_sim", "sim": section})
    assert setup.task.camera_names == ("front", "wrist", "side")
    assert setup.task.fault_plans["side_blackout"].events[0].camera == "side"
