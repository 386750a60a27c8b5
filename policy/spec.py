"""What a policy consumes and produces: cameras, proprioception, actions and rates.

One `PolicySpec` travels with a checkpoint, describes an episode store's streams
once aligned to the token grid, and is what the runtime checks the robot's
configuration against. Every other part of the project imports it from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class SpecMismatchError(ValueError):
    """Two specs that must agree do not; the message names every difference."""


@dataclass(frozen=True)
class CameraSpec:
    """One camera as the policy sees it (frames are resized to this size)."""

    name: str
    height: int
    width: int
    channels: int = 3

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"camera name must be a non-empty word without '/', got {self.name!r}")
        if self.height < 8 or self.width < 8:
            raise ValueError(f"camera {self.name!r}: image size {self.height}x{self.width} is below 8 px")
        if self.channels not in (1, 3):
            raise ValueError(f"camera {self.name!r}: channels must be 1 or 3, got {self.channels}")


@dataclass(frozen=True)
class ActionComponent:
    """A named slice of the action vector, e.g. ('position', 3)."""

    name: str
    size: int

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"action component {self.name!r} has size {self.size}, expected > 0")


@dataclass(frozen=True)
class ActionSpec:
    components: tuple[ActionComponent, ...]

    @property
    def dim(self) -> int:
        return sum(c.size for c in self.components)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components)

    def slice(self, name: str) -> slice:
        start = 0
        for component in self.components:
            if component.name == name:
                return slice(start, start + component.size)
            start += component.size
        raise KeyError(f"action spec has no component {name!r}; it has {list(self.names)}")

    def describe(self) -> str:
        return ", ".join(f"{c.name}[{c.size}]" for c in self.components)


def franka_ee_action_spec() -> ActionSpec:
    """Absolute end-effector target: position (m), rotation as the first two columns
    of the rotation matrix (continuous, unlike Euler angles or quaternions' sign
    flip), and gripper opening width (m)."""
    return ActionSpec(
        (ActionComponent("position", 3), ActionComponent("rotation_6d", 6), ActionComponent("gripper", 1))
    )


@dataclass(frozen=True)
class PolicySpec:
    """The contract between data, checkpoint and robot.

    A token spans `token_period_s` seconds and carries `actions_per_token`
    actions, so the action rate is actions_per_token / token_period_s.
    """

    cameras: tuple[CameraSpec, ...]
    proprio_dim: int
    action: ActionSpec
    actions_per_token: int
    token_period_s: float
    proprio_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        if self.actions_per_token < 1:
            raise ValueError(f"actions_per_token must be >= 1, got {self.actions_per_token}")
        if not self.token_period_s > 0:
            raise ValueError(f"token_period_s must be > 0, got {self.token_period_s}")
        if self.proprio_dim < 0:
            raise ValueError(f"proprio_dim must be >= 0, got {self.proprio_dim}")

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @property
    def action_period_s(self) -> float:
        return self.token_period_s / self.actions_per_token

    def mismatches(self, other: PolicySpec) -> list[str]:
        """Every difference that makes a policy trained for `self` unusable with `other`."""
        problems: list[str] = []
        mine = {c.name: c for c in self.cameras}
        theirs = {c.name: c for c in other.cameras}
        if list(mine) != list(theirs):
            missing = [n for n in mine if n not in theirs]
            extra = [n for n in theirs if n not in mine]
            detail = []
            if missing:
                detail.append(f"missing {missing}")
            if extra:
                detail.append(f"unexpected {extra}")
            if not detail:
                detail.append("same cameras in another order")
            problems.append(
                f"cameras: checkpoint has {list(mine)}, configuration has {list(theirs)} ({'; '.join(detail)})"
            )
        for name in mine.keys() & theirs.keys():
            a, b = mine[name], theirs[name]
            if (a.height, a.width, a.channels) != (b.height, b.width, b.channels):
                problems.append(
                    f"camera {name!r}: checkpoint expects {a.height}x{a.width}x{a.channels}, "
                    f"configuration gives {b.height}x{b.width}x{b.channels}"
                )
        if self.action != other.action:
            problems.append(
                f"action spec: checkpoint has [{self.action.describe()}], configuration has [{other.action.describe()}]"
            )
        if self.proprio_dim != other.proprio_dim:
            problems.append(
                f"proprioception: checkpoint expects {self.proprio_dim} values, configuration gives {other.proprio_dim}"
            )
        if self.actions_per_token != other.actions_per_token:
            problems.append(
                f"actions per token: checkpoint {self.actions_per_token}, configuration {other.actions_per_token}"
            )
        if abs(self.token_period_s - other.token_period_s) > 1e-9:
            problems.append(f"token period: checkpoint {self.token_period_s} s, configuration {other.token_period_s} s")
        return problems

    def require_compatible(self, other: PolicySpec, what: str = "checkpoint") -> None:
        problems = self.mismatches(other)
        if problems:
            raise SpecMismatchError(f"{what} does not match the robot configuration:\n  - " + "\n  - ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            "cameras": [asdict(c) for c in self.cameras],
            "proprio_dim": self.proprio_dim,
            "proprio_names": list(self.proprio_names),
            "action": [asdict(c) for c in self.action.components],
            "actions_per_token": self.actions_per_token,
            "token_period_s": self.token_period_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicySpec:
        try:
            return cls(
                cameras=tuple(CameraSpec(**c) for c in data["cameras"]),
                proprio_dim=int(data["proprio_dim"]),
                proprio_names=tuple(data.get("proprio_names", ())),
                action=ActionSpec(tuple(ActionComponent(**c) for c in data["action"])),
                actions_per_token=int(data["actions_per_token"]),
                token_period_s=float(data["token_period_s"]),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"policy spec is malformed ({error!r}); got keys {sorted(data)}") from error


def swap_fruit_spec(image_size: int = 64) -> PolicySpec:
    """The simulated swap-fruit task: front + wrist camera, end-effector pose and
    gripper width as proprioception, absolute end-effector targets at 10 Hz."""
    return PolicySpec(
        cameras=(CameraSpec("front", image_size, image_size), CameraSpec("wrist", image_size, image_size)),
        proprio_dim=10,
        proprio_names=("x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper_width"),
        action=franka_ee_action_spec(),
        actions_per_token=4,
        token_period_s=0.4,
    )
