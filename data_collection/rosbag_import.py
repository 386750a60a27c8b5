"""Import rosbag2 recordings (MCAP or sqlite3) into the episode store.

A mapping says which topic becomes which stream (and through which converter), and which
streams feed training (`robots.embodiment.StreamNames`: the measured state and gripper
width, the command and, when the command carries no width, the commanded width). It is a
YAML file (`load_bag_mapping`, format in docs/data_collection.md) or built in Python:

    mapping = load_bag_mapping("franka_bag.yaml")
    result = import_rosbag("demo_bag", store, mapping, task="swap fruit")
    result.episode_ids        # one per timeline of the bag (more than one after a clock step)

The messages go through the same Recorder as live recording (same validation, marking and
atomic commit), with back-pressure instead of drops. Messages are read in the order they
were written (data_collection.rosbag_source), so a clock that steps back is seen: each
timeline becomes its own episode, marked. Stamps are the header stamps (the sensor time)
unless `stamps: receive`; a stream without header stamps uses the receive time only when
the header stamps are on the same clock. The recorder's clock, which notices streams that
stop, is the newest stamp fed, so a bag of sim-time stamps is judged in sim time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from policy.imaging import decode_ros_image
from robots.embodiment import POSE_FIELDS, StreamNames
from robots.franka import FRANKA_ARMS

from .recorder import CommitResult, Recorder, RecorderConfig
from .rosbag_source import BagError, BagSource, open_bag
from .schema import IMAGE, VECTOR, StoreError, StreamSpec
from .store import EpisodeStore

log = logging.getLogger("data_collection.rosbag_import")

CONVERTERS = (
    "image",
    "compressed_image",
    "pose",
    "joint_state",
    "joint_positions",
    "gripper_width",
    "twist",
    "vector",
)
DEFAULT_CONVERTER = {
    "sensor_msgs/msg/Image": "image",
    "sensor_msgs/msg/CompressedImage": "compressed_image",
    "geometry_msgs/msg/PoseStamped": "pose",
    "geometry_msgs/msg/Pose": "pose",
    "sensor_msgs/msg/JointState": "joint_state",
    "geometry_msgs/msg/Twist": "twist",
    "geometry_msgs/msg/TwistStamped": "twist",
    "std_msgs/msg/Float64": "vector",
    "std_msgs/msg/Float32": "vector",
    "std_msgs/msg/Float64MultiArray": "vector",
    "std_msgs/msg/Float32MultiArray": "vector",
}
STAMP_SOURCES = ("header", "receive")
# A stamp more than this behind the newest one already read is a clock that stepped back
# (NTP, a restarted simulation), not latency: a new timeline, so a new episode.
DEFAULT_CLOCK_STEP_S = 1.0
# Header stamps within this of the receive times are on the same clock (latency is
# milliseconds to a second); further off they are another clock (sim time in a wall-clock
# bag, a camera PC without time sync).
SAME_CLOCK_S = 60.0
FINGER_JOINTS = frozenset(name for arm in FRANKA_ARMS.values() for name in arm.finger_joint_names)


class BagMappingError(StoreError):
    """A mapping (file) that cannot be used; the message names the key and what was expected."""


class DuplicateBagError(StoreError):
    """The store already holds episodes imported from a bag with the same content."""


@dataclass(frozen=True)
class TopicMapping:
    """topic -> stream, with the converter chosen from the message type unless given (one
    of CONVERTERS). A sensor_msgs/JointState topic that feeds the gripper stream, or holds
    only finger joints, defaults to `gripper_width`: the sum of both fingers' positions."""

    topic: str
    stream: str
    converter: str | None = None

    def __post_init__(self) -> None:
        if self.converter is not None and self.converter not in CONVERTERS:
            raise BagMappingError(
                f"topic {self.topic}: converter {self.converter!r} is unknown; expected one of {list(CONVERTERS)}"
            )
        StreamSpec(self.stream, VECTOR, (1,), 1.0)  # the stream name's own check


