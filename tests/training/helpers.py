"""Tiny episode stores for the trainer tests: synthetic streams through the real Recorder
(no simulator), 16 px policy copies, a fake clock, a few tokens per episode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from data_collection.recorder import Recorder, RecorderConfig
from data_collection.schema import StoreSettings, fr3_stream_specs
from data_collection.store import EpisodeStore

IMAGE_SHAPE = (24, 24)
POLICY_SIZE = 16
RATE_HZ = 10.0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _frame(episode: int, step: int, camera: int) -> np.ndarray:
    """A bright square whose place depends on the episode and moves with time."""
    image = np.full((*IMAGE_SHAPE, 3), 40, dtype=np.uint8)
    row = (4 * episode + step // 4 + 6 * camera) % (IMAGE_SHAPE[0] - 6)
    col = (3 * step) % (IMAGE_SHAPE[1] - 6)
    image[row : row + 6, col : col + 6] = (220, 60 + 40 * episode % 200, 90)
    return image


def make_store(path: Path, episodes: int = 2, tokens: int = 8, cameras: tuple[str, ...] = ("front", "wrist")) -> Path:
    """`episodes` episodes of `tokens` 0.4 s tokens (10 Hz streams), smooth trajectories
    that differ per episode; commands are the pose a step ahead plus a gripper width."""
    store = EpisodeStore.create(path, StoreSettings(policy_image_sizes=((POLICY_SIZE, POLICY_SIZE),)), durable=False)
    streams = fr3_stream_specs(
        camera_names=cameras,
        image_shape=IMAGE_SHAPE,
        camera_rate_hz=RATE_HZ,
        state_rate_hz=RATE_HZ,
        gripper_rate_hz=RATE_HZ,
        command_rate_hz=RATE_HZ,
        teleop_rate_hz=RATE_HZ,
    )
    streams = [s for s in streams if s.name != "teleop"]
    clock = _Clock()
    recorder = Recorder(
        store, streams, RecorderConfig(min_free_bytes=0, block_when_full=True), robot={"type": "test"}, clock=clock
    )
    steps = tokens * 4
    for episode in range(episodes):
        recorder.start_episode(task="test")
        phase = 0.7 * episode
        for step in range(steps):
            t = round(step / RATE_HZ, 6)
            clock.now = t
            for index, camera in enumerate(cameras):
                recorder.add(camera, t, _frame(episode, step, index))

            def pose(k: int, phase: float = phase) -> list[float]:
                s = k / steps
                return [0.4 + 0.1 * np.sin(3 * s + phase), 0.1 * np.cos(2 * s + phase), 0.2 + 0.05 * s, 0, 0, 0, 1]

            width = 0.08 if (step // 8 + episode) % 2 == 0 else 0.0
            recorder.add("ee_pose", t, pose(step))
            recorder.add("joint_states", t, np.zeros(14))
            recorder.add("gripper", t, [width])
            recorder.add("command", t, [*pose(step + 1), width])
        recorder.stop_episode(success=True)
    recorder.close()
    return path


def tiny_overrides(dataset: Path, run_dir: Path, **extra: object) -> list[str]:
    """A tiny model on 16 px frames, quiet logging: a step takes milliseconds."""
    values: dict[str, object] = {
        "model": "tiny",
        "task.dataset": str(dataset),
        "task.image_size": POLICY_SIZE,
        "task.val_fraction": 0.0,
        "task.augmentation.shift_px": 1,
        "run_dir": str(run_dir),
        "optim.batch_size": 2,
        "optim.warmup_steps": 2,
        "optim.total_steps": 10,
        "optim.num_threads": 1,
        "logging.progress": False,
        "logging.tensorboard": False,
        "logging.checkpoint_every": 0,
        "evaluation.every_steps": 0,
    }
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items()]


def assert_same_training_state(expected_run: Path, resumed_run: Path) -> None:
    """The resume states of two runs hold the same weights, EMA and AdamW moments: what
    N steps + resume + N steps must leave, against 2N steps in one go."""
    for name in ("model", "ema", "optimizer"):
        expected = load_file(str(expected_run / "resume" / f"{name}.safetensors"))
        resumed = load_file(str(resumed_run / "resume" / f"{name}.safetensors"))
        assert expected.keys() == resumed.keys()
        for key in expected:
            torch.testing.assert_close(resumed[key], expected[key], rtol=1e-6, atol=1e-7, msg=f"{name} {key}")
