"""Run the DF policy on the swap-fruit task: the robot (or the simulator) and policy_node.

On the robot (use_sim:=false) this starts franka_ros2's bringup, one RealSense driver per
camera and the controller that takes the streamed target (robot.launch.py), then the
policy node with config/policy_node.yaml. The checkpoint brings the policy's facts, the
robot description (robots/descriptions/fr3_real.yaml on the robot, fr3_sim.yaml with
use_sim:=true, or robot_description:=<your file>) the robot's: topics, sinks and safety
limits. Commanding starts disabled unless start_enabled:=true:

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
    "checkpoint": ("", "policy checkpoint directory (required): the policy and its cameras, sizes and rates"),
    "robot_description": ("", "robot description name or YAML path ('' = fr3_sim with use_sim, else fr3_real)"),
    "front_camera": ("front", "name of the front camera (topics /camera/<name>/color/image_raw)"),
    "front_camera_serial": ("", "serial number of the front RealSense ('' = the first one found)"),
    "wrist_camera": ("wrist", "name of the wrist camera"),
    "wrist_camera_serial": ("", "serial number of the wrist RealSense"),
    "start_enabled": ("false", "true: command the arm at once; false: wait for ~/enable"),
}


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("df_policy")
    policy_config = os.path.join(share, "config", "policy_node.yaml")
    arg = LaunchConfiguration
    robot = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "robot.launch.py")),
        launch_arguments={
            # The simulated robot is the one the policy is told about.
            "sim_robot_description": PythonExpression(["'", arg("robot_description"), "' or 'fr3_sim'"]),
            **{
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
            },
        }.items(),
    )
    policy = Node(
        package="df_policy",
        executable="policy_node",
        name="policy_node",
        namespace=arg("namespace"),
        output="screen",
        # A node whose executor got stuck exits with code 1 (its stall_timeout_s watchdog):
        # launch starts a fresh one, which waits disabled unless start_enabled is true.
        respawn=True,
        respawn_delay=2.0,
        parameters=[
            policy_config,
            {
                "checkpoint": arg("checkpoint"),
                "robot_description": PythonExpression(
                    [
                        "'",
                        arg("robot_description"),
                        "' or ('fr3_sim' if '",
                        arg("use_sim"),
                        "'.lower() == 'true' else 'fr3_real')",
                    ]
                ),
                "start_enabled": ParameterValue(arg("start_enabled"), value_type=bool),
                # In simulation the policy runs on the simulator's clock (/clock).
                "use_sim_time": ParameterValue(arg("use_sim"), value_type=bool),
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