@dataclass(frozen=True)
class BagMapping:
    """Everything an import needs besides the bag: topics, the training stream names
    (recorded in each episode's metadata as `training_streams`), which stamps to use, the
    clock step that splits timelines, and the task."""

    topics: tuple[TopicMapping, ...]
    streams: StreamNames | None = None
    stamps: str = "header"
    clock_step_s: float = DEFAULT_CLOCK_STEP_S
    task: str = ""
    source: str = "<mapping>"

    def __post_init__(self) -> None:
        if not self.topics:
            raise BagMappingError(f"{self.source}: no topics to import; map at least one topic to a stream")
        if self.stamps not in STAMP_SOURCES:
            raise BagMappingError(f"{self.source}: stamps must be one of {list(STAMP_SOURCES)}, got {self.stamps!r}")
        if not self.clock_step_s > 0:
            raise BagMappingError(f"{self.source}: clock_step_s must be > 0, got {self.clock_step_s}")
        topics = [m.topic for m in self.topics]
        repeated = sorted({t for t in topics if topics.count(t) > 1})
        if repeated:
            raise BagMappingError(f"{self.source}: topics {repeated} are mapped more than once")
        streams = [m.stream for m in self.topics]
        shared = sorted({s for s in streams if streams.count(s) > 1})
        if shared:
            raise BagMappingError(f"{self.source}: streams {shared} are fed by more than one topic; give each its own")
        if self.streams is not None:
            fed = set(streams)
            unfed = {role: name for role, name in vars(self.streams).items() if name is not None and name not in fed}
            if unfed:
                listed = ", ".join(f"streams.{role}: {name!r}" for role, name in unfed.items())
                raise BagMappingError(f"{self.source}: {listed} is fed by no topic; the topics feed {sorted(fed)}")

    def topic_of(self, stream: str) -> TopicMapping | None:
        return next((m for m in self.topics if m.stream == stream), None)

    def with_overrides(self, **changes: Any) -> BagMapping:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: v for k, v in changes.items() if v is not None})
        return BagMapping(**values)


def bag_mapping(topics: Mapping[str, str] | Iterable[TopicMapping] | BagMapping) -> BagMapping:
    """A BagMapping from what callers hand over: a mapping as it is, {topic: stream} or a
    list of TopicMapping."""
    if isinstance(topics, BagMapping):
        return topics
    if isinstance(topics, Mapping):
        return BagMapping(tuple(TopicMapping(t, s) for t, s in topics.items()))
    return BagMapping(tuple(topics))


_MAPPING_KEYS = ("topics", "streams", "stamps", "clock_step_s", "task")
_STREAM_ROLES = tuple(f.name for f in fields(StreamNames))


def bag_mapping_from_dict(data: Any, source: str = "<mapping>") -> BagMapping:
    if not isinstance(data, Mapping):
        raise BagMappingError(f"{source}: a bag mapping is a mapping with keys {list(_MAPPING_KEYS)}, got {data!r}")
    unknown = sorted(set(data) - set(_MAPPING_KEYS))
    if unknown:
        raise BagMappingError(f"{source}: unknown keys {unknown}; a bag mapping has {list(_MAPPING_KEYS)}")
    raw_topics = data.get("topics")
    if not isinstance(raw_topics, Mapping) or not raw_topics:
        raise BagMappingError(
            f"{source}: 'topics' must map each topic to a stream name or to {{stream: NAME, converter: KIND}}"
        )
    topics = []
    for topic, entry in raw_topics.items():
        if isinstance(entry, str):
            try:
                topics.append(TopicMapping(str(topic), entry))
            except ValueError as error:
                raise BagMappingError(f"{source}: topics.{topic}: {error}") from error
            continue
        if not isinstance(entry, Mapping) or "stream" not in entry or set(entry) - {"stream", "converter"}:
            raise BagMappingError(
                f"{source}: topics.{topic} must be a stream name or {{stream: NAME, converter: KIND}}, got {entry!r}"
            )
        try:
            topics.append(TopicMapping(str(topic), str(entry["stream"]), entry.get("converter")))
        except (ValueError, BagMappingError) as error:
            raise BagMappingError(f"{source}: topics.{topic}: {error}") from error
    streams = None
    if data.get("streams") is not None:
        raw = data["streams"]
        if not isinstance(raw, Mapping) or set(raw) - set(_STREAM_ROLES) or not {"state", "command"} <= set(raw):
            raise BagMappingError(
                f"{source}: 'streams' names the streams training reads: state and command (required), gripper "
                f"and command_gripper (optional); got {raw!r}"
            )
        streams = StreamNames(**{role: (None if v is None else str(v)) for role, v in raw.items()})
    try:
        return BagMapping(
            tuple(topics),
            streams,
            str(data.get("stamps", "header")),
            float(data.get("clock_step_s", DEFAULT_CLOCK_STEP_S)),
            str(data.get("task", "")),
            source,
        )
    except (TypeError, ValueError) as error:
        raise BagMappingError(f"{source}: {error}") from error


