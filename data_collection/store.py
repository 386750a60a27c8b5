"""The crash-proof episode store (zarr v3 on a local file system).

Layout (every directory with a zarr.json is a zarr v3 group or array)::

    dataset.zarr/
      zarr.json                    root group; attributes: schema, schema_version, settings
                                   (written once at creation, never modified)
      episodes/                    committed episodes, and nothing else
        ep_000000/
          zarr.json                episode metadata + per-array CRC32 taken at commit
          front/  stamps (N,) float64, data (N,H,W,3) uint8 one frame per chunk,
                  lowres_64x64 (N,64,64,3), lowres_32x32 ...
          ee_pose/ stamps (N,), data (N,7) float64
          ...
      _staging/                    episodes being recorded or left by a killed process
        zarr.json                  (also the writer lock: flock on this file)
      _trash/                      episodes being deleted (renamed here first)

Guarantees:
* Creation is atomic: the store is built in a temp directory and renamed into place.
* An episode becomes visible by one rename from `_staging/` to `episodes/`, after its
  data and metadata (with checksums) are complete (and, with durable=True, synced).
  Listing only looks at `episodes/`, so opening never depends on a partial episode.
* Deleting renames the episode into `_trash/` first (atomic), then removes the files.
* `repair` finishes what a kill interrupted: a sealed episode is committed, a partial
  one is recovered (marked `recovered`, `complete: false`) or removed, trash and temp
  files are cleaned; it reports what it did per episode. Committed episodes are never
  modified by repair.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .episode_writer import EpisodeWriter
from .schema import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    VECTOR,
    DiskFullError,
    EpisodeNotFoundError,
    SchemaMismatchError,
    StoreError,
    StoreLockedError,
    StoreSettings,
    StreamSpec,
    atomic_write_json,
    crash_point,
    episode_name,
    episode_number,
    fsync_dir,
    group_document,
    json_safe,
    lowres_key,
    normalize_episode_id,
    read_json,
    software_version,
)

EPISODES = "episodes"
STAGING = "_staging"
TRASH = "_trash"


@dataclass
class ValidationReport:
    """Result of `EpisodeStore.validate`: errors make the store invalid, warnings do not."""

    episodes_checked: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bad_episodes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "episodes_checked": self.episodes_checked,
            "errors": self.errors,
            "warnings": self.warnings,
            "bad_episodes": self.bad_episodes,
        }


@dataclass
class RepairAction:
    episode_id: str
    action: str  # "committed", "recovered", "removed", "cleaned"
    detail: str

    def __str__(self) -> str:
        return f"{self.episode_id}: {self.action} ({self.detail})"


@dataclass
class RepairReport:
    actions: list[RepairAction] = field(default_factory=list)
    validation: ValidationReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": [vars(a) for a in self.actions],
            "valid_after_repair": self.validation.ok if self.validation else None,
            "validation": self.validation.to_dict() if self.validation else None,
        }


class Episode:
    """Read access to one committed episode."""

    def __init__(self, path: Path, metadata: dict[str, Any]) -> None:
        self.path = path
        self.metadata = metadata
        self.id = path.name
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Episode({self.id!r}, task={self.metadata.get('task')!r}, streams={self.stream_names})"

    @property
    def stream_names(self) -> list[str]:
        return list(self.metadata.get("stream_order") or self.metadata.get("streams", {}))

    def spec(self, stream: str) -> StreamSpec:
        return StreamSpec.from_dict(self._stream_meta(stream))

    def count(self, stream: str) -> int:
        return int(self._stream_meta(stream)["count"])

    def _stream_meta(self, stream: str) -> dict[str, Any]:
        streams = self.metadata.get("streams", {})
        if stream not in streams:
            raise KeyError(f"episode {self.id} has no stream {stream!r}; it has {sorted(streams)}")
        return streams[stream]

    def _array(self, stream: str, name: str) -> Any:
        import zarr

        self._stream_meta(stream)
        key = f"{stream}/{name}"
        if key not in self._cache:
            self._cache[key] = zarr.open_array(str(self.path / stream / name), mode="r")
        return self._cache[key]

    def stamps(self, stream: str) -> np.ndarray:
        """Sample times (s) of a stream, shape (N,)."""
        return np.asarray(self._array(stream, "stamps")[:])

    def values(self, stream: str) -> np.ndarray:
        """All samples of a vector stream, shape (N, dim) float64."""
        if self.spec(stream).is_image:
            raise ValueError(f"stream {stream!r} is a camera; use frames() or lowres()")
        return np.asarray(self._array(stream, "data")[:])

    def frames(self, stream: str) -> Any:
        """Full-resolution frames of a camera as a lazy zarr array (N, H, W, C) uint8;
        index it (frames(s)[i]) to decode only what you need."""
        if not self.spec(stream).is_image:
            raise ValueError(f"stream {stream!r} is not a camera")
        return self._array(stream, "data")

    def has_lowres(self, stream: str, size: tuple[int, int]) -> bool:
        return (self.path / stream / lowres_key(size) / "zarr.json").exists()

    def lowres(self, stream: str, size: tuple[int, int]) -> np.ndarray | None:
        """The policy-resolution copy written while recording, (N, h, w, C) uint8, or None."""
        if not self.has_lowres(stream, size):
            return None
        return np.asarray(self._array(stream, lowres_key(size))[:])

    def verify(self, checksums: bool = True) -> list[str]:
        """Problems found (empty when the episode is intact): every array exists with the
        shape recorded at commit, stamps are finite and non-decreasing, vector samples are
        finite, and (checksums) every array's CRC32 matches the one taken at commit."""
        return verify_episode_dir(self.path, self.metadata, checksums)

    def nonfinite_problem(self, stream: str) -> str | None:
        """What is non-finite in a vector stream's stamps or values (naming the first bad
        sample), or None when every number is finite."""
        fields = tuple(self._stream_meta(stream).get("fields", ()))
        return nonfinite_problem(self.id, stream, "timestamps", self.stamps(stream)) or nonfinite_problem(
            self.id, stream, "values", self.values(stream), fields
        )


