"""LeRobot dataset v3 interchange: an episode store to a LeRobot dataset and back.

The format (LeRobot's `codebase_version` "v3.0", as its dataset code writes and reads it):

    meta/info.json                     fps (an integer), features (dtype, shape, names; video
                                       features carry their encoding under `info`), paths
    meta/tasks.parquet                 one row per task string (the pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet
                                       one row per episode: length, tasks, where its rows
                                       (dataset_from_index/to_index, data file) and its video
                                       (file, from_timestamp/to_timestamp) are
    meta/stats.json                    per feature: min, max, mean, std, count, quantiles
    data/chunk-XXX/file-YYY.parquet    one row per frame: every non-video feature, timestamp
                                       (s from the episode start), frame_index,
                                       episode_index, index (global), task_index
    videos/<key>/chunk-XXX/file-YYY.mp4
                                       one video per camera; an episode is the span
                                       [from_timestamp, to_timestamp) of its file

Export (`export_lerobot`): frames at a chosen integer fps from the time every stream the
policy reads has started; per frame, `observation.state` is the embodiment's proprioception
and `action` its action (data_collection.mapping.FeatureMapping, the trainer's own), each
camera a video feature `observation.images.<camera>` (H.264). What LeRobot's format cannot
hold is said in the report: per-stream timestamps (everything becomes frame-indexed),
samples between frames, streams the embodiment does not read, lossless frames, the store's
marks. A side file, meta/dfstack.json (LeRobot ignores files it does not know), keeps the
episode ids, success flags, notes and start times, so importing the export restores them.

Import (`import_lerobot`): one store episode per LeRobot episode, through the Recorder (the
store's own validation and atomic commit). Every stream is stamped at the frames'
`timestamp`s. When `observation.state` and `action` have an embodiment's layout (names as
the export writes them, or `embodiment=` given), they become that embodiment's recorded
streams (ee_pose + gripper + command, or joint_states + gripper + joint_command) so the
trainer reads them as a recording; otherwise each feature is a stream of its own name.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from robots.embodiment import EMBODIMENTS, POSE_FIELDS, Embodiment, StreamNames, embodiment, vector_to_pose

from .mapping import FeatureMapping
from .recorder import Recorder, RecorderConfig
from .schema import IMAGE, VECTOR, StoreError, StreamSpec, json_safe
from .store import Episode, EpisodeStore

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk directory
DATA_FILE_ROWS = 500_000  # frames per data file before a new one starts
STATE = "observation.state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."
FRAME_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
SIDE_FILE = "meta/dfstack.json"
VIDEO_CODEC = "libx264"


class LeRobotFormatError(StoreError):
    """A dataset that is not a LeRobot v3 dataset this code can read; the message names the
    file and what was expected."""


def _chunk_file(index: int) -> tuple[int, int]:
    return index // CHUNKS_SIZE, index % CHUNKS_SIZE


def _data_path(chunk: int, file: int) -> str:
    return f"data/chunk-{chunk:03d}/file-{file:03d}.parquet"


def _video_path(key: str, chunk: int, file: int) -> str:
    return f"videos/{key}/chunk-{chunk:03d}/file-{file:03d}.mp4"


# -- export ----------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    path: Path
    fps: int
    episodes: dict[str, int] = field(default_factory=dict)  # store episode id -> frames exported
    cameras: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # what the LeRobot format cannot hold
    warnings: list[str] = field(default_factory=list)  # per-episode gaps and skips

    @property
    def frames(self) -> int:
        return sum(self.episodes.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "fps": self.fps,
            "episodes": self.episodes,
            "frames": self.frames,
            "cameras": self.cameras,
            "lost": self.lost,
            "warnings": self.warnings,
        }


def _mapping_for(episode: Episode, embodiment_name: str, streams: dict[str, str] | None) -> FeatureMapping:
    """The embodiment's streams, replaced by the names an imported episode recorded
    (`training_streams`), replaced by the caller's."""
    model = embodiment(embodiment_name)
    names = dict(vars(model.streams))
    recorded = episode.metadata.get("training_streams")
    if isinstance(recorded, dict):
        names.update({k: v for k, v in recorded.items() if k in names})
    names.update(streams or {})
    return FeatureMapping(model, StreamNames(**names))


