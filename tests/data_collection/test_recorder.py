"""Recorder core: lifecycle, statistics and every bad-input case of issue 4."""

from __future__ import annotations

import errno
import time

import numpy as np
import pytest

import data_collection.episode_writer as episode_writer
from data_collection.episode_writer import EpisodeWriter
from data_collection.recorder import FAILED, IDLE, Recorder
from data_collection.schema import DiskFullError, StoreError, StoreLockedError

from .helpers import IMAGE_SHAPE, FakeClock, feed, frame, make_recorder, make_store, record_episode


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path / "s.zarr")


def _start(store, **config):
    clock = FakeClock()
    recorder = make_recorder(store, clock, **config)
    recorder.start_episode(task="t")
    return recorder, clock


def test_lifecycle_statistics_and_initial_configuration(store):
    clock = FakeClock()
    recorder = make_recorder(store, clock)
    assert recorder.add("joint_states", 1.0, np.arange(14.0)) is False  # idle: not recorded
    recorder.start_episode(task="swap fruit", metadata={"slots": ["apple", "orange", None]})
    feed(recorder, clock, 90)
    stats = recorder.statistics()
    result = recorder.stop_episode(success=False, notes="slipped")
    assert result.committed and recorder.state == IDLE
    front = result.statistics["streams"]["front"]
    assert front["offered"] == front["accepted"] == front["written"] == 30 and front["dropped"] == 0
    assert front["rate_hz"] == pytest.approx(100 / 3, rel=1e-6)
    assert stats["state"] == "recording"
    meta = store.metadata(result.episode_id)
    assert meta["initial_configuration"]["joint_states"] == list(np.arange(14.0))
    assert meta["slots"] == ["apple", "orange", None] and meta["notes"] == "slipped" and meta["success"] is False
    assert meta["rates"]["ee_pose"] == 1000 and meta["cameras"]["front"]["shape"] == [
        *IMAGE_SHAPE,
        3,
    ]
    assert meta["software_version"].startswith("df-stack")
    assert meta["marked"] is False and meta["complete"] is True


def test_discard_and_empty_episode(store):
    recorder, clock = _start(store)
    feed(recorder, clock, 10)
    assert recorder.discard_episode() == "ep_000000"
    assert store.episode_ids() == [] and store.staged_ids() == []
    recorder.start_episode()
    result = recorder.stop_episode()
    assert not result.committed and "no samples" in result.message and store.staged_ids() == []


def test_start_twice_and_unknown_stream(store):
    recorder, _ = _start(store)
    with pytest.raises(StoreError, match="stop or discard it first"):
        recorder.start_episode()
    with pytest.raises(KeyError, match="unknown stream 'depth'"):
        recorder.add("depth", 1.0, [0.0])
    with pytest.raises(StoreLockedError):  # a second recorder on the same store is refused
        make_recorder(type(store).open(store.path)).start_episode()
    recorder.discard_episode()


def _only_problem(result, text):
    matching = [p for p in result.problems if text in p]
    assert matching, f"no problem mentioning {text!r} in {result.problems}"
    return matching[0]


