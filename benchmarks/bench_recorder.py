"""Recorder benchmark: two 640x480 rgb8 cameras at 30 Hz, end-effector pose and joint
states at 1 kHz, gripper at 15 Hz, commands and teleop input at 100 Hz, for 60 s, in
real time through `data_collection.Recorder` into an episode store, then the training
read path over the committed episode.

Producers are threads that call `recorder.add` at the nominal rates on their own
schedule, as ROS subscription callbacks would. cpu_cores_used is the CPU time of the
whole process (producers and their add() calls included, so it is an upper bound of the
recorder's own cost) divided by the wall time of the recording.

    python -m benchmarks.bench_recorder            # 60 s
    python -m benchmarks.bench_recorder --quick    # 3 s (a smoke test)

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def synthetic_frames(count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """Camera-like frames: smooth shading, a moving object, mild sensor noise (pure noise
    would not compress at all; flat colour would compress unrealistically well)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(count):
        image = np.empty((height, width, 3), np.float32)
        image[..., 0] = 120 + 50 * np.sin(xx / 60 + i * 0.1)
        image[..., 1] = 100 + 40 * np.cos(yy / 45)
        image[..., 2] = 80 + 0.1 * xx + 0.05 * yy
        cx, cy = width / 2 + width / 4 * np.sin(i * 0.2), height / 2
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < (height / 8) ** 2] = (200, 60, 40)
        image += rng.normal(0, 2.0, image.shape).astype(np.float32)
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames


class Producer(threading.Thread):
    """Calls recorder.add at `rate_hz` with stamps on the nominal grid; catches up after a
    late wake-up instead of skipping (a late callback still delivers every message)."""

    def __init__(self, recorder: Any, stream: str, rate_hz: float, make_value: Any, start: float, stop: float) -> None:
        super().__init__(name=f"producer-{stream}", daemon=True)
        self.recorder, self.stream, self.period = recorder, stream, 1.0 / rate_hz
        self.make_value, self.start_time, self.stop_time = make_value, start, stop
        self.offered = 0
        self.accepted = 0

    def run(self) -> None:
        index = 0
        while True:
            stamp = self.start_time + index * self.period
            if stamp >= self.stop_time:
                break
            delay = stamp - time.time()
            if delay > 0:
                time.sleep(delay)
            self.offered += 1
            self.accepted += bool(self.recorder.add(self.stream, stamp, self.make_value(index)))
            index += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="recording length (default 60)")
    parser.add_argument("--quick", action="store_true", help="record 3 s only (a smoke test)")
    parser.add_argument("--codec", default="zstd", choices=("zstd", "lz4", "none"), help="image codec of the store")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the store (default: a temp dir)")
    parser.add_argument("--reader-seconds", type=float, default=3.0, help="how long to sample training windows")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else args.seconds

    from data_collection.reader import TokenWindowDataset, align_episode
    from data_collection.recorder import Recorder
    from data_collection.schema import StoreSettings, fr3_stream_specs
    from data_collection.store import EpisodeStore
    from training.config import task_policy_spec

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_recorder_"))
    workdir.mkdir(parents=True, exist_ok=True)
    store_path = workdir / "recorder.zarr"
    shutil.rmtree(store_path, ignore_errors=True)
    store = EpisodeStore.create(store_path, StoreSettings(image_codec=args.codec))
    print(f"store {store_path} (image codec {args.codec}); generating frames", flush=True)
    front, wrist = synthetic_frames(30, 480, 640, 1), synthetic_frames(30, 480, 640, 2)
    streams = fr3_stream_specs(image_shape=(480, 640))
    recorder = Recorder(store, streams, robot={"type": "fr3", "source": "bench_recorder"})
    pose = np.array([0.5, 0.0, 0.4, 0.0, 0.0, 0.0, 1.0])
    drift = np.array([1e-5, 0, 0, 0, 0, 0, 0])
    joints = np.zeros(14)

    recorder.start_episode(task="bench_recorder")
    start = time.time() + 0.2
    stop = start + seconds
    producers = [
        Producer(recorder, "front", 30, lambda i: front[i % 30], start, stop),
        Producer(recorder, "wrist", 30, lambda i: wrist[i % 30], start + 0.005, stop),
        Producer(recorder, "ee_pose", 1000, lambda i: pose + drift * i, start, stop),
        Producer(recorder, "joint_states", 1000, lambda i: joints + 1e-4 * i, start, stop),
        Producer(recorder, "gripper", 15, lambda i: [0.04], start, stop),
        Producer(
            recorder,
            "command",
            100,
            lambda i: np.r_[pose, 0.04] + [1e-4 * i, 0, 0, 0, 0, 0, 0, 0],
            start,
            stop,
        ),
        Producer(recorder, "teleop", 100, lambda i: np.zeros(7), start, stop),
    ]
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    for producer in producers:
        producer.start()
    last_report = 0.0
    while any(p.is_alive() for p in producers):
        time.sleep(0.5)
        elapsed = time.monotonic() - wall0
        if elapsed - last_report >= 5 or not any(p.is_alive() for p in producers):
            last_report = elapsed
            stats = recorder.statistics()
            print(
                f"  {elapsed:5.1f}/{seconds:.0f} s: offered {stats['offered']} written "
                f"{stats['written']} "
                f"dropped {stats['dropped']} buffered {sum(stats['buffered'].values())}",
                flush=True,
            )
    result = recorder.stop_episode(success=True)
    wall = time.monotonic() - wall0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    print(f"committed {result.episode_id} in {wall:.1f} s: {result.message}", flush=True)

    episode = store.episode(result.episode_id)
    frames_written = episode.count("front") + episode.count("wrist")
    frames_offered = sum(p.offered for p in producers if p.stream in ("front", "wrist"))
    t = time.perf_counter()
    problems = episode.verify(checksums=True)
    verify_s = time.perf_counter() - t

    spec = task_policy_spec()  # the deployed swap-fruit spec
    t = time.perf_counter()
    aligned = align_episode(episode, spec)
    align_s = time.perf_counter() - t
    dataset = TokenWindowDataset(store, spec, horizon=16)
    rng = np.random.default_rng(0)
    samples, t = 0, time.perf_counter()
    while time.perf_counter() - t < (0.5 if args.quick else args.reader_seconds):
        dataset[int(rng.integers(len(dataset)))]
        samples += 1
    reader_rate = samples / (time.perf_counter() - t)
    size_mb = sum(f.stat().st_size for f in episode.path.rglob("*") if f.is_file()) / 1e6
    stats = result.statistics
    summary = {
        "seconds": round(seconds, 1),
        "frames_offered": frames_offered,
        "frames_written": frames_written,
        "dropped": stats["dropped"],
        "rejected": stats["rejected"],
        "samples_offered": stats["offered"],
        "samples_written": stats["written"],
        "cpu_cores_used": round(cpu / wall, 3),
        "writer_thread_cores": round(stats["writer_cpu_s"] / wall, 3),
        "peak_rss_mb": round(usage1.ru_maxrss / 1024, 1),
        "episode_mb": round(size_mb, 1),
        "image_codec": args.codec,
        "problems": len(result.problems),
        "verify_s": round(verify_s, 2),
        "verified": not problems,
        "tokens": len(aligned),
        "reader_align_episode_s": round(align_s, 3),
        "reader_samples_per_s": round(reader_rate, 1),
        "reader_window_tokens": 16,
    }
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    for problem in result.problems:
        print(f"  problem: {problem}", flush=True)
    print(json.dumps(summary))
    return 0 if summary["dropped"] == 0 and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
