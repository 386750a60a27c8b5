"""The demo's report folder: success per condition, the training curve, and a video per
chosen episode showing what the policy saw, what it predicted and how much it trusted
each camera.

    report_dir/
      results.json          everything: settings, per-condition summary, per-episode records
      summary.md            the success table (95 % Wilson intervals), links to the rest
      training_curve.png    training and validation loss against the step
      video_<condition>_seed<N>.mp4   (GIF where imageio-ffmpeg is missing)
      still_<condition>.png one frame of the occluded episode, for the README

Only numpy, Pillow, matplotlib and imageio: no ROS, no torch.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.results import ClosedLoopResults, EpisodeTrace, TickRecord, wilson_interval

PANEL = 192  # px of each camera view and predicted frame in the video
BORDER = 6  # the noise-level frame around each camera view
BAR = 22  # the noise-level bar under each row
MARGIN = 8
HEADER = 44
CLEAN_COLOUR = (40, 170, 70)  # k = 0
DOUBT_COLOUR = (235, 170, 30)  # k halfway
UNUSABLE_COLOUR = (215, 40, 40)  # k = K
UNKNOWN_COLOUR = (110, 110, 110)  # no tick yet


# -------------------------------------------------------------------- training curve


def load_training_history(run: str | Path) -> list[dict[str, Any]]:
    """The records of a training run's metrics.jsonl (`run` is the run directory or the
    file): one per logged step (step, loss, lr, elapsed_s, ...) and one per evaluation
    (step, val_loss, ...). A line cut short by a killed run is skipped."""
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"no training history at {path} (a training run directory holds metrics.jsonl)")
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def plot_training_curve(history: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Training loss (every logged step) and validation loss (at evaluations) against the
    step, log scale when every value is positive. None when there is nothing to plot."""
    train = [(r["step"], r["loss"]) for r in history if _finite(r.get("loss"))]
    val = [(r["step"], r["val_loss"]) for r in history if _finite(r.get("val_loss"))]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axis = plt.subplots(figsize=(7, 4))
    if train:
        steps, losses = zip(*train, strict=True)
        axis.plot(steps, losses, label="training loss", linewidth=1.0, color="tab:blue")
    if val:
        steps, losses = zip(*val, strict=True)
        axis.plot(steps, losses, "o-", label="validation loss", color="tab:orange")
    if all(v > 0 for _, v in train + val):
        axis.set_yscale("log")
    axis.set_xlabel("training step")
    axis.set_ylabel("diffusion forcing loss")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# --------------------------------------------------------------------------- video


def noise_colour(level: int, max_level: int) -> tuple[int, int, int]:
    """Green at k = 0, amber halfway, red at k = K; grey when the level is not known."""
    if level < 0 or max_level <= 0:
        return UNKNOWN_COLOUR
    if level == 0:
        return CLEAN_COLOUR
    if level >= max_level:
        return UNUSABLE_COLOUR
    x = level / max_level
    low, high, f = (CLEAN_COLOUR, DOUBT_COLOUR, x / 0.5) if x <= 0.5 else (DOUBT_COLOUR, UNUSABLE_COLOUR, 2 * x - 1)
    r, g, b = (round(a + f * (b - a)) for a, b in zip(low, high, strict=True))
    return (r, g, b)


def noise_label(camera: str, level: int, max_level: int, issues: str = "") -> str:
    if level < 0:
        return f"{camera}: no tick yet"
    why = f": {issues.replace(',', ', ')}" if issues else ""
    if level == 0:
        state = "clean, trusted"
    elif level >= max_level:
        state = f"unusable{why} -> runs on memory"
    else:
        state = f"partly trusted{why}"
    return f"{camera}  k={level}/{max_level}  {state}"


def fit_text(draw: Any, text: str, font: Any, max_width: float) -> str:
    """`text`, cut with an ellipsis where it would run past `max_width` pixels (several
    frame-health issues at once make the noise label longer than its bar)."""
    if draw.textlength(text, font=font) <= max_width:
        return text
    while text and draw.textlength(text + "...", font=font) > max_width:
        text = text[:-1]
    return text.rstrip() + "..."


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the small bitmap font
        return ImageFont.load_default()


