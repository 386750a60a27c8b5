"""The project's own MJCF model of a Franka Research 3 (FR3) arm with its parallel gripper.

Built from Franka's published numbers, which live in `robots.franka` (the DH table, the
FR3's joint position and velocity limits, the flange-to-hand and hand-to-TCP offsets, the
gripper's 80 mm stroke). Geometry is
deliberately simple (capsules and boxes): the cameras see 32-96 px images, and simple
geometry keeps both rendering and collision checking cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robots.franka import DH_TABLE, FLANGE_D, HAND_TCP_D, HAND_YAW, franka_arm

# The simulated arm is an FR3; its kinematics, names and limits are robots.franka's.
SIM_ARM = franka_arm("fr3")
JOINT_NAMES = SIM_ARM.joint_names
FINGER_JOINT_NAMES = SIM_ARM.finger_joint_names
BASE_FRAME = SIM_ARM.base_frame
JOINT_LOWER, JOINT_UPPER = SIM_ARM.limits
JOINT_VELOCITY_LIMIT = np.asarray(SIM_ARM.joint_velocity_limit)

# Approximate link masses (kg). With gravity compensation they only shape the dynamics
# the joint servos see; they are close to the real arm's so that contact pushes look plausible.
_LINK_MASS = (2.9, 2.9, 2.2, 2.4, 2.6, 1.5, 0.5)
_ARMATURE = 0.1  # kg m^2: the reflected rotor inertia keeps stiff servos stable at 2 ms steps

# Joint servo gains: stiff, with velocity feed-forward supplied by the controller, so the
# arm tracks the 100 Hz IK reference within millimetres (like Franka's impedance control).
_JOINT_KP = (4500.0, 4500.0, 3500.0, 3500.0, 1500.0, 1500.0, 1000.0)
_JOINT_KV = (300.0, 300.0, 220.0, 220.0, 80.0, 80.0, 50.0)
_JOINT_TORQUE = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)

# Gripper: each finger is a position servo whose force saturates like the real hand's
# grasp force, so commanding width 0 on an object squeezes it with a bounded force.
_FINGER_KP = 1500.0
_FINGER_KV = 40.0
_FINGER_FORCE = 35.0


@dataclass(frozen=True)
class ArmIndices:
    """Indices of the arm and gripper inside a compiled MjModel."""

    arm_qpos: np.ndarray
    arm_dof: np.ndarray
    finger_qpos: np.ndarray
    arm_position_actuators: np.ndarray
    arm_velocity_actuators: np.ndarray
    finger_actuators: np.ndarray
    tcp_site: int


def _fmt(values: tuple[float, ...] | np.ndarray | list[float]) -> str:
    return " ".join(f"{float(v):.12g}" for v in values)


def _dh_body_frame(a: float, d: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Position and MuJoCo quaternion (w, x, y, z) of frame i in frame i-1 (modified DH):
    translate a along x, rotate alpha about x, translate d along the new z."""
    pos = np.array([a, -math.sin(alpha) * d, math.cos(alpha) * d])
    quat = np.array([math.cos(alpha / 2), math.sin(alpha / 2), 0.0, 0.0])
    return pos, quat


def _link_visual(i: int, next_offset: np.ndarray, mass: float) -> str:
    """Capsule from this joint to the next one, plus a joint housing cylinder."""
    grey = "0.92 0.92 0.93 1" if i % 2 else "0.25 0.25 0.28 1"
    parts = [
        f'<geom name="fr3_link{i}_housing" type="cylinder" size="0.055 0.06" '
        f'rgba="{grey}" mass="{mass * 0.4:.4g}" class="arm_visual"/>'
    ]
    length = float(np.linalg.norm(next_offset))
    if length > 1e-6:
        parts.append(
            f'<geom name="fr3_link{i}_shell" type="capsule" size="0.045" '
            f'fromto="0 0 0 {_fmt(next_offset)}" rgba="{grey}" mass="{mass * 0.6:.4g}" '
            f'class="arm_visual"/>'
        )
    return "\n".join(parts)


