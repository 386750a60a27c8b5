"""Dataset video benchmark: how long `dfstack data view` takes to render one 10 s episode of
a real robot's size (two 640x480 rgb8 cameras at 30 Hz, pose and joint states at 1 kHz,
gripper at 15 Hz, commands and teleop input at 100 Hz) as an mp4 with camera names,
timestamps and the per-stream plots.

    python -m benchmarks.bench_view                 # 10 s episode
    python -m benchmarks.bench_view --seconds 3     # shorter (a smoke test)

The episode is recorded first (offline, through the Recorder; not timed). The last
printed line is one JSON object: render_s for the video, video_frames, video_bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_recorder import synthetic_frames


def record_episode(path: Path, seconds: float) -> None:
    from data_collection.recorder import Recorder, RecorderConfig
    from data_collection.schema import StoreSettings, fr3_stream_specs
    from data_collection.store import EpisodeStore

    store = EpisodeStore.create(path, StoreSettings(), durable=False)
    recorder = Recorder(
        store, fr3_stream_specs(), RecorderConfig(min_free_bytes=0, block_when_full=True), clock=lambda: 0.0
    )
    recorder.start_episode(task="swap fruit")
    frames = synthetic_frames(30, 480, 640, seed=0)
    for tick in range(int(seconds * 1000)):
        t = tick / 1000.0
        pose = [0.4 + 0.1 * np.sin(t), 0.1 * np.cos(t), 0.3, 0.0, 0.0, 0.0, 1.0]
        recorder.add("ee_pose", t, pose)
        recorder.add("joint_states", t, np.full(14, np.sin(t)))
        if tick % 10 == 0:
            recorder.add("command", t, [*pose, 0.08 if t % 4 < 2 else 0.0])
            recorder.add("teleop", t, [0.1 * np.cos(t), 0, 0, 0, 0, 0, 0])
        if tick % 33 == 0:
            for number, camera in enumerate(("front", "wrist")):
                recorder.add(camera, t, frames[(tick // 33 + 7 * number) % len(frames)])
        if tick % 67 == 0:
            recorder.add("gripper", t, [0.08 if t % 4 < 2 else 0.06])
    recorder.stop_episode(success=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    from data_collection.store import EpisodeStore
    from data_collection.view import render_video

    workdir = Path(tempfile.mkdtemp(prefix="bench_view_"))
    try:
        record_episode(workdir / "store.zarr", args.seconds)
        episode = EpisodeStore.open(workdir / "store.zarr").episode(0)
        start = time.perf_counter()
        video = render_video(episode, workdir / "episode.mp4")
        render_s = time.perf_counter() - start
        import av

        with av.open(str(video)) as container:
            frames = container.streams.video[0].frames
        result = {
            "benchmark": "view",
            "episode_s": args.seconds,
            "cameras": "2 x 640x480 @ 30 Hz",
            "render_s": round(render_s, 2),
            "video_frames": frames,
            "video_bytes": video.stat().st_size,
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
