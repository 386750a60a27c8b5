"""A teleoperated recording session, without ROS: what `df_policy.teleop_recorder_node` glues
to its topics, services and terminal.

* device input -> twist: `joy_to_input` (sensor_msgs/Joy axes and buttons, e.g. a
  SpaceMouse's /spacenav/joy or a gamepad) and `scale_twist` (geometry_msgs/Twist, e.g.
  /spacenav/twist, normalised to [-1, 1] by the driver);
* `TeleopSession`: keeps the newest input of each source (stale input counts as none),
  integrates it into a clamped target with `TeleopIntegrator` at the control rate,
  records every sample and the command through a `Recorder`, and runs the episode
  lifecycle for services and keys (serialised: a key and a service call may race);
* the terminal: `key_action` (one key per command) and `format_status` (the one-line
  live status), with `RateMeter` for the per-stream receive rates it shows.

numpy only (plus the recorder); every function here is tested without ROS.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .recorder import IDLE, RECORDING, Recorder
from .schema import StoreError
from .teleop import TeleopIntegrator

# ------------------------------------------------------------------ device input


@dataclass(frozen=True)
class TeleopInput:
    """One device reading: linear (m/s) and angular (rad/s) velocity, gripper in [-1, 1]
    (negative closes, positive opens)."""

    linear: np.ndarray
    angular: np.ndarray
    gripper: float = 0.0

    def vector(self) -> np.ndarray:
        """(vx, vy, vz, wx, wy, wz, gripper): the recorded "teleop" stream."""
        return np.concatenate([self.linear, self.angular, [self.gripper]])


ZERO_INPUT = TeleopInput(np.zeros(3), np.zeros(3), 0.0)


@dataclass(frozen=True)
class JoyMapping:
    """Which Joy axes and buttons mean what. The defaults fit spacenav_node's /spacenav/joy
    (axes x, y, z, roll, pitch, yaw in [-1, 1]; button 0 left, 1 right). An axis index of
    -1 leaves that component at zero; a negative scale inverts an axis."""

    linear_axes: tuple[int, int, int] = (0, 1, 2)
    angular_axes: tuple[int, int, int] = (3, 4, 5)
    linear_scale: float = 0.25  # m/s at full deflection (TeleopLimits.max_linear_speed caps it)
    angular_scale: float = 1.0  # rad/s at full deflection
    deadzone: float = 0.05  # |axis| below this is zero (a resting device drifts a little)
    close_button: int = 0
    open_button: int = 1

    def __post_init__(self) -> None:
        if len(self.linear_axes) != 3 or len(self.angular_axes) != 3:
            raise ValueError(
                f"linear_axes and angular_axes need 3 indices each (x, y, z), got "
                f"{list(self.linear_axes)} and {list(self.angular_axes)}"
            )
        if not 0.0 <= self.deadzone < 1.0:
            raise ValueError(f"deadzone must be in [0, 1), got {self.deadzone}")


def apply_deadzone(value: float, deadzone: float) -> float:
    """Zero inside the deadzone, rescaled outside so full deflection stays 1."""
    magnitude = abs(value)
    if magnitude <= deadzone:
        return 0.0
    return float(np.sign(value) * min(1.0, (magnitude - deadzone) / (1.0 - deadzone)))


def _axis(axes: Sequence[float], index: int, deadzone: float) -> float:
    if index < 0 or index >= len(axes):
        return 0.0
    value = float(axes[index])
    return apply_deadzone(value, deadzone) if np.isfinite(value) else 0.0


def gripper_from_buttons(buttons: Sequence[int], mapping: JoyMapping) -> float:
    """-1 while the close button is held, +1 while the open button is held, else 0 (both
    held: 0, an ambiguous request does nothing)."""

    def pressed(index: int) -> bool:
        return 0 <= index < len(buttons) and bool(buttons[index])

    close, open_ = pressed(mapping.close_button), pressed(mapping.open_button)
    return float(open_) - float(close)


def joy_to_input(axes: Sequence[float], buttons: Sequence[int], mapping: JoyMapping) -> TeleopInput:
    """A Joy message's axes and buttons -> twist and gripper input. Missing axes (a device
    with fewer axes than the mapping names) and non-finite values read as zero."""
    linear = np.array([_axis(axes, i, mapping.deadzone) for i in mapping.linear_axes]) * mapping.linear_scale
    angular = np.array([_axis(axes, i, mapping.deadzone) for i in mapping.angular_axes]) * mapping.angular_scale
    return TeleopInput(linear, angular, gripper_from_buttons(buttons, mapping))


def scale_twist(
    linear: Sequence[float], angular: Sequence[float], linear_scale: float, angular_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """A device twist (spacenav_node publishes each axis in [-1, 1]) -> m/s and rad/s.
    Scales of 1 pass through a driver that already publishes physical units."""
    return (
        np.asarray(linear, dtype=np.float64).reshape(3) * linear_scale,
        np.asarray(angular, dtype=np.float64).reshape(3) * angular_scale,
    )


def joint_state_vector(
    names: Sequence[str],
    positions: Sequence[float],
    velocities: Sequence[float],
    wanted: Sequence[str],
) -> np.ndarray:
    """Positions then velocities of the `wanted` joints, in that order, from a JointState
    whose joints may come in any order; velocities are zero when the message has none.
    Raises ValueError naming missing joints or mismatched lengths."""
    if len(positions) != len(names):
        raise ValueError(f"JointState has {len(names)} names but {len(positions)} positions")
    if len(velocities) not in (0, len(names)):
        raise ValueError(f"JointState has {len(names)} names but {len(velocities)} velocities")
    index = {name: i for i, name in enumerate(names)}
    missing = [name for name in wanted if name not in index]
    if missing:
        raise ValueError(f"JointState lacks joints {missing}; it has {list(names)}")
    order = [index[name] for name in wanted]
    position = np.asarray(positions, dtype=np.float64)[order]
    velocity = np.asarray(velocities, dtype=np.float64)[order] if len(velocities) else np.zeros(len(wanted))
    return np.concatenate([position, velocity])


# ------------------------------------------------------------------- terminal

KEY_HELP = "keys: [s]tart  [e]nd (success)  [f]ail (end, unsuccessful)  [d]iscard  [q]uit  [h]elp"
_KEYS = {
    "s": "start",
    "e": "stop",
    "f": "stop_failed",
    "d": "discard",
    "q": "quit",
    "h": "help",
    "?": "help",
}


def key_action(key: str) -> str | None:
    """The action of one key press (case-insensitive), or None for other keys."""
    return _KEYS.get(key.lower()) if len(key) == 1 else None


class RateMeter:
    """Messages received per stream, turned into rates between two `rates()` calls."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._previous: dict[str, int] = {}
        self._previous_time: float | None = None
        self._lock = threading.Lock()

    def count(self, stream: str) -> None:
        with self._lock:
            self._counts[stream] = self._counts.get(stream, 0) + 1

    def rates(self, now: float) -> dict[str, float]:
        """Rates (Hz) since the previous call (empty on the first call)."""
        with self._lock:
            counts = dict(self._counts)
        previous, since = self._previous, self._previous_time
        self._previous, self._previous_time = counts, now
        if since is None or now <= since:
            return {}
        return {name: (count - previous.get(name, 0)) / (now - since) for name, count in counts.items()}


