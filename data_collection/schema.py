"""What an episode store holds: schema identity, stream descriptions, image codecs, and the
small file-system primitives (atomic JSON writes, episode ids) the store is built on.

numpy only (zarr is imported lazily where a codec object is needed), so that
`data_collection.schema` and `policy.imaging` stay importable on the
policy node's Python 3.10 / NumPy 1.21 path.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # robots.description reads YAML: not on this module's import path
    from robots.description import RobotDescription

SCHEMA_NAME = "df-stack.episode-store"
# Bump on any change a reader of the old version would misread; `EpisodeStore.open`
# refuses every version it was not written for (no silent best effort on demonstrations).
SCHEMA_VERSION = 1

EPISODE_PREFIX = "ep_"
_EPISODE_RE = re.compile(r"^ep_(\d{6,})$")

IMAGE = "image"
VECTOR = "vector"

# Image codecs a dataset may choose at creation. Measured on this machine for one
# 640x480 rgb8 frame (write incl. zarr overhead): none 2.0 ms, zstd level 1 3.2 ms,
# blosc-lz4 with bit shuffle 4.5 ms; two 30 Hz cameras then cost 0.12-0.27 of a core.
# zstd-1 is the default: a better ratio than lz4 on camera images at a lower cost.
IMAGE_CODECS = ("zstd", "lz4", "none")


class StoreError(RuntimeError):
    """Base class of every error the episode store raises; the message says what to do."""


class SchemaMismatchError(StoreError):
    """The store was written by another schema or schema version."""


class EpisodeNotFoundError(StoreError, KeyError):
    """An episode id that the store does not hold."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class StoreLockedError(StoreError):
    """Another writer (recorder, repair, delete) holds the store."""


class DiskFullError(StoreError):
    """Not enough free space to record or commit safely."""


class InvalidSampleError(ValueError):
    """A sample offered to a stream was rejected; the message names the stream and the problem."""