def _resize(image: np.ndarray | None, size: int) -> np.ndarray:
    """Nearest-neighbour resize (the predicted frames are 16 px: keep their pixels sharp)."""
    if image is None:
        return np.zeros((size, size, 3), np.uint8)
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    rows = np.arange(size) * array.shape[0] // size
    cols = np.arange(size) * array.shape[1] // size
    return np.ascontiguousarray(array[rows][:, cols, :3].astype(np.uint8))


def _latest(items: Sequence[Any], t: float) -> Any:
    """The last item whose time_s <= t (items are in time order), else None."""
    found = None
    for item in items:
        if item.time_s <= t + 1e-9:
            found = item
        else:
            break
    return found


def _even16(value: int) -> int:
    return value + (-value) % 16  # H.264 encoders want dimensions in whole macroblocks


def render_frame(
    trace: EpisodeTrace, t: float, views: dict[str, np.ndarray | None], tick: TickRecord | None
) -> np.ndarray:
    """One video frame: per camera a row [camera view | model's predicted frame], the view
    framed in its noise level's colour, and a bar naming the level; a header with the
    condition, seed, time and outcome."""
    from PIL import Image, ImageDraw

    rows = len(trace.cameras)
    row_h = PANEL + 2 * BORDER + BAR + MARGIN
    width = _even16(2 * (PANEL + 2 * BORDER) + 3 * MARGIN)
    height = _even16(HEADER + rows * row_h + MARGIN)
    canvas = Image.new("RGB", (width, height), (18, 18, 22))
    draw = ImageDraw.Draw(canvas)
    big, small = _font(16), _font(13)
    outcome = (
        f"success at {trace.time_to_success_s:.1f} s"
        if trace.success and trace.time_to_success_s is not None
        else ("success" if trace.success else "no success")
    )
    draw.text(
        (MARGIN, 4), f"{trace.condition}   seed {trace.seed}   t = {t:5.1f} s   ({outcome})", (240, 240, 240), big
    )
    left_x, right_x = MARGIN, 2 * MARGIN + PANEL + 2 * BORDER
    draw.text((left_x, 25), "camera", (190, 190, 190), small)
    draw.text((right_x, 25), "model's predicted frame", (190, 190, 190), small)
    for r, camera in enumerate(trace.cameras):
        top = HEADER + r * row_h
        level = tick.levels.get(camera, -1) if tick is not None else -1
        issues = tick.issues.get(camera, "") if tick is not None else ""
        colour = noise_colour(level, trace.max_level)
        draw.rectangle([left_x, top, left_x + PANEL + 2 * BORDER - 1, top + PANEL + 2 * BORDER - 1], fill=colour)
        canvas.paste(Image.fromarray(_resize(views.get(camera), PANEL)), (left_x + BORDER, top + BORDER))
        predicted = tick.predicted.get(camera) if tick is not None else None
        canvas.paste(Image.fromarray(_resize(predicted, PANEL)), (right_x + BORDER, top + BORDER))
        bar_top = top + PANEL + 2 * BORDER
        draw.rectangle([left_x, bar_top, width - MARGIN - 1, bar_top + BAR - 3], fill=colour)
        label = fit_text(draw, noise_label(camera, level, trace.max_level, issues), small, width - MARGIN - left_x - 8)
        draw.text((left_x + 4, bar_top + 2), label, (0, 0, 0), small)
    return np.asarray(canvas)


