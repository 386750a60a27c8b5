"""Franka's kinematics (robots.franka): the IK the joint-trajectory sink uses reaches its
target and keeps to each model's joint limits. The DH forward kinematics are checked
against the simulator's MJCF tree in tests/sim/test_sim_model.py."""

from __future__ import annotations

import numpy as np
import pytest

from robots.franka import FRANKA_ARMS, HOME_JOINTS, franka_arm, solve_ik, tcp_pose


def test_ik_reaches_a_nearby_target_and_keeps_the_orientation() -> None:
    start = tcp_pose(HOME_JOINTS)
    target = start[:3, 3] + np.array([0.04, -0.03, 0.02])
    solution = solve_ik(target, start[:3, :3], HOME_JOINTS, franka_arm("fr3").limits)
    reached = tcp_pose(solution)
    assert np.linalg.norm(reached[:3, 3] - target) < 1e-4
    assert np.abs(reached[:3, :3] - start[:3, :3]).max() < 1e-3


@pytest.mark.parametrize("robot_type", sorted(FRANKA_ARMS))
def test_ik_never_leaves_the_joint_limits(robot_type: str) -> None:
    low, high = franka_arm(robot_type).limits
    start = tcp_pose(HOME_JOINTS)
    solution = solve_ik(start[:3, 3] + 0.5, start[:3, :3], high + 1.0, (low, high))
    assert np.all(solution <= high) and np.all(solution >= low)


def test_each_model_names_seven_joints_and_limits_that_contain_home() -> None:
    for arm in FRANKA_ARMS.values():
        assert len(arm.joint_names) == 7 and len(arm.finger_joint_names) == 2
        low, high = arm.limits
        assert np.all(low < high)
    low, high = franka_arm("fr3").limits
    assert np.all(low <= HOME_JOINTS) and np.all(high >= HOME_JOINTS)


def test_an_unknown_robot_type_is_named() -> None:
    with pytest.raises(ValueError, match="robot_type must be one of \\['fer', 'fr3'\\], got 'ur5'"):
        franka_arm("ur5")


def test_forward_kinematics_refuses_a_wrong_joint_count() -> None:
    with pytest.raises(ValueError, match="expected 7 joint angles"):
        tcp_pose(np.zeros(6))
