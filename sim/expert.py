"""Running a task's scripted expert through an episode (any task: SimEnv.task.expert).

The expert of each task lives with its task (e.g. sim.tasks.swap_fruit.ScriptedExpert).
"""

from __future__ import annotations

from typing import Any

from sim.env import SimEnv


def run_expert_episode(
    env: SimEnv,
    seed: int,
    max_steps: int = 300,
    extra_steps: int = 2,
    on_step: object | None = None,
) -> dict[str, Any]:
    """Reset `env` with `seed` and run its task's expert until it is done (plus `extra_steps`
    holding the last target, so objects settle). `on_step(observation, action)`, if given,
    is called with each step's observation and the action taken from it. Returns success,
    steps, the episode info and the success report."""
    expert = env.task.expert(env)
    observation = env.reset(seed)
    expert.reset()
    steps = 0
    remaining = extra_steps
    while steps < max_steps:
        action = expert.act()
        if expert.done:
            if remaining <= 0:
                break
            remaining -= 1
        if on_step is not None:
            on_step(observation, action)  # type: ignore[operator]
        observation = env.step(env.expert_action(action))
        steps += 1
    report = env.success_report()
    return {
        "seed": seed,
        "success": report["success"],
        "steps": steps,
        "sim_time_s": env.time,
        "failed_picks": expert.failed_picks,
        "info": env.info.to_dict(),
        "report": report,
    }
