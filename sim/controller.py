"""The simulator's own Cartesian controller: it takes absolute end-effector targets at the
policy rate (10 Hz), interpolates them at the control rate (100 Hz) and turns each
interpolated pose into joint references by damped-least-squares differential IK.

The IK runs on its own copy of the kinematics (a scratch MjData), not on the measured
joints: the joint servos then pull the real (simulated) arm towards a clean reference,
and a contact that pushes the arm does not wind up the IK. This is how a Cartesian
impedance controller on the real FR3 behaves, minus its compliance.

`JointController` is the joint-space counterpart for joint targets (the `joint_position`
embodiment): it interpolates them in joint space, no IK involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from robots.franka import HOME_JOINTS
from sim.franka import JOINT_LOWER, JOINT_UPPER, JOINT_VELOCITY_LIMIT, ArmIndices


def rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """Axis * angle of a rotation matrix (the log map), robust near 0 and pi."""
    cos = (np.trace(rotation) - 1.0) / 2.0
    angle = math.acos(min(1.0, max(-1.0, cos)))
    if angle < 1e-6:
        return 0.5 * np.array(
            [
                rotation[2, 1] - rotation[1, 2],
                rotation[0, 2] - rotation[2, 0],
                rotation[1, 0] - rotation[0, 1],
            ]
        )
    if math.pi - angle < 1e-4:
        # Near pi the antisymmetric part vanishes; take the axis from the symmetric part.
        symmetric = (rotation + np.eye(3)) / 2.0
        axis = symmetric[int(np.argmax(np.diag(symmetric)))]
        return axis / np.linalg.norm(axis) * angle
    axis = np.array(
        [
            rotation[2, 1] - rotation[1, 2],
            rotation[0, 2] - rotation[2, 0],
            rotation[1, 0] - rotation[0, 1],
        ]
    ) / (2.0 * math.sin(angle))
    return axis * angle


def rotation_from_vector(vector: np.ndarray) -> np.ndarray:
    """Exponential map: rotation matrix of axis * angle (Rodrigues)."""
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.eye(3)
    k = np.asarray(vector) / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


@dataclass(frozen=True)
class PoseTarget:
    """An absolute end-effector target in the base frame."""

    position: np.ndarray  # (3,) m
    rotation: np.ndarray  # (3, 3)
    gripper_width: float  # m


class PoseInterpolator:
    """Linear position and geodesic (slerp) rotation from one pose to the next over a
    fixed duration, as the 10 Hz -> 100 Hz interpolating controller of a real robot."""

    def __init__(self, start: PoseTarget) -> None:
        self._start = start
        self._end = start
        self._t0 = 0.0
        self._duration = 0.0
        self._rotation_delta = np.zeros(3)

    def retarget(self, now: float, current: PoseTarget, end: PoseTarget, duration_s: float) -> None:
        self._start = current
        self._end = end
        self._t0 = now
        self._duration = max(0.0, float(duration_s))
        self._rotation_delta = rotation_vector(current.rotation.T @ end.rotation)

    @property
    def end(self) -> PoseTarget:
        return self._end

    def at(self, now: float) -> PoseTarget:
        elapsed = (now - self._t0) / self._duration if self._duration > 0.0 else 1.0
        alpha = min(1.0, max(0.0, elapsed))
        if alpha >= 1.0:
            return PoseTarget(self._end.position, self._end.rotation, self._end.gripper_width)
        position = self._start.position + alpha * (self._end.position - self._start.position)
        rotation = self._start.rotation @ rotation_from_vector(alpha * self._rotation_delta)
        # The gripper reference is rate limited separately (finger speed), so it jumps here.
        return PoseTarget(position, rotation, self._end.gripper_width)


class DifferentialIK:
    """Damped least squares IK on a scratch copy of the model, with a null-space pull
    towards the home posture (keeps the redundant elbow where a person would put it)."""

    def __init__(
        self,
        model: mujoco.MjModel,
        indices: ArmIndices,
        damping: float = 0.03,
        nullspace_gain: float = 0.05,
        joint_margin: float = 0.02,
    ) -> None:
        self._model = model
        self._data = mujoco.MjData(model)
        self._idx = indices
        self._damping_matrix = damping**2 * np.eye(6)
        self._identity7 = np.eye(7)
        self._nullspace_gain = nullspace_gain
        self._lower = JOINT_LOWER + joint_margin
        self._upper = JOINT_UPPER - joint_margin
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and rotation for arm joints `joints`."""
        self._data.qpos[self._idx.arm_qpos] = joints
        mujoco.mj_kinematics(self._model, self._data)
        site = self._idx.tcp_site
        return self._data.site_xpos[site].copy(), self._data.site_xmat[site].reshape(3, 3).copy()

    def solve(
        self,
        joints: np.ndarray,
        target_position: np.ndarray,
        target_rotation: np.ndarray,
        max_step: np.ndarray,
        iterations: int = 1,
        tolerance: float | None = None,
    ) -> np.ndarray:
        """Joint angles near `joints` that put the TCP at the target, each joint moving
        at most `max_step` (rad) so joint velocity limits hold. One iteration per 100 Hz
        tick suffices because the reference moves little per tick and the IK state
        carries over from tick to tick. With `tolerance`, iterations stop early once the
        pose error (m and rad together) is below it."""
        q = np.array(joints, dtype=np.float64)
        start = q.copy()
        site = self._idx.tcp_site
        dofs = self._idx.arm_dof
        for _ in range(iterations):
            position, rotation = self.forward(q)
            mujoco.mj_comPos(self._model, self._data)
            mujoco.mj_jacSite(self._model, self._data, self._jacp, self._jacr, site)
            jac = np.concatenate([self._jacp[:, dofs], self._jacr[:, dofs]])
            error = np.concatenate(
                [
                    target_position - position,
                    rotation @ rotation_vector(rotation.T @ target_rotation),
                ]
            )
            if tolerance is not None and float(np.linalg.norm(error)) < tolerance:
                break
            pinv = jac.T @ np.linalg.inv(jac @ jac.T + self._damping_matrix)
            dq = pinv @ error
            dq += (self._identity7 - pinv @ jac) @ (self._nullspace_gain * (HOME_JOINTS - q))
            q = np.clip(q + dq, self._lower, self._upper)
        return start + np.clip(q - start, -max_step, max_step)


