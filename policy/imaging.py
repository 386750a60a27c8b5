"""Image resizing shared by the recorder (policy-resolution copies written at record time),
the training reader (fallback resize) and the policy runtime (which must resize the live
camera exactly as the training data was resized). numpy only.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def _area_plan(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Integer cell and fractional weight of each output-cell boundary on the input axis."""
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    cells = np.minimum(np.floor(edges).astype(np.int64), n_in - 1)
    frac = (edges - cells).astype(np.float64)
    return edges, cells, frac, n_in / n_out


def _area_axis(values: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Exact area averaging along one axis (shrinking only). With the prefix sum P(c) of
    whole input cells, the integral up to a fractional position x = c + f is
    P(c) + f * row[c]; each output value is (I(b) - I(a)) / (b - a). The whole-cell sums
    come from one np.add.reduceat (integer for uint8 input), so a 640x480 frame shrinks
    to 64x64 in ~2 ms (a cumulative sum over the frame took 10 ms, a float matrix
    product 24 ms on this machine)."""
    n_in = values.shape[axis]
    if n_in == n_out:
        return values.astype(np.float64, copy=False)
    _, cells, frac, width = _area_plan(n_in, n_out)
    moved = np.moveaxis(values, axis, 0)
    sum_dtype = np.int64 if moved.dtype.kind in "ui" else np.float64
    # n_in > n_out, so the cell indices strictly increase, as reduceat needs.
    segments = np.add.reduceat(moved, cells, axis=0, dtype=sum_dtype)
    prefix = np.zeros((n_out + 1, *moved.shape[1:]), dtype=np.float64)
    np.cumsum(segments[:-1], axis=0, dtype=np.float64, out=prefix[1:])
    frac = frac.reshape((-1,) + (1,) * (moved.ndim - 1))
    integral = prefix + frac * moved[cells]
    out = (integral[1:] - integral[:-1]) / width
    return np.moveaxis(out, 0, axis)


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W, C) or (N, H, W, C) uint8 images to (height, width) by area averaging
    (anti-aliased when shrinking; exact for any ratio, e.g. 480 -> 64). The aspect ratio
    is not preserved: the policy sees the whole field of view, squashed, in training and
    at run time alike."""
    array = np.asarray(image)
    if array.ndim not in (3, 4):
        raise ValueError(f"expected (H, W, C) or (N, H, W, C) image(s), got shape {array.shape}")
    h_axis = array.ndim - 3
    if array.shape[h_axis] == height and array.shape[h_axis + 1] == width:
        return array.astype(np.uint8, copy=False)
    if height > array.shape[h_axis] or width > array.shape[h_axis + 1]:
        # Upscaling is never needed for training data; nearest neighbour keeps it honest.
        rows = (np.arange(height) * array.shape[h_axis] // height).astype(np.int64)
        cols = (np.arange(width) * array.shape[h_axis + 1] // width).astype(np.int64)
        array = np.take(np.take(array, rows, axis=h_axis), cols, axis=h_axis + 1)
        if array.shape[h_axis] == height and array.shape[h_axis + 1] == width:
            return array.astype(np.uint8, copy=False)
    reduced = _area_axis(array, height, h_axis)
    reduced = _area_axis(reduced, width, h_axis + 1)
    return np.clip(np.rint(reduced), 0, 255).astype(np.uint8)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert (..., C) uint8 images to 1 (luma, BT.601) or 3 channels."""
    if image.shape[-1] == channels:
        return image
    if channels == 3 and image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 1 and image.shape[-1] == 3:
        luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    raise ValueError(f"cannot convert {image.shape[-1]}-channel images to {channels} channels")


def resize_area_many(image: np.ndarray, sizes: tuple[tuple[int, int], ...]) -> dict[tuple[int, int], np.ndarray]:
    """Several area-resized copies of one (H, W, C) frame. A smaller size that divides a
    larger one is block-averaged from the larger copy's unrounded values (identical to
    resizing the full frame, since the cell boundaries coincide), which halves the cost
    of writing 64x64 and 32x32 copies at record time."""
    out: dict[tuple[int, int], np.ndarray] = {}
    exact: dict[tuple[int, int], np.ndarray] = {}
    height, width = image.shape[0], image.shape[1]
    for size in sorted(set(sizes), key=lambda s: -s[0] * s[1]):
        h, w = size
        source = next(
            ((key, values) for key, values in exact.items() if key[0] % h == 0 and key[1] % w == 0),
            None,
        )
        if source is not None:
            (sh, sw), values = source
            block = values.reshape(h, sh // h, w, sw // w, values.shape[-1]).mean(axis=(1, 3))
        elif h <= height and w <= width:
            block = _area_axis(_area_axis(image, h, 0), w, 1)
        else:
            out[size] = resize_area(image, h, w)
            continue
        exact[size] = block
        out[size] = np.clip(np.rint(block), 0, 255).astype(np.uint8)
    return out


# sensor_msgs/Image encodings the recorder understands: name -> (channels in the message,
# channel order to take for RGB (or None for mono)).
_ROS_ENCODINGS: dict[str, tuple[int, tuple[int, ...] | None]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None),
}


def decode_ros_image(encoding: str, height: int, width: int, step: int, data: bytes | np.ndarray) -> np.ndarray:
    """A sensor_msgs/Image payload as an (H, W, 3) RGB or (H, W, 1) mono uint8 array
    (row padding removed, BGR and alpha handled). Raises ValueError naming the encoding
    or the size when the payload cannot be an image of that kind."""
    if encoding not in _ROS_ENCODINGS:
        raise ValueError(f"image encoding {encoding!r} is not supported; expected one of {sorted(_ROS_ENCODINGS)}")
    channels, order = _ROS_ENCODINGS[encoding]
    what = f"image {width}x{height} {encoding}"
    if width < 1 or height < 1:
        raise ValueError(f"{what} has no pixels (width and height must be at least 1)")
    if step < width * channels:
        raise ValueError(f"{what} needs a row step of at least {width * channels} bytes, got {step}")
    buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    needed = step * height  # sensor_msgs/Image: data holds `height` rows of `step` bytes
    if buffer.size < needed:
        raise ValueError(f"{what} with a row step of {step} bytes needs {needed} bytes of data, got {buffer.size}")
    rows = buffer[:needed].reshape(height, step)[:, : width * channels]
    image = rows.reshape(height, width, channels)
    if order is None:
        return np.ascontiguousarray(image)
    return np.ascontiguousarray(image[..., list(order)])
