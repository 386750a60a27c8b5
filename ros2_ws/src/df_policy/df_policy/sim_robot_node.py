"""sim_robot_node: the simulated FR3 and its cameras running a task, speaking the real robot's topics.

Thin glue around `sim.hil.SimulatedRobot`: a worker thread ticks the simulation at the
control rate, paced to wall time by `real_time_factor` (0 = as fast as possible), and
publishes what each tick returns; subscriptions forward arm targets and gripper
widths; services reset an episode and report success. QoS: df_policy.qos.

The task (scene, initial state per seed, success test) is a task config's `sim:`
section (evaluation.sim_task). The robot's facts (cameras with their topics, native
sizes and rates, state topics and rates, the command and gripper topics, the base frame)
come from its robot description, the same file the policy node and the recorder read:
the task's own, or the `robot_description` parameter. Arm commands arrive as the
description's command sink says: PoseStamped targets (`pose`) or JointTrajectory
(`joint_trajectory`, the final point reached at its time from start).

Parameters (config/sim_robot.yaml or --ros-args -p name:=value):
  task                 a task config: a name in training/conf/task/ or a YAML path (default swap_fruit_sim)
  robot_description    robots/descriptions/<name>.yaml or a path ('' = the task's robot)
  seed                 seed of the next episode; each reset uses it and then adds 1
  real_time_factor     1.0 = real time, 2.0 = twice as fast, 0 = unpaced
  target_interpolation_s   a new target pose is reached over this long
  clip_targets         clip targets outside the workspace instead of rejecting them
  fault_plan           a FaultPlan as JSON (applies from the next reset; "" = none)
  fault_plan_file      path to a JSON fault plan (used when fault_plan is empty)
Services: ~/reset_episode (std_srvs/Trigger; message = episode info as JSON),
          ~/report_success (std_srvs/Trigger; success flag, message = report as JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from df_policy import qos
from df_policy.conversions import (
    ConversionError,
    image_to_msg,
    joint_state_to_msg,
    msg_to_joint_target,
    msg_to_pose,
    pose_to_msg,
)
from df_policy.node_main import spin_until_shutdown
from evaluation.sim_task import DEFAULT_TASK, SimTaskError, load_sim_task
from robots.description import RobotDescriptionError, load_robot_description
from sim.faults import FaultPlan
from sim.franka import FINGER_JOINT_NAMES, JOINT_NAMES
from sim.hil import SimulatedRobot, TickOutput

PARAMETER_DEFAULTS: dict[str, Any] = {
    "task": DEFAULT_TASK,
    "robot_description": "",
    "seed": 0,
    "real_time_factor": 1.0,
    "target_interpolation_s": 0.1,
    "clip_targets": False,
    "fault_plan": "",
    "fault_plan_file": "",
}
# Fixed at start-up: a change would need a new simulator.
FIXED_PARAMETERS = ("task", "robot_description", "target_interpolation_s", "clip_targets")


class SimRobotError(RuntimeError):
    """The simulated robot cannot be built from this task and description; the message says why."""


def load_fault_plan(text: str, path: str) -> FaultPlan | None:
    """The plan from a JSON string, else from a JSON file, else None."""
    if text.strip():
        return FaultPlan.from_json(text)
    if path.strip():
        return FaultPlan.from_json(Path(path).read_text())
    return None


class SimRobotNode(Node):
    def __init__(self, name: str = "sim_robot", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        for key, value in PARAMETER_DEFAULTS.items():
            self.declare_parameter(key, value)
        p = {key: self.get_parameter(key).value for key in PARAMETER_DEFAULTS}
        try:
            setup = load_sim_task(str(p["task"]))
            if str(p["robot_description"]).strip():
                setup = setup.with_robot(load_robot_description(str(p["robot_description"])))
        except (SimTaskError, RobotDescriptionError) as error:
            raise SimRobotError(str(error)) from error
        robot = setup.robot
        if robot.gripper.sink != "width_topic":
            raise SimRobotError(
                f"robot description {robot.source}: the simulator takes gripper widths (gripper.sink 'width_topic'), "
                f"got {robot.gripper.sink!r}"
            )
        self.description = robot
        self.setup = setup

        self._lock = threading.Lock()
        try:
            self._robot = SimulatedRobot(
                setup.env_config(clip_targets=bool(p["clip_targets"])),
                setup.hil_config(target_interpolation_s=float(p["target_interpolation_s"])),
                setup.task,
            )
        except ValueError as error:
            raise SimRobotError(f"task {setup.name}, robot description {robot.source}: {error}") from error
        self._robot.set_fault_plan(load_fault_plan(p["fault_plan"], p["fault_plan_file"]))
        self._frame_id = robot.frame_id
        self._real_time_factor = float(p["real_time_factor"])
        self._pacing_reset = True

        state = robot.state
        self._pose_pub = self.create_publisher(PoseStamped, state.current_pose_topic, qos.robot_state_qos())
        self._joints_pub = self.create_publisher(JointState, state.measured_joint_states_topic, qos.robot_state_qos())
        self._gripper_pub = self.create_publisher(JointState, state.gripper_joint_states_topic, qos.reliable_qos())
        self._image_pubs = {
            camera.name: self.create_publisher(Image, camera.topic, qos.image_qos()) for camera in robot.cameras
        }
        if robot.command.sink == "joint_trajectory":
            self.create_subscription(
                JointTrajectory, robot.command.topic, self._on_joint_trajectory, qos.reliable_qos()
            )
        else:
            self.create_subscription(PoseStamped, robot.command.topic, self._on_target_pose, qos.reliable_qos())
        self.create_subscription(Float64, robot.gripper.topic, self._on_gripper_command, qos.reliable_qos())
        self.create_service(Trigger, "~/reset_episode", self._on_reset)
        self.create_service(Trigger, "~/report_success", self._on_report_success)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset_episode()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the simulation thread (main() does this; tests may too)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sim_robot", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the simulation thread; it frees the renderer it owns on its way out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        else:
            self._robot.close()

    @property
    def robot(self) -> SimulatedRobot:
        return self._robot

    # ------------------------------------------------------------------ callbacks

    def _on_target_pose(self, msg: PoseStamped) -> None:
        if msg.header.frame_id not in ("", self._frame_id):
            self.get_logger().warning(
                f"ignoring target pose in frame {msg.header.frame_id!r}; expected {self._frame_id!r}",
                throttle_duration_sec=1.0,
            )
            return
        try:
            position, quat = msg_to_pose(msg)
            with self._lock:
                self._robot.set_target_pose(position, quat)
        except (ConversionError, ValueError) as error:
            self.get_logger().error(f"rejected target pose: {error}", throttle_duration_sec=1.0)

    def _on_joint_trajectory(self, msg: JointTrajectory) -> None:
        try:
            joints, duration = msg_to_joint_target(msg, JOINT_NAMES)
            with self._lock:
                # A point due at once (time_from_start 0) is reached over the node's
                # target_interpolation_s, as a pose target is: the servos cannot jump.
                self._robot.set_joint_target(joints, duration if duration > 0 else None)
        except (ConversionError, ValueError) as error:
            self.get_logger().error(f"rejected joint trajectory: {error}", throttle_duration_sec=1.0)

    def _on_gripper_command(self, msg: Float64) -> None:
        try:
            with self._lock:
                self._robot.set_gripper_width(float(msg.data))
        except ValueError as error:
            self.get_logger().error(f"rejected gripper command: {error}", throttle_duration_sec=1.0)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            info = self._reset_episode()
        except (ValueError, OSError) as error:
            response.success = False
            response.message = f"reset failed: {error}"
            return response
        response.success = True
        response.message = json.dumps(info)
        return response

    def _on_report_success(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            report = self._robot.success_report()
        response.success = bool(report["success"])
        response.message = json.dumps(report)
        return response

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        fixed = set(FIXED_PARAMETERS)
        text = self.get_parameter("fault_plan").value
        path = self.get_parameter("fault_plan_file").value
        for param in params:
            if param.name in fixed:
                return SetParametersResult(
                    successful=False, reason=f"{param.name} is fixed at start-up; restart the node"
                )
            if param.name == "real_time_factor":
                self._real_time_factor = float(param.value)
                self._pacing_reset = True
            if param.name == "fault_plan":
                text = str(param.value)
            if param.name == "fault_plan_file":
                path = str(param.value)
            if param.name == "seed" and int(param.value) < 0:
                return SetParametersResult(successful=False, reason="seed must be >= 0")
        if any(param.name in ("fault_plan", "fault_plan_file") for param in params):
            try:
                plan = load_fault_plan(text, path)
                with self._lock:
                    self._robot.set_fault_plan(plan)
            except (ValueError, OSError) as error:
                return SetParametersResult(successful=False, reason=f"bad fault plan: {error}")
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- simulation

    def _reset_episode(self) -> dict[str, Any]:
        seed = int(self.get_parameter("seed").value)
        with self._lock:
            info = self._robot.reset(seed)
            # Message stamps: ROS time at the episode start + sim time (wall-clock-like
            # in real time; a delayed frame keeps its older capture stamp).
            self._stamp_origin = self.get_clock().now().nanoseconds * 1e-9
            self._pacing_reset = True
        self.set_parameters([Parameter("seed", value=seed + 1)])
        self.get_logger().info(f"episode seed {seed} of {self.setup.name}: {info.describe()}")
        return info.to_dict()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            with self._lock:
                self._robot.close()  # the OpenGL context belongs to this thread

    def _loop(self) -> None:
        period = self._robot.control_period_s
        wall_anchor = time.monotonic()
        sim_elapsed = 0.0
        while not self._stop.is_set():
            with self._lock:
                output = self._robot.tick()
                origin = self._stamp_origin
                if self._pacing_reset:
                    wall_anchor, sim_elapsed = time.monotonic(), 0.0
                    self._pacing_reset = False
            try:
                self._publish(output, origin)
            except Exception as error:  # a shutting-down context must not kill the loop noisily
                if self._stop.is_set() or not rclpy.ok(context=self.context):
                    return
                raise error
            sim_elapsed += period
            factor = self._real_time_factor
            if factor > 0:
                delay = wall_anchor + sim_elapsed / factor - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -0.5:
                    # Far behind wall time (slow machine): re-anchor instead of racing.
                    wall_anchor, sim_elapsed = time.monotonic(), 0.0
            else:
                time.sleep(0)  # unpaced: still let the executor thread run

    def _publish(self, output: TickOutput, origin: float) -> None:
        if output.state is not None:
            state = output.state.state
            stamp = origin + output.state.time
            self._pose_pub.publish(pose_to_msg(state.ee_position, state.ee_quat_xyzw, stamp, self._frame_id))
            self._joints_pub.publish(
                joint_state_to_msg(JOINT_NAMES, state.joint_positions, stamp, velocities=state.joint_velocities)
            )
        if output.gripper is not None:
            self._gripper_pub.publish(
                joint_state_to_msg(
                    FINGER_JOINT_NAMES,
                    output.gripper.finger_positions,
                    origin + output.gripper.time,
                )
            )
        for frame in output.cameras:
            self._image_pubs[frame.camera].publish(
                image_to_msg(frame.image, origin + frame.stamp, qos.camera_frame_id(frame.camera))
            )


def _parse_cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="sim_robot_node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: ros2 run df_policy sim_robot_node --ros-args -p real_time_factor:=2.0",
    )
    parser.parse_args(argv)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv if args is None else args
    from rclpy.utilities import remove_ros_args

    _parse_cli(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    try:
        node = SimRobotNode()
    except SimRobotError as error:
        from rclpy.logging import get_logger

        get_logger("sim_robot").fatal(str(error))
        rclpy.shutdown()
        sys.exit(2)
    node.start()
    spin_until_shutdown(node, SingleThreadedExecutor(), on_stop=node.stop)


if __name__ == "__main__":
    main()
