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
    # The runner: the checkpoint's own settings (what it was evaluated with) unless set here.
    schedule: str | None = None
    horizon: int | None = None
    denoising_steps: int | None = None
    torch_threads: int = 1
    # The simulated task: a task config's name or path (None: the checkpoint's own task).
    task: str | None = None
    # The simulated robot both nodes are given: its description (a name or a path; None:
    # the task's), with its cameras rendered at `sim_image_size` px when that is set (a
    # derived description is written to the run's log folder: small frames make tests cheap).
    robot_description: str | None = None
    sim_image_size: int | None = None
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


def simulated_robot_description(settings: ClosedLoopSettings, folder: Path, task_robot: str) -> str:
    """The robot description both nodes run with: `settings.robot_description` (default
    `task_robot`, the task's), or a copy of it with every camera at
    `settings.sim_image_size` px written into `folder`."""
    import yaml

    from robots.description import load_robot_description, robot_description_path

    robot = settings.robot_description or task_robot
    if settings.sim_image_size is None:
        load_robot_description(robot)  # refuse a bad one before any node starts
        return str(robot)
    data = yaml.safe_load(robot_description_path(robot).read_text())
    for camera in data["cameras"]:
        camera["height"] = camera["width"] = int(settings.sim_image_size)
    path = Path(folder) / f"robot_{settings.sim_image_size}px.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_robot_description(path)
    return str(path)


def sim_node_parameters(settings: ClosedLoopSettings, task: str, robot_description: str) -> dict[str, Any]:
    """sim_robot_node's parameters: the task config file and the simulated robot, paced as
    `settings` say."""
    return {
        "task": task,
        "robot_description": robot_description,
        "seed": settings.seed,
        "real_time_factor": float(settings.real_time_factor),
        **settings.sim_parameters,
    }


def policy_node_parameters(checkpoint: Path, robot_description: str, settings: ClosedLoopSettings) -> dict[str, Any]:
    """policy_node's parameters: the checkpoint (it brings its own spec and runner settings)
    on the robot description, runner overrides from `settings`, disabled until an episode
    starts."""
    runner = {
        f"runner.{name}": value
        for name, value in (
            ("schedule", settings.schedule),
            ("horizon", settings.horizon),
            ("steps", settings.denoising_steps),
        )
        if value is not None
    }
    return {
        "checkpoint": str(checkpoint.resolve()),
        "robot_description": robot_description,
        **runner,
        "torch_threads": int(settings.torch_threads),
        "diagnostics_rate_hz": float(settings.diagnostics_rate_hz),
        "start_enabled": False,
        **settings.policy_parameters,
    }


def safety_limits(robot_description: str, policy_parameters: Mapping[str, Any]) -> Any:
    """The limits the policy node holds its commands to: the robot description's, with
    any `safety.<field>` that `policy_parameters` overrides."""
    from dataclasses import replace

    from robots.description import load_robot_description

    overrides = {
        name.removeprefix("safety."): tuple(value) if isinstance(value, list) else value
        for name, value in policy_parameters.items()
        if name.startswith("safety.")
    }
    return replace(load_robot_description(robot_description).safety, **overrides)