def load_bag_mapping(path: str | Path) -> BagMapping:
    """Read a mapping file (YAML); BagMappingError names the file and the key."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise BagMappingError(f"bag mapping {path} cannot be read: {error}") from error
    except yaml.YAMLError as error:
        raise BagMappingError(f"bag mapping {path} is not valid YAML: {error}") from error
    return bag_mapping_from_dict(data, str(path))


# -- converters --------------------------------------------------------------------------------


def finger_width(names: list[str], positions: np.ndarray) -> float:
    """The gripper's opening: the sum of both fingers' positions (ANCHORS.md), from a
    JointState that may also hold other joints."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(names) == len(positions) and names:
        fingers = [i for i, n in enumerate(names) if n in FINGER_JOINTS] or [
            i for i, n in enumerate(names) if "finger" in n
        ]
        if fingers:
            return float(positions[fingers].sum())
    if len(positions) in (1, 2) and not names:
        return float(positions.sum())
    raise ValueError(
        f"a gripper width is the sum of the finger joints' positions, but joints {names} have no finger joint"
    )


def _pose(message: Any) -> np.ndarray:
    pose = getattr(message, "pose", message)
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64)


def _twist(message: Any) -> np.ndarray:
    twist = getattr(message, "twist", message)
    linear, angular = twist.linear, twist.angular
    return np.array([linear.x, linear.y, linear.z, angular.x, angular.y, angular.z], dtype=np.float64)


def _compressed(message: Any) -> np.ndarray:
    import imageio.v3 as iio

    try:
        image = np.asarray(iio.imread(bytes(message.data)))
    except Exception as error:  # imageio raises plugin-specific errors for undecodable bytes
        raise ValueError(f"compressed image ({message.format}) cannot be decoded: {error}") from error
    if image.ndim == 2:
        image = image[..., None]
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def convert(converter: str, message: Any, dim: int | None = None) -> np.ndarray:
    """One message as a stream sample (an image, or a vector of floats). ValueError when the
    message cannot be one (the caller rejects and notes it)."""
    if converter == "image":
        return decode_ros_image(message.encoding, message.height, message.width, message.step, message.data)
    if converter == "compressed_image":
        return _compressed(message)
    if converter == "pose":
        return _pose(message)
    if converter == "twist":
        return _twist(message)
    if converter == "gripper_width":
        return np.array([finger_width(list(message.name), message.position)])
    if converter == "joint_positions":
        return np.asarray(message.position, dtype=np.float64)
    if converter == "joint_state":
        position = np.asarray(message.position, dtype=np.float64)
        velocity = np.asarray(message.velocity, dtype=np.float64)
        if len(velocity) != len(position):
            raise ValueError(f"joint state has {len(position)} positions but {len(velocity)} velocities")
        return np.concatenate([position, velocity])
    data = getattr(message, "data", None)
    if data is None:
        raise ValueError(f"{type(message).__name__} has no 'data' field for the vector converter")
    return np.atleast_1d(np.asarray(data, dtype=np.float64))


