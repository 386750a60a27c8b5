"""LeRobot dataset v3 interchange: store -> LeRobot -> store, datasets written by LeRobot's
own LeRobotDataset API imported, and our export read by LeRobot's own metadata and frame
readers. The LeRobot tests skip, naming why, where LeRobot (the `lerobot` extra) is missing."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from data_collection.cli import main as cli
from data_collection.lerobot_interchange import LeRobotFormatError, export_lerobot, import_lerobot
from data_collection.mapping import FeatureMapping
from data_collection.schema import StoreSettings
from data_collection.store import EpisodeStore
from robots.embodiment import EndEffectorPose
from tests.training.helpers import make_store as make_training_store

FPS = 10


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> EpisodeStore:
    """Two episodes of 10 Hz streams (24x24 cameras) through the real Recorder."""
    path = make_training_store(tmp_path_factory.mktemp("recorded") / "s.zarr", episodes=2, tokens=6)
    store = EpisodeStore.open(path, durable=False)
    store.update_metadata(1, success=False, notes="dropped the apple")
    return store


def _new_store(path: Path) -> EpisodeStore:
    return EpisodeStore.create(path, StoreSettings(policy_image_sizes=((16, 16),)), durable=False)


def test_store_to_lerobot_to_store_keeps_values_tasks_and_boundaries(recorded, tmp_path):
    report = export_lerobot(recorded, tmp_path / "lerobot", fps=FPS)
    assert report.episodes == {"ep_000000": 24, "ep_000001": 24}
    assert any("per-stream timestamps" in line and "frame-indexed" in line for line in report.lost)
    assert any("['joint_states']" in line for line in report.lost)
    info = json.loads((tmp_path / "lerobot" / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS and info["total_frames"] == 48
    assert info["features"]["observation.state"]["names"] == list(EndEffectorPose.proprio_names)
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"

    back = _new_store(tmp_path / "back.zarr")
    result = import_lerobot(tmp_path / "lerobot", back)
    assert result.embodiment == "ee_pose" and len(result.episode_ids) == 2
    mapping = FeatureMapping()
    for original_id, imported_id in zip(recorded.episode_ids(), result.episode_ids, strict=True):
        original, imported = recorded.episode(original_id), back.episode(imported_id)
        assert imported.metadata["task"] == original.metadata["task"]
        assert imported.metadata["success"] == original.metadata["success"]
        assert imported.metadata["notes"] == original.metadata["notes"]
        assert imported.metadata["source"]["exported_from"] == original_id
        assert "frame-indexed" in imported.metadata["timestamps"]
        assert not imported.metadata["marked"], imported.metadata["problems"]  # fed in time order: no stream "stops"
        # the streams the trainer reads: the recorded samples at the frame times (10 Hz both)
        stamps = imported.stamps("ee_pose")
        np.testing.assert_allclose(stamps, original.stamps("ee_pose")[:24], atol=1e-6)
        np.testing.assert_allclose(imported.values("ee_pose"), original.values("ee_pose")[:24], atol=1e-6)
        np.testing.assert_allclose(imported.values("gripper"), original.values("gripper")[:24], atol=1e-6)
        expected = mapping.action(original.values("command")[:24])
        np.testing.assert_allclose(mapping.action(imported.values("command")), expected, atol=1e-5)
        # frames come back from H.264: close, not exact
        error = np.abs(imported.frames("front")[:].astype(int) - original.frames("front")[:24].astype(int))
        assert error.mean() < 6
        assert imported.verify() == []


def test_export_and_import_from_the_dataset_cli(recorded, tmp_path, capsys):
    out = tmp_path / "lerobot"
    assert cli(["export-lerobot", str(recorded.path), str(out), "--fps", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 24 and summary["fps"] == 5
    assert cli(["export-lerobot", str(recorded.path), str(out), "--fps", "5"]) == 2
    assert "the path exists" in capsys.readouterr().err
    assert cli(["import-lerobot", str(out), str(tmp_path / "back.zarr"), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["episode_ids"] == ["ep_000000", "ep_000001"]
    assert cli(["import-lerobot", str(tmp_path / "nothing"), str(tmp_path / "back.zarr")]) == 2
    assert "meta/info.json is missing: not a LeRobot dataset" in capsys.readouterr().err


def test_an_export_that_cannot_fit_is_refused_before_anything_is_written(recorded, tmp_path):
    with pytest.raises(ValueError, match="fps must be a whole number"):
        export_lerobot(recorded, tmp_path / "a", fps=0)
    with pytest.raises(Exception, match=r"lacks camera\(s\) \['side'\]"):
        export_lerobot(recorded, tmp_path / "b", fps=FPS, cameras=["side"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".b.exporting-*"))  # the half-built dataset is removed


def test_an_older_lerobot_format_is_refused_naming_the_conversion(tmp_path):
    (tmp_path / "old" / "meta").mkdir(parents=True)
    (tmp_path / "old" / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 30}))
    with pytest.raises(LeRobotFormatError, match="convert_dataset_v21_to_v30"):
        import_lerobot(tmp_path / "old", _new_store(tmp_path / "s.zarr"))


# -- against LeRobot's own dataset code ---------------------------------------------------------


@pytest.fixture
def lerobot_dataset_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[types.ModuleType]:
    """lerobot.datasets.lerobot_dataset, or a skip naming why it cannot be imported.

    LeRobot 0.4.4 imports torchvision at module level in its dataset code but never calls
    it when writing or reading metadata (PyAV encodes). On this project's CPU-only machines
    no torchvision build matches torch 2.13 (PyPI's wheel is the CUDA build, which cannot
    load here), so where torchvision cannot be imported an empty module stands in for that
    import; everything that runs is LeRobot's own code."""
    pytest.importorskip("lerobot", reason="LeRobot is not installed (the `lerobot` extra; see docs/data_collection.md)")
    pytest.importorskip("pandas", reason="LeRobot's dataset code needs pandas")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        importlib.import_module("torchvision")
    except Exception:  # missing, or a CUDA build that fails to load on a CPU torch
        stub = types.ModuleType("torchvision")
        stub.__spec__ = importlib.machinery.ModuleSpec("torchvision", None)
        stub.transforms = types.ModuleType("torchvision.transforms")  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "torchvision", stub)
        monkeypatch.setitem(sys.modules, "torchvision.transforms", stub.transforms)  # type: ignore[attr-defined]
        for name in [n for n in sys.modules if n.startswith("lerobot")]:
            monkeypatch.delitem(sys.modules, name)
    try:
        yield importlib.import_module("lerobot.datasets.lerobot_dataset")
    except ImportError as error:
        pytest.skip(f"LeRobot's dataset module cannot be imported here: {error}")
    finally:  # no module bound to the stand-in outlives the test
        for name in [n for n in sys.modules if n.startswith("lerobot.")]:
            sys.modules.pop(name, None)