def test_wrong_and_changing_image_size_and_encoding(store):
    recorder, clock = _start(store)
    feed(recorder, clock, 6)
    assert recorder.add("front", clock.now + 0.001, np.zeros((12, 16, 3), np.uint8)) is False
    assert recorder.add("front", clock.now + 0.002, frame(1), encoding="bgr8") is False
    assert recorder.add("front", clock.now + 0.003, frame(1).astype(np.float32)) is False
    assert recorder.add("front", clock.now + 0.004, frame(1), encoding="rgb8") is True
    result = recorder.stop_episode()
    assert "frame size 12x16x3, expected 24x32x3" in _only_problem(result, "size")
    assert "encoding 'bgr8', expected 'rgb8'" in _only_problem(result, "encoding")
    assert "dtype float32" in _only_problem(result, "dtype")
    meta = store.metadata(result.episode_id)
    assert meta["marked"] and store.episode(result.episode_id).count("front") == 3
    assert result.statistics["streams"]["front"]["rejected"] == 3


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pose_is_rejected(store, bad):
    recorder, clock = _start(store)
    feed(recorder, clock, 5)
    assert recorder.add("ee_pose", clock.now + 0.001, [bad, 0, 0, 0, 0, 0, 1]) is False
    assert recorder.add("command", clock.now + 0.001, [0, 0, 0, 0, 0, 0, 1, bad]) is False
    assert recorder.add("ee_pose", float("nan"), [0, 0, 0, 0, 0, 0, 1]) is False
    result = recorder.stop_episode()
    assert "NaN or infinite" in _only_problem(result, "'ee_pose': NaN")
    assert "not finite" in _only_problem(result, "timestamp nan")
    values = store.episode(result.episode_id).values("ee_pose")
    assert np.all(np.isfinite(values)) and len(values) == 5


def test_timestamps_backwards_repeated_and_jumping(store):
    recorder, clock = _start(store)
    feed(recorder, clock, 5)
    last = clock.now
    assert recorder.add("ee_pose", last - 0.5, [0, 0, 0, 0, 0, 0, 1]) is False
    assert recorder.add("ee_pose", last, [0, 0, 0, 0, 0, 0, 1]) is False
    assert recorder.add("ee_pose", last + 5.0, [0, 0, 0, 0, 0, 0, 1]) is True
    result = recorder.stop_episode()
    assert "went backwards by 0.500000 s" in _only_problem(result, "backwards")
    assert "repeats" in _only_problem(result, "repeats")
    assert "jumped forward by 5.000 s" in _only_problem(result, "jumped")
    stats = result.statistics["streams"]["ee_pose"]
    assert stats["gaps"] >= 1 and stats["max_gap_s"] == pytest.approx(5.0)
    assert np.all(np.diff(store.episode(result.episode_id).stamps("ee_pose")) > 0)


def test_stream_that_stops_is_noticed(store):
    recorder, clock = _start(store)
    feed(recorder, clock, 30)
    feed(recorder, clock, 150, skip=("wrist",))  # 1.5 s without the wrist camera
    deadline = time.monotonic() + 5
    while not any("wrist" in p and "stopped" in p for p in recorder.problems()) and time.monotonic() < deadline:
        time.sleep(0.01)
    result = recorder.stop_episode()
    message = _only_problem(result, "stopped")
    assert "stream 'wrist' stopped: no sample for" in message and "expected every 0.0333 s" in message
    assert result.committed and result.statistics["streams"]["wrist"]["stalls"] == 1


def test_stream_without_samples_marks_episode(store):
    recorder, clock = _start(store)
    feed(recorder, clock, 10, skip=("teleop",))
    result = recorder.stop_episode()
    assert "stream 'teleop' delivered no samples" in _only_problem(result, "teleop")


def test_buffer_overflow_drops_and_counts(store, monkeypatch):
    recorder, _clock = _start(store, block_when_full=False)
    original = EpisodeWriter.append_vectors

    def slow(self, *args, **kwargs):
        time.sleep(0.3)  # the disk stalls: the bounded buffer must not grow
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EpisodeWriter, "append_vectors", slow)
    for i in range(8000):
        recorder.add("ee_pose", 200.0 + i * 0.001, [0, 0, 0, 0, 0, 0, 1])
    assert len(recorder._buffers["ee_pose"].items) <= recorder.specs["ee_pose"].buffer_len
    monkeypatch.setattr(EpisodeWriter, "append_vectors", original)
    result = recorder.stop_episode()
    stats = result.statistics["streams"]["ee_pose"]
    assert stats["dropped"] > 0 and stats["dropped"] + stats["written"] == 8000
    assert "buffer full" in _only_problem(result, "buffer full")


