"""Swap fruit: an apple and an orange on two of three marked slots trade places.

The first fruit (EpisodeInfo.first_fruit) goes to the empty slot, the other fruit into
the first fruit's starting slot, and the first fruit from the formerly empty slot into
the other's starting slot. After the first move the table looks like a fresh start
configuration, so a policy needs memory to know what comes next.

Success: both fruits in each other's starting slot and at rest on the table, the
gripper open and the arm clear above them.

The scripted expert produces one absolute end-effector target per env step (10 Hz):
min-jerk segments between a few waypoints with durations quantised to whole steps, a
fixed top-down orientation, and the gripper width jumping between open and closed. These
targets are the action labels a policy learns to imitate, so they are smooth and the
same shape in every episode. It reads the fruits' true positions from the simulator
when it starts each pick and re-tries a pick that did not lift the fruit.

Seeds, scene and expert are those `make bench-paper`'s figures were made with: a change
here changes every recorded demonstration.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robots.franka import GRIPPER_MAX_WIDTH
from sim.env import EnvConfig, SimEnv, make_action
from sim.scene import SceneObjects, mjcf_vector
from sim.tasks.base import DEFAULT_ACTIVE_S, SimTask

FRUITS: tuple[str, ...] = ("apple", "orange")
FRUIT_RADIUS = 0.032  # m; both fit the 80 mm gripper with room to spare
FRUIT_MASS = 0.12  # kg
FRUIT_COLOURS = {"apple": "0.78 0.07 0.09 1", "orange": "1.0 0.5 0.04 1"}

# Slot centres on the table (x, y), left to right as the robot sees them.
SLOT_POSITIONS = np.array([[0.5, 0.16], [0.5, 0.0], [0.5, -0.16]])
SLOT_RADIUS = 0.045

# Top-down grasp: the TCP's z axis points at the table, fingers close along the base y axis.
TOP_DOWN = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class EpisodeInfo:
    """How an episode started: which fruit sits in which slot and which moves first."""

    seed: int
    fruit_slots: dict[str, int]  # fruit -> slot index (0, 1, 2)
    empty_slot: int
    first_fruit: str  # the fruit the expert moves first (through the empty slot)
    initial_fruit_positions: dict[str, tuple[float, float, float]]

    def goal_slots(self) -> dict[str, int]:
        """Each fruit's goal: the other fruit's starting slot."""
        a, b = FRUITS
        return {a: self.fruit_slots[b], b: self.fruit_slots[a]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "fruit_slots": dict(self.fruit_slots),
            "empty_slot": self.empty_slot,
            "first_fruit": self.first_fruit,
            "initial_fruit_positions": {k: list(v) for k, v in self.initial_fruit_positions.items()},
            "slot_positions": SLOT_POSITIONS.tolist(),
        }

    def describe(self) -> str:
        return f"fruits in slots {self.fruit_slots}, {self.first_fruit} moves first"


def _scene_objects() -> SceneObjects:
    slots = "\n".join(
        f'<geom name="slot{i}" type="cylinder" size="{SLOT_RADIUS} 0.0008" '
        f'pos="{mjcf_vector([x, y, 0.0008])}" rgba="0.3 0.3 0.34 1" class="marking"/>'
        f'\n<geom name="slot{i}_centre" type="cylinder" size="0.012 0.0009" '
        f'pos="{mjcf_vector([x, y, 0.0009])}" rgba="0.9 0.9 0.9 1" class="marking"/>'
        for i, (x, y) in enumerate(SLOT_POSITIONS)
    )
    fruits = "\n".join(
        f"""<body name="{name}" pos="{mjcf_vector([0.5, 0.4 + 0.1 * k, FRUIT_RADIUS])}">
  <freejoint name="{name}_joint"/>
  <geom name="{name}_geom" type="sphere" size="{FRUIT_RADIUS}" mass="{FRUIT_MASS}"
        rgba="{FRUIT_COLOURS[name]}" class="fruit"/>
  <geom name="{name}_stem" type="capsule" size="0.004 0.006" pos="0 0 {FRUIT_RADIUS + 0.004}"
        rgba="0.3 0.2 0.08 1" class="marking" mass="0.001"/>
