"""teleop_recorder_node: teleoperate the arm with a SpaceMouse or joystick and record episodes.

Thin glue around `data_collection.teleop_session.TeleopSession`: subscriptions convert
messages and hand them to the session (which records them through the crash-proof
`Recorder`); a control timer integrates the device twist into a clamped target pose and
publishes it with the gripper width; services and keys run the episode lifecycle.

Subscribes:  /camera/<name>/color/image_raw (sensor_msgs/Image), current_pose
             (PoseStamped, best effort), measured_joint_states and the gripper's
             joint_states (JointState), and the device: /spacenav/twist
             (geometry_msgs/Twist, input:=twist) with /spacenav/joy buttons for the
             gripper, or /spacenav/joy axes and buttons (sensor_msgs/Joy, input:=joy).
Publishes:   /target_pose (PoseStamped) and /franka_gripper/width_command (Float64, m),
             from the first measured pose on (so the first target is where the arm is).
Services:    ~/start_episode, ~/stop_episode (commits, success = stop_marks_success),
             ~/discard_episode, ~/resync (restart the target from the measured pose),
             all std_srvs/Trigger.
Terminal:    when stdin is a TTY: s start, e end (success), f end (failed), d discard,
             q quit, h help; a one-line live status (episode, seconds, rates, drops).

Parameters: see PARAMETER_DEFAULTS (config/teleop_recorder.yaml for the simulated robot).
Stamps: a sensor sample keeps its header stamp (receive time if the stamp is zero); the
command and the device input are stamped with this node's clock when they are issued.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState, Joy
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from data_collection.recorder import Recorder, RecorderConfig
from data_collection.schema import StoreSettings, fr3_stream_specs
from data_collection.store import EpisodeStore
from data_collection.teleop import TeleopIntegrator, TeleopLimits
from data_collection.teleop_session import (
    KEY_HELP,
    JoyMapping,
    TeleopSession,
    gripper_from_buttons,
    joint_state_vector,
    joy_to_input,
    scale_twist,
)
from df_policy import qos
from df_policy.conversions import ConversionError, msg_to_image, msg_to_pose, pose_to_msg, time_to_seconds
from df_policy.node_main import spin_until_shutdown

PARAMETER_DEFAULTS: dict[str, Any] = {
    "store_path": "demos.zarr",  # created if missing
    "task": "swap fruit",
    "cameras": ["front", "wrist"],
    "camera_topic_format": "/camera/{camera}/color/image_raw",
    "image_height": 480,  # frames of another size are rejected and noted in the episode
    "image_width": 640,
    "camera_rate_hz": 30.0,  # nominal rates: statistics, gap and stall detection
    "state_rate_hz": 1000.0,
    "gripper_rate_hz": 15.0,
    "current_pose_topic": qos.CURRENT_POSE_TOPIC,
    "measured_joint_states_topic": qos.MEASURED_JOINT_STATES_TOPIC,
    "gripper_joint_states_topic": qos.GRIPPER_JOINT_STATES_TOPIC,
    "joint_names": [f"fr3_joint{i}" for i in range(1, 8)],
    "finger_joint_names": ["fr3_finger_joint1", "fr3_finger_joint2"],
    "input": "twist",  # "twist": motion from twist_topic, gripper from joy buttons; "joy": all from joy
    "twist_topic": "/spacenav/twist",
    "joy_topic": "/spacenav/joy",
    "twist_linear_scale": 0.25,  # m/s per unit of the device twist (spacenav: [-1, 1])
    "twist_angular_scale": 1.0,  # rad/s per unit
    "joy_linear_axes": [0, 1, 2],
    "joy_angular_axes": [3, 4, 5],
    "joy_deadzone": 0.05,
    "gripper_close_button": 0,
    "gripper_open_button": 1,
    "teleop_frame": "base",  # or "tool"
    "control_rate_hz": 100.0,
    "target_pose_topic": qos.TARGET_POSE_TOPIC,
    "gripper_command_topic": qos.GRIPPER_WIDTH_COMMAND_TOPIC,
    "frame_id": qos.FRAME_ID,
    "workspace_min": [0.25, -0.45, 0.02],
    "workspace_max": [0.80, 0.45, 0.70],
    "max_linear_speed": 0.25,
    "max_angular_speed": 1.0,
    "input_timeout_s": 0.25,
    "stop_marks_success": True,
    "keyboard": True,  # only used when stdin is a TTY
    "status_period_s": 0.5,
    "min_free_mb": 256,
}


class TeleopRecorderNode(Node):
    def __init__(self, name: str = "teleop_recorder", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        for key, value in PARAMETER_DEFAULTS.items():
            self.declare_parameter(key, value)
        p = {key: self.get_parameter(key).value for key in PARAMETER_DEFAULTS}
        if p["input"] not in ("twist", "joy"):
            raise ValueError(f"parameter input must be 'twist' or 'joy', got {p['input']!r}")
        self._cameras = [str(c) for c in p["cameras"]]
        self._joint_names = [str(j) for j in p["joint_names"]]
        self._finger_names = [str(j) for j in p["finger_joint_names"]]
        self._frame_id = str(p["frame_id"])
        self._stop_marks_success = bool(p["stop_marks_success"])
        self._input_mode = str(p["input"])
        self._twist_scales = (float(p["twist_linear_scale"]), float(p["twist_angular_scale"]))
        self._joy = JoyMapping(
            linear_axes=tuple(int(a) for a in p["joy_linear_axes"]),
            angular_axes=tuple(int(a) for a in p["joy_angular_axes"]),
            linear_scale=float(p["max_linear_speed"]),
            angular_scale=float(p["max_angular_speed"]),
            deadzone=float(p["joy_deadzone"]),
            close_button=int(p["gripper_close_button"]),
            open_button=int(p["gripper_open_button"]),
        )

        streams = fr3_stream_specs(
            camera_names=tuple(self._cameras),
            image_shape=(int(p["image_height"]), int(p["image_width"])),
            camera_rate_hz=float(p["camera_rate_hz"]),
            state_rate_hz=float(p["state_rate_hz"]),
            gripper_rate_hz=float(p["gripper_rate_hz"]),
            command_rate_hz=float(p["control_rate_hz"]),
            teleop_rate_hz=float(p["control_rate_hz"]),
        )
        self.store = EpisodeStore.open_or_create(Path(str(p["store_path"])).expanduser(), StoreSettings())
        recorder = Recorder(
            self.store,
            streams,
            RecorderConfig(min_free_bytes=int(p["min_free_mb"]) * 2**20),
            robot={"type": "fr3", "joint_names": self._joint_names, "base_frame": self._frame_id},
            clock=self._now,
            on_problem=lambda message: self.get_logger().warning(message),
        )
        limits = TeleopLimits(
            workspace_min=tuple(float(v) for v in p["workspace_min"]),
            workspace_max=tuple(float(v) for v in p["workspace_max"]),
            max_linear_speed=float(p["max_linear_speed"]),
            max_angular_speed=float(p["max_angular_speed"]),
            twist_timeout_s=float(p["input_timeout_s"]),
        )
        self.session = TeleopSession(
            recorder, TeleopIntegrator(limits, frame=str(p["teleop_frame"])), task=str(p["task"])
        )
        self._status_streams = [*self._cameras, "ee_pose", "joint_states", "gripper", "input"]

        sensors = MutuallyExclusiveCallbackGroup()  # callbacks may run in parallel with the timer
        for camera in self._cameras:
            topic = str(p["camera_topic_format"]).format(camera=camera)
            self.create_subscription(Image, topic, lambda msg, c=camera: self._on_image(c, msg), qos.image_qos())
        self.create_subscription(
            PoseStamped, p["current_pose_topic"], self._on_pose, qos.robot_state_qos(), callback_group=sensors
        )
        self.create_subscription(
            JointState, p["measured_joint_states_topic"], self._on_joints, qos.robot_state_qos(), callback_group=sensors
        )
        # Best effort matches both reliable and best-effort publishers (drivers differ).
        self.create_subscription(JointState, p["gripper_joint_states_topic"], self._on_gripper, qos.robot_state_qos())
        self.create_subscription(Joy, p["joy_topic"], self._on_joy, qos.robot_state_qos())
        if self._input_mode == "twist":
            self.create_subscription(Twist, p["twist_topic"], self._on_twist, qos.robot_state_qos())

        self._target_pub = self.create_publisher(PoseStamped, p["target_pose_topic"], qos.reliable_qos())
        self._gripper_pub = self.create_publisher(Float64, p["gripper_command_topic"], qos.reliable_qos())
        control = MutuallyExclusiveCallbackGroup()  # the control loop never waits for a service
        self.create_timer(1.0 / float(p["control_rate_hz"]), self._on_control, callback_group=control)
        lifecycle = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, "~/start_episode", self._on_start, callback_group=lifecycle)
        self.create_service(Trigger, "~/stop_episode", self._on_stop, callback_group=lifecycle)
        self.create_service(Trigger, "~/discard_episode", self._on_discard, callback_group=lifecycle)
        self.create_service(Trigger, "~/resync", self._on_resync, callback_group=lifecycle)

        self._tty = bool(p["keyboard"]) and sys.stdin.isatty()
        self._status_period = float(p["status_period_s"])
        if self._status_period > 0:
            self.create_timer(self._status_period, self._on_status, callback_group=lifecycle)
        self._stop = threading.Event()
        self._keyboard: threading.Thread | None = None
        if self._tty:
            self._keyboard = threading.Thread(target=self._read_keys, name="teleop_keys", daemon=True)
            self._keyboard.start()
            self._print(KEY_HELP)
        pending = recorder.pending_episodes()
        if pending:
            self.get_logger().warning(
                f"{self.store.path} has interrupted episodes {pending}: run "
                f"`python -m data_collection.cli repair {self.store.path}` to recover them"
            )
        self.get_logger().info(f"recording into {self.store.path} ({len(self.store)} episodes)")

    # ---------------------------------------------------------------- helpers

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _stamp(self, header: Any) -> float:
        stamp = time_to_seconds(header.stamp)
        return stamp if stamp > 0 else self._now()

    def _note(self, stream: str, error: Exception) -> None:
        self.session.recorder.note_problem(stream, "decode", f"stream {stream!r}: {error}")

    # ---------------------------------------------------------------- inputs

    def _on_image(self, camera: str, msg: Image) -> None:
        try:
            image = msg_to_image(msg)
        except ConversionError as error:
            self._note(camera, error)
            return
        self.session.on_sample(camera, self._stamp(msg.header), image, "rgb8")

    def _on_pose(self, msg: PoseStamped) -> None:
        try:
            position, quat = msg_to_pose(msg)
        except ConversionError as error:
            self._note("ee_pose", error)
            return
        self.session.on_pose(self._stamp(msg.header), np.concatenate([position, quat]))

    def _on_joints(self, msg: JointState) -> None:
        try:
            vector = joint_state_vector(msg.name, msg.position, msg.velocity, self._joint_names)
        except ValueError as error:
            self._note("joint_states", error)
            return
        self.session.on_sample("joint_states", self._stamp(msg.header), vector)

    def _on_gripper(self, msg: JointState) -> None:
        try:
            fingers = joint_state_vector(msg.name, msg.position, [], self._finger_names)
        except ValueError as error:
            self._note("gripper", error)
            return
        self.session.on_gripper_width(self._stamp(msg.header), float(fingers[: len(self._finger_names)].sum()))

    def _on_twist(self, msg: Twist) -> None:
        linear, angular = scale_twist(
            (msg.linear.x, msg.linear.y, msg.linear.z),
            (msg.angular.x, msg.angular.y, msg.angular.z),
            *self._twist_scales,
        )
        self.session.on_motion(self._now(), linear, angular)

    def _on_joy(self, msg: Joy) -> None:
        now = self._now()
        if self._input_mode == "joy":
            reading = joy_to_input(msg.axes, msg.buttons, self._joy)
            self.session.on_motion(now, reading.linear, reading.angular)
            self.session.on_gripper_input(now, reading.gripper)
        else:
            self.session.on_gripper_input(now, gripper_from_buttons(msg.buttons, self._joy))

    # ---------------------------------------------------------------- control

    def _on_control(self) -> None:
        now = self._now()
        command = self.session.control_step(now)
        if command is None:
            return
        self._target_pub.publish(pose_to_msg(command[:3], command[3:7], now, self._frame_id))
        self._gripper_pub.publish(Float64(data=float(command[7])))

    # ---------------------------------------------------------------- lifecycle

    def _respond(self, response: Trigger.Response, outcome: tuple[bool, str]) -> Trigger.Response:
        response.success, response.message = outcome
        # rclpy fixes a log call site's severity on first use: one call site per severity.
        if outcome[0]:
            self.get_logger().info(outcome[1])
        else:
            self.get_logger().warning(outcome[1])
        return response

    def _on_start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._respond(response, self.session.start(self._now()))

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._respond(response, self.session.stop(success=self._stop_marks_success))

    def _on_discard(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._respond(response, self.session.discard())

    def _on_resync(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        ok = self.session.resync(self._now())
        return self._respond(
            response, (ok, "target restarted from the measured pose" if ok else "no measured pose yet")
        )

    # ---------------------------------------------------------------- terminal

    def _print(self, text: str) -> None:
        # Clear the status line first so messages do not mix with it.
        sys.stderr.write("\r\033[K" + text + "\n")
        sys.stderr.flush()

    def _on_status(self) -> None:
        line = self.session.status_line(self._now(), self._status_streams)
        if self._tty:
            sys.stderr.write("\r\033[K" + line)
            sys.stderr.flush()
        else:
            self.get_logger().info(line, throttle_duration_sec=5.0)

    def _read_keys(self) -> None:
        """Single key presses from the terminal (cbreak mode, restored on exit)."""
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    continue
                key = os.read(fd, 1).decode(errors="ignore")
                message = self.session.handle_key(key, self._now())
                if message:
                    self._print(message)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    @property
    def quit_requested(self) -> bool:
        return self.session.quit_requested

    def shutdown(self) -> None:
        """Stop the key reader; a running episode stays staged (resume or repair it)."""
        self._stop.set()
        if self._keyboard is not None:
            self._keyboard.join(timeout=1.0)
        if self.session.recorder.state != "idle":
            self.get_logger().warning(
                f"episode {self.session.recorder.episode_id} was not stopped; it stays in staging: "
                f"`python -m data_collection.cli repair {self.store.path}` recovers it"
            )
        self.session.close()


def _parse_cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="teleop_recorder_node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Example: ros2 run df_policy teleop_recorder_node --ros-args "
            "--params-file config/teleop_recorder.yaml -p store_path:=/data/swap_fruit.zarr"
        ),
    )
    parser.parse_args(argv)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv if args is None else args
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.utilities import remove_ros_args

    _parse_cli(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    node = TeleopRecorderNode()
    executor = MultiThreadedExecutor(num_threads=3)
    spin_until_shutdown(node, executor, should_stop=lambda: node.quit_requested, on_stop=node.shutdown)


if __name__ == "__main__":
    main()
