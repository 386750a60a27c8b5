"""Seeded, scheduled fault injection for the observation stream.

A `FaultPlan` is a list of `FaultEvent`s, each a kind of fault active on a half-open span
of sim time [start_s, end_s). Plans are plain data (to/from dict and JSON) so an
evaluation can store the exact plan next to its results. A `FaultInjector` applies a
plan to the clean camera frames of one episode and reports, per camera and per frame,
which faults were applied: the ground truth that frame-health estimates are scored against.

Camera faults (one camera each): blackout, occlusion (patches), hand (a hand-like blob
in front of the lens), frozen (the frame from the fault's start repeats), dropped (no
frame arrives), delayed (an older frame arrives with its old stamp), noise, blur.
Scene faults: distractor (an object enters the scene; every camera that sees it shows it).
Robot-state faults: state_dropout (no robot state arrives).

Pixel faults depend only on the event, its seed and the frame time, never on global
random state, so the same plan on the same episode gives the same pixels.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CAMERA_FAULTS: tuple[str, ...] = (
    "blackout",
    "occlusion",
    "hand",
    "frozen",
    "dropped",
    "delayed",
    "noise",
    "blur",
)
SCENE_FAULTS: tuple[str, ...] = ("distractor",)
STATE_FAULTS: tuple[str, ...] = ("state_dropout",)
FAULT_KINDS: tuple[str, ...] = CAMERA_FAULTS + SCENE_FAULTS + STATE_FAULTS
ROBOT_STATE_KEY = "robot_state"

# Defaults for each kind's parameters; an event's params override them.
DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "occlusion": {"patches": 2, "min_fraction": 0.15, "max_fraction": 0.4},
    "hand": {"coverage": 0.45},
    "delayed": {"delay_s": 0.3},
    "noise": {"sigma": 30.0},
    "blur": {"kernel": 9},
    "distractor": {},
}
_FRAME_TIME_EPS = 1e-6


@dataclass(frozen=True)
class FaultEvent:
    """One fault on [start_s, end_s) of sim time. `camera` names the camera for camera
    faults and must be None for scene and robot-state faults."""

    kind: str
    start_s: float
    end_s: float
    camera: str | None = None
    seed: int = 0
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known kinds: {list(FAULT_KINDS)}")
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)):
            raise ValueError(f"fault {self.kind!r}: start_s and end_s must be finite")
        if self.end_s <= self.start_s:
            raise ValueError(f"fault {self.kind!r}: end_s ({self.end_s}) must be after start_s ({self.start_s})")
        if self.kind in CAMERA_FAULTS and not self.camera:
            raise ValueError(f"camera fault {self.kind!r} needs a camera name")
        if self.kind not in CAMERA_FAULTS and self.camera is not None:
            raise ValueError(f"fault {self.kind!r} applies to the whole scene/robot; camera must be None")
        unknown = set(self.params) - set(DEFAULT_PARAMS.get(self.kind, {}))
        if unknown:
            raise ValueError(
                f"fault {self.kind!r}: unknown parameters {sorted(unknown)}; "
                f"known: {sorted(DEFAULT_PARAMS.get(self.kind, {}))}"
            )

    def active(self, t: float) -> bool:
        return self.start_s - _FRAME_TIME_EPS <= t < self.end_s - _FRAME_TIME_EPS

    def param(self, name: str) -> float:
        return float(self.params.get(name, DEFAULT_PARAMS[self.kind][name]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "camera": self.camera,
            "seed": self.seed,
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultEvent:
        try:
            return cls(
                kind=str(data["kind"]),
                start_s=float(data["start_s"]),
                end_s=float(data["end_s"]),
                camera=data.get("camera"),
                seed=int(data.get("seed", 0)),
                params=dict(data.get("params", {})),
            )
        except KeyError as error:
            raise ValueError(f"fault event is missing {error}; got keys {sorted(data)}") from error


@dataclass(frozen=True)
class FaultPlan:
    """A schedule of fault events for one episode (times relative to the episode start)."""

    events: tuple[FaultEvent, ...] = ()
    seed: int | None = None  # the seed `random` drew it from, kept for the record

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", tuple(self.events))

    @classmethod
    def none(cls) -> FaultPlan:
        return cls(())

    @classmethod
    def random(
        cls,
        seed: int,
        duration_s: float = 15.0,
        cameras: Sequence[str] = ("front", "wrist"),
        kinds: Sequence[str] = FAULT_KINDS,
        events: int = 3,
        min_span_s: float = 0.5,
        max_span_s: float = 3.0,
    ) -> FaultPlan:
        """`events` faults of random kinds, cameras, spans and seeds, drawn from `seed`."""
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
        if not kinds or not cameras:
            raise ValueError("FaultPlan.random needs at least one kind and one camera")
        rng = np.random.default_rng(seed)
        drawn = []
        for _ in range(events):
            kind = str(rng.choice(list(kinds)))
            span = float(rng.uniform(min_span_s, max_span_s))
            start = float(rng.uniform(0.0, max(0.0, duration_s - span)))
            camera = str(rng.choice(list(cameras))) if kind in CAMERA_FAULTS else None
            drawn.append(
                FaultEvent(
                    kind=kind,
                    start_s=round(start, 3),
                    end_s=round(start + span, 3),
                    camera=camera,
                    seed=int(rng.integers(0, 2**31 - 1)),
                )
            )
        drawn.sort(key=lambda e: (e.start_s, e.kind))
        return cls(tuple(drawn), seed=seed)

    @classmethod
    def occlusion_test(
        cls,
        seed: int,
        duration_s: float = 15.0,
        camera: str = "front",
        blackouts: int = 2,
        min_span_s: float = 1.5,
        max_span_s: float = 3.0,
        distractor: bool = True,
    ) -> FaultPlan:
        """The Diffusion Forcing paper's robustness test, as a plan: `camera` fully
        occluded (black) for `blackouts` spans that do not overlap, and a distractor object
        on the table for one span, all drawn from `seed` within `duration_s`."""
        if blackouts < 0 or duration_s <= 0 or not 0 < min_span_s <= max_span_s:
            raise ValueError(
                "need blackouts >= 0, duration_s > 0 and 0 < min_span_s <= max_span_s, got "
                f"{blackouts}, {duration_s}, {min_span_s}, {max_span_s}"
            )
        rng = np.random.default_rng([seed, 0x0CC1])
        # Blackouts fall in separate, equal sub-windows of the duration, so they never merge.
        window = duration_s / max(blackouts, 1)
        events = []
        for index in range(blackouts):
            # Short episodes get shorter spans (each stays inside its window).
            span = float(rng.uniform(min(min_span_s, window), min(max_span_s, window)))
            start = index * window + float(rng.uniform(0.0, max(0.0, window - span)))
            events.append(
                FaultEvent("blackout", round(start, 3), round(start + span, 3), camera, int(rng.integers(2**31 - 1)))
            )
        if distractor:
            span = float(rng.uniform(min(min_span_s, duration_s), min(max_span_s, duration_s)))
            start = float(rng.uniform(0.0, max(0.0, duration_s - span)))
            events.append(
                FaultEvent("distractor", round(start, 3), round(start + span, 3), None, int(rng.integers(2**31 - 1)))
            )
        return cls(tuple(sorted(events, key=lambda e: (e.start_s, e.kind))), seed=seed)

    def active(self, t: float) -> list[FaultEvent]:
        return [e for e in self.events if e.active(t)]

    def camera_events(self, camera: str, t: float) -> list[FaultEvent]:
        return [e for e in self.events if e.camera == camera and e.active(t)]

    def distractor_event(self, t: float) -> FaultEvent | None:
        for event in self.events:
            if event.kind == "distractor" and event.active(t):
                return event
        return None

    def state_dropout(self, t: float) -> bool:
        return any(e.kind == "state_dropout" and e.active(t) for e in self.events)

    def ground_truth(self, t: float, cameras: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Fault kinds active at time t, per camera, plus the robot state under
        ROBOT_STATE_KEY. A distractor counts for every camera (it is in the scene)."""
        truth: dict[str, tuple[str, ...]] = {}
        scene = tuple(e.kind for e in self.events if e.kind in SCENE_FAULTS and e.active(t))
        for camera in cameras:
            own = tuple(e.kind for e in self.camera_events(camera, t))
            truth[camera] = own + scene
        truth[ROBOT_STATE_KEY] = ("state_dropout",) if self.state_dropout(t) else ()
        return truth

    def check_cameras(self, cameras: Iterable[str]) -> None:
        known = set(cameras)
        for event in self.events:
            if event.camera is not None and event.camera not in known:
                raise ValueError(f"fault plan names camera {event.camera!r}, but the scene has {sorted(known)}")

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "events": [e.to_dict() for e in self.events]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        if not isinstance(data, Mapping) or "events" not in data:
            raise ValueError("a fault plan dict needs an 'events' list")
        seed = data.get("seed")
        return cls(
            tuple(FaultEvent.from_dict(e) for e in data["events"]),
            seed=None if seed is None else int(seed),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"fault plan is not valid JSON: {error}") from error
        return cls.from_dict(data)


