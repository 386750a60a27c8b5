"""Small recordings for the data_collection tests (tiny images, a fake clock)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_collection.recorder import Recorder, RecorderConfig
from data_collection.schema import StoreSettings, fr3_stream_specs
from data_collection.store import EpisodeStore

IMAGE_SHAPE = (24, 32)
POLICY_SIZES = ((16, 16), (8, 8))


def make_store(path: Path, durable: bool = False) -> EpisodeStore:
    return EpisodeStore.create(path, StoreSettings(policy_image_sizes=POLICY_SIZES), durable=durable)


class FakeClock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make_recorder(store: EpisodeStore, clock: FakeClock | None = None, **config: object) -> Recorder:
    # Tests feed faster than real time: wait for buffer space instead of dropping (the
    # overflow test turns this off).
    settings = {
        "min_free_bytes": 0,
        "health_check_period_s": 0.01,
        "block_when_full": True,
        **config,
    }
    return Recorder(
        store,
        fr3_stream_specs(image_shape=IMAGE_SHAPE),
        RecorderConfig(**settings),  # type: ignore[arg-type]
        robot={"type": "fr3", "simulated": True},
        clock=clock or FakeClock(),
    )


def frame(value: int) -> np.ndarray:
    return np.full((*IMAGE_SHAPE, 3), value % 256, dtype=np.uint8)


def feed(recorder: Recorder, clock: FakeClock, ticks: int, dt: float = 0.01, skip: tuple[str, ...] = ()) -> None:
    """`ticks` control periods of samples: cameras every 3rd tick (pixel value = tick),
    state and commands every tick (x = stamp), gripper every 5th tick."""
    for _ in range(ticks):
        clock.now += dt
        t = clock.now
        tick = round(t / dt)
        if tick % 3 == 0:
            for camera in ("front", "wrist"):
                if camera not in skip:
                    recorder.add(camera, t, frame(tick))
        pose = [t, 0.0, 0.4, 0.0, 0.0, 0.0, 1.0]
        if "ee_pose" not in skip:
            recorder.add("ee_pose", t, pose)
        if "joint_states" not in skip:
            recorder.add("joint_states", t, np.full(14, t))
        if "command" not in skip:
            recorder.add("command", t, [*pose, 0.04])
        if "teleop" not in skip:
            recorder.add("teleop", t, np.zeros(7))
        if tick % 5 == 0 and "gripper" not in skip:
            recorder.add("gripper", t, [0.04])


def record_episode(store: EpisodeStore, ticks: int = 40, task: str = "test", clock: FakeClock | None = None):
    clock = clock or FakeClock()
    recorder = make_recorder(store, clock)
    recorder.start_episode(task=task)
    feed(recorder, clock, ticks)
    return recorder.stop_episode(success=True)