def _action_names(model: Embodiment) -> list[str]:
    # Both embodiments act in their proprioception's layout (position + rotation 6D +
    # width, or 7 joints + width): the action's columns carry the same names.
    if model.action.dim != model.proprio_dim:
        return [f"a{i}" for i in range(model.action.dim)]
    return list(model.proprio_names)


def _frame_times(episode: Episode, streams: Sequence[str], fps: int) -> np.ndarray:
    starts = [float(episode.stamps(s)[0]) for s in streams]
    ends = [float(episode.stamps(s)[-1]) for s in streams]
    t0, t_end = max(starts), min(ends)
    if t_end < t0:
        return np.zeros(0)
    count = int(np.floor((t_end - t0) * fps + 1e-6)) + 1
    return t0 + np.arange(count) / fps


def _newest_at(stamps: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the newest sample at or before each time, and its age (s)."""
    index = np.clip(np.searchsorted(stamps, times + 1e-9, side="right") - 1, 0, len(stamps) - 1)
    return index, times - stamps[index]


def _stats(values: np.ndarray) -> dict[str, Any]:
    """LeRobot's per-feature statistics over axis 0 (quantiles exact, not binned)."""
    values = np.asarray(values, dtype=np.float64)
    stats: dict[str, Any] = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": values.mean(axis=0),
        "std": values.std(axis=0),
        "count": [int(values.shape[0])],
    }
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.quantile(values, q, axis=0)
    return {k: np.asarray(v).tolist() for k, v in stats.items()}


def _image_stats(pixels: np.ndarray) -> dict[str, Any]:
    """Per-channel statistics in [0, 1], shaped (C, 1, 1) as LeRobot keeps them."""
    per_channel = pixels.reshape(-1, pixels.shape[-1]).astype(np.float64) / 255.0
    return {
        k: (np.asarray(v).reshape(-1, 1, 1).tolist() if k != "count" else v) for k, v in _stats(per_channel).items()
    }