@dataclass(frozen=True)
class InjectedFrame:
    """What a camera delivers: the image (None when dropped), the capture time it carries
    (older than now for a delayed frame, NaN when dropped) and the applied fault kinds."""

    image: np.ndarray | None
    stamp: float
    faults: tuple[str, ...]


class FaultInjector:
    """Applies a FaultPlan to a stream of clean frames, one camera at a time. Keeps a
    short history per camera for delayed and frozen frames; `reset` at episode start."""

    def __init__(self, plan: FaultPlan | None, cameras: Sequence[str], history_s: float = 3.0) -> None:
        self.plan = plan or FaultPlan.none()
        self.cameras = tuple(cameras)
        self.plan.check_cameras(self.cameras)
        self._history_s = max([history_s] + [e.param("delay_s") + 0.5 for e in self.plan.events if e.kind == "delayed"])
        self._history: dict[str, deque[tuple[float, np.ndarray]]] = {}
        self._frozen: dict[tuple[str, int], tuple[float, np.ndarray]] = {}
        self.reset()

    def reset(self) -> None:
        self._history = {c: deque() for c in self.cameras}
        self._frozen = {}

    def process(self, camera: str, t: float, clean: np.ndarray) -> InjectedFrame:
        """The frame camera `camera` delivers at time t, given its clean render."""
        if camera not in self._history:
            raise ValueError(f"unknown camera {camera!r}; injector has {list(self.cameras)}")
        history = self._history[camera]
        history.append((t, clean))
        while history and history[0][0] < t - self._history_s:
            history.popleft()

        events = self.plan.camera_events(camera, t)
        if not events:
            return InjectedFrame(clean, t, self._scene_faults(t))
        kinds = tuple(e.kind for e in events)
        if "dropped" in kinds:
            return InjectedFrame(None, math.nan, kinds + self._scene_faults(t))

        image, stamp = clean, t
        for event in events:
            if event.kind == "delayed":
                stamp, image = self._delayed(history, t - event.param("delay_s"))
        for event in events:
            if event.kind == "frozen":
                key = (camera, id(event))
                if key not in self._frozen:
                    # The last frame delivered before the freeze (or this one, at the start).
                    self._frozen[key] = self._delayed(history, event.start_s)
                image = self._frozen[key][1]
        image = image.copy()
        frame_index = round(t * 1000.0)
        for kind in ("blur", "noise", "occlusion", "hand", "blackout"):
            for event in events:
                if event.kind == kind:
                    image = _apply_pixel_fault(event, image, frame_index)
        return InjectedFrame(image, stamp, kinds + self._scene_faults(t))

    def _scene_faults(self, t: float) -> tuple[str, ...]:
        return tuple(e.kind for e in self.plan.events if e.kind in SCENE_FAULTS and e.active(t))

    @staticmethod
    def _delayed(history: deque[tuple[float, np.ndarray]], wanted: float) -> tuple[float, np.ndarray]:
        """The newest frame captured at or before `wanted` (the oldest one if none is)."""
        chosen = history[0]
        for stamp, frame in history:
            if stamp <= wanted + _FRAME_TIME_EPS:
                chosen = (stamp, frame)
            else:
                break
        return chosen


