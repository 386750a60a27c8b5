"""The hardware-in-the-loop core behind sim_robot_node (no ROS needed)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.sim

pytest.importorskip("mujoco")

from sim.env import EnvConfig  # noqa: E402
from sim.faults import FaultEvent, FaultPlan  # noqa: E402
from sim.hil import HilConfig, SimulatedRobot  # noqa: E402
from sim.tasks.swap_fruit import SwapFruitTask  # noqa: E402


@pytest.fixture(scope="module")
def robot():
    r = SimulatedRobot(EnvConfig(image_size=32), HilConfig(gripper_rate_hz=15.0), SwapFruitTask())
    yield r
    r.close()


def test_publishing_rates_follow_the_config(robot) -> None:
    robot.set_fault_plan(None)
    robot.reset(0)
    counts = {"state": 0, "gripper": 0, "camera": 0}
    for _ in range(100):  # 1 s of sim time at 100 Hz
        out = robot.tick()
        counts["state"] += out.state is not None
        counts["gripper"] += out.gripper is not None
        counts["camera"] += bool(out.cameras)
        for frame in out.cameras:
            assert frame.image.shape == (32, 32, 3) and frame.stamp == pytest.approx(out.time)
    assert counts == {"state": 100, "gripper": 15, "camera": 10}


def test_dropped_frames_and_state_dropouts_publish_nothing(robot) -> None:
    robot.set_fault_plan(
        FaultPlan(
            (
                FaultEvent("dropped", 0.0, 0.5, camera="front"),
                FaultEvent("state_dropout", 0.2, 0.4),
                FaultEvent("delayed", 0.5, 1.0, camera="wrist", params={"delay_s": 0.2}),
            )
        )
    )
    robot.reset(1)
    for _ in range(100):
        out = robot.tick()
        cameras = {f.camera: f for f in out.cameras}
        if out.cameras and out.time < 0.5 - 1e-9:
            assert set(cameras) == {"wrist"}
        if 0.2 <= out.time < 0.4 - 1e-9:
            assert out.state is None and out.gripper is None
        elif out.time >= 0.4:
            assert out.state is not None
        if "wrist" in cameras and 0.5 <= out.time < 1.0 - 1e-9:
            assert cameras["wrist"].stamp == pytest.approx(out.time - 0.2)
    robot.set_fault_plan(None)


def test_target_pose_is_tracked_and_bad_targets_are_named(robot) -> None:
    robot.set_fault_plan(None)
    robot.reset(2)
    for _ in range(5):
        robot.tick()
    state = robot.env.robot_state()
    target = state.ee_position + np.array([0.05, 0.05, -0.05])
    robot.set_target_pose(target, state.ee_quat_xyzw)
    robot.set_gripper_width(0.03)
    for _ in range(150):
        robot.tick()
    state = robot.env.robot_state()
    assert np.linalg.norm(state.ee_position - target) < 0.003
    assert state.gripper_width == pytest.approx(0.03, abs=0.002)
    with pytest.raises(ValueError, match="finite"):
        robot.set_target_pose([np.nan, 0, 0.3], [0, 0, 0, 1])
    with pytest.raises(ValueError, match="non-zero quaternion"):
        robot.set_target_pose([0.4, 0, 0.3], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="outside the reachable workspace"):
        robot.set_target_pose([0.4, 0, 1.5], [1, 0, 0, 0])
    with pytest.raises(ValueError, match="names camera"):
        robot.set_fault_plan(FaultPlan((FaultEvent("blackout", 0, 1, camera="side"),)))