def _fields(converter: str, message: Any, dim: int) -> tuple[str, ...]:
    if converter == "pose":
        return POSE_FIELDS
    if converter == "twist":
        return ("vx", "vy", "vz", "wx", "wy", "wz")
    if converter == "gripper_width":
        return ("width",)
    if converter == "joint_positions":
        return tuple(f"{n}.position" for n in message.name) if len(message.name) == dim else ()
    if converter == "joint_state":
        names = list(message.name)
        named = (*(f"{n}.position" for n in names), *(f"{n}.velocity" for n in names))
        return named if len(named) == dim else ()
    return ()


# -- planning ----------------------------------------------------------------------------------


@dataclass
class _TopicPlan:
    mapping: TopicMapping
    msgtype: str
    converter: str
    spec: StreamSpec
    receive_s: list[float] = field(default_factory=list)
    header_s: list[float | None] = field(default_factory=list)  # None: the type has no header
    stamp_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # NaN: left out
    segment: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class _Plan:
    topics: dict[str, _TopicPlan]
    order: list[str]  # topic of each message, in write order
    segments: int
    segment_starts: list[float]  # earliest stamp of each timeline
    steps: list[str]  # one line per clock step
    stamp_notes: dict[str, tuple[str, str]]  # stream -> (kind, message) noted on its episode
    timebase: str


def _describe(
    source: BagSource, mapping: TopicMapping, raw: bytes | None, template: StreamSpec | None, roles: StreamNames | None
) -> tuple[str, StreamSpec]:
    bag_topic = source.topics[mapping.topic]
    message = source.deserialize(raw, bag_topic.msgtype) if raw is not None else None
    converter = mapping.converter or _default_converter(bag_topic.msgtype, mapping.stream, message, roles)
    if converter is None:
        raise BagMappingError(
            f"topic {mapping.topic}: no converter for message type {bag_topic.msgtype}; give one of {list(CONVERTERS)}"
        )
    if message is None:
        if template is None:
            raise BagError(
                f"bag {source.path}: topic {mapping.topic} has no messages, so stream {mapping.stream!r} cannot be "
                "described; leave the topic out or give its stream spec"
            )
        return converter, template
    try:
        value = convert(converter, message)
    except (ValueError, AttributeError, TypeError) as error:
        raise BagError(
            f"bag {source.path}: topic {mapping.topic} ({bag_topic.msgtype}) cannot be converted with "
            f"{converter!r}: {error}"
        ) from error
    if template is not None:
        if not template.is_image and template.shape != value.shape:
            raise BagMappingError(
                f"topic {mapping.topic}: converter {converter!r} makes {value.shape[0]} values, but stream "
                f"{template.name!r} holds {template.shape[0]} ({', '.join(template.fields)}); nothing is filled in "
                "for missing values: map the topic to a stream of its own size"
            )
        return converter, template
    if converter in ("image", "compressed_image"):
        return converter, StreamSpec(mapping.stream, IMAGE, value.shape, 1.0)
    return converter, StreamSpec(
        mapping.stream, VECTOR, value.shape, 1.0, fields=_fields(converter, message, value.shape[0])
    )


def _default_converter(msgtype: str, stream: str, message: Any, roles: StreamNames | None) -> str | None:
    if msgtype == "sensor_msgs/msg/JointState":
        gripper_streams = {roles.gripper, roles.command_gripper} if roles else {"gripper"}
        names = list(getattr(message, "name", []) or [])
        if stream in gripper_streams or (names and all("finger" in n for n in names)):
            return "gripper_width"
    return DEFAULT_CONVERTER.get(msgtype)


def _check_roles(mapping: BagMapping, plans: dict[str, _TopicPlan]) -> None:
    """Refuse, before anything is written, training stream names the streams cannot feed."""
    roles = mapping.streams
    if roles is None:
        return
    spec = {plan.spec.name: plan for plan in plans.values()}
    problems = []
    for role in ("gripper", "command_gripper"):
        name = getattr(roles, role)
        plan = spec.get(name) if name else None
        if plan is not None and plan.spec.shape != (1,):
            problems.append(
                f"streams.{role} {name!r} (topic {plan.mapping.topic}, converter {plan.converter!r}) has "
                f"{plan.spec.shape[0]} values; a gripper stream holds one width, the sum of both fingers "
                "(converter gripper_width for a JointState)"
            )
    command = spec.get(roles.command)
    if command is not None and roles.command_gripper is None and command.spec.shape[0] <= len(POSE_FIELDS):
        problems.append(
            f"streams.command {roles.command!r} (topic {command.mapping.topic}) has {command.spec.shape[0]} values, "
            "no gripper width after the arm's; name the stream with the commanded width as streams.command_gripper "
            "(a width topic, or the measured 'gripper' stream to learn the measured width)"
        )
    if problems:
        raise BagMappingError(f"{mapping.source}: " + "; ".join(problems))


