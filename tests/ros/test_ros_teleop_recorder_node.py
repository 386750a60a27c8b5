"""teleop_recorder_node against sim_robot_node over real DDS (loopback only, inside a
private network namespace): a twist moves the target, services record an episode that
the training reader aligns."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.sim]

rclpy = pytest.importorskip("rclpy")

from df_policy import qos  # noqa: E402
from df_policy.conversions import msg_to_pose  # noqa: E402
from df_policy.sim_robot_node import SimRobotNode  # noqa: E402
from df_policy.teleop_recorder_node import (  # noqa: E402
    TeleopRecorderError,
    TeleopRecorderNode,
    declared_parameter_names,
)
from geometry_msgs.msg import PoseStamped, Twist  # noqa: E402
from harness import RosHarness, robot_topics, write_robot_description  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Joy  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from data_collection.reader import align_episode  # noqa: E402
from data_collection.store import EpisodeStore  # noqa: E402
from robots.description import load_robot_description  # noqa: E402
from training.config import task_policy_spec  # noqa: E402

IMAGE_SIZE = 32


class Harness(RosHarness):
    """The simulated robot, the recorder node and a probe in one private context."""

    def __init__(self, store: Path) -> None:
        super().__init__()
        robot = write_robot_description(store.parent / "fr3_sim_small.yaml", camera_size=IMAGE_SIZE)
        self.description = load_robot_description(robot)
        self.topics = robot_topics(self.description)
        self.robot = SimRobotNode(
            parameter_overrides=[Parameter("real_time_factor", value=1.0), Parameter("robot_description", value=robot)],
            context=self.context,
        )
        self.recorder = TeleopRecorderNode(
            parameter_overrides=[
                Parameter("robot_description", value=robot),
                Parameter("store_path", value=str(store)),
                Parameter("control_rate_hz", value=50.0),
                Parameter("keyboard", value=False),
                Parameter("min_free_mb", value=0),
            ],
            context=self.context,
        )
        self.spin(self.robot, self.recorder)
        self.robot.start()

    def call(self, name: str) -> Trigger.Response:  # type: ignore[override]
        return super().call(Trigger, f"/teleop_recorder/{name}", Trigger.Request(), timeout=20.0)

    def close(self) -> None:
        self.robot.stop()
        super().close()

    def after_spinning(self) -> None:
        self.recorder.shutdown()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory):
    h = Harness(tmp_path_factory.mktemp("teleop") / "demos.zarr")
    yield h
    h.close()


def _collect(h: Harness, msg_type, topic: str, profile) -> list:
    received: list = []
    h.probe.create_subscription(msg_type, topic, received.append, profile)
    return received


def test_first_target_is_the_measured_pose(harness: Harness) -> None:
    robot, topics = harness.description, harness.topics
    targets = _collect(harness, PoseStamped, topics.command, qos.reliable_qos())
    poses = _collect(harness, PoseStamped, topics.current_pose, qos_profile_sensor_data)
    widths = _collect(harness, Float64, topics.gripper_command, qos.reliable_qos())
    harness.wait_for(lambda: len(targets) >= 5 and poses and widths, 20.0, "targets and measured poses")
    target, _ = msg_to_pose(targets[-1])
    measured, _ = msg_to_pose(poses[-1])
    # No input: the target holds where the arm was when the node first heard of it.
    assert np.linalg.norm(target - measured) < 0.01
    assert targets[-1].header.frame_id == robot.frame_id
    assert widths[-1].data == pytest.approx(robot.safety.gripper_max_m, abs=1e-6)
    infos = harness.probe.get_publishers_info_by_topic(topics.command)
    assert [i.node_name for i in infos] == ["teleop_recorder"]
    services = {name for name, _ in harness.probe.get_service_names_and_types()}
    for name in ("start_episode", "stop_episode", "discard_episode"):
        assert f"/teleop_recorder/{name}" in services


def test_twist_teleoperates_and_services_record_an_aligned_episode(harness: Harness) -> None:
    robot = harness.description
    poses = _collect(harness, PoseStamped, harness.topics.current_pose, qos_profile_sensor_data)
    harness.wait_for(lambda: bool(poses), 20.0, "a measured pose")
    start, _ = msg_to_pose(poses[-1])
    twist_pub = harness.probe.create_publisher(Twist, "/spacenav/twist", 10)
    joy_pub = harness.probe.create_publisher(Joy, "/spacenav/joy", 10)
    harness.wait_for(lambda: twist_pub.get_subscription_count() > 0, 10.0, "the twist subscription")

    response = harness.call("start_episode")
    assert response.success, response.message
    assert harness.call("start_episode").success is False  # one episode at a time
    # 1.2 s of +x at 0.4 of full deflection (0.1 m/s), the close button held the last half.
    twist = Twist()
    twist.linear.x = 0.4
    began = time.monotonic()
    while time.monotonic() - began < 1.2:
        twist_pub.publish(twist)
        joy_pub.publish(Joy(axes=[0.0] * 6, buttons=[1 if time.monotonic() - began > 0.6 else 0, 0]))
        time.sleep(0.05)
    harness.wait_for(lambda: msg_to_pose(poses[-1])[0][0] > start[0] + 0.05, 20.0, "the arm moving 5 cm along +x")
    response = harness.call("stop_episode")
    assert response.success, response.message

    store = EpisodeStore.open(harness.recorder.store.path)
    assert store.episode_ids() == ["ep_000000"]
    episode = store.episode(0)
    meta = episode.metadata
    assert meta["success"] is True and meta["task"] == "swap fruit"
    assert meta["robot"]["description"] == robot.name and meta["robot"]["joint_names"] == list(robot.arm.joint_names)
    for stream in (*robot.camera_names, "ee_pose", "joint_states", "gripper", "command", "teleop"):
        assert episode.count(stream) > 0, stream
    # The store's camera streams are the description's cameras at their native size and rate.
    for camera in robot.cameras:
        recorded = episode.spec(camera.name)
        assert recorded.shape == (camera.height, camera.width, 3) and recorded.rate_hz == camera.rate_hz
    commands = episode.values("command")
    assert commands[-1, 0] - commands[0, 0] > 0.08  # integrated at 0.1 m/s for 1.2 s
    assert commands[:, 7].min() < 0.08 - 0.03  # the held close button narrowed the gripper
    teleop = episode.values("teleop")
    assert teleop[:, 0].max() == pytest.approx(0.1) and teleop[:, 6].min() == -1.0

    spec = task_policy_spec([f"task.image_size={IMAGE_SIZE}"])
    aligned = align_episode(episode, spec)
    assert len(aligned) >= 2 and len(aligned) * spec.token_period_s >= 1.2  # the whole ~1.5 s recording
    # Wall-clock timers on a loaded 2-core machine can miss a frame or a control tick past
    # the reader's tolerance now and then; collect-sim's test checks exact validity.
    for camera in ("front", "wrist"):
        assert aligned.frame_valid[camera][1:].mean() >= 0.75, camera
    assert aligned.proprio_valid[1:].mean() >= 0.75 and aligned.action_valid[1:].mean() >= 0.75


def test_discard_keeps_nothing_and_idle_calls_are_refused(harness: Harness) -> None:
    store = EpisodeStore.open(harness.recorder.store.path)
    before = store.episode_ids()
    assert harness.call("start_episode").success
    harness.wait_for(lambda: harness.recorder.session.recorder.statistics()["written"] > 0, 10.0, "samples written")
    response = harness.call("discard_episode")
    assert response.success and "discarded" in response.message
    assert store.episode_ids() == before and store.staged_ids() == []
    for name in ("stop_episode", "discard_episode"):
        response = harness.call(name)
        assert not response.success and "no episode" in response.message
    line = harness.recorder.session.status_line(time.time(), ["front", "ee_pose"])
    assert line.startswith("idle (last: ep_") and "front" in line


def test_config_file_sets_every_parameter_the_node_declares() -> None:
    """config/teleop_recorder.yaml is the recorder's own parameters, each one of them, in
    their declared types (a fact of the robot left in it, or a parameter missing from it,
    fails here)."""
    import yaml
    from df_policy.settings import TeleopRecorderSettings

    params = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
    assert set(params) == declared_parameter_names(), "config/teleop_recorder.yaml and the node's parameters differ"
    defaults = TeleopRecorderSettings()
    for key, value in params.items():
        default = getattr(defaults, key)
        if isinstance(default, tuple):
            assert isinstance(value, list) and [type(v) for v in value] == [type(v) for v in default], key
        else:
            assert type(value) is type(default), key


CONFIG = Path(__file__).resolve().parents[2] / "ros2_ws/src/df_policy/config/teleop_recorder.yaml"


def _recorder_alone(tmp_path: Path, params_file: Path | None = None, **parameters: object) -> TeleopRecorderNode:
    """The recorder in a context of its own (no simulator), or the error it refuses with."""
    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", "--params-file", str(params_file)] if params_file else None)
    overrides = [Parameter("store_path", value=str(tmp_path / "demos.zarr")), Parameter("keyboard", value=False)]
    overrides += [Parameter(name, value=value) for name, value in parameters.items()]
    try:
        return TeleopRecorderNode(parameter_overrides=overrides, context=context)
    finally:
        rclpy.shutdown(context=context)


def test_the_config_file_starts_the_node_with_its_values(tmp_path: Path) -> None:
    import yaml

    edited = yaml.safe_load(CONFIG.read_text())
    edited["/**"]["ros__parameters"]["joy_angular_axes"] = [5, 4, 3]  # an integer array from a file
    edited["/**"]["ros__parameters"]["teleop_frame"] = "tool"
    path = tmp_path / "teleop_recorder.yaml"
    path.write_text(yaml.safe_dump(edited))
    node = _recorder_alone(tmp_path, params_file=path)
    assert node.settings.joy_angular_axes == (5, 4, 3) and node.settings.teleop_frame == "tool"
    assert node.session.integrator.frame == "tool"
    node.session.close()


def test_cameras_with_compressed_transport_are_subscribed_compressed(tmp_path: Path) -> None:
    robot = write_robot_description(tmp_path / "compressed.yaml", camera_changes={"transport": "compressed"})
    node = _recorder_alone(tmp_path, robot_description=robot)
    subscribed = {sub.topic_name: sub.msg_type.__name__ for sub in node.subscriptions}
    for topic in robot_topics(robot).cameras.values():
        assert subscribed[topic + "/compressed"] == "CompressedImage"
    node.session.close()


def test_a_robot_without_a_pose_sink_or_a_bad_parameter_is_refused_by_name(tmp_path: Path) -> None:
    joint_space = write_robot_description(
        tmp_path / "joints.yaml",
        embodiment="joint_position",
        command={"sink": "joint_trajectory", "topic": "joint_trajectory_controller/joint_trajectory"},
    )
    with pytest.raises(TeleopRecorderError, match=r"command\.sink 'pose'"):
        _recorder_alone(tmp_path, robot_description=joint_space)
    with pytest.raises(TeleopRecorderError, match="unknown robot description 'fr9'"):
        _recorder_alone(tmp_path, robot_description="fr9")
    with pytest.raises(TeleopRecorderError, match="parameter 'input' must be one of"):
        _recorder_alone(tmp_path, input="keyboard")
    assert not (tmp_path / "demos.zarr").exists()  # refused before the store opened


def test_the_real_robots_gripper_is_commanded_through_franka_gripper_actions(tmp_path: Path) -> None:
    """fr3_real's gripper sink is franka_gripper's actions, as for the policy node: where
    franka_msgs is missing (here) the recorder refuses to start, naming what to do."""
    import importlib.util

    if importlib.util.find_spec("franka_msgs") is not None:
        pytest.skip("franka_msgs is installed: the sink would be built")
    with pytest.raises(TeleopRecorderError, match="franka_msgs"):
        _recorder_alone(tmp_path, robot_description="fr3_real")
    assert not (tmp_path / "demos.zarr").exists()