def nonfinite_problem(
    episode: str, stream: str, part: str, values: np.ndarray, fields: tuple[str, ...] = ()
) -> str | None:
    """None when `values` (samples along axis 0) are all finite, else a message naming the
    episode, the stream, how many samples are bad and the first of them. Recording rejects
    such samples, so they come from an importer or a later edit of the store."""
    array = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1) if array.size else np.zeros(0, bool)
    if not bad.any():
        return None
    first = int(np.argmax(bad))
    if array.ndim == 1:
        detail = f"stamp {array[first]}"
    else:
        names = fields if len(fields) == array.shape[1] else tuple(str(i) for i in range(array.shape[1]))
        detail = ", ".join(f"{names[i]}={array[first, i]}" for i in np.flatnonzero(~np.isfinite(array[first])))
    return (
        f"{episode}: stream {stream!r} has NaN or infinite {part} in {int(bad.sum())} of {bad.size} samples, "
        f"the first at sample {first} ({detail})"
    )


def verify_episode_dir(path: Path, metadata: dict[str, Any], checksums: bool = True) -> list[str]:
    import zarr

    problems: list[str] = []
    name = path.name
    if metadata.get("state") != "sealed":
        return [f"{name}: metadata is not sealed (state {metadata.get('state')!r})"]
    # stream -> its field names, for every vector stream
    vector_streams = {
        stream: tuple(meta.get("fields", ()))
        for stream, meta in metadata.get("streams", {}).items()
        if isinstance(meta, dict) and meta.get("kind") == VECTOR
    }
    for key, expected in sorted(metadata.get("checksums", {}).items()):
        try:
            array = zarr.open_array(str(path / key), mode="r")
        except Exception as error:
            problems.append(f"{name}: array {key} cannot be opened ({error})")
            continue
        if list(array.shape) != expected["shape"]:
            problems.append(f"{name}: array {key} has shape {list(array.shape)}, expected {expected['shape']}")
            continue
        stream, _, part = key.partition("/")
        try:
            if part == "stamps":
                stamps = np.asarray(array[:])
                problem = nonfinite_problem(name, stream, "timestamps", stamps)
                if problem:
                    problems.append(problem)
                elif np.any(np.diff(stamps) < 0):
                    problems.append(f"{name}: {key} has decreasing timestamps")
                crc = zlib.crc32(np.ascontiguousarray(stamps)) if checksums else None
            elif part == "data" and stream in vector_streams:
                # Vector streams are small (a float64 row per sample): read them whole even in a
                # quick check, since a NaN there would stop training (or move the arm) much later.
                values = np.asarray(array[:])
                problem = nonfinite_problem(name, stream, "values", values, vector_streams[stream])
                if problem:
                    problems.append(problem)
                crc = zlib.crc32(np.ascontiguousarray(values)) if checksums else None
            elif checksums:
                crc = _array_crc(array)
            else:
                crc = None
        except Exception as error:
            problems.append(f"{name}: array {key} cannot be read ({error})")
            continue
        if crc is not None and f"{crc & 0xFFFFFFFF:08x}" != expected["crc32"]:
            problems.append(f"{name}: array {key} fails its checksum (data changed since commit)")
    missing = [s for s in metadata.get("streams", {}) if f"{s}/stamps" not in metadata.get("checksums", {})]
    if missing:
        problems.append(f"{name}: streams {missing} have no checksum")
    return problems