def test_disk_full_while_recording_keeps_process_and_committed_data(store, monkeypatch):
    first = record_episode(store)
    checksums = store.metadata(first.episode_id)["checksums"]
    recorder, clock = _start(store)
    feed(recorder, clock, 20)
    recorder.stop_episode  # noqa: B018 (the recorder keeps running below)
    time.sleep(0.05)

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(episode_writer, "_write_all", full)
    feed(recorder, clock, 10)
    deadline = time.monotonic() + 5
    while recorder.state != FAILED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.state == FAILED and "disk full while writing stream" in recorder.failure
    assert recorder.add("ee_pose", clock.now + 1, [0, 0, 0, 0, 0, 0, 1]) is False
    monkeypatch.undo()
    result = recorder.stop_episode()
    assert result.committed and "disk full" in _only_problem(result, "disk full")
    meta = store.metadata(result.episode_id)
    assert meta["complete"] is False and meta["marked"] is True
    assert store.metadata(first.episode_id)["checksums"] == checksums and store.validate().ok
    recorder.start_episode()  # the process goes on recording
    feed(recorder, clock, 5)
    assert recorder.stop_episode().committed


def test_disk_full_at_start_and_at_commit(store, monkeypatch):
    clock = FakeClock()
    recorder = make_recorder(store, clock, min_free_bytes=2**62)
    with pytest.raises(DiskFullError, match="min_free_bytes"):
        recorder.start_episode()
    recorder = make_recorder(store, clock)
    recorder.start_episode()
    feed(recorder, clock, 10)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(EpisodeWriter, "seal", full)
    with pytest.raises(DiskFullError, match="run `repair` to recover it"):
        recorder.stop_episode()
    monkeypatch.undo()
    assert recorder.state == IDLE and store.staged_ids() == ["ep_000000"]
    report = store.repair()
    assert [a.action for a in report.actions] == ["recovered"] and report.validation.ok


def test_resume_after_restart(store):
    clock = FakeClock()
    recorder = make_recorder(store, clock)
    recorder.start_episode(task="long demo")
    feed(recorder, clock, 30)
    recorder.close()  # the process "dies": nothing committed, the episode stays staged
    restarted: Recorder = make_recorder(type(store).open(store.path), clock)
    assert restarted.pending_episodes() == ["ep_000000"]
    assert restarted.resume_episode() == "ep_000000"
    clock.now += 2.0
    assert restarted.add("ee_pose", clock.now - 10, [0, 0, 0, 0, 0, 0, 1]) is False  # older than before the crash
    feed(restarted, clock, 30)
    result = restarted.stop_episode(success=True)
    episode = store.episode(result.episode_id)
    assert episode.count("ee_pose") == 60 and episode.count("front") == 20
    assert episode.metadata["task"] == "long demo" and len(episode.metadata["resumed_at"]) == 1
    assert any("resumed" in p for p in result.problems)
    assert episode.verify() == []
    assert np.all(np.diff(episode.stamps("front")) > 0)


def test_concurrent_producers(store):
    import threading

    recorder, _ = _start(store)

    def produce(stream, count, make):
        for i in range(count):
            recorder.add(stream, 300.0 + i * 0.001, make(i))

    threads = [
        threading.Thread(target=produce, args=("ee_pose", 2000, lambda i: [i, 0, 0, 0, 0, 0, 1])),
        threading.Thread(target=produce, args=("joint_states", 2000, lambda i: np.full(14, i))),
        threading.Thread(target=produce, args=("front", 50, lambda i: frame(i))),
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    result = recorder.stop_episode()
    streams = result.statistics["streams"]
    for name in ("ee_pose", "joint_states", "front"):
        assert streams[name]["written"] + streams[name]["dropped"] == streams[name]["offered"]
    episode = store.episode(result.episode_id)
    assert np.all(np.diff(episode.values("ee_pose")[:, 0]) > 0)