def _rate(stamps: np.ndarray) -> float:
    steps = np.diff(stamps[np.isfinite(stamps)])
    steps = steps[steps > 0]
    return round(float(1.0 / np.median(steps)), 3) if len(steps) else 1.0


def _plan(source: BagSource, mapping: BagMapping, templates: dict[str, StreamSpec]) -> _Plan:
    absent = [m.topic for m in mapping.topics if m.topic not in source.topics]
    if absent:
        raise BagError(f"bag {source.path} has no topics {absent}; it has {sorted(source.topics)}")
    plans: dict[str, _TopicPlan] = {}
    for topic_mapping in mapping.topics:
        topic = topic_mapping.topic
        converter, spec = _describe(
            source, topic_mapping, source.first.get(topic), templates.get(topic_mapping.stream), mapping.streams
        )
        receive = [ns * 1e-9 for ns in source.receive_ns.get(topic, [])]
        header = [None if ns is None else ns * 1e-9 for ns in source.header_stamps(topic)]
        plans[topic] = _TopicPlan(topic_mapping, source.topics[topic].msgtype, converter, spec, receive, header)
    wanted = set(plans)
    order = [topic for topic in source.order if topic in wanted]
    _check_roles(mapping, plans)
    timebase, notes = _assign_stamps(source, mapping, plans)
    segments, steps = _split_timelines(mapping, plans, order)
    starts = [
        min((float(np.nanmin(p.stamp_s[p.segment == k])) for p in plans.values() if _has(p, k)), default=0.0)
        for k in range(segments)
    ]
    for plan in plans.values():
        rate = plan.spec.rate_hz if plan.spec.name in templates else _rate(plan.stamp_s)
        plan.spec = StreamSpec.from_dict({**plan.spec.to_dict(), "rate_hz": rate})
    return _Plan(plans, order, segments, starts, steps, notes, timebase)


def _has(plan: _TopicPlan, segment: int) -> bool:
    return bool(np.isfinite(plan.stamp_s[plan.segment == segment]).any())


def _assign_stamps(
    source: BagSource, mapping: BagMapping, plans: dict[str, _TopicPlan]
) -> tuple[str, dict[str, tuple[str, str]]]:
    """Each message's stamp (s), in one timebase for the whole episode."""
    notes: dict[str, tuple[str, str]] = {}
    if mapping.stamps == "receive":
        for plan in plans.values():
            plan.stamp_s = np.asarray(plan.receive_s, dtype=np.float64)
        return "receive time (bag)", notes
    offsets = [
        r - h
        for plan in plans.values()
        for r, h in zip(plan.receive_s, plan.header_s, strict=True)
        if h is not None and h != 0
    ]
    offset = float(np.median(offsets)) if offsets else 0.0
    same_clock = abs(offset) <= SAME_CLOCK_S
    for plan in plans.values():
        receive = np.asarray(plan.receive_s, dtype=np.float64)
        if not plan.header_s or plan.header_s[0] is None:  # a type without header stamps
            if not same_clock:
                raise BagError(
                    f"bag {source.path}: topic {plan.mapping.topic} ({plan.msgtype}) carries no header stamp, and "
                    f"the bag's header stamps are on another clock than its receive times (receive - header = "
                    f"{offset:.3f} s: sim time in a wall-clock bag?), so its samples cannot be put on the same "
                    "timeline; import with stamps: receive (--stamps receive), or leave the topic out"
                )
            plan.stamp_s = receive
            continue
        header = np.asarray(plan.header_s, dtype=np.float64)
        unset = header == 0
        stamps = header.copy()
        if unset.any():
            what = (
                f"stream {plan.spec.name!r}: {int(unset.sum())} of {len(header)} messages on {plan.mapping.topic} "
                "have an unset header stamp (0)"
            )
            if same_clock:
                stamps[unset] = receive[unset]
                notes[plan.spec.name] = ("unset-stamp", f"{what}: they are stamped with their receive time")
            else:
                stamps[unset] = np.nan
                notes[plan.spec.name] = (
                    "unset-stamp",
                    f"{what}, and the receive time is on another clock (receive - header = {offset:.3f} s): "
                    "those samples were left out",
                )
        plan.stamp_s = stamps
    if not offsets:
        return "receive time (no header stamps)", notes
    return ("header stamps" + ("" if same_clock else f" (another clock than the bag's: offset {offset:.3f} s)")), notes


