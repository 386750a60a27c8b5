"""This process's DDS participant in a closed-loop run: it watches the nodes' public
topics and never commands anything. The robot's topics are those of the robot
description the closed loop runs the nodes with (no namespace: `/` + the name).

- Every command on the command topic and the gripper topic is audited with
  `policy.commanding.audit_command`, independently of the node's own safety filter.
- Each camera's noise level k, the tick count and the commander's counters are read
  from the policy node's `/diagnostics` key/values (names from df_policy.policy_outputs).
- While an episode is recorded for a video, the camera frames and each camera's
  predicted frame (`/policy_node/predicted_frame/<camera>`) are kept with their arrival
  times.

rclpy is imported when a Probe is made, not before.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation.ros.processes import POLICY_NODE, import_node_package
from robots.description import RobotDescription

# The commander's counters an episode reports (the names of EpisodeOutcome's fields).
COMMAND_COUNTERS = ("watchdog_stops", "dropped_actions", "adjusted_commands", "rejected_commands")


@dataclass
class PolicyHealth:
    """The policy node's loop and frame health from one /diagnostics message."""

    ticks: int
    levels: dict[str, int]  # noise level k per camera that has had a tick
    issues: dict[str, str]  # frame-health issues per camera, comma separated ("" = none)
    max_level: int | None  # K (None before any camera reported)
    counters: dict[str, int]  # the commander's counters, by COMMAND_COUNTERS (EpisodeOutcome's names)


def read_policy_health(msg: Any, cameras: tuple[str, ...], node_name: str = POLICY_NODE) -> PolicyHealth | None:
    """The policy node's health from one DiagnosticArray; None when it holds no policy-loop
    status of `node_name` (another node's diagnostics)."""
    from df_policy import policy_outputs as outputs

    by_name = {status.name: {kv.key: kv.value for kv in status.values} for status in msg.status}
    loop = by_name.get(outputs.loop_status_name(node_name))
    if loop is None:
        return None
    reported = {camera: by_name.get(outputs.camera_status_name(node_name, camera)) for camera in cameras}
    assessed = {camera: values for camera, values in reported.items() if values and outputs.NOISE_LEVEL in values}
    max_levels = [
        int(values[outputs.MAX_NOISE_LEVEL]) for values in assessed.values() if outputs.MAX_NOISE_LEVEL in values
    ]
    return PolicyHealth(
        ticks=int(loop.get(outputs.TICKS, "0")),
        levels={camera: int(values[outputs.NOISE_LEVEL]) for camera, values in assessed.items()},
        issues={camera: values.get(outputs.ISSUES, "") for camera, values in assessed.items()},
        max_level=max_levels[0] if max_levels else None,
        counters={
            "watchdog_stops": int(loop.get(outputs.WATCHDOG_STOPS, "0")),
            "dropped_actions": int(loop.get(outputs.DROPPED_ACTIONS, "0")),
            "adjusted_commands": int(loop.get(outputs.ADJUSTED_COMMANDS, "0")),
            "rejected_commands": int(loop.get(outputs.REJECTED_COMMANDS, "0")),
        },
    )


@dataclass
class PredictedFrame:
    arrival: float  # monotonic seconds
    stamp: float  # the observation time of the tick that predicted it (header stamp)
    camera: str
    image: np.ndarray


@dataclass
class EpisodeRecording:
    """What the probe saw between `begin_episode` and `end_episode`."""

    commands: int = 0  # pose commands audited
    unsafe_commands: int = 0
    gripper_commands: int = 0
    unsafe_gripper_commands: int = 0
    problems: list[str] = field(default_factory=list)  # the first few, for the report
    health: list[tuple[float, PolicyHealth]] = field(default_factory=list)  # (monotonic arrival, health)
    # Kept only when the episode is recorded for a video: (monotonic arrival, image).
    frames: dict[str, list[tuple[float, np.ndarray]]] = field(default_factory=dict)
    predicted: list[PredictedFrame] = field(default_factory=list)


