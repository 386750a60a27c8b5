"""Training read path: token-grid alignment, tolerances, masks, windows, fallbacks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from data_collection.mapping import FeatureMapping
from data_collection.reader import TokenWindowDataset, align_episode, nearest_earlier
from policy.imaging import resize_area
from policy.spec import CameraSpec, PolicySpec
from training.config import task_policy_spec

from .helpers import FakeClock, feed, make_recorder, make_store


def grid_spec(image_size: int) -> PolicySpec:
    """The swap-fruit task's spec on a 0.4 s grid of 4 actions: the alignment arithmetic
    below is written for that grid."""
    return task_policy_spec([f"task.image_size={image_size}", "task.actions_per_token=4", "task.token_period_s=0.4"])


def test_nearest_earlier_never_uses_the_future():
    stamps = np.array([1.0, 2.0, 3.0])
    index, valid = nearest_earlier(stamps, np.array([0.5, 1.0, 1.9, 3.5, 9.0]), tolerance_s=1.0)
    assert index.tolist() == [0, 0, 0, 2, 2]
    assert valid.tolist() == [False, True, True, True, False]


@pytest.fixture
def episode_store(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    clock = FakeClock(start=0.0)
    recorder = make_recorder(store, clock)
    recorder.start_episode(task="align")
    feed(recorder, clock, 200)  # 2 s: cameras at 33 Hz, state/commands at 100 Hz
    feed(recorder, clock, 100, skip=("wrist",))  # the wrist camera drops out for 1 s
    feed(recorder, clock, 100)
    recorder.stop_episode()
    return store


def test_alignment_to_token_grid(episode_store):
    spec = grid_spec(16)  # 0.4 s tokens, 4 actions per token, 16x16 frames
    aligned = align_episode(episode_store.episode(0), spec)
    t0 = aligned.token_times[0]
    assert t0 == pytest.approx(0.05)  # the first instant every observation stream exists (gripper)
    assert np.allclose(np.diff(aligned.token_times), 0.4)
    assert len(aligned) == 10
    # Proprio: measured x equals the stamp of the newest pose at or before the token.
    # (stamps are sums of 0.01 steps, so "at" the token may be one float ulp after it)
    lag = aligned.token_times - aligned.proprio[:, 0]
    assert np.all(lag > -1e-6) and np.all(lag < 0.01 + 1e-6)
    assert np.allclose(aligned.proprio[:, 3:9], [1, 0, 0, 0, 1, 0])  # identity rotation in 6D
    assert np.allclose(aligned.proprio[:, 9], 0.04)
    # Actions: token t holds the commands in force mid-slot, at t_{t-1} + 0.1 (j + 0.5).
    assert np.allclose(aligned.action_times[3], aligned.token_times[3] - np.array([0.35, 0.25, 0.15, 0.05]))
    lag = aligned.action_times[3] - aligned.actions[3, :, 0]
    assert np.all(lag > -1e-6) and np.all(lag < 0.01 + 1e-6)
    assert not aligned.action_valid[0, :3].any() and aligned.action_valid[1:].all()
    # Frames: pixel value = tick of the newest frame at or before the token time.
    ticks = np.round(aligned.token_times / 0.01).astype(int)
    frame_ticks = aligned.frames["front"][:, 0, 0, 0].astype(int)
    assert np.all((ticks - frame_ticks) % 256 <= 3)  # at most one frame period old
    assert aligned.frames["front"].shape == (10, 16, 16, 3)
    # The wrist camera's dropout (t in 2.0 .. 3.0 s) is masked, the rest is valid.
    gap = (aligned.token_times > 2.15) & (aligned.token_times < 3.0)
    assert not aligned.frame_valid["wrist"][gap].any() and aligned.frame_valid["wrist"][~gap].all()
    assert (aligned.frames["wrist"][gap] == 0).all()
    assert aligned.frame_valid["front"].all()


def test_tolerance_is_configurable(episode_store):
    episode = episode_store.episode(0)
    strict = align_episode(episode, grid_spec(16), tolerance_s={"wrist": 10.0})
    assert strict.frame_valid["wrist"].all()
    loose = align_episode(episode, grid_spec(16), tolerance_s=0.001)
    assert not loose.frame_valid["front"].all()


def test_fallback_resize_and_grayscale(episode_store):
    episode = episode_store.episode(0)
    cameras = (CameraSpec("front", 12, 12, channels=1), CameraSpec("wrist", 12, 12))
    spec = replace(grid_spec(16), cameras=cameras)
    aligned = align_episode(episode, spec)  # no 12x12 copy: decode and resize
    assert aligned.frames["front"].shape == (10, 12, 12, 1)
    index = int(np.searchsorted(episode.stamps("wrist"), aligned.token_times[1], side="right") - 1)
    expected = resize_area(np.asarray(episode.frames("wrist")[index]), 12, 12)
    assert np.array_equal(aligned.frames["wrist"][1], expected)


def test_windows_with_padding(episode_store):
    dataset = TokenWindowDataset(episode_store, grid_spec(8), horizon=4)
    assert len(dataset) == 10
    sample = dataset[9]
    assert sample["pad"].tolist() == [False, True, True, True]
    assert sample["frames/front"].shape == (4, 8, 8, 3) and sample["actions"].shape == (4, 4, 10)
    assert not sample["action_valid"][1:].any() and not sample["proprio_valid"][1:].any()
    full = TokenWindowDataset(episode_store, grid_spec(8), horizon=4, pad_end=False)
    assert len(full) == 7 and not full[6]["pad"].any()


def test_mapping_mismatch_is_explained(episode_store):
    spec = replace(grid_spec(16), proprio_dim=7)
    with pytest.raises(ValueError, match="proprio_dim 7"):
        align_episode(episode_store.episode(0), spec)
    joints = replace(grid_spec(16), embodiment="joint_position")
    with pytest.raises(ValueError, match="embodiment 'joint_position' \\(this mapping reads 'ee_pose'\\)"):
        align_episode(episode_store.episode(0), joints, FeatureMapping())


def test_a_cropped_camera_is_cut_from_full_frames_not_from_the_low_resolution_copy(episode_store):
    episode = episode_store.episode(0)
    height, width = np.asarray(episode.frames("front")[0]).shape[:2]
    crop = (2, 4, height - 6, width - 8)
    spec = replace(grid_spec(16), cameras=(CameraSpec("front", 16, 16, 3, crop), CameraSpec("wrist", 16, 16)))
    aligned = align_episode(episode, spec)
    index = int(np.searchsorted(episode.stamps("front"), aligned.token_times[2], side="right") - 1)
    full = np.asarray(episode.frames("front")[index])
    expected = resize_area(full[2 : 2 + crop[2], 4 : 4 + crop[3]], 16, 16)
    assert np.array_equal(aligned.frames["front"][2], expected)
