"""SIGKILL at every step of commit and delete (fault injection), and at random instants."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_collection.store import EpisodeStore

from .helpers import make_store, record_episode

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from data_collection.store import EpisodeStore
from helpers import record_episode
store = EpisodeStore.open({store!r}, durable=False)
if {delete}:
    store.delete_last()
else:
    record_episode(store, ticks=30, task="killed")
print("finished")
"""


@pytest.mark.parametrize(
    ("point", "expected_actions", "episodes_after"),
    [
        ("after_frame_chunk", {"removed"}, 1),  # the first frame's chunk: no sample logged yet
        ("seal_before_metadata", {"recovered"}, 2),
        ("seal_after_metadata", {"committed"}, 2),
        ("commit_before_rename", {"committed"}, 2),
        ("commit_after_rename", set(), 2),
        ("delete_after_rename", {"cleaned"}, 1),
    ],
)
def test_kill_at_each_step(tmp_path, point, expected_actions, episodes_after):
    store = make_store(tmp_path / "s.zarr")
    first = record_episode(store, task="kept")
    if point == "delete_after_rename":
        record_episode(store)
    checksums = store.metadata(first.episode_id)["checksums"]
    code = CHILD.format(tests=str(Path(__file__).parent), store=str(store.path), delete=point.startswith("delete"))
    env = {**os.environ, "DF_STORE_CRASH_AT": point, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, f"the child was not killed at {point}: {child.stdout} {child.stderr}"
    reopened = EpisodeStore.open(store.path)  # opens whatever the kill left
    assert reopened.metadata(first.episode_id)["checksums"] == checksums
    assert reopened.verify_episode(first.episode_id) == []
    report = reopened.repair()
    assert {a.action for a in report.actions} == expected_actions, [str(a) for a in report.actions]
    assert report.validation.ok, report.validation.errors
    assert len(reopened.episode_ids()) == episodes_after
    assert reopened.verify_episode(first.episode_id) == []


def test_bench_crash_quick():
    from benchmarks.bench_crash import main

    assert main(["--quick", "--max-delay", "0.8"]) == 0
