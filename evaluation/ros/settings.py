"""What a closed-loop run through the ROS nodes is configured with, and what follows
from it for the nodes: their parameters and the safety limits the policy node promises
to respect (which the probe audits its commands against)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.conditions import DEFAULT_EVAL_SEED, DEFAULT_MAX_STEPS, STEP_S


@dataclass
class ClosedLoopSettings:
    episodes_per_condition: int = 10
    seed: int = DEFAULT_EVAL_SEED  # episode i of every condition uses sim seed seed + i (paired conditions)
    max_steps: int = DEFAULT_MAX_STEPS  # time limit in sim steps of 0.1 s
    real_time_factor: float = 1.0  # the sim node's pacing; the policy node runs on wall-clock time
    schedule: str = "pyramid"
    horizon: int = 2
    denoising_steps: int = 8
    torch_threads: int = 1
    sim_image_size: int = 96  # rendered size; the policy node downscales to the checkpoint's
    diagnostics_rate_hz: float = 10.0  # faster than the 2.5 Hz tick so every tick's levels are seen
    poll_s: float = 0.5  # how often ~/report_success is asked
    # True: an episode ends at its first success. False: it runs max_steps and is scored by
    # its final state (the policy must stop and stay put), as evaluate-sim --full-episodes.
    stop_at_success: bool = True
    videos_per_condition: int = 1
    video_prefer_success: bool = True  # the first successful episode(s), else the first one(s)
    startup_timeout_s: float = 180.0  # torch import and model load on a busy 2-core machine
    policy_parameters: dict[str, Any] = field(default_factory=dict)  # more policy_node parameters
    sim_parameters: dict[str, Any] = field(default_factory=dict)  # more sim_robot_node parameters

    def __post_init__(self) -> None:
        if self.episodes_per_condition < 1:
            raise ValueError(f"episodes_per_condition must be >= 1, got {self.episodes_per_condition}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not (math.isfinite(self.real_time_factor) and self.real_time_factor > 0):
            raise ValueError(f"real_time_factor must be > 0, got {self.real_time_factor}")
        if self.videos_per_condition < 0:
            raise ValueError(f"videos_per_condition must be >= 0, got {self.videos_per_condition}")
        if not self.poll_s > 0:
            raise ValueError(f"poll_s must be > 0, got {self.poll_s}")

    @property
    def max_sim_s(self) -> float:
        return self.max_steps * STEP_S


def sim_node_parameters(settings: ClosedLoopSettings, cameras: tuple[str, ...]) -> dict[str, Any]:
    """sim_robot_node's parameters: rendering the policy's `cameras`, paced as `settings` say."""
    return {
        "seed": settings.seed,
        "real_time_factor": float(settings.real_time_factor),
        "image_size": int(settings.sim_image_size),
        "cameras": list(cameras),
        **settings.sim_parameters,
    }


def policy_node_parameters(checkpoint: Path, spec: Any, settings: ClosedLoopSettings) -> dict[str, Any]:
    """policy_node's parameters: the checkpoint and its robot configuration (`spec`, a
    PolicySpec), the runner as `settings` say, disabled until an episode starts."""
    return {
        "checkpoint": str(checkpoint.resolve()),
        "cameras": list(spec.camera_names),
        "image_size": int(spec.cameras[0].height),
        "actions_per_token": int(spec.actions_per_token),
        "token_period_s": float(spec.token_period_s),
        "schedule": settings.schedule,
        "horizon": int(settings.horizon),
        "denoising_steps": int(settings.denoising_steps),
        "torch_threads": int(settings.torch_threads),
        "diagnostics_rate_hz": float(settings.diagnostics_rate_hz),
        "start_enabled": False,
        **settings.policy_parameters,
    }


def safety_limits(policy_parameters: Mapping[str, Any]) -> Any:
    """The policy node's safety limits: its defaults, with any that `policy_parameters`
    overrides (the node's parameters carry SafetyLimits' field names)."""
    from dataclasses import fields

    from policy.commanding import SafetyLimits

    names = {f.name for f in fields(SafetyLimits)}
    return SafetyLimits(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in policy_parameters.items() if k in names}
    )
