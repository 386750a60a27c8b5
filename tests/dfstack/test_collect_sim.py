"""collect-sim end to end: the simulated expert through the recorder into a store that the
training reader aligns, with the expert's labels as the actions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("mujoco")

from data_collection.reader import align_episode
from data_collection.schema import fr3_stream_specs
from data_collection.store import EpisodeStore
from dfstack.collect_sim import SimCollectionConfig, SimEpisodeResult, collect_sim, main
from training.config import task_policy_spec

pytestmark = pytest.mark.sim

# Small frames keep rendering cheap; the store's 64x64 copies serve the 64 px spec.
IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, list[SimEpisodeResult]]:
    """Two complete expert episodes recorded in-process (seeds 5 and 6)."""
    path = tmp_path_factory.mktemp("collect") / "demos.zarr"
    results: list[SimEpisodeResult] = []
    summary = collect_sim(
        path, episodes=2, seed=5, image_size=IMAGE_SIZE, processes=1, on_episode=lambda r, c: results.append(r)
    )
    return path, summary, results


def test_summary_counts_what_the_store_holds(collected) -> None:
    path, summary, results = collected
    store = EpisodeStore.open(path)
    assert summary.committed == 2 and summary.requested == 2 and summary.marked == 0
    assert summary.episode_ids == store.episode_ids() == ["ep_000000", "ep_000001"]
    assert summary.successes == 2 and summary.failed_seeds == []
    assert summary.dropped == 0 and summary.store_bytes > 0 and summary.episodes_per_s > 0
    for episode_id, result in zip(summary.episode_ids, results, strict=True):
        meta = store.metadata(episode_id)
        assert meta["task"] == "swap fruit" and meta["success"] is True and not meta["marked"]
        assert meta["sim"]["seed"] == result.seed and meta["seed"] == result.seed
        assert meta["sim"]["hold_steps"] == SimCollectionConfig().extra_steps
        assert meta["initial_configuration"]["scene"]["fruit_slots"] == result.info["fruit_slots"]
        assert meta["cameras"]["front"]["rate_hz"] == 10.0
    assert "2/2 episodes committed" in summary.describe()


def test_schema_is_that_of_a_teleop_session(collected) -> None:
    path, _, _ = collected
    episode = EpisodeStore.open(path).episode(0)
    # A teleop session's streams, and the joint-space action label beside the end-effector one.
    teleop = {s.name: s for s in fr3_stream_specs(image_shape=(IMAGE_SIZE, IMAGE_SIZE), joint_command_rate_hz=10.0)}
    assert episode.stream_names == list(teleop)
    for name, spec in teleop.items():
        recorded = episode.spec(name)
        assert (recorded.kind, recorded.shape, recorded.fields, recorded.encoding) == (
            spec.kind,
            spec.shape,
            spec.fields,
            spec.encoding,
        ), name
    # Published at the simulated robot's rates, stamped in sim time.
    for name, rate in {"front": 10, "wrist": 10, "ee_pose": 100, "joint_states": 100, "gripper": 15}.items():
        stamps = episode.stamps(name)
        assert np.median(np.diff(stamps)) == pytest.approx(1 / rate, rel=0.05), name
        assert 0 < stamps[0] <= 0.1 + 1e-9, name


def test_aligns_with_all_masks_valid_and_actions_are_the_expert_labels(collected) -> None:
    path, _, results = collected
    store = EpisodeStore.open(path)
    spec = task_policy_spec(["task.image_size=64"])
    for episode_id, result in zip(store.episode_ids(), results, strict=True):
        aligned = align_episode(store.episode(episode_id), spec)
        assert len(aligned) * spec.token_period_s > 8.0  # whole episodes, not a few tokens
        for camera in spec.camera_names:
            assert aligned.frame_valid[camera][1:].all(), camera
            assert aligned.frames[camera].shape[1:] == (64, 64, 3)
            assert aligned.frames[camera][1:].std() > 5  # rendered scenes, not zeros
        assert aligned.proprio_valid[1:].all()
        assert aligned.action_valid[1:].all()
        # Each action is the expert label in force at that instant (nearest earlier).
        times = aligned.action_times[1:].reshape(-1)
        index = np.searchsorted(result.label_times, times, side="right") - 1
        expected = result.labels[index].astype(np.float32)
        np.testing.assert_allclose(aligned.actions[1:].reshape(-1, 10), expected, atol=1e-5)
        # The proprioception is the measured pose, close to the commanded one.
        assert np.abs(aligned.proprio[1:, :3] - aligned.actions[1:, -1, :3]).max() < 0.05


def test_joint_command_is_the_end_effector_command_in_joint_space(collected) -> None:
    from robots.embodiment import pose_to_vector
    from robots.franka import tcp_pose

    path, _, results = collected
    episode = EpisodeStore.open(path).episode(0)
    np.testing.assert_array_equal(episode.stamps("joint_command"), episode.stamps("command"))
    joints, command = np.asarray(episode.values("joint_command")), np.asarray(episode.values("command"))
    np.testing.assert_allclose(joints, results[0].joint_labels, atol=1e-12)
    np.testing.assert_array_equal(joints[:, 7], command[:, 7])  # the same gripper width
    # The joints put the TCP where the end-effector command says (Franka's kinematics).
    reached = np.array([tcp_pose(q)[:3, 3] for q in joints[:, :7]])
    np.testing.assert_allclose(reached, command[:, :3], atol=1e-4)
    rotations = np.array([tcp_pose(q)[:3, :2].T.reshape(-1) for q in joints[:, :7]])
    np.testing.assert_allclose(rotations, pose_to_vector(command[:, :7])[:, 3:9], atol=1e-3)


def test_worker_processes_record_the_same_episodes(tmp_path: Path) -> None:
    config = SimCollectionConfig(image_size=IMAGE_SIZE, max_steps=25)
    one = collect_sim(tmp_path / "one.zarr", episodes=2, seed=11, processes=1, config=config)
    two = collect_sim(tmp_path / "two.zarr", episodes=2, seed=11, processes=2, config=config)
    assert one.committed == two.committed == 2 and two.processes == 2
    a, b = EpisodeStore.open(tmp_path / "one.zarr"), EpisodeStore.open(tmp_path / "two.zarr")
    for episode_id in a.episode_ids():
        ea, eb = a.episode(episode_id), b.episode(episode_id)
        assert ea.metadata["seed"] == eb.metadata["seed"]
        for stream in ("command", "ee_pose", "gripper"):
            np.testing.assert_array_equal(ea.stamps(stream), eb.stamps(stream))
            np.testing.assert_allclose(ea.values(stream), eb.values(stream), atol=1e-9)
        np.testing.assert_array_equal(np.asarray(ea.frames("front")), np.asarray(eb.frames("front")))


def test_cli_appends_and_refuses_another_image_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "cli.zarr"
    common = ["--store", str(store), "--episodes", "1", "--max-steps", "8", "--processes", "1", "--no-progress"]
    assert main([*common, "--image-size", str(IMAGE_SIZE), "--seed", "2", "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["committed"] == 1 and summary["seeds"] == [2]
    assert "1/1 episodes committed" in out
    assert main([*common, "--image-size", str(IMAGE_SIZE), "--seed", "3"]) == 0
    assert EpisodeStore.open(store).episode_ids() == ["ep_000000", "ep_000001"]

    assert main([*common, "--image-size", "48"]) == 2
    error = capsys.readouterr().err
    assert f"{IMAGE_SIZE}x{IMAGE_SIZE} px 'front' frames" in error and f"use --image-size {IMAGE_SIZE}" in error

    held = SimCollectionConfig().extra_steps
    assert main([*common, "--image-size", str(IMAGE_SIZE), "--hold-steps", str(held + 5)]) == 2
    error = capsys.readouterr().err
    assert f"ending with {held} hold steps" in error and f"use --hold-steps {held}" in error
    assert EpisodeStore.open(store).episode_ids() == ["ep_000000", "ep_000001"]


def test_cached_demonstrations_are_reused_only_when_recorded_the_same_way(collected, tmp_path: Path) -> None:
    import shutil

    from dfstack.collect_sim import ensure_demonstrations

    path, _, _ = collected
    config = SimCollectionConfig(image_size=IMAGE_SIZE)
    # Enough episodes, recorded the same way: nothing to do.
    assert ensure_demonstrations(path, 2, processes=1, progress=False, config=config) is None
    older = tmp_path / "older.zarr"
    shutil.copytree(path, older)
    store = EpisodeStore.open(older)
    last = store.episode_ids()[-1]
    sim = {k: v for k, v in store.metadata(last)["sim"].items() if k != "hold_steps"}
    store.update_metadata(last, sim=sim)
    with pytest.raises(ValueError, match="older df-stack"):
        ensure_demonstrations(older, 3, processes=1, progress=False, config=config)
    assert EpisodeStore.open(older).episode_ids() == store.episode_ids()  # nothing appended


def test_bad_arguments_and_a_locked_store_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        collect_sim(tmp_path / "x.zarr", episodes=0)
    store = EpisodeStore.create(tmp_path / "locked.zarr")
    store.acquire_writer_lock()  # as a running recorder would
    try:
        code = main(["--store", str(store.path), "--episodes", "1", "--processes", "1", "--no-progress"])
    finally:
        store.release_writer_lock()
    assert code == 2
    assert "being written by another process" in capsys.readouterr().err
