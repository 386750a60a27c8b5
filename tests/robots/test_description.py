"""Robot descriptions: loading, the errors a bad one gets, and the check of a checkpoint's
spec against a robot (every mismatch named)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from policy.spec import CameraSpec
from robots.description import (
    RobotDescriptionError,
    load_robot_description,
    robot_description_from_dict,
    robot_description_path,
)
from robots.embodiment import EndEffectorPose, JointPosition
from training.config import task_policy_spec


def fr3_sim() -> dict:
    return yaml.safe_load(robot_description_path("fr3_sim").read_text())


@pytest.mark.parametrize("name", ["fr3_sim", "fr3_real"])
def test_the_shipped_descriptions_load(name: str) -> None:
    robot = load_robot_description(name)
    assert robot.name == name and robot.camera_names == ("front", "wrist")
    assert robot.embodiment_model.action == EndEffectorPose.action
    assert robot.arm.joint_names[0] == "fr3_joint1"
    assert robot.safety.workspace_low[2] < robot.safety.workspace_high[2]
    assert not any(c.topic.startswith("/") for c in robot.cameras), "relative topics follow the node's namespace"


def test_a_description_is_found_by_name_or_by_path(tmp_path: Path) -> None:
    path = tmp_path / "my_robot.yaml"
    path.write_text(yaml.safe_dump({**fr3_sim(), "name": "my_robot"}))
    assert load_robot_description(path).name == "my_robot"
    assert load_robot_description(str(path)).source == str(path)
    with pytest.raises(RobotDescriptionError, match=r"unknown robot description 'fr4'.*fr3_real.*fr3_sim"):
        load_robot_description("fr4")
    with pytest.raises(RobotDescriptionError, match="does not exist"):
        load_robot_description(tmp_path / "nowhere.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embodiment": "cartesian_velocity"}, "embodiment must be one of \\['ee_pose', 'joint_position'\\]"),
        ({"robot_type": "ur5"}, "robot_type must be one of \\['fer', 'fr3'\\]"),
        ({"camera": []}, "unknown \\['camera'\\]"),
        ({"cameras": []}, "'cameras' must be a non-empty list"),
        ({"command": {"sink": "teleport", "topic": "x"}}, "command.sink must be one of"),
        ({"gripper": {"sink": "franka_action"}}, "needs gripper.action_namespace"),
        ({"safety": {"workspace_low": [0.5, 0, 0], "workspace_high": [0.4, 1, 1]}}, "must be below workspace_high"),
        ({"safety": {"max_step_m": 0.01}}, "workspace_low and workspace_high are required"),
        ({"state": {"rate_hz": 100.0}}, "state: missing state keys \\['current_pose_topic'"),
    ],
)
def test_a_bad_description_is_refused_naming_the_key(change: dict, message: str) -> None:
    with pytest.raises(RobotDescriptionError, match=message):
        robot_description_from_dict({**fr3_sim(), **change}, "bad.yaml")


def test_duplicate_or_malformed_cameras_are_named() -> None:
    data = fr3_sim()
    data["cameras"] = [data["cameras"][0], data["cameras"][0]]
    with pytest.raises(RobotDescriptionError, match="camera names must be unique"):
        robot_description_from_dict(data)
    data["cameras"] = [{**fr3_sim()["cameras"][0], "transport": "h264"}]
    with pytest.raises(RobotDescriptionError, match="transport must be one of"):
        robot_description_from_dict(data)


def test_a_policy_that_does_not_fit_the_robot_gets_every_mismatch_named() -> None:
    robot = load_robot_description("fr3_sim")
    spec = task_policy_spec(["task.image_size=16"])
    assert robot.policy_mismatches(spec) == []
    side = replace(spec, cameras=(spec.cameras[0], CameraSpec("side", 16, 16)))
    too_big_crop = replace(spec, cameras=(CameraSpec("front", 16, 16, 3, (0, 0, 200, 96)), spec.cameras[1]))
    joints = replace(spec, embodiment="joint_position", action=JointPosition.action, proprio_dim=8)
    problems = robot.policy_mismatches(side) + robot.policy_mismatches(too_big_crop) + robot.policy_mismatches(joints)
    assert problems == [
        "cameras ['side'] of the checkpoint are not on robot 'fr3_sim' (it has ['front', 'wrist'])",
        "camera 'front': the checkpoint's crop [top 0, left 0, 200x96] does not fit the robot's 96x96 frames",
        "embodiment: checkpoint 'joint_position', robot 'fr3_sim' 'ee_pose'",
    ]
    with pytest.raises(RobotDescriptionError, match="checkpoint does not fit robot description"):
        robot.check_policy_spec(side)


def test_a_joint_policy_needs_a_joint_trajectory_sink() -> None:
    data = {**fr3_sim(), "embodiment": "joint_position"}
    with pytest.raises(RobotDescriptionError, match=r"a joint_position policy needs command\.sink 'joint_trajectory'"):
        robot_description_from_dict(data).policy_spec(["front"], 16, 4, 0.4)
    robot = robot_description_from_dict({**data, "command": {"sink": "joint_trajectory", "topic": "joints"}})
    spec = robot.policy_spec(["front"], 16, 4, 0.4)
    assert spec.embodiment == "joint_position" and spec.action == JointPosition.action and spec.proprio_dim == 8
    assert spec.proprio_names == JointPosition.proprio_names


def test_the_task_spec_is_built_on_the_robot(tmp_path: Path) -> None:
    robot = load_robot_description("fr3_sim")
    spec = robot.policy_spec(["wrist"], [24, 32], 8, 0.8, crops={"wrist": [0, 8, 80, 80]})
    assert spec.cameras == (CameraSpec("wrist", 24, 32, 3, (0, 8, 80, 80)),)
    assert spec.proprio_names == EndEffectorPose.proprio_names and spec.action_period_s == pytest.approx(0.1)
    with pytest.raises(KeyError, match="robot 'fr3_sim' has no camera 'side'"):
        robot.policy_spec(["side"], 16, 8, 0.8)
    with pytest.raises(RobotDescriptionError, match="crops name cameras \\['front'\\]"):
        robot.policy_spec(["wrist"], 16, 8, 0.8, crops={"front": [0, 0, 16, 16]})
    with pytest.raises(RobotDescriptionError, match="actions_per_token must be >= 1"):
        robot.policy_spec(["wrist"], 16, 0, 0.8)
