"""Pieces of the policy node that need no DDS: compressed images, the IK of the
joint-trajectory sink, the debug image layout."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs")

from df_policy.conversions import (
    ConversionError,
    compressed_msg_to_image,
    image_to_compressed_msg,
    image_to_msg,
    msg_to_image,
)
from df_policy.policy_node import _nearest_resize
from df_policy.sinks import JOINT_LIMITS, franka_tcp_pose, solve_ik

from sim.franka import HOME_JOINTS, dh_forward_kinematics


@pytest.fixture
def picture() -> np.ndarray:
    y, x = np.mgrid[0:24, 0:32]
    return np.stack([x * 8, y * 10, (x + y) * 4], axis=-1).astype(np.uint8)


def test_png_compressed_images_decode_exactly_and_jpeg_closely(picture: np.ndarray) -> None:
    png = image_to_compressed_msg(picture, 1.5, "front_color_optical_frame", fmt="png")
    assert png.format == "png" and png.header.frame_id == "front_color_optical_frame"
    np.testing.assert_array_equal(compressed_msg_to_image(png), picture)
    jpeg = compressed_msg_to_image(image_to_compressed_msg(picture, 1.5, fmt="jpeg"))
    assert jpeg.shape == picture.shape and np.abs(jpeg.astype(int) - picture).mean() < 6


def test_broken_compressed_images_raise(picture: np.ndarray) -> None:
    msg = image_to_compressed_msg(picture, 0.0, fmt="png")
    msg.data = bytes(msg.data)[:40]
    with pytest.raises(ConversionError, match="does not decode"):
        compressed_msg_to_image(msg)
    msg.data = b""
    with pytest.raises(ConversionError, match="no data"):
        compressed_msg_to_image(msg)


def test_raw_images_share_the_core_decoder(picture: np.ndarray) -> None:
    msg = image_to_msg(picture, 0.0)
    rgba = np.concatenate([picture, np.full((*picture.shape[:2], 1), 255, np.uint8)], axis=-1)
    msg.encoding, msg.step, msg.data = "rgba8", picture.shape[1] * 4, rgba.tobytes()
    np.testing.assert_array_equal(msg_to_image(msg), picture)  # policy.imaging handles alpha


def test_franka_kinematics_match_the_simulator_and_ik_converges() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = HOME_JOINTS + rng.uniform(-0.3, 0.3, 7)
        np.testing.assert_allclose(franka_tcp_pose(q), dh_forward_kinematics(q), atol=1e-12)
    start = franka_tcp_pose(HOME_JOINTS)
    target = start[:3, 3] + np.array([0.04, -0.03, 0.02])
    solution = solve_ik(target, start[:3, :3], HOME_JOINTS, JOINT_LIMITS["fr3"])
    reached = franka_tcp_pose(solution)
    assert np.linalg.norm(reached[:3, 3] - target) < 1e-4
    assert np.abs(reached[:3, :3] - start[:3, :3]).max() < 1e-3
    low, high = JOINT_LIMITS["fer"]
    assert np.all(solve_ik(target, start[:3, :3], high + 1.0, (low, high)) <= high)


def test_debug_image_tiles_are_square_rgb() -> None:
    mono = np.arange(64, dtype=np.uint8).reshape(8, 8)
    tile = _nearest_resize(mono, 16)
    assert tile.shape == (16, 16, 3) and tile[0, 0, 0] == 0 and tile[-1, -1, 0] == 63
