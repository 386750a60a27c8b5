"""Looking at episodes: a video with the camera views side by side, each named and with the
time of the frame it shows, over the plots of every vector stream with a cursor at the
current time; and a plot of the streams over the whole episode (PNG).

The video is encoded by PyAV (H.264, FFmpeg's libx264), gifs by imageio; matplotlib draws
the stream plots once per episode (the cursor is drawn per frame), Pillow the text. All
are imported here, lazily, so the store and recorder do not depend on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .store import Episode

LABEL_PX = 18  # height of the bar holding a camera's name and frame time
TITLE_PX = 22
PLOT_ROW_PX = 70  # height of one stream's plot in the video
FRAME_BLOCK = 32  # frames read from the store at once (one zarr call fetches many chunks)
MAX_PLOT_POINTS = 4000


def _even(value: int) -> int:
    return max(2, value - value % 2)


def _vector_streams(episode: Episode) -> list[str]:
    return [s for s in episode.stream_names if not episode.spec(s).is_image and episode.count(s) > 0]


def _plot_streams(episode: Episode, axes: list[Any], t0: float, legend: bool) -> None:
    """Each vector stream's fields over time (s since t0), one axis per stream."""
    for axis, stream in zip(axes, _vector_streams(episode), strict=False):
        stamps, values = episode.stamps(stream), episode.values(stream)
        stride = max(1, len(stamps) // MAX_PLOT_POINTS)
        fields = episode.spec(stream).fields or tuple(str(i) for i in range(values.shape[1]))
        for k in range(values.shape[1]):
            axis.plot(stamps[::stride] - t0, values[::stride, k], label=fields[k], linewidth=0.8)
        axis.set_ylabel(stream, fontsize=7 if not legend else None)
        if legend and values.shape[1] <= 8:
            axis.legend(loc="upper right", fontsize=6, ncol=4)


class _Frames:
    """A camera's frames, read from the store in blocks (sequential access is the rule)."""

    def __init__(self, episode: Episode, camera: str) -> None:
        self.array = episode.frames(camera)
        self.start, self.block = -1, np.zeros(0)

    def __getitem__(self, index: int) -> np.ndarray:
        if not self.start <= index < self.start + len(self.block):
            self.start = index
            self.block = np.asarray(self.array[index : index + FRAME_BLOCK])
        return self.block[index - self.start]


class _Layout:
    """Where everything goes in a video frame, the static plot strip, and the fonts."""

    def __init__(self, episode: Episode, cameras: list[str], height: int, t0: float, t_end: float, plots: bool):
        from PIL import ImageFont

        self.cameras = cameras
        self.sizes = {}
        for camera in cameras:
            # Every camera at the same height: small (simulated, 96 px) ones are enlarged
            # to be seen, large ones shrunk.
            h, w, _ = episode.spec(camera).shape
            target_h = _even(height)
            self.sizes[camera] = (target_h, _even(round(w * target_h / h)))
        self.panel_h = max(h for h, _ in self.sizes.values())
        self.width = _even(max(sum(w for _, w in self.sizes.values()), 480))
        self.t0, self.t_end = t0, t_end
        self.font = ImageFont.load_default(size=12)
        self.title_font = ImageFont.load_default(size=14)
        streams = _vector_streams(episode) if plots else []
        self.strip, self.cursor_x = self._plot_strip(episode, streams) if streams else (None, (0, 0))
        strip_h = 0 if self.strip is None else self.strip.shape[0]
        self.height = _even(TITLE_PX + LABEL_PX + self.panel_h + strip_h)

    def _plot_strip(self, episode: Episode, streams: list[str]) -> tuple[np.ndarray, tuple[int, int]]:
        """The stream plots as an RGB image as wide as the video, and the pixel columns of
        the time axis (t0 and t_end)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        dpi = 100
        rows = len(streams)
        figure, axes = plt.subplots(
            rows, 1, figsize=(self.width / dpi, rows * PLOT_ROW_PX / dpi), dpi=dpi, sharex=True, squeeze=False
        )
        _plot_streams(episode, list(axes[:, 0]), self.t0, legend=False)
        for axis in axes[:, 0]:
            axis.tick_params(labelsize=6)
            axis.set_xlim(0.0, max(self.t_end - self.t0, 1e-3))
        figure.subplots_adjust(left=0.09, right=0.99, top=0.98, bottom=0.12 if rows > 1 else 0.3, hspace=0.08)
        figure.canvas.draw()
        strip = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
        left, _, right, _ = axes[0, 0].get_window_extent().extents
        plt.close(figure)
        return strip[:, : self.width], (round(left), round(right))


def _draw_text(canvas: np.ndarray, items: list[tuple[int, int, str, Any]]) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for x, y, text, font in items:
        draw.text((x, y), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _scaled(image: np.ndarray, height: int, width: int) -> np.ndarray:
    import av

    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.shape[:2] == (height, width):
        return image
    factor = image.shape[0] // height
    if factor > 1 and image.shape[:2] == (height * factor, width * factor):
        # A whole-number shrink (480 -> 240): the mean of each factor x factor block.
        total = np.zeros((height, width, image.shape[2]), np.uint32)
        for dy in range(factor):
            for dx in range(factor):
                total += image[dy::factor, dx::factor]
        return (total // (factor * factor)).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return frame.reformat(width=width, height=height, interpolation="BILINEAR").to_ndarray()


def render_video(
    episode: Episode,
    out_path: str | Path,
    cameras: list[str] | None = None,
    height: int = 240,
    fps: float | None = None,
    plots: bool = True,
    progress: bool = False,
) -> Path:
    """Write the episode as a video: the cameras side by side, each labelled with its name
    and the time of the frame shown (its age when the camera lags or stopped), over the
    plot of every vector stream with a cursor at the current time. Video time is episode
    time: frames on a uniform grid at `fps` (default: the first camera's rate) from the
    episode's first sample to its last; each camera shows its newest frame at that time.
    mp4 (H.264 through PyAV) or gif (imageio), chosen by the file suffix."""
    out_path = Path(out_path)
    if out_path.suffix not in (".mp4", ".gif"):
        raise ValueError(f"video must be .mp4 or .gif, got {out_path.name}")
    cameras = cameras or [s for s in episode.stream_names if episode.spec(s).is_image]
    cameras = [c for c in cameras if episode.count(c) > 0]
    if not cameras:
        raise ValueError(f"episode {episode.id} has no camera frames to show")
    stamps = {c: episode.stamps(c) for c in cameras}
    shown = [s for s in episode.stream_names if episode.count(s) > 0]
    t0 = min(float(episode.stamps(s)[0]) for s in shown)
    t_end = max(float(episode.stamps(s)[-1]) for s in shown)
    rate = float(fps or episode.spec(cameras[0]).rate_hz)
    gif = out_path.suffix == ".gif"
    if gif:
        rate = min(rate, 10.0)  # gifs at <= 10 fps stay small
    times = t0 + np.arange(int(np.floor((t_end - t0) * rate + 1e-6)) + 1) / rate
    layout = _Layout(episode, cameras, height, t0, t_end, plots)
    background = np.zeros((layout.height, layout.width, 3), np.uint8)
    if layout.strip is not None:
        top = TITLE_PX + LABEL_PX + layout.panel_h
        background[top : top + layout.strip.shape[0]] = layout.strip[: layout.height - top]
    meta = episode.metadata
    flags = "".join(f" [{f}]" for f in ("marked", "recovered") if meta.get(f))
    title = f"{episode.id}  {meta.get('task', '')!s}  success={meta.get('success')}{flags}"
    sink = _GifSink(out_path, rate) if gif else _Mp4Sink(out_path, rate, layout.width, layout.height)
    readers = {c: _Frames(episode, c) for c in cameras}
    panels: dict[str, tuple[int, np.ndarray]] = {}
    iterator: Any = enumerate(times)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(times), desc=f"video {episode.id}", unit="frame")
    try:
        for _, t in iterator:
            canvas = background.copy()
            texts: list[tuple[int, int, str, Any]] = [
                (6, 3, f"{title}    t = {t - t0:6.2f} s / {t_end - t0:.2f} s", layout.title_font)
            ]
            x = 0
            for camera in cameras:
                th, tw = layout.sizes[camera]
                j = int(np.searchsorted(stamps[camera], t + 1e-9, side="right")) - 1
                if j < 0:
                    label = f"{camera}  no frame yet"
                else:
                    if panels.get(camera, (-1,))[0] != j:
                        panels[camera] = (j, _scaled(readers[camera][j], th, tw))
                    top = TITLE_PX + LABEL_PX
                    canvas[top : top + th, x : x + tw] = panels[camera][1]
                    age_ms = (t - stamps[camera][j]) * 1000
                    label = f"{camera}  #{j}  t={stamps[camera][j] - t0:.3f} s  age {age_ms:.0f} ms"
                    if layout.font.getlength(label) > tw - 8:  # a narrow panel: the name and the time
                        label = f"{camera} {stamps[camera][j] - t0:.2f} s"
                texts.append((x + 4, TITLE_PX + 2, label, layout.font))
                x += tw
            if layout.strip is not None:
                left, right = layout.cursor_x
                column = left + round((t - t0) / max(t_end - t0, 1e-3) * (right - left))
                top = TITLE_PX + LABEL_PX + layout.panel_h
                canvas[top:, max(0, column - 1) : column + 1] = (220, 30, 30)
            sink.write(_draw_text(canvas, texts))
    finally:
        sink.close()
    return out_path


class _Mp4Sink:
    def __init__(self, path: Path, rate: float, width: int, height: int) -> None:
        from fractions import Fraction

        import av

        self.container = av.open(str(path), mode="w")
        frame_rate = Fraction(rate).limit_denominator(1001)
        self.stream = self.container.add_stream(
            "libx264", rate=frame_rate, options={"crf": "23", "preset": "superfast"}
        )
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.codec_context.thread_type = "AUTO"
        self.count = 0

    def write(self, image: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.count
        self.count += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


class _GifSink:
    def __init__(self, path: Path, rate: float) -> None:
        self.path, self.rate, self.frames = path, rate, []

    def write(self, image: np.ndarray) -> None:
        self.frames.append(image)

    def close(self) -> None:
        import imageio.v3 as iio

        if self.frames:
            iio.imwrite(self.path, np.stack(self.frames), duration=1000.0 / self.rate, loop=0)


def plot_episode(episode: Episode, out_path: str | Path) -> Path:
    """One panel per vector stream (all its fields over time, relative to the first
    sample of the episode); the title carries the task, success and problem marks."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_path = Path(out_path)
    vectors = _vector_streams(episode)
    if not vectors:
        raise ValueError(f"episode {episode.id} has no vector streams to plot")
    t0 = min(episode.stamps(s)[0] for s in episode.stream_names if episode.count(s) > 0)
    figure, axes = plt.subplots(len(vectors), 1, figsize=(10, 2.2 * len(vectors)), sharex=True, squeeze=False)
    _plot_streams(episode, list(axes[:, 0]), t0, legend=True)
    axes[-1, 0].set_xlabel("time since episode start (s)")
    meta = episode.metadata
    marks = " [marked]" if meta.get("marked") else ""
    marks += " [recovered]" if meta.get("recovered") else ""
    figure.suptitle(f"{episode.id}: {meta.get('task', '')!s} success={meta.get('success')}{marks}")
    figure.tight_layout()
    figure.savefig(out_path, dpi=90)
    plt.close(figure)
    return out_path