def _apply_pixel_fault(event: FaultEvent, image: np.ndarray, frame_index: int) -> np.ndarray:
    height, width = image.shape[:2]
    if event.kind == "blackout":
        return np.zeros_like(image)
    if event.kind == "noise":
        rng = np.random.default_rng([event.seed, frame_index])
        noise = rng.normal(0.0, event.param("sigma"), size=image.shape)
        return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if event.kind == "blur":
        return box_blur(image, int(event.param("kernel")))
    if event.kind == "occlusion":
        rng = np.random.default_rng(event.seed)  # static patches for the whole event
        out = image.copy()
        for _ in range(int(event.param("patches"))):
            fraction = rng.uniform(event.param("min_fraction"), event.param("max_fraction"))
            ph = max(2, round(height * math.sqrt(fraction) * rng.uniform(0.7, 1.3)))
            pw = max(2, round(width * fraction * height / max(ph, 1)))
            ph, pw = min(ph, height), min(pw, width)
            top = int(rng.integers(0, height - ph + 1))
            left = int(rng.integers(0, width - pw + 1))
            colour = rng.integers(0, 256, size=3, dtype=np.uint8)
            out[top : top + ph, left : left + pw] = colour
        return out
    if event.kind == "hand":
        return _draw_hand(image, event)
    raise ValueError(f"fault {event.kind!r} is not a pixel fault")


