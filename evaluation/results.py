"""What evaluations report: per episode and per run, in process (`EpisodeResult`,
`EvalResult`) and through the ROS nodes (`EpisodeOutcome`, `ConditionResult`,
`ClosedLoopResults`, with the `EpisodeTrace` a video is drawn from), and the success
figures every one of them quotes (rate with a 95 % Wilson interval).

numpy only: the report writer and the trainer read these without ROS or torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def success_summary(successes: int, episodes: int) -> dict[str, Any]:
    """The success figures every evaluation reports: rate, 95 % Wilson interval, counts."""
    low, high = wilson_interval(successes, episodes)
    return {
        "success_rate": successes / max(1, episodes),
        "ci95": [round(low, 4), round(high, 4)],
        "successes": successes,
        "episodes": episodes,
    }


# ------------------------------------------------------------------ in process


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    sim_time_s: float
    ticks: int
    mean_tick_ms: float
    unusable_frames: int  # camera frames the agent marked k = K
    fault_plan: dict[str, Any]
    first_success_step: int | None = None  # env steps to the first success (None: never)
    # How far the end effector moved over the episode's last steps (evaluation.rollout's
    # STEADY_WINDOW_STEPS; largest distance from its final position, m): a policy that has
    # finished and rests stays within millimetres; one that keeps working moves decimetres.
    final_motion_m: float | None = None
    # Policy targets the robot's safety filter would have to clamp or refuse (outside the
    # workspace, non-finite, faster than the speed limit): 0 means the policy alone stays
    # safe, before any filter.
    unsafe_actions: int = 0
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    successes: int
    episodes: list[EpisodeResult]
    settings: dict[str, Any]
    seconds: float

    @property
    def success_rate(self) -> float:
        return self.successes / max(1, len(self.episodes))

    def summary(self) -> dict[str, Any]:
        return {
            **success_summary(self.successes, len(self.episodes)),
            "fault_plan": self.settings.get("fault_plan"),
            "mean_steps": float(np.mean([e.steps for e in self.episodes])),
            "seconds": round(self.seconds, 1),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "settings": self.settings, "per_episode": [asdict(e) for e in self.episodes]}


# ----------------------------------------------------------- through the ROS nodes


@dataclass
class CameraFrame:
    time_s: float  # arrival, seconds since the episode's reset
    image: np.ndarray  # HxWx3 uint8 as the camera published it


@dataclass
class TickRecord:
    """One policy tick as seen from outside the node."""

    time_s: float  # arrival of its predicted frames, seconds since the episode's reset
    levels: dict[str, int]  # noise level k per camera (from /diagnostics); -1 = not known
    issues: dict[str, str]  # frame-health issues per camera, comma separated ("" = none)
    predicted: dict[str, np.ndarray]  # the frame the model predicted per camera (HxWx3 uint8, its own size)


@dataclass
class EpisodeTrace:
    """Everything a video of one episode needs."""

    condition: str
    seed: int
    success: bool
    time_to_success_s: float | None
    max_level: int  # K
    cameras: tuple[str, ...]
    frames: dict[str, list[CameraFrame]] = field(default_factory=dict)
    ticks: list[TickRecord] = field(default_factory=list)


@dataclass
class EpisodeOutcome:
    condition: str
    index: int
    seed: int
    success: bool
    time_to_success_s: float | None  # sim time of the first report that showed success (if scored a success)
    sim_time_s: float  # sim time when the episode ended
    wall_s: float
    ended_by: str  # success | time_limit | wall_limit
    ticks: int  # policy ticks seen in /diagnostics while enabled
    ticks_with_noise: int  # ... where some camera had k > 0
    ticks_with_noise_per_camera: dict[str, int]
    ticks_unusable_per_camera: dict[str, int]  # ... at k = K
    max_level_per_camera: dict[str, int]
    commands: int  # pose commands audited
    unsafe_commands: int
    gripper_commands: int
    unsafe_gripper_commands: int
    unsafe_examples: list[str]
    watchdog_stops: int  # commander counters over the episode (from /diagnostics)
    dropped_actions: int
    adjusted_commands: int
    rejected_commands: int
    fault_plan: dict[str, Any] | None
    episode_info: dict[str, Any]
    report: dict[str, Any]
    trace: EpisodeTrace | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("trace")
        return data


@dataclass
class ConditionResult:
    name: str
    description: str
    episodes: list[EpisodeOutcome] = field(default_factory=list)

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def success_rate(self) -> float:
        return self.successes / max(1, len(self.episodes))

    @property
    def confidence_interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, len(self.episodes))

    def summary(self) -> dict[str, Any]:
        times = [e.time_to_success_s for e in self.episodes if e.time_to_success_s is not None]
        return {
            "condition": self.name,
            "description": self.description,
            **success_summary(self.successes, len(self.episodes)),
            "mean_time_to_success_s": float(np.mean(times)) if times else None,
            "ticks": sum(e.ticks for e in self.episodes),
            "ticks_with_noise": sum(e.ticks_with_noise for e in self.episodes),
            "commands": sum(e.commands + e.gripper_commands for e in self.episodes),
            "unsafe_commands": sum(e.unsafe_commands + e.unsafe_gripper_commands for e in self.episodes),
            "watchdog_stops": sum(e.watchdog_stops for e in self.episodes),
        }


@dataclass
class ClosedLoopResults:
    checkpoint: str
    cameras: tuple[str, ...]
    max_level: int  # K of the policy
    settings: dict[str, Any]
    conditions: dict[str, ConditionResult]
    seconds: float = 0.0
    traces: dict[str, list[EpisodeTrace]] = field(default_factory=dict)  # condition -> video episodes

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "cameras": list(self.cameras),
            "max_noise_level": self.max_level,
            "seconds": round(self.seconds, 1),
            "settings": self.settings,
            "summary": {name: c.summary() for name, c in self.conditions.items()},
            "video_episodes": {name: [t.seed for t in traces] for name, traces in self.traces.items()},
            "per_episode": [e.to_dict() for c in self.conditions.values() for e in c.episodes],
        }
