"""The QoS each kind of topic uses, as on the real robot (DESIGN.md). The topic names
are the robot description's (robots/descriptions/*.yaml), never restated here.

| topic (robot description key)                 | type        | QoS                   |
|-----------------------------------------------|-------------|-----------------------|
| cameras[].topic                               | Image rgb8  | reliable, last 5      |
| state.current_pose_topic                      | PoseStamped | best effort (sensor)  |
| state.measured_joint_states_topic             | JointState  | best effort (sensor)  |
| state.gripper_joint_states_topic              | JointState  | reliable, last 10     |
| command.topic (sink pose: in at the robot)    | PoseStamped | reliable, depth 1     |
| gripper.topic (sink width_topic: simulation)  | Float64 (m) | reliable, last 10     |

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


def camera_frame_id(camera: str) -> str:
    """The frame a camera's images are stamped in (realsense2_camera's naming)."""
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
