"""The rosbag2 importer against bags written by independent writers (tests/data_collection/
bags.py: MCAP by the mcap library's ROS 2 writer, sqlite3 by the rosbags writer), one test
per defect of issue 17 and per bad input it names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from data_collection.cli import main as cli
from data_collection.rosbag_import import (
    BagMappingError,
    TopicMapping,
    import_rosbag,
    load_bag_mapping,
)
from data_collection.rosbag_source import BagError
from data_collection.schema import fr3_stream_specs
from data_collection.store import EpisodeStore

from . import bags
from .helpers import make_store

STORAGES = ["mcap", "sqlite3"]


def _mapping_file(tmp_path: Path, text: str = bags.MAPPING_YAML) -> Path:
    path = tmp_path / "franka_bag.yaml"
    path.write_text(text)
    return path


def _documented_mapping_without(topics: tuple[str, ...] = (), streams: tuple[str, ...] = ()) -> str:
    data = yaml.safe_load(bags.MAPPING_YAML)
    for topic in topics:
        del data["topics"][topic]
    for role in streams:
        del data["streams"][role]
    # `streams` last, so that a test may append a role to it
    return yaml.safe_dump({k: v for k, v in data.items() if k != "streams"}) + yaml.safe_dump(
        {"streams": data["streams"]}
    )


def _import(tmp_path: Path, *bag_paths: Path, extra: tuple[str, ...] = ()) -> int:
    mapping = _mapping_file(tmp_path)
    return cli(["import-rosbag", str(tmp_path / "store.zarr"), *map(str, bag_paths), "--mapping", str(mapping), *extra])


# -- the gripper width ------------------------------------------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
def test_the_gripper_width_is_the_sum_of_both_fingers(tmp_path, storage):
    bag = bags.write_bag(tmp_path / "bag", storage, bags.franka_demo())
    assert _import(tmp_path, bag) == 0
    episode = EpisodeStore.open(tmp_path / "store.zarr").episode(0)
    # each finger at 0.02 m: the opening is 0.04 m (not one finger's 0.02)
    np.testing.assert_allclose(episode.values("gripper")[:, 0], 0.04)
    assert episode.spec("gripper").fields == ("width",)


def test_the_gripper_width_converter_can_be_chosen_from_the_command_line(tmp_path, capsys):
    bag = bags.write_bag(tmp_path / "bag", "mcap", bags.franka_demo(count=8))
    store = tmp_path / "store.zarr"
    # a stream not named 'gripper' gets the converter only when asked for
    args = ["import-rosbag", str(store), str(bag), "--topic", f"{bags.FINGERS}=hand:gripper_width"]
    assert cli(args) == 0, capsys.readouterr().err
    np.testing.assert_allclose(EpisodeStore.open(store).episode(0).values("hand")[:, 0], 0.04)
    assert cli(["import-rosbag", str(store), str(bag), "--topic", f"{bags.FINGERS}=hand:width"]) == 2
    assert "converter 'width' is unknown; expected one of" in capsys.readouterr().err


# -- a bag imported as the docs show trains -------------------------------------------------


def test_the_documented_mapping_file_names_the_training_streams(tmp_path):
    mapping = load_bag_mapping(_mapping_file(tmp_path))
    assert mapping.streams is not None and mapping.streams.command_gripper == "command_width"
    assert mapping.topic_of("gripper").topic == bags.FINGERS
    bag = bags.write_bag(tmp_path / "bag", "mcap", bags.franka_demo(count=8))
    store = make_store(tmp_path / "s.zarr")
    episode = store.episode(import_rosbag(bag, store, mapping).episode_ids[0])
    assert episode.metadata["training_streams"] == {
        "state": "ee_pose",
        "command": "command",
        "gripper": "gripper",
        "command_gripper": "command_width",
    }
    assert episode.metadata["task"] == "swap fruit"


def test_a_command_without_a_width_is_refused_before_anything_is_written(tmp_path):
    text = _documented_mapping_without(streams=("command_gripper",))
    bag = bags.write_bag(tmp_path / "bag", "mcap", bags.franka_demo(count=8))
    store = make_store(tmp_path / "s.zarr")
    with pytest.raises(BagMappingError, match=r"has 7 values, no gripper width .* streams.command_gripper"):
        import_rosbag(bag, store, load_bag_mapping(_mapping_file(tmp_path, text)))
    assert store.episode_ids() == [] and store.staged_ids() == []


def test_no_value_is_filled_in_for_a_stream_of_another_size(tmp_path):
    """The old workaround (record into fr3_stream_specs) padded the 7-value pose into the
    8-value command with a gripper width of 0 in every sample, silently."""
    bag = bags.write_bag(tmp_path / "bag", "mcap", bags.franka_demo(count=8))
    store = make_store(tmp_path / "s.zarr")
    with pytest.raises(BagMappingError, match=r"makes 7 values, but stream 'command' holds 8 .* nothing is filled in"):
        import_rosbag(bag, store, {bags.TARGET: "command"}, streams=fr3_stream_specs(image_shape=(24, 32)))
    assert store.episode_ids() == []


# -- clock steps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
def test_a_clock_step_back_splits_the_bag_into_marked_timelines(tmp_path, storage, capsys):
    messages = bags.franka_demo(count=40, step_back_at=20, step_back_s=2.1)
    bag = bags.write_bag(tmp_path / "bag", storage, messages)
    assert _import(tmp_path, bag) == 1  # imported, marked
    store = EpisodeStore.open(tmp_path / "store.zarr")
    first, second = (store.episode(e) for e in store.episode_ids())
    for episode in (first, second):
        assert episode.count("front") == 20 and episode.count("ee_pose") == 20
        assert episode.metadata["marked"] and episode.metadata["source"]["timelines"] == 2
        assert any("the clock stepped back by 2.05" in p for p in episode.metadata["problems"])
    # two timelines, not one interleaved: each is its own 1 s of samples
    np.testing.assert_allclose(first.stamps("ee_pose")[[0, -1]], [1000.0, 1000.95])
    np.testing.assert_allclose(second.stamps("ee_pose")[[0, -1]], [1000.0 - 2.1 + 1.0, 1000.95 - 2.1 + 1.0])
    np.testing.assert_allclose(second.values("ee_pose")[0, 2], 0.42)
    assert cli(["validate", str(store.path)]) == 0
    assert "the clock stepped back" in capsys.readouterr().out  # validate says it (a warning per episode)


def test_a_clock_step_within_the_threshold_is_kept_as_rejected_samples(tmp_path):
    messages = bags.franka_demo(count=30, step_back_at=15, step_back_s=0.5)
    bag = bags.write_bag(tmp_path / "bag", "mcap", messages)
    store = make_store(tmp_path / "s.zarr")
    outcome = import_rosbag(bag, store, load_bag_mapping(_mapping_file(tmp_path)))
    (result,) = outcome.results
    assert any("went backwards" in p for p in result.problems)  # one timeline, the older samples rejected


# -- empty, 0-byte, truncated, no metadata.yaml ----------------------------------------------


@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
def test_a_zero_byte_bag_exits_2_naming_the_file(tmp_path, capsys, suffix):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / f"bag_0{suffix}").write_bytes(b"")
    assert _import(tmp_path, bag) == 2
    assert f"bag_0{suffix} is empty (0 bytes)" in capsys.readouterr().err


@pytest.mark.parametrize("storage", STORAGES)
def test_a_bag_without_messages_exits_2(tmp_path, capsys, storage):
    bag = tmp_path / "bag"
    if storage == "mcap":
        from mcap_ros2.writer import Writer

        bag.mkdir()
        with open(bag / "bag_0.mcap", "wb") as handle:
            writer = Writer(handle)
            writer.register_msgdef("std_msgs/msg/Float64", bags.full_definition("std_msgs/msg/Float64"))
            writer.finish()
    else:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        with Writer(bag, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
            jazzy = get_typestore(Stores.ROS2_JAZZY)
            writer.add_connection(bags.POSE, "geometry_msgs/msg/PoseStamped", typestore=jazzy)
    assert _import(tmp_path, bag) == 2
    assert "holds no messages" in capsys.readouterr().err


def test_a_file_that_is_not_a_bag_exits_2(tmp_path, capsys):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "bag_0.mcap").write_bytes(b"not an mcap file at all" * 10)
    assert _import(tmp_path, bag) == 2
    assert "bag_0.mcap is not a readable MCAP file" in capsys.readouterr().err
    (bag / "bag_0.mcap").unlink()
    assert _import(tmp_path, bag) == 2
    assert "holds no .mcap or .db3 file" in capsys.readouterr().err


def test_the_valid_part_of_a_truncated_mcap_is_imported_and_marked(tmp_path, capsys):
    bag = tmp_path / "bag"
    file = bags.write_mcap(bag, bags.franka_demo(count=40), chunk_size=2048)
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])  # a recorder killed half way
    assert _import(tmp_path, bag) == 1
    episode = EpisodeStore.open(tmp_path / "store.zarr").episode(0)
    frames = episode.count("front")
    assert 5 < frames < 40
    assert abs(episode.count("ee_pose") - frames) <= 1  # everything up to the cut
    assert episode.metadata["marked"] and episode.metadata["complete"] is False
    assert any("bag_0.mcap is cut short or damaged" in p for p in episode.metadata["problems"])
    assert episode.verify() == []


def test_a_truncated_sqlite3_bag_exits_2_naming_the_damage(tmp_path, capsys):
    bag = bags.write_bag(tmp_path / "bag", "sqlite3", bags.franka_demo(count=40))
    file = next(bag.glob("*.db3"))
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    assert _import(tmp_path, bag) == 2
    err = capsys.readouterr().err
    assert "bag.db3 cannot be read as a rosbag2 sqlite3 file (database disk image is malformed)" in err
    assert "Traceback" not in err
    assert EpisodeStore.open(tmp_path / "store.zarr").episode_ids() == []


def test_an_mcap_without_metadata_yaml_is_imported_as_a_directory_or_a_file(tmp_path):
    bag = tmp_path / "bag"
    file = bags.write_mcap(bag, bags.franka_demo(count=6))
    assert not (bag / "metadata.yaml").exists()  # what a killed `ros2 bag record` leaves
    store = make_store(tmp_path / "s.zarr")
    mapping = load_bag_mapping(_mapping_file(tmp_path))
    outcome = import_rosbag(bag, store, mapping)
    assert store.episode(outcome.episode_ids[0]).metadata["source"]["metadata_yaml"] is False
    copy = tmp_path / "elsewhere" / "recording.mcap"
    copy.parent.mkdir()
    shutil.copy(file, copy)
    outcome = import_rosbag(copy, make_store(tmp_path / "t.zarr"), mapping)
    assert len(outcome.episode_ids) == 1


def test_split_mcap_files_are_read_in_their_order(tmp_path):
    bag = tmp_path / "bag"
    messages = bags.franka_demo(count=20)
    bags.write_mcap(bag, messages[len(messages) // 2 :], file_name="bag_1.mcap")
    bags.write_mcap(bag, messages[: len(messages) // 2], file_name="bag_0.mcap")
    store = make_store(tmp_path / "s.zarr")
    outcome = import_rosbag(bag, store, load_bag_mapping(_mapping_file(tmp_path)))
    (episode_id,) = outcome.episode_ids
    episode = store.episode(episode_id)
    assert episode.count("ee_pose") == 20 and not episode.metadata["marked"]


# -- stamps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
def test_sim_time_stamps_in_a_wall_clock_bag_are_one_timeline_and_no_stream_stops(tmp_path, storage, capsys):
    messages = bags.franka_demo(count=40, start_s=3.0, receive_offset_s=1.7e9, with_twist=False)
    bag = bags.write_bag(tmp_path / "bag", storage, [m for m in messages if m.topic != bags.WIDTH_COMMAND])
    text = _documented_mapping_without(topics=(bags.TWIST, bags.WIDTH_COMMAND), streams=("command_gripper",))
    text += "  command_gripper: gripper\n"  # learn the measured width
    mapping = _mapping_file(tmp_path, text)
    assert cli(["import-rosbag", str(tmp_path / "s.zarr"), str(bag), "--mapping", str(mapping)]) == 0
    episode = EpisodeStore.open(tmp_path / "s.zarr").episode(0)
    assert not episode.metadata["marked"], episode.metadata["problems"]
    assert episode.stamps("front")[0] == pytest.approx(3.0)  # sim time, as the header says
    assert "another clock" in episode.metadata["stamp_timebase"]


def test_a_stream_without_header_stamps_on_another_clock_is_refused(tmp_path, capsys):
    messages = bags.franka_demo(count=10, start_s=3.0, receive_offset_s=1.7e9)
    bag = bags.write_bag(tmp_path / "bag", "mcap", messages)
    assert _import(tmp_path, bag) == 2
    err = capsys.readouterr().err
    assert "topic /franka_gripper/width_command (std_msgs/msg/Float64) carries no header stamp" in err
    assert "sim time in a wall-clock bag?" in err
    assert not EpisodeStore.open(tmp_path / "store.zarr").episode_ids()
    assert _import(tmp_path, bag, extra=("--stamps", "receive")) == 0


@pytest.mark.parametrize("storage", STORAGES)
def test_a_header_stamp_of_0_is_receive_time_and_marked(tmp_path, storage):
    bag = bags.write_bag(tmp_path / "bag", storage, bags.franka_demo(count=20, unset_stamp_every=10))
    store = make_store(tmp_path / "s.zarr")
    (result,) = import_rosbag(bag, store, load_bag_mapping(_mapping_file(tmp_path))).results
    assert any(
        "stream 'ee_pose': 2 of 20 messages on /franka_robot_state_broadcaster/current_pose have an unset header "
        "stamp (0): they are stamped with their receive time" in p
        for p in result.problems
    )
    stamps = store.episode(result.episode_id).stamps("ee_pose")
    assert len(stamps) == 20 and stamps[3] == pytest.approx(1000.15 + 0.002)  # its receive time


# -- several bags, the same bag twice --------------------------------------------------------


def test_several_bags_import_every_good_one_and_name_the_bad_ones(tmp_path, capsys):
    good = bags.write_bag(tmp_path / "good", "mcap", bags.franka_demo(count=6))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bag_0.mcap").write_bytes(b"")
    other = bags.write_bag(tmp_path / "other", "sqlite3", bags.franka_demo(count=6, start_s=2000.0))
    assert _import(tmp_path, good, bad, other, extra=("--json",)) == 2
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["imported"]) == [str(good), str(other)]
    assert "is empty (0 bytes)" in summary["failed"][str(bad)]
    assert _import(tmp_path, bad, good) == 2
    out, err = capsys.readouterr()
    assert "0 of 2 bag(s) imported" in out and "1 NOT imported (errors above)" in out
    assert "1 skipped (already imported)" in out and "is already in" in err


def test_the_same_bag_twice_is_skipped_unless_allowed(tmp_path, capsys):
    bag = bags.write_bag(tmp_path / "bag", "sqlite3", bags.franka_demo(count=6))
    assert _import(tmp_path, bag) == 0
    assert _import(tmp_path, bag) == 0
    assert "is already in" in capsys.readouterr().err
    store = EpisodeStore.open(tmp_path / "store.zarr")
    assert store.episode_ids() == ["ep_000000"]
    assert _import(tmp_path, bag, extra=("--allow-duplicate",)) == 0
    assert store.episode_ids() == ["ep_000000", "ep_000001"]


# -- mapping files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("topics: {}\n", "'topics' must map each topic"),
        ("topics: {/a: front}\nstamp: header\n", "unknown keys ['stamp']"),
        ("topics: {/a: {stream: front, converter: jpeg}}\n", "converter 'jpeg' is unknown"),
        ("topics: {/a: front, /b: front}\n", "streams ['front'] are fed by more than one topic"),
        ("topics: {/a: front}\nstreams: {state: ee_pose, command: command}\n", "is fed by no topic"),
        ("topics: {/a: front}\nstreams: {command: front}\n", "state and command (required)"),
        ("topics: {/a: 'front camera'}\n", "stream name must be letters"),
        ("topics: [\n", "is not valid YAML"),
    ],
)
def test_a_bad_mapping_file_is_refused_naming_the_key(tmp_path, text, expected):
    with pytest.raises(BagMappingError, match=expected.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_bag_mapping(_mapping_file(tmp_path, text))


def test_a_mapped_topic_the_bag_lacks_is_named(tmp_path):
    bag = bags.write_bag(tmp_path / "bag", "mcap", bags.franka_demo(count=3))
    store = make_store(tmp_path / "s.zarr")
    with pytest.raises(BagError, match=r"has no topics \['/nope'\]"):
        import_rosbag(bag, store, [TopicMapping("/nope", "front")])
    assert store.episode_ids() == [] and store.staged_ids() == []


@pytest.mark.parametrize("storage", STORAGES)
def test_a_message_that_cannot_be_converted_is_rejected_and_the_rest_imported(tmp_path, storage):
    messages = bags.franka_demo(count=10)
    broken = next(m for i, m in enumerate(messages) if m.topic == bags.FRONT and i > 20)
    broken.fields["encoding"] = "16UC1"  # a depth image on the colour topic
    bag = bags.write_bag(tmp_path / "bag", storage, messages)
    store = make_store(tmp_path / "s.zarr")
    (result,) = import_rosbag(bag, store, load_bag_mapping(_mapping_file(tmp_path))).results
    assert store.episode(result.episode_id).count("front") == 9
    assert any("could not be converted (image encoding '16UC1' is not supported" in p for p in result.problems)