def render_episode_frames(trace: EpisodeTrace) -> tuple[list[np.ndarray], float, list[TickRecord | None]]:
    """The video's frames: one per frame of the first camera (its rate, 10 Hz in the
    simulator), each with the newest frame of every other camera and the newest tick's
    predictions and noise levels; one per tick when no camera frame was recorded.
    Returns (frames, frames per second, the tick each frame shows)."""
    first = trace.cameras[0] if trace.cameras else None
    clock = [f.time_s for f in trace.frames.get(first, [])] if first is not None else []
    if clock:
        fps = 1.0 / float(np.median(np.diff(clock))) if len(clock) > 1 else 10.0
    else:
        clock = [tick.time_s for tick in trace.ticks]
        fps = 2.5
    frames, shown = [], []
    for t in clock:
        tick = _latest(trace.ticks, t)
        views: dict[str, np.ndarray | None] = {}
        for camera in trace.cameras:
            frame = _latest(trace.frames.get(camera, []), t)
            views[camera] = frame.image if frame is not None else None  # none yet: a black panel
        frames.append(render_frame(trace, t, views, tick))
        shown.append(tick)
    return frames, max(1.0, min(30.0, round(fps, 2))), shown


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float = 2.5) -> Path:
    """An animated GIF of `frames` (HxWx3 uint8) at `fps`, looping; returns its path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """MP4 (H.264 through imageio-ffmpeg) when available, else a GIF next to it. Returns
    the path written (its suffix says which)."""
    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio's mp4 writer needs)
    except ImportError:
        return write_gif(list(frames), path.with_suffix(".gif"), fps=fps)
    path = path.with_suffix(".mp4")
    writer = imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=16, quality=7)
    try:
        for frame in frames:
            writer.append_data(frame)
    finally:
        writer.close()
    return path


def choose_still(shown: Sequence[TickRecord | None], camera: str, max_level: int) -> int:
    """Index of a telling frame: the middle of the longest run where `camera` is unusable
    (k = K), else where it has any noise, else the middle of the episode."""
    for threshold in (max_level, 1):
        best, run_start, best_span = None, None, 0
        for i, tick in enumerate([*shown, None]):
            flagged = tick is not None and tick.levels.get(camera, -1) >= threshold > 0
            if flagged and run_start is None:
                run_start = i
            elif not flagged and run_start is not None:
                if i - run_start > best_span:
                    best, best_span = (run_start + i - 1) // 2, i - run_start
                run_start = None
        if best is not None:
            return best
    return len(shown) // 2


# -------------------------------------------------------------------------- tables


def _percent(x: float) -> str:
    return f"{100 * x:.0f}%"


def _summary_rows(results: ClosedLoopResults) -> list[dict[str, str]]:
    rows = []
    for name, condition in results.conditions.items():
        n = len(condition.episodes)
        low, high = wilson_interval(condition.successes, n)
        summary = condition.summary()
        mean_time = summary["mean_time_to_success_s"]
        rows.append(
            {
                "condition": name,
                "success": f"{condition.successes}/{n}",
                "rate": _percent(condition.success_rate),
                "95% CI": f"{_percent(low)}-{_percent(high)}",
                "time to success": f"{mean_time:.1f} s" if mean_time is not None else "-",
                "ticks k>0": f"{summary['ticks_with_noise']}/{summary['ticks']}",
                "unsafe cmds": f"{summary['unsafe_commands']}/{summary['commands']}",
            }
        )
    return rows


def format_table(results: ClosedLoopResults) -> str:
    """A short text table: success per condition with its 95 % Wilson interval, mean time
    to success (sim s), policy ticks with a camera at k > 0, unsafe commands."""
    rows = _summary_rows(results)
    if not rows:
        return "(no conditions)"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _markdown_table(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(r[c] for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (load matters: the policy runs in real time)."""
    from importlib import metadata

    versions = {}
    for package in ("torch", "numpy", "mujoco"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "packages": versions,
    }


# -------------------------------------------------------------------------- report


