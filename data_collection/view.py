"""Looking at episodes: a video (mp4 or gif) with the camera views side by side, and a plot
of the commanded actions and measured state over time. imageio and matplotlib are
imported only here, lazily, so the store and recorder do not depend on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policy.imaging import resize_area

from .store import Episode


def _even(value: int) -> int:
    return max(2, value - value % 2)


def render_video(
    episode: Episode,
    out_path: str | Path,
    cameras: list[str] | None = None,
    height: int = 240,
    fps: float | None = None,
    progress: bool = False,
) -> Path:
    """Write the cameras side by side at the first camera's frame times (the others show
    their newest frame at that time, black before their first one). mp4 (H.264 through
    imageio-ffmpeg) or gif, chosen by the file suffix."""
    import imageio.v2 as imageio

    out_path = Path(out_path)
    if out_path.suffix not in (".mp4", ".gif"):
        raise ValueError(f"video must be .mp4 or .gif, got {out_path.name}")
    cameras = cameras or [s for s in episode.stream_names if episode.spec(s).is_image]
    cameras = [c for c in cameras if episode.count(c) > 0]
    if not cameras:
        raise ValueError(f"episode {episode.id} has no camera frames to show")
    stamps = {c: episode.stamps(c) for c in cameras}
    clock = stamps[cameras[0]]
    sizes = {}
    for camera in cameras:
        h, w, _ = episode.spec(camera).shape
        target_h = _even(min(height, h))
        sizes[camera] = (target_h, _even(round(w * target_h / h)))
    rate = fps or episode.spec(cameras[0]).rate_hz
    gif = out_path.suffix == ".gif"
    step = max(1, round(rate / 10)) if gif else 1  # gifs at <= ~10 fps stay small
    indices = range(0, len(clock), step)
    if gif:
        writer = imageio.get_writer(out_path, mode="I", duration=1000.0 * step / rate, loop=0)
    else:
        writer = imageio.get_writer(out_path, fps=rate, codec="libx264", macro_block_size=1, quality=7)
    iterator = indices
    if progress:
        from tqdm import tqdm

        iterator = tqdm(indices, desc=f"video {episode.id}", unit="frame")
    arrays = {c: episode.frames(c) for c in cameras}
    try:
        for i in iterator:
            panels = []
            for camera in cameras:
                j = int(np.searchsorted(stamps[camera], clock[i], side="right")) - 1
                th, tw = sizes[camera]
                if j < 0:
                    panel = np.zeros((th, tw, 3), np.uint8)
                else:
                    frame = np.asarray(arrays[camera][j])
                    if frame.shape[2] == 1:
                        frame = np.repeat(frame, 3, axis=2)
                    panel = resize_area(frame, th, tw)
                if panel.shape[0] != max(s[0] for s in sizes.values()):
                    pad = np.zeros((max(s[0] for s in sizes.values()) - panel.shape[0], tw, 3), np.uint8)
                    panel = np.concatenate([panel, pad])
                panels.append(panel)
            writer.append_data(np.concatenate(panels, axis=1))
    finally:
        writer.close()
    return out_path


def plot_episode(episode: Episode, out_path: str | Path, max_points: int = 4000) -> Path:
    """One panel per vector stream (all its fields over time, relative to the first
    sample of the episode); the title carries the task, success and problem marks."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_path = Path(out_path)
    vectors = [s for s in episode.stream_names if not episode.spec(s).is_image and episode.count(s) > 0]
    if not vectors:
        raise ValueError(f"episode {episode.id} has no vector streams to plot")
    starts = [episode.stamps(s)[0] for s in episode.stream_names if episode.count(s) > 0]
    t0 = min(starts)
    figure, axes = plt.subplots(len(vectors), 1, figsize=(10, 2.2 * len(vectors)), sharex=True, squeeze=False)
    for axis, stream in zip(axes[:, 0], vectors, strict=True):
        stamps, values = episode.stamps(stream), episode.values(stream)
        stride = max(1, len(stamps) // max_points)
        fields = episode.spec(stream).fields or tuple(str(i) for i in range(values.shape[1]))
        for k in range(values.shape[1]):
            axis.plot(stamps[::stride] - t0, values[::stride, k], label=fields[k], linewidth=0.8)
        axis.set_ylabel(stream)
        if values.shape[1] <= 8:
            axis.legend(loc="upper right", fontsize=6, ncol=4)
    axes[-1, 0].set_xlabel("time since episode start (s)")
    meta = episode.metadata
    marks = " [marked]" if meta.get("marked") else ""
    marks += " [recovered]" if meta.get("recovered") else ""
    figure.suptitle(f"{episode.id}: {meta.get('task', '')!s} success={meta.get('success')}{marks}")
    figure.tight_layout()
    figure.savefig(out_path, dpi=90)
    plt.close(figure)
    return out_path
