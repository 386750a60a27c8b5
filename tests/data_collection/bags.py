"""rosbag2 recordings written by independent writers, for the importer's tests.

MCAP bags are written by the `mcap` library's ROS 2 writer (mcap-ros2-support), with
message definitions written out here by hand, as `ros2 bag record` stores them; sqlite3
bags by the `rosbags` writer. Neither shares code with the importer's reader.

A recording is described once, as a list of `Msg` (topic, type, receive time, fields as
nested dicts), and written in list order, which is the write order a recorder would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEPARATOR = "=" * 80 + "\n"
# Each ROS 2 type used here, as its .msg file says it.
_DEFINITIONS = {
    "builtin_interfaces/msg/Time": "int32 sec\nuint32 nanosec\n",
    "std_msgs/msg/Header": "builtin_interfaces/Time stamp\nstring frame_id\n",
    "std_msgs/msg/Float64": "float64 data\n",
    "geometry_msgs/msg/Point": "float64 x\nfloat64 y\nfloat64 z\n",
    "geometry_msgs/msg/Quaternion": "float64 x\nfloat64 y\nfloat64 z\nfloat64 w\n",
    "geometry_msgs/msg/Vector3": "float64 x\nfloat64 y\nfloat64 z\n",
    "geometry_msgs/msg/Pose": "geometry_msgs/Point position\ngeometry_msgs/Quaternion orientation\n",
    "geometry_msgs/msg/PoseStamped": "std_msgs/Header header\ngeometry_msgs/Pose pose\n",
    "geometry_msgs/msg/Twist": "geometry_msgs/Vector3 linear\ngeometry_msgs/Vector3 angular\n",
    "sensor_msgs/msg/JointState": (
        "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n"
    ),
    "sensor_msgs/msg/Image": (
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
        "uint32 step\nuint8[] data\n"
    ),
}
_DEPENDENCIES = {
    "std_msgs/msg/Header": ["builtin_interfaces/msg/Time"],
    "geometry_msgs/msg/Pose": ["geometry_msgs/msg/Point", "geometry_msgs/msg/Quaternion"],
    "geometry_msgs/msg/PoseStamped": ["std_msgs/msg/Header", "geometry_msgs/msg/Pose"],
    "geometry_msgs/msg/Twist": ["geometry_msgs/msg/Vector3"],
    "sensor_msgs/msg/JointState": ["std_msgs/msg/Header"],
    "sensor_msgs/msg/Image": ["std_msgs/msg/Header"],
}

FRONT = "/camera/front/color/image_raw"
POSE = "/franka_robot_state_broadcaster/current_pose"
FINGERS = "/franka_gripper/joint_states"
TARGET = "/target_pose"
WIDTH_COMMAND = "/franka_gripper/width_command"
TWIST = "/spacenav/twist"


def full_definition(msgtype: str) -> str:
    """The definition as rosbag2 stores it: the type's own, then each dependency."""
    seen: list[str] = []

    def visit(name: str) -> None:
        for dependency in _DEPENDENCIES.get(name, []):
            if dependency not in seen:
                seen.append(dependency)
                visit(dependency)

    visit(msgtype)
    text = _DEFINITIONS[msgtype]
    for dependency in seen:
        text += SEPARATOR + f"MSG: {dependency}\n" + _DEFINITIONS[dependency]
    return text


@dataclass
class Msg:
    topic: str
    msgtype: str
    receive_ns: int
    fields: dict[str, Any]


def header(stamp_s: float, frame: str = "fr3_link0") -> dict[str, Any]:
    sec = int(np.floor(stamp_s))
    return {"stamp": {"sec": sec, "nanosec": round((stamp_s - sec) * 1e9)}, "frame_id": frame}


def image(stamp_s: float, value: int, height: int = 24, width: int = 32) -> dict[str, Any]:
    pixel = np.array([value % 256, 0, 255], np.uint8)  # bgr8: blue 255, red = value
    return {
        "header": header(stamp_s),
        "height": height,
        "width": width,
        "encoding": "bgr8",
        "is_bigendian": 0,
        "step": width * 3,
        "data": np.tile(pixel, height * width).tobytes(),
    }


