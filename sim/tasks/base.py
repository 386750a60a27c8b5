"""The task seam of the simulator: what one simulated task is.

A task brings its objects into the shared cell (sim.scene: table, FR3 arm, front and
wrist cameras, the distractor), may mount more cameras, sets up its initial state from an
episode seed, says whether an episode succeeded (and why), provides a scripted expert
and names fault plans of its own. `sim.env.SimEnv` runs any task.

A task is chosen by configuration: a task config's `sim:` section names its class with
`_target_` and its arguments, e.g.

    sim:
      _target_: sim.tasks.swap_fruit.SwapFruitTask
      first_fruit: apple
      cameras: {side: {position: [0.5, -0.9, 0.5], look_at: [0.5, 0.0, 0.05], fovy: 60}}

The layer above the simulator (evaluation.sim_task) instantiates it; nothing in sim/
picks a task by name. Task objects are plain data (picklable), so `collect-sim` can hand
one to its worker processes.

numpy only at import time (no MuJoCo): evaluation.conditions reads the fault-plan names.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sim.faults import FaultPlan
from sim.scene import BUILTIN_CAMERAS, CameraMount, SceneObjects

if TYPE_CHECKING:
    from sim.env import SimEnv

# How long an episode of a task is under way at most (s), unless the task says otherwise:
# the drawn fault plans of evaluation.conditions fall within the first 60 % of it (or of
# the episode's time limit when that is shorter), while there is still work to disturb.
DEFAULT_ACTIVE_S = 20.0


class Expert(Protocol):
    """A scripted demonstrator: `reset()` right after the env's reset, then `act()` once
    per env step. It plans end-effector targets (position, rotation 6D, gripper width: the
    `ee_pose` embodiment's action); for a joint-space robot the caller converts each one
    to joint targets with the simulator's IK (SimEnv.joint_target_for)."""

    done: bool  # the script has ended (the caller may keep holding the last target)
    failed_picks: int  # attempts the expert had to repeat (0 for a clean demonstration)

    @property
    def phase(self) -> str: ...

    def reset(self) -> None: ...

    def act(self) -> np.ndarray: ...


class TaskEpisode(Protocol):
    """How an episode started (the task's initial state for one seed)."""

    seed: int

    def to_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


def camera_mounts_from_config(cameras: Mapping[str, Any] | None) -> dict[str, CameraMount]:
    """A task config's extra camera mounts (name -> {position, look_at, fovy}), checked."""
    mounts: dict[str, CameraMount] = {}
    for name, value in dict(cameras or {}).items():
        if isinstance(value, CameraMount):
            mounts[str(name)] = value
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"sim.cameras.{name} must be a mapping {{position, look_at, fovy}}, got {value!r}")
        unknown = sorted(set(value) - {"position", "look_at", "fovy"})
        missing = sorted({"position", "look_at"} - set(value))
        if unknown or missing:
            raise ValueError(
                f"sim.cameras.{name}: "
                + "; ".join([f"missing {missing}"] * bool(missing) + [f"unknown {unknown}"] * bool(unknown))
                + " (a camera mount has position, look_at and optionally fovy)"
            )
        try:
            mounts[str(name)] = CameraMount(
                tuple(value["position"]), tuple(value["look_at"]), float(value.get("fovy", 45.0))
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"sim.cameras.{name}: {error}") from error
    clash = sorted(set(mounts) & set(BUILTIN_CAMERAS))
    if clash:
        raise ValueError(f"sim.cameras: {clash} are built into every scene; give added cameras other names")
    return mounts


def fault_plans_from_config(plans: Mapping[str, Any] | None) -> dict[str, FaultPlan]:
    """A task config's own fault plans: name -> a FaultPlan (as its dict: {events: [...]})."""
    named: dict[str, FaultPlan] = {}
    for name, value in dict(plans or {}).items():
        if isinstance(value, FaultPlan):
            named[str(name)] = value
            continue
        try:
            named[str(name)] = FaultPlan.from_dict(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"sim.fault_plans.{name}: {error}") from error
    return named


class SimTask(ABC):
    """One simulated task. Subclasses implement the scene objects, the initial state per
    seed, the success test and the scripted expert; camera mounts, fault plans and the
    task's active time come from the constructor (the task config's `sim:` section)."""

    #: The task's name (logs, the simulator's description).
    name: str = "task"
    #: What is stored as each recorded episode's task (the recorder's `task` field).
    title: str = "task"

    def __init__(
        self,
        cameras: Mapping[str, Any] | None = None,
        fault_plans: Mapping[str, Any] | None = None,
        active_s: float = DEFAULT_ACTIVE_S,
    ) -> None:
        self.extra_cameras = camera_mounts_from_config(cameras)
        self.fault_plans = fault_plans_from_config(fault_plans)
        if not (math.isfinite(active_s) and active_s > 0):
            raise ValueError(f"sim.active_s must be a positive number of seconds, got {active_s}")
        self.active_s = float(active_s)
        for name, plan in self.fault_plans.items():
            try:
                plan.check_cameras(self.camera_names)
            except ValueError as error:
                raise ValueError(f"sim.fault_plans.{name}: {error}") from error

    @property
    def camera_names(self) -> tuple[str, ...]:
        """Every camera the task's scene can render: the built-in ones, then the added ones
        (in config order; the order also seeds each camera's sensor noise)."""
        return (*BUILTIN_CAMERAS, *self.extra_cameras)

    @abstractmethod
    def scene_objects(self) -> SceneObjects:
        """The task's MJCF fragments (sim.scene.SceneObjects)."""

    @abstractmethod
    def reset(self, env: SimEnv, seed: int) -> TaskEpisode:
        """Place the task's objects for episode `seed` (the arm is already at home and
        nothing has been stepped): write env.data.qpos and return the episode's info.
        Deterministic in `seed`."""

    @abstractmethod
    def success_report(self, env: SimEnv) -> dict[str, Any]:
        """Why the episode is or is not a success, criterion by criterion; key `success`
        holds the verdict."""

    @abstractmethod
    def expert(self, env: SimEnv) -> Expert:
        """A scripted expert for `env` (reset it after env.reset)."""

    def describe(self) -> dict[str, Any]:
        """The task as episode metadata records it."""
        return {
            "name": self.name,
            "cameras": list(self.camera_names),
            "fault_plans": sorted(self.fault_plans),
            "active_s": self.active_s,
        }
