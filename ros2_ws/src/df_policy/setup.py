"""ament_python package df_policy: `colcon build` in ros2_ws installs the nodes as
`ros2 run df_policy <node>` executables and the launch and config files into the share."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "df_policy"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},  # colcon test runs pytest on test/ (flake8, pep257)
    zip_safe=True,
    maintainer="df-stack maintainers",
    maintainer_email="df-stack@example.com",
    description="df-stack ROS 2 nodes (simulated FR3 robot, policy runtime, recorder)",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"sim_robot_node = {PACKAGE}.sim_robot_node:main",
            f"teleop_recorder_node = {PACKAGE}.teleop_recorder_node:main",
            f"policy_node = {PACKAGE}.policy_node:main",
        ],
    },
)
