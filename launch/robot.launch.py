"""The robot side of df-stack, real or simulated: included by swap_fruit.launch.py and
record_demos.launch.py.

use_sim:=false (the robot): franka_ros2's bringup (franka_bringup/franka.launch.py), one
RealSense driver per camera (realsense2_camera/rs_launch.py, topics
/camera/<name>/color/image_raw) and a spawner for the controller that takes the streamed
target (a Cartesian impedance controller configured in franka_bringup's controller
manager).
use_sim:=true: df_policy's simulated FR3 running a task (sim_task: a task config with a
`sim:` section), with its robot description's cameras, on the same topics.

ros2 launch df_policy robot.launch.py use_sim:=true
ros2 launch df_policy robot.launch.py use_sim:=true sim_task:=/path/my_task.yaml
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

ARGUMENTS = {
    "use_sim": ("false", "true: the simulated FR3 (sim_robot_node) instead of the robot, cameras and controller"),
    "robot_type": ("fr3", "fr3 or fer (Panda): passed to franka_bringup, selects joint names and limits"),
    "robot_ip": ("172.16.0.2", "the robot's FCI address (unused with use_sim:=true)"),
    "namespace": ("", "ROS namespace of the robot's nodes and topics (franka_bringup's namespace)"),
    "load_gripper": ("true", "start the franka_gripper node with the arm"),
    "controller": ("cartesian_impedance_controller", "controller to spawn that takes the target_pose topic"),
    "front_camera": ("front", "name of the front camera (topics /camera/<name>/color/image_raw)"),
    "front_camera_serial": ("", "serial number of the front RealSense ('' = the first one found)"),
    "wrist_camera": ("wrist", "name of the wrist camera"),
    "wrist_camera_serial": ("", "serial number of the wrist RealSense"),
    "camera_profile": ("640,480,30", "RealSense colour profile: width,height,fps"),
    "sim_task": ("swap_fruit_sim", "simulation: the task config sim_robot_node runs (a name or a YAML path)"),
    "sim_robot_description": ("", "simulation: the simulated robot's description (name or YAML path; '' = the task's)"),
    "sim_seed": ("0", "simulation: seed of the first episode"),
    "sim_real_time_factor": ("1.0", "simulation: 1 = real time"),
    "fault_plan_file": ("", "simulation: JSON fault plan (sim.faults) applied from the first episode"),
}


def _realsense(camera: str) -> IncludeLaunchDescription:
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("realsense2_camera"), "launch", "rs_launch.py"])
        ),
        launch_arguments={
            "camera_namespace": "camera",
            "camera_name": LaunchConfiguration(f"{camera}_camera"),
            "serial_no": LaunchConfiguration(f"{camera}_camera_serial"),
            "rgb_camera.color_profile": LaunchConfiguration("camera_profile"),
            "enable_depth": "false",
        }.items(),
        condition=UnlessCondition(LaunchConfiguration("use_sim")),
    )


def generate_launch_description() -> LaunchDescription:
    sim_config = os.path.join(get_package_share_directory("df_policy"), "config", "sim_robot.yaml")
    use_sim = LaunchConfiguration("use_sim")
    franka = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("franka_bringup"), "launch", "franka.launch.py"])
        ),
        launch_arguments={
            "robot_type": LaunchConfiguration("robot_type"),
            "robot_ip": LaunchConfiguration("robot_ip"),
            "namespace": LaunchConfiguration("namespace"),
            "load_gripper": LaunchConfiguration("load_gripper"),
            "use_fake_hardware": "false",
        }.items(),
        condition=UnlessCondition(use_sim),
    )
    controller = Node(
        package="controller_manager",
        executable="spawner",
        namespace=LaunchConfiguration("namespace"),
        arguments=[LaunchConfiguration("controller"), "--controller-manager-timeout", "30"],
        output="screen",
        condition=UnlessCondition(use_sim),
    )
    simulator = GroupAction(
        [
            PushRosNamespace(LaunchConfiguration("namespace")),
            Node(
                package="df_policy",
                executable="sim_robot_node",
                name="sim_robot",
                output="screen",
                parameters=[
                    sim_config,
                    {
                        "task": LaunchConfiguration("sim_task"),
                        "robot_description": LaunchConfiguration("sim_robot_description"),
                        "seed": LaunchConfiguration("sim_seed"),
                        "real_time_factor": LaunchConfiguration("sim_real_time_factor"),
                        "fault_plan_file": LaunchConfiguration("fault_plan_file"),
                    },
                ],
            ),
        ],
        condition=IfCondition(use_sim),
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [franka, _realsense("front"), _realsense("wrist"), controller, simulator]
    )
