"""teleop_recorder_node: teleoperate the arm with a SpaceMouse or joystick and record episodes.

Thin glue around `data_collection.teleop_session.TeleopSession`: subscriptions convert
messages and hand them to the session (which records them through the crash-proof
`Recorder`); a control timer integrates the device twist into a clamped target pose and
sends it with the gripper width; services and keys run the episode lifecycle.

The robot's facts come from its robot description (`robot_description`, as for
policy_node and sim_robot_node), none is restated here: the cameras (names, topics,
transport, native sizes and rates: the store's camera streams), the state topics and
rates, the joint and finger names (its robot_type), the base frame, where arm targets
and gripper widths go (command.topic, a `pose` sink; the gripper sink), and the teleop
limits: the workspace box, speed limits and gripper range of its safety limits, the
ones the policy node holds its commands to.

Subscribes:  every camera of the description (Image, or CompressedImage on
             <topic>/compressed), its current_pose (PoseStamped, best effort),
             measured joint states and gripper joint states (JointState), and the
             device: twist_topic (geometry_msgs/Twist, input:=twist) with joy_topic
             buttons for the gripper, or joy_topic axes and buttons (sensor_msgs/Joy,
             input:=joy).
Publishes:   the description's command topic (PoseStamped) and its gripper sink (a
             width topic in the simulator, franka_gripper actions on the robot), from
             the first measured pose on (so the first target is where the arm is).
Services:    ~/start_episode, ~/stop_episode (commits, success = stop_marks_success),
             ~/discard_episode, ~/resync (restart the target from the measured pose),
             all std_srvs/Trigger.
Terminal:    when stdin is a TTY: s start, e end (success), f end (failed), d discard,
             q quit, h help; a one-line live status (episode, seconds, rates, drops).

Parameters: the node's own (df_policy.settings.TeleopRecorderSettings: `--help` lists
them; config/teleop_recorder.yaml sets every one). They are read-only.
Stamps: a sensor sample keeps its header stamp (receive time if the stamp is zero); the
command and the device input are stamped with this node's clock when they are issued.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, JointState, Joy
from std_srvs.srv import Trigger

from data_collection.recorder import Recorder, RecorderConfig
from data_collection.schema import StoreSettings, robot_stream_specs
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
from df_policy.conversions import (
    ConversionError,
    camera_message,
    camera_msg_to_image,
    msg_to_pose,
    time_to_seconds,
)
from df_policy.node_main import spin_until_shutdown
from df_policy.parameters import ParameterError, declare_dataclass, parameter_help_entry
from df_policy.settings import TeleopRecorderSettings
from df_policy.sinks import PoseStampedSink, SinkError, make_gripper_sink
from policy.commanding import PoseCommand
from robots.description import RobotDescription, RobotDescriptionError, load_robot_description


class TeleopRecorderError(RuntimeError):
    """The recorder cannot start with this configuration; the message says why."""


def declared_parameter_names() -> set[str]:
    """Every parameter the node declares (besides rclpy's own use_sim_time)."""
    return {item.name for item in fields(TeleopRecorderSettings)}


def load_teleop_robot(name_or_path: str) -> RobotDescription:
    """The robot description to teleoperate: refused, naming why, unless its arm takes
    Cartesian pose targets (teleop integrates the device twist into a pose)."""
    try:
        robot = load_robot_description(name_or_path)
    except RobotDescriptionError as error:
        raise TeleopRecorderError(f"refusing to start: {error}") from error
    if robot.command.sink != "pose":
        raise TeleopRecorderError(
            f"refusing to start: robot description {robot.source} has command.sink {robot.command.sink!r}; "
            "teleoperation sends Cartesian targets and needs command.sink 'pose'"
        )
    return robot


class TeleopRecorderNode(Node):
    def __init__(self, name: str = "teleop_recorder", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        try:
            settings: TeleopRecorderSettings = declare_dataclass(self, "", TeleopRecorderSettings(), read_only=True)
        except ParameterError as error:
            raise TeleopRecorderError(f"bad parameter: {error}") from error
        self.settings = settings
        robot = self.robot = load_teleop_robot(settings.robot_description)
        arm = robot.arm
        self._cameras = list(robot.camera_names)
        self._joint_names = list(arm.joint_names)
        self._finger_names = list(arm.finger_joint_names)
        self._stop_marks_success = settings.stop_marks_success
        self._input_mode = settings.input
        self._twist_scales = (settings.twist_linear_scale, settings.twist_angular_scale)
        try:
            self._joy = JoyMapping(
                linear_axes=settings.joy_linear_axes,
                angular_axes=settings.joy_angular_axes,
                linear_scale=settings.joy_linear_scale,
                angular_scale=settings.joy_angular_scale,
                deadzone=settings.joy_deadzone,
                close_button=settings.gripper_close_button,
                open_button=settings.gripper_open_button,
            )
            limits = TeleopLimits.within(robot.safety, twist_timeout_s=settings.input_timeout_s)
            integrator = TeleopIntegrator(limits, frame=settings.teleop_frame)
        except ValueError as error:
            raise TeleopRecorderError(f"bad parameter value: {error}") from error

        self._arm_sink = PoseStampedSink(self, robot.command.topic, robot.frame_id)
        try:  # before the store opens: a robot the node cannot command leaves nothing behind
            self._gripper_sink = make_gripper_sink(self, robot.gripper)
        except SinkError as error:
            raise TeleopRecorderError(f"refusing to start: {error}") from error

        streams = robot_stream_specs(
            robot, command_rate_hz=settings.control_rate_hz, teleop_rate_hz=settings.control_rate_hz
        )
        self.store = EpisodeStore.open_or_create(Path(settings.store_path).expanduser(), StoreSettings())
        recorder = Recorder(
            self.store,
            streams,
            RecorderConfig(min_free_bytes=settings.min_free_mb * 2**20),
            robot={
                "type": robot.robot_type,
                "description": robot.name,
                "embodiment": robot.embodiment,
                "joint_names": self._joint_names,
                "base_frame": robot.frame_id,
            },
            clock=self._now,
            on_problem=lambda message: self.get_logger().warning(message),
        )
        self.session = TeleopSession(recorder, integrator, task=settings.task)
        self._status_streams = [*self._cameras, "ee_pose", "joint_states", "gripper", "input"]

        sensors = MutuallyExclusiveCallbackGroup()  # callbacks may run in parallel with the timer
        for camera in robot.cameras:
            message_type, topic = camera_message(camera)
            self.create_subscription(
                message_type, topic, lambda msg, c=camera.name: self._on_image(c, msg), qos.image_qos()
            )
        state = robot.state
        self.create_subscription(
            PoseStamped, state.current_pose_topic, self._on_pose, qos.robot_state_qos(), callback_group=sensors
        )
        self.create_subscription(
            JointState,
            state.measured_joint_states_topic,
            self._on_joints,
            qos.robot_state_qos(),
            callback_group=sensors,
        )
        # Best effort matches both reliable and best-effort publishers (drivers differ).
        self.create_subscription(JointState, state.gripper_joint_states_topic, self._on_gripper, qos.robot_state_qos())
        self.create_subscription(Joy, settings.joy_topic, self._on_joy, qos.robot_state_qos())
        if self._input_mode == "twist":
            self.create_subscription(Twist, settings.twist_topic, self._on_twist, qos.robot_state_qos())

        control = MutuallyExclusiveCallbackGroup()  # the control loop never waits for a service
        self.create_timer(1.0 / settings.control_rate_hz, self._on_control, callback_group=control)
        lifecycle = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, "~/start_episode", self._on_start, callback_group=lifecycle)
        self.create_service(Trigger, "~/stop_episode", self._on_stop, callback_group=lifecycle)
        self.create_service(Trigger, "~/discard_episode", self._on_discard, callback_group=lifecycle)
        self.create_service(Trigger, "~/resync", self._on_resync, callback_group=lifecycle)

        self._tty = settings.keyboard and sys.stdin.isatty()
        self._status_period = settings.status_period_s
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
        self.get_logger().info(
            f"recording robot {robot.name} ({robot.source}: cameras {self._cameras}, targets on "
            f"{robot.command.topic}, gripper {robot.gripper.sink}) into {self.store.path} ({len(self.store)} episodes)"
        )

    # ---------------------------------------------------------------- helpers

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _stamp(self, header: Any) -> float:
        stamp = time_to_seconds(header.stamp)
        return stamp if stamp > 0 else self._now()

    def _note(self, stream: str, error: Exception) -> None:
        self.session.recorder.note_problem(stream, "decode", f"stream {stream!r}: {error}")

    # ---------------------------------------------------------------- inputs

    def _on_image(self, camera: str, msg: Image | CompressedImage) -> None:
        try:
            image = camera_msg_to_image(msg)
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
        self._arm_sink.send(PoseCommand(now, command[:3], command[3:7], float(command[7])))
        self._gripper_sink.send(float(command[7]))

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


def parameter_help() -> str:
    """Every parameter with its default and meaning, from TeleopRecorderSettings."""
    lines = ["parameters (df_policy.settings.TeleopRecorderSettings):"]
    lines += [parameter_help_entry(item.name, item.default, item) for item in fields(TeleopRecorderSettings)]
    return "\n".join(lines)


def _parse_cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="teleop_recorder_node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=parameter_help() + "\n\nExample: ros2 run df_policy teleop_recorder_node --ros-args "
        "--params-file config/teleop_recorder.yaml -p robot_description:=fr3_real -p store_path:=/data/swap_fruit.zarr",
    )
    parser.parse_args(argv)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv if args is None else args
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.logging import get_logger
    from rclpy.utilities import remove_ros_args

    _parse_cli(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    try:
        node = TeleopRecorderNode()
    except TeleopRecorderError as error:
        get_logger("teleop_recorder").fatal(str(error))
        rclpy.shutdown()
        sys.exit(2)
    executor = MultiThreadedExecutor(num_threads=3)
    spin_until_shutdown(node, executor, should_stop=lambda: node.quit_requested, on_stop=node.shutdown)


if __name__ == "__main__":
    main()
