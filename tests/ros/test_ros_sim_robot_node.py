"""sim_robot_node over real DDS (loopback only, inside a private network namespace)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.sim]

rclpy = pytest.importorskip("rclpy")

from df_policy import qos  # noqa: E402
from df_policy.conversions import msg_to_image, msg_to_pose, pose_to_msg  # noqa: E402
from df_policy.sim_robot_node import SimRobotNode  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from harness import RosHarness, robot_topics, write_robot_description  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from sim.faults import FaultEvent, FaultPlan  # noqa: E402

TOPICS = robot_topics("fr3_sim")  # the tests' derived description keeps fr3_sim's topics
CAMERA_TOPICS = list(TOPICS.cameras.values())


class Harness(RosHarness):
    """sim_robot_node and a probe in one private context."""

    def __init__(self, parameters: list[Parameter]) -> None:
        super().__init__()
        self.node = SimRobotNode(parameter_overrides=parameters, context=self.context)
        self.spin(self.node)
        self.node.start()

    def close(self) -> None:
        self.node.stop()
        super().close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory):
    robot = write_robot_description(tmp_path_factory.mktemp("robot") / "fr3_sim_48.yaml", camera_size=48)
    h = Harness(
        [
            Parameter("robot_description", value=robot),
            Parameter("real_time_factor", value=3.0),
            Parameter("seed", value=4),
        ]
    )
    yield h
    h.close()


def _collect(h: Harness, msg_type, topic: str, qos_profile) -> list:
    received: list = []
    h.probe.create_subscription(msg_type, topic, received.append, qos_profile)
    return received


def test_publishes_documented_topics_with_documented_qos(harness: Harness) -> None:
    expected = {
        TOPICS.current_pose: ReliabilityPolicy.BEST_EFFORT,
        TOPICS.measured_joint_states: ReliabilityPolicy.BEST_EFFORT,
        TOPICS.gripper_joint_states: ReliabilityPolicy.RELIABLE,
        **{topic: ReliabilityPolicy.RELIABLE for topic in CAMERA_TOPICS},
    }
    for topic, reliability in expected.items():
        infos = harness.probe.get_publishers_info_by_topic(topic)
        assert len(infos) == 1, f"{topic}: {infos}"
        assert infos[0].qos_profile.reliability == reliability, topic
    subscriptions = {
        topic: info.qos_profile.reliability
        for topic in (TOPICS.command, TOPICS.gripper_command)
        for info in harness.probe.get_subscriptions_info_by_topic(topic)
    }
    assert subscriptions == {
        TOPICS.command: ReliabilityPolicy.RELIABLE,
        TOPICS.gripper_command: ReliabilityPolicy.RELIABLE,
    }

    images = {t: _collect(harness, Image, t, qos.image_qos()) for t in CAMERA_TOPICS}
    joints = _collect(harness, JointState, TOPICS.measured_joint_states, qos_profile_sensor_data)
    gripper = _collect(harness, JointState, TOPICS.gripper_joint_states, qos.reliable_qos())
    harness.wait_for(
        lambda: all(len(v) >= 2 for v in images.values()) and joints and gripper,
        20.0,
        "images, joint states and gripper states",
    )
    for topic, msgs in images.items():
        msg = msgs[-1]
        assert (msg.encoding, msg.height, msg.width) == ("rgb8", 48, 48), topic
        assert msg_to_image(msg).std() > 5
    arm = harness.node.description.arm
    assert list(joints[-1].name) == list(arm.joint_names)
    assert list(gripper[-1].name) == list(arm.finger_joint_names)
    assert sum(gripper[-1].position) == pytest.approx(0.08, abs=0.005)


def test_best_effort_state_reaches_sensor_data_subscriber_only(harness: Harness) -> None:
    sensor = _collect(harness, PoseStamped, TOPICS.current_pose, qos_profile_sensor_data)
    reliable = _collect(
        harness,
        PoseStamped,
        TOPICS.current_pose,
        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
    )
    harness.wait_for(lambda: len(sensor) >= 10, 20.0, "current_pose on a sensor-data subscriber")
    assert sensor[-1].header.frame_id == TOPICS.frame_id
    # As with franka_ros2: a reliable subscriber to a best-effort topic gets nothing.
    assert reliable == []


def test_target_pose_over_ros_moves_the_end_effector(harness: Harness) -> None:
    poses = _collect(harness, PoseStamped, TOPICS.current_pose, qos_profile_sensor_data)
    harness.wait_for(lambda: bool(poses), 20.0, "a first current_pose")
    start, quat = msg_to_pose(poses[-1])
    target = start + np.array([0.08, -0.06, -0.1])
    publisher = harness.probe.create_publisher(PoseStamped, TOPICS.command, 10)
    gripper = harness.probe.create_publisher(Float64, TOPICS.gripper_command, 10)
    harness.wait_for(lambda: publisher.get_subscription_count() > 0, 10.0, "the node's target subscription")
    # Stream interpolated targets at 10 Hz, as the policy node would.
    for k in range(1, 16):
        waypoint = start + (target - start) * min(1.0, k / 10)
        publisher.publish(pose_to_msg(waypoint, quat, time.time(), TOPICS.frame_id))
        gripper.publish(Float64(data=0.05))
        time.sleep(0.1 / 3.0)  # real_time_factor 3: 0.1 s of sim time

    def reached() -> bool:
        position, _ = msg_to_pose(poses[-1])
        return float(np.linalg.norm(position - target)) < 0.01

    harness.wait_for(reached, 20.0, "the end effector within 1 cm of the target")
    # The fingers move at their own (slower) speed: wait for them rather than sample once.
    harness.wait_for(
        lambda: abs(harness.node.robot.env.robot_state().gripper_width - 0.05) < 0.003, 10.0, "gripper width 0.05 m"
    )
    # A NaN target is rejected (logged) and does not move the arm.
    bad = pose_to_msg(target, quat, time.time(), TOPICS.frame_id)
    bad.pose.position.x = float("nan")
    publisher.publish(bad)
    time.sleep(0.3)
    position, _ = msg_to_pose(poses[-1])
    assert np.linalg.norm(position - target) < 0.01


def test_reset_with_seed_success_report_and_fault_plan(harness: Harness) -> None:
    plan = FaultPlan((FaultEvent("blackout", 0.0, 100.0, camera="front"),))
    request = SetParameters.Request()
    request.parameters = [
        Parameter("seed", value=11).to_parameter_msg(),
        Parameter("fault_plan", value=plan.to_json()).to_parameter_msg(),
    ]
    result = harness.call(SetParameters, "/sim_robot/set_parameters", request)
    assert all(r.successful for r in result.results), result

    response = harness.call(Trigger, "/sim_robot/reset_episode", Trigger.Request())
    assert response.success
    info = json.loads(response.message)
    assert info["seed"] == 11 and info["first_fruit"] in ("apple", "orange")
    assert harness.node.get_parameter("seed").value == 12  # the next reset gets a new episode

    report = harness.call(Trigger, "/sim_robot/report_success", Trigger.Request())
    assert report.success is False
    assert set(json.loads(report.message)["fruits"]) == {"apple", "orange"}

    front = _collect(harness, Image, CAMERA_TOPICS[0], qos.image_qos())
    wrist = _collect(harness, Image, CAMERA_TOPICS[1], qos.image_qos())
    harness.wait_for(lambda: len(front) >= 3 and len(wrist) >= 3, 20.0, "images after reset")
    assert not msg_to_image(front[-1]).any()  # blacked out, as planned
    assert msg_to_image(wrist[-1]).any()

    bad = SetParameters.Request()
    bad.parameters = [Parameter("fault_plan", value="{not json").to_parameter_msg()]
    result = harness.call(SetParameters, "/sim_robot/set_parameters", bad)
    assert not result.results[0].successful and "fault plan" in result.results[0].reason


def test_a_task_that_cannot_be_simulated_is_refused_naming_why(tmp_path) -> None:
    import yaml
    from df_policy.sim_robot_node import SimRobotError

    from training.config import CONFIG_DIR

    real = yaml.safe_load((CONFIG_DIR / "task" / "swap_fruit_sim.yaml").read_text())
    real.update(name="on_the_robot", robot="fr3_real")
    del real["sim"]
    (tmp_path / "real.yaml").write_text(yaml.safe_dump(real))
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(SimRobotError, match=r"task 'on_the_robot'.*has no `sim:` section"):
            SimRobotNode(parameter_overrides=[Parameter("task", value=str(tmp_path / "real.yaml"))], context=context)
        with pytest.raises(SimRobotError, match=r"gripper widths \(gripper.sink 'width_topic'\), got 'franka_action'"):
            SimRobotNode(parameter_overrides=[Parameter("robot_description", value="fr3_real")], context=context)
    finally:
        rclpy.shutdown(context=context)
