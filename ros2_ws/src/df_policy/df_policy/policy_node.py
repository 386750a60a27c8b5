"""policy_node: runs the Diffusion Forcing policy on the arm in real time.

Thin glue: camera and robot-state messages are kept newest-only; a worker thread runs
one policy tick per token period through policy.agent.PolicyAgent (frame health gives
each camera a noise level k, corrupted frames enter the latent with k > 0) and hands
the time-stamped action chunk to policy.commanding.Commander; a timer at the command
rate (own callback group) interpolates, filters for safety and publishes to the sinks.
main() spins the callbacks on one executor thread (see make_executor); the tick never
runs in it.

Parameters (config/policy_node.yaml; --ros-args -p name:=value):
  checkpoint            checkpoint directory (required); refused, with each mismatch
                        named, unless its cameras, image_size, action spec and rates
                        match the ones below
  cameras, image_size, actions_per_token, token_period_s   the robot configuration
  device, torch_threads, schedule, horizon, denoising_steps, seed   the runner
  camera_topic_format   e.g. /camera/{camera}/color/image_raw
  image_transport       raw (sensor_msgs/Image rgb8, bgr8, mono8) or compressed
                        (sensor_msgs/CompressedImage on <topic>/compressed)
  current_pose_topic, gripper_joint_states_topic, measured_joint_states_topic, frame_id
                        robot state (best-effort QoS, as franka_ros2 publishes it)
  policy_rate_hz        policy ticks per second (0 = one per token period)
  tick_trigger          frames: tick once a period is (nearly) up as soon as every
                        camera has a new frame (lowest latency); timer: fixed period
  command_rate_hz       interpolated commands per second (e.g. 50)
  command_sink          pose (PoseStamped on target_pose_topic) or joint_trajectory
                        (JointTrajectory on joint_trajectory_topic, IK for robot_type)
  gripper_sink          width_topic (Float64 m on gripper_command_topic, simulator),
                        franka_action (franka_gripper move/grasp under
                        gripper_action_namespace) or none
  downscale_frames      resize each frame to the policy's image size on arrival (the
                        runner's own area resize, so the model sees the same pixels):
                        frame health then costs ~0.3 ms instead of ~8 ms per 640x480 frame
  use_surprise, health_fresh_age_s, health_stale_age_s, proprio_stale_s   frame health
  workspace_low, workspace_high, workspace_mode (clamp|reject), max_linear_speed_m_s,
  max_angular_speed_rad_s, max_step_m, max_step_rad, max_lead_m, gripper_min_m,
  gripper_max_m         safety limits applied to every command
  state_timeout_s, observation_timeout_s, chunk_timeout_s   watchdog
  start_enabled, reset_on_enable   commanding at start-up; a new episode on enable
  executor              single or multi: what spins the callbacks in main()
  diagnostics_rate_hz, debug_image, debug_image_size
Services: ~/enable (std_srvs/SetBool), ~/reset (std_srvs/Trigger: a new episode).
Topics out: the sinks, /diagnostics (tick rate and latency, per-camera health and noise
level, dropped actions, watchdog), ~/debug_image (each camera's frame next to the
frame the model predicted for it, for people), ~/predicted_frame/<camera> (the predicted
frame alone, stamped with its tick's observation time, for programs; df_policy.policy_outputs
names these topics and the /diagnostics keys).
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import SetBool, Trigger

from df_policy import policy_outputs as outputs
from df_policy import qos
from df_policy.conversions import (
    ConversionError,
    compressed_msg_to_image,
    image_to_msg,
    msg_to_image,
    msg_to_joint_positions,
    msg_to_pose,
    time_to_seconds,
)
from df_policy.node_main import spin_until_shutdown
from df_policy.sinks import (
    ARM_SINKS,
    GRIPPER_SINKS,
    FrankaGripperActionSink,
    GripperWidthTopicSink,
    JointTrajectorySink,
    NoGripperSink,
    PoseStampedSink,
    SinkError,
)
from policy.commanding import Commander, CommandStep, SafetyLimits, WatchdogConfig
from policy.geometry import quat_to_rot6d
from policy.imaging import resize_area
from robots.franka import FRANKA_ARMS

PARAMETER_DEFAULTS: dict[str, Any] = {
    "checkpoint": "",
    "cameras": ["front", "wrist"],
    "image_size": 64,
    "actions_per_token": 4,
    "token_period_s": 0.4,
    "device": "cpu",
    "torch_threads": 1,
    "schedule": "pyramid",
    "horizon": 2,
    "denoising_steps": 8,
    "seed": 0,
    "camera_topic_format": "/camera/{camera}/color/image_raw",
    "image_transport": "raw",
    "current_pose_topic": qos.CURRENT_POSE_TOPIC,
    "gripper_joint_states_topic": qos.GRIPPER_JOINT_STATES_TOPIC,
    "measured_joint_states_topic": qos.MEASURED_JOINT_STATES_TOPIC,
    "frame_id": qos.FRAME_ID,
    "robot_type": "fr3",
    "policy_rate_hz": 0.0,
    "tick_trigger": "frames",
    "command_rate_hz": 50.0,
    "command_sink": "pose",
    "target_pose_topic": qos.TARGET_POSE_TOPIC,
    "joint_trajectory_topic": "/joint_trajectory_controller/joint_trajectory",
    "gripper_sink": "width_topic",
    "gripper_command_topic": qos.GRIPPER_WIDTH_COMMAND_TOPIC,
    "gripper_action_namespace": "/franka_gripper",
    "downscale_frames": True,
    "use_surprise": False,
    "health_fresh_age_s": 0.1,
    "health_stale_age_s": 0.3,
    "proprio_stale_s": 0.2,
    "workspace_low": [0.15, -0.45, 0.005],
    "workspace_high": [0.75, 0.45, 0.6],
    "workspace_mode": "clamp",
    "max_linear_speed_m_s": 1.0,
    "max_angular_speed_rad_s": 2.0,
    "max_step_m": 0.03,
    "max_step_rad": 0.1,
    "max_lead_m": 0.15,
    "gripper_min_m": 0.0,
    "gripper_max_m": 0.08,
    "state_timeout_s": 0.2,
    "observation_timeout_s": 0.5,
    "chunk_timeout_s": 1.5,
    "start_enabled": False,
    "reset_on_enable": True,
    "executor": "single",
    "diagnostics_rate_hz": 2.0,
    "debug_image": True,
    "debug_image_size": 96,
}

# "frames" mode (FrameTrigger): a tick is due one period after the last; it runs as soon as
# every camera has delivered a frame since (due - TICK_EARLY_S), so it locks onto the
# cameras' phase and uses frames that are as new as possible, and at the latest TICK_LATE_S
# after it was due (a camera that stopped then shows up as missing or stale). Both are
# capped at a quarter and a half of the period for fast tick rates.
TICK_EARLY_S = 0.02
TICK_LATE_S = 0.1
STATS_WINDOW = 20000


class FrameTrigger:
    """When the next tick runs in "frames" mode (monotonic seconds; no ROS, no clock).

    The schedule's reference (`anchor`) is the arrival of the frame set a tick used, so
    the ticks lock onto the cameras' phase, with two guards against losing that lock:
    - a frame set delivered late (more than `early` after it was due: the sender or the
      executor stalled) does not move the schedule, so the next, punctual frame set still
      falls inside the next window (moving it made every later frame set arrive just
      before its window, and every later tick wait for `late` and use a frame one period
      old: latency + one period for as long as the timing stayed regular);
    - a tick that found every camera with a frame newer than the last tick's, all from
      before the window (the cameras' phase moved earlier), re-anchors on them.
    """

    def __init__(self, period: float, early: float, late: float, now: float) -> None:
        self.period, self.early, self.late = period, early, late
        self.anchor = now - period  # the first tick is due now
        self._used: list[float] | None = None  # arrivals of the frames the last tick saw

    def poll(self, t: float, arrivals: list[float]) -> float | None:
        """None: tick now (the schedule moves on); else how long to wait at most before
        asking again (a new frame should ask at once)."""
        due = self.anchor + self.period
        early, late = self.early, self.late
        if t >= due - early and min(arrivals) >= due - early:
            newest = max(arrivals)
            self.anchor = newest if newest <= due + early else due
        elif t >= due + late:  # a camera is late or gone: tick without it
            newest = max(arrivals)
            used = self._used
            moved = used is not None and all(a > u for a, u in zip(arrivals, used, strict=True))
            if moved and newest + self.period > t:
                self.anchor = newest
            else:
                self.anchor = due if t - due < self.period else t - late  # (no catching up in bursts)
        else:
            return max(1e-4, (due - early if t < due - early else due + late) - t)
        self._used = list(arrivals)
        return None


class PolicyNodeError(RuntimeError):
    """The node cannot start with this configuration; the message says why."""


@dataclass
class Latest:
    """The newest message of one stream and when it arrived (node clock, s)."""

    msg: Any = None
    arrival: float | None = None
    arrival_monotonic: float = -math.inf


def percentile_ms(values: deque | list, q: float) -> float:
    return float(np.percentile(np.asarray(values), q) * 1e3) if len(values) else float("nan")


class PolicyNode(Node):
    def __init__(self, name: str = "policy_node", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        for key, value in PARAMETER_DEFAULTS.items():
            self.declare_parameter(key, value)
        p = {key: self.get_parameter(key).value for key in PARAMETER_DEFAULTS}
        self.params = p
        self._check_parameters(p)

        # The policy stack needs torch: imported here so `--help` stays fast.
        import torch

        from policy.agent import PolicyAgent
        from policy.checkpoint import CheckpointError, load_checkpoint
        from policy.frame_health import HealthConfig
        from policy.runner import PolicyRunner, RunnerConfig
        from policy.spec import CameraSpec, PolicySpec, franka_ee_action_spec

        torch.set_num_threads(int(p["torch_threads"]))
        self.cameras = tuple(p["cameras"])
        try:
            expected = PolicySpec(
                cameras=tuple(CameraSpec(c, int(p["image_size"]), int(p["image_size"])) for c in self.cameras),
                proprio_dim=10,
                action=franka_ee_action_spec(),
                actions_per_token=int(p["actions_per_token"]),
                token_period_s=float(p["token_period_s"]),
            )
        except ValueError as error:
            raise PolicyNodeError(f"bad robot configuration: {error}") from error
        if not p["checkpoint"]:
            raise PolicyNodeError("parameter 'checkpoint' is empty: give the checkpoint directory to run")
        try:
            loaded = load_checkpoint(p["checkpoint"], expected_spec=expected, device=p["device"])
        except CheckpointError as error:
            raise PolicyNodeError(f"refusing to start: {error}") from error
        self.spec = loaded.spec
        self._camera_sizes = {c.name: (c.height, c.width) for c in self.spec.cameras}
        try:
            runner = PolicyRunner(
                loaded.model,
                loaded.normalizer,
                RunnerConfig(
                    schedule=p["schedule"],
                    horizon=int(p["horizon"]),
                    steps=int(p["denoising_steps"]),
                    seed=int(p["seed"]),
                ),
                device=p["device"],
            )
            self.agent = PolicyAgent(
                runner,
                HealthConfig(fresh_age_s=float(p["health_fresh_age_s"]), stale_age_s=float(p["health_stale_age_s"])),
                use_surprise=bool(p["use_surprise"]),
                proprio_stale_s=float(p["proprio_stale_s"]),
            )
            self.K = self.agent.K
            self.command_period_s = 1.0 / float(p["command_rate_hz"])
            self.commander = Commander(
                self.spec.action,
                SafetyLimits(
                    workspace_low=tuple(p["workspace_low"]),
                    workspace_high=tuple(p["workspace_high"]),
                    workspace_mode=p["workspace_mode"],
                    max_linear_speed_m_s=float(p["max_linear_speed_m_s"]),
                    max_angular_speed_rad_s=float(p["max_angular_speed_rad_s"]),
                    max_step_m=float(p["max_step_m"]),
                    max_step_rad=float(p["max_step_rad"]),
                    max_lead_m=float(p["max_lead_m"]),
                    gripper_min_m=float(p["gripper_min_m"]),
                    gripper_max_m=float(p["gripper_max_m"]),
                ),
                WatchdogConfig(
                    state_timeout_s=float(p["state_timeout_s"]),
                    observation_timeout_s=float(p["observation_timeout_s"]),
                    chunk_timeout_s=float(p["chunk_timeout_s"]),
                ),
                enabled=False,
                command_period_s=self.command_period_s,
            )
        except ValueError as error:  # runner, health, safety or watchdog settings
            raise PolicyNodeError(f"bad parameter value: {error}") from error
        rate = float(p["policy_rate_hz"]) or 1.0 / self.spec.token_period_s
        self.tick_period_s = 1.0 / rate

        # Locks: _streams guards the newest frames (and wakes the worker); _command guards
        # the commander (command timer, worker, services); _policy guards the agent (worker
        # tick vs ~/reset).
        self._streams = threading.Condition()
        self._command = threading.Lock()
        self._policy = threading.Lock()
        self._frames = {camera: Latest() for camera in self.cameras}
        self._pose_message: tuple[PoseStamped, float] | None = None  # newest message, arrival time
        self._pose_converted: tuple[PoseStamped, float] | None = None
        self._pose_state: tuple[np.ndarray, np.ndarray, float] | None = None  # position, quat, stamp
        self._gripper_width: float | None = None
        self._joints: np.ndarray | None = None
        self._last_health: dict[str, Any] = {}
        self._last_chunk_dropped = 0
        self._pending_latency: float | None = None  # observation stamp of the chunk not yet published
        self._commanded_since_tick = False
        self._last_step: CommandStep | None = None

        # Statistics for /diagnostics and benchmarks (seconds).
        self.tick_durations: deque[float] = deque(maxlen=STATS_WINDOW)
        self.tick_intervals: deque[float] = deque(maxlen=STATS_WINDOW)
        self.command_latencies: deque[float] = deque(maxlen=STATS_WINDOW)
        self.tick_count = 0
        self._last_tick_wall: float | None = None

        self._build_interfaces(p)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        if p["start_enabled"]:
            self.set_enabled(True)
        self.get_logger().info(
            f"policy ready: checkpoint {p['checkpoint']}, cameras {list(self.cameras)}, K={self.K}, "
            f"tick every {self.tick_period_s * 1e3:.0f} ms ({p['tick_trigger']}), commands at "
            f"{p['command_rate_hz']} Hz to {p['command_sink']}, gripper {p['gripper_sink']}; "
            f"{'enabled' if self.commander.enabled else 'disabled: call ~/enable'}"
        )

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def _check_parameters(p: dict[str, Any]) -> None:
        choices = {
            "image_transport": ("raw", "compressed"),
            "tick_trigger": ("frames", "timer"),
            "command_sink": ARM_SINKS,
            "gripper_sink": GRIPPER_SINKS,
            "robot_type": tuple(FRANKA_ARMS),
            "workspace_mode": ("clamp", "reject"),
            "executor": ("single", "multi"),
        }
        for name, allowed in choices.items():
            if p[name] not in allowed:
                raise PolicyNodeError(f"parameter {name!r} must be one of {list(allowed)}, got {p[name]!r}")
        for name in ("command_rate_hz", "token_period_s", "diagnostics_rate_hz", "debug_image_size"):
            if not float(p[name]) > 0:
                raise PolicyNodeError(f"parameter {name!r} must be > 0, got {p[name]}")
        if float(p["policy_rate_hz"]) < 0:
            raise PolicyNodeError(
                f"parameter 'policy_rate_hz' must be >= 0 (0 = token rate), got {p['policy_rate_hz']}"
            )
        if not p["cameras"]:
            raise PolicyNodeError("parameter 'cameras' is empty: name the policy's cameras, e.g. [front, wrist]")
        if "{camera}" not in p["camera_topic_format"]:
            raise PolicyNodeError(
                f"parameter 'camera_topic_format' must contain '{{camera}}', got {p['camera_topic_format']!r}"
            )

    def _build_interfaces(self, p: dict[str, Any]) -> None:
        # Subscriptions only store the newest message: any thread may run them.
        inputs = ReentrantCallbackGroup()
        self._command_group = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        compressed = p["image_transport"] == "compressed"
        for camera in self.cameras:
            topic = p["camera_topic_format"].format(camera=camera)
            self.create_subscription(
                CompressedImage if compressed else Image,
                f"{topic}/compressed" if compressed else topic,
                lambda msg, camera=camera: self._on_frame(camera, msg),
                qos.image_qos(),
                callback_group=inputs,
            )
        state_qos = qos.robot_state_qos()  # best effort: reaches best-effort and reliable publishers
        self.create_subscription(PoseStamped, p["current_pose_topic"], self._on_pose, state_qos, callback_group=inputs)
        self.create_subscription(
            JointState, p["gripper_joint_states_topic"], self._on_gripper, state_qos, callback_group=inputs
        )
        if p["command_sink"] == "joint_trajectory":
            self.create_subscription(
                JointState, p["measured_joint_states_topic"], self._on_joints, state_qos, callback_group=inputs
            )
            self.sink = JointTrajectorySink(
                self, p["joint_trajectory_topic"], p["robot_type"], lambda: self._joints, 2 * self.command_period_s
            )
        else:
            self.sink = PoseStampedSink(self, p["target_pose_topic"], p["frame_id"])
        try:
            if p["gripper_sink"] == "width_topic":
                self.gripper_sink = GripperWidthTopicSink(self, p["gripper_command_topic"])
            elif p["gripper_sink"] == "franka_action":
                self.gripper_sink = FrankaGripperActionSink(self, p["gripper_action_namespace"])
            else:
                self.gripper_sink = NoGripperSink()
        except SinkError as error:
            raise PolicyNodeError(str(error)) from error

        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.reliable_qos())
        self._debug_pub = self.create_publisher(Image, "~/debug_image", qos.reliable_qos(depth=1))
        self._predicted_pubs = {
            camera: self.create_publisher(Image, outputs.predicted_frame_topic(camera), qos.reliable_qos(depth=5))
            for camera in self.cameras
        }
        self.create_timer(self.command_period_s, self._on_command_timer, callback_group=self._command_group)
        self.create_timer(1.0 / float(p["diagnostics_rate_hz"]), self._publish_diagnostics, callback_group=services)
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=services)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=services)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the policy worker thread (main() does this; tests may too)."""
        if self._worker is None:
            self._stop.clear()
            self._worker = threading.Thread(target=self._run_worker, name="policy_tick", daemon=True)
            self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        with self._streams:
            self._streams.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def set_enabled(self, enabled: bool) -> None:
        if enabled and not self.commander.enabled and self.params["reset_on_enable"]:
            self.reset_episode()
        with self._command:
            self.commander.set_enabled(enabled)
        self.get_logger().info(f"commanding {'enabled' if enabled else 'disabled'}")

    def reset_episode(self) -> None:
        """Start a new episode: the latent returns to z_0, frame health and trajectory start over."""
        with self._policy:
            self.agent.reset()
        with self._command:
            self.commander.reset()
        if isinstance(self.sink, JointTrajectorySink):
            self.sink.reset()

    # ---------------------------------------------------------------- callbacks

    # Callbacks only store the newest message and its arrival time (state topics may come
    # at 1 kHz): conversion happens once per use, in the command step or the tick.

    def _on_frame(self, camera: str, msg: Image | CompressedImage) -> None:
        now = self.now()
        with self._streams:
            latest = self._frames[camera]
            latest.msg, latest.arrival, latest.arrival_monotonic = msg, now, time.monotonic()
            self._streams.notify_all()

    def _on_pose(self, msg: PoseStamped) -> None:
        self._pose_message = (msg, self.now())  # one reference assignment: atomic

    def _refresh_inputs(self) -> None:
        """Hand the newest robot pose and frame arrival to the commander (call with the
        _command lock held); each pose message is converted once."""
        latest = self._pose_message
        if latest is not None and latest is not self._pose_converted:
            self._pose_converted = latest
            msg, arrival = latest
            try:
                position, quat = msg_to_pose(msg)
            except ConversionError as error:
                self.get_logger().error(f"ignoring robot pose: {error}", throttle_duration_sec=1.0)
            else:
                width = self._gripper_width if self._gripper_width is not None else float(self.params["gripper_max_m"])
                self._pose_state = (position, quat, time_to_seconds(msg.header.stamp))
                self.commander.update_state(arrival, position, quat, width)
        arrivals = [latest.arrival for latest in self._frames.values() if latest.arrival is not None]
        if arrivals:
            self.commander.note_observation(max(arrivals))

    def _on_gripper(self, msg: JointState) -> None:
        if len(msg.position) >= 2 and all(math.isfinite(v) for v in msg.position[:2]):
            self._gripper_width = float(msg.position[0] + msg.position[1])  # each finger is half the width

    def _on_joints(self, msg: JointState) -> None:
        names = FRANKA_ARMS[self.params["robot_type"]].joint_names
        try:
            self._joints = msg_to_joint_positions(msg, names)
        except ConversionError as error:
            self.get_logger().error(f"ignoring joint state: {error}", throttle_duration_sec=1.0)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.set_enabled(bool(request.data))
        response.success = True
        response.message = "enabled" if request.data else "disabled"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.reset_episode()
        response.success = True
        response.message = "episode reset: latent back to z_0"
        return response

    # --------------------------------------------------------------- commanding

    def _on_command_timer(self) -> None:
        self._command_step()

    def _command_step(self) -> None:
        now = self.now()
        with self._command:
            self._refresh_inputs()
            step = self.commander.step(now)
            self._last_step = step
            if step.command is None:
                return
            self.sink.send(step.command)
            self.gripper_sink.send(step.command.gripper_width)
            self._commanded_since_tick = True
            if self._pending_latency is not None:
                self.command_latencies.append(self.now() - self._pending_latency)
                self._pending_latency = None

    # ---------------------------------------------------------------- the tick

    def _run_worker(self) -> None:
        trigger = self.params["tick_trigger"]
        period = self.tick_period_s
        frames = FrameTrigger(
            period, min(TICK_EARLY_S, 0.25 * period), min(TICK_LATE_S, 0.5 * period), time.monotonic()
        )
        anchor = time.monotonic() - period  # timer mode: the first tick is due now
        while not self._stop.is_set():
            with self._streams:
                while not self._stop.is_set():
                    t = time.monotonic()
                    if trigger == "timer":
                        due = anchor + period
                        if t >= due:
                            anchor = due if t - due < period else t  # fixed rate, no bursts after a slow tick
                            break
                        self._streams.wait(timeout=due - t)
                        continue
                    wait = frames.poll(t, [self._frames[c].arrival_monotonic for c in self.cameras])
                    if wait is None:
                        break
                    self._streams.wait(timeout=wait)
                if self._stop.is_set():
                    return
            try:
                self._tick()
            except Exception as error:  # a bad tick must not kill the loop; the watchdog stops the arm
                if self._stop.is_set() or not rclpy.ok(context=self.context):
                    return
                self.get_logger().error(f"policy tick failed: {error!r}", throttle_duration_sec=1.0)

    def _camera_inputs(self) -> dict[str, Any]:
        from policy.agent import CameraInput

        inputs = {}
        with self._streams:
            messages = {camera: self._frames[camera].msg for camera in self.cameras}
        for camera, msg in messages.items():
            if msg is None:
                inputs[camera] = CameraInput(None, None)
                continue
            stamp = time_to_seconds(msg.header.stamp)
            try:
                frame = compressed_msg_to_image(msg) if isinstance(msg, CompressedImage) else msg_to_image(msg)
                if self.params["downscale_frames"]:
                    size = self._camera_sizes[camera]
                    if frame.shape[0] >= size[0] and frame.shape[1] >= size[1]:
                        frame = resize_area(frame, *size)
                inputs[camera] = CameraInput(frame, stamp)
            except ConversionError as error:
                self.get_logger().error(f"camera {camera}: {error}", throttle_duration_sec=1.0)
                inputs[camera] = CameraInput(None, stamp, decode_error=True)
        return inputs

    def _proprio(self) -> tuple[np.ndarray | None, float | None]:
        with self._command:
            self._refresh_inputs()
            pose = self._pose_state
        if pose is None:
            return None, None
        position, quat, stamp = pose
        width = self._gripper_width if self._gripper_width is not None else float(self.params["gripper_max_m"])
        return np.concatenate([position, quat_to_rot6d(quat), [width]]), stamp

    def _tick(self) -> None:
        started = time.perf_counter()
        # Jitter is about when ticks start (their schedule), not how long they take.
        start_wall = time.monotonic()
        if self._last_tick_wall is not None:
            self.tick_intervals.append(start_wall - self._last_tick_wall)
        self._last_tick_wall = start_wall
        now = self.now()
        cameras = self._camera_inputs()
        proprio, proprio_stamp = self._proprio()
        with self._command:
            # When nothing was commanded during the last token (disabled, watchdog), the
            # arm held still: tell the latent so, instead of what the last tick proposed.
            held = not self._commanded_since_tick and proprio is not None
            self._commanded_since_tick = False
        executed = np.tile(proprio, (self.spec.actions_per_token, 1)) if held else None
        with self._policy:
            result = self.agent.tick(now, cameras, proprio, proprio_stamp, executed_actions=executed)
        chunk = result.chunk
        with self._command:
            self._last_chunk_dropped = self.commander.set_chunk(self.now(), chunk.stamps, chunk.actions)
            self._pending_latency = result.observation_stamp
        self._command_step()  # publish the new chunk's first command now, not at the next timer
        self._last_health = result.health
        self.tick_durations.append(time.perf_counter() - started)
        self.tick_count += 1
        if self.params["debug_image"] and self._debug_pub.get_subscription_count() > 0:
            self._publish_debug_image(cameras, chunk.predicted_frames, result.observation_stamp)
        self._publish_predicted_frames(chunk.predicted_frames, result.observation_stamp)

    # -------------------------------------------------------------- diagnostics

    def _publish_debug_image(self, cameras: dict[str, Any], predicted: dict[str, np.ndarray], stamp: float) -> None:
        size = int(self.params["debug_image_size"])
        rows = []
        for camera in self.cameras:
            frame = cameras[camera].frame
            real = _nearest_resize(frame, size) if frame is not None else np.zeros((size, size, 3), np.uint8)
            guess = predicted.get(camera)
            model = _nearest_resize(guess, size) if guess is not None else np.zeros((size, size, 3), np.uint8)
            rows.append(np.concatenate([real, model], axis=1))
        self._debug_pub.publish(image_to_msg(np.concatenate(rows, axis=0), stamp, "policy_debug"))

    def _publish_predicted_frames(self, predicted: dict[str, np.ndarray], stamp: float) -> None:
        """Each camera's predicted frame on its own topic, as the model made it, to subscribers only."""
        for camera, publisher in self._predicted_pubs.items():
            frame = predicted.get(camera)
            if frame is not None and publisher.get_subscription_count() > 0:
                publisher.publish(image_to_msg(frame, stamp, qos.camera_frame_id(camera)))

    def diagnostics(self) -> DiagnosticArray:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        with self._command:
            counters = self.commander.counters
            step = self._last_step
            enabled = self.commander.enabled
            values = {
                "enabled": str(enabled),
                "command_status": step.status if step else "none",
                "watchdog": "; ".join(step.reasons) if step and step.status == "watchdog" else "ok",
                outputs.TICKS: str(self.tick_count),
                "commands": str(counters.commands),
                outputs.DROPPED_ACTIONS: str(counters.dropped_actions),
                "dropped_actions_last_chunk": str(self._last_chunk_dropped),
                "invalid_actions": str(counters.invalid_actions),
                outputs.REJECTED_COMMANDS: str(counters.rejected_commands),
                outputs.ADJUSTED_COMMANDS: str(counters.adjusted_commands),
                outputs.WATCHDOG_STOPS: str(counters.watchdog_stops),
            }
        intervals = list(self.tick_intervals)[-50:]
        durations = list(self.tick_durations)[-50:]
        latencies = list(self.command_latencies)[-50:]
        values["tick_rate_hz"] = f"{1.0 / np.mean(intervals):.2f}" if intervals else "0"
        values["tick_latency_p50_ms"] = f"{percentile_ms(durations, 50):.2f}"
        values["tick_latency_p99_ms"] = f"{percentile_ms(durations, 99):.2f}"
        values["command_latency_p50_ms"] = f"{percentile_ms(latencies, 50):.2f}"
        values["command_latency_p99_ms"] = f"{percentile_ms(latencies, 99):.2f}"
        loop = DiagnosticStatus(name=outputs.loop_status_name(self.get_name()), hardware_id=self.params["robot_type"])
        if step is not None and step.status in ("watchdog", "rejected"):
            loop.level, loop.message = DiagnosticStatus.WARN, f"{step.status}: {'; '.join(step.reasons)}"
        else:
            loop.level = DiagnosticStatus.OK
            loop.message = values["command_status"] if enabled else "disabled"
        loop.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array.status.append(loop)
        health = dict(self._last_health)
        for camera in self.cameras:
            status = DiagnosticStatus(name=outputs.camera_status_name(self.get_name(), camera), hardware_id=camera)
            assessed = health.get(camera)
            if assessed is None:
                status.level, status.message = DiagnosticStatus.STALE, "no tick yet"
            else:
                issues = [issue.value for issue in assessed.issues]
                status.level = (
                    DiagnosticStatus.OK
                    if assessed.level == 0
                    else DiagnosticStatus.ERROR
                    if assessed.level >= self.K
                    else DiagnosticStatus.WARN
                )
                status.message = f"k={assessed.level}/{self.K}" + (f" ({', '.join(issues)})" if issues else "")
                status.values = [
                    KeyValue(key=outputs.NOISE_LEVEL, value=str(assessed.level)),
                    KeyValue(key=outputs.MAX_NOISE_LEVEL, value=str(self.K)),
                    KeyValue(key=outputs.ISSUES, value=outputs.ISSUE_SEPARATOR.join(issues)),
                ] + [KeyValue(key=k, value=f"{v:.4g}") for k, v in assessed.metrics.items()]
            array.status.append(status)
        return array

    def _publish_diagnostics(self) -> None:
        self._diagnostics_pub.publish(self.diagnostics())


def _nearest_resize(image: np.ndarray, size: int) -> np.ndarray:
    """A size x size RGB tile of the debug image. An array that is no picture (no pixels,
    not HxW or HxWx1/3/4) becomes a black tile: one bad frame must not stop ~/debug_image."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.size == 0 or array.shape[2] not in (1, 3, 4):
        return np.zeros((size, size, 3), np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    array = array[:, :, :3]
    rows = np.arange(size) * array.shape[0] // size
    cols = np.arange(size) * array.shape[1] // size
    return np.ascontiguousarray(array[rows][:, cols].astype(np.uint8))


def make_executor(kind: str, context: Any = None) -> Any:
    """The executor that spins the node's callbacks (the tick has its own thread).

    Callbacks only store messages, but each holds the GIL while rclpy dispatches it, and
    the tick waits for the GIL after every torch call: the cheaper the dispatch, the shorter
    the tick. "single" (one thread) measured 4x lower p99 image-to-command latency than
    "multi" (a 3-thread pool) in bench_e2e. (rclpy's experimental EventsExecutor cut
    another ~4 ms in a spin_once loop but hung at 100% CPU under spin() in main(), so it is
    not offered.)"""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    if kind == "multi":
        return MultiThreadedExecutor(num_threads=3, context=context)
    return SingleThreadedExecutor(context=context)


def _parse_cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="policy_node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: ros2 run df_policy policy_node --ros-args -p checkpoint:=/data/ckpt -p start_enabled:=true",
    )
    parser.parse_args(argv)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv if args is None else args
    from rclpy.logging import get_logger
    from rclpy.utilities import remove_ros_args

    _parse_cli(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    try:
        node = PolicyNode()
    except PolicyNodeError as error:
        get_logger("policy_node").fatal(str(error))
        rclpy.shutdown()
        sys.exit(2)
    node.start()
    spin_until_shutdown(node, make_executor(str(node.params["executor"])), on_stop=node.stop)


if __name__ == "__main__":
    main()