def _image(episode: int, step: int) -> np.ndarray:
    image = np.full((64, 64, 3), 30, np.uint8)
    image[8 + 2 * step : 24 + 2 * step, 10 + 8 * episode : 30 + 8 * episode] = (230, 120, 40)
    return image


def _ee_pose_vector(step: int) -> np.ndarray:
    pose = np.array([[0.4 + 0.01 * step, 0.0, 0.3, 0.0, 0.0, np.sin(0.05 * step), np.cos(0.05 * step)]])
    from robots.embodiment import pose_to_vector

    return np.concatenate([pose_to_vector(pose)[0], [0.08 - 0.002 * step]]).astype(np.float32)


def test_a_dataset_written_by_lerobots_own_api_is_imported(lerobot_dataset_api, tmp_path):
    names = list(EndEffectorPose.proprio_names)
    features = {
        "observation.state": {"dtype": "float32", "shape": (10,), "names": names},
        "action": {"dtype": "float32", "shape": (10,), "names": names},
        "observation.images.front": {"dtype": "video", "shape": (64, 64, 3), "names": ["height", "width", "channels"]},
    }
    dataset = lerobot_dataset_api.LeRobotDataset.create(
        repo_id="dfstack/written_by_lerobot", fps=FPS, features=features, root=tmp_path / "lerobot", use_videos=True
    )
    lengths = (12, 9)
    for episode, length in enumerate(lengths):
        for step in range(length):
            dataset.add_frame(
                {
                    "observation.state": _ee_pose_vector(step),
                    "action": _ee_pose_vector(step + 1),
                    "observation.images.front": _image(episode, step),
                    "task": ["pick the apple", "swap fruit"][episode],
                }
            )
        dataset.save_episode()
    dataset.finalize()

    store = _new_store(tmp_path / "s.zarr")
    result = import_lerobot(tmp_path / "lerobot", store)
    assert result.embodiment == "ee_pose"  # recognised from the feature names
    assert [store.episode(e).count("front") for e in result.episode_ids] == list(lengths)
    mapping = FeatureMapping()
    for episode_number, episode_id in enumerate(result.episode_ids):
        episode = store.episode(episode_id)
        assert episode.metadata["task"] == ["pick the apple", "swap fruit"][episode_number]
        assert not episode.metadata["marked"], episode.metadata["problems"]
        np.testing.assert_allclose(episode.stamps("ee_pose"), np.arange(lengths[episode_number]) / FPS, atol=1e-6)
        proprio = mapping.proprio(episode.values("ee_pose"), episode.values("gripper"))
        expected = np.stack([_ee_pose_vector(s) for s in range(lengths[episode_number])])
        np.testing.assert_allclose(proprio, expected, atol=1e-5)
        actions = mapping.action(episode.values("command"))
        np.testing.assert_allclose(actions, np.stack([_ee_pose_vector(s + 1) for s in range(len(expected))]), atol=1e-5)
        # each frame decoded from LeRobot's video (its default codec, episodes in one file)
        # is the frame written at that step, not its neighbour
        frames = episode.frames("front")[:].astype(int)
        for step in (0, len(expected) - 1):
            errors = [np.abs(frames[step] - _image(episode_number, s)).mean() for s in range(len(expected))]
            assert int(np.argmin(errors)) == step and errors[step] < 8
        assert episode.verify() == []


