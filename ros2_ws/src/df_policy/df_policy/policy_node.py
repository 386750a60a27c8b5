"""policy_node: runs the Diffusion Forcing policy on the arm in real time.

Thin glue. The checkpoint owns the policy's facts (cameras, image sizes and crops,
embodiment, rates, the runner settings it was evaluated with); the robot description
(`robot_description`) owns the robot's (camera topics, state topics, command and
gripper sinks, safety limits). The node checks one against the other and refuses to
start naming every mismatch; nothing of either is restated here.

Camera and robot-state messages are kept newest-only; a worker thread runs one policy
tick per token period through policy.agent.PolicyAgent (frame health gives each camera
a noise level k, corrupted frames enter the latent with k > 0) and hands the
time-stamped action chunk to policy.commanding.Commander; a timer at the command rate
(own callback group) interpolates, filters for safety and publishes to the sinks.
~/reset and ~/enable are applied by the worker between ticks: a chunk computed from the
previous episode's latent is never installed.

Parameters are generated from the config dataclasses (`--help` lists them all):
  <setting>          the node's own (df_policy.settings.PolicyNodeSettings), read-only
  runner.<field>     policy.runner.RunnerConfig, defaults from the checkpoint, read-only
  health.<field>     policy.frame_health.HealthConfig, read-only
  safety.<field>     policy.commanding.SafetyLimits, defaults from the robot description;
                     `ros2 param set` changes them live (or is refused, naming why)
  watchdog.<field>   policy.commanding.WatchdogConfig; live as well
Services: ~/enable (std_srvs/SetBool), ~/reset (std_srvs/Trigger: a new episode).
Topics out: the sinks, /diagnostics (tick rate, latency and failures, per-camera health
and noise level, dropped actions, watchdog), ~/debug_image (each camera's frame next to
the frame the model predicted for it, for people), ~/predicted_frame/<camera> (the
predicted frame alone, stamped with its tick's observation time, for programs;
df_policy.policy_outputs names these topics and the /diagnostics keys).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import SetBool, Trigger

from df_policy import policy_outputs as outputs
from df_policy import qos
from df_policy.conversions import (
    ConversionError,
    camera_message,
    camera_msg_to_image,
    image_to_msg,
    msg_to_joint_positions,
    msg_to_pose,
    time_to_seconds,
)
from df_policy.node_main import spin_until_shutdown
from df_policy.parameters import ParameterError, declare_dataclass, parameter_help_entry, updated_dataclass
from df_policy.settings import PolicyNodeSettings
from df_policy.sinks import JointTrajectorySink, PoseStampedSink, SinkError, make_gripper_sink
from policy.commanding import Commander, CommandStep, JointModel, SafetyLimits, WatchdogConfig
from policy.frame_health import HealthConfig
from policy.runner import RunnerConfig

# Parameter groups: prefix -> (config dataclass, whether `ros2 param set` may change it live).
# Live groups are applied under the command lock; every other parameter is read-only, so a
# set that could not take effect is refused instead of accepted and ignored.
PARAMETER_GROUPS: dict[str, tuple[type, bool]] = {
    "": (PolicyNodeSettings, False),
    "runner.": (RunnerConfig, False),
    "health.": (HealthConfig, False),
    "safety.": (SafetyLimits, True),
    "watchdog.": (WatchdogConfig, True),
}
STATS_WINDOW = 20000
# With use_sim_time the worker also wakes on every /clock message; this bounds a wait
# when no clock message comes (the simulator paused), in wall seconds.
SIM_TIME_POLL_S = 0.1


def declared_parameter_names() -> set[str]:
    """Every parameter the node declares (besides rclpy's own use_sim_time)."""
    return {prefix + f.name for prefix, (cls, _) in PARAMETER_GROUPS.items() for f in fields(cls)}


# "frames" mode (FrameTrigger): a tick is due one period after the last; it runs as soon as
# every camera has delivered a frame since (due - TICK_EARLY_S), so it locks onto the
# cameras' phase and uses frames that are as new as possible, and at the latest TICK_LATE_S
# after it was due (a camera that stopped then shows up as missing or stale). Both are
# capped at a quarter and a half of the period for fast tick rates.
TICK_EARLY_S = 0.02
TICK_LATE_S = 0.1


class FrameTrigger:
    """When the next tick runs in "frames" mode (seconds on one clock: monotonic wall time,
    or sim time with use_sim_time; no ROS here).

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
    arrival_schedule: float = -math.inf  # on the tick schedule's clock (PolicyNode.schedule_time)


def percentile_ms(values: deque | list, q: float) -> float:
    return float(np.percentile(np.asarray(values), q) * 1e3) if len(values) else float("nan")


class PolicyNode(Node):
    def __init__(self, name: str = "policy_node", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        try:
            self.settings: PolicyNodeSettings = declare_dataclass(self, "", PolicyNodeSettings(), read_only=True)
        except ParameterError as error:
            raise PolicyNodeError(f"bad parameter: {error}") from error
        settings = self.settings
        if not settings.checkpoint:
            raise PolicyNodeError("parameter 'checkpoint' is empty: give the checkpoint directory to run")

        # The policy stack needs torch: imported here so `--help` stays fast.
        import torch

        from policy.agent import PolicyAgent
        from policy.checkpoint import CheckpointError, load_checkpoint
        from policy.runner import PolicyRunner
        from robots.description import RobotDescriptionError, load_robot_description
        from robots.franka import tcp_pose

        torch.set_num_threads(settings.torch_threads)
        try:
            self.robot = load_robot_description(settings.robot_description)
        except RobotDescriptionError as error:
            raise PolicyNodeError(f"refusing to start: {error}") from error
        try:
            loaded = load_checkpoint(settings.checkpoint, device=settings.device)
            self.robot.check_policy_spec(loaded.spec, f"checkpoint {settings.checkpoint}")
            runner_defaults = loaded.runner_config()
        except (CheckpointError, RobotDescriptionError) as error:
            raise PolicyNodeError(f"refusing to start: {error}") from error
        self.spec = loaded.spec
        self.embodiment = self.robot.embodiment_model
        self.cameras = self.spec.camera_names
        try:
            self.runner_config: RunnerConfig = declare_dataclass(self, "runner.", runner_defaults, read_only=True)
            self.health_config: HealthConfig = declare_dataclass(self, "health.", HealthConfig(), read_only=True)
            limits: SafetyLimits = declare_dataclass(self, "safety.", self.robot.safety, read_only=False)
            watchdog: WatchdogConfig = declare_dataclass(self, "watchdog.", WatchdogConfig(), read_only=False)
        except ParameterError as error:
            raise PolicyNodeError(f"bad parameter: {error}") from error
        arm = self.robot.arm
        joint_model = JointModel(
            arm.joint_lower, arm.joint_upper, arm.joint_velocity_limit, lambda q: tcp_pose(q)[:3, 3]
        )
        try:
            runner = PolicyRunner(loaded.model, loaded.normalizer, self.runner_config, device=settings.device)
            self.agent = PolicyAgent(
                runner, self.health_config, use_surprise=settings.use_surprise, proprio_stale_s=settings.proprio_stale_s
            )
            self.K = self.agent.K
            self.command_period_s = 1.0 / settings.command_rate_hz
            self.commander = Commander(
                self.spec.action,
                limits,
                watchdog,
                enabled=False,
                command_period_s=self.command_period_s,
                joint_model=joint_model,
            )
        except ValueError as error:  # runner, health, safety or watchdog settings
            raise PolicyNodeError(f"bad parameter value: {error}") from error
        self.tick_period_s = 1.0 / (settings.policy_rate_hz or 1.0 / self.spec.token_period_s)

        # Locks: _streams guards the newest frames and the requests for the worker (and
        # wakes it); _command guards the commander (command timer, worker, services,
        # parameter changes); _policy guards the agent (only the worker uses it).
        self._streams = threading.Condition()
        self._command = threading.Lock()
        self._policy = threading.Lock()
        self._frames = {camera: Latest() for camera in self.cameras}
        self._state_message: tuple[Any, float] | None = None  # newest pose or joint message, arrival time
        self._state_converted: tuple[Any, float] | None = None
        self._proprio_state: tuple[np.ndarray, float] | None = None  # measured state vector, its stamp
        self._gripper_width: float | None = None
        self._joints: np.ndarray | None = None
        self._last_health: dict[str, Any] = {}
        self._last_chunk_dropped = 0
        self._pending_latency: float | None = None  # observation stamp of the chunk not yet published
        self._commanded_since_tick = False
        self._last_step: CommandStep | None = None
        # Episodes: ~/reset and ~/enable(true) start a new one at once for the commander
        # (no command from the old trajectory) and ask the worker to reset the agent
        # before its next tick; a tick that started in the old episode has its chunk
        # discarded (the episode number changed under it).
        self._episode = 0
        self._agent_reset_pending = False
        self._enable_pending = False
        self.discarded_chunks = 0
        self.tick_failures = 0
        self.consecutive_tick_failures = 0
        self.last_tick_error = ""

        # Statistics for /diagnostics and benchmarks (seconds).
        self.tick_durations: deque[float] = deque(maxlen=STATS_WINDOW)
        self.tick_intervals: deque[float] = deque(maxlen=STATS_WINDOW)
        self.command_latencies: deque[float] = deque(maxlen=STATS_WINDOW)
        self.tick_count = 0
        self._last_tick_scheduled: float | None = None

        self._sim_time = bool(self.get_parameter("use_sim_time").value)
        self._build_interfaces()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        if settings.start_enabled:
            self.set_enabled(True)
        self.get_logger().info(
            f"policy ready: checkpoint {settings.checkpoint} ({self.embodiment.name}, cameras {list(self.cameras)}) "
            f"on robot {self.robot.name} ({self.robot.source}), K={self.K}, tick every "
            f"{self.tick_period_s * 1e3:.0f} ms ({settings.tick_trigger}), commands at {settings.command_rate_hz} Hz "
            f"to {self.robot.command.sink} {self.robot.command.topic}, gripper {self.robot.gripper.sink}; "
            f"{'enabled' if settings.start_enabled else 'disabled: call ~/enable'}"
        )

    # ------------------------------------------------------------------ set-up

    def _build_interfaces(self) -> None:
        robot, settings = self.robot, self.settings
        # Subscriptions only store the newest message: any thread may run them.
        inputs = ReentrantCallbackGroup()
        self._command_group = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        for camera in self.cameras:
            message_type, topic = camera_message(robot.camera(camera))
            self.create_subscription(
                message_type,
                topic,
                lambda msg, camera=camera: self._on_frame(camera, msg),
                qos.image_qos(),
                callback_group=inputs,
            )
        state_qos = qos.robot_state_qos()  # best effort: reaches best-effort and reliable publishers
        joint_space = self.embodiment.name == "joint_position"
        if not joint_space:
            self.create_subscription(
                PoseStamped, robot.state.current_pose_topic, self._on_state, state_qos, callback_group=inputs
            )
        self.create_subscription(
            JointState, robot.state.gripper_joint_states_topic, self._on_gripper, state_qos, callback_group=inputs
        )
        if joint_space or robot.command.sink == "joint_trajectory":
            self.create_subscription(
                JointState,
                robot.state.measured_joint_states_topic,
                self._on_joints,
                state_qos,
                callback_group=inputs,
            )
        try:
            if robot.command.sink == "joint_trajectory":
                self.sink = JointTrajectorySink(
                    self, robot.command.topic, robot.robot_type, lambda: self._joints, 2 * self.command_period_s
                )
            else:
                self.sink = PoseStampedSink(self, robot.command.topic, robot.frame_id)
            self.gripper_sink = make_gripper_sink(self, robot.gripper)
        except SinkError as error:
            raise PolicyNodeError(str(error)) from error

        if self._sim_time:
            # Each /clock message moves the tick schedule on: wake the worker for it.
            self.create_subscription(Clock, "/clock", self._on_clock, 10, callback_group=inputs)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.reliable_qos())
        self._debug_pub = self.create_publisher(Image, "~/debug_image", qos.reliable_qos(depth=1))
        self._predicted_pubs = {
            camera: self.create_publisher(Image, outputs.predicted_frame_topic(camera), qos.reliable_qos(depth=5))
            for camera in self.cameras
        }
        self.create_timer(self.command_period_s, self._on_command_timer, callback_group=self._command_group)
        self.create_timer(1.0 / settings.diagnostics_rate_hz, self._publish_diagnostics, callback_group=services)
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=services)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=services)

    # ---------------------------------------------------------------- parameters

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        """Live safety limits and watchdog timeouts: all of a request's changes are
        validated together by the config dataclass and applied under the command lock
        (the next command is held to them), or the whole request is refused with the
        dataclass's reason. Read-only parameters never reach here changed."""
        changes: dict[str, dict[str, Any]] = {}
        for parameter in parameters:
            prefix = next((p for p in ("safety.", "watchdog.") if parameter.name.startswith(p)), None)
            if prefix is None:
                continue
            changes.setdefault(prefix, {})[parameter.name] = parameter.value
        if not changes:
            return SetParametersResult(successful=True)
        with self._command:
            try:
                limits = updated_dataclass(self.commander.limits, "safety.", changes.get("safety.", {}))
                watchdog = updated_dataclass(self.commander.watchdog.config, "watchdog.", changes.get("watchdog.", {}))
            except ParameterError as error:
                self.get_logger().warning(f"refused parameter change {sorted(changes)}: {error}")
                return SetParametersResult(successful=False, reason=str(error))
            self.commander.set_limits(limits)
            self.commander.watchdog.config = watchdog
        described = {name: value for group in changes.values() for name, value in group.items()}
        self.get_logger().warning(f"safety parameters changed live: {described}")
        return SetParametersResult(successful=True)

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
        """Disabling stops commanding at once; enabling is applied by the worker between
        ticks, after the new episode's reset when reset_on_enable is set."""
        if not enabled:
            with self._streams:
                self._enable_pending = False
            with self._command:
                self.commander.set_enabled(False)
            self.get_logger().info("commanding disabled")
            return
        if not self.commander.enabled and self.settings.reset_on_enable:
            self.reset_episode()
        with self._streams:
            self._enable_pending = True
            self._streams.notify_all()
        if self._worker is None:  # no worker (a test driving the node by hand): apply now
            self._apply_requests()

    def reset_episode(self) -> None:
        """Start a new episode: commanding of the old trajectory stops at once, and the
        worker returns the latent to z_0 and restarts frame health before its next tick."""
        with self._command:
            self._episode += 1
            self.commander.reset()
            if isinstance(self.sink, JointTrajectorySink):
                self.sink.reset()
        with self._streams:
            self._agent_reset_pending = True
            self._streams.notify_all()
        if self._worker is None:
            self._apply_requests()

    def _apply_requests(self) -> None:
        """The worker's part of ~/reset and ~/enable, between ticks."""
        with self._streams:
            reset, enable = self._agent_reset_pending, self._enable_pending
            self._agent_reset_pending = self._enable_pending = False
        if reset:
            with self._policy:
                self.agent.reset()
        if enable:
            with self._command:
                self.commander.set_enabled(True)
            self.get_logger().info("commanding enabled")

    # ---------------------------------------------------------------- callbacks

    # Callbacks only store the newest message and its arrival time (state topics may come
    # at 1 kHz): conversion happens once per use, in the command step or the tick.

    def _on_frame(self, camera: str, msg: Image | CompressedImage) -> None:
        now = self.now()
        with self._streams:
            latest = self._frames[camera]
            latest.msg, latest.arrival, latest.arrival_schedule = msg, now, self.schedule_time()
            self._streams.notify_all()

    def _on_clock(self, msg: Clock) -> None:
        with self._streams:
            self._streams.notify_all()

    def _on_state(self, msg: PoseStamped) -> None:
        self._state_message = (msg, self.now())  # one reference assignment: atomic

    def _gripper(self) -> float:
        return self._gripper_width if self._gripper_width is not None else float(self.commander.limits.gripper_max_m)

    def _refresh_inputs(self) -> None:
        """Hand the newest measured state and frame arrival to the commander (call with the
        _command lock held); each state message is converted once."""
        latest = self._state_message
        if latest is not None and latest is not self._state_converted:
            self._state_converted = latest
            msg, arrival = latest
            try:
                if isinstance(msg, PoseStamped):
                    position, quat = msg_to_pose(msg)
                    state = np.concatenate([position, quat])
                    taken = self.commander.update_state(arrival, position, quat, self._gripper())
                else:
                    state = msg_to_joint_positions(msg, self.robot.arm.joint_names)
                    taken = self.commander.update_joint_state(arrival, state, self._gripper())
            except ConversionError as error:
                self.get_logger().error(f"ignoring robot state: {error}", throttle_duration_sec=1.0)
            else:
                if taken:
                    self._proprio_state = (state, time_to_seconds(msg.header.stamp))
                else:
                    self.get_logger().error("ignoring a non-finite robot state", throttle_duration_sec=1.0)
        arrivals = [latest.arrival for latest in self._frames.values() if latest.arrival is not None]
        if arrivals:
            self.commander.note_observation(max(arrivals))

    def _on_gripper(self, msg: JointState) -> None:
        if len(msg.position) >= 2 and all(math.isfinite(v) for v in msg.position[:2]):
            self._gripper_width = float(msg.position[0] + msg.position[1])  # each finger is half the width

    def _on_joints(self, msg: JointState) -> None:
        if self.embodiment.name == "joint_position":
            self._state_message = (msg, self.now())
        try:
            self._joints = msg_to_joint_positions(msg, self.robot.arm.joint_names)
        except ConversionError as error:
            self.get_logger().error(f"ignoring joint state: {error}", throttle_duration_sec=1.0)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.set_enabled(bool(request.data))
        response.success = True
        response.message = "enabled (from the next tick)" if request.data else "disabled"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.reset_episode()
        response.success = True
        response.message = "episode reset: latent back to z_0 before the next tick"
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

    def schedule_time(self) -> float:
        """The clock the ticks are scheduled on: with use_sim_time the simulator's (/clock),
        so that a machine that slows the simulation down slows the policy's schedule with
        it; otherwise the monotonic wall clock."""
        return self.now() if self._sim_time else time.monotonic()

    def _wait(self, seconds: float) -> None:
        """Wait on the streams' condition (held) for `seconds` of schedule time at most: in
        sim time, until the next /clock message (which notifies it) or a frame."""
        self._streams.wait(timeout=min(seconds, SIM_TIME_POLL_S) if self._sim_time else seconds)

    def _run_worker(self) -> None:
        trigger = self.settings.tick_trigger
        period = self.tick_period_s
        start = self.schedule_time()
        frames = FrameTrigger(period, min(TICK_EARLY_S, 0.25 * period), min(TICK_LATE_S, 0.5 * period), start)
        anchor = start - period  # timer mode: the first tick is due now
        while not self._stop.is_set():
            with self._streams:
                while not self._stop.is_set():
                    if self._agent_reset_pending or self._enable_pending:
                        break
                    t = self.schedule_time()
                    if trigger == "timer":
                        due = anchor + period
                        if t >= due:
                            anchor = due if t - due < period else t  # fixed rate, no bursts after a slow tick
                            break
                        self._wait(due - t)
                        continue
                    wait = frames.poll(t, [self._frames[c].arrival_schedule for c in self.cameras])
                    if wait is None:
                        break
                    self._wait(wait)
                if self._stop.is_set():
                    return
                requests = self._agent_reset_pending or self._enable_pending
            if requests:
                self._apply_requests()
                continue  # then wait for the tick that is due
            try:
                self._tick()
                self.consecutive_tick_failures = 0
            except Exception as error:  # a bad tick must not kill the loop; the watchdog stops the arm
                if self._stop.is_set() or not rclpy.ok(context=self.context):
                    return
                self.tick_failures += 1
                self.consecutive_tick_failures += 1
                self.last_tick_error = repr(error)
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
            described = self.robot.camera(camera)
            if isinstance(msg, Image) and (msg.height, msg.width) != (described.height, described.width):
                # Not the camera the robot description names (another driver, a wrong profile,
                # a 4K frame that would cost the tick half a second): unusable, said plainly.
                self.get_logger().error(
                    f"camera {camera}: a {msg.width}x{msg.height} frame, the robot description "
                    f"{self.robot.source} says {described.width}x{described.height}: ignored (k = K)",
                    throttle_duration_sec=1.0,
                )
                inputs[camera] = CameraInput(None, stamp, decode_error=True)
                continue
            try:
                frame = camera_msg_to_image(msg)
                inputs[camera] = CameraInput(frame, stamp)
            except ConversionError as error:
                self.get_logger().error(f"camera {camera}: {error}", throttle_duration_sec=1.0)
                inputs[camera] = CameraInput(None, stamp, decode_error=True)
        return inputs

    def _proprio(self) -> tuple[np.ndarray | None, float | None]:
        with self._command:
            self._refresh_inputs()
            state = self._proprio_state
        if state is None:
            return None, None
        values, stamp = state
        return self.embodiment.proprio(values[None], np.array([[self._gripper()]]))[0], stamp

    def _tick(self) -> None:
        started = time.perf_counter()
        # Jitter is about when ticks start (their schedule, so in sim time with use_sim_time),
        # not how long they take.
        scheduled = self.schedule_time()
        if self._last_tick_scheduled is not None:
            self.tick_intervals.append(scheduled - self._last_tick_scheduled)
        self._last_tick_scheduled = scheduled
        now = self.now()
        cameras = self._camera_inputs()
        proprio, proprio_stamp = self._proprio()
        with self._command:
            episode = self._episode
            # When nothing was commanded during the last token (disabled, watchdog), the
            # arm held still: tell the latent so, instead of what the last tick proposed.
            # (The measured state is laid out as an action: both embodiments' proprio is
            # their action vector, measured.)
            held = not self._commanded_since_tick and proprio is not None
            self._commanded_since_tick = False
        executed = np.tile(proprio, (self.spec.actions_per_token, 1)) if held else None
        with self._policy:
            result = self.agent.tick(now, cameras, proprio, proprio_stamp, executed_actions=executed)
        for camera, problem in result.frame_errors.items():
            self.get_logger().error(f"camera {camera}: {problem}", throttle_duration_sec=1.0)
        chunk = result.chunk
        with self._command:
            if episode != self._episode:  # ~/reset or ~/enable during this tick: the chunk is the old episode's
                self.discarded_chunks += 1
                return
            self._last_chunk_dropped = self.commander.set_chunk(self.now(), chunk.stamps, chunk.actions)
            self._pending_latency = result.observation_stamp
        self._command_step()  # publish the new chunk's first command now, not at the next timer
        self._last_health = result.health
        self.tick_durations.append(time.perf_counter() - started)
        self.tick_count += 1
        if self.settings.debug_image and self._debug_pub.get_subscription_count() > 0:
            self._publish_debug_image(cameras, chunk.predicted_frames, result.observation_stamp)
        self._publish_predicted_frames(chunk.predicted_frames, result.observation_stamp)

    # -------------------------------------------------------------- diagnostics

    def _publish_debug_image(self, cameras: dict[str, Any], predicted: dict[str, np.ndarray], stamp: float) -> None:
        size = self.settings.debug_image_size
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
                "tick_failures": str(self.tick_failures),
                "last_tick_error": self.last_tick_error,
                "discarded_chunks": str(self.discarded_chunks),
                "commands": str(counters.commands),
                outputs.DROPPED_ACTIONS: str(counters.dropped_actions),
                "dropped_actions_last_chunk": str(self._last_chunk_dropped),
                "invalid_actions": str(counters.invalid_actions),
                "invalid_states": str(counters.invalid_states),
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
        loop = DiagnosticStatus(name=outputs.loop_status_name(self.get_name()), hardware_id=self.robot.robot_type)
        if self.consecutive_tick_failures >= 3:
            # Every tick fails (a broken model, a bad frame every time): say so, not only "watchdog".
            loop.level = DiagnosticStatus.ERROR
            loop.message = f"{self.consecutive_tick_failures} ticks in a row failed: {self.last_tick_error}"
        elif step is not None and step.status in ("watchdog", "rejected"):
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


def parameter_help() -> str:
    """Every parameter with its default and meaning, from the config dataclasses."""
    lines = []
    for prefix, (cls, live) in PARAMETER_GROUPS.items():
        title = f"{cls.__module__}.{cls.__name__}" + (" (live: ros2 param set takes effect)" if live else "")
        lines.append(f"\n{prefix or '<node>'} parameters, {title}:")
        for item in fields(cls):
            default = item.default
            if prefix == "safety." and default is None:
                default = "(robot description)"
            elif prefix == "runner.":
                default = f"{default!r} (or the checkpoint's)"
            lines.append(parameter_help_entry(prefix + item.name, default, item))
    return "\n".join(lines)


def parameter_table_markdown() -> str:
    """The parameter table of docs/policy_node.md (a test keeps the doc equal to this)."""
    from policy.config_io import field_doc

    rows = ["| parameter | default | live | meaning |", "|---|---|---|---|"]
    for prefix, (cls, live) in PARAMETER_GROUPS.items():
        for item in fields(cls):
            default = '""' if item.default == "" else item.default
            if default is None:
                default = "robot description"
            elif prefix == "runner.":
                default = f"checkpoint's, else {default}"
            doc = field_doc(item)
            meaning = doc.doc + (f" ({', '.join(doc.choices)})" if doc.choices else "")
            rows.append(f"| `{prefix}{item.name}` | {default} | {'yes' if live else 'no'} | {meaning} |")
    return "\n".join(rows)


def _parse_cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="policy_node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=parameter_help() + "\n\nExample: ros2 run df_policy policy_node --ros-args -p checkpoint:=/data/ckpt "
        "-p robot_description:=fr3_sim -p start_enabled:=true",
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
    spin_until_shutdown(
        node, make_executor(node.settings.executor), on_stop=node.stop, stall_timeout_s=node.settings.stall_timeout_s
    )
    # Everything is stopped and shut down: skip the interpreter's own teardown (torch's and
    # every module's finalisers took 3-4 s on a loaded 2-core machine, past launch's grace
    # period before SIGTERM, and Ctrl-C should stop a robot's policy within 2 s).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
