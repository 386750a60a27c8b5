"""The ament_python package df_policy, checked statically (no colcon, no launch here)."""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

PACKAGE = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "df_policy"


def test_package_xml_is_format_3_ament_python() -> None:
    root = ET.parse(PACKAGE / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "df_policy"
    assert root.find("export/build_type").text == "ament_python"
    depends = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "std_srvs", "std_msgs"} <= depends


def test_setup_installs_scripts_launch_and_config() -> None:
    tree = ast.parse((PACKAGE / "setup.py").read_text())
    text = ast.unparse(tree)
    assert "sim_robot_node = {PACKAGE}.sim_robot_node:main" in text
    assert "launch/*.launch.py" in text and "config/*.yaml" in text
    assert (PACKAGE / "resource" / "df_policy").exists()
    assert "install_scripts=$base/lib/df_policy" in (PACKAGE / "setup.cfg").read_text()
    assert list((PACKAGE / "launch").glob("*.launch.py"))
    assert list((PACKAGE / "config").glob("*.yaml"))


def test_launch_file_is_declarative_and_names_the_node() -> None:
    source = (PACKAGE / "launch" / "sim_robot.launch.py").read_text()
    tree = ast.parse(source)
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    assert 'executable="sim_robot_node"' in source and "sim_robot.yaml" in source


def test_config_file_matches_the_node_parameters() -> None:
    pytest.importorskip("rclpy")
    from df_policy.sim_robot_node import PARAMETER_DEFAULTS

    config = yaml.safe_load((PACKAGE / "config" / "sim_robot.yaml").read_text())
    params = config["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETER_DEFAULTS)
    for key, value in params.items():
        assert type(value) is type(PARAMETER_DEFAULTS[key]), key


def test_node_cli_has_help() -> None:
    pytest.importorskip("rclpy")
    result = subprocess.run(
        [sys.executable, "-m", "df_policy.sim_robot_node", "--help"],
        capture_output=True,
        text=True,
        cwd=PACKAGE,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "real_time_factor" in result.stdout and "reset_episode" in result.stdout
