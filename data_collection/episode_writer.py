"""Writing one episode into the store's staging area, and sealing it for commit.

Crash model (what a SIGKILL at any line leaves, and why it is recoverable):

* Full-resolution frames go straight into a zarr array, one frame per chunk; zarr's
  local store writes each chunk to a temp file and renames it, so a chunk is either
  absent or whole. Only *after* the chunk is written is the frame's record (stamp and
  running CRC32) appended to `frames.log`: the log, not the array, says how many frames
  exist, so a frame whose chunk was written but whose record was not is simply ignored.
* Vector streams (1 kHz state, commands, ...) are appended to `samples.log` as
  fixed-size float64 records (stamp + values) with one os.write per batch; a kill can
  only tear the last record, which recovery drops (truncate to whole records).
* Policy-resolution copies of each frame are appended to `lowres_<h>x<w>.log` before the
  frame's record, so the frame log is never ahead of them.
* Nothing of an episode lives only in RAM beyond the recorder's bounded buffers.

Sealing turns the logs into ordinary zarr arrays inside the staging directory, sets
each array's final length, computes checksums, writes the final metadata (atomically),
and removes the logs. The store then makes the episode visible with one rename.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policy.imaging import resize_area_many

from .schema import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    StoreSettings,
    StreamSpec,
    atomic_write_json,
    crash_point,
    group_document,
    image_compressors,
    json_safe,
    lowres_key,
    read_json,
)

# Declared length of a frame array while recording: zarr shapes are metadata only, so a
# large capacity costs nothing and avoids rewriting the array metadata on every frame.
# Sealing sets the real length (2**31 frames is 2 years at 30 Hz).
FRAME_CAPACITY = 2**31
FRAME_RECORD = struct.Struct("<dQ")  # stamp (s), CRC32 of all frames up to this one
CHECKSUM_ALGORITHM = "crc32"
VECTOR_CHUNK_ROWS = 16384
LOWRES_CHUNK_FRAMES = 256


class StreamWriteError(OSError):
    """A write to the staging area failed (disk full, I/O error); names the stream."""


@dataclass
class _StreamState:
    spec: StreamSpec
    count: int = 0
    last_stamp: float = float("-inf")
    first_stamp: float | None = None
    crc: int = 0  # images: running CRC32 of the full-resolution frames written so far
    log_fd: int | None = None
    lowres_fds: dict[tuple[int, int], int] = field(default_factory=dict)
    frames: Any = None  # zarr array of full-resolution frames (images)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until everything is written (a short write is possible on full disks)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(28, "No space left on device (short write)")
        view = view[written:]


def _log_record_size(spec: StreamSpec) -> int:
    return FRAME_RECORD.size if spec.is_image else 8 * (1 + spec.shape[0])


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _truncate_to_records(path: Path, record_size: int, max_records: int | None = None) -> int:
    """Drop a torn trailing record (and anything beyond max_records); return the count."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    records = size // record_size
    if max_records is not None:
        records = min(records, max_records)
    if records * record_size != size:
        os.truncate(path, records * record_size)
    return records


def set_array_length(array_dir: Path, length: int, durable: bool) -> None:
    """Set a zarr v3 array's first dimension by rewriting its metadata document atomically
    (zarr's own resize rewrites it in place and would also scan for chunks)."""
    meta_path = array_dir / "zarr.json"
    meta = read_json(meta_path)
    meta["shape"][0] = int(length)
    atomic_write_json(meta_path, meta, durable=durable)


def remove_chunks_from(array_dir: Path, first_chunk_row: int) -> None:
    """Delete chunks at row index >= first_chunk_row of a one-frame-per-chunk array
    (a frame written just before a kill, never recorded in the log)."""
    chunk_root = array_dir / "c"
    if not chunk_root.is_dir():
        return
    for entry in os.listdir(chunk_root):
        if entry.isdigit() and int(entry) >= first_chunk_row:
            shutil.rmtree(chunk_root / entry, ignore_errors=True)


