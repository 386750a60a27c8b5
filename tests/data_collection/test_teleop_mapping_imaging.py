"""Teleop integration, stream-to-policy mapping and image resizing."""

from __future__ import annotations

import numpy as np
import pytest

from data_collection.mapping import FeatureMapping
from data_collection.teleop import TeleopIntegrator, TeleopLimits
from policy.geometry import quat_to_matrix, rotation_angle_between
from policy.imaging import decode_ros_image, resize_area, resize_area_many, to_channels
from robots.embodiment import JointPosition, pose_to_vector, vector_to_pose
from training.config import task_policy_spec

HOME = np.array([0.5, 0.0, 0.4, 0.0, 0.0, 0.0, 1.0])
# A box of these tests' own (a robot's comes from its description: TeleopLimits.within).
BOX = {"workspace_min": (0.25, -0.45, 0.02), "workspace_max": (0.80, 0.45, 0.70)}


def _integrator(frame: str = "base", **limits: float) -> TeleopIntegrator:
    return TeleopIntegrator(TeleopLimits(**BOX, **limits), frame=frame)


def _run(integrator, seconds, rate=100.0, twist=((0, 0, 0), (0, 0, 0)), gripper=0.0, start=0.0):
    t = start
    for _ in range(round(seconds * rate)):
        t += 1.0 / rate
        integrator.set_twist(t, twist[0], twist[1], gripper)
        command = integrator.step(t)
    return command, t


def test_constant_twist_integrates_and_is_clamped():
    teleop = _integrator()
    teleop.reset(HOME, gripper_width=0.08, now=0.0)
    command, _ = _run(teleop, 1.0, twist=((0.1, 0, 0), (0, 0, 0)))
    assert command[:3] == pytest.approx([0.6, 0.0, 0.4], abs=1e-9)
    command, _ = _run(teleop, 1.0, twist=((1.0, 0, 0), (0, 0, 0)), start=1.0)  # 4x over the speed limit
    assert command[0] == pytest.approx(0.6 + 0.25, abs=1e-9) or command[0] == pytest.approx(0.8)
    command, _ = _run(teleop, 5.0, twist=((0.2, 0, -0.2), (0, 0, 0)), start=2.0)
    assert command[0] == pytest.approx(0.80) and command[2] == pytest.approx(0.02)  # workspace box


def test_rotation_speed_limit_and_frames():
    base = _integrator(max_angular_speed=1.0)
    base.reset(HOME, now=0.0)
    command, _ = _run(base, 0.5, twist=((0, 0, 0), (0, 0, 3.0)))  # clamped to 1 rad/s
    angle = rotation_angle_between(np.eye(3), quat_to_matrix(command[3:7]))
    assert angle == pytest.approx(0.5, abs=1e-6)
    tool = _integrator("tool")
    tilted = np.array([0.5, 0.0, 0.4, 1.0, 0.0, 0.0, 0.0])  # tool z points down (180 deg about x)
    tool.reset(tilted, now=0.0)
    command, _ = _run(tool, 0.5, twist=((0, 0, 0.1), (0, 0, 0)))
    assert command[2] == pytest.approx(0.35, abs=1e-9)  # "forward" along the tool is down


def test_stale_and_invalid_input_stops_motion():
    teleop = _integrator()
    teleop.reset(HOME, now=0.0)
    teleop.set_twist(0.0, (0.1, 0, 0), (0, 0, 0))
    for i in range(1, 101):
        command = teleop.step(i * 0.01)  # no new input for 1 s: moves only until the timeout
    assert command[0] == pytest.approx(0.5 + 0.1 * 0.25, abs=1e-3)
    assert teleop.set_twist(2.0, (np.nan, 0, 0), (0, 0, 0)) is False
    before = teleop.step(2.01).copy()
    assert teleop.step(5.0)[:3] == pytest.approx(before[:3])  # a long stall does not jump (dt capped)
    with pytest.raises(RuntimeError, match="before reset"):
        _integrator().step(0.0)
    with pytest.raises(ValueError, match="7 finite values"):
        _integrator().reset([np.nan] * 7)


def test_limits_within_a_robots_safety_limits_are_the_policys():
    from robots.description import load_robot_description

    safety = load_robot_description("fr3_real").safety
    limits = TeleopLimits.within(safety, twist_timeout_s=0.3)
    assert limits.workspace_min == safety.workspace_low and limits.workspace_max == safety.workspace_high
    assert limits.max_linear_speed == safety.max_linear_speed_m_s
    assert limits.max_angular_speed == safety.max_angular_speed_rad_s
    assert (limits.gripper_min_width, limits.gripper_max_width) == (safety.gripper_min_m, safety.gripper_max_m)
    assert limits.twist_timeout_s == 0.3
    teleop = TeleopIntegrator(limits)
    teleop.reset(HOME, now=0.0)
    command, t = _run(teleop, 0.2, twist=((0, 0, -1.0), (0, 0, 0)))  # down, faster than the robot allows
    assert command[2] == pytest.approx(HOME[2] - safety.max_linear_speed_m_s * 0.2, abs=1e-9)
    command, _ = _run(teleop, 3.0, twist=((0, 0, -1.0), (0, 0, 0)), start=t)  # on, past the table
    assert command[2] == pytest.approx(safety.workspace_low[2])


