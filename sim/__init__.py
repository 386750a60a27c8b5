"""df-stack: the simulated FR3 and its tasks (MuJoCo + numpy, no ROS).

Entry points (imported lazily, so `sim.faults` works without MuJoCo):
`SimEnv`, `EnvConfig`, `Observation`, `RobotState`, `make_action` (sim.env);
`run_expert_episode` (sim.expert); `SimTask` (sim.tasks.base), swap fruit
(`SwapFruitTask`, `SwapFruitEnv`, `ScriptedExpert`: sim.tasks.swap_fruit);
`FaultPlan`, `FaultEvent`, `FaultInjector`, `FAULT_KINDS` (sim.faults).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Offscreen rendering without a display; must be set before mujoco is imported.
os.environ.setdefault("MUJOCO_GL", "egl")

_EXPORTS = {
    "SimEnv": "sim.env",
    "EnvConfig": "sim.env",
    "Observation": "sim.env",
    "RobotState": "sim.env",
    "Workspace": "sim.env",
    "make_action": "sim.env",
    "run_expert_episode": "sim.expert",
    "SimTask": "sim.tasks.base",
    "SwapFruitTask": "sim.tasks.swap_fruit",
    "SwapFruitEnv": "sim.tasks.swap_fruit",
    "ScriptedExpert": "sim.tasks.swap_fruit",
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
