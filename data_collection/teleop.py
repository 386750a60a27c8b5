"""Teleoperation: a velocity twist (SpaceMouse, joystick) integrated into a clamped
end-effector target at the control rate. numpy + policy.geometry only, so the ROS node
and the simulator use the same code.

Safety rules, in order, every step:
* a twist older than `twist_timeout_s` counts as zero (a dropped device stops the arm);
* linear and angular speed are limited by scaling the whole vector (direction kept);
* dt is capped (`max_step_s`), so a stalled timer never produces a jump;
* the position is clamped to the workspace box, the gripper to its width range.

The box, the speed limits and the gripper range are the robot's: `TeleopLimits.within`
takes them from the safety limits of its robot description, the ones the policy node
holds its commands to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policy.commanding import SafetyLimits
from policy.geometry import matrix_to_quat, quat_to_matrix


@dataclass(frozen=True)
class TeleopLimits:
    workspace_min: tuple[float, float, float]  # the robot's box (m, base frame): no default
    workspace_max: tuple[float, float, float]
    max_linear_speed: float = 0.25  # m/s
    max_angular_speed: float = 1.0  # rad/s
    gripper_min_width: float = 0.0
    gripper_max_width: float = 0.08  # FR3 hand
    gripper_speed: float = 0.1  # m/s at full gripper input
    twist_timeout_s: float = 0.25
    max_step_s: float = 0.05

    def __post_init__(self) -> None:
        low, high = np.asarray(self.workspace_min), np.asarray(self.workspace_max)
        if low.shape != (3,) or high.shape != (3,) or np.any(low >= high):
            raise ValueError(f"workspace box must have min < max on x, y, z; got {low} and {high}")
        if self.max_linear_speed <= 0 or self.max_angular_speed <= 0:
            raise ValueError("speed limits must be > 0")

    @classmethod
    def within(cls, safety: SafetyLimits, twist_timeout_s: float = 0.25) -> TeleopLimits:
        """Teleop held to a robot's safety limits (its description's `safety`): the same
        workspace box, linear and angular speed limits and gripper range as the policy."""
        return cls(
            workspace_min=tuple(float(v) for v in safety.workspace_low),
            workspace_max=tuple(float(v) for v in safety.workspace_high),
            max_linear_speed=float(safety.max_linear_speed_m_s),
            max_angular_speed=float(safety.max_angular_speed_rad_s),
            gripper_min_width=float(safety.gripper_min_m),
            gripper_max_width=float(safety.gripper_max_m),
            twist_timeout_s=float(twist_timeout_s),
        )


def _rotation_from_vector(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation vector (axis * angle) to a rotation matrix."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * (skew @ skew)


def _limit(vector: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector * (limit / norm) if norm > limit else vector


class TeleopIntegrator:
    """Integrates twists into a target pose; call `step(now)` at the control rate.

    frame="base": the twist is expressed in the robot base frame (SpaceMouse on the
    table); frame="tool": in the end-effector frame (moves "forward" along the tool).
    """

    def __init__(self, limits: TeleopLimits, frame: str = "base") -> None:
        if frame not in ("base", "tool"):
            raise ValueError(f"teleop frame must be 'base' or 'tool', got {frame!r}")
        self.limits = limits
        self.frame = frame
        self.position = np.zeros(3)
        self.rotation = np.eye(3)
        self.gripper_width = self.limits.gripper_max_width
        self._linear = np.zeros(3)
        self._angular = np.zeros(3)
        self._gripper_velocity = 0.0
        self._twist_stamp = float("-inf")
        self._last_step: float | None = None
        self.initialized = False

    def reset(self, pose: np.ndarray, gripper_width: float | None = None, now: float | None = None) -> None:
        """Start from the measured pose (x, y, z, qx, qy, qz, qw), so the first command does
        not jump; call at episode start and whenever the controller was re-engaged."""
        pose = np.asarray(pose, dtype=np.float64).reshape(-1)
        if pose.shape != (7,) or not np.all(np.isfinite(pose)):
            raise ValueError(f"reset pose must be 7 finite values (x, y, z, qx, qy, qz, qw), got {pose.tolist()}")
        self.position = np.clip(pose[:3], self.limits.workspace_min, self.limits.workspace_max)
        self.rotation = quat_to_matrix(pose[3:])
        if gripper_width is not None:
            self.gripper_width = float(
                np.clip(gripper_width, self.limits.gripper_min_width, self.limits.gripper_max_width)
            )
        self._linear[:] = 0
        self._angular[:] = 0
        self._gripper_velocity = 0.0
        self._last_step = now
        self.initialized = True

    def set_twist(self, stamp: float, linear: np.ndarray, angular: np.ndarray, gripper: float = 0.0) -> bool:
        """Latest device input: linear (m/s), angular (rad/s), gripper in [-1, 1] (negative
        closes). Non-finite input is ignored (returns False) and counts as no input."""
        linear = np.asarray(linear, dtype=np.float64).reshape(3)
        angular = np.asarray(angular, dtype=np.float64).reshape(3)
        if not (np.all(np.isfinite(linear)) and np.all(np.isfinite(angular)) and np.isfinite(gripper)):
            return False
        self._linear, self._angular = linear, angular
        self._gripper_velocity = float(np.clip(gripper, -1.0, 1.0)) * self.limits.gripper_speed
        self._twist_stamp = float(stamp)
        return True

    def set_gripper(self, width: float) -> None:
        """Absolute gripper target (e.g. a button that opens or closes)."""
        self.gripper_width = float(np.clip(width, self.limits.gripper_min_width, self.limits.gripper_max_width))
        self._gripper_velocity = 0.0

    def step(self, now: float) -> np.ndarray:
        """Advance to `now` and return the command (x, y, z, qx, qy, qz, qw, gripper_width)."""
        if not self.initialized:
            raise RuntimeError("TeleopIntegrator.step before reset(): the start pose is unknown")
        dt = 0.0 if self._last_step is None else now - self._last_step
        dt = float(np.clip(dt, 0.0, self.limits.max_step_s))
        self._last_step = now
        if now - self._twist_stamp <= self.limits.twist_timeout_s:
            linear = _limit(self._linear, self.limits.max_linear_speed)
            angular = _limit(self._angular, self.limits.max_angular_speed)
            gripper_velocity = self._gripper_velocity
        else:
            linear = angular = np.zeros(3)
            gripper_velocity = 0.0
        if self.frame == "tool":
            linear = self.rotation @ linear
            self.rotation = self.rotation @ _rotation_from_vector(angular * dt)
        else:
            self.rotation = _rotation_from_vector(angular * dt) @ self.rotation
        # Re-orthonormalise so thousands of small steps do not drift off SO(3).
        u, _, vt = np.linalg.svd(self.rotation)
        self.rotation = u @ vt
        self.position = np.clip(self.position + linear * dt, self.limits.workspace_min, self.limits.workspace_max)
        self.gripper_width = float(
            np.clip(
                self.gripper_width + gripper_velocity * dt,
                self.limits.gripper_min_width,
                self.limits.gripper_max_width,
            )
        )
        return self.command()

    def command(self) -> np.ndarray:
        return np.concatenate([self.position, matrix_to_quat(self.rotation), [self.gripper_width]])