</body>"""
        for k, name in enumerate(FRUITS)
    )
    defaults = """<default class="fruit">
      <!-- condim 6: torsional and rolling friction stop a released sphere from rolling -->
      <geom contype="1" conaffinity="1" condim="6" friction="1.0 0.01 0.003"
            solref="0.004 1" solimp="0.95 0.99 0.001"/>
    </default>"""
    return SceneObjects("swap_fruit", defaults=defaults, markings=slots, bodies=fruits)


class SwapFruitTask(SimTask):
    """`first_fruit`: which fruit the demonstrator moves first, "apple" (a fixed protocol,
    as a human demonstrator keeps one habit) or "random" (either, per episode). A fixed
    first fruit keeps the demonstrations unimodal, so a policy trained for minutes on a
    CPU learns them; memory is needed either way: after the first move the table shows a
    valid start again, and a memoryless policy moves the apple straight back.
    `slot_jitter_m`: uniform +- jitter of each fruit around its slot centre."""

    name = "swap_fruit"
    title = "swap fruit"

    def __init__(
        self,
        first_fruit: str = "apple",
        slot_jitter_m: float = 0.01,
        cameras: Mapping[str, Any] | None = None,
        fault_plans: Mapping[str, Any] | None = None,
        active_s: float = DEFAULT_ACTIVE_S,
    ) -> None:
        super().__init__(cameras=cameras, fault_plans=fault_plans, active_s=active_s)
        if first_fruit not in (*FRUITS, "random"):
            raise ValueError(f"first_fruit must be one of {[*FRUITS, 'random']}, got {first_fruit!r}")
        if not (math.isfinite(slot_jitter_m) and 0 <= slot_jitter_m < SLOT_RADIUS):
            raise ValueError(f"slot_jitter_m must be in [0, {SLOT_RADIUS}) m, got {slot_jitter_m}")
        self.first_fruit = first_fruit
        self.slot_jitter_m = float(slot_jitter_m)

    def scene_objects(self) -> SceneObjects:
        return _scene_objects()

    def reset(self, env: SimEnv, seed: int) -> EpisodeInfo:
        rng = np.random.default_rng([int(seed), 0x5EED])
        slots = rng.permutation(3)
        fruit_slots = {FRUITS[0]: int(slots[0]), FRUITS[1]: int(slots[1])}
        drawn_first = FRUITS[int(rng.integers(0, 2))]  # drawn always: the other draws stay the same
        first_fruit = drawn_first if self.first_fruit == "random" else self.first_fruit
        jitter = rng.uniform(-self.slot_jitter_m, self.slot_jitter_m, size=(2, 2))
        positions = {}
        for k, name in enumerate(FRUITS):
            xy = SLOT_POSITIONS[fruit_slots[name]] + jitter[k]
            position = (float(xy[0]), float(xy[1]), FRUIT_RADIUS)
            adr = env.qpos_address(f"{name}_joint")
            env.data.qpos[adr : adr + 3] = position
            env.data.qpos[adr + 3 : adr + 7] = (1.0, 0.0, 0.0, 0.0)
            positions[name] = position
        return EpisodeInfo(
            seed=int(seed),
            fruit_slots=fruit_slots,
            empty_slot=int(slots[2]),
            first_fruit=first_fruit,
            initial_fruit_positions=positions,
        )

    def fruit_positions(self, env: SimEnv) -> dict[str, np.ndarray]:
        return {name: env.data.qpos[adr : adr + 3].copy() for name, adr in self._addresses(env, "qpos").items()}

    def fruit_speeds(self, env: SimEnv) -> dict[str, float]:
        return {
            name: float(np.linalg.norm(env.data.qvel[adr : adr + 3]))
            for name, adr in self._addresses(env, "dof").items()
        }

    @staticmethod
    def _addresses(env: SimEnv, kind: str) -> dict[str, int]:
        lookup = env.qpos_address if kind == "qpos" else env.dof_address
        return {name: lookup(f"{name}_joint") for name in FRUITS}

    def success_report(self, env: SimEnv) -> dict[str, Any]:
        """Both fruits in each other's starting slot and at rest, gripper open, arm clear."""
        info = env.info
        goals = info.goal_slots()
        positions = self.fruit_positions(env)
        speeds = self.fruit_speeds(env)
        fruits = {}
        for name in FRUITS:
            goal = SLOT_POSITIONS[goals[name]]
            distance = float(np.linalg.norm(positions[name][:2] - goal))
            resting = positions[name][2] < FRUIT_RADIUS + 0.01 and speeds[name] < 0.05
            fruits[name] = {
                "goal_slot": goals[name],
                "distance_to_goal_m": distance,
                "in_goal_slot": distance <= SLOT_RADIUS,
                "resting_on_table": bool(resting),
            }
        state = env.robot_state()
        gripper_open = state.gripper_width >= 0.06
        lowest_fruit_top = max(p[2] for p in positions.values()) + FRUIT_RADIUS
        # Clear: the fingertips (about 1.5 cm below the TCP) are well above every fruit.
        arm_clear = bool(state.ee_position[2] - 0.015 > lowest_fruit_top + 0.03)
        success = (
            all(f["in_goal_slot"] and f["resting_on_table"] for f in fruits.values()) and gripper_open and arm_clear
        )
        return {
            "success": bool(success),
            "fruits": fruits,
            "gripper_open": bool(gripper_open),
            "gripper_width_m": state.gripper_width,
            "arm_clear": arm_clear,
            "time_s": env.time,
        }

    def expert(self, env: SimEnv) -> ScriptedExpert:
        return ScriptedExpert(env)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "first_fruit": self.first_fruit, "slot_jitter_m": self.slot_jitter_m}


class SwapFruitEnv(SimEnv):
    """SimEnv on swap fruit, with the fruits' state at hand: for the code that studies this
    task itself (its tests, sim.picture, bench-sim). Everything that runs *a* task builds
    SimEnv with the task its configuration names."""

    task: SwapFruitTask

    def __init__(self, config: EnvConfig | None = None, task: SwapFruitTask | None = None) -> None:
        super().__init__(config, task or SwapFruitTask())

    def fruit_positions(self) -> dict[str, np.ndarray]:
        return self.task.fruit_positions(self)

    def fruit_speeds(self) -> dict[str, float]:
        return self.task.fruit_speeds(self)


# ------------------------------------------------------------------------- expert


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
    """`reset()` after `env.reset(seed)`, then `act()` once per env step until `done`.
    `env` runs the swap-fruit task (SwapFruitTask)."""

    def __init__(self, env: SimEnv, config: ExpertConfig | None = None) -> None:
        if not isinstance(env.task, SwapFruitTask):
            raise TypeError(f"the swap-fruit expert needs an env running SwapFruitTask, got {type(env.task).__name__}")
        self.env = env
        self.task: SwapFruitTask = env.task
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
        position = self.task.fruit_positions(self.env)[fruit]
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
        position = self.task.fruit_positions(self.env)[fruit]
        tcp = self.env.robot_state().ee_position
        lifted = position[2] > FRUIT_RADIUS + 0.04
        near = float(np.linalg.norm(position[:2] - tcp[:2])) < 0.03
        return bool(lifted and near)
