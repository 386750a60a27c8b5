"""Message <-> numpy conversion shared by the df_policy nodes.

Images: sensor_msgs/Image in rgb8, bgr8 or mono8 (row padding via `step` honoured; rgba8
and bgra8 decode too) to and from HxWx3 (or HxW) uint8 arrays; CompressedImage (JPEG/PNG)
to RGB. cv_bridge is not needed: these few encodings are what RealSense and the simulator
publish. The byte layout is decoded in one place, policy.imaging.decode_ros_image.
Poses: geometry_msgs/PoseStamped <-> position (3,) and quaternion (x, y, z, w).
Joint states: sensor_msgs/JointState <-> arrays ordered by a given list of joint names.
Joint trajectories: trajectory_msgs/JointTrajectory -> the final point's positions (in a
given joint order) and its time from start.
Times: builtin_interfaces/Time <-> float seconds.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CompressedImage, Image, JointState
from trajectory_msgs.msg import JointTrajectory

from policy.imaging import decode_ros_image, to_channels
from robots.description import CameraDescription

SUPPORTED_ENCODINGS = ("rgb8", "bgr8", "mono8")


class ConversionError(ValueError):
    """A message cannot be converted; the message says which field is wrong."""


def seconds_to_time(seconds: float) -> Time:
    if not math.isfinite(seconds) or seconds < 0:
        raise ConversionError(f"stamp must be finite and non-negative (s), got {seconds}")
    nanoseconds = round(seconds * 1e9)
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def time_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


# ------------------------------------------------------------------------- images


def image_to_msg(image: np.ndarray, stamp_s: float, frame_id: str = "", encoding: str = "rgb8") -> Image:
    """HxWx3 uint8 RGB (or HxW mono) array -> sensor_msgs/Image in `encoding`."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ConversionError(f"image must be uint8, got {array.dtype}")
    if encoding not in SUPPORTED_ENCODINGS:
        raise ConversionError(f"encoding {encoding!r} unsupported; use {SUPPORTED_ENCODINGS}")
    if encoding == "mono8":
        if array.ndim == 3:
            array = rgb_to_mono(array)
        if array.ndim != 2:
            raise ConversionError(f"mono8 image must be HxW, got shape {array.shape}")
        channels = 1
    else:
        if array.ndim != 3 or array.shape[2] != 3:
            raise ConversionError(f"{encoding} image must be HxWx3, got shape {array.shape}")
        if encoding == "bgr8":
            array = array[:, :, ::-1]
        channels = 3
    array = np.ascontiguousarray(array)
    msg = Image()
    msg.header.stamp = seconds_to_time(stamp_s)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels
    msg.data = array.tobytes()
    return msg


def msg_to_image(msg: Image, output: str = "rgb8") -> np.ndarray:
    """sensor_msgs/Image -> uint8 array: HxWx3 RGB for output='rgb8', HxW for 'mono8'.

    The byte layout (row padding, BGR, alpha) is decoded by policy.imaging.decode_ros_image,
    the one implementation the recorder, the rosbag importer and the policy node share."""
    if output not in ("rgb8", "mono8"):
        raise ConversionError(f"output must be 'rgb8' or 'mono8', got {output!r}")
    try:
        pixels = decode_ros_image(msg.encoding, int(msg.height), int(msg.width), int(msg.step), bytes(msg.data))
    except ValueError as error:
        raise ConversionError(str(error)) from error
    if output == "mono8":
        return to_channels(pixels, 1)[:, :, 0].copy()
    return to_channels(pixels, 3)


