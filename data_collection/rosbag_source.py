"""Reading rosbag2 recordings as they were written: MCAP (through the `mcap` library) and
sqlite3 (through the standard library), in write order, tolerant of what a killed
`ros2 bag record` leaves behind.

Why not a reader that sorts by time: a clock that steps back while recording is only
visible in the order the messages were written. Sorting by receive time (what a seeking
reader does) interleaves the two timelines into one that looks monotonic.

What a killed recorder leaves, and what is done with it:

* no `metadata.yaml` (it is written at the end): the storage files of the directory are
  read as they are, in the order of their split index;
* an MCAP file cut short (no summary, a chunk cut in half): every record before the cut is
  read, the rest is reported as lost (`BagSource.problems`);
* a 0-byte file, a directory without storage files, a file that is not a bag: `BagError`
  naming the file and what was expected.

Messages are deserialised with `rosbags` (a typestore built from the definitions the bag
carries, falling back on ROS 2 Jazzy's for types it does not describe).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .schema import StoreError

MCAP_SUFFIX = ".mcap"
SQLITE_SUFFIX = ".db3"
STORAGE_SUFFIXES = (MCAP_SUFFIX, SQLITE_SUFFIX)
# `ros2 bag record --compression-mode file` leaves one of these per storage file.
FILE_COMPRESSION_SUFFIXES = (".zstd", ".lz4")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # a message compressed with `--compression-mode message`
HEADER_TYPE = "std_msgs/msg/Header"


class BagError(StoreError):
    """A recording that cannot be read (empty, not a bag, damaged before its first message);
    the message names the file and what was expected."""


@dataclass
class BagTopic:
    """One topic of a bag: its type, its definition as the bag carries it, and how many
    messages of it could be read."""

    name: str
    msgtype: str
    definition: str = ""
    definition_format: str = ""  # "ros2msg", "ros2idl" or "" (none in the bag)
    count: int = 0


@dataclass
class BagSource:
    """An opened recording: its storage files, topics, content fingerprint and what was
    found damaged. `messages()` yields (topic, receive time ns, CDR bytes) in write order."""

    path: Path
    storage: str  # "mcap" or "sqlite3"
    files: list[Path]
    topics: dict[str, BagTopic] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what was lost (a file cut short)
    fingerprint: str = ""  # sha256 of the storage files' bytes
    has_metadata_file: bool = False
    # The scan's index of every message, in write order: its topic, its receive time and
    # (for a stamped type) its header stamp, read from the first bytes without
    # deserialising; and each topic's first message (to describe its stream).
    order: list[str] = field(default_factory=list)
    receive_ns: dict[str, list[int]] = field(default_factory=dict)
    header_ns: dict[str, list[int | None]] = field(default_factory=dict)
    first: dict[str, bytes] = field(default_factory=dict)
    _typestore: Any = None

    @property
    def message_count(self) -> int:
        return sum(topic.count for topic in self.topics.values())

    def messages(self, topics: set[str] | None = None) -> Iterator[tuple[str, int, bytes]]:
        """Every readable message (of `topics`, default all) in the order it was written."""
        for file in self.files:
            if self.storage == "mcap":
                yield from _mcap_messages(file, topics)
            else:
                yield from _sqlite_messages(file, topics)

    @property
    def typestore(self) -> Any:
        if self._typestore is None:
            self._typestore = _typestore(self)
        return self._typestore

    def _index(self, topic: str, receive_ns: int, raw: bytes) -> None:
        self.topics[topic].count += 1
        self.order.append(topic)
        self.receive_ns.setdefault(topic, []).append(receive_ns)
        self.header_ns.setdefault(topic, []).append(cdr_header_stamp_ns(self.decompressed(raw)))
        self.first.setdefault(topic, raw)

    def header_stamps(self, topic: str) -> list[int | None]:
        """Each message's header stamp (ns) in write order; None for a type without a header."""
        if not self.has_header(self.topics[topic].msgtype):
            return [None] * self.topics[topic].count
        return self.header_ns.get(topic, [])

    def has_header(self, msgtype: str) -> bool:
        definition = self.typestore.fielddefs.get(msgtype)
        if not definition or not definition[1]:
            return False
        name, (_, kind) = definition[1][0]
        return name == "header" and kind == HEADER_TYPE

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self.typestore.deserialize_cdr(self.decompressed(raw), msgtype)

    @staticmethod
    def decompressed(raw: bytes) -> bytes:
        """A message's CDR bytes (bags recorded with `--compression-mode message` hold
        each message zstd-compressed; the magic number tells, with or without metadata.yaml)."""
        if raw[:4] == ZSTD_MAGIC:
            import zstandard

            return zstandard.ZstdDecompressor().decompress(raw)
        return raw


