"""Start the simulated FR3 alone, running a task, with config/sim_robot.yaml.

ros2 launch df_policy sim_robot.launch.py real_time_factor:=2.0 seed:=7
ros2 launch df_policy sim_robot.launch.py task:=/path/my_task.yaml
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    config = os.path.join(get_package_share_directory("df_policy"), "config", "sim_robot.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "task", default_value="swap_fruit_sim", description="task config: a name or a YAML path (sim: section)"
            ),
            DeclareLaunchArgument(
                "robot_description",
                default_value="",
                description="robot description name or YAML path ('' = the task's)",
            ),
            DeclareLaunchArgument("real_time_factor", default_value="1.0", description="1 = real time, 0 = unpaced"),
            DeclareLaunchArgument("seed", default_value="0", description="seed of the first episode"),
            DeclareLaunchArgument(
                "fault_plan_file", default_value="", description="JSON fault plan (sim.faults); '' = none"
            ),
            Node(
                package="df_policy",
                executable="sim_robot_node",
                name="sim_robot",
                output="screen",
                parameters=[
                    config,
                    {
                        "task": LaunchConfiguration("task"),
                        "robot_description": LaunchConfiguration("robot_description"),
                        "real_time_factor": LaunchConfiguration("real_time_factor"),
                        "seed": LaunchConfiguration("seed"),
                        "fault_plan_file": LaunchConfiguration("fault_plan_file"),
                    },
                ],
            ),
        ]
    )
