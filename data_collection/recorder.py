"""The recorder core: what a thin ROS node (or the simulator) drives to record episodes.

    recorder = Recorder(store, fr3_stream_specs(), robot={"type": "fr3"})
    recorder.start_episode(task="swap fruit")
    # in subscription callbacks (any thread, never blocks on disk):
    recorder.add("front", stamp_s, rgb_array, encoding="rgb8")
    recorder.add("ee_pose", stamp_s, [x, y, z, qx, qy, qz, qw])
    result = recorder.stop_episode(success=True)     # atomic commit
    # or recorder.discard_episode()

Each stream has a bounded buffer between the callback and one writer thread; a full
buffer drops the incoming sample and counts it (the callback never waits for the disk).
Bad input never stops the process: a sample with the wrong size or encoding, NaN or
infinite values, or a timestamp that goes backwards is rejected and counted; gaps,
jumps and streams that stop are noted. Every problem is reported once through the log
and `on_problem`, and the episode is committed *marked* with the list of problems.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .episode_writer import EpisodeWriter
from .schema import DiskFullError, StoreError, StreamSpec, json_safe, software_version
from .store import EpisodeStore

log = logging.getLogger("data_collection.recorder")

IDLE = "idle"
RECORDING = "recording"
FAILED = "failed"  # recording stopped by a write error (disk full); stop or discard next


@dataclass
class RecorderConfig:
    # Refuse to start with less free space; stop writing (keep what was written, and room
    # to commit it) when free space falls below half of it while recording.
    min_free_bytes: int = 256 * 2**20
    # An interval longer than gap_factor nominal periods counts as a gap (statistics).
    gap_factor: float = 3.0
    # A forward jump longer than this marks the episode (clock jump, sensor restart).
    jump_s: float = 1.0
    # A stream silent for longer than max(stall_s, 10 periods) marks the episode.
    stall_s: float = 1.0
    writer_poll_s: float = 0.005
    # Offline import only: add() waits for buffer space instead of dropping. A ROS
    # callback must never block, so live recording keeps this False.
    block_when_full: bool = False
    health_check_period_s: float = 0.25


@dataclass
class StreamStats:
    """Per-stream counters of one episode (all samples offered while recording)."""

    offered: int = 0
    accepted: int = 0
    written: int = 0
    dropped: int = 0
    rejected: int = 0
    gaps: int = 0
    max_gap_s: float = 0.0
    stalls: int = 0
    buffer_high_water: int = 0
    first_stamp: float | None = None
    last_stamp: float | None = None

    @property
    def rate_hz(self) -> float | None:
        if self.accepted > 1 and self.first_stamp is not None and self.last_stamp is not None:
            span = self.last_stamp - self.first_stamp
            return (self.accepted - 1) / span if span > 0 else None
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate_hz": self.rate_hz}


@dataclass
class CommitResult:
    """What stop_episode did; `committed` is False for an episode rejected as empty."""

    episode_id: str
    committed: bool
    message: str
    problems: list[str] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


class _Buffer:
    """Bounded FIFO of (stamp, value) with its own lock (callbacks of different streams
    never contend with each other)."""

    __slots__ = ("capacity", "items", "lock")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: list[tuple[float, Any]] = []
        self.lock = threading.Lock()

    def take(self) -> list[tuple[float, Any]]:
        with self.lock:
            items, self.items = self.items, []
        return items


class Recorder:
    """Episode lifecycle (start, stop, discard, resume), bounded per-stream buffers, a
    background writer thread and statistics. Thread-safe `add`; the lifecycle calls are
    meant for one control thread (service callbacks)."""

    def __init__(
        self,
        store: EpisodeStore,
        streams: list[StreamSpec],
        config: RecorderConfig | None = None,
        robot: dict[str, Any] | None = None,
        cameras: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        """`clock` returns the current time in the timebase of the stamps (ROS time for a
        node); it is used only to notice streams that stop."""
        self.store = store
        self.specs = {s.name: s for s in streams}
        if len(self.specs) != len(streams):
            raise ValueError(f"stream names must be unique, got {[s.name for s in streams]}")
        self.config = config or RecorderConfig()
        self.robot = robot or {}
        self.cameras = cameras or {
            s.name: {"shape": list(s.shape), "encoding": s.encoding, "rate_hz": s.rate_hz}
            for s in streams
            if s.is_image
        }
        self.clock = clock
        self.on_problem = on_problem
        self.state = IDLE
        self.episode_id: str | None = None
        self.failure: str | None = None
        self._recording = False
        self._writer: EpisodeWriter | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._abandon = False
        self._buffers = {name: _Buffer(spec.buffer_len) for name, spec in self.specs.items()}
        self._stats = {name: StreamStats() for name in self.specs}
        self._last_stamp = dict.fromkeys(self.specs, float("-inf"))
        self._stalled = dict.fromkeys(self.specs, False)
        self._problems: dict[tuple[str, str], list[Any]] = {}
        self._problem_lock = threading.Lock()
        self._latest: dict[str, np.ndarray] = {}
        self._episode_start_clock = 0.0
        self._writer_cpu_s = 0.0

    # -- the hot path ---------------------------------------------------------------

    def add(self, stream: str, stamp: float, value: Any, encoding: str | None = None) -> bool:
        """Offer one sample. Returns True if it was accepted for the episode being recorded;
        False when idle, when rejected (bad input, noted) or dropped (buffer full, counted).
        Never blocks on disk. Images are kept by reference: do not modify `value` after."""
        spec = self.specs.get(stream)
        if spec is None:
            raise KeyError(f"unknown stream {stream!r}; configured streams: {sorted(self.specs)}")
        if not self._recording:
            if not spec.is_image:
                with contextlib.suppress(TypeError, ValueError):
                    self._latest[stream] = np.asarray(value, dtype=np.float64).reshape(-1)
            return False
        stats = self._stats[stream]
        stats.offered += 1
        stamp = float(stamp)
        problem = self._check_value(spec, value, encoding)
        if problem is not None:
            return self._reject(stream, problem[0], problem[1], stamp)
        sample = value if spec.is_image else np.asarray(value, dtype=np.float64).reshape(-1)
        buffer = self._buffers[stream]
        with buffer.lock:
            if not self._recording:
                return False
            # The stamp checks are under the lock so concurrent callbacks of one stream
            # cannot interleave out of order.
            last = self._last_stamp[stream]
            if not np.isfinite(stamp):
                return self._reject(stream, "stamp", f"stream {stream!r}: timestamp {stamp} is not finite", stamp)
            if stamp <= last:
                what = "repeats" if stamp == last else f"went backwards by {last - stamp:.6f} s"
                return self._reject(
                    stream,
                    "repeat" if stamp == last else "backwards",
                    f"stream {stream!r}: timestamp {stamp:.6f} {what} (previous {last:.6f}); sample rejected",
                    stamp,
                )
            while self.config.block_when_full and len(buffer.items) >= buffer.capacity and self._recording:
                buffer.lock.release()
                try:
                    time.sleep(0.001)
                finally:
                    buffer.lock.acquire()
            if len(buffer.items) >= buffer.capacity:
                stats.dropped += 1
                self._note(
                    stream,
                    "dropped",
                    f"stream {stream!r}: buffer full ({buffer.capacity} samples), "
                    "samples dropped: the writer cannot keep up",
                )
                return False
            buffer.items.append((stamp, sample))
            if len(buffer.items) > stats.buffer_high_water:
                stats.buffer_high_water = len(buffer.items)
            self._last_stamp[stream] = stamp
        if last > float("-inf"):
            interval = stamp - last
            if interval > self.config.gap_factor * spec.period_s:
                stats.gaps += 1
                stats.max_gap_s = max(stats.max_gap_s, interval)
                if interval > self.config.jump_s:
                    self._note(
                        stream,
                        "jump",
                        f"stream {stream!r}: timestamp jumped forward by {interval:.3f} s "
                        f"at {stamp:.3f} (nominal period {spec.period_s:.4f} s)",
                    )
        else:
            stats.first_stamp = stamp
        stats.accepted += 1
        stats.last_stamp = stamp
        if self._stalled[stream]:
            self._stalled[stream] = False
        return True

    def _check_value(self, spec: StreamSpec, value: Any, encoding: str | None) -> tuple[str, str] | None:
        name = spec.name
        if spec.is_image:
            if encoding is not None and encoding != spec.encoding:
                return (
                    "encoding",
                    f"camera {name!r}: frame encoding {encoding!r}, expected {spec.encoding!r}",
                )
            if not isinstance(value, np.ndarray):
                return (
                    "type",
                    f"camera {name!r}: frame must be a numpy array, got {type(value).__name__}",
                )
            if value.dtype != np.uint8:
                return "dtype", f"camera {name!r}: frame dtype {value.dtype}, expected uint8"
            if value.shape != spec.shape:
                got = "x".join(str(s) for s in value.shape)
                want = "x".join(str(s) for s in spec.shape)
                return "size", f"camera {name!r}: frame size {got}, expected {want}"
            return None
        try:
            array = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            return "type", f"stream {name!r}: value {value!r} is not a vector of numbers"
        if array.shape[0] != spec.shape[0]:
            return "size", f"stream {name!r}: {array.shape[0]} values, expected {spec.shape[0]}"
        if not np.all(np.isfinite(array)):
            return (
                "nonfinite",
                f"stream {name!r}: NaN or infinite values {array.tolist()}; sample rejected",
            )
        return None

    def _reject(self, stream: str, kind: str, message: str, stamp: float) -> bool:
        self._stats[stream].rejected += 1
        self._note(stream, kind, f"{message} (first at t={stamp:.3f})")
        return False

    def note_problem(self, stream: str, kind: str, message: str) -> None:
        """Mark the current episode with a problem found outside add() (e.g. by a node that
        converts messages); repeated (stream, kind) pairs are counted, reported once."""
        self._note(stream, kind, message)

    def _note(self, stream: str, kind: str, message: str) -> None:
        """Record a problem; report only its first occurrence (no log flood at 1 kHz)."""
        key = (stream, kind)
        with self._problem_lock:
            entry = self._problems.get(key)
            if entry is not None:
                entry[1] += 1
                return
            self._problems[key] = [message, 1]
        log.warning("episode %s: %s", self.episode_id, message)
        if self.on_problem is not None:
            try:
                self.on_problem(message)
            except Exception:  # a failing callback must not break recording
                log.exception("on_problem callback failed")

    # -- lifecycle ------------------------------------------------------------------

    def start_episode(
        self,
        task: str = "",
        metadata: dict[str, Any] | None = None,
        initial_configuration: dict[str, Any] | None = None,
    ) -> str:
        """Begin a new episode and return its id. Raises StoreLockedError if another process
        writes the store, DiskFullError with too little free space, StoreError if an
        episode is already being recorded."""
        if self.state != IDLE:
            raise StoreError(f"cannot start: episode {self.episode_id} is {self.state}; stop or discard it first")
        if initial_configuration is None:
            initial_configuration = {name: value.tolist() for name, value in self._latest.items()}
        header = {
            "task": task,
            "success": None,
            "notes": "",
            "initial_configuration": initial_configuration,
            "robot": self.robot,
            "cameras": self.cameras,
            "rates": {name: spec.rate_hz for name, spec in self.specs.items()},
            "software_version": software_version(),
            **(metadata or {}),
        }
        self.store.acquire_writer_lock()
        try:
            writer = self.store.begin_episode(list(self.specs.values()), header, self.config.min_free_bytes)
        except BaseException:
            self.store.release_writer_lock()
            raise
        self._begin(writer)
        log.info("episode %s started (task %r)", self.episode_id, task)
        return writer.directory.name

    def pending_episodes(self) -> list[str]:
        """Staged episodes left by a recorder that was killed (resume or repair them)."""
        if self.state != IDLE:
            return []
        return self.store.staged_ids()

    def resume_episode(self, episode_id: str | None = None) -> str:
        """Continue an episode that a killed recorder left in staging (the newest one by
        default). The missing interval shows as a gap and the episode records when it was
        resumed."""
        if self.state != IDLE:
            raise StoreError(f"cannot resume: episode {self.episode_id} is {self.state}")
        pending = self.store.staged_ids()
        if not pending:
            raise StoreError(f"no interrupted episode to resume in {self.store.path}")
        episode_id = episode_id or pending[-1]
        self.store.acquire_writer_lock()
        try:
            writer = self.store.reopen_staged(episode_id)
            resumed = [*writer.header.get("resumed_at", []), time.time()]
            writer.update_header(resumed_at=resumed)
        except BaseException:
            self.store.release_writer_lock()
            raise
        self._begin(writer)
        for name, state in writer.streams.items():
            if name in self._last_stamp and state.count:
                self._last_stamp[name] = state.last_stamp
        self._note(
            "*",
            "resumed",
            f"resumed after an interruption; samples offered while the recorder was down "
            f"are missing (resume {len(resumed)})",
        )
        log.info("episode %s resumed", episode_id)
        return episode_id

    def _begin(self, writer: EpisodeWriter) -> None:
        self._writer = writer
        self.episode_id = writer.directory.name
        self.failure = None
        self._stats = {name: StreamStats() for name in self.specs}
        self._last_stamp = dict.fromkeys(self.specs, float("-inf"))
        self._stalled = dict.fromkeys(self.specs, False)
        self._problems = {}
        for buffer in self._buffers.values():
            buffer.take()
        self._stop.clear()
        self._abandon = False
        self._episode_start_clock = self.clock()
        self._writer_cpu_s = 0.0
        self.state = RECORDING
        self._recording = True
        self._thread = threading.Thread(target=self._run_writer, name=f"recorder-{self.episode_id}", daemon=True)
        self._thread.start()

    def _halt(self, abandon: bool) -> None:
        self._recording = False
        for buffer in self._buffers.values():  # wait for any add() inside its critical section
            with buffer.lock:
                pass
        self._abandon = abandon
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def stop_episode(
        self, success: bool | None = None, notes: str = "", metadata: dict[str, Any] | None = None
    ) -> CommitResult:
        """Write what is buffered, then commit atomically. An episode without any sample is
        discarded (committed=False). If committing fails (disk full), the episode stays in
        staging for `repair` and DiskFullError/StoreError is raised; the recorder is idle
        again either way."""
        if self.state == IDLE or self._writer is None:
            raise StoreError("no episode is being recorded")
        self._halt(abandon=False)
        writer, episode_id = self._writer, self.episode_id or ""
        self._final_stream_checks()
        statistics = self.statistics()
        problems = self.problems()
        try:
            if writer.total_samples == 0:
                self.store.discard(writer)
                return CommitResult(
                    episode_id,
                    False,
                    f"episode {episode_id} had no samples and was discarded",
                    problems,
                    statistics,
                )
            final = {
                "success": success,
                "notes": notes,
                "stopped_at": time.time(),
                "duration_s": self.clock() - self._episode_start_clock,
                "statistics": statistics,
                "problems": problems,
                "recovered": False,
                "complete": self.failure is None,
                **(metadata or {}),
            }
            try:
                committed = self.store.commit(writer, json_safe(final))
            except OSError as error:
                raise DiskFullError(
                    f"episode {episode_id} could not be committed ({error}); it is kept in "
                    f"{self.store.path}/_staging: free space and run `repair` to recover it"
                ) from error
            message = f"episode {episode_id} committed" + (f" (marked: {len(problems)} problem(s))" if problems else "")
            log.info(message)
            return CommitResult(episode_id, True, message, problems, statistics, committed)
        finally:
            self._finish()

    def discard_episode(self) -> str:
        """Drop the episode being recorded (or a failed one); nothing is committed."""
        if self.state == IDLE or self._writer is None:
            raise StoreError("no episode is being recorded")
        self._halt(abandon=True)
        episode_id = self.episode_id or ""
        try:
            self.store.discard(self._writer)
        finally:
            self._finish()
        log.info("episode %s discarded", episode_id)
        return episode_id

    def _finish(self) -> None:
        self._writer = None
        self.state = IDLE
        self.store.release_writer_lock()

    def close(self) -> None:
        """Stop the writer thread without committing (the episode stays resumable)."""
        if self.state != IDLE and self._writer is not None:
            self._halt(abandon=False)
            self._writer.close()
            self._finish()

    # -- the writer thread ----------------------------------------------------------

    def _run_writer(self) -> None:
        cpu_start = time.thread_time()
        next_check = time.monotonic()
        try:
            while True:
                stopping = self._stop.wait(self.config.writer_poll_s)
                if stopping and self._abandon:
                    break
                if self.state == RECORDING:
                    self._drain()
                    if time.monotonic() >= next_check:
                        next_check = time.monotonic() + self.config.health_check_period_s
                        self._check_health()
                if stopping:
                    if self.state == RECORDING:
                        self._drain()
                    break
        finally:
            self._writer_cpu_s += time.thread_time() - cpu_start

    def _drain(self) -> None:
        writer = self._writer
        assert writer is not None
        for name, buffer in self._buffers.items():
            items = buffer.take()
            if not items:
                continue
            try:
                if self.specs[name].is_image:
                    for stamp, frame in items:
                        writer.append_frame(name, stamp, frame)
                        self._stats[name].written += 1
                else:
                    stamps = np.fromiter((s for s, _ in items), dtype=np.float64, count=len(items))
                    values = np.stack([v for _, v in items])
                    writer.append_vectors(name, stamps, values)
                    self._stats[name].written += len(items)
            except OSError as error:
                self._fail(name, error)
                return

    def _fail(self, stream: str, error: OSError) -> None:
        """A write failed: stop recording (keep what is on disk), keep the process alive."""
        self._recording = False
        self.state = FAILED
        reason = "disk full" if error.errno in (28, 122) else "write error"
        self.failure = (
            f"{reason} while writing stream {stream!r} of episode {self.episode_id} ({error}); "
            "recording stopped; stop_episode() commits what was written, marked"
        )
        self._note(stream, "write", self.failure)
        for buffer in self._buffers.values():
            buffer.take()

    def _check_health(self) -> None:
        try:
            free = self.store.free_bytes()
        except OSError:
            free = None
        if free is not None and free < self.config.min_free_bytes // 2:
            self._fail("*", OSError(28, f"only {free / 1e6:.0f} MB free, below the recording reserve"))
            return
        now = self.clock()
        for name, spec in self.specs.items():
            limit = max(self.config.stall_s, 10 * spec.period_s)
            last = self._last_stamp[name]
            reference = last if last > float("-inf") else self._episode_start_clock
            if not self._stalled[name] and now - reference > limit:
                self._stalled[name] = True
                self._stats[name].stalls += 1
                since = "since the episode started" if last == float("-inf") else f"since t={last:.3f}"
                self._note(
                    name,
                    "stall",
                    f"stream {name!r} stopped: no sample for {now - reference:.2f} s {since} "
                    f"(expected every {spec.period_s:.4f} s)",
                )

    def _final_stream_checks(self) -> None:
        for name, stats in self._stats.items():
            if stats.accepted == 0 and not self._writer_has(name):
                self._note(name, "empty", f"stream {name!r} delivered no samples during the episode")

    def _writer_has(self, name: str) -> bool:
        writer = self._writer
        return bool(writer is not None and name in writer.streams and writer.streams[name].count)

    # -- reporting ------------------------------------------------------------------

    def problems(self) -> list[str]:
        with self._problem_lock:
            return [
                message if count == 1 else f"{message} [{count} times]" for message, count in self._problems.values()
            ]

    def statistics(self) -> dict[str, Any]:
        """Per-stream counters plus totals; cheap enough for a 1 Hz diagnostics timer."""
        streams = {name: stats.to_dict() for name, stats in self._stats.items()}
        return {
            "episode_id": self.episode_id,
            "state": self.state,
            "failure": self.failure,
            "streams": streams,
            "offered": sum(s.offered for s in self._stats.values()),
            "written": sum(s.written for s in self._stats.values()),
            "dropped": sum(s.dropped for s in self._stats.values()),
            "rejected": sum(s.rejected for s in self._stats.values()),
            "writer_cpu_s": self._writer_cpu_s,
            "buffered": {name: len(b.items) for name, b in self._buffers.items()},
        }