def _training_summary(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    train = [r for r in history if _finite(r.get("loss"))]
    val = [r for r in history if _finite(r.get("val_loss"))]
    return {
        "steps": max((int(r["step"]) for r in history), default=0),
        "final_loss": train[-1]["loss"] if train else None,
        "final_val_loss": val[-1]["val_loss"] if val else None,
        "best_val_loss": min(r["val_loss"] for r in val) if val else None,
        "elapsed_s": max((r["elapsed_s"] for r in history if _finite(r.get("elapsed_s"))), default=None),
    }


def _still_trace(traces: dict[str, list[EpisodeTrace]]) -> EpisodeTrace | None:
    """The occluded condition's video episode, else the one with the most unusable ticks."""
    if traces.get("occluded"):
        return traces["occluded"][0]
    candidates: Iterable[EpisodeTrace] = (t for ts in traces.values() for t in ts)
    return max(
        candidates,
        key=lambda t: sum(any(v >= t.max_level > 0 for v in tick.levels.values()) for tick in t.ticks),
        default=None,
    )


def write_report(
    report_dir: str | Path,
    results: ClosedLoopResults,
    training_history: Sequence[dict[str, Any]] | None = None,
    machine_info: dict[str, Any] | None = None,
    command: str | None = None,
) -> dict[str, Path]:
    """Write the report folder; returns what was written by role: results, summary,
    training_curve (if there is a history), video:<condition>:<seed>, still."""
    from PIL import Image

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    curve = plot_training_curve(training_history or [], report_dir / "training_curve.png")
    if curve is not None:
        written["training_curve"] = curve

    videos: list[tuple[str, EpisodeTrace, Path]] = []
    still_from = _still_trace(results.traces)
    for name, traces in results.traces.items():
        for trace in traces:
            frames, fps, shown = render_episode_frames(trace)
            if not frames:
                continue
            path = write_video(frames, report_dir / f"video_{_slug(name)}_seed{trace.seed}.mp4", fps)
            written[f"video:{name}:{trace.seed}"] = path
            videos.append((name, trace, path))
            if trace is still_from:
                index = choose_still(shown, trace.cameras[0], trace.max_level)
                still = report_dir / f"still_{_slug(name)}.png"
                Image.fromarray(frames[index]).save(still)
                written["still"] = still

    data = {
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "machine": machine_info,
        **results.to_dict(),
        "training": _training_summary(training_history) if training_history else None,
        "files": {role: path.name for role, path in written.items()},
    }
    (report_dir / "results.json").write_text(json.dumps(data, indent=1, default=_json_default))
    written["results"] = report_dir / "results.json"

    limit_s = results.settings.get("max_steps", 0) * 0.1
    task = results.settings.get("task_title") or "swap fruit"  # results from before tasks were configurable
    lines = [f"# {task[:1].upper() + task[1:]} in closed loop through the ROS 2 nodes", ""]
    lines.append(
        f"`sim_robot_node` (simulated FR3, real time x{results.settings.get('real_time_factor', 1.0):g}) and "
        f"`policy_node` ({results.settings.get('schedule')} schedule, horizon {results.settings.get('horizon')}, "
        f"{results.settings.get('denoising_steps')} denoising steps) in their own processes over DDS on loopback. "
        f"Checkpoint `{results.checkpoint}`; cameras {', '.join(results.cameras)}; K = {results.max_level}. "
        + (
            f"Episodes end at the first success or after {limit_s:g} s of sim time; "
            if results.settings.get("stop_at_success", True)
            else f"Episodes run {limit_s:g} s of sim time and are scored by their final state; "
        )
        + "each condition runs the same seeds."
    )
    lines += ["", "## Success", ""]
    rows = _summary_rows(results)
    if rows:
        lines.append(_markdown_table(rows))
    lines += [
        "",
        "95% CI: Wilson score interval. Time to success: sim seconds, mean over successful episodes "
        f"(success polled every {results.settings.get('poll_s', 0.5)} s). Ticks k>0: policy ticks where a "
        "camera's frame was marked with noise level k > 0 (from /diagnostics). Unsafe: commands on the arm "
        "and gripper topics that break the safety limits, audited outside the node.",
        "",
        "Conditions:",
        "",
    ]
    lines += [f"- **{name}**: {c.description}" for name, c in results.conditions.items()]
    if curve is not None:
        summary = _training_summary(training_history or [])
        lines += ["", "## Training", "", f"![training curve]({curve.name})", ""]
        lines.append(
            f"{summary['steps']} steps; final training loss {_fmt(summary['final_loss'])}, "
            f"best validation loss {_fmt(summary['best_val_loss'])}."
        )
    if videos:
        lines += ["", "## Videos", ""]
        lines.append(
            "Each row: a camera's view (framed green at k = 0, amber when partly trusted, red at k = K) and the "
            "frame the model predicted for it from its latent memory. The chosen episodes are the first "
            "successful ones of each condition where there was one, else the first."
        )
        lines.append("")
        for name, trace, path in videos:
            outcome = "success" if trace.success else "no success"
            lines.append(f"- {name}, seed {trace.seed} ({outcome}): [{path.name}]({path.name})")
        if "still" in written:
            lines += ["", f"![a frame of the {still_from.condition} episode]({written['still'].name})"]
    lines += ["", "## Run", ""]
    if command:
        lines.append(f"Command: `{command}`  ")
    lines.append(f"Wall time of the closed-loop episodes: {results.seconds / 60:.1f} min.  ")
    if machine_info:
        lines.append(
            f"Machine: {machine_info.get('platform')}, {machine_info.get('cpu_count')} CPUs, "
            f"load average {machine_info.get('load_average_1min')}."
        )
    (report_dir / "summary.md").write_text("\n".join(lines) + "\n")
    written["summary"] = report_dir / "summary.md"
    return written


def _slug(name: str) -> str:
    """A condition name fit for a file name (a condition may be named by a plan's path)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "condition"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if _finite(value) else "-"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