class _VideoWriter:
    """H.264 through PyAV; frame i is at exactly i / fps, as LeRobot looks frames up."""

    def __init__(self, path: Path, fps: int, height: int, width: int, crf: int) -> None:
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream(
            VIDEO_CODEC, rate=fps, options={"crf": str(crf), "g": "2", "preset": "veryfast"}
        )
        self.stream.width, self.stream.height = width, height
        # 4:2:0 needs even sizes; odd ones keep full chroma.
        self.stream.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
        self.stream.time_base = Fraction(1, fps)
        self.count = 0

    def write(self, image: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.count
        self.count += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def export_lerobot(
    store: EpisodeStore,
    out: str | Path,
    fps: int,
    embodiment_name: str = "ee_pose",
    streams: dict[str, str] | None = None,
    cameras: Sequence[str] | None = None,
    episode_ids: Sequence[str] | None = None,
    robot_type: str | None = None,
    crf: int = 18,
    progress: bool = False,
) -> ExportReport:
    """Write the store's episodes as a LeRobot v3 dataset at `out` (which must not exist;
    the dataset is built beside it and renamed into place, so a killed export leaves no
    half dataset there). streams: training stream names replacing the embodiment's (as
    task.streams does). Raises StoreError / ValueError naming what does not fit."""
    out = Path(out)
    if out.exists():
        raise StoreError(f"cannot export to {out}: the path exists; give a new directory")
    if not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps must be a whole number of frames per second >= 1 (LeRobot's), got {fps!r}")
    ids = list(episode_ids) if episode_ids else store.episode_ids()
    if not ids:
        raise StoreError(f"{store.path} has no episodes to export")
    first = store.episode(ids[0])
    cameras = list(cameras) if cameras else [s for s in first.stream_names if first.spec(s).is_image]
    model = embodiment(embodiment_name)
    building = out.with_name(f".{out.name}.exporting-{uuid.uuid4().hex[:8]}")
    building.mkdir(parents=True)
    try:
        report = _export(store, building, fps, model, streams, cameras, ids, robot_type, crf, progress)
        os.rename(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    report.path = out
    return report


def _export(
    store: EpisodeStore,
    root: Path,
    fps: int,
    model: Embodiment,
    streams: dict[str, str] | None,
    cameras: list[str],
    ids: list[str],
    robot_type: str | None,
    crf: int,
    progress: bool,
) -> ExportReport:
    import pyarrow as pa
    import pyarrow.parquet as pq

    report = ExportReport(root, fps, cameras=list(cameras))
    tasks: dict[str, int] = {}
    episode_rows: list[dict[str, Any]] = []
    data_tables: list[Any] = []
    data_file, data_rows, global_index = 0, 0, 0
    all_state, all_action, camera_samples = [], [], {c: [] for c in cameras}
    side: dict[str, Any] = {"source_store": str(store.path), "embodiment": model.name, "episodes": []}
    shapes: dict[str, tuple[int, ...]] = {}
    skipped_streams: set[str] = set()
    iterator: Any = ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(ids, desc="export-lerobot", unit="episode")
    for episode_id in iterator:
        episode = store.episode(episode_id)
        mapping = _mapping_for(episode, model.name, streams)
        missing = [c for c in cameras if c not in episode.stream_names]
        problems = [f"lacks camera(s) {missing}"] if missing else []
        problems += mapping.stream_problems({s: episode.spec(s) for s in episode.stream_names})
        if problems:
            raise StoreError(f"{store.path}: episode {episode_id} {'; '.join(problems)}; it cannot be exported")
        needed = [*cameras, *mapping.proprio_streams(), *mapping.action_streams()]
        if any(episode.count(s) == 0 for s in needed):
            report.warnings.append(f"{episode_id}: skipped, a stream it needs has no samples")
            continue
        times = _frame_times(episode, needed, fps)
        if len(times) < 1:
            report.warnings.append(f"{episode_id}: skipped, its streams never overlap in time")
            continue
        skipped_streams |= set(episode.stream_names) - set(needed)
        names = mapping.streams
        picked, stale = {}, {}
        for stream in dict.fromkeys([*cameras, *mapping.proprio_streams()]):
            picked[stream], age = _newest_at(episode.stamps(stream), times)
            stale[stream] = int((age > max(0.1, 2.5 / episode.spec(stream).rate_hz)).sum())
        # The action of frame i is the command in force in the middle of its interval,
        # what the robot executed after observation i (data_collection.reader's rule).
        middle = times + 0.5 / fps
        command_index, _ = _newest_at(episode.stamps(names.command), middle)
        commands = episode.values(names.command)[command_index]
        widths = None
        if names.command_gripper:
            width_index, _ = _newest_at(episode.stamps(names.command_gripper), middle)
            widths = episode.values(names.command_gripper)[width_index]
        state = mapping.proprio(
            episode.values(names.state)[picked[names.state]], episode.values(names.gripper)[picked[names.gripper]]
        )
        action = mapping.action(commands, widths)
        for stream, count in stale.items():
            if count:
                report.warnings.append(
                    f"{episode_id}: {count} of {len(times)} frames hold a '{stream}' sample older than its "
                    "tolerance (a gap; LeRobot has no mask, the last sample is repeated)"
                )
        task = str(episode.metadata.get("task") or "")
        task_index = tasks.setdefault(task, len(tasks))
        number = len(episode_rows)
        row: dict[str, Any] = {"episode_index": number, "tasks": [task], "length": len(times)}
        for camera in cameras:
            key = IMAGE_PREFIX + camera
            chunk, file = _chunk_file(number)
            frames = episode.frames(camera)
            shapes[key] = tuple(episode.spec(camera).shape)
            height, width, _ = shapes[key]
            writer = _VideoWriter(root / _video_path(key, chunk, file), fps, height, width, crf)
            cache: dict[int, np.ndarray] = {}
            try:
                for j in picked[camera].tolist():
                    if j not in cache:
                        cache.clear()
                        image = np.asarray(frames[j])
                        cache[j] = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
                    writer.write(cache[j])
            finally:
                writer.close()
            for j in np.unique(picked[camera][np.linspace(0, len(times) - 1, 5).astype(int)]).tolist():
                sample = np.asarray(frames[j])
                camera_samples[camera].append(sample if sample.shape[2] == 3 else np.repeat(sample, 3, axis=2))
            row.update(
                {
                    f"videos/{key}/chunk_index": chunk,
                    f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": 0.0,
                    f"videos/{key}/to_timestamp": len(times) / fps,
                }
            )
        if data_rows >= DATA_FILE_ROWS:
            _write_data(root, data_file, data_tables, pq, pa)
            data_file, data_rows, data_tables = data_file + 1, 0, []
        chunk, file = _chunk_file(data_file)
        frame_index = np.arange(len(times))
        data_tables.append(
            {
                STATE: state.astype(np.float32),
                ACTION: action.astype(np.float32),
                "timestamp": (frame_index / fps).astype(np.float32),
                "frame_index": frame_index,
                "episode_index": np.full(len(times), number),
                "index": global_index + frame_index,
                "task_index": np.full(len(times), task_index),
            }
        )
        row.update(
            {
                "data/chunk_index": chunk,
                "data/file_index": file,
                "dataset_from_index": global_index,
                "dataset_to_index": global_index + len(times),
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
            }
        )
        episode_rows.append(row)
        all_state.append(state)
        all_action.append(action)
        global_index += len(times)
        data_rows += len(times)
        report.episodes[episode_id] = len(times)
        side["episodes"].append(
            {
                "episode_index": number,
                "store_episode": episode_id,
                "start_stamp": float(times[0]),
                "success": episode.metadata.get("success"),
                "notes": episode.metadata.get("notes", ""),
                "marked": bool(episode.metadata.get("marked")),
                "problems": episode.metadata.get("problems", []),
                "streams": vars(names),
                "source": episode.metadata.get("source"),
            }
        )
    if not episode_rows:
        raise StoreError(f"no episode of {store.path} could be exported: " + "; ".join(report.warnings))
    _write_data(root, data_file, data_tables, pq, pa)
    _write_meta(root, fps, model, cameras, shapes, tasks, episode_rows, robot_type, pq, pa)
    states, actions = np.concatenate(all_state), np.concatenate(all_action)
    frame_columns = pq.read_table(root / "data", columns=list(FRAME_FEATURES)).to_pydict()
    stats = {STATE: _stats(states), ACTION: _stats(actions)}
    stats.update({name: _stats(np.asarray(frame_columns[name])[:, None]) for name in FRAME_FEATURES})
    stats.update({IMAGE_PREFIX + c: _image_stats(np.stack(s)) for c, s in camera_samples.items()})
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=2))
    report.lost = [
        f"per-stream timestamps: every value is resampled onto the {fps} fps frame grid (frame-indexed, "
        "timestamp = frame_index / fps); the original start time of each episode is kept in meta/dfstack.json",
        "samples between frames (e.g. 1 kHz state, 100 Hz commands) and stream gaps (no masks in LeRobot)",
        f"camera frames are H.264 video ({VIDEO_CODEC}, crf {crf}): lossy, not the store's exact pixels",
    ]
    if skipped_streams:
        report.lost.append(
            f"streams the embodiment does not read: {sorted(skipped_streams)} (e.g. joint velocities, teleop input)"
        )
    report.lost.append("recorder marks and problems, success and notes: kept only in meta/dfstack.json")
    side["lost"] = report.lost
    (root / SIDE_FILE).write_text(json.dumps(json_safe(side), indent=2))
    return report


def _write_data(root: Path, data_file: int, tables: list[dict[str, np.ndarray]], pq: Any, pa: Any) -> None:
    if not tables:
        return
    columns: dict[str, Any] = {}
    for name in (STATE, ACTION):
        values = np.concatenate([t[name] for t in tables]).astype(np.float32)
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    columns["timestamp"] = pa.array(np.concatenate([t["timestamp"] for t in tables]), pa.float32())
    for name in ("frame_index", "episode_index", "index", "task_index"):
        columns[name] = pa.array(np.concatenate([t[name] for t in tables]).astype(np.int64), pa.int64())
    chunk, file = _chunk_file(data_file)
    path = root / _data_path(chunk, file)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _video_info(path: Path, fps: int) -> dict[str, Any]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.name,
            "video.pix_fmt": stream.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": False,
        }


