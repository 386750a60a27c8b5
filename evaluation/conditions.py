"""The conditions episodes run under: seeds, time limit and fault plans.

A fault plan is named (`none`, one fault kind of sim.faults, `random` for any kind, or
`paper`, the Diffusion Forcing paper's robustness test) and drawn afresh for each episode
from its seed by `fault_plan_for`, so every policy evaluated with the same settings meets
exactly the same faults, in process (evaluation.rollout) and through the ROS nodes
(evaluation.ros). A simulated task (sim.tasks.base.SimTask) may name fixed plans of its
own (its config's `sim.fault_plans`) and says how long it is under way (`active_s`: drawn
faults fall in its first 60 %). The ROS closed loop names its conditions (`clean`,
`occluded`, ...) and turns each into one fault plan per episode with `condition_plan`.

numpy only (sim.faults, sim.tasks.base): no simulator, no ROS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sim.faults import FAULT_KINDS, FaultPlan
from sim.tasks.base import DEFAULT_ACTIVE_S, SimTask

# Fault plans by name: `none`, one fault kind (sim.faults.FAULT_KINDS), or `random` (any kind).
# `paper`: the Diffusion Forcing paper's robustness test (front camera fully occluded for
# spans, and a distractor), sim.faults.FaultPlan.occlusion_test.
FAULT_PLAN_CHOICES = ("none", "random", "paper", *FAULT_KINDS)
DEFAULT_MAX_STEPS = 300  # about 2.5x the scripted expert's 120-step episodes
DEFAULT_EVAL_SEED = 100_000  # far from the seeds demonstrations are recorded with
DEFAULT_FAULT_EVENTS = 3  # events per episode of a named plan
DEFAULT_FAULT_SPAN_S = (1.0, 3.0)  # how long each event of a named plan lasts
STEP_S = 0.1  # one simulator step (the action period of every simulated policy: sim.env.EnvConfig)


def fault_plan_choices(task: SimTask | None = None) -> tuple[str, ...]:
    """The fault-plan names `fault_plan_for` takes: the drawn ones and the task's own."""
    return (*FAULT_PLAN_CHOICES, *(sorted(task.fault_plans) if task is not None else ()))


def check_fault_plan(fault_plan: str, task: SimTask | None = None) -> None:
    """ValueError unless `fault_plan` is a name of fault_plan_choices(task) or a JSON file."""
    if fault_plan in fault_plan_choices(task) or Path(fault_plan).is_file():
        return
    raise ValueError(f"fault plan {fault_plan!r} is neither one of {list(fault_plan_choices(task))} nor a JSON file")


def fault_plan_for(
    fault_plan: str,
    seed: int,
    cameras: tuple[str, ...],
    max_steps: int = DEFAULT_MAX_STEPS,
    events: int = DEFAULT_FAULT_EVENTS,
    span_s: tuple[float, float] = DEFAULT_FAULT_SPAN_S,
    task: SimTask | None = None,
) -> FaultPlan:
    """The episode's FaultPlan for `fault_plan`: a name from FAULT_PLAN_CHOICES (drawn from
    the episode `seed`, over `cameras`, while `task` is still under way in an episode of
    `max_steps`), a plan `task` names (the same every episode), or a path to a FaultPlan
    JSON file."""
    if fault_plan == "none":
        return FaultPlan.none()
    if task is not None and fault_plan in task.fault_plans:
        return task.fault_plans[fault_plan]
    if fault_plan not in FAULT_PLAN_CHOICES:
        check_fault_plan(fault_plan, task)
        return FaultPlan.from_json(Path(fault_plan).read_text())
    active_s = task.active_s if task is not None else DEFAULT_ACTIVE_S
    duration = min(max_steps * STEP_S, active_s) * 0.6  # faults fall while the task is still under way
    if fault_plan == "paper":
        return FaultPlan.occlusion_test(seed=seed, duration_s=duration, camera=cameras[0])
    kinds = FAULT_KINDS if fault_plan == "random" else (fault_plan,)
    low, high = span_s
    return FaultPlan.random(
        seed=seed,
        duration_s=duration,
        cameras=cameras,
        kinds=kinds,
        events=events,
        min_span_s=low,
        max_span_s=high,
    )