def _split_timelines(mapping: BagMapping, plans: dict[str, _TopicPlan], order: list[str]) -> tuple[int, list[str]]:
    """Split the bag where its clock stepped back by more than clock_step_s (in write
    order): each message's segment index, the segment count and one line per step."""
    cursor = dict.fromkeys(plans, 0)
    segment, newest = 0, -np.inf
    steps: list[str] = []
    for plan in plans.values():
        plan.segment = np.zeros(len(plan.stamp_s), np.int64)
    for topic in order:
        plan = plans[topic]
        index = cursor[topic]
        cursor[topic] += 1
        stamp = plan.stamp_s[index]
        if np.isfinite(stamp):
            if stamp < newest - mapping.clock_step_s:
                steps.append(
                    f"the clock stepped back by {newest - stamp:.3f} s (from {newest:.3f} to {stamp:.3f}, topic "
                    f"{topic}): the bag holds more than one timeline; each is imported as its own episode"
                )
                segment += 1
                newest = stamp
            newest = max(newest, stamp)
        plan.segment[index] = segment
    return segment + 1, steps


# -- importing ---------------------------------------------------------------------------------


@dataclass
class BagImport:
    """What importing one bag did: the episodes it committed (one per timeline)."""

    bag: Path
    results: list[CommitResult]
    fingerprint: str
    problems: list[str] = field(default_factory=list)

    @property
    def episode_ids(self) -> list[str]:
        return [r.episode_id for r in self.results if r.committed]

    @property
    def marked(self) -> bool:
        return any(r.problems for r in self.results)

    def describe(self) -> str:
        episodes = ", ".join(
            f"{r.episode_id}" + (f" (marked: {len(r.problems)} problem(s))" if r.problems else "")
            for r in self.results
            if r.committed
        )
        return f"{self.bag}: imported as {episodes or 'nothing (no samples)'}"


def imported_fingerprints(store: EpisodeStore) -> dict[str, list[str]]:
    """fingerprint -> episode ids, for every episode imported from a bag."""
    found: dict[str, list[str]] = {}
    for episode_id in store.episode_ids():
        source = store.metadata(episode_id).get("source") or {}
        if isinstance(source, dict) and source.get("fingerprint"):
            found.setdefault(str(source["fingerprint"]), []).append(episode_id)
    return found


def import_rosbag(
    bag: str | Path,
    store: EpisodeStore,
    topics: Mapping[str, str] | Iterable[TopicMapping] | BagMapping,
    streams: list[StreamSpec] | None = None,
    task: str | None = None,
    metadata: dict[str, Any] | None = None,
    stamp_source: str | None = None,
    success: bool | None = None,
    progress: bool = False,
    allow_duplicate: bool = False,
) -> BagImport:
    """Import one rosbag2 recording (a directory, with or without metadata.yaml, or one
    .mcap / .db3 file): one episode per timeline.

    topics: a BagMapping, {topic: stream} or TopicMapping list. streams: specs to record
    into (by stream name; their sizes must be what the converters make); streams not given
    are described from the bag (image size and fields from the first message, rate from
    the median interval). task, stamp_source: override the mapping's. Raises BagError for
    a bag that cannot be read, BagMappingError for a mapping that does not fit it,
    DuplicateBagError for a bag already in the store (unless allow_duplicate); nothing is
    written then."""
    mapping = bag_mapping(topics).with_overrides(stamps=stamp_source, task=task)
    source = open_bag(bag)
    if not allow_duplicate:
        existing = imported_fingerprints(store).get(source.fingerprint)
        if existing:
            raise DuplicateBagError(
                f"bag {source.path} is already in {store.path} as {', '.join(existing)} (same content, sha256 "
                f"{source.fingerprint[:12]}); not imported again (allow_duplicate / --allow-duplicate to import it "
                "anyway)"
            )
    plan = _plan(source, mapping, {s.name: s for s in (streams or [])})
    return _record(source, store, mapping, plan, metadata or {}, success, progress)