def open_bag(path: str | Path) -> BagSource:
    """Open a rosbag2 directory (with or without `metadata.yaml`), or one `.mcap` / `.db3`
    file, and scan it once: topics, message counts, damage, fingerprint."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    files, has_metadata = _storage_files(path)
    kinds = {file.suffix for file in files}
    if len(kinds) > 1:
        raise BagError(f"bag {path} mixes storage formats {sorted(kinds)}; expected one")
    storage = "mcap" if MCAP_SUFFIX in kinds else "sqlite3"
    source = BagSource(path, storage, files, has_metadata_file=has_metadata)
    digest = hashlib.sha256()
    for file in files:
        if file.stat().st_size == 0:
            raise BagError(f"bag {path}: {file.name} is empty (0 bytes): the recorder stopped before writing anything")
        if storage == "mcap":
            _scan_mcap(source, file, digest)
        else:
            _scan_sqlite(source, file, digest)
    source.fingerprint = digest.hexdigest()
    if source.message_count == 0:
        listed = ", ".join(f"{t.name} ({t.msgtype})" for t in source.topics.values()) or "none"
        raise BagError(f"bag {path} holds no messages (topics: {listed})")
    return source


def _storage_files(path: Path) -> tuple[list[Path], bool]:
    if path.is_file():
        if path.suffix not in STORAGE_SUFFIXES:
            raise BagError(f"{path} is not a rosbag2 storage file; expected a directory, a .mcap or a .db3 file")
        return [path], False
    metadata = path / "metadata.yaml"
    found = [p for p in path.iterdir() if p.is_file() and p.suffix in STORAGE_SUFFIXES]
    compressed = [p.name for p in path.iterdir() if p.name.endswith(FILE_COMPRESSION_SUFFIXES)]
    if not found:
        if compressed:
            raise BagError(
                f"bag {path} is compressed per file ({', '.join(sorted(compressed))}); decompress it first "
                "(e.g. `ros2 bag decompress`, or `zstd -d` on each file)"
            )
        raise BagError(f"bag {path} holds no .mcap or .db3 file; expected a rosbag2 directory")
    order = _order_from_metadata(metadata) if metadata.is_file() else []
    ranked = {name: index for index, name in enumerate(order)}
    # Without metadata.yaml (a killed recorder never wrote it) split files are read in the
    # order of the index rosbag2 appends to their names (bag_0.mcap, bag_1.mcap, ...).
    found.sort(key=lambda p: (ranked.get(p.name, len(ranked)), _split_index(p), p.name))
    return found, metadata.is_file()


def _order_from_metadata(metadata: Path) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load(metadata.read_text())
        files = data["rosbag2_bagfile_information"]["relative_file_paths"]
        return [Path(str(name)).name for name in files]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []  # unreadable metadata: the storage files themselves are the truth


def _split_index(path: Path) -> int:
    match = re.search(r"_(\d+)$", path.stem)
    return int(match.group(1)) if match else 0


# -- MCAP -------------------------------------------------------------------------------------


class _HashingReader:
    """A read-only file wrapper that feeds every byte read into a hash."""

    def __init__(self, handle: IO[bytes], digest: Any) -> None:
        self.handle = handle
        self.digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _mcap_records(handle: Any) -> Iterator[Any]:
    from mcap.stream_reader import StreamReader

    return StreamReader(handle, skip_magic=False, emit_chunks=False, validate_crcs=True).records


_MCAP_DAMAGE = (EOFError, struct.error, ValueError, MemoryError)


def _scan_mcap(source: BagSource, file: Path, digest: Any) -> None:
    from mcap.exceptions import McapError
    from mcap.records import Channel, Footer, Message, Schema

    schemas: dict[int, Any] = {}
    channels: dict[int, Any] = {}
    complete = False
    read = 0
    with open(file, "rb") as raw:
        handle = _HashingReader(raw, digest)
        try:
            for record in _mcap_records(handle):
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                    schema = schemas.get(record.schema_id)
                    if schema is None:
                        continue
                    topic = source.topics.setdefault(
                        record.topic,
                        BagTopic(record.topic, schema.name, schema.data.decode(errors="replace"), schema.encoding),
                    )
                    if topic.msgtype != schema.name:
                        raise BagError(
                            f"bag {source.path}: topic {record.topic} carries two types, {topic.msgtype} and "
                            f"{schema.name}; expected one"
                        )
                elif isinstance(record, Message):
                    channel = channels.get(record.channel_id)
                    if channel is not None and channel.topic in source.topics:
                        source._index(channel.topic, record.log_time, record.data)
                        read += 1
                elif isinstance(record, Footer):
                    complete = True
        except (McapError, *_MCAP_DAMAGE) as error:
            if read == 0 and not channels:
                raise BagError(f"bag {source.path}: {file.name} is not a readable MCAP file ({error})") from error
            source.problems.append(
                f"{file.name} is cut short or damaged ({type(error).__name__}: {error}): the {read} messages before "
                "the damage were read, the rest of the file is lost (a recorder killed while writing leaves this)"
            )
        handle.drain()
    if not complete and not any(file.name in p for p in source.problems):
        source.problems.append(f"{file.name} has no footer: the recording ended without closing the file")


def _mcap_messages(file: Path, topics: set[str] | None) -> Iterator[tuple[str, int, bytes]]:
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message

    channels: dict[int, str] = {}
    with open(file, "rb") as handle:
        try:
            for record in _mcap_records(handle):
                if isinstance(record, Channel):
                    channels[record.id] = record.topic
                elif isinstance(record, Message):
                    topic = channels.get(record.channel_id)
                    if topic is not None and (topics is None or topic in topics):
                        yield topic, record.log_time, record.data
        except (McapError, *_MCAP_DAMAGE):
            return  # reported by the scan: what follows the damage is lost


# -- sqlite3 ----------------------------------------------------------------------------------


def _connect(file: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{file}?mode=ro&immutable=1", uri=True)


def _scan_sqlite(source: BagSource, file: Path, digest: Any) -> None:
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    try:
        connection = _connect(file)
        try:
            rows = connection.execute("SELECT id, name, type FROM topics").fetchall()
            definitions = _sqlite_definitions(connection)
            names = {topic_id: name for topic_id, name, _ in rows}
            for _, name, msgtype in rows:
                definition, kind = definitions.get(msgtype, ("", ""))
                source.topics.setdefault(name, BagTopic(name, msgtype, definition, kind))
            # The first 12 bytes hold a stamped message's header stamp; whole messages are
            # fetched only where they are needed (the first of each topic, compressed ones).
            messages = connection.execute(
                "SELECT id, topic_id, timestamp, substr(data, 1, 12) FROM messages ORDER BY id"
            )
            for row_id, topic_id, timestamp, head in messages:
                name = names.get(topic_id)
                if name is None:
                    continue
                if name not in source.first or bytes(head[:4]) == ZSTD_MAGIC:
                    head = connection.execute("SELECT data FROM messages WHERE id = ?", (row_id,)).fetchone()[0]
                source._index(name, int(timestamp), bytes(head))
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise BagError(
            f"bag {source.path}: {file.name} cannot be read as a rosbag2 sqlite3 file ({error}): it is damaged "
            "(cut short?) or not a bag; sqlite3 cannot read past damaged pages, so nothing of it is imported"
        ) from error


def _sqlite_definitions(connection: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """type -> (definition, format) from the `message_definitions` table (rosbag2 bags
    from Iron on); older bags have none."""
    try:
        rows = connection.execute(
            "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
        ).fetchall()
    except sqlite3.DatabaseError:
        return {}
    return {msgtype: (text or "", encoding or "") for msgtype, encoding, text in rows if text}


def _sqlite_messages(file: Path, topics: set[str] | None) -> Iterator[tuple[str, int, bytes]]:
    connection = _connect(file)
    try:
        names = dict(connection.execute("SELECT id, name FROM topics").fetchall())
        wanted = [i for i, name in names.items() if topics is None or name in topics]
        if not wanted:
            return
        marks = ",".join("?" * len(wanted))
        # The row id is the insertion order: the order the recorder wrote the messages in.
        cursor = connection.execute(
            f"SELECT topic_id, timestamp, data FROM messages WHERE topic_id IN ({marks}) ORDER BY id", wanted
        )
        try:
            for topic_id, timestamp, data in cursor:
                yield names[topic_id], int(timestamp), bytes(data)
        except sqlite3.DatabaseError:
            return  # damaged pages: what could be read was read (the scan counted the rows)
    finally:
        connection.close()


# -- messages ---------------------------------------------------------------------------------


def cdr_header_stamp_ns(raw: bytes) -> int | None:
    """The header stamp of a CDR-serialised stamped message, in ns (None if too short)."""
    if len(raw) < 12:
        return None
    endian = "<" if raw[1] & 1 else ">"  # encapsulation kind: 0x01 little-endian CDR
    sec, nanosec = struct.unpack(f"{endian}iI", raw[4:12])
    return sec * 1_000_000_000 + nanosec


def _typestore(source: BagSource) -> Any:
    """A typestore with the bag's own definitions (they describe its bytes) over ROS 2
    Jazzy's (for types the bag does not describe)."""
    from rosbags.typesys import Stores, TypesysError, get_types_from_idl, get_types_from_msg, get_typestore

    types = dict(get_typestore(Stores.ROS2_JAZZY).fielddefs)
    for topic in source.topics.values():
        if not topic.definition.strip():
            continue
        try:
            if topic.definition_format in ("ros2msg", "msg", ""):
                types.update(get_types_from_msg(topic.definition, topic.msgtype))
            elif topic.definition_format in ("ros2idl", "idl"):
                separator = "=" * 80 + "\n"
                parts = (
                    topic.definition.split(separator)[1:]
                    if topic.definition.startswith(separator)
                    else ["IDL: x\n" + topic.definition]
                )
                for part in parts:
                    types.update(get_types_from_idl(part.split("\n", 1)[1]))
        except (TypesysError, IndexError, ValueError) as error:
            raise BagError(
                f"bag {source.path}: the definition of {topic.msgtype} (topic {topic.name}) cannot be parsed ({error})"
            ) from error
    store = get_typestore(Stores.EMPTY)
    store.register(types)
    return store
