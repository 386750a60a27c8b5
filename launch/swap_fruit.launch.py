"""Run the DF policy on the swap-fruit task: the robot (or the simulator) and policy_node.

On the robot (use_sim:=false) this starts franka_ros2's bringup, one RealSense driver per
camera and the controller that takes the streamed target (robot.launch.py), then the
policy node with config/policy_node.yaml, streaming PoseStamped targets and franka_gripper
goals. With use_sim:=true the simulated FR3 replaces all three and the gripper width goes
to the simulator's topic. Commanding starts disabled unless start_enabled:=true:

ros2 launch df_policy swap_fruit.launch.py use_sim:=true checkpoint:=/data/ckpt/swap_fruit
ros2 service call /policy_node/enable std_srvs/srv/SetBool "{data: true}"
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

ARGUMENTS = {
    "use_sim": ("false", "true: the simulated FR3 instead of the robot, cameras and controller"),
    "robot_type": ("fr3", "fr3 or fer (Panda)"),
    "robot_ip": ("172.16.0.2", "the robot's FCI address (unused with use_sim:=true)"),
    "namespace": ("", "ROS namespace of the robot and the policy node"),
    "checkpoint": ("", "policy checkpoint directory (required): its cameras, image size and actions must match"),
    "image_size": ("32", "image size the checkpoint was trained at (px, square; config/policy_node.yaml)"),
    "front_camera": ("front", "name of the front camera (topics /camera/<name>/color/image_raw)"),
    "front_camera_serial": ("", "serial number of the front RealSense ('' = the first one found)"),
    "wrist_camera": ("wrist", "name of the wrist camera"),
    "wrist_camera_serial": ("", "serial number of the wrist RealSense"),
    "target_pose_topic": ("target_pose", "topic of the controller's target pose (relative: inside the namespace)"),
    "start_enabled": ("false", "true: command the arm at once; false: wait for ~/enable"),
}


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("df_policy")
    policy_config = os.path.join(share, "config", "policy_node.yaml")
    arg = LaunchConfiguration
    robot = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "robot.launch.py")),
        launch_arguments={
            name: arg(name)
            for name in (
                "use_sim",
                "robot_type",
                "robot_ip",
                "namespace",
                "front_camera",
                "front_camera_serial",
                "wrist_camera",
                "wrist_camera_serial",
            )
        }.items(),
    )
    policy = Node(
        package="df_policy",
        executable="policy_node",
        name="policy_node",
        namespace=arg("namespace"),
        output="screen",
        parameters=[
            policy_config,
            {
                "checkpoint": arg("checkpoint"),
                "image_size": ParameterValue(arg("image_size"), value_type=int),
                # A YAML list built from the two names: launch_ros parses it as a string array.
                "cameras": ParameterValue(["[", arg("front_camera"), ", ", arg("wrist_camera"), "]"]),
                "robot_type": arg("robot_type"),
                "frame_id": [arg("robot_type"), "_link0"],
                "current_pose_topic": "franka_robot_state_broadcaster/current_pose",
                "measured_joint_states_topic": "franka_robot_state_broadcaster/measured_joint_states",
                "gripper_joint_states_topic": "franka_gripper/joint_states",
                "target_pose_topic": arg("target_pose_topic"),
                "gripper_command_topic": "franka_gripper/width_command",
                "gripper_action_namespace": "franka_gripper",
                "gripper_sink": PythonExpression(
                    ["'width_topic' if '", arg("use_sim"), "'.lower() == 'true' else 'franka_action'"]
                ),
                "start_enabled": ParameterValue(arg("start_enabled"), value_type=bool),
            },
        ],
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [robot, policy]
    )