def _record(
    source: BagSource,
    store: EpisodeStore,
    mapping: BagMapping,
    plan: _Plan,
    metadata: dict[str, Any],
    success: bool | None,
    progress: bool,
) -> BagImport:
    newest = [-np.inf]
    specs = [p.spec for p in plan.topics.values()]
    # Health checks often: an offline import runs much faster than the recording did.
    config = RecorderConfig(block_when_full=True, min_free_bytes=0, health_check_period_s=0.02)
    recorder = Recorder(store, specs, config, clock=lambda: newest[0])
    by_stream_note = dict(plan.stamp_notes)
    results: list[CommitResult] = []
    cursor = dict.fromkeys(plan.topics, 0)
    segment = -1

    def start(number: int) -> None:
        # The recorder's clock is the newest stamp fed (it notices streams that stop in the
        # bag's own time, sim time included), from the timeline's earliest stamp on.
        newest[0] = plan.segment_starts[number]
        recorder.start_episode(
            task=mapping.task,
            metadata={
                "source": {
                    "rosbag": str(source.path),
                    "storage": source.storage,
                    "files": [f.name for f in source.files],
                    "metadata_yaml": source.has_metadata_file,
                    "fingerprint": source.fingerprint,
                    "timeline": number,
                    "timelines": plan.segments,
                    "mapping": mapping.source,
                },
                "stamp_timebase": plan.timebase,
                **({"training_streams": vars(mapping.streams)} if mapping.streams else {}),
                **metadata,
            },
        )
        for step in plan.steps:
            recorder.note_problem("*", "clock-step", step)
        for problem in source.problems:
            recorder.note_problem("*", "damaged-bag", f"bag {source.path}: {problem}")

    def stop() -> None:
        complete = not source.problems or segment < plan.segments - 1
        results.append(recorder.stop_episode(success=success, metadata={"complete": complete}))

    iterator: Any = source.messages(set(plan.topics))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(plan.order), desc=f"import {source.path.name}", unit="msg")
    try:
        for topic, _, raw in iterator:
            topic_plan = plan.topics[topic]
            index = cursor[topic]
            cursor[topic] += 1
            if topic_plan.segment[index] != segment:
                if segment >= 0:
                    stop()
                segment = int(topic_plan.segment[index])
                start(segment)
            name = topic_plan.spec.name
            stamp = float(topic_plan.stamp_s[index])
            if name in by_stream_note and (topic_plan.header_s[index] == 0):
                recorder.note_problem(name, *by_stream_note[name])
            if not np.isfinite(stamp):
                continue
            newest[0] = max(newest[0], stamp)
            try:
                value = convert(topic_plan.converter, source.deserialize(raw, topic_plan.msgtype))
            except Exception as error:  # an undecodable message: reject, mark, go on
                recorder.note_problem(
                    name, "decode", f"stream {name!r}: message at t={stamp:.3f} could not be converted ({error})"
                )
                continue
            if topic_plan.spec.is_image:
                recorder.add(name, stamp, value, encoding="rgb8" if value.shape[2] == 3 else "mono8")
            else:
                recorder.add(name, stamp, value)
        if segment >= 0:
            stop()
    except BaseException:
        if recorder.state != "idle":
            recorder.discard_episode()
        raise
    outcome = BagImport(source.path, results, source.fingerprint, list(source.problems))
    log.info(outcome.describe())
    return outcome