def _array_crc(array: Any) -> int:
    """CRC32 of an array's C-order bytes, read in blocks of whole chunks along axis 0."""
    rows = array.shape[0] if array.shape else 0
    # Whole chunks per read, ~32 MB at a time: one zarr call fetches many one-frame chunks
    # concurrently, much faster than a call per frame.
    row_bytes = max(1, int(np.prod(array.shape[1:])) * array.dtype.itemsize)
    chunk = max(1, int(array.chunks[0]))
    step = chunk * max(1, (32 * 2**20) // (row_bytes * chunk))
    crc = 0
    for start in range(0, rows, step):
        crc = zlib.crc32(np.ascontiguousarray(array[start : start + step]), crc)
    return crc


class EpisodeStore:
    """One dataset of episodes. Readers need no lock; writers (recording, delete, repair)
    take an exclusive flock so two processes never write the same store."""

    def __init__(self, path: Path, root_attributes: dict[str, Any], durable: bool = True) -> None:
        self.path = Path(path)
        self.attributes = root_attributes
        self.durable = durable
        settings = root_attributes.get("settings", {})
        self.settings = StoreSettings(
            image_codec=settings.get("image_codec", "zstd"),
            policy_image_sizes=tuple(tuple(s) for s in settings.get("policy_image_sizes", ())),
            description=settings.get("description", ""),
        )
        self._lock_fd: int | None = None
        self._lock_depth = 0

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.path)!r}, episodes={len(self.episode_ids())})"

    # -- creation / opening ---------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, settings: StoreSettings | None = None, durable: bool = True) -> EpisodeStore:
        """Create an empty store; fails if `path` exists. Built in a sibling temp directory
        and renamed into place, so a kill never leaves a half-created store at `path`."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"cannot create an episode store at {path}: the path already exists")
        settings = settings or StoreSettings()
        path.parent.mkdir(parents=True, exist_ok=True)
        building = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex[:8]}")
        attributes = json_safe(
            {
                "schema": SCHEMA_NAME,
                "schema_version": SCHEMA_VERSION,
                "created_at": time.time(),
                "created_by": software_version(),
                "settings": {
                    "image_codec": settings.image_codec,
                    "policy_image_sizes": [list(s) for s in settings.policy_image_sizes],
                    "description": settings.description,
                    **settings.extra,
                },
            }
        )
        try:
            for sub in (EPISODES, STAGING, TRASH):
                (building / sub).mkdir(parents=True)
                atomic_write_json(building / sub / "zarr.json", group_document({}), durable)
            atomic_write_json(building / "zarr.json", group_document(attributes), durable)
            os.rename(building, path)
        except FileExistsError as error:
            raise StoreError(f"cannot create an episode store at {path}: the path already exists") from error
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
            raise
        if durable:
            fsync_dir(path.parent)
        return cls(path, attributes, durable)

    @classmethod
    def open(cls, path: str | Path, durable: bool = True) -> EpisodeStore:
        """Open an existing store; refuses other schemas and versions with a clear message."""
        path = Path(path)
        meta_path = path / "zarr.json"
        if not meta_path.exists():
            hint = " (it exists but is not a zarr v3 store)" if path.exists() else ""
            raise StoreError(f"no episode store at {path}{hint}")
        try:
            attributes = read_json(meta_path).get("attributes", {})
        except (OSError, ValueError) as error:
            raise StoreError(f"cannot read {meta_path}: {error}") from error
        schema, version = attributes.get("schema"), attributes.get("schema_version")
        if schema != SCHEMA_NAME:
            raise SchemaMismatchError(
                f"{path} is not a df-stack episode store: its schema is {schema!r}, expected {SCHEMA_NAME!r}"
            )
        if version != SCHEMA_VERSION:
            raise SchemaMismatchError(
                f"{path} uses episode-store schema version {version}, but this df-stack reads "
                "version "
                f"{SCHEMA_VERSION} only; use a df-stack release that matches the store, or "
                "convert it"
            )
        for sub in (EPISODES, STAGING, TRASH):
            if not (path / sub).is_dir():
                raise StoreError(f"{path} is missing its {sub}/ directory; it was not created by df-stack")
        return cls(path, attributes, durable)

    @classmethod
    def open_or_create(
        cls, path: str | Path, settings: StoreSettings | None = None, durable: bool = True
    ) -> EpisodeStore:
        path = Path(path)
        if path.exists():
            return cls.open(path, durable)
        try:
            return cls.create(path, settings, durable)
        except StoreError:
            if path.exists():  # another process created it in between
                return cls.open(path, durable)
            raise

    # -- listing / reading ----------------------------------------------------------

    def episode_ids(self) -> list[str]:
        """Committed episodes, in id order."""
        return self._list(self.path / EPISODES)

    def staged_ids(self) -> list[str]:
        """Episodes in the staging area (being recorded, or left by a killed process)."""
        return self._list(self.path / STAGING, require_header=False)

    @staticmethod
    def _list(directory: Path, require_header: bool = True) -> list[str]:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        found = [
            n
            for n in names
            if episode_number(n) is not None and (not require_header or (directory / n / "zarr.json").exists())
        ]
        return sorted(found, key=lambda n: episode_number(n) or 0)

    def __len__(self) -> int:
        return len(self.episode_ids())

    def __contains__(self, episode: object) -> bool:
        try:
            return self._episode_dir(normalize_episode_id(episode)).exists()  # type: ignore[arg-type]
        except ValueError:
            return False

    def _episode_dir(self, episode_id: str) -> Path:
        return self.path / EPISODES / episode_id

    def _resolve(self, episode: str | int) -> str:
        episode_id = normalize_episode_id(episode)
        if not (self._episode_dir(episode_id) / "zarr.json").exists():
            ids = self.episode_ids()
            listing = f"{ids[0]} .. {ids[-1]} ({len(ids)} episodes)" if ids else "no episodes"
            raise EpisodeNotFoundError(f"episode {episode_id} does not exist in {self.path}; the store has {listing}")
        return episode_id

    def metadata(self, episode: str | int) -> dict[str, Any]:
        episode_id = self._resolve(episode)
        return read_json(self._episode_dir(episode_id) / "zarr.json")["attributes"]

    def episode(self, episode: str | int) -> Episode:
        episode_id = self._resolve(episode)
        return Episode(self._episode_dir(episode_id), self.metadata(episode_id))

    def episodes(self) -> Iterator[Episode]:
        for episode_id in self.episode_ids():
            yield self.episode(episode_id)

    def next_episode_id(self) -> str:
        numbers = [episode_number(n) or 0 for n in self.episode_ids() + self.staged_ids()]
        return episode_name(max(numbers) + 1 if numbers else 0)

    # -- locking --------------------------------------------------------------------

    def acquire_writer_lock(self) -> None:
        """Exclusive, non-blocking; released automatically if the process dies."""
        if self._lock_depth:
            self._lock_depth += 1
            return
        fd = os.open(self.path / STAGING / "zarr.json", os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            os.close(fd)
            raise StoreLockedError(
                f"{self.path} is being written by another process (a recorder, repair or delete); "
                "wait for it to finish or stop it first"
            ) from error
        self._lock_fd, self._lock_depth = fd, 1

    def release_writer_lock(self) -> None:
        if not self._lock_depth:
            return
        self._lock_depth -= 1
        if self._lock_depth == 0 and self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        self.acquire_writer_lock()
        try:
            yield
        finally:
            self.release_writer_lock()

    # -- writing --------------------------------------------------------------------

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    def begin_episode(
        self,
        streams: list[StreamSpec],
        metadata: dict[str, Any],
        min_free_bytes: int = 0,
    ) -> EpisodeWriter:
        """Create a staged episode (the caller must hold the writer lock until it commits
        or discards). Refuses to start when less than min_free_bytes are free."""
        if not self._lock_depth:
            raise StoreError("begin_episode needs the writer lock (use store.writer_lock())")
        free = self.free_bytes()
        if free < min_free_bytes:
            raise DiskFullError(
                f"only {free / 1e6:.0f} MB free on the disk of {self.path}; recording needs "
                "at least "
                f"{min_free_bytes / 1e6:.0f} MB (min_free_bytes). Free space or delete "
                "episodes first"
            )
        episode_id = self.next_episode_id()
        header = json_safe(
            {
                "state": "recording",
                "episode_id": episode_id,
                "schema": SCHEMA_NAME,
                "schema_version": SCHEMA_VERSION,
                "streams": [s.to_dict() for s in streams],
                "settings": self.attributes.get("settings", {}),
                "metadata": metadata,
                "started_at": time.time(),
            }
        )
        return EpisodeWriter(self.path / STAGING / episode_id, streams, self.settings, header, self.durable)

    def reopen_staged(self, episode: str | int) -> EpisodeWriter:
        """A staged episode left by a killed process, ready to resume (writer lock needed)."""
        episode_id = normalize_episode_id(episode)
        directory = self.path / STAGING / episode_id
        if not (directory / "zarr.json").exists():
            raise EpisodeNotFoundError(f"no resumable staged episode {episode_id} in {self.path}")
        return EpisodeWriter.reopen(directory, self.durable)

    def commit(self, writer: EpisodeWriter, metadata: dict[str, Any], verify_frames: bool = False) -> dict[str, Any]:
        """Seal a staged episode and make it visible atomically. Returns its metadata."""
        final = writer.seal(
            {
                **writer.header.get("metadata", {}),
                **metadata,
                "episode_id": writer.directory.name,
                "started_at": writer.header.get("started_at"),
                "resumed_at": writer.header.get("resumed_at", []),
            },
            verify_frames=verify_frames,
        )
        self._publish(writer.directory)
        return final

    def _publish(self, staged_dir: Path) -> None:
        target = self.path / EPISODES / staged_dir.name
        if target.exists():
            raise StoreError(f"cannot commit {staged_dir.name}: an episode with that id already exists")
        if self.durable:
            # One sync instead of an fsync per chunk file (thousands per episode): after
            # it, the episode's data and metadata are on disk before the rename is.
            os.sync()
        crash_point("commit_before_rename")
        os.rename(staged_dir, target)
        crash_point("commit_after_rename")
        if self.durable:
            fsync_dir(self.path / EPISODES)
            fsync_dir(self.path / STAGING)

    def discard(self, writer: EpisodeWriter) -> None:
        writer.close()
        self._remove_dir(writer.directory)

    def _remove_dir(self, directory: Path) -> None:
        """Rename into the trash (atomic), then delete the files."""
        if not directory.exists():
            return
        trashed = self.path / TRASH / f"{directory.name}.{uuid.uuid4().hex[:8]}"
        os.rename(directory, trashed)
        crash_point("delete_after_rename")
        shutil.rmtree(trashed, ignore_errors=True)

    def delete(self, episode: str | int) -> str:
        """Delete a committed episode; a missing id raises EpisodeNotFoundError."""
        with self.writer_lock():
            episode_id = self._resolve(episode)
            self._remove_dir(self._episode_dir(episode_id))
            if self.durable:
                fsync_dir(self.path / EPISODES)
            return episode_id

    def delete_last(self) -> str:
        ids = self.episode_ids()
        if not ids:
            raise EpisodeNotFoundError(f"cannot delete the last episode: {self.path} has no episodes")
        return self.delete(ids[-1])

    def update_metadata(self, episode: str | int, **fields: Any) -> dict[str, Any]:
        """Change descriptive metadata (success, notes, task...) of a committed episode; the
        document is replaced atomically. Checksums and stream facts cannot be changed."""
        protected = {
            "checksums",
            "streams",
            "state",
            "schema",
            "schema_version",
            "episode_id",
            "checksum_algorithm",
        }
        bad = sorted(protected & set(fields))
        if bad:
            raise ValueError(f"metadata fields {bad} are written at commit and cannot be changed")
        with self.writer_lock():
            episode_id = self._resolve(episode)
            path = self._episode_dir(episode_id) / "zarr.json"
            attributes = read_json(path)["attributes"]
            attributes.update(json_safe(fields))
            atomic_write_json(path, group_document(attributes), self.durable)
            return attributes

    # -- checking and repairing -----------------------------------------------------

    def verify_episode(self, episode: str | int, checksums: bool = True) -> list[str]:
        return self.episode(episode).verify(checksums)

    def validate(self, checksums: bool = True, progress: bool = False) -> ValidationReport:
        """Check every committed episode (and report leftovers of interrupted work)."""
        report = ValidationReport()
        ids = self.episode_ids()
        iterator: Any = ids
        if progress:
            from tqdm import tqdm

            iterator = tqdm(ids, desc="validate", unit="episode")
        for episode_id in iterator:
            report.episodes_checked += 1
            try:
                metadata = self.metadata(episode_id)
            except (OSError, ValueError, KeyError) as error:
                report.errors.append(f"{episode_id}: metadata unreadable ({error})")
                report.bad_episodes.append(episode_id)
                continue
            if metadata.get("schema_version") != SCHEMA_VERSION:
                report.errors.append(
                    f"{episode_id}: written with schema version {metadata.get('schema_version')}, "
                    f"expected {SCHEMA_VERSION}"
                )
            problems = verify_episode_dir(self._episode_dir(episode_id), metadata, checksums)
            if problems:
                report.errors.extend(problems)
                report.bad_episodes.append(episode_id)
            if metadata.get("marked"):
                report.warnings.append(f"{episode_id}: marked at recording: " + "; ".join(metadata.get("problems", [])))
        for staged in self.staged_ids():
            report.errors.append(f"{staged}: partial episode left in {STAGING}/ (run `repair`)")
        leftovers = [n for n in os.listdir(self.path / TRASH) if n != "zarr.json"]
        if leftovers:
            report.warnings.append(f"{len(leftovers)} interrupted deletion(s) in {TRASH}/ (run `repair`)")
        return report

    def repair(self, recover: bool = True, checksums: bool = True) -> RepairReport:
        """Finish or undo what an interrupted process left; never touches committed data.

        recover=True: a partial episode with data is committed as `recovered` (it ends
        where the recording stopped); recover=False removes it. A staged episode that was
        already sealed is committed if its checksums verify."""
        report = RepairReport()
        with self.writer_lock():
            for name in os.listdir(self.path / TRASH):
                if name != "zarr.json":
                    shutil.rmtree(self.path / TRASH / name, ignore_errors=True)
                    report.actions.append(
                        RepairAction(name.split(".")[0], "cleaned", "finished an interrupted deletion")
                    )
            for directory in (
                self.path,
                self.path / EPISODES,
                self.path / STAGING,
                self.path / TRASH,
            ):
                for name in os.listdir(directory):
                    if name.startswith(".") and name.endswith(".tmp"):
                        os.unlink(directory / name)
            for name in os.listdir(self.path / STAGING):
                if name == "zarr.json":
                    continue
                path = self.path / STAGING / name
                if episode_number(name) is None:
                    self._remove_dir(path)
                    report.actions.append(RepairAction(name, "removed", "not an episode directory"))
                    continue
                report.actions.append(self._repair_staged(path, recover))
            report.validation = self.validate(checksums=checksums)
        return report

    def _repair_staged(self, path: Path, recover: bool) -> RepairAction:
        episode_id = path.name
        try:
            header = read_json(path / "zarr.json")["attributes"]
        except (OSError, ValueError, KeyError):
            self._remove_dir(path)
            return RepairAction(episode_id, "removed", "killed while the episode was being created; it held no data")
        if header.get("state") == "sealed":
            problems = verify_episode_dir(path, header, checksums=True)
            if not problems:
                for log in path.glob("*/*.log"):
                    log.unlink()
                self._publish(path)
                return RepairAction(
                    episode_id,
                    "committed",
                    "it was complete and verified; the kill came just before it was made visible",
                )
            if not any(path.glob("*/*.log")):
                self._remove_dir(path)
                return RepairAction(episode_id, "removed", "sealed but failed verification: " + "; ".join(problems))
        if not recover:
            self._remove_dir(path)
            return RepairAction(episode_id, "removed", "partial episode (recovery not requested)")
        try:
            writer = EpisodeWriter.reopen(path, self.durable)
        except Exception as error:
            self._remove_dir(path)
            return RepairAction(episode_id, "removed", f"its recording could not be read back ({error})")
        counts = {name: state.count for name, state in writer.streams.items()}
        if writer.total_samples == 0:
            writer.close()
            self._remove_dir(path)
            return RepairAction(episode_id, "removed", "partial episode without any samples")
        if header.get("state") == "sealed":
            computed = {
                "state",
                "streams",
                "stream_order",
                "settings",
                "checksums",
                "checksum_algorithm",
                "marked",
                "sealed_at",
                "schema",
                "schema_version",
            }
            metadata = {k: v for k, v in header.items() if k not in computed}
            header = {**header, "metadata": metadata}
        else:
            metadata = dict(header.get("metadata", {}))
        interrupted = "recording was interrupted (process killed or crashed); the episode ends early"
        metadata.update(
            {
                "recovered": True,
                "complete": False,
                "success": None,
                "problems": [*metadata.get("problems", []), interrupted],
            }
        )
        writer.header = header
        self.commit(writer, metadata, verify_frames=True)
        summary = ", ".join(f"{n} {c}" for n, c in counts.items())
        return RepairAction(episode_id, "recovered", f"committed as incomplete with samples: {summary}")
