"""From action chunks to safe, time-stamped commands at the command rate (numpy only).

The policy node is thin glue around this module: it hands every new chunk to a
`Commander`, calls `Commander.step(now)` at the command rate (e.g. 50 Hz) and
publishes what comes back. Everything that decides *what* leaves for the robot
lives here, so it is tested without ROS:

- Scheduling: chunk action j is due at observation_time + j * action_period. When a
  chunk arrives, actions whose time has passed are dropped (they were meant for a
  moment that is gone; executing them late would replay the past). The trajectory
  starts at the last command actually sent, so a new chunk never makes the target
  jump.
- Interpolation between due times: linear in position, slerp in rotation, linear in
  gripper width.
- Safety, before anything leaves: NaN/inf rejection, a workspace box (clamp or
  reject), a limit on linear and angular speed and on the step per command, a bound
  on how far the target may lead the measured pose, gripper width limits.
- A watchdog: no command while robot state, camera frames or the policy's chunks are
  stale; when commanding resumes it starts again from the measured pose.

Times are seconds on one clock (the node's), the same the observation stamps use.
Python 3.10 and numpy 1.21 compatible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from policy.config_io import documented
from policy.geometry import matrix_to_quat, rot6d_to_matrix
from policy.spec import ActionSpec

# Floating-point slack for "did a command respect a limit" checks.
_TOLERANCE = 1e-6


# ----------------------------------------------------------------------------- poses


@dataclass(frozen=True)
class PoseCommand:
    """One end-effector command: where the arm should be at `stamp` (s)."""

    stamp: float
    position: np.ndarray  # (3,) m, base frame
    quat_xyzw: np.ndarray  # (4,) unit quaternion
    gripper_width: float  # m

    def is_finite(self) -> bool:
        return bool(
            math.isfinite(self.stamp)
            and np.all(np.isfinite(self.position))
            and np.all(np.isfinite(self.quat_xyzw))
            and math.isfinite(self.gripper_width)
        )


@dataclass(frozen=True)
class JointCommand:
    """One joint-space command: the arm's joint positions at `stamp` (s)."""

    stamp: float
    joints: np.ndarray  # (7,) rad
    gripper_width: float  # m

    def is_finite(self) -> bool:
        return bool(
            math.isfinite(self.stamp) and np.all(np.isfinite(self.joints)) and math.isfinite(self.gripper_width)
        )


@dataclass(frozen=True)
class JointModel:
    """What the joint-space safety filter needs to know about the arm (the policy core
    does not import robots/: the node hands this over from robots.franka): joint
    position and velocity limits, and the TCP position of a joint configuration (so a
    joint target is held in the same workspace box as a pose target)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    velocity: tuple[float, ...]  # rad/s per joint
    tcp_position: Callable[[np.ndarray], np.ndarray]


def normalize_quat(quat_xyzw: np.ndarray) -> np.ndarray:
    q = np.asarray(quat_xyzw, dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not math.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"quaternion must be finite and non-zero, got {q.tolist()}")
    return q / norm


def quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (rad) of the rotation between two unit quaternions (sign-invariant)."""
    dot = abs(float(np.dot(a, b)))
    return 2.0 * math.acos(min(1.0, dot))


