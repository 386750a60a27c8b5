"""Scripted expert for swap-fruit: swaps the two fruits through the empty slot.

Moves: the first fruit (random per episode, EpisodeInfo.first_fruit) goes to the empty
slot, the other fruit into the first fruit's starting slot, and the first fruit from the
formerly empty slot into the other's starting slot. After the first move the table looks
like a fresh start configuration, so a policy needs memory to know what comes next.

The expert produces one absolute end-effector target per env step (10 Hz): min-jerk
segments between a few waypoints with durations quantised to whole steps, a fixed
top-down orientation, and the gripper width jumping between open and closed. These
targets are the action labels a policy learns to imitate, so they are smooth and the
same shape in every episode. It reads the fruits' true positions from the simulator
when it starts each pick and re-tries a pick that did not lift the fruit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from robots.franka import GRIPPER_MAX_WIDTH
from sim.env import SwapFruitEnv, make_action
from sim.scene import FRUIT_RADIUS, FRUITS, SLOT_POSITIONS

# Top-down grasp: the TCP's z axis points at the table, fingers close along the base y axis.
TOP_DOWN = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class ExpertConfig:
    hover_height_m: float = 0.13  # TCP height while travelling (fruit clears the other fruit)
    grasp_height_m: float = FRUIT_RADIUS + 0.003  # TCP height when closing on a fruit
    place_height_m: float = FRUIT_RADIUS + 0.006  # released a few mm above the table
    travel_speed_m_s: float = 0.4  # average speed of a horizontal or approach segment
    vertical_steps: int = 5  # descend / lift duration (steps of 0.1 s)
    lift_steps: int = 4
    close_steps: int = 4
    open_steps: int = 3
    min_travel_steps: int = 5
    rest_position: tuple[float, float, float] = (0.42, 0.0, 0.24)
    max_pick_attempts: int = 3
    closed_width_m: float = 0.0
    open_width_m: float = GRIPPER_MAX_WIDTH


@dataclass(frozen=True)
class Segment:
    end: np.ndarray  # (3,) target position at the end of the segment
    gripper: float  # gripper width target for the whole segment
    steps: int
    phase: str


def min_jerk(fraction: float) -> float:
    s = min(1.0, max(0.0, fraction))
    return s * s * s * (10.0 - 15.0 * s + 6.0 * s * s)


class ScriptedExpert:
    """`reset()` after `env.reset(seed)`, then `act()` once per env step until `done`."""

    def __init__(self, env: SwapFruitEnv, config: ExpertConfig | None = None) -> None:
        self.env = env
        self.config = config or ExpertConfig()
        self._script: Iterator[Segment] | None = None
        self._segment: Segment | None = None
        self._segment_start = np.zeros(3)
        self._segment_step = 0
        self._position = np.zeros(3)
        self._gripper = self.config.open_width_m
        self.done = False
        self.failed_picks = 0

    @property
    def phase(self) -> str:
        if self.done:
            return "done"
        return self._segment.phase if self._segment is not None else "start"

    def reset(self) -> None:
        """Plan a new episode from the env's current state (call right after env.reset)."""
        state = self.env.robot_state()
        self._position = state.ee_position.copy()
        self._gripper = self.config.open_width_m
        self._script = self._plan()
        self._segment = None
        self._segment_step = 0
        self.done = False
        self.failed_picks = 0

    def act(self) -> np.ndarray:
        """The next 10-D absolute target (the action label)."""
        if self._script is None:
            raise RuntimeError("call ScriptedExpert.reset() after env.reset(seed) first")
        while not self.done and (self._segment is None or self._segment_step >= self._segment.steps):
            try:
                self._segment = next(self._script)
            except StopIteration:
                self.done = True
                break
            self._segment_start = self._position.copy()
            self._segment_step = 0
        if not self.done and self._segment is not None:
            self._segment_step += 1
            fraction = min_jerk(self._segment_step / self._segment.steps)
            self._position = self._segment_start + fraction * (self._segment.end - self._segment_start)
            self._gripper = self._segment.gripper
        return make_action(self._position, TOP_DOWN, self._gripper)

    # ------------------------------------------------------------------ plan

    def moves(self) -> list[tuple[str, int]]:
        """(fruit, destination slot) in order: through the empty slot."""
        info = self.env.info
        first = info.first_fruit
        second = FRUITS[1 - FRUITS.index(first)]
        return [
            (first, info.empty_slot),
            (second, info.fruit_slots[first]),
            (first, info.fruit_slots[second]),
        ]

    def _plan(self) -> Iterator[Segment]:
        config = self.config
        for fruit, destination in self.moves():
            for attempt in range(config.max_pick_attempts):
                yield from self._pick(fruit, retry=attempt > 0)
                if self._holding(fruit):
                    break
                self.failed_picks += 1
            yield from self._place(destination)
        rest = np.array(config.rest_position)
        yield Segment(rest, config.open_width_m, self._travel_steps(rest), "retreat")

    def _pick(self, fruit: str, retry: bool) -> Iterator[Segment]:
        config = self.config
        position = self.env.fruit_positions()[fruit]
        above = np.array([position[0], position[1], config.hover_height_m])
        at = np.array([position[0], position[1], config.grasp_height_m])
        open_width = config.open_width_m
        if retry:
            yield Segment(self._position.copy(), open_width, config.open_steps, "reopen")
        yield Segment(above, open_width, self._travel_steps(above), f"approach_{fruit}")
        yield Segment(at, open_width, config.vertical_steps, f"descend_{fruit}")
        yield Segment(at, config.closed_width_m, config.close_steps, f"grasp_{fruit}")
        yield Segment(above, config.closed_width_m, config.lift_steps, f"lift_{fruit}")

    def _place(self, slot: int) -> Iterator[Segment]:
        config = self.config
        x, y = SLOT_POSITIONS[slot]
        above = np.array([x, y, config.hover_height_m])
        at = np.array([x, y, config.place_height_m])
        closed = config.closed_width_m
        yield Segment(above, closed, self._travel_steps(above), f"carry_to_slot{slot}")
        yield Segment(at, closed, config.vertical_steps, f"lower_slot{slot}")
        yield Segment(at, config.open_width_m, config.open_steps, f"release_slot{slot}")
        yield Segment(above, config.open_width_m, config.lift_steps, f"withdraw_slot{slot}")

    def _travel_steps(self, end: np.ndarray) -> int:
        distance = float(np.linalg.norm(end - self._position))
        seconds = distance / self.config.travel_speed_m_s
        steps = math.ceil(seconds / self.env.config.step_period_s - 1e-9)
        return max(self.config.min_travel_steps, steps)

    def _holding(self, fruit: str) -> bool:
        """The fruit came up with the gripper (checked after the lift)."""
        position = self.env.fruit_positions()[fruit]
        tcp = self.env.robot_state().ee_position
        lifted = position[2] > FRUIT_RADIUS + 0.04
        near = float(np.linalg.norm(position[:2] - tcp[:2])) < 0.03
        return bool(lifted and near)


def run_expert_episode(
    env: SwapFruitEnv,
    seed: int,
    max_steps: int = 300,
    extra_steps: int = 2,
    on_step: object | None = None,
) -> dict[str, object]:
    """Reset `env` with `seed` and run the expert until it is done (plus `extra_steps`
    holding the last target, so the fruit settles). `on_step(observation, action)`, if
    given, is called with each step's observation and the action taken from it.
    Returns success, steps, the episode info and the success report."""
    expert = ScriptedExpert(env)
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
        observation = env.step(action)
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
