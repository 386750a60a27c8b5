"""Hardware-in-the-loop core: the simulated FR3 as a stream of time-stamped samples.

The ROS node `df_policy.sim_robot_node` is a thin shell around `SimulatedRobot`: it
forwards target poses and gripper commands, calls `tick()` at the control rate (paced
to wall time) and publishes what `tick()` returns. Rates, the fault plan, target
validation and the publishing schedule live here, so they are tested without ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from policy.geometry import quat_to_matrix
from sim.env import EnvConfig, EpisodeInfo, RobotState, SwapFruitEnv
from sim.faults import FaultPlan


@dataclass(frozen=True)
class HilConfig:
    """Publishing rates of the simulated robot (what franka_ros2 and RealSense give)."""

    camera_rate_hz: float = 10.0  # rendering dominates the cost; 10 Hz = the policy rate
    state_rate_hz: float = 100.0  # current_pose and measured_joint_states
    gripper_rate_hz: float = 15.0  # franka_gripper/joint_states
    target_interpolation_s: float = 0.1  # a new target is reached over this long

    def __post_init__(self) -> None:
        for name in ("camera_rate_hz", "state_rate_hz", "gripper_rate_hz"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive rate, got {value}")
        if not (math.isfinite(self.target_interpolation_s) and self.target_interpolation_s >= 0):
            raise ValueError(f"target_interpolation_s must be >= 0, got {self.target_interpolation_s}")


@dataclass(frozen=True)
class StateSample:
    time: float
    state: RobotState


@dataclass(frozen=True)
class GripperSample:
    time: float
    finger_positions: np.ndarray  # (2,) m


@dataclass(frozen=True)
class CameraSample:
    camera: str
    time: float  # when the frame is delivered
    stamp: float  # the capture time it carries (older for delayed frames)
    image: np.ndarray
    faults: tuple[str, ...]


@dataclass
class TickOutput:
    """What is due for publishing after one control tick (dropped frames and
    state dropouts simply produce nothing, as on a real robot)."""

    time: float
    state: StateSample | None = None
    gripper: GripperSample | None = None
    cameras: tuple[CameraSample, ...] = ()


class _Schedule:
    """Fires at whole multiples of a period in sim time (the first after one period)."""

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz
        self.next_due = self.period

    def due(self, t: float) -> bool:
        if t + 1e-9 >= self.next_due:
            # Skip missed slots instead of bursting (a rate above the tick rate).
            while self.next_due <= t + 1e-9:
                self.next_due += self.period
            return True
        return False


class SimulatedRobot:
    """The swap-fruit simulation driven like a robot: asynchronous targets in, samples out."""

    def __init__(self, env_config: EnvConfig | None = None, config: HilConfig | None = None):
        self.config = config or HilConfig()
        self.env = SwapFruitEnv(env_config or EnvConfig())
        self._schedules: dict[str, _Schedule] = {}
        self._default_plan: FaultPlan | None = None
        self.targets_received = 0

    @property
    def time(self) -> float:
        return self.env.time

    @property
    def control_period_s(self) -> float:
        return self.env.config.control_period_s

    def set_fault_plan(self, plan: FaultPlan | None) -> None:
        """The plan used from the next reset on (None: no faults)."""
        if plan is not None:
            plan.check_cameras(self.env.config.cameras)
        self._default_plan = plan

    def reset(self, seed: int) -> EpisodeInfo:
        # No rendering here: reset may run in a service thread, rendering in the ticker.
        self.env.reset_state(seed, fault_plan=self._default_plan or FaultPlan.none())
        self._schedules = {
            "state": _Schedule(self.config.state_rate_hz),
            "gripper": _Schedule(self.config.gripper_rate_hz),
            "camera": _Schedule(self.config.camera_rate_hz),
        }
        self.targets_received = 0
        return self.env.info

    def set_target_pose(self, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """A Cartesian target as a real impedance controller gets it. Raises ValueError,
        naming the problem, for NaN, a zero quaternion or a target outside the workspace."""
        position = np.asarray(position, dtype=np.float64)
        quat = np.asarray(quat_xyzw, dtype=np.float64)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f"target position must be 3 finite numbers, got {position.tolist()}")
        if quat.shape != (4,) or not np.all(np.isfinite(quat)) or np.linalg.norm(quat) < 1e-6:
            raise ValueError(f"orientation must be a non-zero quaternion, got {quat.tolist()}")
        rotation = quat_to_matrix(quat)
        self.env.command(position, rotation, None, duration_s=self.config.target_interpolation_s)
        self.targets_received += 1

    def set_gripper_width(self, width: float) -> None:
        self.env.command_gripper(float(width))

    def tick(self) -> TickOutput:
        """Advance one control period and return what is due for publishing."""
        if not self._schedules:
            raise RuntimeError("call reset(seed) before tick()")
        self.env.advance(1)
        t = self.env.time
        out = TickOutput(time=t)
        if self._schedules["state"].due(t) and not self.env.state_dropout_active():
            out.state = StateSample(t, self.env.robot_state())
        if self._schedules["gripper"].due(t) and not self.env.state_dropout_active():
            out.gripper = GripperSample(t, self.env.robot_state().finger_positions)
        if self._schedules["camera"].due(t):
            frames = self.env.camera_frames()
            out.cameras = tuple(
                CameraSample(name, t, frame.stamp, frame.image, frame.faults)
                for name, frame in frames.items()
                if frame.image is not None
            )
        return out

    def success_report(self) -> dict:
        return self.env.success_report()

    def close(self) -> None:
        self.env.close()
