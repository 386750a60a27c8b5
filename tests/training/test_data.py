"""Sequences from the episode start, the per-rank sampler, augmentation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from policy.normalizer import images_to_unit_range
from training.config import compose_config, policy_spec
from training.data import (
    AugmentationConfig,
    EpisodeSampler,
    SequenceDataset,
    fit_normalizer,
    frames_to_model_input,
    load_episodes,
    open_store,
    split_episodes,
)

from .helpers import tiny_overrides


def _episodes(store_path: Path, tmp_path: Path):
    config = compose_config(tiny_overrides(store_path, tmp_path / "run"))
    spec = policy_spec(config)
    store = open_store(store_path)
    return spec, load_episodes(store, spec, store.episode_ids())


def test_sequences_start_at_the_episode_start_and_mask_padding(tiny_store: Path, tmp_path: Path) -> None:
    spec, episodes = _episodes(tiny_store, tmp_path)
    normalizer = fit_normalizer(episodes, spec, margin=0.0)
    data = SequenceDataset(episodes, normalizer, max_tokens=50)
    assert data.sequence_length == max(len(e) for e in episodes)  # capped by the longest episode
    sample = data[0]
    np.testing.assert_array_equal(sample["frames"][: len(episodes[0])], episodes[0].frames)
    assert not sample["valid"][len(episodes[0]) :].any()
    assert sample["valid"][1 : len(episodes[0])].all()
    # Normalised actions of the real tokens lie in [-1, 1] (min-max fitted on them).
    real = sample["actions"][1 : len(episodes[0])]
    assert real.min() >= -1 - 1e-6 and real.max() <= 1 + 1e-6
    assert SequenceDataset(episodes, normalizer, max_tokens=3)[0]["frames"].shape[0] == 3


def test_sequences_continue_past_the_end_as_a_hold_when_asked(tiny_store: Path, tmp_path: Path) -> None:
    spec, episodes = _episodes(tiny_store, tmp_path)
    # One episode a token shorter than the others, so its hold ends before the sequence does.
    first = episodes[0]
    episodes[0] = dataclasses.replace(
        first,
        frames=first.frames[:-1],
        proprio=first.proprio[:-1],
        actions=first.actions[:-1],
        valid=first.valid[:-1],
    )
    normalizer = fit_normalizer(episodes, spec, margin=0.0)
    data = SequenceDataset(episodes, normalizer, max_tokens=None, hold_tokens_after_end=3)
    assert data.sequence_length == max(len(e) for e in episodes) + 3
    shortest = 0
    end = len(episodes[shortest])
    sample = data[shortest]
    # Exactly 3 held tokens (real, so valid), then padding as before.
    assert sample["valid"][1 : end + 3].all() and not sample["valid"][end + 3 :].any()
    sample = {key: value[: end + 3] for key, value in sample.items()}
    np.testing.assert_array_equal(
        sample["frames"][end:], np.broadcast_to(episodes[shortest].frames[-1], sample["frames"][end:].shape)
    )
    np.testing.assert_array_equal(
        sample["proprio"][end:], np.broadcast_to(sample["proprio"][end - 1], sample["proprio"][end:].shape)
    )
    # Every action of a held chunk is the episode's last target.
    d = spec.action.dim
    held = sample["actions"][end:].reshape(len(sample["actions"]) - end, -1, d)
    np.testing.assert_array_equal(held, np.broadcast_to(sample["actions"][end - 1].reshape(-1, d)[-1], held.shape))
    # The real part is unchanged, and a cap on the length still applies.
    np.testing.assert_array_equal(
        sample["actions"][:end], SequenceDataset(episodes, normalizer, None)[shortest]["actions"][:end]
    )
    assert SequenceDataset(episodes, normalizer, max_tokens=3, hold_tokens_after_end=3).sequence_length == 3
    with pytest.raises(Exception, match="hold_tokens_after_end must be >= 0"):
        SequenceDataset(episodes, normalizer, None, hold_tokens_after_end=-1)


def test_a_hold_warns_about_episodes_that_end_while_the_arm_moves(
    tiny_store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec, episodes = _episodes(tiny_store, tmp_path)
    d = spec.action.dim

    def ending(episode, moving: bool):
        actions = episode.actions.copy()
        chunk = actions[-1].reshape(-1, d)
        if moving:  # the last chunk sweeps the episode's whole range of targets
            low, high = episode.actions.reshape(-1, d).min(axis=0), episode.actions.reshape(-1, d).max(axis=0)
            chunk[:] = np.linspace(low, high, len(chunk))
        else:
            chunk[:] = chunk[0]
        actions[-1] = chunk.reshape(-1)
        return dataclasses.replace(episode, actions=actions)

    at_rest = [ending(e, moving=False) for e in episodes]
    normalizer = fit_normalizer(at_rest, spec, margin=0.0)
    with caplog.at_level("WARNING", logger="training.data"):
        SequenceDataset(at_rest, normalizer, None, hold_tokens_after_end=3)
    assert "still moving" not in caplog.text

    one_moving = [ending(episodes[0], moving=True), *at_rest[1:]]
    with caplog.at_level("WARNING", logger="training.data"):
        SequenceDataset(one_moving, normalizer, None, hold_tokens_after_end=0)  # no hold: nothing to warn about
        assert "still moving" not in caplog.text
        SequenceDataset(one_moving, normalizer, None, hold_tokens_after_end=3)
    assert f"1 of {len(episodes)} episodes end while the arm is still moving" in caplog.text
    assert episodes[0].episode_id in caplog.text


def test_sampler_is_deterministic_disjoint_across_ranks_and_resumable() -> None:
    ranks = [EpisodeSampler(10, 3, seed=1, rank=r, world_size=2) for r in range(2)]
    first = [ranks[0].next_batch(), ranks[1].next_batch()]
    assert not set(first[0][:3]) & set(first[1][:3])
    again = EpisodeSampler(10, 3, seed=1, rank=0, world_size=2)
    assert again.next_batch() == first[0]
    resumed = EpisodeSampler(10, 3, seed=1, rank=0, world_size=2)
    resumed.load_state_dict(ranks[0].state_dict())
    assert resumed.next_batch() == ranks[0].next_batch()
    with pytest.raises(ValueError, match="cannot feed 4 processes"):
        EpisodeSampler(3, 1, seed=0, world_size=4)


def test_split_keeps_whole_episodes_apart() -> None:
    train, val = split_episodes([f"ep_{i}" for i in range(10)], 0.2, seed=0)
    assert len(val) == 2 and not set(train) & set(val) and len(train) + len(val) == 10
    assert split_episodes(["a", "b"], 0.1, seed=0)[1]  # at least one held out


def test_conversion_matches_the_runtime_and_augmentation_is_seeded() -> None:
    frames = torch.randint(0, 256, (2, 3, 2, 3, 16, 16), dtype=torch.uint8)
    plain = frames_to_model_input(frames)
    assert torch.equal(plain, images_to_unit_range(frames.permute(0, 1, 2, 4, 5, 3)))
    config = AugmentationConfig(shift_px=2, brightness=0.1, contrast=0.1)
    a = frames_to_model_input(frames, config, torch.Generator().manual_seed(3))
    b = frames_to_model_input(frames, config, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, plain)
    assert a.min() >= -1 and a.max() <= 1
