"""Import rosbag2 recordings (MCAP or sqlite3) into the episode store with `rosbags`
(pure Python, no ROS installation needed).

Each configured topic is converted to one stream; the messages go through the same
Recorder as live recording (same validation, marking and atomic commit), with
back-pressure instead of drops. One bag becomes one episode.

    import_rosbag("demo_bag", store, {
        "/camera/front/color/image_raw": "front",
        "/franka_robot_state_broadcaster/current_pose": "ee_pose",
        "/target_pose": "command",
    })
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policy.imaging import decode_ros_image

from .recorder import CommitResult, Recorder, RecorderConfig
from .schema import IMAGE, VECTOR, StoreError, StreamSpec
from .store import EpisodeStore

log = logging.getLogger("data_collection.rosbag_import")


@dataclass(frozen=True)
class TopicMapping:
    """topic -> stream, with the converter chosen from the message type unless given:
    image, compressed_image, pose, joint_state, gripper_width, twist, vector."""

    topic: str
    stream: str
    converter: str | None = None


_DEFAULT_CONVERTER = {
    "sensor_msgs/msg/Image": "image",
    "sensor_msgs/msg/CompressedImage": "compressed_image",
    "geometry_msgs/msg/PoseStamped": "pose",
    "geometry_msgs/msg/Pose": "pose",
    "sensor_msgs/msg/JointState": "joint_state",
    "geometry_msgs/msg/Twist": "twist",
    "geometry_msgs/msg/TwistStamped": "twist",
    "std_msgs/msg/Float64": "vector",
    "std_msgs/msg/Float64MultiArray": "vector",
}


def _stamp(message: Any, receive_ns: int, source: str) -> float:
    header = getattr(message, "header", None)
    if source == "header" and header is not None:
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        if stamp > 0:
            return stamp
    return receive_ns * 1e-9


def _pose(message: Any) -> np.ndarray:
    pose = getattr(message, "pose", message)
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64)


def _twist(message: Any) -> np.ndarray:
    twist = getattr(message, "twist", message)
    return np.array(
        [
            twist.linear.x,
            twist.linear.y,
            twist.linear.z,
            twist.angular.x,
            twist.angular.y,
            twist.angular.z,
        ],
        dtype=np.float64,
    )


def _vector(message: Any) -> np.ndarray:
    data = getattr(message, "data", message)
    return np.atleast_1d(np.asarray(data, dtype=np.float64))


def _image(message: Any) -> tuple[np.ndarray, str]:
    return decode_ros_image(message.encoding, message.height, message.width, message.step, message.data), "rgb8"


def _compressed_image(message: Any) -> tuple[np.ndarray, str]:
    import imageio.v3 as iio

    image = np.asarray(iio.imread(bytes(message.data)))
    if image.ndim == 2:
        image = image[..., None]
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8), "rgb8"


def _joint_values(message: Any, dim: int) -> np.ndarray:
    position = np.asarray(message.position, dtype=np.float64)
    velocity = np.asarray(message.velocity, dtype=np.float64)
    if dim == 2 * len(position):
        velocity = velocity if len(velocity) == len(position) else np.full(len(position), np.nan)
        return np.concatenate([position, velocity])
    return position


def _fit(values: np.ndarray, dim: int) -> np.ndarray:
    """Pad a vector with zeros up to the stream's dim (a twist into a 7-value teleop stream
    whose gripper input the bag does not have); longer vectors are left for the recorder to
    reject with its size message."""
    if values.shape[0] < dim:
        return np.concatenate([values, np.zeros(dim - values.shape[0])])
    return values


def _infer_spec(
    stream: str,
    converter: str,
    first: Any,
    count: int,
    duration_s: float,
    template: StreamSpec | None,
) -> StreamSpec:
    rate = max(1e-3, (count - 1) / duration_s) if count > 1 and duration_s > 0 else 1.0
    if template is not None:
        return template
    if converter in ("image", "compressed_image"):
        image, _ = _image(first) if converter == "image" else _compressed_image(first)
        return StreamSpec(stream, IMAGE, image.shape, rate, "rgb8" if image.shape[2] == 3 else "mono8")
    if converter == "pose":
        return StreamSpec(stream, VECTOR, (7,), rate, fields=("x", "y", "z", "qx", "qy", "qz", "qw"))
    if converter == "twist":
        return StreamSpec(stream, VECTOR, (6,), rate, fields=("vx", "vy", "vz", "wx", "wy", "wz"))
    if converter == "gripper_width":
        return StreamSpec(stream, VECTOR, (1,), rate, fields=("width",))
    if converter == "joint_state":
        names = list(first.name)
        fields = [f"{n}.position" for n in names] + [f"{n}.velocity" for n in names]
        return StreamSpec(stream, VECTOR, (len(fields),), rate, fields=tuple(fields))
    return StreamSpec(stream, VECTOR, _vector(first).shape, rate)


def import_rosbag(
    bag: str | Path,
    store: EpisodeStore,
    topics: dict[str, str] | list[TopicMapping],
    streams: list[StreamSpec] | None = None,
    task: str = "",
    metadata: dict[str, Any] | None = None,
    stamp_source: str = "header",
    success: bool | None = None,
    progress: bool = False,
) -> CommitResult:
    """Import one rosbag2 directory (or .mcap/.db3 inside it) as one episode.

    streams: specs to record into (by stream name); streams not given are inferred from
    the bag (image size from the first message, rate from count / duration).
    stamp_source: "header" (message header stamp, the sensor time; falls back to the
    receive time when a message has none) or "receive" (bag time)."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    mappings = [TopicMapping(t, s) for t, s in topics.items()] if isinstance(topics, dict) else list(topics)
    if stamp_source not in ("header", "receive"):
        raise ValueError(f"stamp_source must be 'header' or 'receive', got {stamp_source!r}")
    path = Path(bag)
    if path.is_file():
        path = path.parent
    templates = {s.name: s for s in (streams or [])}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        by_topic: dict[str, list[Any]] = {}
        for connection in reader.connections:
            by_topic.setdefault(connection.topic, []).append(connection)
        absent = [m.topic for m in mappings if m.topic not in by_topic]
        if absent:
            raise StoreError(f"bag {path} has no topics {absent}; it has {sorted(by_topic)}")
        duration_s = max(reader.duration * 1e-9, 1e-9)
        converters: dict[str, tuple[StreamSpec, str]] = {}
        for mapping in mappings:
            connection = by_topic[mapping.topic][0]
            converter = mapping.converter or _DEFAULT_CONVERTER.get(connection.msgtype)
            if converter is None:
                raise StoreError(
                    f"topic {mapping.topic}: no converter for message type {connection.msgtype}; "
                    f"give one of {sorted(set(_DEFAULT_CONVERTER.values()) | {'gripper_width'})}"
                )
            count = sum(c.msgcount for c in by_topic[mapping.topic])
            _, _, raw = next(reader.messages(connections=by_topic[mapping.topic]))
            first = reader.deserialize(raw, connection.msgtype)
            spec = _infer_spec(mapping.stream, converter, first, count, duration_s, templates.get(mapping.stream))
            converters[mapping.topic] = (spec, converter)
        specs = list({spec.name: spec for spec, _ in converters.values()}.values())
        bag_time = [reader.start_time * 1e-9]
        recorder = Recorder(
            store,
            specs,
            RecorderConfig(block_when_full=True, min_free_bytes=0),
            clock=lambda: bag_time[0],
        )
        recorder.start_episode(task=task, metadata={"source": {"rosbag": str(path)}, **(metadata or {})})
        seen_encoding: dict[str, str] = {}
        wanted = [c for m in mappings for c in by_topic[m.topic]]
        iterator: Any = reader.messages(connections=wanted)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(
                iterator,
                total=sum(c.msgcount for c in wanted),
                desc=f"import {path.name}",
                unit="msg",
            )
        handlers: dict[str, Callable[[Any], Any]] = {}
        try:
            for connection, receive_ns, raw in iterator:
                spec, converter = converters[connection.topic]
                bag_time[0] = receive_ns * 1e-9
                message = reader.deserialize(raw, connection.msgtype)
                stamp = _stamp(message, receive_ns, stamp_source)
                try:
                    if converter in ("image", "compressed_image"):
                        encoding = getattr(message, "encoding", getattr(message, "format", ""))
                        previous = seen_encoding.setdefault(spec.name, encoding)
                        if encoding != previous:
                            recorder.note_problem(
                                spec.name,
                                "encoding-change",
                                f"camera {spec.name!r}: encoding changed from {previous!r} to "
                                f"{encoding!r} at t={stamp:.3f}",
                            )
                        image, image_encoding = _image(message) if converter == "image" else _compressed_image(message)
                        recorder.add(spec.name, stamp, image, encoding=image_encoding)
                        continue
                    if converter == "pose":
                        values = _pose(message)
                    elif converter == "twist":
                        values = _twist(message)
                    elif converter == "joint_state":
                        values = _joint_values(message, spec.shape[0])
                    elif converter == "gripper_width":
                        values = np.array([float(np.sum(np.asarray(message.position, dtype=np.float64)))])
                    else:
                        values = handlers.get(converter, _vector)(message)
                    recorder.add(spec.name, stamp, _fit(values, spec.shape[0]))
                except ValueError as error:  # undecodable message: reject, mark, go on
                    recorder.note_problem(
                        spec.name,
                        "decode",
                        f"stream {spec.name!r}: message at t={stamp:.3f} could not be converted ({error})",
                    )
            result = recorder.stop_episode(success=success)
        except BaseException:
            if recorder.state != "idle":
                recorder.discard_episode()
            raise
    log.info("imported %s as %s", path, result.episode_id)
    return result