def slerp(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions along the short arc."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    dot = float(np.dot(a, b))
    if dot < 0.0:  # q and -q are the same rotation: take the shorter way round
        b, dot = -b, -dot
    if dot > 0.9995:  # nearly equal: linear interpolation is exact enough and stable
        q = a + fraction * (b - a)
        return q / np.linalg.norm(q)
    theta = math.acos(min(1.0, dot))
    sin_theta = math.sin(theta)
    q = (math.sin((1.0 - fraction) * theta) * a + math.sin(fraction * theta) * b) / sin_theta
    return q / np.linalg.norm(q)


# ---------------------------------------------------------------------------- safety


@dataclass(frozen=True)
class SafetyLimits:
    """Limits every command is held to before it leaves the node.

    workspace_mode: "clamp" moves a target outside the box onto its surface; "reject"
    drops the command (the arm holds its last target).
    max_step_m / max_step_rad bound the change between consecutive commands whatever
    the time between them; the speed limits bound it by elapsed time.
    max_lead_m / max_lead_rad bound the distance and rotation between the command and the
    measured pose (an impedance controller turns that difference into force and torque).
    """

    # The box is the robot's (its table, its reach): a robot description states it
    # (robots/descriptions/*.yaml); every other limit has a default sized for a Franka arm.
    workspace_low: tuple[float, float, float] = documented(
        None, "lower corner of the box every target is held in (m, base frame: x, y, z)"
    )
    workspace_high: tuple[float, float, float] = documented(None, "upper corner of that box (m, base frame)")
    workspace_mode: str = documented(
        "clamp",
        "clamp: a target outside the box moves onto its surface; reject: it is dropped",
        choices=("clamp", "reject"),
    )
    max_linear_speed_m_s: float = documented(1.0, "largest speed of the commanded position (m/s)", low=0.0)
    max_angular_speed_rad_s: float = documented(2.0, "largest angular speed of the commanded rotation (rad/s)", low=0.0)
    max_step_m: float = documented(0.03, "largest position change between two commands (m)", low=0.0)
    max_step_rad: float = documented(0.1, "largest rotation change between two commands (rad)", low=0.0)
    max_lead_m: float = documented(0.15, "largest distance between the command and the measured position (m)", low=0.0)
    max_lead_rad: float = documented(0.5, "largest rotation between the command and the measured pose (rad)", low=0.0)
    gripper_min_m: float = documented(0.0, "smallest commanded gripper opening (m, both fingers)", low=0.0)
    gripper_max_m: float = documented(0.08, "largest commanded gripper opening (m, both fingers)", low=0.0)
    # Joint-space commands (the joint_position embodiment) are held to these as well.
    max_joint_speed_fraction: float = documented(
        0.5, "joint-space commands: largest joint speed, as a fraction of each joint's rated speed", 0.0, 1.0
    )
    max_joint_step_rad: float = documented(
        0.05, "joint-space commands: largest joint change per command (rad)", low=0.0
    )
    max_joint_lead_rad: float = documented(
        0.3, "joint-space commands: largest difference between a commanded and a measured joint (rad)", low=0.0
    )
    joint_limit_margin_rad: float = documented(
        0.05, "joint-space commands stay this far inside each joint's position limits (rad)", low=0.0
    )

    def __post_init__(self) -> None:
        if self.workspace_low is None or self.workspace_high is None:
            raise ValueError("workspace_low and workspace_high are required: the robot description states the box")
        low, high = np.asarray(self.workspace_low, float), np.asarray(self.workspace_high, float)
        if low.shape != (3,) or high.shape != (3,) or not np.all(np.isfinite(low)) or not np.all(np.isfinite(high)):
            raise ValueError(f"workspace_low/high must be 3 finite numbers each, got {low.tolist()}, {high.tolist()}")
        if not np.all(low < high):
            raise ValueError(f"workspace_low {low.tolist()} must be below workspace_high {high.tolist()} on every axis")
        if self.workspace_mode not in ("clamp", "reject"):
            raise ValueError(f"workspace_mode must be 'clamp' or 'reject', got {self.workspace_mode!r}")
        for name in (
            "max_linear_speed_m_s",
            "max_angular_speed_rad_s",
            "max_step_m",
            "max_step_rad",
            "max_lead_m",
            "max_lead_rad",
            "max_joint_speed_fraction",
            "max_joint_step_rad",
            "max_joint_lead_rad",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if not (math.isfinite(self.joint_limit_margin_rad) and self.joint_limit_margin_rad >= 0):
            raise ValueError(f"joint_limit_margin_rad must be >= 0, got {self.joint_limit_margin_rad}")
        if not (0 <= self.gripper_min_m < self.gripper_max_m):
            raise ValueError(f"need 0 <= gripper_min_m < gripper_max_m, got {self.gripper_min_m}, {self.gripper_max_m}")

    def allowed_step(self, dt: float) -> tuple[float, float]:
        """Largest position (m) and rotation (rad) change allowed over dt seconds."""
        dt = max(0.0, dt)
        return (
            min(self.max_step_m, self.max_linear_speed_m_s * dt),
            min(self.max_step_rad, self.max_angular_speed_rad_s * dt),
        )


def limit_violations(
    limits: SafetyLimits,
    command: PoseCommand,
    previous: PoseCommand | None = None,
    measured_position: np.ndarray | None = None,
) -> list[str]:
    """Every limit `command` breaks (empty when it is safe). Independent of how the
    filter works, so tests and benchmarks can audit what actually left the node."""
    problems: list[str] = []
    if not command.is_finite():
        return ["non-finite values"]
    low, high = np.asarray(limits.workspace_low), np.asarray(limits.workspace_high)
    if np.any(command.position < low - _TOLERANCE) or np.any(command.position > high + _TOLERANCE):
        problems.append(f"position {np.round(command.position, 4).tolist()} outside the workspace box")
    if abs(float(np.linalg.norm(command.quat_xyzw)) - 1.0) > 1e-3:
        problems.append("quaternion is not unit length")
    if not limits.gripper_min_m - _TOLERANCE <= command.gripper_width <= limits.gripper_max_m + _TOLERANCE:
        problems.append(f"gripper width {command.gripper_width:.4f} m outside the limits")
    if previous is not None:
        max_step, max_rad = limits.allowed_step(command.stamp - previous.stamp)
        step = float(np.linalg.norm(command.position - previous.position))
        if step > max_step + _TOLERANCE:
            problems.append(f"position step {step:.4f} m exceeds {max_step:.4f} m")
        angle = quat_angle(command.quat_xyzw, previous.quat_xyzw)
        if angle > max_rad + 1e-4:
            problems.append(f"rotation step {angle:.4f} rad exceeds {max_rad:.4f} rad")
    if measured_position is not None:
        lead = float(np.linalg.norm(command.position - np.asarray(measured_position)))
        if lead > limits.max_lead_m + _TOLERANCE:
            problems.append(f"command leads the measured position by {lead:.4f} m > {limits.max_lead_m} m")
    return problems


def audit_command(
    limits: SafetyLimits, command: PoseCommand, previous: PoseCommand | None, measured: PoseCommand | None
) -> list[str]:
    """Problems of a command seen from outside the node (tests, benchmarks): the absolute
    limits, and a step from the previous command within the speed limits, unless it is a
    restart (after the watchdog or ~/enable), which moves at most one maximum step from
    the measured pose instead."""
    problems = limit_violations(limits, command, previous)
    if not problems or measured is None:
        return problems
    restart = PoseCommand(
        command.stamp
        - limits.max_step_m / limits.max_linear_speed_m_s
        - limits.max_step_rad / limits.max_angular_speed_rad_s,
        measured.position,
        measured.quat_xyzw,
        measured.gripper_width,
    )
    from_measured = limit_violations(limits, command, restart)
    return [] if not from_measured else problems


@dataclass(frozen=True)
class FilterResult:
    """What the safety filter made of a target: the command to send (None when
    rejected), why it was rejected, and which limits changed it."""

    command: PoseCommand | JointCommand | None
    rejected: str | None = None
    adjustments: tuple[str, ...] = ()


class SafetyFilter:
    """Clamps or rejects targets so that every command that leaves respects `limits`
    relative to the previous command sent (its anchor)."""

    def __init__(self, limits: SafetyLimits) -> None:
        self.limits = limits
        self._low = np.asarray(limits.workspace_low, dtype=np.float64)
        self._high = np.asarray(limits.workspace_high, dtype=np.float64)
        self.previous: PoseCommand | None = None

    def anchor(self, command: PoseCommand | None) -> None:
        """Set what the next command is limited against (None: no limit yet)."""
        self.previous = command

    def apply(
        self,
        target: PoseCommand,
        measured_position: np.ndarray | None = None,
        measured_quat: np.ndarray | None = None,
    ) -> FilterResult:
        limits = self.limits
        if not target.is_finite():
            return FilterResult(None, "target has NaN or infinite values")
        try:
            quat = normalize_quat(target.quat_xyzw)
        except ValueError as error:
            return FilterResult(None, str(error))
        adjustments: list[str] = []
        position = np.asarray(target.position, dtype=np.float64)
        if np.any(position < self._low) or np.any(position > self._high):
            if limits.workspace_mode == "reject":
                return FilterResult(
                    None,
                    f"target {np.round(position, 4).tolist()} m outside the workspace box "
                    f"{list(limits.workspace_low)}..{list(limits.workspace_high)}",
                )
            position = np.clip(position, self._low, self._high)
            adjustments.append("workspace")
        gripper = float(target.gripper_width)
        if not limits.gripper_min_m <= gripper <= limits.gripper_max_m:
            gripper = min(limits.gripper_max_m, max(limits.gripper_min_m, gripper))
            adjustments.append("gripper")

        previous = self.previous
        if previous is not None:
            max_step, max_rad = limits.allowed_step(target.stamp - previous.stamp)
            delta = position - previous.position
            distance = float(np.linalg.norm(delta))
            if distance > max_step:
                position = previous.position + delta * (max_step / distance)
                adjustments.append("speed")
            angle = quat_angle(previous.quat_xyzw, quat)
            if angle > max_rad:
                quat = slerp(previous.quat_xyzw, quat, max_rad / angle)
                adjustments.append("angular_speed")
        if measured_position is not None:
            measured = np.asarray(measured_position, dtype=np.float64)
            lead = position - measured
            distance = float(np.linalg.norm(lead))
            if distance > limits.max_lead_m:
                pulled = measured + lead * (limits.max_lead_m / distance)
                # Pulling towards the arm must not break the step limit either: take the
                # point of the step-limited segment nearest to the pulled target.
                if previous is not None:
                    max_step, _ = limits.allowed_step(target.stamp - previous.stamp)
                    delta = pulled - previous.position
                    step = float(np.linalg.norm(delta))
                    if step > max_step:
                        pulled = previous.position + delta * (max_step / step)
                position = np.clip(pulled, self._low, self._high)
                adjustments.append("lead")
        if measured_quat is not None:
            measured_q = normalize_quat(measured_quat)
            angle = quat_angle(measured_q, quat)
            if angle > limits.max_lead_rad:
                pulled_q = slerp(measured_q, quat, limits.max_lead_rad / angle)
                if previous is not None:
                    _, max_rad = limits.allowed_step(target.stamp - previous.stamp)
                    step = quat_angle(previous.quat_xyzw, pulled_q)
                    if step > max_rad:
                        pulled_q = slerp(previous.quat_xyzw, pulled_q, max_rad / step)
                quat = pulled_q
                adjustments.append("angular_lead")
        command = PoseCommand(float(target.stamp), position, quat, gripper)
        self.previous = command
        return FilterResult(command, None, tuple(adjustments))


class JointSafetyFilter:
    """The joint-space counterpart of SafetyFilter: every joint target is held inside the
    joint position limits (less a margin), to a joint speed and a step per command from
    the previous command, near the measured joints, and with its TCP inside the
    workspace box (a target whose TCP leaves the box is cut back along the way from the
    previous command in clamp mode, or dropped in reject mode)."""

    def __init__(self, limits: SafetyLimits, joint_model: JointModel) -> None:
        self.limits = limits
        self.model = joint_model
        margin = limits.joint_limit_margin_rad
        self._lower = np.asarray(joint_model.lower, dtype=np.float64) + margin
        self._upper = np.asarray(joint_model.upper, dtype=np.float64) - margin
        self._velocity = np.asarray(joint_model.velocity, dtype=np.float64) * limits.max_joint_speed_fraction
        self._low = np.asarray(limits.workspace_low, dtype=np.float64)
        self._high = np.asarray(limits.workspace_high, dtype=np.float64)
        self.previous: JointCommand | None = None

    def anchor(self, command: JointCommand | None) -> None:
        self.previous = command

    def _inside(self, joints: np.ndarray) -> bool:
        tcp = np.asarray(self.model.tcp_position(joints), dtype=np.float64)
        return bool(np.all(tcp >= self._low - _TOLERANCE) and np.all(tcp <= self._high + _TOLERANCE))

    def apply(self, target: JointCommand, measured: JointCommand | None = None) -> FilterResult:
        limits = self.limits
        if not target.is_finite() or np.asarray(target.joints).shape != self._lower.shape:
            return FilterResult(None, f"target must be {self._lower.size} finite joint positions")
        adjustments: list[str] = []
        joints = np.asarray(target.joints, dtype=np.float64)
        clipped = np.clip(joints, self._lower, self._upper)
        if not np.array_equal(clipped, joints):
            joints = clipped
            adjustments.append("joint_limits")
        gripper = float(target.gripper_width)
        if not limits.gripper_min_m <= gripper <= limits.gripper_max_m:
            gripper = min(limits.gripper_max_m, max(limits.gripper_min_m, gripper))
            adjustments.append("gripper")
        previous = self.previous
        if previous is not None:
            dt = max(0.0, target.stamp - previous.stamp)
            allowed = np.minimum(self._velocity * dt, limits.max_joint_step_rad)
            delta = joints - previous.joints
            scale = float(np.min(np.where(np.abs(delta) > allowed, allowed / np.maximum(np.abs(delta), 1e-12), 1.0)))
            if scale < 1.0:  # one common scale keeps the direction of motion in joint space
                joints = previous.joints + delta * scale
                adjustments.append("speed")
        if measured is not None:
            lead = joints - np.asarray(measured.joints, dtype=np.float64)
            largest = float(np.max(np.abs(lead)))
            if largest > limits.max_joint_lead_rad:
                joints = measured.joints + lead * (limits.max_joint_lead_rad / largest)
                adjustments.append("lead")
        if not self._inside(joints):
            if limits.workspace_mode == "reject" or previous is None or not self._inside(previous.joints):
                return FilterResult(None, "target's TCP outside the workspace box")
            # Bisect along the way from the previous command for the last configuration inside.
            low, high = 0.0, 1.0
            for _ in range(12):
                middle = 0.5 * (low + high)
                low, high = (
                    (middle, high)
                    if self._inside(previous.joints + middle * (joints - previous.joints))
                    else (
                        low,
                        middle,
                    )
                )
            joints = previous.joints + low * (joints - previous.joints)
            adjustments.append("workspace")
        command = JointCommand(float(target.stamp), joints, gripper)
        self.previous = command
        return FilterResult(command, None, tuple(adjustments))


# ------------------------------------------------------------------------ scheduling

Command = PoseCommand | JointCommand


def actions_to_waypoints(stamps: np.ndarray, actions: np.ndarray, action_spec: ActionSpec) -> list[PoseCommand]:
    """(N,) stamps and (N, d) absolute end-effector actions (position, rotation_6d,
    gripper) as waypoints. Stops at the first action that is not finite or not a
    rotation: nothing after a corrupt action can be trusted to connect to it."""
    position_slice = action_spec.slice("position")
    rotation_slice = action_spec.slice("rotation_6d")
    gripper_slice = action_spec.slice("gripper")
    waypoints: list[PoseCommand] = []
    for stamp, action in _checked_rows(stamps, actions, action_spec):
        if not (math.isfinite(stamp) and np.all(np.isfinite(action))):
            break
        try:
            quat = matrix_to_quat(rot6d_to_matrix(action[rotation_slice]))
        except ValueError:
            break
        waypoints.append(
            PoseCommand(float(stamp), action[position_slice].copy(), quat, float(action[gripper_slice][0]))
        )
    return waypoints


def joint_actions_to_waypoints(stamps: np.ndarray, actions: np.ndarray, action_spec: ActionSpec) -> list[JointCommand]:
    """(N,) stamps and (N, d) joint-position actions (joints, gripper) as waypoints, up
    to the first non-finite one."""
    joint_slice, gripper_slice = action_spec.slice("joints"), action_spec.slice("gripper")
    waypoints: list[JointCommand] = []
    for stamp, action in _checked_rows(stamps, actions, action_spec):
        if not (math.isfinite(stamp) and np.all(np.isfinite(action))):
            break
        waypoints.append(JointCommand(float(stamp), action[joint_slice].copy(), float(action[gripper_slice][0])))
    return waypoints


def _checked_rows(stamps: np.ndarray, actions: np.ndarray, action_spec: ActionSpec) -> zip:
    stamps = np.asarray(stamps, dtype=np.float64).reshape(-1)
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape != (stamps.shape[0], action_spec.dim):
        raise ValueError(
            f"actions must have shape ({stamps.shape[0]}, {action_spec.dim}) for [{action_spec.describe()}], "
            f"got {actions.shape}"
        )
    return zip(stamps, actions, strict=True)


def interpolate(a: Command, b: Command, fraction: float, stamp: float) -> Command:
    """The command a `fraction` of the way from `a` to `b`: linear in position, joints and
    gripper width, spherical (slerp) in rotation."""
    width = a.gripper_width + fraction * (b.gripper_width - a.gripper_width)
    if isinstance(a, JointCommand) and isinstance(b, JointCommand):
        return JointCommand(stamp, a.joints + fraction * (b.joints - a.joints), width)
    assert isinstance(a, PoseCommand) and isinstance(b, PoseCommand)
    return PoseCommand(
        stamp, a.position + fraction * (b.position - a.position), slerp(a.quat_xyzw, b.quat_xyzw, fraction), width
    )


def restamped(command: Command, stamp: float) -> Command:
    return replace(command, stamp=stamp)


class ChunkScheduler:
    """The trajectory being executed: a start command (the last one sent) followed by
    the not-yet-due actions of the newest chunk, sampled by time. End-effector actions
    (position, rotation_6d, gripper) or joint actions (joints, gripper), by the spec."""

    def __init__(self, action_spec: ActionSpec) -> None:
        names = set(action_spec.names)
        if "joints" in names:
            self._to_waypoints: Callable[..., list] = joint_actions_to_waypoints
            required: tuple[str, ...] = ("joints", "gripper")
        else:
            self._to_waypoints = actions_to_waypoints
            required = ("position", "rotation_6d", "gripper")
        for name in required:
            action_spec.slice(name)  # raises KeyError naming the component when absent
        self.action_spec = action_spec
        self._waypoints: list[Command] = []

    def clear(self) -> None:
        self._waypoints = []

    @property
    def end_stamp(self) -> float | None:
        return self._waypoints[-1].stamp if self._waypoints else None

    def set_chunk(self, now: float, stamps: np.ndarray, actions: np.ndarray, start: Command | None) -> tuple[int, int]:
        """Replace the trajectory. Returns (dropped, invalid): actions due at or before
        `now` are dropped; `invalid` counts actions cut off at a non-finite one."""
        valid = self._to_waypoints(stamps, actions, self.action_spec)
        invalid = len(np.asarray(stamps).reshape(-1)) - len(valid)
        future = [w for w in valid if w.stamp > now]
        dropped = len(valid) - len(future)
        if not future:
            # Everything is in the past: keep the current trajectory rather than none.
            return dropped, invalid
        self._waypoints = ([restamped(start, now)] if start is not None else []) + future
        return dropped, invalid

    def sample(self, now: float) -> Command | None:
        """The interpolated target at `now`; None past the last waypoint or with none."""
        points = self._waypoints
        if not points or now > points[-1].stamp + _TOLERANCE:
            return None
        if now <= points[0].stamp:
            return restamped(points[0], now)
        stamps = [p.stamp for p in points]
        i = int(np.searchsorted(stamps, now, side="right")) - 1
        i = min(max(i, 0), len(points) - 2)
        a, b = points[i], points[i + 1]
        span = b.stamp - a.stamp
        fraction = 1.0 if span <= 0 else min(1.0, max(0.0, (now - a.stamp) / span))
        return interpolate(a, b, fraction, now)


# -------------------------------------------------------------------------- watchdog


@dataclass(frozen=True)
class WatchdogConfig:
    """How old (s, by arrival time) each input may be before commanding stops."""

    state_timeout_s: float = documented(0.2, "commanding stops when the robot state is older than this (s)", low=0.0)
    observation_timeout_s: float = documented(
        0.5, "commanding stops when the newest camera frame of any camera is older than this (s)", low=0.0
    )
    chunk_timeout_s: float = documented(
        1.5, "commanding stops when the policy's newest action chunk is older than this (s)", low=0.0
    )

    def __post_init__(self) -> None:
        for name in ("state_timeout_s", "observation_timeout_s", "chunk_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")


@dataclass(frozen=True)
class WatchdogStatus:
    ok: bool
    reasons: tuple[str, ...] = ()


class Watchdog:
    def __init__(self, config: WatchdogConfig) -> None:
        self.config = config
        self.last_state: float | None = None
        self.last_observation: float | None = None
        self.last_chunk: float | None = None

    def reset(self) -> None:
        self.last_state = self.last_observation = self.last_chunk = None

    def check(self, now: float) -> WatchdogStatus:
        cfg = self.config
        reasons = []
        for what, last, timeout in (
            ("robot state", self.last_state, cfg.state_timeout_s),
            ("camera frames", self.last_observation, cfg.observation_timeout_s),
            ("policy chunks", self.last_chunk, cfg.chunk_timeout_s),
        ):
            if last is None:
                reasons.append(f"no {what} yet")
            elif now - last > timeout:
                reasons.append(f"{what} stale ({now - last:.2f} s > {timeout} s)")
        return WatchdogStatus(not reasons, tuple(reasons))


# ------------------------------------------------------------------------- commander


@dataclass
class CommanderCounters:
    chunks: int = 0
    dropped_actions: int = 0  # due before their chunk arrived
    invalid_actions: int = 0  # non-finite or not a rotation
    commands: int = 0
    rejected_commands: int = 0
    adjusted_commands: int = 0
    watchdog_stops: int = 0  # transitions from commanding to stopped by the watchdog
    invalid_states: int = 0  # measured states that were not finite (ignored)
    adjustments: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CommandStep:
    """One command period's outcome. `command` is None when nothing is to be sent;
    `status` says why: commanding, disabled, watchdog, idle (no due actions) or rejected."""

    command: Command | None
    status: str
    reasons: tuple[str, ...] = ()
    adjustments: tuple[str, ...] = ()


class Commander:
    """Chunks in, safe commands out: scheduling, interpolation, safety and watchdog.

    End-effector actions become PoseCommands (update the measured state with
    `update_state`); joint actions (a spec with a `joints` component) become
    JointCommands held by a JointSafetyFilter, which needs the arm's `joint_model`
    (update the measured state with `update_joint_state`)."""

    def __init__(
        self,
        action_spec: ActionSpec,
        limits: SafetyLimits,
        watchdog: WatchdogConfig | None = None,
        enabled: bool = False,
        command_period_s: float = 0.02,
        joint_model: JointModel | None = None,
    ) -> None:
        if not (math.isfinite(command_period_s) and command_period_s > 0):
            raise ValueError(f"command_period_s must be a positive number of seconds, got {command_period_s}")
        self.command_period_s = command_period_s
        self.scheduler = ChunkScheduler(action_spec)
        self.joint_space = "joints" in action_spec.names
        if self.joint_space and joint_model is None:
            raise ValueError("joint actions need the arm's joint_model (limits and forward kinematics)")
        self.joint_model = joint_model
        self.safety: SafetyFilter | JointSafetyFilter = self._filter(limits)
        self.watchdog = Watchdog(watchdog or WatchdogConfig())
        self.counters = CommanderCounters()
        self.enabled = enabled
        self.measured: Command | None = None  # stamped with its arrival time on the node's clock
        self.last_status = "disabled" if not enabled else "idle"

    def _filter(self, limits: SafetyLimits) -> SafetyFilter | JointSafetyFilter:
        if self.joint_space:
            assert self.joint_model is not None
            return JointSafetyFilter(limits, self.joint_model)
        return SafetyFilter(limits)

    @property
    def limits(self) -> SafetyLimits:
        return self.safety.limits

    def set_limits(self, limits: SafetyLimits) -> None:
        """New safety limits from the next command on (the last command sent stays the
        anchor, so the next one is held to the new limits relative to it)."""
        previous = self.safety.previous
        self.safety = self._filter(limits)
        self.safety.anchor(previous)  # type: ignore[arg-type]

    def set_enabled(self, enabled: bool) -> None:
        """Disabling stops commanding at once; enabling starts from the measured state."""
        if enabled != self.enabled:
            self.safety.anchor(None)
            self.scheduler.clear()
        self.enabled = enabled

    def reset(self) -> None:
        """A new episode: forget the trajectory and the watchdog's history of chunks."""
        self.scheduler.clear()
        self.safety.anchor(None)
        self.watchdog.last_chunk = None

    def update_state(self, now: float, position: np.ndarray, quat_xyzw: np.ndarray, gripper_width: float) -> bool:
        """The measured end-effector pose. A non-finite one is ignored and counted: the
        watchdog then stops commanding once the last good state is too old. Returns
        whether the state was taken."""
        position = np.asarray(position, dtype=np.float64)
        try:
            quat = normalize_quat(quat_xyzw)
        except ValueError:
            quat = None
        if quat is None or not np.all(np.isfinite(position)) or not math.isfinite(gripper_width):
            self.counters.invalid_states += 1
            return False
        self.measured = PoseCommand(now, position, quat, float(gripper_width))
        self.watchdog.last_state = now
        return True

    def update_joint_state(self, now: float, joints: np.ndarray, gripper_width: float) -> bool:
        """The measured joint positions (joint actions); non-finite ones are ignored and counted."""
        joints = np.asarray(joints, dtype=np.float64)
        if not np.all(np.isfinite(joints)) or not math.isfinite(gripper_width):
            self.counters.invalid_states += 1
            return False
        self.measured = JointCommand(now, joints, float(gripper_width))
        self.watchdog.last_state = now
        return True

    def note_observation(self, now: float) -> None:
        self.watchdog.last_observation = now

    def _start(self, now: float) -> Command | None:
        """Where a new trajectory starts: the last command sent, else the measured state."""
        if self.safety.previous is not None:
            return self.safety.previous
        if self.measured is not None:
            return restamped(self.measured, now)
        return None

    def set_chunk(self, now: float, stamps: np.ndarray, actions: np.ndarray) -> int:
        """Take a new chunk; returns how many of its actions were already due (dropped)."""
        dropped, invalid = self.scheduler.set_chunk(now, stamps, actions, self._start(now))
        self.watchdog.last_chunk = now
        self.counters.chunks += 1
        self.counters.dropped_actions += dropped
        self.counters.invalid_actions += invalid
        return dropped

    def _apply_safety(self, target: Command) -> FilterResult:
        measured = self.measured
        if isinstance(self.safety, JointSafetyFilter):
            return self.safety.apply(target, measured)  # type: ignore[arg-type]
        return self.safety.apply(
            target,  # type: ignore[arg-type]
            measured.position if isinstance(measured, PoseCommand) else None,
            measured.quat_xyzw if isinstance(measured, PoseCommand) else None,
        )

    def step(self, now: float) -> CommandStep:
        """The command to send at `now`, or None with the reason."""
        if not self.enabled:
            return self._stopped(CommandStep(None, "disabled"))
        status = self.watchdog.check(now)
        if not status.ok:
            if self.last_status == "commanding":
                self.counters.watchdog_stops += 1
            # Resuming later must start from where the arm is, not from an old command.
            self.safety.anchor(None)
            return self._stopped(CommandStep(None, "watchdog", status.reasons))
        target = self.scheduler.sample(now)
        if target is None:
            return self._stopped(CommandStep(None, "idle", ("no due actions",)))
        if self.safety.previous is None and self.measured is not None:
            # (Re)start from the measured state as if it had been the previous command, so
            # the first command moves at most one command period's worth away from it.
            self.safety.anchor(restamped(self.measured, now - self.command_period_s))  # type: ignore[arg-type]
        result = self._apply_safety(target)
        if result.command is None:
            self.counters.rejected_commands += 1
            return self._stopped(CommandStep(None, "rejected", (result.rejected or "rejected",)))
        self.counters.commands += 1
        if result.adjustments:
            self.counters.adjusted_commands += 1
            for name in result.adjustments:
                self.counters.adjustments[name] = self.counters.adjustments.get(name, 0) + 1
        self.last_status = "commanding"
        return CommandStep(result.command, "commanding", (), result.adjustments)

    def _stopped(self, step: CommandStep) -> CommandStep:
        self.last_status = step.status
        return step