class Probe:
    """Subscriptions on the nodes' topics, spun on a thread of their own: the topics of
    `robot` (the description both nodes run with), the policy node's /diagnostics and
    predicted frames."""

    def __init__(self, robot: RobotDescription, cameras: tuple[str, ...], limits: Any) -> None:
        import_node_package()
        if robot.gripper.sink != "width_topic" or robot.command.sink != "pose":
            raise ValueError(
                f"the closed-loop probe audits pose targets and gripper widths: robot description {robot.source} "
                f"has command.sink {robot.command.sink!r} and gripper.sink {robot.gripper.sink!r}"
            )
        self.robot = robot
        self.cameras = cameras
        self.limits = limits  # what the node promises to respect (policy.commanding.SafetyLimits)
        self._lock = threading.Lock()
        self._recording = False  # frames are kept only for video episodes
        self._measured: Any = None  # the newest measured pose message: the reference of a restart
        self._previous: Any = None  # the last command: the next one is audited against it
        self._latest_health: PolicyHealth | None = None
        self._episode = EpisodeRecording(frames={c: [] for c in cameras})
        self._spinning = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_rclpy = False
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        import rclpy
        from df_policy import qos
        from df_policy.conversions import camera_message
        from df_policy.policy_outputs import predicted_frame_topic
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float64

        from robots.description import absolute_topic

        self.context = rclpy.Context()
        # No rclpy signal handlers: Ctrl-C raises KeyboardInterrupt here and close() runs.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self._started_rclpy = True
        self.node = rclpy.create_node("closed_loop_evaluator", context=self.context)
        node = self.node
        robot = self.robot
        # The nodes run without a namespace: the description's relative names under "/".
        command, gripper = absolute_topic(robot.command.topic), absolute_topic(robot.gripper.topic)
        node.create_subscription(PoseStamped, command, self._on_command, qos.reliable_qos(100))
        node.create_subscription(Float64, gripper, self._on_gripper, qos.reliable_qos(100))
        pose = absolute_topic(robot.state.current_pose_topic)
        node.create_subscription(PoseStamped, pose, self._on_pose, qos_profile_sensor_data)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, qos.reliable_qos(50))
        for camera in self.cameras:
            message_type, topic = camera_message(robot.camera(camera))
            node.create_subscription(
                message_type, absolute_topic(topic), self._keeper(camera, self._keep_frame), qos.image_qos()
            )
            node.create_subscription(
                Image,
                predicted_frame_topic(camera, POLICY_NODE),
                self._keeper(camera, self._keep_predicted),
                qos.reliable_qos(5),
            )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(node)
        self._spinning.set()
        self._thread = threading.Thread(target=self._spin, name="closed_loop_dds", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._spinning.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    # ------------------------------------------------------------------ episodes

    def wait_for_max_level(self, deadline: float, check_alive: Callable[[], None]) -> int | None:
        """K, once the policy node reports its cameras (its checkpoint is loaded by then);
        None if it has not by `deadline` (monotonic s). `check_alive` raises if a node died."""
        while True:
            with self._lock:
                health = self._latest_health
            if health is not None and health.max_level is not None:
                return health.max_level
            check_alive()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    def begin_episode(self, record: bool) -> PolicyHealth | None:
        """Start collecting a new episode (frames too when `record`); returns the last
        health seen before it."""
        with self._lock:
            self._episode = EpisodeRecording(frames={c: [] for c in self.cameras})
            self._previous = None
            self._recording = record
            return self._latest_health

    def end_episode(self) -> EpisodeRecording:
        """Stop recording; what the episode collected."""
        with self._lock:
            self._recording = False
            episode, self._episode = self._episode, EpisodeRecording(frames={c: [] for c in self.cameras})
        return episode

    # ----------------------------------------------------------------- callbacks
    # They run on the DDS thread; everything they share is guarded by self._lock.

    def _on_command(self, msg: Any) -> None:
        from df_policy.conversions import ConversionError, msg_to_pose, time_to_seconds

        from policy.commanding import PoseCommand, audit_command

        gripper = self.limits.gripper_max_m
        pose, measured = self._measured, None
        if pose is not None:
            with contextlib.suppress(ConversionError):
                measured = PoseCommand(time_to_seconds(pose.header.stamp), *msg_to_pose(pose), gripper)
        with self._lock:
            episode = self._episode
            episode.commands += 1
            try:
                position, quat = msg_to_pose(msg)
            except ConversionError as error:
                problems = [f"malformed command: {error}"]
            else:
                command = PoseCommand(time_to_seconds(msg.header.stamp), position, quat, gripper)
                problems = audit_command(self.limits, command, self._previous, measured)
                self._previous = command
            if problems:
                episode.unsafe_commands += 1
                episode.problems = (episode.problems + problems)[:10]

    def _on_gripper(self, msg: Any) -> None:
        with self._lock:
            episode = self._episode
            episode.gripper_commands += 1
            width = float(msg.data)
            if not (math.isfinite(width) and self.limits.gripper_min_m <= width <= self.limits.gripper_max_m):
                episode.unsafe_gripper_commands += 1
                episode.problems = [*episode.problems, f"gripper width {width}"][:10]

    def _on_pose(self, msg: Any) -> None:
        # 100 Hz: keep the message (one atomic assignment); it is converted per command.
        self._measured = msg

    def _on_diagnostics(self, msg: Any) -> None:
        health = read_policy_health(msg, self.cameras)
        if health is None:
            return
        with self._lock:
            self._latest_health = health
            self._episode.health.append((time.monotonic(), health))

    def _keeper(self, camera: str, keep: Callable[[str, Any, np.ndarray, float], None]) -> Callable[[Any], None]:
        """A callback that decodes an image of `camera` while an episode is recorded and
        hands it to `keep`; undecodable images are skipped."""
        from df_policy.conversions import ConversionError, camera_msg_to_image

        def on_image(msg: Any) -> None:
            if not self._recording:
                return
            arrival = time.monotonic()
            try:
                image = camera_msg_to_image(msg)
            except ConversionError:
                return
            with self._lock:
                keep(camera, msg, image, arrival)

        return on_image

    def _keep_frame(self, camera: str, msg: Any, image: np.ndarray, arrival: float) -> None:
        self._episode.frames[camera].append((arrival, image))

    def _keep_predicted(self, camera: str, msg: Any, image: np.ndarray, arrival: float) -> None:
        from df_policy.conversions import time_to_seconds

        self._episode.predicted.append(PredictedFrame(arrival, time_to_seconds(msg.header.stamp), camera, image))

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        """Stop spinning and leave DDS."""
        self._spinning.clear()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._started_rclpy:
            import rclpy

            if self._thread is not None:
                self.executor.shutdown(timeout_sec=2.0)
                self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)
            self._started_rclpy = False