def test_gripper_velocity_and_absolute():
    teleop = _integrator()
    teleop.reset(HOME, gripper_width=0.08, now=0.0)
    command, t = _run(teleop, 0.3, gripper=-1.0)
    assert command[7] == pytest.approx(0.05, abs=1e-9)
    command, _ = _run(teleop, 2.0, gripper=-1.0, start=t)
    assert command[7] == pytest.approx(0.0)
    teleop.set_gripper(1.0)
    assert teleop.command()[7] == pytest.approx(0.08)


def test_mapping_round_trip_and_spec_fit():
    rng = np.random.default_rng(0)
    quats = rng.normal(size=(50, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    poses = np.concatenate([rng.normal(size=(50, 3)), quats], axis=1)
    back = vector_to_pose(pose_to_vector(poses))
    same = np.abs(np.sum(back[:, 3:] * quats, axis=1))
    assert np.allclose(back[:, :3], poses[:, :3]) and np.allclose(same, 1.0)
    mapping = FeatureMapping()
    mapping.check(task_policy_spec())
    commands = np.concatenate([poses, np.full((50, 1), 0.03)], axis=1)
    actions = mapping.action(commands)
    assert actions.shape == (50, 10) and actions.dtype == np.float32
    assert np.allclose(mapping.action_to_command(actions)[:, 7], 0.03)
    with pytest.raises(ValueError, match="no gripper"):
        mapping.action(poses)
    assert mapping.action(poses, np.full(50, 0.02))[:, 9] == pytest.approx(0.02)


def test_joint_space_mapping_reads_joint_positions_and_joint_commands():
    mapping = FeatureMapping(JointPosition())
    assert mapping.proprio_streams() == ("joint_states", "gripper") and mapping.action_streams() == ("joint_command",)
    rng = np.random.default_rng(1)
    states = rng.normal(size=(5, 14))  # 7 positions, then 7 velocities
    proprio = mapping.proprio(states, np.full((5, 1), 0.04))
    assert proprio.shape == (5, 8) and np.allclose(proprio[:, :7], states[:, :7]) and np.allclose(proprio[:, 7], 0.04)
    commands = rng.normal(size=(5, 8))
    assert np.allclose(mapping.action(commands), commands)
    assert np.allclose(mapping.action_to_command(commands), commands)
    with pytest.raises(ValueError, match=r"no gripper width after the 7 arm values.*stream 'joint_command'"):
        mapping.action(commands[:, :7])


def test_resize_area_is_exact():
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    block = image.reshape(2, 2, 3, 2, 3).mean(axis=(1, 3))
    assert np.array_equal(resize_area(image, 2, 3), np.rint(block).astype(np.uint8))
    flat = np.full((480, 640, 3), 77, np.uint8)
    assert np.all(resize_area(flat, 64, 64) == 77)
    copies = resize_area_many(flat, ((64, 64), (32, 32)))
    assert copies[(32, 32)].shape == (32, 32, 3) and np.all(copies[(32, 32)] == 77)
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    many = resize_area_many(noisy, ((64, 64), (32, 32)))
    assert np.array_equal(many[(64, 64)], resize_area(noisy, 64, 64))
    assert np.abs(many[(32, 32)].astype(int) - resize_area(noisy, 32, 32)).max() <= 1
    assert resize_area(np.stack([noisy, noisy]), 16, 16).shape == (2, 16, 16, 3)
    assert to_channels(np.full((2, 2, 3), 100, np.uint8), 1).shape == (2, 2, 1)


def test_decode_ros_image():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    padded = np.concatenate([bgr.reshape(2, 9), np.zeros((2, 3), np.uint8)], axis=1)  # step 12
    rgb = decode_ros_image("bgr8", 2, 3, 12, padded.tobytes())
    assert rgb.shape == (2, 3, 3) and np.all(rgb[..., 2] == 255) and np.all(rgb[..., 0] == 0)
    assert decode_ros_image("mono8", 2, 3, 3, bytes(6)).shape == (2, 3, 1)
    with pytest.raises(ValueError, match="not supported"):
        decode_ros_image("16UC1", 2, 3, 6, bytes(12))
    with pytest.raises(ValueError, match="image 3x2 rgb8 with a row step of 9 bytes needs 18 bytes of data, got 10"):
        decode_ros_image("rgb8", 2, 3, 9, bytes(10))
    with pytest.raises(ValueError, match="image 3x2 rgb8 needs a row step of at least 9 bytes, got 8"):
        decode_ros_image("rgb8", 2, 3, 8, bytes(100))
    with pytest.raises(ValueError, match=r"image 0x0 rgb8 has no pixels"):
        decode_ros_image("rgb8", 0, 0, 0, b"")
