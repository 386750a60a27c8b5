"""df-stack: the simulated FR3 swap-fruit world (MuJoCo + numpy, no ROS).

Entry points (imported lazily, so `sim.faults` works without MuJoCo):
`SwapFruitEnv`, `EnvConfig`, `Observation`, `RobotState`, `EpisodeInfo`, `make_action`
(sim.env); `ScriptedExpert`, `ExpertConfig`, `run_expert_episode` (sim.expert);
`FaultPlan`, `FaultEvent`, `FaultInjector`, `FAULT_KINDS` (sim.faults).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Offscreen rendering without a display; must be set before mujoco is imported.
os.environ.setdefault("MUJOCO_GL", "egl")

_EXPORTS = {
    "SwapFruitEnv": "sim.env",
    "EnvConfig": "sim.env",
    "Observation": "sim.env",
    "RobotState": "sim.env",
    "EpisodeInfo": "sim.env",
    "Workspace": "sim.env",
    "make_action": "sim.env",
    "ScriptedExpert": "sim.expert",
    "ExpertConfig": "sim.expert",
    "run_expert_episode": "sim.expert",
    "FaultPlan": "sim.faults",
    "FaultEvent": "sim.faults",
    "FaultInjector": "sim.faults",
    "FAULT_KINDS": "sim.faults",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