class EpisodeWriter:
    """Streams one episode into `directory` (inside the store's staging area)."""

    def __init__(
        self,
        directory: Path,
        streams: list[StreamSpec],
        settings: StoreSettings,
        header: dict[str, Any],
        durable: bool = True,
        _reopen: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.durable = durable
        self.header = header
        self.streams: dict[str, _StreamState] = {s.name: _StreamState(s) for s in streams}
        if len(self.streams) != len(streams):
            raise ValueError(f"stream names must be unique, got {[s.name for s in streams]}")
        if not _reopen:
            self._create_layout()
        self._open_streams()

    # -- creation / reopening -------------------------------------------------------

    def _create_layout(self) -> None:
        import zarr

        self.directory.mkdir(parents=True)
        for state in self.streams.values():
            spec = state.spec
            stream_dir = self.directory / spec.name
            stream_dir.mkdir()
            atomic_write_json(stream_dir / "zarr.json", group_document({"stream": spec.to_dict()}), False)
            if spec.is_image:
                zarr.create_array(
                    str(stream_dir / "data"),
                    shape=(FRAME_CAPACITY, *spec.shape),
                    chunks=(1, *spec.shape),
                    dtype="uint8",
                    compressors=image_compressors(self.settings.image_codec),
                    fill_value=0,
                    # Never skip an all-zero (black) frame: one chunk per logged frame, and
                    # no per-frame scan for empty chunks (saves ~2 ms per 640x480 frame).
                    config={"write_empty_chunks": True},
                )
        # The header is written last: an episode directory whose zarr.json is missing was
        # killed during creation and holds no data, so recovery removes it.
        atomic_write_json(self.directory / "zarr.json", group_document(self.header), False)

    @classmethod
    def reopen(cls, directory: Path, durable: bool = True) -> EpisodeWriter:
        """Reopen a staged episode left by a killed process: drop torn log records and
        frames that were never logged, so it can be resumed or sealed."""
        directory = Path(directory)
        header = read_json(directory / "zarr.json")["attributes"]
        raw = header["streams"]
        if isinstance(raw, dict):  # a sealed header keeps per-stream facts keyed by name
            raw = [raw[name] for name in header.get("stream_order", raw)]
        streams = [StreamSpec.from_dict(s) for s in raw]
        settings = StoreSettings(
            image_codec=header["settings"]["image_codec"],
            policy_image_sizes=tuple(tuple(s) for s in header["settings"]["policy_image_sizes"]),
        )
        writer = cls(directory, streams, settings, header, durable=durable, _reopen=True)
        return writer

    def _open_streams(self) -> None:
        import zarr

        for state in self.streams.values():
            spec = state.spec
            stream_dir = self.directory / spec.name
            if spec.is_image:
                log = stream_dir / "frames.log"
                count = _truncate_to_records(log, FRAME_RECORD.size)
                for size in self.settings.policy_image_sizes:
                    lowres_log = stream_dir / f"{lowres_key(size)}.log"
                    frame_bytes = size[0] * size[1] * spec.shape[2]
                    have = _truncate_to_records(lowres_log, frame_bytes)
                    # A low-res record can only be missing for the frame whose log record
                    # is also missing (it is written first), so `have >= count` holds.
                    count = min(count, have)
                count = _truncate_to_records(log, FRAME_RECORD.size, count)
                for size in self.settings.policy_image_sizes:
                    frame_bytes = size[0] * size[1] * spec.shape[2]
                    _truncate_to_records(stream_dir / f"{lowres_key(size)}.log", frame_bytes, count)
                remove_chunks_from(stream_dir / "data", count)
                # An interrupted seal may have set the final length already; appending
                # (resume) needs the recording capacity back.
                if read_json(stream_dir / "data" / "zarr.json")["shape"][0] != FRAME_CAPACITY:
                    set_array_length(stream_dir / "data", FRAME_CAPACITY, durable=False)
                if count:
                    with open(log, "rb") as handle:
                        raw = handle.read()
                    records = np.frombuffer(raw, dtype=np.dtype([("stamp", "<f8"), ("crc", "<u8")]))
                    state.first_stamp = float(records["stamp"][0])
                    state.last_stamp = float(records["stamp"][-1])
                    state.crc = int(records["crc"][-1])
                state.count = count
                state.frames = zarr.open_array(str(stream_dir / "data"), mode="r+").with_config(
                    {"write_empty_chunks": True}
                )
                state.log_fd = _open_append(log)
                for size in self.settings.policy_image_sizes:
                    state.lowres_fds[size] = _open_append(stream_dir / f"{lowres_key(size)}.log")
            else:
                log = stream_dir / "samples.log"
                count = _truncate_to_records(log, _log_record_size(spec))
                if count:
                    record = _log_record_size(spec)
                    with open(log, "rb") as handle:
                        first = np.frombuffer(handle.read(8), "<f8")[0]
                        handle.seek((count - 1) * record)
                        last = np.frombuffer(handle.read(8), "<f8")[0]
                    state.first_stamp, state.last_stamp = float(first), float(last)
                state.count = count
                state.log_fd = _open_append(log)

    # -- appending ------------------------------------------------------------------

    def append_frame(self, stream: str, stamp: float, frame: np.ndarray) -> None:
        """Write one validated (H, W, C) uint8 frame. Order matters for recovery: chunk,
        then low-res copies, then the frame's log record."""
        state = self.streams[stream]
        frame = np.ascontiguousarray(frame)
        try:
            state.frames[state.count] = frame
            crash_point("after_frame_chunk")
            copies = resize_area_many(frame, self.settings.policy_image_sizes)
            for size, fd in state.lowres_fds.items():
                _write_all(fd, copies[size].tobytes())
            crc = zlib.crc32(frame, state.crc)
            _write_all(state.log_fd, FRAME_RECORD.pack(stamp, crc))
        except OSError as error:
            raise StreamWriteError(error.errno, f"stream {stream!r}: {error.strerror or error}") from error
        state.crc = crc
        state.count += 1
        if state.first_stamp is None:
            state.first_stamp = stamp
        state.last_stamp = stamp

    def append_vectors(self, stream: str, stamps: np.ndarray, values: np.ndarray) -> None:
        """Append a batch of validated samples (stamps (n,), values (n, dim)) in one write."""
        state = self.streams[stream]
        n = len(stamps)
        if n == 0:
            return
        records = np.empty((n, 1 + state.spec.shape[0]), dtype="<f8")
        records[:, 0] = stamps
        records[:, 1:] = values
        try:
            _write_all(state.log_fd, records.tobytes())
        except OSError as error:
            raise StreamWriteError(error.errno, f"stream {stream!r}: {error.strerror or error}") from error
        state.count += n
        if state.first_stamp is None:
            state.first_stamp = float(stamps[0])
        state.last_stamp = float(stamps[-1])

    def update_header(self, **fields: Any) -> None:
        self.header.update(json_safe(fields))
        atomic_write_json(self.directory / "zarr.json", group_document(self.header), False)

    @property
    def total_samples(self) -> int:
        return sum(s.count for s in self.streams.values())

    def close(self) -> None:
        for state in self.streams.values():
            fds = [state.log_fd, *state.lowres_fds.values()]
            for fd in fds:
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            state.log_fd = None
            state.lowres_fds = {}

    # -- sealing --------------------------------------------------------------------

    def seal(self, metadata: dict[str, Any], verify_frames: bool = False) -> dict[str, Any]:
        """Turn the logs into arrays, checksum everything and write the final metadata.
        Returns the metadata. The directory is ready to be renamed into `episodes/`.

        verify_frames re-reads every frame to recompute its checksum (recovery does this:
        after a kill the running CRC in the log is trusted only if the data agrees)."""
        import zarr

        self.close()
        checksums: dict[str, dict[str, Any]] = {}
        stream_meta: dict[str, dict[str, Any]] = {}
        problems: list[str] = list(metadata.get("problems", []))
        for state in self.streams.values():
            spec = state.spec
            stream_dir = self.directory / spec.name
            if spec.is_image:
                raw = (stream_dir / "frames.log").read_bytes()
                records = np.frombuffer(raw, dtype=np.dtype([("stamp", "<f8"), ("crc", "<u8")]))
                count = len(records)
                stamps = np.ascontiguousarray(records["stamp"], dtype="<f8")
                data_dir = stream_dir / "data"
                set_array_length(data_dir, count, durable=False)
                remove_chunks_from(data_dir, count)
                crc = int(records["crc"][-1]) if count else 0
                if verify_frames and count:
                    recomputed, readable = _frames_crc(data_dir, count)
                    if readable < count or recomputed != crc:
                        problems.append(
                            f"stream {spec.name!r}: only {readable} of {count} frames "
                            "verified after "
                            "recovery; the rest were dropped"
                        )
                        count = readable
                        stamps = stamps[:count]
                        set_array_length(data_dir, count, durable=False)
                        remove_chunks_from(data_dir, count)
                        crc, _ = _frames_crc(data_dir, count)
                checksums[f"{spec.name}/data"] = _checksum_entry(crc, (count, *spec.shape), "uint8")
                for size in self.settings.policy_image_sizes:
                    key = lowres_key(size)
                    log = stream_dir / f"{key}.log"
                    lowres = np.frombuffer(log.read_bytes(), dtype=np.uint8)
                    lowres = lowres[: count * size[0] * size[1] * spec.shape[2]]
                    lowres = lowres.reshape(count, size[0], size[1], spec.shape[2])
                    array = zarr.create_array(
                        str(stream_dir / key),
                        shape=lowres.shape,
                        chunks=(LOWRES_CHUNK_FRAMES, size[0], size[1], spec.shape[2]),
                        dtype="uint8",
                        compressors=image_compressors("zstd"),
                        fill_value=0,
                        overwrite=True,
                    )
                    if count:
                        array[:] = lowres
                    checksums[f"{spec.name}/{key}"] = _checksum_entry(
                        zlib.crc32(np.ascontiguousarray(lowres)), lowres.shape, "uint8"
                    )
            else:
                raw = (stream_dir / "samples.log").read_bytes()
                records = np.frombuffer(raw, dtype="<f8").reshape(-1, 1 + spec.shape[0])
                count = len(records)
                stamps = np.ascontiguousarray(records[:, 0])
                values = np.ascontiguousarray(records[:, 1:])
                array = zarr.create_array(
                    str(stream_dir / "data"),
                    shape=values.shape,
                    chunks=(VECTOR_CHUNK_ROWS, spec.shape[0]),
                    dtype="float64",
                    fill_value=0.0,
                    overwrite=True,
                )
                if count:
                    array[:] = values
                checksums[f"{spec.name}/data"] = _checksum_entry(zlib.crc32(values), values.shape, "float64")
            stamps_array = zarr.create_array(
                str(stream_dir / "stamps"),
                shape=(count,),
                chunks=(VECTOR_CHUNK_ROWS,),
                dtype="float64",
                fill_value=0.0,
                overwrite=True,
            )
            if count:
                stamps_array[:] = stamps
            checksums[f"{spec.name}/stamps"] = _checksum_entry(zlib.crc32(stamps), (count,), "float64")
            stream_meta[spec.name] = {
                **spec.to_dict(),
                "count": count,
                "first_stamp": float(stamps[0]) if count else None,
                "last_stamp": float(stamps[-1]) if count else None,
                "measured_rate_hz": (
                    float((count - 1) / (stamps[-1] - stamps[0])) if count > 1 and stamps[-1] > stamps[0] else None
                ),
            }
        crash_point("seal_before_metadata")
        final = json_safe(
            {
                **metadata,
                "schema": SCHEMA_NAME,
                "schema_version": SCHEMA_VERSION,
                "state": "sealed",
                "streams": stream_meta,
                "stream_order": list(self.streams),
                "settings": self.header.get("settings", {}),
                "problems": problems,
                "marked": bool(problems),
                "checksum_algorithm": CHECKSUM_ALGORITHM,
                "checksums": checksums,
                "sealed_at": time.time(),
            }
        )
        atomic_write_json(self.directory / "zarr.json", group_document(final), durable=False)
        crash_point("seal_after_metadata")
        self.remove_logs()
        return final

    def remove_logs(self) -> None:
        for state in self.streams.values():
            stream_dir = self.directory / state.spec.name
            for log in stream_dir.glob("*.log"):
                log.unlink()


def _checksum_entry(crc: int, shape: tuple[int, ...], dtype: str) -> dict[str, Any]:
    return {"crc32": f"{crc & 0xFFFFFFFF:08x}", "shape": [int(s) for s in shape], "dtype": dtype}


def _frames_crc(data_dir: Path, count: int) -> tuple[int, int]:
    """CRC32 of the first `count` frames as stored; stops at the first unreadable frame.
    Returns (crc, number of frames read)."""
    import zarr

    array = zarr.open_array(str(data_dir), mode="r")
    crc = 0
    for index in range(count):
        try:
            frame = np.ascontiguousarray(array[index])
        except Exception:
            return crc, index
        crc = zlib.crc32(frame, crc)
    return crc, count