def test_our_export_reads_in_lerobots_own_dataset_code(lerobot_dataset_api, recorded, tmp_path):
    export_lerobot(recorded, tmp_path / "lerobot", fps=FPS)
    meta = lerobot_dataset_api.LeRobotDatasetMetadata("dfstack/export", root=tmp_path / "lerobot")
    assert meta.total_episodes == 2 and meta.total_frames == 48 and meta.fps == FPS
    assert meta.video_keys == ["observation.images.front", "observation.images.wrist"]
    assert meta.get_task_index("test") == 0
    assert meta.stats["observation.state"]["mean"].shape == (10,)
    assert meta.stats["observation.images.front"]["mean"].shape == (3, 1, 1)
    dataset = lerobot_dataset_api.LeRobotDataset("dfstack/export", root=tmp_path / "lerobot", video_backend="pyav")
    assert dataset.num_episodes == 2 and len(dataset) == 48
    second = dataset.meta.episodes[1]
    assert (second["dataset_from_index"], second["dataset_to_index"]) == (24, 48)
    rows = dataset.hf_dataset.select(range(24, 27))
    assert [int(i) for i in rows["episode_index"]] == [1, 1, 1] and [int(i) for i in rows["frame_index"]] == [0, 1, 2]
    expected = FeatureMapping().proprio(
        recorded.episode(1).values("ee_pose")[:3], recorded.episode(1).values("gripper")[:3]
    )
    np.testing.assert_allclose(np.stack([np.asarray(v) for v in rows["observation.state"]]), expected, atol=1e-6)
    # LeRobot looks a frame up at from_timestamp + timestamp within 1e-4 s: each of our
    # video frames sits exactly there
    import av

    key = "observation.images.front"
    path = tmp_path / "lerobot" / dataset.meta.get_video_file_path(1, key)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(frame.pts * stream.time_base) for frame in container.decode(stream)]
    query = second[f"videos/{key}/from_timestamp"] + np.asarray(rows["timestamp"], dtype=np.float64)
    assert all(np.min(np.abs(np.asarray(times) - t)) < 1e-4 for t in query)


def test_features_of_no_known_embodiment_become_streams_of_their_own_names(recorded, tmp_path):
    export_lerobot(recorded, tmp_path / "lerobot", fps=FPS)
    store = _new_store(tmp_path / "s.zarr")
    result = import_lerobot(tmp_path / "lerobot", store, embodiment_name=None, episodes=[1])
    assert result.embodiment is None and len(result.episode_ids) == 1
    assert result.streams["observation.state"] == "observation_state" and result.streams["action"] == "action"
    episode = store.episode(result.episode_ids[0])
    assert episode.spec("observation_state").fields == EndEffectorPose.proprio_names
    expected = FeatureMapping().proprio(recorded.episode(1).values("ee_pose"), recorded.episode(1).values("gripper"))
    np.testing.assert_allclose(episode.values("observation_state"), expected[:24], atol=1e-6)
    assert episode.metadata["source"]["episode_index"] == 1