@dataclass(frozen=True)
class StreamSpec:
    """One recorded stream: a camera (`kind="image"`) or a vector of floats (`kind="vector"`).

    `shape` is (height, width, channels) for images and (dim,) for vectors; `fields`
    names a vector's components (documentation for readers, checked against dim).
    `rate_hz` is the nominal rate, used for statistics, gap and stall detection.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    rate_hz: float
    encoding: str = ""
    fields: tuple[str, ...] = ()
    description: str = ""
    # Bounded buffer between the callback and the writer thread, in seconds of data at
    # the nominal rate. A full buffer drops the incoming sample and counts it.
    buffer_s: float = 2.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name or ""):
            raise ValueError(f"stream name must be letters, digits, '_' or '-', got {self.name!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "fields", tuple(self.fields))
        if self.kind == IMAGE:
            if len(self.shape) != 3 or self.shape[2] not in (1, 3) or min(self.shape) < 1:
                raise ValueError(f"image stream {self.name!r}: shape must be (height, width, 1 or 3), got {self.shape}")
            if not self.encoding:
                object.__setattr__(self, "encoding", "rgb8" if self.shape[2] == 3 else "mono8")
        elif self.kind == VECTOR:
            if len(self.shape) != 1 or self.shape[0] < 1:
                raise ValueError(f"vector stream {self.name!r}: shape must be (dim,), got {self.shape}")
            if self.fields and len(self.fields) != self.shape[0]:
                raise ValueError(f"vector stream {self.name!r}: {len(self.fields)} field names for dim {self.shape[0]}")
        else:
            raise ValueError(f"stream {self.name!r}: kind must be 'image' or 'vector', got {self.kind!r}")
        if not self.rate_hz > 0:
            raise ValueError(f"stream {self.name!r}: rate_hz must be > 0, got {self.rate_hz}")

    @property
    def is_image(self) -> bool:
        return self.kind == IMAGE

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def buffer_len(self) -> int:
        return max(16, int(np.ceil(self.buffer_s * self.rate_hz)))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        data["fields"] = list(self.fields)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamSpec:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known})


def fr3_stream_specs(
    camera_names: tuple[str, ...] = ("front", "wrist"),
    image_shape: tuple[int, int] | Mapping[str, tuple[int, int]] = (480, 640),
    camera_rate_hz: float | Mapping[str, float] = 30.0,
    state_rate_hz: float = 1000.0,
    gripper_rate_hz: float = 15.0,
    command_rate_hz: float = 100.0,
    teleop_rate_hz: float = 100.0,
    joint_command_rate_hz: float | None = None,
) -> list[StreamSpec]:
    """The streams of a (real or simulated) FR3 demonstration. The names are the contract
    with the simulator and the ROS recorder node; `mapping.FeatureMapping` turns them
    into the policy's proprioception and action vectors. `image_shape` and
    `camera_rate_hz` are one for every camera or a mapping camera -> its own.
    `joint_command_rate_hz` adds the commanded joint targets (what a joint-space policy
    learns; `dfstack collect-sim` records them beside the end-effector command)."""
    joints = [f"fr3_joint{i}" for i in range(1, 8)]

    def per_camera(value: Any, name: str) -> Any:
        return value[name] if isinstance(value, Mapping) else value

    streams: list[StreamSpec] = []
    for name in camera_names:
        height, width = per_camera(image_shape, name)
        rate = per_camera(camera_rate_hz, name)
        streams.append(StreamSpec(name, IMAGE, (height, width, 3), rate, "rgb8", description=f"{name} camera"))
    streams += [
        StreamSpec(
            "ee_pose",
            VECTOR,
            (7,),
            state_rate_hz,
            fields=("x", "y", "z", "qx", "qy", "qz", "qw"),
            description="measured end-effector pose in the base frame (m, quaternion xyzw)",
        ),
        StreamSpec(
            "joint_states",
            VECTOR,
            (14,),
            state_rate_hz,
            fields=tuple(f"{j}.position" for j in joints) + tuple(f"{j}.velocity" for j in joints),
            description="measured joint positions (rad) and velocities (rad/s)",
        ),
        StreamSpec(
            "gripper",
            VECTOR,
            (1,),
            gripper_rate_hz,
            fields=("width",),
            description="measured gripper opening width (m)",
        ),
        StreamSpec(
            "command",
            VECTOR,
            (8,),
            command_rate_hz,
            fields=("x", "y", "z", "qx", "qy", "qz", "qw", "gripper_width"),
            description="commanded end-effector target and gripper width (the action label)",
        ),
    ]
    if joint_command_rate_hz is not None:
        streams.append(
            StreamSpec(
                "joint_command",
                VECTOR,
                (8,),
                joint_command_rate_hz,
                fields=(*joints, "gripper_width"),
                description="commanded joint targets (rad) and gripper width (a joint-space action label)",
            )
        )
    streams += [
        StreamSpec(
            "teleop",
            VECTOR,
            (7,),
            teleop_rate_hz,
            fields=("vx", "vy", "vz", "wx", "wy", "wz", "gripper"),
            description="teleoperation input: twist (m/s, rad/s) and gripper input",
        ),
    ]
    return streams


def robot_stream_specs(robot: RobotDescription, command_rate_hz: float, teleop_rate_hz: float) -> list[StreamSpec]:
    """The streams of a demonstration on the robot a description describes: one per
    camera at its native size and rate, the state at the description's rates, the joint
    states' fields named by its arm's joints; the command and teleop input at the
    recorder's own control rate."""
    cameras = [
        StreamSpec(
            camera.name,
            IMAGE,
            (camera.height, camera.width, 3),
            camera.rate_hz,
            "rgb8",
            description=f"{camera.name} camera ({camera.topic})",
        )
        for camera in robot.cameras
    ]
    state = fr3_stream_specs(
        camera_names=(),
        state_rate_hz=robot.state.rate_hz,
        gripper_rate_hz=robot.state.gripper_rate_hz,
        command_rate_hz=command_rate_hz,
        teleop_rate_hz=teleop_rate_hz,
    )
    joints = robot.arm.joint_names  # 7 for every Franka arm; a Panda's names differ from the FR3's
    named = (*(f"{j}.position" for j in joints), *(f"{j}.velocity" for j in joints))
    return cameras + [
        StreamSpec.from_dict({**s.to_dict(), "fields": named}) if s.name == "joint_states" else s for s in state
    ]


