"""Hardware-in-the-loop core: the simulated FR3 as a stream of time-stamped samples.

The ROS node `df_policy.sim_robot_node` is a thin shell around `SimulatedRobot`: it
forwards target poses or joint targets and gripper commands, calls `tick()` at the
control rate (paced to wall time) and publishes what `tick()` returns. Rates (each
camera its own), the fault plan, target validation and the publishing schedule live
here, so they are tested without ROS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy.geometry import quat_to_matrix
from sim.env import EnvConfig, RobotState, SimEnv
from sim.faults import FaultPlan
from sim.tasks.base import SimTask


@dataclass(frozen=True)
class HilConfig:
    """Publishing rates of the simulated robot (what franka_ros2 and RealSense give)."""

    camera_rate_hz: float = 10.0  # rendering dominates the cost; 10 Hz = the policy rate
    state_rate_hz: float = 100.0  # current_pose and measured_joint_states
    gripper_rate_hz: float = 15.0  # franka_gripper/joint_states
    target_interpolation_s: float = 0.1  # a new target is reached over this long
    # A camera's own rate, where it differs from camera_rate_hz (a robot description
    # gives each camera its rate).
    camera_rates_hz: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rates = {"camera_rate_hz": self.camera_rate_hz, "state_rate_hz": self.state_rate_hz}
        rates |= {"gripper_rate_hz": self.gripper_rate_hz}
        rates |= {f"camera_rates_hz[{name}]": rate for name, rate in dict(self.camera_rates_hz).items()}
        for name, value in rates.items():
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
    """A task's simulation driven like a robot: asynchronous targets in, samples out."""

    def __init__(self, env_config: EnvConfig | None, config: HilConfig | None, task: SimTask) -> None:
        self.config = config or HilConfig()
        self.env = SimEnv(env_config or EnvConfig(), task)
        unknown = sorted(set(self.config.camera_rates_hz) - set(self.env.config.cameras))
        if unknown:
            raise ValueError(f"camera_rates_hz names {unknown}, not among the cameras {list(self.env.config.cameras)}")
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

    def camera_rate_hz(self, camera: str) -> float:
        return self.config.camera_rates_hz.get(camera, self.config.camera_rate_hz)

    def reset(self, seed: int) -> Any:
        """Start episode `seed`; returns the task's episode info (sim.tasks.base.TaskEpisode)."""
        # No rendering here: reset may run in a service thread, rendering in the ticker.
        self.env.reset_state(seed, fault_plan=self._default_plan or FaultPlan.none())
        self._schedules = {
            "state": _Schedule(self.config.state_rate_hz),
            "gripper": _Schedule(self.config.gripper_rate_hz),
        }
        for camera in self.env.config.cameras:
            self._schedules[f"camera {camera}"] = _Schedule(self.camera_rate_hz(camera))
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

    def set_joint_target(self, joints: np.ndarray, duration_s: float | None = None) -> None:
        """Joint targets as a joint trajectory controller gets them (fr3_joint1..7, rad), to
        be reached in `duration_s` (default target_interpolation_s). Raises ValueError,
        naming the problem, for NaN or a target outside the joint limits."""
        duration = self.config.target_interpolation_s if duration_s is None else float(duration_s)
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"a joint target's time from start must be >= 0 s, got {duration_s}")
        self.env.command_joints(joints, None, duration_s=duration)
        self.targets_received += 1

    def joint_target_for(self, position: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
        """The joints that reach a pose target (the simulator's IK from the current reference)."""
        return self.env.joint_target_for(np.asarray(position, dtype=np.float64), quat_to_matrix(quat_xyzw))

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
        due = tuple(c for c in self.env.config.cameras if self._schedules[f"camera {c}"].due(t))
        if due:
            frames = self.env.camera_frames(due)
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