def _write_meta(
    root: Path,
    fps: int,
    model: Embodiment,
    cameras: list[str],
    shapes: dict[str, tuple[int, ...]],
    tasks: dict[str, int],
    episode_rows: list[dict[str, Any]],
    robot_type: str | None,
    pq: Any,
    pa: Any,
) -> None:
    features: dict[str, Any] = {
        STATE: {"dtype": "float32", "shape": [model.proprio_dim], "names": list(model.proprio_names)},
        ACTION: {"dtype": "float32", "shape": [model.action.dim], "names": _action_names(model)},
    }
    for camera in cameras:
        key = IMAGE_PREFIX + camera
        features[key] = {
            "dtype": "video",
            "shape": list(shapes[key]),
            "names": ["height", "width", "channels"],
            "info": _video_info(root / _video_path(key, 0, 0), fps),
        }
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for name in ("frame_index", "episode_index", "index", "task_index"):
        features[name] = {"dtype": "int64", "shape": [1], "names": None}
    frames = sum(row["length"] for row in episode_rows)
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(episode_rows),
        "total_frames": frames,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": f"0:{len(episode_rows)}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4" if cameras else None,
        "features": features,
    }
    meta = root / "meta"
    (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    (meta / "info.json").write_text(json.dumps(info, indent=4))
    columns = {key: [row.get(key) for row in episode_rows] for key in episode_rows[0]}
    pq.write_table(pa.table(columns), meta / "episodes" / "chunk-000" / "file-000.parquet")
    names = sorted(tasks, key=tasks.get)  # type: ignore[arg-type]
    # A pandas frame indexed by the task string (what LeRobot reads with pd.read_parquet).
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
    }
    table = pa.table({"task_index": pa.array([tasks[n] for n in names], pa.int64()), "__index_level_0__": names})
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, meta / "tasks.parquet")


