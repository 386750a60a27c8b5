"""NaN or infinity in a committed episode's vector streams: `validate` (also `--quick`)
names the episode, the stream and the first bad sample, and changes nothing on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import zarr

from data_collection.cli import main
from data_collection.store import EpisodeStore, nonfinite_problem

from .helpers import make_store, record_episode


def write_into_store(store: EpisodeStore, episode: str, stream: str, part: str, index: int, value: float) -> None:
    """Change one committed number behind the store's back (a buggy importer or a hand edit)."""
    array = zarr.open_array(str(store.path / "episodes" / episode / stream / part), mode="r+")
    if array.ndim == 1:
        array[index] = value
    else:
        row = np.asarray(array[index])
        row[2] = value
        array[index] = row


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def store(tmp_path: Path) -> EpisodeStore:
    store = make_store(tmp_path / "s.zarr")
    record_episode(store, ticks=60)
    record_episode(store, ticks=60)
    return store


@pytest.mark.parametrize("checksums", [False, True])
def test_validate_names_episode_stream_and_first_bad_sample(store: EpisodeStore, checksums: bool) -> None:
    write_into_store(store, "ep_000001", "ee_pose", "data", 17, float("nan"))
    write_into_store(store, "ep_000001", "ee_pose", "data", 40, float("inf"))
    report = store.validate(checksums=checksums)
    assert not report.ok and report.bad_episodes == ["ep_000001"]
    assert (
        "ep_000001: stream 'ee_pose' has NaN or infinite values in 2 of 60 samples, the first at sample 17 (z=nan)"
        in report.errors
    )


def test_validate_names_non_finite_timestamps(store: EpisodeStore) -> None:
    write_into_store(store, "ep_000000", "gripper", "stamps", 3, float("-inf"))
    errors = store.validate(checksums=False).errors
    assert len(errors) == 1
    assert errors[0] == (
        "ep_000000: stream 'gripper' has NaN or infinite timestamps in 1 of 12 samples, "
        + "the first at sample 3 (stamp -inf)"
    )


def test_quick_validate_command_fails_and_leaves_the_store_untouched(
    store: EpisodeStore, capsys: pytest.CaptureFixture[str]
) -> None:
    write_into_store(store, "ep_000000", "command", "data", 5, float("nan"))
    before = tree_digest(store.path)
    assert main(["validate", str(store.path), "--quick"]) == 1
    out = capsys.readouterr().out
    assert (
        "error: ep_000000: stream 'command' has NaN or infinite values in 1 of 60 samples, the first at sample 5" in out
    )
    assert "NOT valid" in out
    assert tree_digest(store.path) == before


def test_episode_reports_non_finite_samples_of_a_stream(store: EpisodeStore) -> None:
    assert store.episode(0).nonfinite_problem("ee_pose") is None
    write_into_store(store, "ep_000000", "ee_pose", "data", 0, float("nan"))
    assert (
        store.episode(0)
        .nonfinite_problem("ee_pose")
        .startswith("ep_000000: stream 'ee_pose' has NaN or infinite values in 1 of 60 samples, the first at sample 0")
    )


def test_nonfinite_problem_without_field_names_uses_component_indices() -> None:
    values = np.zeros((4, 3))
    values[2, 1] = np.nan
    assert nonfinite_problem("ep_000009", "x", "values", values) == (
        "ep_000009: stream 'x' has NaN or infinite values in 1 of 4 samples, the first at sample 2 (1=nan)"
    )
    assert nonfinite_problem("ep_000009", "x", "values", np.zeros((0, 3))) is None