def arm_mjcf() -> tuple[str, str, str]:
    """MJCF fragments of the arm: its kinematic tree (a <body> for <worldbody>), its
    actuators (for <actuator>) and its default classes (for <default>)."""
    offsets = [_dh_body_frame(*row) for row in DH_TABLE]
    # The offset from body i to body i+1, in body i's frame, is the next DH row's position.
    next_positions = [offsets[i + 1][0] for i in range(6)] + [np.array([0.0, 0.0, FLANGE_D])]

    hand_quat = (math.cos(HAND_YAW / 2), 0.0, 0.0, math.sin(HAND_YAW / 2))
    hand = f"""
<body name="fr3_hand" pos="0 0 {FLANGE_D}" quat="{_fmt(hand_quat)}" gravcomp="1">
  <geom name="hand_palm" type="box" size="0.03 0.095 0.028" pos="0 0 0.032"
        rgba="0.92 0.92 0.93 1" mass="0.6" class="gripper_collision"/>
  <geom name="hand_mount" type="cylinder" size="0.04 0.006" pos="0 0 0.004"
        rgba="0.25 0.25 0.28 1" mass="0.1" class="arm_visual"/>
  <site name="tcp" pos="0 0 {HAND_TCP_D}" size="0.005" rgba="0 1 0 0"/>
  <!-- behind the palm (towards the robot at home), looking past the fingertips -->
  <camera name="wrist" pos="-0.055 0 0.03" xyaxes="0 1 0 0.937 0 -0.349" fovy="70"/>
  <body name="fr3_leftfinger" pos="0 0 0.0584" gravcomp="1">
    <joint name="fr3_finger_joint1" type="slide" axis="0 1 0" range="0 0.04" class="finger"/>
    <geom name="left_finger_link" type="box" size="0.009 0.006 0.016" pos="0 0.014 0.012"
          rgba="0.25 0.25 0.28 1" mass="0.02" class="arm_visual"/>
    <geom name="left_pad" type="box" size="0.009 0.004 0.021" pos="0 0.004 0.0386"
          rgba="0.15 0.15 0.17 1" mass="0.01" class="gripper_pad"/>
  </body>
  <body name="fr3_rightfinger" pos="0 0 0.0584" gravcomp="1">
    <joint name="fr3_finger_joint2" type="slide" axis="0 -1 0" range="0 0.04" class="finger"/>
    <geom name="right_finger_link" type="box" size="0.009 0.006 0.016" pos="0 -0.014 0.012"
          rgba="0.25 0.25 0.28 1" mass="0.02" class="arm_visual"/>
    <geom name="right_pad" type="box" size="0.009 0.004 0.021" pos="0 -0.004 0.0386"
          rgba="0.15 0.15 0.17 1" mass="0.01" class="gripper_pad"/>
  </body>
</body>"""

    body = hand
    for i in range(7, 0, -1):
        pos, quat = offsets[i - 1]
        lo, hi = JOINT_LOWER[i - 1], JOINT_UPPER[i - 1]
        body = f"""
<body name="fr3_link{i}" pos="{_fmt(pos)}" quat="{_fmt(quat)}" gravcomp="1">
  <joint name="fr3_joint{i}" range="{lo:.6g} {hi:.6g}" class="arm_joint"/>
  {_link_visual(i, next_positions[i - 1], _LINK_MASS[i - 1])}
  {body}
</body>"""
    base = f"""
<body name="{BASE_FRAME}" pos="0 0 0">
  <geom name="fr3_link0_base" type="cylinder" size="0.09 0.05" pos="0 0 0.05"
        rgba="0.92 0.92 0.93 1" class="arm_visual"/>
  <geom name="fr3_link0_column" type="capsule" size="0.06" fromto="0 0 0.05 0 0 0.27"
        rgba="0.92 0.92 0.93 1" class="arm_visual"/>
  {body}
</body>"""

    actuators = []
    for i in range(7):
        name = JOINT_NAMES[i]
        torque = _JOINT_TORQUE[i]
        actuators.append(
            f'<position name="{name}_position" joint="{name}" kp="{_JOINT_KP[i]}" '
            f'forcerange="{-torque} {torque}" forcelimited="true" '
            f'ctrlrange="{JOINT_LOWER[i]:.6g} {JOINT_UPPER[i]:.6g}"/>'
        )
    for i in range(7):
        name = JOINT_NAMES[i]
        torque = _JOINT_TORQUE[i]
        # A velocity servo on the same joint: with ctrl = the reference joint velocity it
        # is the D term of a PD controller with velocity feed-forward (no tracking lag).
        actuators.append(
            f'<velocity name="{name}_velocity" joint="{name}" kv="{_JOINT_KV[i]}" '
            f'forcerange="{-torque} {torque}" forcelimited="true"/>'
        )
    for name in FINGER_JOINT_NAMES:
        actuators.append(
            f'<position name="{name}_position" joint="{name}" kp="{_FINGER_KP}" '
            f'kv="{_FINGER_KV}" ctrlrange="0 0.04" forcerange="{-_FINGER_FORCE} {_FINGER_FORCE}" '
            f'forcelimited="true"/>'
        )

    defaults = f"""
<default class="arm_joint">
  <joint type="hinge" axis="0 0 1" armature="{_ARMATURE}" damping="1" limited="true"/>
</default>
<default class="finger">
  <joint armature="0.01" damping="1" limited="true"/>
</default>
<default class="arm_visual">
  <geom contype="0" conaffinity="0" group="1"/>
</default>
<default class="gripper_collision">
  <geom contype="1" conaffinity="1" group="1" condim="3" friction="0.8 0.005 0.0001"/>
</default>
<default class="gripper_pad">
  <geom contype="1" conaffinity="1" group="1" condim="6" friction="1.5 0.02 0.001"
        solref="0.004 1" solimp="0.95 0.99 0.001"/>
</default>"""
    return base, "\n".join(actuators), defaults


def arm_indices(model: object) -> ArmIndices:
    """Look up the arm's joints, actuators and TCP site by name in a compiled model."""
    import mujoco

    def joint(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

    def actuator(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name)

    arm_joints = [joint(n) for n in JOINT_NAMES]
    finger_joints = [joint(n) for n in FINGER_JOINT_NAMES]
    return ArmIndices(
        arm_qpos=np.array([model.jnt_qposadr[j] for j in arm_joints]),
        arm_dof=np.array([model.jnt_dofadr[j] for j in arm_joints]),
        finger_qpos=np.array([model.jnt_qposadr[j] for j in finger_joints]),
        arm_position_actuators=np.array([actuator(f"{n}_position") for n in JOINT_NAMES]),
        arm_velocity_actuators=np.array([actuator(f"{n}_velocity") for n in JOINT_NAMES]),
        finger_actuators=np.array([actuator(f"{n}_position") for n in FINGER_JOINT_NAMES]),
        tcp_site=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "tcp"),
    )
