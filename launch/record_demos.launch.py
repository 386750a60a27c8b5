"""Record teleoperated demonstrations: the robot (or the simulator) and teleop_recorder_node.

The robot side is robot.launch.py (franka_ros2 bringup, RealSense drivers and the
target-pose controller; or the simulated FR3 with use_sim:=true). The recorder takes its
own parameters from config/teleop_recorder.yaml (or recorder_params_file:=...) and the
robot's facts (cameras, sizes, rates, topics, sinks, teleop workspace and speed limits)
from the robot description: robots/descriptions/fr3_real.yaml on the robot, fr3_sim.yaml
with use_sim:=true, or robot_description:=<your file>; the simulator is started from the
same description. The teleop device driver is started for teleop_device:=spacenav
(spacenav_node) or joy (joy_node).

ros2 launch df_policy record_demos.launch.py use_sim:=true store_path:=demos.zarr
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

from launch import LaunchDescription

ARGUMENTS = {
    "use_sim": ("false", "true: the simulated FR3 instead of the robot, cameras and controller"),
    "robot_type": ("fr3", "fr3 or fer (Panda)"),
    "robot_ip": ("172.16.0.2", "the robot's FCI address (unused with use_sim:=true)"),
    "namespace": ("", "ROS namespace of the robot and the recorder"),
    "robot_description": ("", "robot description name or YAML path ('' = fr3_sim with use_sim, else fr3_real)"),
    "front_camera": ("front", "name of the front camera (topics /camera/<name>/color/image_raw)"),
    "front_camera_serial": ("", "serial number of the front RealSense ('' = the first one found)"),
    "wrist_camera": ("wrist", "name of the wrist camera"),
    "wrist_camera_serial": ("", "serial number of the wrist RealSense"),
    "store_path": ("demos.zarr", "episode store to record into (created if missing)"),
    "task": ("swap fruit", "task name stored with every episode"),
    "teleop_device": ("spacenav", "spacenav (3Dconnexion SpaceMouse), joy (gamepad) or none"),
    "recorder_params_file": ("", "recorder parameter file; '' = df_policy's config/teleop_recorder.yaml"),
}


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("df_policy")
    default_params = os.path.join(share, "config", "teleop_recorder.yaml")
    arg = LaunchConfiguration
    device = arg("teleop_device")
    robot_description = PythonExpression(
        ["'", arg("robot_description"), "' or ('fr3_sim' if '", arg("use_sim"), "'.lower() == 'true' else 'fr3_real')"]
    )
    robot = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "robot.launch.py")),
        launch_arguments={
            # The simulated robot is the one the recorder is told about.
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
    params_file = PythonExpression(["'", arg("recorder_params_file"), "' or '", default_params, "'"])
    recorder = Node(
        package="df_policy",
        executable="teleop_recorder_node",
        name="teleop_recorder",
        namespace=arg("namespace"),
        output="screen",
        emulate_tty=True,  # its keyboard commands need a terminal
        parameters=[
            params_file,
            {
                "robot_description": robot_description,
                "store_path": arg("store_path"),
                "task": arg("task"),
                "input": PythonExpression(["'joy' if '", device, "' == 'joy' else 'twist'"]),
                "joy_topic": PythonExpression(["'/joy' if '", device, "' == 'joy' else '/spacenav/joy'"]),
            },
        ],
    )
    spacenav = Node(
        package="spacenav",
        executable="spacenav_node",
        output="screen",
        condition=IfCondition(PythonExpression(["'", device, "' == 'spacenav'"])),
    )
    joy = Node(
        package="joy",
        executable="joy_node",
        output="screen",
        condition=IfCondition(PythonExpression(["'", device, "' == 'joy'"])),
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [robot, recorder, spacenav, joy]
    )