def _format_rate(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}"


def format_status(
    state: str,
    episode_id: str | None,
    seconds: float,
    rates: dict[str, float],
    streams: Sequence[str],
    dropped: int = 0,
    rejected: int = 0,
    problems: int = 0,
    last: str = "",
) -> str:
    """The one-line live status, e.g.
    `REC ep_000003  12.4 s | front 30 wrist 30 ee_pose 1000 ... Hz | drops 0 rejected 0`.
    Streams that receive nothing show 0 so a dead topic is visible at a glance."""
    rate_text = " ".join(f"{name} {_format_rate(rates.get(name, 0.0))}" for name in streams)
    if state == RECORDING:
        head = f"REC {episode_id}  {seconds:6.1f} s"
    elif state == IDLE:
        head = "idle" + (f" (last: {last})" if last else "")
    else:
        head = f"{state.upper()} {episode_id or ''}".rstrip()
    tail = f"drops {dropped} rejected {rejected}" + (f" problems {problems}" if problems else "")
    return f"{head} | {rate_text} Hz | {tail}"


# -------------------------------------------------------------------- session


class TeleopSession:
    """Device input -> integrated, clamped target -> recorder, plus the episode lifecycle.

    Call the `on_*` methods from subscription callbacks (any thread), `control_step(now)`
    from the control timer (it returns the command to publish), the lifecycle methods
    from services or keys. `now` and stamps are in one timebase (ROS time in the node).
    """

    def __init__(
        self,
        recorder: Recorder,
        integrator: TeleopIntegrator,
        task: str = "",
        input_timeout_s: float | None = None,
        command_stream: str = "command",
        teleop_stream: str = "teleop",
    ) -> None:
        self.recorder = recorder
        self.integrator = integrator
        self.task = task
        self.input_timeout_s = integrator.limits.twist_timeout_s if input_timeout_s is None else input_timeout_s
        self.command_stream = command_stream if command_stream in recorder.specs else None
        self.teleop_stream = teleop_stream if teleop_stream in recorder.specs else None
        self.meter = RateMeter()
        self.quit_requested = False
        self.last_result = ""
        self._lifecycle = threading.Lock()
        self._input_lock = threading.Lock()
        self._motion = ZERO_INPUT
        self._motion_stamp = float("-inf")
        self._gripper = 0.0
        self._gripper_stamp = float("-inf")
        self._pose: np.ndarray | None = None
        self._width: float | None = None
        self._episode_start = 0.0

    # -- inputs (any thread) --------------------------------------------------------

    def on_sample(self, stream: str, stamp: float, value: Any, encoding: str | None = None) -> bool:
        """Count a received sample and offer it to the recorder (False when not recorded)."""
        self.meter.count(stream)
        return self.recorder.add(stream, stamp, value, encoding)

    def on_pose(self, stamp: float, pose: np.ndarray, stream: str = "ee_pose") -> None:
        """A measured end-effector pose (x, y, z, qx, qy, qz, qw)."""
        self._pose = np.asarray(pose, dtype=np.float64).reshape(7)
        self.on_sample(stream, stamp, self._pose)

    def on_gripper_width(self, stamp: float, width: float, stream: str = "gripper") -> None:
        self._width = float(width)
        self.on_sample(stream, stamp, [self._width])

    def on_motion(self, stamp: float, linear: np.ndarray, angular: np.ndarray) -> None:
        """Twist input (m/s, rad/s); it stays in effect for input_timeout_s."""
        self.meter.count("input")
        with self._input_lock:
            self._motion = TeleopInput(np.asarray(linear, float).reshape(3), np.asarray(angular, float).reshape(3))
            self._motion_stamp = stamp

    def on_gripper_input(self, stamp: float, value: float) -> None:
        """Gripper input in [-1, 1] (held buttons); stays in effect for input_timeout_s."""
        with self._input_lock:
            self._gripper = float(np.clip(value, -1.0, 1.0))
            self._gripper_stamp = stamp

    def input_in_effect(self, now: float) -> TeleopInput:
        """The newest input of each source, zero where it is older than the timeout (a
        device that stops publishing stops the arm)."""
        with self._input_lock:
            fresh_motion = now - self._motion_stamp <= self.input_timeout_s
            fresh_gripper = now - self._gripper_stamp <= self.input_timeout_s
            motion = self._motion if fresh_motion else ZERO_INPUT
            gripper = self._gripper if fresh_gripper else 0.0
        return TeleopInput(motion.linear, motion.angular, gripper)

    @property
    def ready(self) -> bool:
        """True once the integrator started from a measured pose (commands flow)."""
        return self.integrator.initialized

    def control_step(self, now: float) -> np.ndarray | None:
        """One control tick: integrate and record the command. None until a measured pose
        arrived (the first command must start where the arm is, not jump)."""
        if not self.integrator.initialized:
            if self._pose is None:
                return None
            self.integrator.reset(self._pose, self._width, now)
        command_input = self.input_in_effect(now)
        self.integrator.set_twist(now, command_input.linear, command_input.angular, command_input.gripper)
        command = self.integrator.step(now)
        if self.command_stream:
            self.on_sample(self.command_stream, now, command)
        if self.teleop_stream:
            self.on_sample(self.teleop_stream, now, command_input.vector())
        return command

    def resync(self, now: float) -> bool:
        """Restart the integrator from the measured pose (e.g. after the controller was
        re-engaged or the arm was moved by hand). False without a measured pose."""
        if self._pose is None:
            return False
        self.integrator.reset(self._pose, self._width, now)
        return True

    # -- lifecycle (services, keys) -------------------------------------------------

    def start(self, now: float, metadata: dict[str, Any] | None = None) -> tuple[bool, str]:
        """Start an episode; (ok, message) for a Trigger response or the terminal."""
        with self._lifecycle:
            try:
                episode_id = self.recorder.start_episode(self.task, metadata)
            except (StoreError, OSError) as error:
                return False, f"cannot start: {error}"
            self._episode_start = now
            return True, f"recording {episode_id}"

    def stop(self, success: bool | None = True, notes: str = "") -> tuple[bool, str]:
        """Stop and commit the episode, marked success or not."""
        with self._lifecycle:
            if self.recorder.state == IDLE:
                return False, "no episode is being recorded"
            try:
                result = self.recorder.stop_episode(success=success, notes=notes)
            except (StoreError, OSError) as error:
                self.last_result = f"commit failed: {error}"
                return False, self.last_result
            self.last_result = f"{result.episode_id} " + (
                ("committed" + (f", marked ({len(result.problems)} problems)" if result.problems else ""))
                if result.committed
                else "empty, discarded"
            )
            return result.committed, result.message + "".join(f"\n  problem: {p}" for p in result.problems)

    def discard(self) -> tuple[bool, str]:
        with self._lifecycle:
            if self.recorder.state == IDLE:
                return False, "no episode is being recorded"
            try:
                episode_id = self.recorder.discard_episode()
            except (StoreError, OSError) as error:
                return False, f"discard failed: {error}"
            self.last_result = f"{episode_id} discarded"
            return True, f"episode {episode_id} discarded"

    def handle_key(self, key: str, now: float) -> str | None:
        """Run the action of a key press; returns the message to show (None: not a key of
        ours). Quitting is refused while an episode is being recorded, so a stray key never
        loses or half-commits a demonstration: end, fail or discard it first."""
        action = key_action(key)
        if action is None:
            return None
        if action == "help":
            return KEY_HELP
        if action == "start":
            return self.start(now)[1]
        if action == "stop":
            return self.stop(success=True)[1]
        if action == "stop_failed":
            return self.stop(success=False)[1]
        if action == "discard":
            return self.discard()[1]
        if self.recorder.state != IDLE:
            return "an episode is being recorded: end [e], fail [f] or discard [d] it before quitting"
        self.quit_requested = True
        return "quitting"

    def status_line(self, now: float, streams: Sequence[str]) -> str:
        stats = self.recorder.statistics()
        return format_status(
            self.recorder.state,
            self.recorder.episode_id,
            now - self._episode_start,
            self.meter.rates(now),
            streams,
            dropped=int(stats["dropped"]),
            rejected=int(stats["rejected"]),
            problems=len(self.recorder.problems()) if self.recorder.state != IDLE else 0,
            last=self.last_result,
        )

    def close(self) -> None:
        """Leave a running episode resumable (staged) and stop the writer thread."""
        with self._lifecycle:
            self.recorder.close()
