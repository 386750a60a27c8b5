"""policy.commanding: scheduling, interpolation, safety filter and watchdog (no ROS)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from policy.commanding import (
    ChunkScheduler,
    Commander,
    PoseCommand,
    SafetyFilter,
    Watchdog,
    WatchdogConfig,
    actions_to_waypoints,
    audit_command,
    limit_violations,
    quat_angle,
    slerp,
)
from policy.geometry import matrix_to_quat, quat_to_rot6d
from robots.description import load_robot_description
from robots.embodiment import EndEffectorPose

SPEC = EndEffectorPose.action
# The simulated FR3's limits (its workspace box): each test changes only what it checks.
LIMITS = load_robot_description("fr3_sim").safety
DOWN = matrix_to_quat(np.diag([1.0, -1.0, -1.0]))  # top-down grasp orientation


def yaw_quat(angle: float) -> np.ndarray:
    """DOWN turned by `angle` about the base z axis."""
    c, s = math.cos(angle), math.sin(angle)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    return matrix_to_quat(rz @ np.diag([1.0, -1.0, -1.0]))


def action(position, quat=DOWN, gripper: float = 0.08) -> np.ndarray:
    return np.concatenate([np.asarray(position, float), quat_to_rot6d(np.asarray(quat)), [gripper]])


def chunk(start_stamp: float, positions, period: float = 0.1, quats=None, grippers=None):
    quats = quats or [DOWN] * len(positions)
    grippers = grippers or [0.08] * len(positions)
    actions = np.stack([action(p, q, g) for p, q, g in zip(positions, quats, grippers, strict=True)])
    stamps = start_stamp + np.arange(len(positions)) * period
    return stamps, actions


def pose(stamp: float, position, quat=DOWN, gripper: float = 0.08) -> PoseCommand:
    return PoseCommand(stamp, np.asarray(position, float), np.asarray(quat, float), gripper)


# ------------------------------------------------------------------------ geometry


def test_slerp_is_geodesic_and_takes_the_short_arc() -> None:
    a, b = yaw_quat(0.0), yaw_quat(0.8)
    halfway = slerp(a, b, 0.5)
    assert quat_angle(halfway, yaw_quat(0.4)) < 1e-9
    # -b is the same rotation: the result must not go the long way round.
    assert quat_angle(slerp(a, -b, 0.25), yaw_quat(0.2)) < 1e-9
    assert quat_angle(slerp(a, a, 0.7), a) < 1e-9


def test_waypoints_stop_at_the_first_corrupt_action() -> None:
    stamps, actions = chunk(0.0, [[0.4, 0, 0.3], [0.41, 0, 0.3], [0.42, 0, 0.3]])
    actions[1, 0] = np.nan
    assert len(actions_to_waypoints(stamps, actions, SPEC)) == 1
    actions[1, 0] = 0.41
    actions[2, 3:9] = 0.0  # a zero 6D rotation is no rotation
    assert len(actions_to_waypoints(stamps, actions, SPEC)) == 2
    with pytest.raises(ValueError, match=r"shape \(3, 10\)"):
        actions_to_waypoints(stamps, actions[:, :9], SPEC)


# ---------------------------------------------------------------------- scheduling


def test_scheduler_drops_passed_actions_and_starts_from_the_last_command() -> None:
    scheduler = ChunkScheduler(SPEC)
    stamps, actions = chunk(10.0, [[0.40 + 0.01 * i, 0.0, 0.3] for i in range(8)])
    start = pose(10.25, [0.40, 0.0, 0.3])
    dropped, invalid = scheduler.set_chunk(10.25, stamps, actions, start)
    assert (dropped, invalid) == (3, 0)  # due at 10.0, 10.1, 10.2: all before 10.25
    # At `now` the target is the start pose (no jump), then it heads to the 10.3 action.
    np.testing.assert_allclose(scheduler.sample(10.25).position, [0.40, 0.0, 0.3])
    np.testing.assert_allclose(scheduler.sample(10.3).position, [0.43, 0.0, 0.3], atol=1e-12)
    np.testing.assert_allclose(scheduler.sample(10.35).position, [0.435, 0.0, 0.3], atol=1e-12)
    assert scheduler.sample(10.7).position[0] == pytest.approx(0.47)
    assert scheduler.sample(10.71) is None  # past the chunk: nothing to command


def test_scheduler_interpolates_rotation_and_gripper() -> None:
    scheduler = ChunkScheduler(SPEC)
    stamps, actions = chunk(
        0.0, [[0.4, 0, 0.3], [0.4, 0, 0.3]], period=0.1, quats=[yaw_quat(0), yaw_quat(0.2)], grippers=[0.08, 0.0]
    )
    scheduler.set_chunk(-1.0, stamps, actions, None)
    middle = scheduler.sample(0.05)
    assert quat_angle(middle.quat_xyzw, yaw_quat(0.1)) < 1e-9
    assert middle.gripper_width == pytest.approx(0.04)


def test_a_chunk_entirely_in_the_past_keeps_the_current_trajectory() -> None:
    scheduler = ChunkScheduler(SPEC)
    scheduler.set_chunk(0.0, *chunk(0.1, [[0.4, 0, 0.3], [0.5, 0, 0.3]]), None)
    dropped, _ = scheduler.set_chunk(5.0, *chunk(1.0, [[0.6, 0, 0.3]]), None)
    assert dropped == 1
    assert scheduler.end_stamp == pytest.approx(0.2)


# -------------------------------------------------------------------------- safety


def test_filter_rejects_nan_and_clamps_to_the_workspace() -> None:
    limits = replace(LIMITS, max_step_m=10.0, max_linear_speed_m_s=100.0, max_lead_m=10.0)
    safety = SafetyFilter(limits)
    assert safety.apply(pose(0.0, [np.nan, 0, 0.3])).rejected
    assert safety.apply(pose(0.0, [0.4, 0, 0.3], quat=[0, 0, 0, 0])).rejected
    result = safety.apply(pose(0.0, [2.0, -2.0, -1.0]))
    np.testing.assert_allclose(result.command.position, [0.75, -0.45, 0.005])
    assert "workspace" in result.adjustments

    rejecting = SafetyFilter(replace(LIMITS, workspace_mode="reject"))
    result = rejecting.apply(pose(0.0, [2.0, 0, 0.3]))
    assert result.command is None and "outside the workspace" in result.rejected


def test_filter_limits_speed_step_rotation_gripper_and_lead() -> None:
    limits = replace(LIMITS, max_linear_speed_m_s=0.5, max_step_m=0.02, max_angular_speed_rad_s=1.0, max_step_rad=0.05)
    safety = SafetyFilter(limits)
    safety.anchor(pose(0.0, [0.4, 0.0, 0.3]))
    # 20 ms at 0.5 m/s allows 1 cm.
    result = safety.apply(pose(0.02, [0.6, 0.0, 0.3], quat=yaw_quat(1.0), gripper=0.5))
    command = result.command
    assert np.linalg.norm(command.position - [0.4, 0, 0.3]) == pytest.approx(0.01)
    assert quat_angle(command.quat_xyzw, DOWN) == pytest.approx(0.02)
    assert command.gripper_width == pytest.approx(0.08)
    assert {"speed", "angular_speed", "gripper"} <= set(result.adjustments)
    assert limit_violations(limits, command, pose(0.0, [0.4, 0.0, 0.3])) == []
    # A long gap still allows only max_step_m.
    result = safety.apply(pose(10.0, [0.6, 0.0, 0.3]))
    assert np.linalg.norm(result.command.position - command.position) == pytest.approx(0.02)
    # The command may not lead the measured position by more than max_lead_m.
    lead_limits = replace(LIMITS, max_lead_m=0.05, max_step_m=1.0, max_linear_speed_m_s=100.0)
    lead = SafetyFilter(lead_limits).apply(pose(1.0, [0.6, 0.0, 0.3]), measured_position=np.array([0.4, 0.0, 0.3]))
    np.testing.assert_allclose(lead.command.position, [0.45, 0.0, 0.3])


def test_limit_violations_names_each_problem() -> None:
    limits = LIMITS
    previous = pose(0.0, [0.4, 0.0, 0.3])
    bad = pose(0.02, [0.9, 0.0, 0.3], quat=yaw_quat(1.0), gripper=0.2)
    problems = " | ".join(limit_violations(limits, bad, previous))
    for word in ("workspace", "position step", "rotation step", "gripper"):
        assert word in problems
    assert limit_violations(limits, pose(0.0, [np.inf, 0, 0])) == ["non-finite values"]


@pytest.mark.parametrize(
    "kwargs, field_name",
    [
        ({"workspace_low": (1.0, 0.0, 0.0), "workspace_high": (0.5, 1.0, 1.0)}, "workspace_low"),
        ({"workspace_mode": "bounce"}, "workspace_mode"),
        ({"max_step_m": 0.0}, "max_step_m"),
        ({"gripper_min_m": 0.09}, "gripper_min_m"),
    ],
)
def test_bad_limits_name_the_field(kwargs: dict, field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        replace(LIMITS, **kwargs)


# ------------------------------------------------------------------------ watchdog


def test_watchdog_names_what_is_stale() -> None:
    watchdog = Watchdog(WatchdogConfig(state_timeout_s=0.2, observation_timeout_s=0.5, chunk_timeout_s=1.0))
    status = watchdog.check(0.0)
    assert not status.ok and "no robot state yet" in status.reasons
    watchdog.last_state = watchdog.last_observation = watchdog.last_chunk = 1.0
    assert watchdog.check(1.1).ok
    status = watchdog.check(1.3)
    assert not status.ok and status.reasons == ("robot state stale (0.30 s > 0.2 s)",)
    with pytest.raises(ValueError, match="state_timeout_s"):
        WatchdogConfig(state_timeout_s=-1.0)


# ----------------------------------------------------------------------- commander


def make_commander(**limit_overrides) -> Commander:
    limits = replace(LIMITS, **limit_overrides)
    return Commander(SPEC, limits, WatchdogConfig(0.2, 0.5, 1.5), enabled=True, command_period_s=0.02)


def feed(commander: Commander, now: float, position=(0.4, 0.0, 0.3)) -> None:
    commander.update_state(now, np.asarray(position), DOWN, 0.08)
    commander.note_observation(now)


def run(commander: Commander, start: float, end: float, period: float = 0.02, state=True) -> list:
    """Step at the command rate; the arm (when `state`) tracks every command exactly."""
    steps = []
    t = start
    position = commander.measured.position if commander.measured else np.array([0.4, 0.0, 0.3])
    while t < end - 1e-9:
        if state:
            feed(commander, t, position)
        else:
            commander.note_observation(t)
        steps.append(commander.step(t))
        if steps[-1].command is not None:
            position = steps[-1].command.position
        t += period
    return steps


def test_commander_streams_a_chunk_within_limits() -> None:
    commander = make_commander()
    feed(commander, 0.0)
    stamps, actions = chunk(0.0, [[0.4 + 0.02 * i, 0.01 * i, 0.3] for i in range(8)])
    assert commander.set_chunk(0.01, stamps, actions) == 1
    steps = run(commander, 0.02, 0.7)
    commands = [s.command for s in steps if s.command is not None]
    assert len(commands) == len(steps)
    previous = None
    for command in commands:
        assert limit_violations(commander.limits, command, previous) == []
        previous = command
    np.testing.assert_allclose(commands[-1].position, [0.4 + 0.02 * 6.8, 0.068, 0.3], atol=1e-9)
    assert commander.counters.dropped_actions == 1 and commander.counters.commands == len(commands)


def test_commander_never_jumps_when_a_new_chunk_disagrees() -> None:
    commander = make_commander(max_linear_speed_m_s=0.5, max_step_m=0.02)
    feed(commander, 0.0)
    commander.set_chunk(0.0, *chunk(0.0, [[0.4, 0.0, 0.3]] * 8))
    steps = run(commander, 0.02, 0.2)
    # The next chunk wants to be 30 cm away at once: the speed limit walks there.
    commander.set_chunk(0.2, *chunk(0.2, [[0.7, 0.0, 0.3]] * 8))
    steps += run(commander, 0.2, 0.6)
    positions = np.array([s.command.position for s in steps])
    steps_m = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    assert steps_m.max() <= 0.5 * 0.02 + 1e-9
    assert commander.counters.adjustments["speed"] > 0


def test_commander_disabled_and_watchdog_stop_and_resume_from_measured_pose() -> None:
    commander = make_commander()
    commander.set_enabled(False)
    feed(commander, 0.0)
    commander.set_chunk(0.0, *chunk(0.0, [[0.45, 0.0, 0.3]] * 20))
    assert commander.step(0.02).status == "disabled"
    commander.set_enabled(True)
    commander.set_chunk(0.02, *chunk(0.02, [[0.45, 0.0, 0.3]] * 20))
    assert run(commander, 0.04, 0.5)[-1].status == "commanding"

    # State stops arriving: commanding stops once it is 0.2 s old.
    steps = run(commander, 0.5, 1.0, state=False)
    statuses = [s.status for s in steps]
    assert statuses[0] == "commanding" and statuses[-1] == "watchdog"
    assert "robot state stale" in steps[-1].reasons[0]
    assert commander.counters.watchdog_stops == 1

    # State returns with the arm elsewhere (pushed): the first command starts there.
    commander.set_chunk(1.0, *chunk(1.0, [[0.45, 0.0, 0.3]] * 10))
    feed(commander, 1.0, position=(0.5, 0.05, 0.3))
    step = commander.step(1.0)
    assert step.status == "commanding"
    assert np.linalg.norm(step.command.position - [0.5, 0.05, 0.3]) <= commander.limits.max_step_m + 1e-9


def test_commander_rejects_nan_chunks_and_goes_idle_after_the_chunk() -> None:
    commander = make_commander()
    feed(commander, 0.0)
    stamps, actions = chunk(0.0, [[0.4, 0, 0.3]] * 4)
    actions[:] = np.nan
    commander.set_chunk(0.0, stamps, actions)
    assert commander.counters.invalid_actions == 4
    assert commander.step(0.02).status == "idle"
    commander.set_chunk(0.02, *chunk(0.02, [[0.4, 0, 0.3]] * 4))
    assert commander.step(0.1).status == "commanding"
    feed(commander, 0.5)
    assert commander.step(0.5).status == "idle"


def test_commander_watchdog_stops_without_chunks() -> None:
    commander = make_commander()
    feed(commander, 0.0)
    commander.set_chunk(0.0, *chunk(0.0, [[0.4, 0, 0.3]] * 40))
    feed(commander, 2.0)
    step = commander.step(2.0)
    assert step.status == "watchdog" and any("policy chunks stale" in r for r in step.reasons)


def test_filter_bounds_rotation_lead_and_audit_accepts_restarts_from_the_measured_pose() -> None:
    limits = replace(LIMITS, max_lead_rad=0.2, max_step_rad=10.0, max_angular_speed_rad_s=100.0)
    result = SafetyFilter(limits).apply(pose(0.0, [0.4, 0, 0.3], quat=yaw_quat(1.0)), measured_quat=yaw_quat(0.0))
    assert quat_angle(result.command.quat_xyzw, yaw_quat(0.2)) < 1e-9 and "angular_lead" in result.adjustments

    limits = LIMITS
    previous = pose(0.0, [0.6, 0.0, 0.3])
    measured = pose(0.0, [0.4, 0.0, 0.3])
    restart = pose(0.02, [0.41, 0.0, 0.3])  # one step from the arm, far from the last command
    assert limit_violations(limits, restart, previous)
    assert audit_command(limits, restart, previous, measured) == []
    jump = pose(0.02, [0.5, 0.0, 0.3])  # near neither
    assert audit_command(limits, jump, previous, measured)


def test_non_finite_measured_states_are_ignored_and_never_reach_a_command() -> None:
    commander = make_commander()
    feed(commander, 0.0)
    commander.set_chunk(0.0, *chunk(0.0, [[0.45, 0.0, 0.3]] * 20))
    good = commander.step(0.02)
    assert good.status == "commanding"
    assert not commander.update_state(0.04, np.array([np.inf, 0.0, 0.3]), DOWN, 0.08)
    assert not commander.update_state(0.04, np.array([0.4, 0.0, 0.3]), np.zeros(4), 0.08)
    assert not commander.update_state(0.04, np.array([0.4, 0.0, 0.3]), DOWN, np.nan)
    assert commander.counters.invalid_states == 3
    steps = [commander.step(0.04 + 0.02 * i) for i in range(30)]
    assert all(s.command is None or s.command.is_finite() for s in steps)
    # The last good state ages out: the watchdog stops commanding instead of guessing.
    assert steps[-1].status == "watchdog" and "robot state stale" in steps[-1].reasons[0]


# ------------------------------------------------------------------- joint space


def joint_commander(**limit_overrides):
    from policy.commanding import JointModel
    from robots.embodiment import JointPosition
    from robots.franka import franka_arm, tcp_pose

    arm = franka_arm("fr3")
    model = JointModel(arm.joint_lower, arm.joint_upper, arm.joint_velocity_limit, lambda q: tcp_pose(q)[:3, 3])
    limits = replace(LIMITS, **limit_overrides)
    commander = Commander(JointPosition.action, limits, WatchdogConfig(0.2, 0.5, 1.5), True, 0.02, model)
    return commander, model


def joint_chunk(start: float, joints: np.ndarray, count: int, width: float = 0.08):
    stamps = start + 0.1 * (np.arange(count) + 1)
    actions = np.concatenate([np.tile(joints, (count, 1)), np.full((count, 1), width)], axis=1)
    return stamps, actions


def test_joint_commands_interpolate_within_joint_speed_step_and_lead_limits() -> None:
    from robots.franka import HOME_JOINTS

    commander, _ = joint_commander()
    goal = HOME_JOINTS + np.array([0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    previous = HOME_JOINTS
    commander.set_chunk(0.0, *joint_chunk(0.0, goal, 20))
    sent = []
    for i in range(1, 70):  # 1.4 s, inside the chunk's watchdog timeout
        t = 0.02 * i
        commander.update_joint_state(t, previous, 0.08)  # the arm tracks every command
        commander.note_observation(t)
        step = commander.step(t)
        assert step.status == "commanding", step
        joints = step.command.joints
        allowed = min(0.5 * 2.62 * 0.02, LIMITS.max_joint_step_rad) + 1e-9  # joint 1: 2.62 rad/s rated
        assert np.max(np.abs(joints - previous)) <= allowed
        sent.append(joints)
        previous = joints
    assert np.allclose(sent[-1], goal, atol=1e-6)  # it gets there, at the limited speed
    assert commander.counters.adjustments.get("speed", 0) > 0


def test_joint_targets_beyond_the_joint_limits_or_outside_the_workspace_are_held_back() -> None:
    from robots.franka import HOME_JOINTS, franka_arm, tcp_pose

    commander, _ = joint_commander(max_joint_step_rad=10.0, max_joint_speed_fraction=1.0, max_joint_lead_rad=10.0)
    arm = franka_arm("fr3")
    beyond = HOME_JOINTS.copy()
    beyond[3] = arm.joint_upper[3] + 0.5  # joint 4 past its upper limit
    commander.update_joint_state(0.0, HOME_JOINTS, 0.08)
    commander.note_observation(0.0)
    commander.set_chunk(0.0, *joint_chunk(0.0, beyond, 5))
    step = commander.step(0.1)
    assert step.command.joints[3] <= arm.joint_upper[3] - LIMITS.joint_limit_margin_rad + 1e-9
    assert "joint_limits" in step.adjustments
    # Shoulder pitched far forward: the TCP would end up behind the box's near face.
    down = HOME_JOINTS + np.array([0.0, 1.6, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert tcp_pose(down)[0, 3] < LIMITS.workspace_low[0]
    # The filter on its own, with seconds since the previous command (no speed limit in play).
    from policy.commanding import JointCommand, JointSafetyFilter

    joint_filter = JointSafetyFilter(commander.limits, commander.joint_model)
    joint_filter.anchor(JointCommand(0.0, HOME_JOINTS.copy(), 0.08))
    result = joint_filter.apply(JointCommand(10.0, down, 0.08))
    tcp = tcp_pose(result.command.joints)[:3, 3]
    assert "workspace" in result.adjustments
    assert np.all(tcp >= np.array(LIMITS.workspace_low) - 1e-6) and np.all(
        tcp <= np.array(LIMITS.workspace_high) + 1e-6
    )
    assert tcp[0] < LIMITS.workspace_low[0] + 0.01  # cut back only as far as the box's face
    rejecting = JointSafetyFilter(replace(commander.limits, workspace_mode="reject"), commander.joint_model)
    rejecting.anchor(JointCommand(0.0, HOME_JOINTS.copy(), 0.08))
    assert rejecting.apply(JointCommand(10.0, down, 0.08)).rejected == "target's TCP outside the workspace box"


def test_joint_actions_need_the_arm_model() -> None:
    from robots.embodiment import JointPosition

    with pytest.raises(ValueError, match="joint_model"):
        Commander(JointPosition.action, LIMITS)