# -- import ----------------------------------------------------------------------------------------


@dataclass
class LeRobotImport:
    dataset: Path
    episode_ids: list[str] = field(default_factory=list)
    streams: dict[str, str] = field(default_factory=dict)  # feature -> stream
    embodiment: str | None = None
    lost: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset),
            "episode_ids": self.episode_ids,
            "streams": self.streams,
            "embodiment": self.embodiment,
            "lost": self.lost,
        }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise LeRobotFormatError(f"{path} is missing: not a LeRobot dataset (expected meta/info.json)") from error
    except (OSError, ValueError) as error:
        raise LeRobotFormatError(f"{path} cannot be read as JSON: {error}") from error


def _read_parquet(paths: list[Path], what: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not paths:
        raise LeRobotFormatError(f"no {what} parquet file found")
    try:
        return pa.concat_tables([pq.read_table(p) for p in paths], promote_options="default")
    except (OSError, pa.ArrowInvalid) as error:
        raise LeRobotFormatError(f"{what} cannot be read: {error}") from error


def _column(table: Any, name: str) -> np.ndarray:
    """A scalar column as numpy, or a (fixed size) list column as (rows, dim)."""
    import pyarrow as pa

    column = table.column(name).combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type) or pa.types.is_large_list(column.type):
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), -1)
    return column.to_numpy(zero_copy_only=False)


