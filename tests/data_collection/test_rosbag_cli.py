"""rosbag2 import (MCAP and sqlite3) and the dataset CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_collection.cli import main as cli
from data_collection.rosbag_import import import_rosbag
from data_collection.store import EpisodeStore

from .helpers import make_store, record_episode


def _write_bag(path, storage: str, frames: int = 20, bad_size_at: int | None = None) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types = store.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        image_c = writer.add_connection("/camera/front/color/image_raw", "sensor_msgs/msg/Image", typestore=store)
        pose_c = writer.add_connection(
            "/franka_robot_state_broadcaster/current_pose",
            "geometry_msgs/msg/PoseStamped",
            typestore=store,
        )
        joint_c = writer.add_connection("/franka_gripper/joint_states", "sensor_msgs/msg/JointState", typestore=store)
        twist_c = writer.add_connection("/spacenav/twist", "geometry_msgs/msg/Twist", typestore=store)
        for i in range(frames):
            t = 1000.0 + i * 0.05
            stamp = types["builtin_interfaces/msg/Time"](sec=int(t), nanosec=round((t % 1) * 1e9))
            header = types["std_msgs/msg/Header"](stamp=stamp, frame_id="fr3_link0")
            height, width = (12, 16) if i == bad_size_at else (24, 32)
            image = types["sensor_msgs/msg/Image"](
                header=header,
                height=height,
                width=width,
                encoding="bgr8",
                is_bigendian=0,
                step=width * 3,
                data=np.tile(np.array([i, 0, 255], np.uint8), height * width),
            )
            pose = types["geometry_msgs/msg/PoseStamped"](
                header=header,
                pose=types["geometry_msgs/msg/Pose"](
                    position=types["geometry_msgs/msg/Point"](x=0.5, y=0.0, z=0.4 + 0.001 * i),
                    orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                ),
            )
            joints = types["sensor_msgs/msg/JointState"](
                header=header,
                name=["fr3_finger_joint1", "fr3_finger_joint2"],
                position=np.array([0.02, 0.02]),
                velocity=np.zeros(2),
                effort=np.zeros(2),
            )
            vector = types["geometry_msgs/msg/Vector3"]
            twist = types["geometry_msgs/msg/Twist"](
                linear=vector(x=0.1, y=0.0, z=0.0), angular=vector(x=0.0, y=0.0, z=0.0)
            )
            ns = int(t * 1e9)
            writer.write(image_c, ns, store.serialize_cdr(image, "sensor_msgs/msg/Image"))
            writer.write(pose_c, ns, store.serialize_cdr(pose, "geometry_msgs/msg/PoseStamped"))
            writer.write(joint_c, ns, store.serialize_cdr(joints, "sensor_msgs/msg/JointState"))
            writer.write(twist_c, ns, store.serialize_cdr(twist, "geometry_msgs/msg/Twist"))


TOPICS = {
    "/camera/front/color/image_raw": "front",
    "/franka_robot_state_broadcaster/current_pose": "ee_pose",
}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_import_rosbag(tmp_path, storage):
    from data_collection.rosbag_import import TopicMapping

    bag = tmp_path / f"bag_{storage}"
    _write_bag(bag, storage, bad_size_at=7)
    store = make_store(tmp_path / "s.zarr")
    topics = [TopicMapping(t, s) for t, s in TOPICS.items()]
    topics.append(TopicMapping("/franka_gripper/joint_states", "gripper", "gripper_width"))
    topics.append(TopicMapping("/spacenav/twist", "teleop"))
    result = import_rosbag(bag, store, topics, task="imported")
    (episode_id,) = result.episode_ids
    episode = store.episode(episode_id)
    assert episode.count("front") == 19 and episode.count("ee_pose") == 20  # the odd-sized frame is rejected
    assert any("frame size 12x16x3, expected 24x32x3" in p for p in result.results[0].problems)
    first = np.asarray(episode.frames("front")[0])
    assert first[0, 0].tolist() == [255, 0, 0]  # bgr8 converted to rgb
    assert episode.stamps("ee_pose")[1] == pytest.approx(1000.05)
    assert episode.values("ee_pose")[3, 2] == pytest.approx(0.403)
    assert episode.values("gripper")[0, 0] == pytest.approx(0.04)
    assert episode.values("teleop")[0, 0] == pytest.approx(0.1)
    assert episode.metadata["source"]["rosbag"] == str(bag) and episode.verify() == []


def test_import_missing_topic(tmp_path):
    bag = tmp_path / "bag"
    _write_bag(bag, "mcap", frames=3)
    store = make_store(tmp_path / "s.zarr")
    with pytest.raises(Exception, match="has no topics"):
        import_rosbag(bag, store, {"/nope": "front"})
    assert store.episode_ids() == [] and store.staged_ids() == []


def test_cli_info_validate_delete_repair(tmp_path, capsys):
    store = make_store(tmp_path / "s.zarr")
    record_episode(store, task="first")
    record_episode(store, task="second")
    path = str(store.path)
    assert cli(["info", path]) == 0
    assert "2 episodes" in capsys.readouterr().out
    assert cli(["info", path, "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "second"
    assert cli(["validate", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert cli(["delete", path, "ep_000009"]) == 2
    assert "episode ep_000009 does not exist" in capsys.readouterr().err
    assert cli(["delete", path, "--last"]) == 0
    assert "deleted ep_000001" in capsys.readouterr().out
    assert cli(["repair", path]) == 0
    assert "nothing to repair" in capsys.readouterr().out
    assert cli(["info", str(tmp_path / "nothing.zarr")]) == 2
    assert "no episode store" in capsys.readouterr().err


def test_cli_create_import_and_view(tmp_path, capsys):
    path = tmp_path / "new.zarr"
    assert cli(["create", str(path), "--image-codec", "lz4", "--policy-size", "16x16"]) == 0
    assert EpisodeStore.open(path).settings.policy_image_sizes == ((16, 16),)
    bag = tmp_path / "bag"
    _write_bag(bag, "mcap", frames=12)
    args = ["import-rosbag", str(path), str(bag)]
    for topic, stream in TOPICS.items():
        args += ["--topic", f"{topic}={stream}"]
    assert cli(args) == 0
    out = tmp_path / "views"
    assert cli(["view", str(path), "0", "--out", str(out)]) == 0
    assert (out / "ep_000000.mp4").stat().st_size > 0 and (out / "ep_000000_plot.png").stat().st_size > 0
    assert cli(["view", str(path), "--out", str(out), "--format", "gif"]) == 0
    assert (out / "ep_000000.gif").read_bytes()[:3] == b"GIF"


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        cli(["--help"])
    text = capsys.readouterr().out
    for command in ("info", "validate", "repair", "delete", "view"):
        assert command in text
