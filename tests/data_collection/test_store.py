"""Episode store: creation, schema checks, commit, listing, delete, verify, repair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from data_collection.schema import (
    EpisodeNotFoundError,
    SchemaMismatchError,
    StoreError,
    StoreLockedError,
    fr3_stream_specs,
    robot_stream_specs,
)
from data_collection.store import EpisodeStore
from robots.description import load_robot_description, robot_description_from_dict

from .helpers import IMAGE_SHAPE, make_store, record_episode


def test_create_open_and_schema_attributes(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    root = json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    assert root["attributes"]["schema"] == "df-stack.episode-store"
    assert root["attributes"]["schema_version"] == 1
    assert EpisodeStore.open(store.path).episode_ids() == []
    with pytest.raises(StoreError, match="already exists"):
        make_store(tmp_path / "s.zarr")
    with pytest.raises(StoreError, match="no episode store"):
        EpisodeStore.open(tmp_path / "missing.zarr")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": 2}, "schema version 2"),
        ({"schema": "lerobot"}, "not a df-stack episode store"),
    ],
)
def test_open_refuses_other_schema(tmp_path, change, message):
    store = make_store(tmp_path / "s.zarr")
    meta_path = store.path / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"].update(change)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SchemaMismatchError, match=message):
        EpisodeStore.open(store.path)


def test_a_robot_descriptions_streams_are_its_cameras_rates_and_joints():
    robot = load_robot_description("fr3_real")
    specs = {s.name: s for s in robot_stream_specs(robot, command_rate_hz=50.0, teleop_rate_hz=25.0)}
    assert set(specs) == {s.name for s in fr3_stream_specs(camera_names=robot.camera_names)}
    for camera in robot.cameras:
        assert specs[camera.name].shape == (camera.height, camera.width, 3)
        assert specs[camera.name].rate_hz == camera.rate_hz
    assert specs["ee_pose"].rate_hz == specs["joint_states"].rate_hz == robot.state.rate_hz
    assert specs["gripper"].rate_hz == robot.state.gripper_rate_hz
    assert specs["command"].rate_hz == 50.0 and specs["teleop"].rate_hz == 25.0
    assert specs["joint_states"].fields[:7] == tuple(f"{j}.position" for j in robot.arm.joint_names)
    panda = robot_description_from_dict({**yaml.safe_load(Path(robot.source).read_text()), "robot_type": "fer"})
    (joints,) = [s for s in robot_stream_specs(panda, 50.0, 25.0) if s.name == "joint_states"]
    assert joints.fields[0] == "panda_joint1.position" and joints.fields[-1] == "panda_joint7.velocity"


def test_commit_list_read_and_verify(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    result = record_episode(store, ticks=60, task="swap fruit")
    assert result.committed and result.problems == []
    assert store.episode_ids() == ["ep_000000"] and store.staged_ids() == []
    episode = store.episode(0)
    assert episode.metadata["task"] == "swap fruit" and episode.metadata["success"] is True
    assert episode.metadata["robot"] == {"type": "fr3", "simulated": True}
    assert set(episode.stream_names) == {s.name for s in fr3_stream_specs()}
    assert episode.count("front") == 20 and episode.frames("front").shape == (20, *IMAGE_SHAPE, 3)
    assert episode.frames("front").chunks == (1, *IMAGE_SHAPE, 3)  # one frame per chunk
    assert episode.lowres("front", (16, 16)).shape == (20, 16, 16, 3)
    assert episode.values("ee_pose").shape == (60, 7)
    assert np.all(np.diff(episode.stamps("ee_pose")) > 0)
    assert episode.verify() == []
    assert store.validate().ok


def test_corruption_is_detected(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    record_episode(store)
    chunk = store.path / "episodes" / "ep_000000" / "front" / "data" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))
    report = store.validate()
    assert not report.ok and report.bad_episodes == ["ep_000000"]
    assert any("front/data" in e for e in report.errors)


def test_delete_by_id_last_missing_and_rerecord(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    for _ in range(3):
        record_episode(store)
    checksums = store.metadata(0)["checksums"]
    assert store.delete(1) == "ep_000001"
    assert store.episode_ids() == ["ep_000000", "ep_000002"]
    with pytest.raises(EpisodeNotFoundError, match="episode ep_000001 does not exist"):
        store.delete("ep_000001")
    with pytest.raises(EpisodeNotFoundError, match="does not exist"):
        store.metadata(42)
    assert store.delete_last() == "ep_000002"
    result = record_episode(store)  # re-record: the next id follows the last kept one
    assert result.episode_id == "ep_000001"
    assert store.metadata(0)["checksums"] == checksums and store.verify_episode(0) == []
    for episode_id in store.episode_ids():
        store.delete(episode_id)
    with pytest.raises(EpisodeNotFoundError, match="no episodes"):
        store.delete_last()


def test_update_metadata_is_atomic_and_guarded(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    record_episode(store)
    store.update_metadata(0, success=False, notes="dropped the apple")
    assert store.metadata(0)["notes"] == "dropped the apple" and store.metadata(0)["success"] is False
    with pytest.raises(ValueError, match="checksums"):
        store.update_metadata(0, checksums={})
    assert store.verify_episode(0) == []


def test_writer_lock_is_exclusive(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    other = EpisodeStore.open(store.path)
    with store.writer_lock(), pytest.raises(StoreLockedError, match="another process"):
        other.acquire_writer_lock()
    other.acquire_writer_lock()
    other.release_writer_lock()


def test_repair_recovers_or_removes_partial_episodes(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    record_episode(store)
    specs = fr3_stream_specs(image_shape=IMAGE_SHAPE)
    with store.writer_lock():
        writer = store.begin_episode(specs, {"task": "interrupted"})
        for i in range(5):
            writer.append_frame("front", 200.0 + i * 0.1, np.full((*IMAGE_SHAPE, 3), i, np.uint8))
        writer.append_vectors("ee_pose", np.array([200.0, 200.1]), np.zeros((2, 7)))
        writer.close()
        empty = store.begin_episode(specs, {"task": "empty"})
        empty.close()
    # Opening and reading never depend on the partial episodes.
    reopened = EpisodeStore.open(store.path)
    assert reopened.episode_ids() == ["ep_000000"] and reopened.staged_ids() == [
        "ep_000001",
        "ep_000002",
    ]
    assert not reopened.validate().ok  # partial episodes are reported
    report = reopened.repair()
    actions = {a.episode_id: a.action for a in report.actions}
    assert actions == {"ep_000001": "recovered", "ep_000002": "removed"}
    assert report.validation.ok
    recovered = reopened.episode(1)
    assert recovered.metadata["recovered"] is True and recovered.metadata["complete"] is False
    assert recovered.count("front") == 5 and recovered.count("ee_pose") == 2
    assert recovered.metadata["task"] == "interrupted"
    assert reopened.verify_episode(0) == []


def test_repair_remove_partial(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    with store.writer_lock():
        writer = store.begin_episode(fr3_stream_specs(image_shape=IMAGE_SHAPE), {})
        writer.append_vectors("ee_pose", np.array([1.0]), np.zeros((1, 7)))
        writer.close()
    report = store.repair(recover=False)
    assert [a.action for a in report.actions] == ["removed"] and store.episode_ids() == []


def test_torn_logs_are_truncated_on_recovery(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    with store.writer_lock():
        writer = store.begin_episode(fr3_stream_specs(image_shape=IMAGE_SHAPE), {})
        writer.append_vectors("ee_pose", np.array([1.0, 2.0]), np.ones((2, 7)))
        writer.append_frame("front", 1.0, np.zeros((*IMAGE_SHAPE, 3), np.uint8))
        writer.close()
    staged = store.path / "_staging" / "ep_000000"
    with open(staged / "ee_pose" / "samples.log", "ab") as handle:
        handle.write(b"\x01\x02\x03")  # a record cut by the kill
    with open(staged / "front" / "frames.log", "ab") as handle:
        handle.write(b"\x01" * 5)
    store.repair()
    episode = store.episode(0)
    assert episode.count("ee_pose") == 2 and episode.count("front") == 1
    assert store.validate().ok
