"""The FR3 model: kinematics match Franka's DH table, limits and home posture are Franka's."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.sim

mujoco = pytest.importorskip("mujoco")

from robots.franka import HOME_JOINTS, tcp_pose  # noqa: E402
from sim.controller import DifferentialIK  # noqa: E402
from sim.franka import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, arm_indices  # noqa: E402
from sim.scene import SceneOptions, scene_mjcf  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_string(scene_mjcf(SceneOptions()))


def test_mjcf_tree_matches_dh_table(model) -> None:
    ik = DifferentialIK(model, arm_indices(model))
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(JOINT_LOWER, JOINT_UPPER)
        position, rotation = ik.forward(q)
        expected = tcp_pose(q)
        np.testing.assert_allclose(position, expected[:3, 3], atol=1e-9)
        np.testing.assert_allclose(rotation, expected[:3, :3], atol=1e-9)


def test_home_posture_pose_is_franka_home(model) -> None:
    ik = DifferentialIK(model, arm_indices(model))
    position, rotation = ik.forward(HOME_JOINTS)
    # libfranka's O_T_EE at the home posture: 30.7 cm in front, 48.7 cm up, pointing down.
    np.testing.assert_allclose(position, [0.3069, 0.0, 0.4869], atol=5e-4)
    np.testing.assert_allclose(rotation, np.diag([1.0, -1.0, -1.0]), atol=1e-6)


def test_joint_names_and_limits_are_fr3(model) -> None:
    for i, name in enumerate(JOINT_NAMES):
        joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        assert joint >= 0, name
        np.testing.assert_allclose(model.jnt_range[joint], [JOINT_LOWER[i], JOINT_UPPER[i]])
    assert JOINT_UPPER[3] == pytest.approx(-0.1518)
    assert JOINT_LOWER[5] == pytest.approx(0.5445)


def test_ik_reaches_a_pose_within_limits(model) -> None:
    ik = DifferentialIK(model, arm_indices(model))
    target = np.array([0.5, -0.16, 0.035])
    rotation = np.diag([1.0, -1.0, -1.0])
    q = HOME_JOINTS.copy()
    for _ in range(300):
        q = ik.solve(q, target, rotation, max_step=np.full(7, 0.05))
    position, _reached = ik.forward(q)
    assert np.linalg.norm(position - target) < 1e-3
    assert np.all(q >= JOINT_LOWER) and np.all(q <= JOINT_UPPER)
