"""Fault injection: plans are seeded data; images show a fault exactly where the plan says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.faults import (
    CAMERA_FAULTS,
    FAULT_KINDS,
    FaultEvent,
    FaultInjector,
    FaultPlan,
    box_blur,
)

# --------------------------------------------------------------- plain data (no MuJoCo)


def test_plan_round_trips_through_dict_and_json() -> None:
    plan = FaultPlan.random(seed=11, duration_s=15.0, events=8)
    assert FaultPlan.from_dict(plan.to_dict()) == plan
    assert FaultPlan.from_json(plan.to_json()) == plan
    assert FaultPlan.random(seed=11, duration_s=15.0, events=8) == plan
    assert FaultPlan.random(seed=12, duration_s=15.0, events=8) != plan
    assert all(e.kind in FAULT_KINDS for e in plan.events)


def test_bad_plans_are_rejected_with_the_reason() -> None:
    with pytest.raises(ValueError, match="unknown fault kind 'smoke'"):
        FaultEvent("smoke", 0.0, 1.0, camera="front")
    with pytest.raises(ValueError, match="must be after"):
        FaultEvent("blackout", 1.0, 1.0, camera="front")
    with pytest.raises(ValueError, match="needs a camera"):
        FaultEvent("blackout", 0.0, 1.0)
    with pytest.raises(ValueError, match="camera must be None"):
        FaultEvent("distractor", 0.0, 1.0, camera="front")
    with pytest.raises(ValueError, match="unknown parameters"):
        FaultEvent("noise", 0.0, 1.0, camera="front", params={"sigmaa": 3})
    with pytest.raises(ValueError, match="names camera 'side'"):
        FaultInjector(FaultPlan((FaultEvent("blackout", 0, 1, camera="side"),)), ["front"])
    with pytest.raises(ValueError, match="not valid JSON"):
        FaultPlan.from_json("{")


def test_ground_truth_lists_active_faults_per_camera() -> None:
    plan = FaultPlan(
        (
            FaultEvent("blackout", 1.0, 2.0, camera="front"),
            FaultEvent("distractor", 1.5, 3.0),
            FaultEvent("state_dropout", 0.0, 0.5),
        )
    )
    truth = plan.ground_truth(1.6, ["front", "wrist"])
    assert truth == {
        "front": ("blackout", "distractor"),
        "wrist": ("distractor",),
        "robot_state": (),
    }
    assert plan.ground_truth(2.0, ["front"])["front"] == ("distractor",)  # end is exclusive
    assert plan.ground_truth(0.2, ["front"])["robot_state"] == ("state_dropout",)


def test_injector_on_synthetic_frames() -> None:
    plan = FaultPlan(
        (
            FaultEvent("delayed", 1.0, 2.0, camera="cam", params={"delay_s": 0.3}),
            FaultEvent("frozen", 3.0, 4.0, camera="cam"),
        )
    )
    injector = FaultInjector(plan, ["cam"])
    frames = {}
    for step in range(50):
        t = step / 10
        frames[step] = np.full((8, 8, 3), step, np.uint8)
        out = injector.process("cam", t, frames[step])
        if 10 <= step < 20:
            assert out.stamp == pytest.approx(t - 0.3)
            assert np.array_equal(out.image, frames[step - 3])
        elif 30 <= step < 40:
            assert out.stamp == pytest.approx(t)
            assert np.array_equal(out.image, frames[30])
        else:
            assert out.image is frames[step] and out.faults == ()


def test_box_blur_keeps_flat_images_and_smooths_edges() -> None:
    flat = np.full((10, 10, 3), 77, np.uint8)
    assert np.array_equal(box_blur(flat, 5), flat)
    edge = np.zeros((10, 10, 3), np.uint8)
    edge[:, 5:] = 255
    blurred = box_blur(edge, 3)
    assert 0 < blurred[0, 4, 0] < 255 and 0 < blurred[0, 5, 0] < 255


# ------------------------------------------------------------ in the simulated scene

SPAN = 0.5  # s per fault in the schedule below


def _schedule() -> FaultPlan:
    """One event per kind, one after another, alternating cameras."""
    events = []
    t = 0.5
    for i, kind in enumerate(CAMERA_FAULTS):
        # Frozen frames need a moving scene: the wrist camera moves with the arm.
        camera = "wrist" if kind == "frozen" else ("front", "wrist")[i % 2]
        events.append(FaultEvent(kind, t, t + SPAN, camera=camera, seed=100 + i))
        t += SPAN
    events.append(FaultEvent("distractor", t, t + 1.0, seed=7))
    events.append(FaultEvent("state_dropout", 1.0, 1.5))
    return FaultPlan(tuple(events), seed=None)


@pytest.mark.sim
def test_images_show_faults_exactly_where_the_plan_says() -> None:
    pytest.importorskip("mujoco")
    from sim.env import EnvConfig
    from sim.tasks.swap_fruit import ScriptedExpert, SwapFruitEnv

    plan = _schedule()
    clean_env = SwapFruitEnv(EnvConfig(image_size=64))
    faulty_env = SwapFruitEnv(EnvConfig(image_size=64))
    clean = clean_env.reset(3)
    faulty = faulty_env.reset(3, fault_plan=plan)
    expert = ScriptedExpert(clean_env)
    expert.reset()
    history: list[dict[str, np.ndarray]] = []
    seen: dict[str, int] = {}
    last_state = None
    steps = round(plan.events[-2].end_s / 0.1) + 3
    for _ in range(steps):
        history.append({c: clean.images[c] for c in clean.images})
        t = clean.time
        assert faulty.time == t
        truth = plan.ground_truth(t, ["front", "wrist"])
        assert faulty.faults == truth
        for camera in ("front", "wrist"):
            got, want = faulty.images[camera], clean.images[camera]
            kinds = truth[camera]
            if not kinds:
                assert np.array_equal(got, want), f"{camera} differs at t={t:.1f} without a fault"
                assert faulty.image_stamps[camera] == t
                continue
            (kind,) = kinds
            seen[kind] = seen.get(kind, 0) + 1
            if kind == "dropped":
                assert got is None and math.isnan(faulty.image_stamps[camera])
            elif kind == "blackout":
                assert not got.any()
            elif kind == "delayed":
                delay_steps = 3
                assert np.array_equal(got, history[-1 - delay_steps][camera])
                assert faulty.image_stamps[camera] == pytest.approx(t - 0.3)
            elif kind == "frozen":
                event = next(e for e in plan.events if e.kind == "frozen")
                start_step = round(event.start_s / 0.1)
                assert np.array_equal(got, history[start_step][camera])
                assert faulty.image_stamps[camera] == t
                seen["frozen_stale"] = seen.get("frozen_stale", 0) + int(not np.array_equal(got, want))
            elif kind in ("occlusion", "hand"):
                changed = np.any(got != want, axis=-1).mean()
                assert 0.03 < changed < 0.9, (kind, changed)
            elif kind in ("noise", "blur"):
                assert not np.array_equal(got, want)
                assert np.abs(got.astype(int) - want.astype(int)).mean() < 40
            elif kind == "distractor" and camera == "front":
                seen["distractor_visible"] = seen.get("distractor_visible", 0) + int(not np.array_equal(got, want))
        if truth["robot_state"]:
            seen["state_dropout"] = seen.get("state_dropout", 0) + 1
            assert faulty.state is last_state and faulty.state_stamp < t
        else:
            np.testing.assert_array_equal(faulty.proprio(), clean.proprio())
            last_state = faulty.state
        action = expert.act()
        clean = clean_env.step(action)
        faulty = faulty_env.step(action)
    for kind in (*CAMERA_FAULTS, "distractor", "state_dropout"):
        assert seen.get(kind, 0) >= 4, f"fault {kind} was never checked ({seen})"
    assert seen["distractor_visible"] >= 4
    assert seen["frozen_stale"] >= 3  # the frozen wrist camera really froze a moving view
    clean_env.close()
    faulty_env.close()


@pytest.mark.parametrize("duration", [15.0, 1.2])
def test_occlusion_test_plan_blacks_out_one_camera_in_separate_spans_and_adds_a_distractor(duration: float) -> None:
    for seed in range(20):
        plan = FaultPlan.occlusion_test(seed, duration_s=duration, camera="front")
        assert plan == FaultPlan.occlusion_test(seed, duration_s=duration, camera="front")  # seeded
        blackouts = [e for e in plan.events if e.kind == "blackout"]
        assert len(blackouts) == 2 and all(e.camera == "front" for e in blackouts)
        assert blackouts[0].end_s <= blackouts[1].start_s  # never one merged span
        assert all(0 <= e.start_s < e.end_s <= duration + 1e-6 for e in plan.events)
        if duration >= 3.0:
            assert all(e.end_s - e.start_s >= 1.5 - 1e-6 for e in blackouts)
        assert [e.kind for e in plan.events].count("distractor") == 1
    with pytest.raises(ValueError, match="duration_s"):
        FaultPlan.occlusion_test(0, duration_s=0.0)
