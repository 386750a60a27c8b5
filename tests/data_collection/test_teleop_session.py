"""The teleop recording session without ROS: device mapping, input timeouts, the command
path into the recorder, the lifecycle behind services and keys, the status line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from data_collection.recorder import Recorder, RecorderConfig
from data_collection.schema import fr3_stream_specs
from data_collection.store import EpisodeStore
from data_collection.teleop import TeleopIntegrator, TeleopLimits
from data_collection.teleop_session import (
    JoyMapping,
    RateMeter,
    TeleopSession,
    apply_deadzone,
    format_status,
    gripper_from_buttons,
    joint_state_vector,
    joy_to_input,
    key_action,
    scale_twist,
)

from .helpers import FakeClock

POSE = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])


def test_deadzone_rescales_so_full_deflection_stays_one() -> None:
    assert apply_deadzone(0.04, 0.05) == 0.0
    assert apply_deadzone(-1.0, 0.05) == -1.0
    assert apply_deadzone(0.525, 0.05) == pytest.approx(0.5)


def test_joy_mapping_axes_buttons_and_short_messages() -> None:
    mapping = JoyMapping(linear_axes=(1, 0, -1), angular_axes=(3, 4, 9), linear_scale=0.2, deadzone=0.0)
    reading = joy_to_input([0.5, -1.0, 0.3, 0.1, float("nan")], [0, 1], mapping)
    np.testing.assert_allclose(reading.linear, [-0.2, 0.1, 0.0])  # axis -1 and a missing axis read 0
    np.testing.assert_allclose(reading.angular, [0.1, 0.0, 0.0])  # NaN reads 0
    assert reading.gripper == 1.0  # open button held
    assert gripper_from_buttons([1, 0], mapping) == -1.0
    assert gripper_from_buttons([1, 1], mapping) == 0.0 and gripper_from_buttons([], mapping) == 0.0
    assert reading.vector().shape == (7,)
    with pytest.raises(ValueError, match="3 indices"):
        JoyMapping(linear_axes=(0, 1))  # type: ignore[arg-type]


def test_twist_scaling_and_joint_state_ordering() -> None:
    linear, angular = scale_twist((1.0, 0.0, -0.5), (0.0, 0.2, 0.0), 0.25, 1.0)
    np.testing.assert_allclose(linear, [0.25, 0.0, -0.125])
    np.testing.assert_allclose(angular, [0.0, 0.2, 0.0])
    vector = joint_state_vector(["b", "a", "x"], [2.0, 1.0, 9.0], [20.0, 10.0, 90.0], ["a", "b"])
    np.testing.assert_allclose(vector, [1.0, 2.0, 10.0, 20.0])
    np.testing.assert_allclose(joint_state_vector(["a"], [1.0], [], ["a"]), [1.0, 0.0])
    with pytest.raises(ValueError, match=r"lacks joints \['c'\]"):
        joint_state_vector(["a", "b"], [1.0, 2.0], [], ["a", "c"])
    with pytest.raises(ValueError, match="2 names but 1 positions"):
        joint_state_vector(["a", "b"], [1.0], [], ["a"])


def test_keys_and_status_line() -> None:
    assert [key_action(k) for k in "sSefdqh?x"] == [
        "start",
        "start",
        "stop",
        "stop_failed",
        "discard",
        "quit",
        "help",
        "help",
        None,
    ]
    assert key_action("") is None and key_action("ss") is None
    line = format_status("recording", "ep_000003", 12.43, {"front": 29.96, "gripper": 4.5}, ["front", "gripper", "x"])
    assert line == "REC ep_000003    12.4 s | front 30 gripper 4.5 x 0.0 Hz | drops 0 rejected 0"
    idle = format_status("idle", None, 0.0, {}, ["front"], dropped=2, problems=0, last="ep_000001 committed")
    assert idle == "idle (last: ep_000001 committed) | front 0.0 Hz | drops 2 rejected 0"


def test_rate_meter_counts_between_calls() -> None:
    meter = RateMeter()
    assert meter.rates(10.0) == {}
    for _ in range(30):
        meter.count("front")
    meter.count("gripper")
    assert meter.rates(10.5) == {"front": 60.0, "gripper": 2.0}
    assert meter.rates(11.0) == {"front": 0.0, "gripper": 0.0}


@pytest.fixture
def session(tmp_path: Path) -> Iterator[TeleopSession]:
    store = EpisodeStore.create(tmp_path / "teleop.zarr", durable=False)
    clock = FakeClock(100.0)
    streams = [s for s in fr3_stream_specs(image_shape=(8, 8)) if s.name in ("ee_pose", "gripper", "command", "teleop")]
    recorder = Recorder(store, streams, RecorderConfig(min_free_bytes=0, block_when_full=True), clock=clock)
    box = {"workspace_min": (0.25, -0.45, 0.02), "workspace_max": (0.80, 0.45, 0.70)}
    limits = TeleopLimits(**box, max_linear_speed=0.25, twist_timeout_s=0.2, max_step_s=0.05)
    result = TeleopSession(recorder, TeleopIntegrator(limits), task="test")
    result.clock = clock  # type: ignore[attr-defined]
    yield result
    result.close()


def _run(session: TeleopSession, start: float, seconds: float, period: float = 0.01) -> list[np.ndarray]:
    commands = []
    for k in range(1, round(seconds / period) + 1):
        now = start + k * period
        session.clock.now = now  # type: ignore[attr-defined]
        session.on_pose(now, POSE)
        command = session.control_step(now)
        assert command is not None
        commands.append(command)
    return commands


def test_commands_start_at_the_measured_pose_and_stale_input_stops(session: TeleopSession) -> None:
    assert session.control_step(100.0) is None and not session.ready  # no pose yet: nothing to command
    session.on_pose(100.0, POSE)
    session.on_gripper_width(100.0, 0.06)
    first = session.control_step(100.0)
    np.testing.assert_allclose(first, [*POSE, 0.06])
    session.on_motion(100.0, [1.0, 0.0, 0.0], [0.0, 0.0, 0.0])  # above the speed limit
    session.on_gripper_input(100.0, -1.0)
    commands = _run(session, 100.0, 0.5)
    # 0.2 s of input at the 0.25 m/s limit, then the input is stale and the target holds.
    assert commands[-1][0] - POSE[0] == pytest.approx(0.25 * 0.2, abs=0.0026)
    assert commands[-1][0] == commands[-20][0]
    assert commands[-1][7] == pytest.approx(0.06 - 0.1 * 0.2, abs=0.0011)
    np.testing.assert_allclose(session.input_in_effect(100.5).vector(), np.zeros(7))


def test_lifecycle_records_commands_and_keys_guard_quitting(session: TeleopSession) -> None:
    store = session.recorder.store
    assert session.stop() == (False, "no episode is being recorded")
    ok, message = session.start(100.0)
    assert ok and message == "recording ep_000000"
    assert session.start(100.0)[0] is False
    session.on_motion(100.0, [0.1, 0.0, 0.0], [0.0, 0.0, 0.0])
    _run(session, 100.0, 0.3)
    session.on_gripper_width(100.3, 0.08)
    assert session.handle_key("q", 100.3).startswith("an episode is being recorded")
    assert not session.quit_requested
    assert "REC ep_000000" in session.status_line(100.3, ["ee_pose"])
    assert session.handle_key("f", 100.3).startswith("episode ep_000000 committed")
    episode = store.episode(0)
    assert episode.metadata["success"] is False and episode.metadata["task"] == "test"
    command, teleop = episode.values("command"), episode.values("teleop")
    assert len(command) == len(teleop) == 30
    assert command[-1, 0] > command[0, 0] and teleop[0, 0] == pytest.approx(0.1)
    assert session.handle_key("s", 101.0) == "recording ep_000001"
    assert session.handle_key("d", 101.0) == "episode ep_000001 discarded"
    assert store.episode_ids() == ["ep_000000"]
    assert session.handle_key("z", 101.0) is None
    assert session.handle_key("q", 101.0) == "quitting" and session.quit_requested
    assert "last: ep_000001 discarded" in session.status_line(101.0, ["ee_pose"])