@dataclass(frozen=True)
class NamedFaults:
    """A fault plan drawn afresh for each episode from its seed by `fault_plan_for`,
    restricted to `cameras`: the same named plan on the same seed gives the same faults
    in evaluate-sim and through the ROS nodes. `events`/`span_s` left as None take the
    defaults of a named plan."""

    name: str
    cameras: tuple[str, ...] | None = None  # None: every camera of the policy
    events: int | None = None
    span_s: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.name not in FAULT_PLAN_CHOICES:
            raise ValueError(f"unknown fault plan {self.name!r}; choose from {list(FAULT_PLAN_CHOICES)}")

    def plan(self, seed: int, max_steps: int, cameras: tuple[str, ...], task: SimTask | None = None) -> FaultPlan:
        return fault_plan_for(
            self.name,
            seed,
            self.cameras or cameras,
            max_steps,
            DEFAULT_FAULT_EVENTS if self.events is None else self.events,
            DEFAULT_FAULT_SPAN_S if self.span_s is None else self.span_s,
            task,
        )


# The demo's "occluded" condition: the paper's robustness test, as `make bench-paper`
# runs it (sim.faults.FaultPlan.occlusion_test): the front camera fully covered (black
# frames) for two 1.5-3 s spans while the task is under way, and a distractor object.
OCCLUDED_FRONT = NamedFaults("paper", cameras=("front",))
BUILTIN_CONDITIONS: dict[str, NamedFaults | None] = {"clean": None, "occluded": OCCLUDED_FRONT}
DEFAULT_CONDITIONS: tuple[str, ...] = ("clean", "occluded")

# What a condition may be: None (no faults); a name ("clean", "occluded", or one of
# FAULT_PLAN_CHOICES, drawn over every camera); a path to a FaultPlan JSON file or a
# FaultPlan (the same plan every episode); NamedFaults; or a function of the episode
# seed returning a FaultPlan or None.
ConditionSpec = None | str | Path | FaultPlan | NamedFaults | Callable[[int], FaultPlan | None]


def condition_plan(
    spec: ConditionSpec, seed: int, max_steps: int, cameras: tuple[str, ...], task: SimTask | None = None
) -> FaultPlan | None:
    """The fault plan of one episode of a condition (None: no faults) of `task`."""
    if spec is None:
        return None
    if isinstance(spec, FaultPlan):
        return spec
    if isinstance(spec, NamedFaults):
        return spec.plan(seed, max_steps, cameras, task)
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if text in BUILTIN_CONDITIONS:
            return condition_plan(BUILTIN_CONDITIONS[text], seed, max_steps, cameras, task)
        if text == "none":
            return None
        if text in FAULT_PLAN_CHOICES:
            return NamedFaults(text).plan(seed, max_steps, cameras, task)
        if task is not None and text in task.fault_plans:
            return task.fault_plans[text]
        if Path(text).is_file():
            return FaultPlan.from_json(Path(text).read_text())
        raise ValueError(
            f"condition {text!r} is neither {sorted(BUILTIN_CONDITIONS)}, one of {list(fault_plan_choices(task))}, "
            "nor a FaultPlan JSON file"
        )
    if callable(spec):
        plan = spec(seed)
        if plan is not None and not isinstance(plan, FaultPlan):
            raise TypeError(f"a condition function must return a FaultPlan or None, got {type(plan).__name__}")
        return plan
    raise TypeError(f"cannot make a fault plan from {type(spec).__name__}")


def check_condition_name(name: str, task: SimTask | None = None) -> None:
    """ValueError unless `name` is a condition the CLI knows (or `task` names) or a FaultPlan JSON file."""
    if name in BUILTIN_CONDITIONS or name in fault_plan_choices(task) or Path(name).is_file():
        return
    raise ValueError(
        f"unknown condition {name!r}: use {sorted(BUILTIN_CONDITIONS)}, one of {list(fault_plan_choices(task))}, "
        "or a FaultPlan JSON file"
    )


def describe_condition(spec: ConditionSpec) -> str:
    if spec is None:
        return "no faults"
    if isinstance(spec, NamedFaults):
        where = ", ".join(spec.cameras) + " camera" if spec.cameras else "any camera"
        if spec.name == "paper":
            return (
                f"the paper's occlusion test: {where} fully occluded (black) for two 1.5-3 s spans and a "
                "distractor on the table, drawn per episode (sim.faults.FaultPlan.occlusion_test)"
            )
        what = "fully occluded (black frames)" if spec.name == "blackout" else f"{spec.name} faults"
        return f"{where} {what}, spans drawn per episode (evaluation.conditions.fault_plan_for)"
    if isinstance(spec, FaultPlan):
        return "fixed fault plan: " + ", ".join(
            f"{e.kind}{'@' + e.camera if e.camera else ''} {e.start_s:g}-{e.end_s:g} s" for e in spec.events
        )
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if text in BUILTIN_CONDITIONS:
            return describe_condition(BUILTIN_CONDITIONS[text])
        return "no faults" if text == "none" else f"fault plan {text}"
    return getattr(spec, "__name__", "custom fault plans")
