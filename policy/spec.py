"""What a policy consumes and produces: cameras, proprioception, actions and rates.

One `PolicySpec` travels with a checkpoint, describes an episode store's streams
once aligned to the token grid, and is what the runtime checks the robot's
configuration against. Every other part of the project imports it from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from policy.imaging import resize_area, to_channels


class SpecMismatchError(ValueError):
    """Two specs that must agree do not; the message names every difference."""


@dataclass(frozen=True)
class CameraSpec:
    """One camera as the policy sees it: each frame is cropped to `crop` (top, left,
    height, width in the camera's own pixels; None: the whole frame), then resized to
    height x width (any aspect ratio) and converted to `channels`."""

    name: str
    height: int
    width: int
    channels: int = 3
    crop: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"camera name must be a non-empty word without '/', got {self.name!r}")
        if self.height < 8 or self.width < 8:
            raise ValueError(f"camera {self.name!r}: image size {self.height}x{self.width} is below 8 px")
        if self.channels not in (1, 3):
            raise ValueError(f"camera {self.name!r}: channels must be 1 or 3, got {self.channels}")
        if self.crop is not None:
            crop = tuple(int(v) for v in self.crop)
            if len(crop) != 4 or crop[0] < 0 or crop[1] < 0:
                raise ValueError(
                    f"camera {self.name!r}: crop must be [top, left, height, width] with top, left >= 0, "
                    f"got {list(self.crop)}"
                )
            # A crop at least as large as the policy image is never upscaled, and a frame that
            # already has the policy's size is then unambiguously one that was prepared.
            if crop[2] < self.height or crop[3] < self.width:
                raise ValueError(
                    f"camera {self.name!r}: crop {crop[2]}x{crop[3]} is smaller than the policy image "
                    f"{self.height}x{self.width}; it would be upscaled"
                )
            object.__setattr__(self, "crop", crop)

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """An (H, W, C) camera frame as the policy sees it (crop, area resize, channels),
        exactly as the training reader prepares recorded frames. A frame that already has
        the policy's size and channels is returned as it is (prepared once upstream)."""
        array = np.asarray(frame)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (1, 3) or 0 in array.shape:
            raise ValueError(
                f"camera {self.name!r}: expected an HxWx1 or HxWx3 uint8 image, got shape {array.shape} {array.dtype}"
            )
        if array.shape == (self.height, self.width, self.channels):
            return array
        if self.crop is not None:
            top, left, height, width = self.crop
            if top + height > array.shape[0] or left + width > array.shape[1]:
                raise ValueError(
                    f"camera {self.name!r}: crop [top {top}, left {left}, {height}x{width}] does not fit "
                    f"a {array.shape[0]}x{array.shape[1]} frame"
                )
            array = array[top : top + height, left : left + width]
        return to_channels(resize_area(array, self.height, self.width), self.channels)


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


@dataclass(frozen=True)
class PolicySpec:
    """The contract between data, checkpoint and robot.

    A token spans `token_period_s` seconds and carries `actions_per_token`
    actions, so the action rate is actions_per_token / token_period_s. `embodiment`
    names what the proprioception and action vectors are (robots.embodiment: "ee_pose",
    "joint_position"); the robot's description must name the same.
    """

    cameras: tuple[CameraSpec, ...]
    proprio_dim: int
    action: ActionSpec
    actions_per_token: int
    token_period_s: float
    proprio_names: tuple[str, ...] = field(default=())
    embodiment: str = "ee_pose"

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
            if a.crop != b.crop:
                problems.append(f"camera {name!r}: checkpoint crops {a.crop}, configuration crops {b.crop}")
        if self.embodiment != other.embodiment:
            problems.append(f"embodiment: checkpoint {self.embodiment!r}, configuration {other.embodiment!r}")
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
            "cameras": [{**asdict(c), "crop": list(c.crop) if c.crop else None} for c in self.cameras],
            "proprio_dim": self.proprio_dim,
            "proprio_names": list(self.proprio_names),
            "action": [asdict(c) for c in self.action.components],
            "actions_per_token": self.actions_per_token,
            "token_period_s": self.token_period_s,
            "embodiment": self.embodiment,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicySpec:
        try:
            return cls(
                cameras=tuple(
                    CameraSpec(**{**c, "crop": tuple(c["crop"]) if c.get("crop") is not None else None})
                    for c in data["cameras"]
                ),
                proprio_dim=int(data["proprio_dim"]),
                proprio_names=tuple(data.get("proprio_names", ())),
                action=ActionSpec(tuple(ActionComponent(**c) for c in data["action"])),
                actions_per_token=int(data["actions_per_token"]),
                token_period_s=float(data["token_period_s"]),
                # Checkpoints written before embodiments existed were all end-effector pose.
                embodiment=str(data.get("embodiment", "ee_pose")),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"policy spec is malformed ({error!r}); got keys {sorted(data)}") from error