def pose(stamp_s: float, z: float) -> dict[str, Any]:
    return {
        "header": header(stamp_s),
        "pose": {"position": {"x": 0.5, "y": 0.0, "z": z}, "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}},
    }


def fingers(stamp_s: float, finger: float) -> dict[str, Any]:
    return {
        "header": header(stamp_s),
        "name": ["fr3_finger_joint1", "fr3_finger_joint2"],
        "position": [finger, finger],
        "velocity": [0.0, 0.0],
        "effort": [0.0, 0.0],
    }


def twist(vx: float) -> dict[str, Any]:
    return {"linear": {"x": vx, "y": 0.0, "z": 0.0}, "angular": {"x": 0.0, "y": 0.0, "z": 0.0}}


def franka_demo(
    count: int = 30,
    start_s: float = 1000.0,
    period_s: float = 0.05,
    receive_offset_s: float = 0.0,
    step_back_at: int | None = None,
    step_back_s: float = 0.0,
    unset_stamp_every: int | None = None,
    with_twist: bool = True,
    with_width_command: bool = True,
) -> list[Msg]:
    """A teleoperated demonstration: camera, measured pose, finger joint states (each
    finger 0.02 m: a 0.04 m opening), target pose, commanded width and the SpaceMouse.
    Header stamps are `start_s + i * period_s`, received `receive_offset_s` later (a
    wall-clock bag of sim-time stamps has a large offset). From message `step_back_at`
    on, the clock (header and receive) is `step_back_s` behind. Every
    `unset_stamp_every`-th pose has a header stamp of 0."""
    messages: list[Msg] = []
    for i in range(count):
        t = start_s + i * period_s - (step_back_s if step_back_at is not None and i >= step_back_at else 0.0)
        receive = round((t + receive_offset_s + 0.002) * 1e9)
        stamp_of_pose = 0.0 if unset_stamp_every and i % unset_stamp_every == 3 else t
        messages += [
            Msg(FRONT, "sensor_msgs/msg/Image", receive, image(t, i)),
            Msg(POSE, "geometry_msgs/msg/PoseStamped", receive, pose(stamp_of_pose, 0.4 + 0.001 * i)),
            Msg(FINGERS, "sensor_msgs/msg/JointState", receive, fingers(t, 0.02)),
            Msg(TARGET, "geometry_msgs/msg/PoseStamped", receive, pose(t, 0.41 + 0.001 * i)),
        ]
        if with_width_command:
            messages.append(Msg(WIDTH_COMMAND, "std_msgs/msg/Float64", receive, {"data": 0.08 if i < 20 else 0.0}))
        if with_twist:
            messages.append(Msg(TWIST, "geometry_msgs/msg/Twist", receive, twist(0.1)))
    return messages


def write_mcap(path: Path, messages: list[Msg], chunk_size: int = 4096, file_name: str = "bag_0.mcap") -> Path:
    """A rosbag2 directory holding one MCAP file (and no metadata.yaml, as a killed
    `ros2 bag record` leaves it), written by the mcap library's ROS 2 writer."""
    from mcap_ros2.writer import Writer

    path.mkdir(parents=True, exist_ok=True)
    file = path / file_name
    schemas: dict[str, Any] = {}
    with open(file, "wb") as handle:
        writer = Writer(handle, chunk_size=chunk_size)
        for message in messages:
            if message.msgtype not in schemas:
                schemas[message.msgtype] = writer.register_msgdef(message.msgtype, full_definition(message.msgtype))
            writer.write_message(message.topic, schemas[message.msgtype], message.fields, log_time=message.receive_ns)
        writer.finish()
    return file


def _rosbags_value(store: Any, kind: tuple[Any, Any], value: Any) -> Any:
    node, spec = kind
    if node == 1:  # a primitive
        return value
    if node == 2:  # a message
        return _rosbags_message(store, spec, value)
    (inner_node, inner_spec), _ = spec  # an array or a sequence
    if inner_node == 1 and inner_spec[0] != "string":
        dtype = np.uint8 if inner_spec[0] in ("uint8", "byte", "char") else np.dtype(inner_spec[0])
        data = np.frombuffer(value, np.uint8) if isinstance(value, bytes) else value
        return np.asarray(data, dtype=dtype)
    return [_rosbags_value(store, (inner_node, inner_spec), v) for v in value]


def _rosbags_message(store: Any, msgtype: str, fields: dict[str, Any]) -> Any:
    _, field_defs = store.fielddefs[msgtype]
    values = {name: _rosbags_value(store, kind, fields[name]) for name, kind in field_defs}
    return store.types[msgtype](**values)


def write_sqlite(path: Path, messages: list[Msg]) -> Path:
    """A rosbag2 sqlite3 bag (directory with metadata.yaml) written by the rosbags writer."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    connections: dict[str, Any] = {}
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        for message in messages:
            if message.topic not in connections:
                connections[message.topic] = writer.add_connection(message.topic, message.msgtype, typestore=store)
            data = store.serialize_cdr(_rosbags_message(store, message.msgtype, message.fields), message.msgtype)
            writer.write(connections[message.topic], message.receive_ns, bytes(data))
    return next(path.glob("*.db3"))


def write_bag(path: Path, storage: str, messages: list[Msg], **options: Any) -> Path:
    """Write `messages` as an MCAP (storage "mcap") or sqlite3 ("sqlite3") bag at `path`."""
    if storage == "mcap":
        write_mcap(path, messages, **options)
    else:
        write_sqlite(path, messages)
    return path


# The mapping docs/data_collection.md shows (its topics are the ones franka_demo writes).
MAPPING_YAML = (Path(__file__).resolve().parents[2] / "docs" / "rosbag_mapping_fr3.yaml").read_text()
