"""What the closed loop makes of the policy node's outputs, without DDS: the typed
/diagnostics key/values read back, predicted frames grouped into ticks, noise counted
per episode."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from evaluation.ros.episode import counter_changes, noise_counts, tick_records
from evaluation.ros.probe import PolicyHealth, PredictedFrame, read_policy_health
from evaluation.ros.processes import import_node_package

import_node_package()
from df_policy import policy_outputs as outputs  # noqa: E402

CAMERAS = ("front", "wrist")
K = 50


def _status(name: str, values: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(name=name, values=[SimpleNamespace(key=k, value=v) for k, v in values.items()])


def _diagnostics(ticks: int, front: int, issues: str = "", node: str = "policy_node") -> SimpleNamespace:
    loop = {outputs.TICKS: str(ticks), outputs.WATCHDOG_STOPS: "1", outputs.DROPPED_ACTIONS: str(2 * ticks)}
    camera = {outputs.NOISE_LEVEL: str(front), outputs.MAX_NOISE_LEVEL: str(K), outputs.ISSUES: issues}
    return SimpleNamespace(
        status=[
            _status(outputs.loop_status_name(node), loop),
            _status(outputs.camera_status_name(node, "front"), camera),
            _status(outputs.camera_status_name(node, "wrist"), {}),  # no tick yet: no values
        ]
    )


def test_health_is_read_from_the_named_key_values() -> None:
    health = read_policy_health(_diagnostics(7, K, "black,stale"), CAMERAS)
    assert health == PolicyHealth(
        ticks=7,
        levels={"front": K},
        issues={"front": "black,stale"},
        max_level=K,
        counters={"watchdog_stops": 1, "dropped_actions": 14, "adjusted_commands": 0, "rejected_commands": 0},
    )
    assert read_policy_health(_diagnostics(7, K, node="other_policy"), CAMERAS) is None  # another node's


def _frame(arrival: float, stamp: float, camera: str, value: int) -> PredictedFrame:
    return PredictedFrame(arrival, stamp, camera, np.full((8, 8, 3), value, np.uint8))


def test_predicted_frames_become_ticks_with_the_levels_reported_after_them() -> None:
    predicted = [
        _frame(10.01, 5.0, "front", 1),
        _frame(10.02, 5.0, "wrist", 2),
        _frame(10.41, 5.4, "wrist", 4),  # arrived out of camera order: same tick
        _frame(10.40, 5.4, "front", 3),
        _frame(10.80, 5.4, "front", 5),  # no new frame since: the same stamp, but a new tick
    ]
    health = [
        (10.1, read_policy_health(_diagnostics(1, 0), CAMERAS)),
        (10.5, read_policy_health(_diagnostics(2, K, "black"), CAMERAS)),
    ]
    ticks = tick_records(predicted, health, CAMERAS, t0=10.0)
    assert [round(t.time_s, 2) for t in ticks] == [0.01, 0.4, 0.8]
    assert [{c: int(f[0, 0, 0]) for c, f in t.predicted.items()} for t in ticks] == [
        {"front": 1, "wrist": 2},
        {"front": 3, "wrist": 4},
        {"front": 5},
    ]
    # Each tick takes the first report after it; the last, with none after it, the last report.
    assert [t.levels["front"] for t in ticks] == [0, K, K]
    assert all(t.levels["wrist"] == -1 for t in ticks)  # never reported: not known
    assert ticks[1].issues == {"front": "black", "wrist": ""}


def test_episode_counts_leave_out_the_tick_from_before_it() -> None:
    before = read_policy_health(_diagnostics(3, 0), CAMERAS)
    reports = [(1.0, 3, 0), (2.0, 4, K), (3.0, 4, 0), (4.0, 5, 2)]  # (arrival, tick, front's k)
    health = [(t, read_policy_health(_diagnostics(tick, level), CAMERAS)) for t, tick, level in reports]
    counts = noise_counts(health, before, CAMERAS, K)
    assert counts["ticks"] == 2  # ticks 4 and 5; tick 4's first report counts
    assert counts["ticks_with_noise"] == 2
    assert counts["ticks_unusable_per_camera"] == {"front": 1, "wrist": 0}
    assert counts["max_level_per_camera"] == {"front": K, "wrist": 0}
    assert counter_changes(health, before)["dropped_actions"] == 10 - 6
    assert counter_changes([], None)["dropped_actions"] == 0