def compressed_msg_to_image(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG or PNG, as image_transport's `compressed` gives)
    -> HxWx3 RGB uint8. Uses OpenCV where it is installed (it is with ROS), else Pillow.
    Raises ConversionError, with the decoder's reason, when the payload does not decode."""
    data = bytes(msg.data)
    # The format string comes from the sender: shown, but never more than a line of it.
    what = f"compressed image ({(msg.format or 'no format')[:40]}, {len(data)} bytes)"
    if not data:
        raise ConversionError(f"{what} has no data")
    try:
        import cv2  # optional: present on ROS machines, not needed elsewhere
    except ImportError:
        cv2 = None
    if cv2 is not None:
        try:
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error as error:
            raise ConversionError(f"{what} could not be decoded: {_plain(error)}") from error
        if decoded is None or decoded.size == 0:
            raise ConversionError(f"{what} could not be decoded: OpenCV does not recognise it as an image")
        return np.ascontiguousarray(decoded[:, :, ::-1])  # OpenCV decodes to BGR
    try:
        from PIL import Image as PilImage
        from PIL import UnidentifiedImageError
    except ImportError as error:
        raise ConversionError(
            "decoding compressed images needs OpenCV (cv2) or Pillow; neither is installed"
        ) from error
    try:
        with PilImage.open(io.BytesIO(data)) as picture:
            return np.asarray(picture.convert("RGB"), dtype=np.uint8).copy()
    except UnidentifiedImageError as error:
        raise ConversionError(f"{what} could not be decoded: not a JPEG, PNG or other known image format") from error
    # Any failure of the decoder on these bytes means the same thing, and Pillow raises many
    # kinds (OSError, SyntaxError, struct.error, DecompressionBombError...): one message.
    except Exception as error:
        raise ConversionError(f"{what} could not be decoded: {_plain(error)}") from error


_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


def camera_message(camera: CameraDescription) -> tuple[type[Image] | type[CompressedImage], str]:
    """The message type and topic a described camera's frames arrive on: Image on its
    topic, or CompressedImage on `<topic>/compressed` (image_transport) for transport
    'compressed'."""
    if camera.transport == "compressed":
        return CompressedImage, f"{camera.topic}/compressed"
    return Image, camera.topic


def camera_msg_to_image(msg: Image | CompressedImage) -> np.ndarray:
    """A camera message of either transport -> HxWx3 RGB uint8; ConversionError when it
    does not decode."""
    return compressed_msg_to_image(msg) if isinstance(msg, CompressedImage) else msg_to_image(msg)


def _plain(error: BaseException) -> str:
    """A decoder's message without object reprs (memory addresses mean nothing to a reader)."""
    text = _OBJECT_REPR.sub("", str(error)).strip()
    return text or type(error).__name__


def image_to_compressed_msg(
    image: np.ndarray, stamp_s: float, frame_id: str = "", fmt: str = "jpeg"
) -> CompressedImage:
    """HxWx3 RGB uint8 -> CompressedImage ('jpeg' or 'png'), as a camera driver sends it."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ConversionError(f"image must be HxWx3 uint8, got shape {array.shape} {array.dtype}")
    if fmt not in ("jpeg", "png"):
        raise ConversionError(f"format must be 'jpeg' or 'png', got {fmt!r}")
    from PIL import Image as PilImage

    buffer = io.BytesIO()
    PilImage.fromarray(array).save(buffer, format="JPEG" if fmt == "jpeg" else "PNG")
    msg = CompressedImage()
    msg.header.stamp = seconds_to_time(stamp_s)
    msg.header.frame_id = frame_id
    msg.format = fmt
    msg.data = buffer.getvalue()
    return msg


def rgb_to_mono(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma, rounded, as uint8 (HxWx3 -> HxW)."""
    return to_channels(np.asarray(rgb, dtype=np.uint8), 1)[..., 0]


# -------------------------------------------------------------------------- poses


def pose_to_msg(position: Sequence[float], quat_xyzw: Sequence[float], stamp_s: float, frame_id: str) -> PoseStamped:
    p = np.asarray(position, dtype=np.float64)
    q = np.asarray(quat_xyzw, dtype=np.float64)
    if p.shape != (3,) or q.shape != (4,):
        raise ConversionError(f"pose needs position (3,), quaternion (4,); got {p.shape}, {q.shape}")
    msg = PoseStamped()
    msg.header.stamp = seconds_to_time(stamp_s)
    msg.header.frame_id = frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in p)
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in q)
    return msg


def msg_to_pose(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    """PoseStamped -> (position (3,), unit quaternion (x, y, z, w)). Raises
    ConversionError naming the field for NaN/inf values or a zero quaternion."""
    p = msg.pose.position
    o = msg.pose.orientation
    position = np.array([p.x, p.y, p.z], dtype=np.float64)
    quat = np.array([o.x, o.y, o.z, o.w], dtype=np.float64)
    for name, value in zip(("x", "y", "z"), position, strict=True):
        if not math.isfinite(value):
            raise ConversionError(f"pose.position.{name} is {value}")
    for name, value in zip(("x", "y", "z", "w"), quat, strict=True):
        if not math.isfinite(value):
            raise ConversionError(f"pose.orientation.{name} is {value}")
    norm = float(np.linalg.norm(quat))
    if norm < 1e-6:
        raise ConversionError("pose.orientation is a zero quaternion")
    return position, quat / norm


# --------------------------------------------------------------------- joint states


def joint_state_to_msg(
    names: Sequence[str],
    positions: Sequence[float],
    stamp_s: float,
    velocities: Sequence[float] | None = None,
    efforts: Sequence[float] | None = None,
) -> JointState:
    if len(names) != len(positions):
        raise ConversionError(f"{len(names)} joint names but {len(positions)} positions")
    msg = JointState()
    msg.header.stamp = seconds_to_time(stamp_s)
    msg.name = list(names)
    msg.position = [float(v) for v in positions]
    if velocities is not None:
        if len(velocities) != len(names):
            raise ConversionError(f"{len(names)} joint names but {len(velocities)} velocities")
        msg.velocity = [float(v) for v in velocities]
    if efforts is not None:
        if len(efforts) != len(names):
            raise ConversionError(f"{len(names)} joint names but {len(efforts)} efforts")
        msg.effort = [float(v) for v in efforts]
    return msg


def msg_to_joint_positions(msg: JointState, names: Sequence[str]) -> np.ndarray:
    """Positions of `names`, in that order, from a JointState whose joints may come in any
    order (or include others). Raises ConversionError listing the missing joints."""
    if len(msg.position) != len(msg.name):
        raise ConversionError(f"JointState has {len(msg.name)} names but {len(msg.position)} positions")
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ConversionError(f"JointState lacks joints {missing}; it has {list(msg.name)}")
    return np.array([msg.position[index[n]] for n in names], dtype=np.float64)


def msg_to_joint_target(msg: JointTrajectory, names: Sequence[str]) -> tuple[np.ndarray, float]:
    """The final point of a JointTrajectory as positions of `names` (in that order; the
    message may list its joints in any order) and its time from start (s): where a joint
    trajectory controller is to be, and when. Raises ConversionError naming what is wrong."""
    if not msg.points:
        raise ConversionError("JointTrajectory has no points")
    point = msg.points[-1]
    if len(point.positions) != len(msg.joint_names):
        raise ConversionError(
            f"JointTrajectory has {len(msg.joint_names)} joint names but its last point "
            f"{len(point.positions)} positions"
        )
    index = {name: i for i, name in enumerate(msg.joint_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ConversionError(f"JointTrajectory lacks joints {missing}; it has {list(msg.joint_names)}")
    positions = np.array([point.positions[index[n]] for n in names], dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise ConversionError(f"JointTrajectory positions must be finite, got {positions.tolist()}")
    duration = point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
    return positions, float(duration)