@dataclass(frozen=True)
class StoreSettings:
    """Dataset-wide choices fixed at creation (stored in the root attributes)."""

    image_codec: str = "zstd"
    # Downsampled copies written next to every camera while recording, so the training
    # reader never decodes full-resolution frames (64x64 read: ~12 KB vs 900 KB decoded).
    policy_image_sizes: tuple[tuple[int, int], ...] = ((64, 64), (48, 48), (32, 32))
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image_codec not in IMAGE_CODECS:
            raise ValueError(f"image codec must be one of {IMAGE_CODECS}, got {self.image_codec!r}")
        sizes = tuple((int(h), int(w)) for h, w in self.policy_image_sizes)
        if any(h < 4 or w < 4 for h, w in sizes):
            raise ValueError(f"policy image sizes must be at least 4x4, got {sizes}")
        object.__setattr__(self, "policy_image_sizes", sizes)


def image_compressors(codec: str) -> Any:
    """zarr v3 compressor(s) for a codec name (lazy zarr import)."""
    from zarr.codecs import BloscCodec, ZstdCodec

    if codec == "zstd":
        return (ZstdCodec(level=1),)
    if codec == "lz4":
        return (BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),)
    if codec == "none":
        return None
    raise ValueError(f"unknown image codec {codec!r}; expected one of {IMAGE_CODECS}")


def lowres_key(size: tuple[int, int]) -> str:
    return f"lowres_{int(size[0])}x{int(size[1])}"


def episode_name(number: int) -> str:
    return f"{EPISODE_PREFIX}{number:06d}"


def episode_number(name: str) -> int | None:
    match = _EPISODE_RE.match(name)
    return int(match.group(1)) if match else None


def normalize_episode_id(episode: str | int) -> str:
    """Accept 'ep_000012', '12' or 12."""
    if isinstance(episode, (int, np.integer)):
        return episode_name(int(episode))
    text = str(episode).strip()
    if text.isdigit():
        return episode_name(int(text))
    if episode_number(text) is None:
        raise ValueError(f"episode id must look like 'ep_000012' or be a number, got {episode!r}")
    return text


def software_version() -> str:
    try:
        from importlib.metadata import version

        return f"df-stack {version('df-stack')}"
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        return "df-stack (unknown version)"


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new entry in `path` durable across power loss (no-op where
    directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write a file so that any reader (or a process killed at any instant) sees either
    the old content or the new one, never a mix: temp file in the same directory,
    fsync, os.replace."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if durable:
        fsync_dir(path.parent)


def atomic_write_json(path: str | Path, payload: Any, durable: bool = True) -> None:
    atomic_write_bytes(path, json.dumps(payload, indent=2, default=_json_default).encode(), durable)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in episode metadata")


def read_json(path: str | Path) -> Any:
    with open(path, "rb") as handle:
        return json.loads(handle.read())


def group_document(attributes: dict[str, Any]) -> dict[str, Any]:
    """A zarr v3 group metadata document (zarr.json) with the given attributes. The store
    writes group metadata itself so that it can do it atomically and with fsync."""
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def json_safe(value: Any) -> Any:
    """Round-trip through JSON so metadata never holds numpy scalars or tuples."""
    return json.loads(json.dumps(value, default=_json_default))


# Fault injection for crash tests: a process started with DF_STORE_CRASH_AT=<point>
# SIGKILLs itself when it reaches that point of a commit/delete/repair sequence, so a
# test can prove every step is safe, not just the ones a random kill happens to hit.
_CRASH_AT = os.environ.get("DF_STORE_CRASH_AT", "")


def crash_point(name: str) -> None:
    if _CRASH_AT and name == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)