def box_blur(image: np.ndarray, kernel: int) -> np.ndarray:
    """Separable box blur with edge padding (a defocused or motion-smeared lens)."""
    k = max(1, int(kernel))
    if k % 2 == 0:
        k += 1
    if k == 1:
        return image.copy()
    pad = k // 2
    work = np.pad(image.astype(np.float32), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    cumulative = np.cumsum(np.pad(work, ((1, 0), (0, 0), (0, 0))), axis=0)
    work = (cumulative[k:] - cumulative[:-k]) / k
    cumulative = np.cumsum(np.pad(work, ((0, 0), (1, 0), (0, 0))), axis=1)
    work = (cumulative[:, k:] - cumulative[:, :-k]) / k
    return np.clip(np.rint(work), 0, 255).astype(np.uint8)


def _draw_hand(image: np.ndarray, event: FaultEvent) -> np.ndarray:
    """A skin-coloured palm with four fingers reaching in from one image edge."""
    rng = np.random.default_rng(event.seed)
    height, width = image.shape[:2]
    coverage = event.param("coverage")
    edge = int(rng.integers(0, 4))  # 0 bottom, 1 top, 2 left, 3 right
    skin = np.array([224, 172, 140], dtype=np.float32) * rng.uniform(0.8, 1.05)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    # Work in a frame where the hand comes up from the bottom edge, then rotate the mask.
    if edge == 1:
        ys = height - 1 - ys
    elif edge == 2:
        ys, xs = width - 1 - xs, ys
    elif edge == 3:
        ys, xs = xs, ys
    span = float(max(height, width))
    centre_x = span * rng.uniform(0.3, 0.7)
    palm_radius = span * coverage * 0.45
    palm_y = span - palm_radius * 0.4
    mask = ((xs - centre_x) / (palm_radius * 1.1)) ** 2 + ((ys - palm_y) / palm_radius) ** 2 <= 1.0
    finger_length = palm_radius * 1.5
    finger_width = palm_radius * 0.28
    for i in range(4):
        fx = centre_x + (i - 1.5) * finger_width * 2.1
        top = palm_y - palm_radius - finger_length * (0.75 + 0.25 * (i in (1, 2)))
        in_finger = (np.abs(xs - fx) <= finger_width) & (ys >= top) & (ys <= palm_y)
        mask |= in_finger
    shade = 0.85 + 0.15 * np.clip((ys - ys.min()) / max(1.0, float(np.ptp(ys))), 0, 1)
    out = image.copy()
    out[mask] = np.clip(skin[None, :] * shade[mask][:, None], 0, 255).astype(np.uint8)
    return out


def distractor_position(event: FaultEvent, t: float) -> np.ndarray:
    """Where the distractor is at time t of its event: it slides in from the side of the
    table, pauses in front of the slots and slides out again before the event ends."""
    rng = np.random.default_rng(event.seed)
    side = 1.0 if rng.uniform() < 0.5 else -1.0
    stop = np.array([rng.uniform(0.66, 0.74), rng.uniform(-0.12, 0.12), 0.03])
    outside = np.array([stop[0], side * 0.62, 0.03])
    span = event.end_s - event.start_s
    phase = (t - event.start_s) / span
    travel = 0.3
    if phase < travel:
        alpha = phase / travel
    elif phase > 1.0 - travel:
        alpha = (1.0 - phase) / travel
    else:
        alpha = 1.0
    alpha = 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, alpha)))
    return outside + alpha * (stop - outside)
