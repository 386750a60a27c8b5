"""Franka's kinematics and limits, from Franka's published numbers only.

The modified (Craig) Denavit-Hartenberg table, the flange-to-hand and hand-to-TCP
offsets and the hand's 80 mm stroke are the same for the FR3 and the Panda (FER); their
joint names and limits differ. The simulator builds its MJCF from these numbers, the
joint-trajectory sink solves its IK with them and the joint-space safety checks use them:
one copy for all three. numpy only (importing this loads no MuJoCo and no ROS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Modified DH parameters per joint i: (a_{i-1} [m], d_i [m], alpha_{i-1} [rad]).
DH_TABLE: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
FLANGE_D = 0.107  # link7 -> flange along z
HAND_TCP_D = 0.1034  # hand -> tool centre point (between the fingertips) along z
HAND_YAW = -math.pi / 4  # the hand is mounted rotated -45 deg about the flange z axis
HOME_JOINTS = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])
GRIPPER_MAX_WIDTH = 0.08  # m, fully open (the sum of both fingers' positions)
GRIPPER_SPEED = 0.1  # m/s of width, about the Franka hand's top speed
ARM_JOINTS = 7


@dataclass(frozen=True)
class FrankaArm:
    """One Franka model: its ROS names and joint limits."""

    robot_type: str
    joint_names: tuple[str, ...]
    finger_joint_names: tuple[str, ...]
    base_frame: str
    joint_lower: tuple[float, ...]
    joint_upper: tuple[float, ...]
    joint_velocity_limit: tuple[float, ...]  # rad/s

    @property
    def limits(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.joint_lower, dtype=np.float64), np.asarray(self.joint_upper, dtype=np.float64)


FRANKA_ARMS: dict[str, FrankaArm] = {
    "fr3": FrankaArm(
        robot_type="fr3",
        joint_names=tuple(f"fr3_joint{i}" for i in range(1, 8)),
        finger_joint_names=("fr3_finger_joint1", "fr3_finger_joint2"),
        base_frame="fr3_link0",
        joint_lower=(-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159),
        joint_upper=(2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159),
        joint_velocity_limit=(2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26),
    ),
    "fer": FrankaArm(
        robot_type="fer",
        joint_names=tuple(f"panda_joint{i}" for i in range(1, 8)),
        finger_joint_names=("panda_finger_joint1", "panda_finger_joint2"),
        base_frame="fer_link0",
        joint_lower=(-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
        joint_upper=(2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
        joint_velocity_limit=(2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61),
    ),
}


def franka_arm(robot_type: str) -> FrankaArm:
    try:
        return FRANKA_ARMS[robot_type]
    except KeyError:
        raise ValueError(f"robot_type must be one of {sorted(FRANKA_ARMS)}, got {robot_type!r}") from None


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])


def _trans(x: float, y: float, z: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = (x, y, z)
    return t


_FLANGE_TO_TCP = _trans(0, 0, FLANGE_D) @ _rot_z(HAND_YAW) @ _trans(0, 0, HAND_TCP_D)


def tcp_pose(joints: np.ndarray) -> np.ndarray:
    """4x4 pose of the Franka Hand's TCP in the base frame, straight from the DH table
    (the simulator's MJCF tree is checked against it in the tests)."""
    q = np.asarray(joints, dtype=np.float64)
    if q.shape != (ARM_JOINTS,):
        raise ValueError(f"expected {ARM_JOINTS} joint angles, got shape {q.shape}")
    pose = np.eye(4)
    for (a, d, alpha), theta in zip(DH_TABLE, q, strict=True):
        ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
        # rot_x(alpha) @ trans(a, 0, 0) @ rot_z(theta) @ trans(0, 0, d), multiplied out.
        link = np.array(
            [
                [ct, -st, 0.0, a],
                [st * ca, ct * ca, -sa, -d * sa],
                [st * sa, ct * sa, ca, d * ca],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )
        pose = pose @ link
    return pose @ _FLANGE_TO_TCP


def rotation_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation vector (base frame) taking `current` to `target` (small-angle accurate)."""
    relative = target @ current.T
    return 0.5 * np.array(
        [relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0], relative[1, 0] - relative[0, 1]]
    )


def solve_ik(
    position: np.ndarray,
    rotation: np.ndarray,
    seed: np.ndarray,
    limits: tuple[np.ndarray, np.ndarray],
    iterations: int = 30,
    damping: float = 0.05,
    tolerance: float = 1e-4,
) -> np.ndarray:
    """Joint angles near `seed` reaching the TCP pose, by damped least squares on a
    numerical Jacobian. Commands move a few mm per call, so a few iterations suffice."""
    q = np.clip(np.asarray(seed, dtype=np.float64), *limits)
    for _ in range(iterations):
        pose = tcp_pose(q)
        error = np.concatenate([position - pose[:3, 3], rotation_error(pose[:3, :3], rotation)])
        if float(np.linalg.norm(error)) < tolerance:
            break
        jacobian = np.empty((6, ARM_JOINTS))
        for j in range(ARM_JOINTS):
            dq = np.zeros(ARM_JOINTS)
            dq[j] = 1e-6
            moved = tcp_pose(q + dq)
            jacobian[:3, j] = (moved[:3, 3] - pose[:3, 3]) / 1e-6
            jacobian[3:, j] = rotation_error(pose[:3, :3], moved[:3, :3]) / 1e-6
        step = jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + damping**2 * np.eye(6), error)
        q = np.clip(q + step, *limits)
    return q
