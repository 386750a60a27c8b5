"""Default topic names and the QoS each one uses, as on the real robot (DESIGN.md).

| topic                                                 | type        | QoS                   |
|-------------------------------------------------------|-------------|-----------------------|
| /camera/<name>/color/image_raw                        | Image rgb8  | reliable, last 5      |
| /franka_robot_state_broadcaster/current_pose          | PoseStamped | best effort (sensor)  |
| /franka_robot_state_broadcaster/measured_joint_states | JointState  | best effort (sensor)  |
| /franka_gripper/joint_states                          | JointState  | reliable, last 10     |
| /target_pose (in)                                     | PoseStamped | reliable, last 10     |
| /franka_gripper/width_command (in, simulation only)   | Float64 (m) | reliable, last 10     |

Best-effort state topics: a reliable subscriber silently receives nothing from them,
exactly as with franka_ros2; subscribe with `qos_profile_sensor_data`. Reliable
publishers reach both reliable and best-effort subscribers.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

FRAME_ID = "fr3_link0"
CURRENT_POSE_TOPIC = "/franka_robot_state_broadcaster/current_pose"
MEASURED_JOINT_STATES_TOPIC = "/franka_robot_state_broadcaster/measured_joint_states"
GRIPPER_JOINT_STATES_TOPIC = "/franka_gripper/joint_states"
TARGET_POSE_TOPIC = "/target_pose"
GRIPPER_WIDTH_COMMAND_TOPIC = "/franka_gripper/width_command"


def camera_topic(camera: str) -> str:
    return f"/camera/{camera}/color/image_raw"


def camera_frame_id(camera: str) -> str:
    return f"{camera}_color_optical_frame"


def image_qos() -> QoSProfile:
    """RealSense driver default: reliable; a short queue so a slow reader lags, not grows."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=5,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def robot_state_qos() -> QoSProfile:
    """franka_robot_state_broadcaster's convenience topics: best effort."""
    return qos_profile_sensor_data


def reliable_qos(depth: int = 10) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )
