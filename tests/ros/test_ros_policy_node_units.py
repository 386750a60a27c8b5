"""Pieces of the policy node that need no DDS: compressed images, the debug image layout,
the frame-triggered tick schedule."""

from __future__ import annotations

import math

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
from df_policy.policy_node import FrameTrigger, _nearest_resize


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
    with pytest.raises(ConversionError, match=r"compressed image \(png, 40 bytes\) could not be decoded"):
        compressed_msg_to_image(msg)
    msg.data = b""
    with pytest.raises(ConversionError, match="no data"):
        compressed_msg_to_image(msg)


def test_raw_images_share_the_core_decoder(picture: np.ndarray) -> None:
    msg = image_to_msg(picture, 0.0)
    rgba = np.concatenate([picture, np.full((*picture.shape[:2], 1), 255, np.uint8)], axis=-1)
    msg.encoding, msg.step, msg.data = "rgba8", picture.shape[1] * 4, rgba.tobytes()
    np.testing.assert_array_equal(msg_to_image(msg), picture)  # policy.imaging handles alpha


def test_debug_image_tiles_are_square_rgb() -> None:
    mono = np.arange(64, dtype=np.uint8).reshape(8, 8)
    tile = _nearest_resize(mono, 16)
    assert tile.shape == (16, 16, 3) and tile[0, 0, 0] == 0 and tile[-1, -1, 0] == 63


@pytest.mark.parametrize(
    "shape", [(0, 0, 3), (0, 8, 3), (8, 0), (0,), (8, 8, 2), (2, 2, 2, 3)], ids=lambda shape: "x".join(map(str, shape))
)
def test_debug_image_tile_of_an_unshowable_array_is_black(shape: tuple[int, ...]) -> None:
    tile = _nearest_resize(np.full(shape, 200, np.uint8), 16)
    assert tile.shape == (16, 16, 3) and not tile.any()


def test_debug_image_tile_drops_alpha() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 90, 255
    tile = _nearest_resize(rgba, 8)
    assert tile.shape == (8, 8, 3) and np.all(tile[..., 0] == 90) and not tile[..., 1:].any()


PERIOD, EARLY, LATE, TICK_COST = 0.04, 0.01, 0.02, 0.008


def frame_triggered_ticks(arrivals: list[list[float]], until: float) -> list[tuple[float, float]]:
    """Drive FrameTrigger as the node's worker does (asking again at each frame arrival or
    when told to, and not while a tick runs); (tick start, oldest frame used) per tick.
    arrivals: per camera, the arrival times of its frames."""
    trigger = FrameTrigger(PERIOD, EARLY, LATE, now=0.0)
    t, ticks = 0.0, []
    while t < until:
        newest = [max((a for a in camera if a <= t), default=-math.inf) for camera in arrivals]
        wait = trigger.poll(t, newest)
        if wait is None:
            ticks.append((t, min(newest)))
            t += TICK_COST
            continue
        upcoming = [a for camera in arrivals for a in camera if a > t]
        t = min([t + wait, *upcoming])
    return ticks


def test_frame_trigger_stays_locked_onto_the_cameras_after_a_late_frame() -> None:
    punctual = [0.005 + PERIOD * k for k in range(60)]
    late = [a + (0.015 if k == 20 else 0.0) for k, a in enumerate(punctual)]  # one frame set 15 ms late
    ticks = frame_triggered_ticks([late, late], until=punctual[-1])
    assert len(ticks) >= 55
    # Every tick but the late one starts as its frames arrive: no tick waits for the
    # timeout with a frame that came just before its window (that was latency + 32 ms).
    ages = [start - oldest for start, oldest in ticks[2:]]
    assert max(ages) < 1e-9, ages
    starts = np.array([start for start, _ in ticks])
    assert np.all(np.abs(np.diff(starts) - PERIOD) <= 0.015 + 1e-9)


def test_frame_trigger_follows_cameras_whose_phase_moved_earlier() -> None:
    arrivals = [0.005 + PERIOD * k - (0.015 if k >= 20 else 0.0) for k in range(60)]
    ticks = frame_triggered_ticks([arrivals, arrivals], until=arrivals[-1])
    ages = [start - oldest for start, oldest in ticks if start > arrivals[22]]
    assert ages and max(ages) < 1e-9, ages


def test_frame_trigger_ticks_without_a_silent_camera_once_per_period() -> None:
    frames = [0.005 + PERIOD * k for k in range(30)]
    ticks = frame_triggered_ticks([frames, []], until=frames[-1])
    starts = np.array([start for start, _ in ticks])
    assert starts[0] == pytest.approx(LATE)  # due at once, but waits for the silent camera as long as it may
    np.testing.assert_allclose(np.diff(starts[1:]), PERIOD, atol=1e-9)
