"""The demo's report folder from synthetic closed-loop results (no ROS, no simulator)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.report import (
    CLEAN_COLOUR,
    UNUSABLE_COLOUR,
    choose_still,
    format_table,
    load_training_history,
    noise_colour,
    render_episode_frames,
    write_report,
)
from evaluation.results import (
    CameraFrame,
    ClosedLoopResults,
    ConditionResult,
    EpisodeOutcome,
    EpisodeTrace,
    TickRecord,
    wilson_interval,
)

K = 1000
CAMERAS = ("front", "wrist")
FRAMES = 30  # 3 s of a 10 Hz camera
OCCLUDED_FROM_S = 1.5


def outcome(condition: str, index: int, success: bool, ticks_with_noise: int = 0) -> EpisodeOutcome:
    return EpisodeOutcome(
        condition=condition,
        index=index,
        seed=100_000 + index,
        success=success,
        time_to_success_s=12.0 + index if success else None,
        sim_time_s=12.0 + index if success else 30.0,
        wall_s=13.0,
        ended_by="success" if success else "time_limit",
        ticks=30,
        ticks_with_noise=ticks_with_noise,
        ticks_with_noise_per_camera={"front": ticks_with_noise, "wrist": 0},
        ticks_unusable_per_camera={"front": ticks_with_noise, "wrist": 0},
        max_level_per_camera={"front": K if ticks_with_noise else 0, "wrist": 0},
        commands=600,
        unsafe_commands=0,
        gripper_commands=600,
        unsafe_gripper_commands=0,
        unsafe_examples=[],
        watchdog_stops=0,
        dropped_actions=3,
        adjusted_commands=1,
        rejected_commands=0,
        fault_plan=None,
        episode_info={"seed": 100_000 + index},
        report={"success": success, "time_s": 12.0},
    )


def trace(condition: str, occluded: bool) -> EpisodeTrace:
    rng = np.random.default_rng(0)
    frames = {
        camera: [CameraFrame(0.1 * (i + 1), rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) for i in range(FRAMES)]
        for camera in CAMERAS
    }
    ticks = []
    for i in range(8):
        t = 0.05 + 0.4 * i
        front = K if occluded and t >= OCCLUDED_FROM_S else 0
        ticks.append(
            TickRecord(
                time_s=t,
                levels={"front": front, "wrist": 0},
                issues={"front": "black" if front else "", "wrist": ""},
                predicted={c: np.full((96, 96, 3), 128, np.uint8) for c in CAMERAS},
            )
        )
    return EpisodeTrace(condition, 100_000, True, 12.0, K, CAMERAS, frames, ticks)


@pytest.fixture()
def results() -> ClosedLoopResults:
    clean = ConditionResult("clean", "no faults", [outcome("clean", i, i != 1) for i in range(4)])
    occluded = ConditionResult(
        "occluded", "front camera fully occluded", [outcome("occluded", i, i == 0, 6) for i in range(4)]
    )
    return ClosedLoopResults(
        checkpoint="ckpt",
        cameras=CAMERAS,
        max_level=K,
        settings={"real_time_factor": 1.0, "schedule": "pyramid", "horizon": 2, "denoising_steps": 8, "max_steps": 300},
        conditions={"clean": clean, "occluded": occluded},
        seconds=120.0,
        traces={"clean": [trace("clean", False)], "occluded": [trace("occluded", True)]},
    )


def colour_pixels(frame: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(frame == np.array(colour, np.uint8), axis=2).sum())


def test_table_has_the_right_numbers(results: ClosedLoopResults) -> None:
    table = format_table(results)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["condition", "success", "rate"]
    clean = next(line for line in lines if line.startswith("clean"))
    occluded = next(line for line in lines if line.startswith("occluded"))
    low, high = wilson_interval(3, 4)
    assert "3/4" in clean and "75%" in clean and f"{100 * low:.0f}%-{100 * high:.0f}%" in clean
    assert "1/4" in occluded and "25%" in occluded
    assert "13.7 s" in clean  # mean time to success of the successful episodes: 12, 14, 15 s
    assert "24/120" in occluded  # ticks with k > 0 of all ticks
    assert "0/4800" in clean  # unsafe of all audited commands


def test_video_marks_noise_levels_and_has_one_frame_per_camera_frame() -> None:
    frames, fps, shown = render_episode_frames(trace("occluded", True))
    assert len(frames) == FRAMES and fps == pytest.approx(10.0)
    assert frames[0].shape[0] % 16 == 0 and frames[0].shape[1] % 16 == 0
    clean_frame = frames[5]  # t = 0.6 s: the front camera at k = 0
    occluded_frame = frames[25]  # t = 2.6 s: at k = K
    assert shown[5].levels["front"] == 0 and shown[25].levels["front"] == K
    assert colour_pixels(occluded_frame, UNUSABLE_COLOUR) > 1000
    assert colour_pixels(clean_frame, UNUSABLE_COLOUR) == 0
    # wrist stays clean in both; the front camera's frame and bar turn from green to red
    assert colour_pixels(clean_frame, CLEAN_COLOUR) > colour_pixels(occluded_frame, CLEAN_COLOUR) + 1000
    assert choose_still(shown, "front", K) >= 15  # inside the occluded span
    assert noise_colour(0, K) == CLEAN_COLOUR and noise_colour(K, K) == UNUSABLE_COLOUR
    assert noise_colour(K // 2, K) not in (CLEAN_COLOUR, UNUSABLE_COLOUR)


def test_report_folder(tmp_path: Path, results: ClosedLoopResults) -> None:
    history = [{"step": s, "loss": 1.0 / s, "lr": 1e-3, "elapsed_s": 0.1 * s} for s in range(1, 101)]
    history += [{"step": 50, "val_loss": 0.05, "elapsed_s": 5.0}, {"step": 100, "val_loss": 0.03, "elapsed_s": 10.0}]
    written = write_report(tmp_path / "report", results, history, {"cpu_count": 2}, "make demo")
    for role in ("results", "summary", "training_curve", "still", "video:clean:100000", "video:occluded:100000"):
        assert written[role].is_file() and written[role].stat().st_size > 0, role
    data = json.loads(written["results"].read_text())
    assert data["summary"]["clean"]["successes"] == 3 and data["summary"]["occluded"]["episodes"] == 4
    assert data["training"]["best_val_loss"] == 0.03 and data["command"] == "make demo"
    assert len(data["per_episode"]) == 8 and "trace" not in data["per_episode"][0]
    summary = written["summary"].read_text()
    assert "| clean | 3/4 | 75% |" in summary and "training_curve.png" in summary and "still_occluded.png" in summary
    video = written["video:occluded:100000"]
    import imageio.v2 as imageio

    reader = imageio.get_reader(video)
    try:
        count = sum(1 for _ in reader)
    finally:
        reader.close()
    assert count == FRAMES


def test_training_history_skips_a_cut_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "val_loss": 1.5}\n{"step": 3, "lo')
    assert load_training_history(run) == [{"step": 1, "loss": 2.0}, {"step": 2, "val_loss": 1.5}]
    with pytest.raises(ValueError, match=r"metrics\.jsonl"):
        load_training_history(tmp_path / "nowhere")


def test_a_long_noise_label_is_cut_to_its_bar_and_a_short_one_kept() -> None:
    from PIL import Image, ImageDraw

    from evaluation.report import _font, fit_text, noise_label

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    font = _font(13)
    long = noise_label("front", K, K, "black,frozen,stale,surprising")
    width = 300
    assert draw.textlength(long, font=font) > width  # the case the bar overflowed
    cut = fit_text(draw, long, font, width)
    assert cut.endswith("...") and long.startswith(cut[:-3]) and draw.textlength(cut, font=font) <= width
    short = noise_label("wrist", 0, K)
    assert fit_text(draw, short, font, width) == short
