"""Where the nodes' commands go: pluggable arm and gripper sinks, as the robot description
names them (the policy node uses every kind; the teleop recorder the pose sink and the
same gripper sinks: one gripper interface for both).

Arm sinks take a safe `PoseCommand` or `JointCommand` (policy.commanding) at the command rate:
- `pose`: geometry_msgs/PoseStamped for a Cartesian impedance controller (default
  `/target_pose`); the simulated robot takes the same topic.
- `joint_trajectory`: trajectory_msgs/JointTrajectory for a JointTrajectoryController,
  one point per command: a joint-space policy's joints, or a pose solved by
  damped-least-squares IK on Franka's published kinematics (robots.franka: FR3 and Panda
  share them; joint limits differ), seeded from the measured joints.
Gripper sinks take the commanded width (m) and decide when to send:
- `width_topic`: std_msgs/Float64 (the simulator's `/franka_gripper/width_command`).
- `franka_action`: franka_gripper's move / grasp actions on the robot (franka_msgs is
  imported only when this sink is chosen: it is not installable everywhere).
- `none`: the gripper is not commanded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from df_policy import qos
from df_policy.conversions import pose_to_msg
from policy.commanding import JointCommand, PoseCommand
from policy.geometry import quat_to_matrix
from robots.description import GripperCommandSink
from robots.franka import franka_arm, solve_ik


class SinkError(RuntimeError):
    """A sink cannot be built (unknown kind, missing package); the message says what to do."""


# ------------------------------------------------------------------------- arm sinks


class PoseStampedSink:
    """PoseStamped targets for a Cartesian impedance controller (or the simulator)."""

    def __init__(self, node: Node, topic: str, frame_id: str) -> None:
        self.topic = topic
        self.frame_id = frame_id
        self._publisher = node.create_publisher(PoseStamped, topic, qos.reliable_qos(depth=1))

    def send(self, command: PoseCommand) -> None:
        self._publisher.publish(pose_to_msg(command.position, command.quat_xyzw, command.stamp, self.frame_id))


class JointTrajectorySink:
    """One-point JointTrajectory per command for a JointTrajectoryController (franka_ros2's
    joint_trajectory_controller): a joint-space command as it is, a pose command through IK."""

    def __init__(
        self,
        node: Node,
        topic: str,
        robot_type: str,
        measured_joints: Callable[[], np.ndarray | None],
        point_time_s: float,
    ) -> None:
        try:
            arm = franka_arm(robot_type)
        except ValueError as error:
            raise SinkError(str(error)) from error
        self.joint_names = list(arm.joint_names)
        self.limits = arm.limits
        self._measured_joints = measured_joints
        self._point_time = Duration(sec=int(point_time_s), nanosec=int((point_time_s % 1.0) * 1e9))
        self._last_solution: np.ndarray | None = None
        self._publisher = node.create_publisher(JointTrajectory, topic, qos.reliable_qos(depth=1))
        self._logger = node.get_logger()

    def send(self, command: PoseCommand | JointCommand) -> None:
        if isinstance(command, JointCommand):  # a joint-space policy: the joints as they are
            q = np.asarray(command.joints, dtype=np.float64)
        else:
            seed = self._last_solution if self._last_solution is not None else self._measured_joints()
            if seed is None:
                self._logger.warning("joint_trajectory sink: no measured joint state yet", throttle_duration_sec=1.0)
                return
            q = solve_ik(command.position, quat_to_matrix(command.quat_xyzw), seed, self.limits)
            self._last_solution = q
        msg = JointTrajectory()
        msg.joint_names = list(self.joint_names)
        msg.points = [JointTrajectoryPoint(positions=[float(v) for v in q], time_from_start=self._point_time)]
        self._publisher.publish(msg)

    def reset(self) -> None:
        self._last_solution = None


# ---------------------------------------------------------------------- gripper sinks


class GripperWidthTopicSink:
    """Float64 width (m) on a topic, sent when it changes by more than `deadband_m` or
    at least every `refresh_s` (so a late subscriber still learns the target)."""

    def __init__(self, node: Node, topic: str, deadband_m: float = 0.002, refresh_s: float = 0.5) -> None:
        self._publisher = node.create_publisher(Float64, topic, qos.reliable_qos())
        self.deadband_m = deadband_m
        self.refresh_s = refresh_s
        self._last: float | None = None
        self._last_time = 0.0

    def send(self, width: float) -> None:
        now = time.monotonic()
        if (
            self._last is not None
            and abs(width - self._last) < self.deadband_m
            and now - self._last_time < self.refresh_s
        ):
            return
        self._publisher.publish(Float64(data=float(width)))
        self._last, self._last_time = width, now


class FrankaGripperActionSink:
    """franka_gripper move / grasp goals: a width below `grasp_below_m` means "grasp"
    (close with force until the fingers stop), anything else "move to this width".
    A new goal goes out only when the commanded state changes (grasp vs open) or the
    open width moves by more than `deadband_m`: the hand takes ~1 s per motion."""

    def __init__(
        self,
        node: Node,
        namespace: str,
        grasp_below_m: float = 0.02,
        deadband_m: float = 0.01,
        speed_m_s: float = 0.1,
        force_n: float = 20.0,
    ) -> None:
        try:
            from franka_msgs.action import Grasp, Move
            from rclpy.action import ActionClient
        except ImportError as error:
            raise SinkError(
                "gripper.sink 'franka_action' needs franka_msgs (part of franka_ros2); install it on the robot "
                "computer or choose gripper.sink 'width_topic' or 'none' in the robot description"
            ) from error
        self._grasp_type, self._move_type = Grasp, Move
        self._grasp = ActionClient(node, Grasp, f"{namespace.rstrip('/')}/grasp")
        self._move = ActionClient(node, Move, f"{namespace.rstrip('/')}/move")
        self.grasp_below_m = grasp_below_m
        self.deadband_m = deadband_m
        self.speed_m_s = speed_m_s
        self.force_n = force_n
        self._last: float | None = None
        self._logger = node.get_logger()

    def send(self, width: float) -> None:
        grasping = width < self.grasp_below_m
        if self._last is not None:
            was_grasping = self._last < self.grasp_below_m
            if grasping == was_grasping and (grasping or abs(width - self._last) < self.deadband_m):
                return
        if grasping:
            goal = self._grasp_type.Goal()
            goal.width, goal.speed, goal.force = 0.0, self.speed_m_s, self.force_n
            goal.epsilon.inner, goal.epsilon.outer = 0.08, 0.08  # succeed on any object size
            client = self._grasp
        else:
            goal = self._move_type.Goal()
            goal.width, goal.speed = float(width), self.speed_m_s
            client = self._move
        if not client.server_is_ready():
            self._logger.warning("franka_gripper action server not ready", throttle_duration_sec=2.0)
            return
        client.send_goal_async(goal)
        self._last = width


class NoGripperSink:
    def send(self, width: float) -> None:
        return None


GripperSink = GripperWidthTopicSink | FrankaGripperActionSink | NoGripperSink


def make_gripper_sink(node: Node, gripper: GripperCommandSink) -> GripperSink:
    """The gripper sink a robot description's `gripper` section names. Raises SinkError
    when it cannot be built (franka_msgs missing for `franka_action`)."""
    if gripper.sink == "width_topic":
        return GripperWidthTopicSink(node, gripper.topic)
    if gripper.sink == "franka_action":
        return FrankaGripperActionSink(node, gripper.action_namespace)
    return NoGripperSink()