class CartesianController:
    """Interpolating pose controller: `retarget` at the policy rate, `tick` at the control
    rate; `tick` returns the joint position and velocity references for the servos."""

    def __init__(
        self,
        model: mujoco.MjModel,
        indices: ArmIndices,
        control_period_s: float,
        velocity_scale: float = 0.9,
    ) -> None:
        self.ik = DifferentialIK(model, indices)
        self.control_period_s = control_period_s
        self._max_step = JOINT_VELOCITY_LIMIT * velocity_scale * control_period_s
        self.joint_reference = HOME_JOINTS.copy()
        self.joint_velocity_reference = np.zeros(7)
        position, rotation = self.ik.forward(HOME_JOINTS)
        self.interpolator = PoseInterpolator(PoseTarget(position, rotation, 0.08))
        self.reference = self.interpolator.end

    def reset(self, joints: np.ndarray, gripper_width: float) -> None:
        self.joint_reference = np.array(joints, dtype=np.float64)
        self.joint_velocity_reference = np.zeros(7)
        position, rotation = self.ik.forward(self.joint_reference)
        self.reference = PoseTarget(position, rotation, gripper_width)
        self.interpolator = PoseInterpolator(self.reference)

    def retarget(self, now: float, target: PoseTarget, duration_s: float) -> None:
        """Start moving from the current reference to `target` over `duration_s`."""
        self.interpolator.retarget(now, self.reference, target, duration_s)

    def tick(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance the reference to time `now` (the end of this control period) and solve IK."""
        self.reference = self.interpolator.at(now)
        previous = self.joint_reference
        self.joint_reference = self.ik.solve(previous, self.reference.position, self.reference.rotation, self._max_step)
        self.joint_velocity_reference = (self.joint_reference - previous) / self.control_period_s
        return self.joint_reference, self.joint_velocity_reference


class JointController:
    """Joint-space targets (a joint trajectory controller's one-point trajectories): the
    joint reference moves in a straight line from where it is to the target over the
    given duration, each joint at most `velocity_scale` of its rated speed; `tick`
    returns the joint position and velocity references for the servos, as
    CartesianController.tick does."""

    def __init__(self, control_period_s: float, velocity_scale: float = 0.9) -> None:
        self.control_period_s = control_period_s
        self._max_step = JOINT_VELOCITY_LIMIT * velocity_scale * control_period_s
        self.joint_reference = HOME_JOINTS.copy()
        self.joint_velocity_reference = np.zeros(7)
        self._start = HOME_JOINTS.copy()
        self._target = HOME_JOINTS.copy()
        self._t0 = 0.0
        self._duration = 0.0

    def reset(self, joints: np.ndarray) -> None:
        self.joint_reference = np.array(joints, dtype=np.float64)
        self.joint_velocity_reference = np.zeros(7)
        self._start = self.joint_reference.copy()
        self._target = self.joint_reference.copy()
        self._duration = 0.0

    def retarget(self, now: float, target: np.ndarray, duration_s: float) -> None:
        """Start moving from the current reference to `target` over `duration_s`."""
        self._start = self.joint_reference.copy()
        self._target = np.array(target, dtype=np.float64)
        self._t0 = now
        self._duration = max(0.0, float(duration_s))

    def tick(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance the reference to time `now` (the end of this control period)."""
        elapsed = (now - self._t0) / self._duration if self._duration > 0.0 else 1.0
        alpha = min(1.0, max(0.0, elapsed))
        wanted = self._start + alpha * (self._target - self._start)
        previous = self.joint_reference
        self.joint_reference = previous + np.clip(wanted - previous, -self._max_step, self._max_step)
        self.joint_velocity_reference = (self.joint_reference - previous) / self.control_period_s
        return self.joint_reference, self.joint_velocity_reference