def _stream_name(feature: str) -> str:
    name = feature[len(IMAGE_PREFIX) :] if feature.startswith(IMAGE_PREFIX) else feature
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)


def _detect_embodiment(features: dict[str, Any]) -> Embodiment | None:
    state, action = features.get(STATE, {}), features.get(ACTION, {})
    for cls in EMBODIMENTS.values():
        model = cls()
        if list(state.get("names") or []) == list(model.proprio_names) and list(action.get("names") or []) == (
            _action_names(model)
        ):
            return model
    return None


def _video_frames(path: Path, times: np.ndarray, fps: int) -> Iterator[np.ndarray]:
    """The frames shown at `times` (s in the file, increasing), in order: for each time the
    decoded frame nearest to it (within half a frame period). Decodes as it goes, so an
    episode's video is never held in memory whole."""
    import av

    tolerance = 0.5 / fps
    wanted = 0
    previous: tuple[float, Any] | None = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if times[0] > tolerance:
            container.seek(int(max(0.0, times[0] - 1.0) / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            while wanted < len(times) and t >= times[wanted]:
                # the nearer of this frame and the one before it
                best = previous if previous and times[wanted] - previous[0] < t - times[wanted] else (t, frame)
                if abs(best[0] - times[wanted]) > tolerance:
                    raise LeRobotFormatError(
                        f"{path}: no frame within {tolerance:.4f} s of t = {times[wanted]:.4f} s (nearest at "
                        f"{best[0]:.4f} s)"
                    )
                yield best[1].to_ndarray(format="rgb24")
                wanted += 1
            if wanted == len(times):
                return
            previous = (t, frame)
    if wanted < len(times):
        if previous is not None and abs(previous[0] - times[wanted]) <= tolerance:
            for _ in range(wanted, len(times)):  # the last frame(s), within tolerance of the end
                yield previous[1].to_ndarray(format="rgb24")
            return
        raise LeRobotFormatError(f"{path}: the video ends before t = {times[wanted]:.4f} s")


def import_lerobot(
    dataset: str | Path,
    store: EpisodeStore,
    embodiment_name: str | None = "auto",
    episodes: Sequence[int] | None = None,
    progress: bool = False,
) -> LeRobotImport:
    """Import a LeRobot v3 dataset (a local directory): one episode per LeRobot episode.
    embodiment_name: "auto" (recognised from the feature names), an embodiment's name
    (state and action have its layout), or None (every feature a stream of its own)."""
    root = Path(dataset)
    info = _read_json(root / "meta" / "info.json")
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise LeRobotFormatError(
            f"{root} is a LeRobot dataset of format {version or 'unknown'}; this reads v3.0 (convert older ones "
            "with LeRobot's convert_dataset_v21_to_v30)"
        )
    fps = info.get("fps")
    if not isinstance(fps, int) or fps < 1:
        raise LeRobotFormatError(f"{root}/meta/info.json: fps must be a whole number >= 1, got {fps!r}")
    features: dict[str, Any] = info.get("features") or {}
    side = json.loads((root / SIDE_FILE).read_text()) if (root / SIDE_FILE).is_file() else {}
    videos = [k for k, f in features.items() if f.get("dtype") == "video"]
    images = [k for k, f in features.items() if f.get("dtype") == "image"]
    vectors = [
        k
        for k, f in features.items()
        if k not in FRAME_FEATURES and f.get("dtype") not in ("video", "image", "string") and len(f["shape"]) == 1
    ]
    model: Embodiment | None
    if embodiment_name == "auto":
        model = _detect_embodiment(features)
    elif embodiment_name is None:
        model = None
    else:
        model = embodiment(embodiment_name)
        for key, dim in ((STATE, model.proprio_dim), (ACTION, model.action.dim)):
            if key not in features or list(features[key]["shape"]) != [dim]:
                raise LeRobotFormatError(
                    f"{root}: embodiment {model.name!r} needs {key} of {dim} values, the dataset has "
                    f"{features.get(key, {}).get('shape', 'none')}"
                )
    tasks_table = _read_parquet([root / "meta" / "tasks.parquet"], f"{root}/meta/tasks.parquet").to_pydict()
    task_column = next((c for c in tasks_table if c != "task_index"), None)
    task_names = dict(zip(tasks_table["task_index"], tasks_table[task_column], strict=True)) if task_column else {}
    meta_rows = _read_parquet(
        sorted((root / "meta" / "episodes").glob("*/*.parquet")), f"{root}/meta/episodes"
    ).to_pydict()
    table = _read_parquet(sorted((root / "data").glob("*/*.parquet")), f"{root}/data")
    data = {name: _column(table, name) for name in [*FRAME_FEATURES, *vectors] if name in table.column_names}
    data.update({name: table.column(name).to_pylist() for name in images if name in table.column_names})
    absent = [name for name in [*FRAME_FEATURES, *vectors, *images] if name not in data]
    if absent:
        raise LeRobotFormatError(f"{root}/data: the frames lack the column(s) {absent} that meta/info.json declares")
    data_episode = data["episode_index"]
    side_episodes = {e["episode_index"]: e for e in side.get("episodes", [])}
    result = LeRobotImport(root, embodiment=model.name if model else None)
    specs = _import_specs(features, videos, images, vectors, model, fps, result)
    newest = [0.0]  # the recorder's clock: the newest stamp fed (streams that stop, in the data's own time)
    recorder = Recorder(store, specs, RecorderConfig(block_when_full=True, min_free_bytes=0), clock=lambda: newest[0])
    wanted = set(episodes) if episodes is not None else None
    order = list(range(len(meta_rows["episode_index"])))
    iterator: Any = [i for i in order if wanted is None or meta_rows["episode_index"][i] in wanted]
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="import-lerobot", unit="episode")
    for row in iterator:
        index = int(meta_rows["episode_index"][row])
        rows = np.flatnonzero(data_episode == index)
        rows = rows[np.argsort(data["frame_index"][rows])]
        extra = side_episodes.get(index, {})
        start = float(extra.get("start_stamp", 0.0))
        stamps = start + data["timestamp"][rows].astype(np.float64)
        tasks = list(meta_rows.get("tasks", [[]] * len(order))[row] or [])
        frame_tasks = sorted({task_names.get(t, "") for t in data["task_index"][rows].tolist()})
        metadata = {
            "source": {
                "lerobot": str(root),
                "codebase_version": version,
                "episode_index": index,
                "fps": fps,
                "exported_from": extra.get("store_episode"),
                "problems_at_export": extra.get("problems", []),
            },
            "tasks": tasks or frame_tasks,
            "timestamps": "frame-indexed: every stream is stamped at the frames' times (LeRobot keeps one per frame)",
        }
        recorder.start_episode(task=(tasks or frame_tasks or [""])[0], metadata=metadata)
        try:
            _feed_episode(
                recorder, newest, root, info, meta_rows, row, rows, data, stamps, videos, images, vectors, model
            )
        except BaseException:
            recorder.discard_episode()
            raise
        committed = recorder.stop_episode(success=extra.get("success"), notes=extra.get("notes", ""))
        if committed.committed:
            result.episode_ids.append(committed.episode_id)
    return result


def _import_specs(
    features: dict[str, Any],
    videos: list[str],
    images: list[str],
    vectors: list[str],
    model: Embodiment | None,
    fps: int,
    result: LeRobotImport,
) -> list[StreamSpec]:
    specs = []
    for key in [*videos, *images]:
        height, width, channels = (int(v) for v in features[key]["shape"])
        if channels not in (1, 3):
            channels = 3
        name = _stream_name(key)
        result.streams[key] = name
        specs.append(StreamSpec(name, IMAGE, (height, width, 3), float(fps), "rgb8", description=f"LeRobot {key}"))
    rest = list(vectors)
    if model is not None:
        names = model.streams
        state_fields = POSE_FIELDS if model.name == "ee_pose" else tuple(f"joint{i}" for i in range(1, 8))
        specs += [
            StreamSpec(names.state, VECTOR, (len(state_fields),), float(fps), fields=state_fields),
            StreamSpec(names.gripper, VECTOR, (1,), float(fps), fields=("width",)),
            StreamSpec(names.command, VECTOR, (len(model.command_fields),), float(fps), fields=model.command_fields),
        ]
        result.streams[STATE] = f"{names.state} + {names.gripper}"
        result.streams[ACTION] = names.command
        rest = [k for k in rest if k not in (STATE, ACTION)]
    for key in rest:
        name = _stream_name(key)
        result.streams[key] = name
        field_names = features[key].get("names")
        if isinstance(field_names, dict):  # older datasets: {"motors": [...]}
            field_names = next(iter(field_names.values()), None)
        dim = int(features[key]["shape"][0])
        fields_ = (
            tuple(str(n) for n in field_names) if isinstance(field_names, list) and len(field_names) == dim else ()
        )
        specs.append(StreamSpec(name, VECTOR, (dim,), float(fps), fields=fields_, description=f"LeRobot {key}"))
    result.lost = [
        "per-stream timestamps: LeRobot has one time per frame, so every stream is stamped at the frame times",
        "exact pixels: frames are decoded from lossy video",
    ]
    if model is not None and model.name == "joint_position":
        result.lost.append("joint velocities: the joint_states stream holds the 7 positions only")
    return specs


def _feed_episode(
    recorder: Recorder,
    clock: list[float],
    root: Path,
    info: dict[str, Any],
    meta_rows: dict[str, list[Any]],
    row: int,
    rows: np.ndarray,
    data: dict[str, Any],
    stamps: np.ndarray,
    videos: list[str],
    images: list[str],
    vectors: list[str],
    model: Embodiment | None,
) -> None:
    """Feed one episode frame by frame, in time order (the recorder's clock, which notices
    streams that stop, is the frame's time)."""
    import io

    import imageio.v3 as iio

    fps = int(info["fps"])
    video_path = str(info.get("video_path") or "")
    offsets = data["timestamp"][rows].astype(np.float64)
    decoders = {}
    for key in videos:
        chunk = int(meta_rows[f"videos/{key}/chunk_index"][row])
        file = int(meta_rows[f"videos/{key}/file_index"][row])
        start = float(meta_rows[f"videos/{key}/from_timestamp"][row])
        path = root / video_path.format(video_key=key, chunk_index=chunk, file_index=file)
        decoders[key] = _video_frames(path, start + offsets, fps)
    values = {key: data[key][rows].astype(np.float64).reshape(len(rows), -1) for key in vectors}
    embodied: dict[str, np.ndarray] = {}
    if model is not None:
        state, action = values.pop(STATE), values.pop(ACTION)
        names = model.streams
        embodied[names.state] = vector_to_pose(state[:, :9]) if model.name == "ee_pose" else state[:, :7]
        embodied[names.gripper] = state[:, -1:]
        embodied[names.command] = model.command_from_action(action)
    series = {**embodied, **{_stream_name(key): v for key, v in values.items()}}
    for i, stamp in enumerate(stamps.tolist()):
        clock[0] = stamp
        for key, decoder in decoders.items():
            recorder.add(_stream_name(key), stamp, next(decoder), encoding="rgb8")
        for key in images:
            image = np.asarray(iio.imread(io.BytesIO(data[key][int(rows[i])]["bytes"])))
            image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
            recorder.add(_stream_name(key), stamp, np.ascontiguousarray(image, dtype=np.uint8), encoding="rgb8")
        for name, array in series.items():
            recorder.add(name, stamp, array[i])
