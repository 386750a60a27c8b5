"""Message conversion (no DDS): images, poses, joint states, stamps."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("sensor_msgs")

from df_policy.conversions import (
    ConversionError,
    compressed_msg_to_image,
    image_to_compressed_msg,
    image_to_msg,
    joint_state_to_msg,
    msg_to_image,
    msg_to_joint_positions,
    msg_to_joint_target,
    msg_to_pose,
    pose_to_msg,
    rgb_to_mono,
    seconds_to_time,
    time_to_seconds,
)
from sensor_msgs.msg import Image


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_colour_images_round_trip(rgb: np.ndarray, encoding: str) -> None:
    msg = image_to_msg(rgb, 12.5, "front_color_optical_frame", encoding=encoding)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (6, 5, 15, encoding)
    assert time_to_seconds(msg.header.stamp) == pytest.approx(12.5)
    np.testing.assert_array_equal(msg_to_image(msg), rgb)


def test_bgr_bytes_are_swapped(rgb: np.ndarray) -> None:
    msg = image_to_msg(rgb, 0.0, encoding="bgr8")
    first_pixel = bytes(msg.data[:3])
    assert first_pixel == bytes(rgb[0, 0, ::-1].tolist())


def test_mono_images_and_row_padding(rgb: np.ndarray) -> None:
    msg = image_to_msg(rgb, 0.0, encoding="mono8")
    np.testing.assert_array_equal(msg_to_image(msg, output="mono8"), rgb_to_mono(rgb))
    assert msg_to_image(msg).shape == (6, 5, 3)
    # A driver may pad rows: step > width * channels.
    padded = image_to_msg(rgb, 0.0)
    rows = np.frombuffer(bytes(padded.data), np.uint8).reshape(6, 15)
    padded.step = 16
    padded.data = np.concatenate([rows, np.zeros((6, 1), np.uint8)], axis=1).tobytes()
    np.testing.assert_array_equal(msg_to_image(padded), rgb)


def test_bad_images_raise(rgb: np.ndarray) -> None:
    msg = image_to_msg(rgb, 0.0)
    msg.encoding = "16UC1"
    with pytest.raises(ConversionError, match="16UC1"):
        msg_to_image(msg)
    msg = image_to_msg(rgb, 0.0)
    msg.height = 7
    with pytest.raises(ConversionError, match="bytes"):
        msg_to_image(msg)
    with pytest.raises(ConversionError, match="uint8"):
        image_to_msg(rgb.astype(np.float32), 0.0)


def _raw(encoding: str, width: int, height: int, step: int, size: int) -> Image:
    msg = Image()
    msg.encoding, msg.width, msg.height, msg.step, msg.data = encoding, width, height, step, bytes(size)
    return msg


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        (_raw("rgb8", 0, 0, 0, 0), "image 0x0 rgb8 has no pixels (width and height must be at least 1)"),
        (_raw("rgb8", 0, 480, 1920, 0), "image 0x480 rgb8 has no pixels"),
        (_raw("mono8", 640, 0, 640, 0), "image 640x0 mono8 has no pixels"),
        (
            _raw("rgb8", 640, 480, 200, 640 * 480 * 3),
            "image 640x480 rgb8 needs a row step of at least 1920 bytes, got 200",
        ),
        (
            _raw("bgr8", 640, 480, 1920, 1234),
            "image 640x480 bgr8 with a row step of 1920 bytes needs 921600 bytes of data, got 1234",
        ),
        (_raw("16UC1", 4, 4, 8, 32), "image encoding '16UC1' is not supported; expected one of"),
        (_raw("", 4, 4, 12, 48), "image encoding '' is not supported"),
    ],
    ids=["0x0", "0xN", "Nx0", "step-too-small", "data-too-short", "unknown-encoding", "empty-encoding"],
)
def test_malformed_raw_images_raise_plain_messages(msg: Image, message: str) -> None:
    with pytest.raises(ConversionError) as raised:
        msg_to_image(msg)
    assert str(raised.value).startswith(message)


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _header_zeroed(data: bytes) -> bytes:
    return data[:4] + bytes(20) + data[24:]


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncated, "truncated"),
        (_header_zeroed, ""),
        (lambda data: bytes(range(256)) * 4, "not a JPEG, PNG or other known image format"),
    ],
    ids=["truncated", "header-zeroed", "not-an-image"],
)
def test_corrupt_compressed_images_raise_plain_messages(
    rgb: np.ndarray, fmt: str, damage: Callable[[bytes], bytes], reason: str
) -> None:
    msg = image_to_compressed_msg(np.tile(rgb, (8, 8, 1)), 0.0, fmt=fmt)
    msg.data = damage(bytes(msg.data))
    with pytest.raises(ConversionError) as raised:
        compressed_msg_to_image(msg)
    message = str(raised.value)
    assert message.startswith(f"compressed image ({fmt}, {len(msg.data)} bytes) could not be decoded: ")
    assert reason in message
    assert " at 0x" not in message and "<" not in message  # no object reprs


def test_pose_round_trip_and_checks() -> None:
    msg = pose_to_msg([0.1, -0.2, 0.3], [0.0, 0.0, 0.0, 2.0], 1.25, "fr3_link0")
    position, quat = msg_to_pose(msg)
    np.testing.assert_allclose(position, [0.1, -0.2, 0.3])
    np.testing.assert_allclose(quat, [0, 0, 0, 1])  # normalised
    assert msg.header.frame_id == "fr3_link0"
    msg.pose.position.y = math.nan
    with pytest.raises(ConversionError, match=r"position\.y is nan"):
        msg_to_pose(msg)
    zero = pose_to_msg([0, 0, 0], [0, 0, 0, 0], 0.0, "")
    with pytest.raises(ConversionError, match="zero quaternion"):
        msg_to_pose(zero)


def test_joint_states_reorder_and_report_missing() -> None:
    msg = joint_state_to_msg(["b", "a", "c"], [2.0, 1.0, 3.0], 3.0, velocities=[0.2, 0.1, 0.3])
    np.testing.assert_array_equal(msg_to_joint_positions(msg, ["a", "b"]), [1.0, 2.0])
    with pytest.raises(ConversionError, match=r"lacks joints \['d'\]"):
        msg_to_joint_positions(msg, ["a", "d"])
    with pytest.raises(ConversionError, match="velocities"):
        joint_state_to_msg(["a"], [1.0], 0.0, velocities=[1.0, 2.0])


def test_joint_trajectory_target_is_its_last_point_in_our_joint_order() -> None:
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    msg = JointTrajectory(joint_names=["b", "a"])
    msg.points = [
        JointTrajectoryPoint(positions=[0.0, 0.0]),
        JointTrajectoryPoint(positions=[2.0, 1.0], time_from_start=Duration(sec=0, nanosec=40_000_000)),
    ]
    positions, duration = msg_to_joint_target(msg, ["a", "b"])
    np.testing.assert_array_equal(positions, [1.0, 2.0])
    assert duration == pytest.approx(0.04)
    with pytest.raises(ConversionError, match=r"lacks joints \['c'\]"):
        msg_to_joint_target(msg, ["a", "c"])
    msg.points[-1].positions = [math.nan, 1.0]
    with pytest.raises(ConversionError, match="finite"):
        msg_to_joint_target(msg, ["a", "b"])
    with pytest.raises(ConversionError, match="no points"):
        msg_to_joint_target(JointTrajectory(joint_names=["a"]), ["a"])


def test_stamps() -> None:
    stamp = seconds_to_time(1.5)
    assert (stamp.sec, stamp.nanosec) == (1, 500_000_000)
    with pytest.raises(ConversionError):
        seconds_to_time(math.nan)
