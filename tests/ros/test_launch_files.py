"""The launch files, checked statically: launch and launch_ros are not installable here.

Every df_policy Node's executable is an entry point in setup.py, every parameter file
exists, parses and is keyed by the node's name, every override names a real parameter,
every launch argument used is declared with a description, included launch files exist,
and the launch folder is what colcon installs into df_policy's share.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"
PACKAGE = ROOT / "ros2_ws" / "src" / "df_policy"
LAUNCH_FILES = sorted(LAUNCH.glob("*.launch.py"))
DOC = ROOT / "docs" / "policy_node.md"


def entry_points() -> dict[str, str]:
    """console_scripts of setup.py: executable -> module."""
    text = ast.unparse(ast.parse((PACKAGE / "setup.py").read_text()))
    found = re.findall(r"([A-Za-z_]+) = \{PACKAGE\}\.([A-Za-z_]+):main", text)
    return {name: module for name, module in found}


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    ]


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def constant(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def declared_arguments(tree: ast.Module) -> dict[str, str]:
    """name -> description, from DeclareLaunchArgument calls with constant names and from
    a module-level ARGUMENTS = {name: (default, description)} table."""
    declared: dict[str, str] = {}
    for call in calls(tree, "DeclareLaunchArgument"):
        name = constant(call.args[0]) if call.args else None
        if isinstance(name, str):
            declared[name] = str(constant(keyword(call, "description")) or "")
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                declared[key.value] = value.elts[1].value
    return declared


def used_arguments(tree: ast.Module) -> set[str]:
    used = set()
    aliases = {"LaunchConfiguration"} | {
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.value, "id", "") == "LaunchConfiguration"
        for t in node.targets
    }
    for alias in aliases:
        for call in calls(tree, alias):
            name = constant(call.args[0]) if call.args else None
            if isinstance(name, str):
                used.add(name)
    return used


def node_parameters(executable: str) -> set[str]:
    """The parameters a df_policy node declares."""
    if executable == "policy_node":
        from df_policy.policy_node import declared_parameter_names

        return declared_parameter_names()
    if executable == "sim_robot_node":
        from df_policy.sim_robot_node import PARAMETER_DEFAULTS

        return set(PARAMETER_DEFAULTS)
    from df_policy.teleop_recorder_node import declared_parameter_names

    return declared_parameter_names()


def test_launch_folder_is_installed_into_the_package_share() -> None:
    names = {path.name for path in LAUNCH_FILES}
    assert {"swap_fruit.launch.py", "record_demos.launch.py", "robot.launch.py", "sim_robot.launch.py"} <= names
    # setup.py installs launch/*.launch.py relative to the package: that folder is the
    # top-level launch/ (a link), so colcon finds the same files here and in Docker.
    assert (PACKAGE / "launch").resolve() == LAUNCH.resolve()
    assert {p.name for p in (PACKAGE / "launch").glob("*.launch.py")} == names
    assert '"launch/*.launch.py"' in (PACKAGE / "setup.py").read_text()


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_declarative_and_consistent(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert ast.get_docstring(tree), f"{path.name} needs a docstring saying what it starts"

    declared = declared_arguments(tree)
    undeclared = used_arguments(tree) - set(declared)
    assert not undeclared, f"{path.name} uses undeclared launch arguments {sorted(undeclared)}"
    undocumented = [name for name, text in declared.items() if len(text.strip()) < 10]
    assert not undocumented, f"{path.name}: arguments without a description {undocumented}"

    scripts = entry_points()
    for call in calls(tree, "Node"):
        if constant(keyword(call, "package")) != "df_policy":
            continue
        executable = constant(keyword(call, "executable"))
        assert executable in scripts, f"{path.name}: executable {executable!r} is not in setup.py {sorted(scripts)}"
        assert (PACKAGE / "df_policy" / f"{scripts[executable]}.py").is_file()
        known = node_parameters(str(executable))
        name = constant(keyword(call, "name"))
        for item in getattr(keyword(call, "parameters"), "elts", []):
            if isinstance(item, ast.Dict):
                unknown = {k.value for k in item.keys} - known - {"use_sim_time"}  # rclpy's own
                assert not unknown, f"{path.name}: {executable} has no parameters {sorted(unknown)}"
        # Parameter files must exist, parse, and apply to any node name and namespace
        # (`/**`: a file keyed by a node's name silently does nothing under namespace:=robot1).
        for config in re.findall(r'"config", "([a-z_]+\.yaml)"', path.read_text()):
            data = yaml.safe_load((PACKAGE / "config" / config).read_text())
            assert list(data) == ["/**"] and "ros__parameters" in data["/**"], f"{config} is not keyed by /**"
            if config.startswith(str(name)) or config.startswith(str(executable).removesuffix("_node")):
                assert set(data["/**"]["ros__parameters"]) <= known | {"use_sim_time"}, config

    # Launch files included from df_policy's own share (others come from their packages).
    for included in re.findall(r'share, "launch", "([a-z_]+\.launch\.py)"', path.read_text()):
        assert (LAUNCH / included).is_file(), f"{path.name} includes missing {included}"


def test_swap_fruit_arguments_cover_the_robot_and_are_documented() -> None:
    declared = declared_arguments(ast.parse((LAUNCH / "swap_fruit.launch.py").read_text()))
    required = {"use_sim", "robot_type", "robot_ip", "namespace", "checkpoint"}
    required |= {f"{c}_camera{s}" for c in ("front", "wrist") for s in ("", "_serial")}
    assert required <= set(declared)
    doc = DOC.read_text()
    missing = [name for name in declared if f"`{name}`" not in doc]
    assert not missing, f"docs/policy_node.md does not document {missing}"


def test_policy_config_matches_the_node_parameters() -> None:
    pytest.importorskip("rclpy")
    from df_policy.policy_node import PARAMETER_GROUPS, declared_parameter_names

    params = yaml.safe_load((PACKAGE / "config" / "policy_node.yaml").read_text())["/**"]["ros__parameters"]
    assert set(params) <= declared_parameter_names()
    settings = PARAMETER_GROUPS[""][0]()
    for key, value in params.items():
        assert type(value) is type(getattr(settings, key)), key


def argument_defaults(path: Path) -> dict[str, str]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            return {k.value: v.elts[0].value for k, v in zip(node.value.keys, node.value.values, strict=True)}
    return {}


def test_no_launch_file_restates_a_fact_of_the_checkpoint_or_the_robot_description() -> None:
    """The checkpoint owns cameras, image sizes, crops and rates; the robot description owns
    topics, sinks and limits. A launch file that set one of them again would drift from
    its owner (the image size did: 64 in one copy, 32 in another)."""
    owned = {"cameras", "image_size", "actions_per_token", "token_period_s", "crops", "embodiment"}
    owned |= {"target_pose_topic", "current_pose_topic", "gripper_sink", "command_sink", "frame_id"}
    # What the recorder once restated: its camera topics, sizes, rates, joints and workspace.
    owned |= {"camera_topic_format", "image_height", "image_width", "camera_rate_hz", "state_rate_hz"}
    owned |= {"gripper_rate_hz", "measured_joint_states_topic", "gripper_joint_states_topic", "joint_names"}
    owned |= {"finger_joint_names", "gripper_command_topic", "workspace_min", "workspace_max", "max_linear_speed"}
    for path in LAUNCH_FILES:
        tree = ast.parse(path.read_text())
        for call in calls(tree, "Node"):
            if constant(keyword(call, "executable")) not in ("policy_node", "sim_robot_node", "teleop_recorder_node"):
                continue
            for item in getattr(keyword(call, "parameters"), "elts", []):
                if isinstance(item, ast.Dict):
                    restated = {k.value for k in item.keys if isinstance(k, ast.Constant)} & owned
                    assert not restated, f"{path.name} restates {sorted(restated)}"
        assert not owned & set(declared_arguments(tree)) - {"cameras"}, path.name


@pytest.mark.parametrize("name", ["swap_fruit.launch.py", "record_demos.launch.py"])
def test_the_node_and_the_simulator_are_given_one_robot_description(name: str) -> None:
    """The node started with the robot gets `robot_description` (it reads cameras, topics
    and limits from it) and the simulator it runs against is started from the same one."""
    text = (LAUNCH / name).read_text()
    tree = ast.parse(text)
    assert "robot_description" in declared_arguments(tree)
    executable = "policy_node" if name.startswith("swap_fruit") else "teleop_recorder_node"
    (node,) = [call for call in calls(tree, "Node") if constant(keyword(call, "executable")) == executable]
    overrides = [item for item in keyword(node, "parameters").elts if isinstance(item, ast.Dict)]
    assert any(k.value == "robot_description" for item in overrides for k in item.keys), name
    forwarded = """"sim_robot_description": PythonExpression(["'", arg("robot_description"), "' or 'fr3_sim'"])"""
    assert forwarded in text, f"{name} must start the simulator from the robot_description it gives the node"


@pytest.mark.parametrize("name", ["swap_fruit.launch.py", "record_demos.launch.py"])
def test_robot_arguments_repeated_by_an_including_launch_file_keep_robot_launch_defaults(name: str) -> None:
    """swap_fruit and record_demos redeclare the robot's arguments they forward (so that
    `--show-args` lists them); a default changed in one file only would make the two
    launches drive a different robot by default."""
    robot = argument_defaults(LAUNCH / "robot.launch.py")
    including = argument_defaults(LAUNCH / name)
    assert "robot.launch.py" in (LAUNCH / name).read_text()
    shared = set(robot) & set(including)
    assert {"use_sim", "robot_type", "robot_ip", "front_camera", "wrist_camera"} <= shared
    differ = {arg: (including[arg], robot[arg]) for arg in sorted(shared) if including[arg] != robot[arg]}
    assert not differ, f"{name} defaults differ from robot.launch.py: {differ}"


def test_the_documented_parameter_table_is_the_generated_one() -> None:
    pytest.importorskip("rclpy")
    from df_policy.policy_node import parameter_table_markdown

    doc = DOC.read_text()
    start = doc.index("-->", doc.index("<!-- generated: df_policy.policy_node.parameter_table_markdown()")) + 4
    end = doc.index("<!-- end of generated table -->")
    assert doc[start:end].strip() == parameter_table_markdown(), "regenerate the table in docs/policy_node.md"
