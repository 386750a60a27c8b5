"""SimEnv on the swap-fruit task: layout, control, determinism, input checking, expert and success."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.sim

pytest.importorskip("mujoco")

from policy.geometry import matrix_to_rot6d  # noqa: E402
from sim.env import EnvConfig, make_action  # noqa: E402
from sim.expert import run_expert_episode  # noqa: E402
from sim.faults import FaultEvent, FaultPlan  # noqa: E402
from sim.tasks.swap_fruit import (  # noqa: E402
    FRUIT_RADIUS,
    SLOT_POSITIONS,
    ScriptedExpert,
    SwapFruitEnv,
    SwapFruitTask,
)
from training.config import task_policy_spec  # noqa: E402

TOP_DOWN = np.diag([1.0, -1.0, -1.0])


@pytest.fixture(scope="module")
def physics_env():
    env = SwapFruitEnv(EnvConfig(cameras=()))
    yield env
    env.close()


@pytest.fixture(scope="module")
def camera_env():
    env = SwapFruitEnv(EnvConfig(image_size=64))
    yield env
    env.close()


def test_observation_matches_policy_spec(camera_env) -> None:
    spec = task_policy_spec(["task.image_size=64"])
    obs = camera_env.reset(0)
    assert tuple(obs.images) == spec.camera_names
    for camera in spec.cameras:
        image = obs.images[camera.name]
        assert image.shape == (camera.height, camera.width, 3) and image.dtype == np.uint8
        assert image.std() > 5  # a real picture, not a blank buffer
    proprio = obs.proprio()
    assert proprio.shape == (spec.proprio_dim,)
    np.testing.assert_allclose(proprio[3:9], matrix_to_rot6d(obs.state.ee_rotation))
    assert proprio[9] == pytest.approx(0.08, abs=1e-3)
    assert obs.joint_positions.shape == (7,)
    assert obs.time == 0.0 and all(f == () for f in obs.faults.values())
    action = make_action(obs.ee_position, obs.state.ee_rotation, 0.08)
    assert action.shape == (spec.action.dim,)
    description = camera_env.describe()
    assert description["joint_names"] == [f"fr3_joint{i}" for i in range(1, 8)]
    assert set(description["cameras"]) == {"front", "wrist"}


def test_reset_draws_every_layout_with_small_jitter(physics_env) -> None:
    layouts, firsts = set(), set()
    for seed in range(40):
        physics_env.reset(seed)
        info = physics_env.info
        layouts.add((info.fruit_slots["apple"], info.fruit_slots["orange"]))
        firsts.add(info.first_fruit)
        assert info.empty_slot not in info.fruit_slots.values()
        for fruit, slot in info.fruit_slots.items():
            position = physics_env.fruit_positions()[fruit]
            assert np.abs(position[:2] - SLOT_POSITIONS[slot]).max() <= 0.0101
            assert position[2] == pytest.approx(FRUIT_RADIUS)
    assert len(layouts) == 6 and firsts == {"apple"}  # the default protocol: apple first


def test_random_first_fruit_protocol_keeps_the_layouts() -> None:
    fixed = SwapFruitEnv(EnvConfig(cameras=()))
    random_first = SwapFruitEnv(EnvConfig(cameras=()), SwapFruitTask(first_fruit="random"))
    firsts = set()
    for seed in range(20):
        a, b = fixed.reset_state(seed), random_first.reset_state(seed)
        assert a.fruit_slots == b.fruit_slots and a.initial_fruit_positions == b.initial_fruit_positions
        firsts.add(b.first_fruit)
    assert firsts == {"apple", "orange"}
    with pytest.raises(ValueError, match="first_fruit"):
        SwapFruitTask(first_fruit="banana")


def test_absolute_target_is_tracked(physics_env) -> None:
    obs = physics_env.reset(1)
    target = np.array([0.45, 0.2, 0.2])
    start = obs.ee_position.copy()
    for k in range(1, 21):
        waypoint = start + min(1.0, k / 15) * (target - start)
        obs = physics_env.step(make_action(waypoint, TOP_DOWN, 0.04))
    assert np.linalg.norm(obs.ee_position - target) < 0.002
    assert obs.gripper_width == pytest.approx(0.04, abs=0.002)
    assert obs.time == pytest.approx(2.0)


def test_bad_targets_raise_clear_errors(physics_env) -> None:
    obs = physics_env.reset(2)
    good = make_action(obs.ee_position, TOP_DOWN, 0.08)
    nan = good.copy()
    nan[1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite components \['y'\]"):
        physics_env.step(nan)
    far = good.copy()
    far[:3] = [1.5, 0.0, 0.3]
    with pytest.raises(ValueError, match="outside the reachable workspace"):
        physics_env.step(far)
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        physics_env.step(good[:7])
    with pytest.raises(ValueError, match="seed"):
        physics_env.reset(-1)


def test_clip_targets_option_clips_instead_of_raising() -> None:
    env = SwapFruitEnv(EnvConfig(cameras=(), clip_targets=True))
    obs = env.reset(0)
    action = make_action([1.5, 0.0, 0.2], obs.state.ee_rotation, 0.08)
    for _ in range(30):
        obs = env.step(action)
    assert obs.ee_position[0] == pytest.approx(env.config.workspace.high[0], abs=0.01)


def test_same_seed_gives_identical_episodes(camera_env) -> None:
    plan = FaultPlan((FaultEvent("noise", 0.5, 1.0, camera="wrist", seed=3),))

    def rollout(seed: int) -> list:
        obs = camera_env.reset(seed, fault_plan=plan)
        expert = ScriptedExpert(camera_env)
        expert.reset()
        trace = []
        for _ in range(25):
            obs = camera_env.step(expert.act())
            trace.append((obs.images["front"], obs.images["wrist"], obs.proprio(), obs.joint_positions))
        return trace

    first = rollout(7)
    positions = camera_env.info.initial_fruit_positions
    second = rollout(7)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(x, y)
    camera_env.reset(8)
    assert camera_env.info.initial_fruit_positions != positions


def test_expert_swaps_fruits_in_short_episodes(physics_env) -> None:
    for seed in range(4):
        result = run_expert_episode(physics_env, seed)
        assert result["success"], result["report"]
        assert result["steps"] <= 150
        info = physics_env.info
        for fruit, goal in info.goal_slots().items():
            position = physics_env.fruit_positions()[fruit]
            assert np.linalg.norm(position[:2] - SLOT_POSITIONS[goal]) < 0.03


def test_success_is_false_until_the_swap_is_done(physics_env) -> None:
    physics_env.reset(5)
    assert not physics_env.success()
    report = physics_env.success_report()
    assert not any(f["in_goal_slot"] for f in report["fruits"].values())
    expert = ScriptedExpert(physics_env)
    expert.reset()
    # After the first move the table looks like a start layout but is not a success.
    while not expert.phase.startswith("withdraw"):
        physics_env.step(expert.act())
    assert not physics_env.success()


def test_expert_actions_are_smooth(physics_env) -> None:
    physics_env.reset(6)
    expert = ScriptedExpert(physics_env)
    expert.reset()
    actions = []
    while not expert.done:
        action = expert.act()
        actions.append(action)
        physics_env.step(action)
    positions = np.array(actions)[:, :3]
    speeds = np.linalg.norm(np.diff(positions, axis=0), axis=1) / 0.1
    assert speeds.max() < 1.0  # m/s; min-jerk segments, no jumps
    widths = {round(float(a[9]), 3) for a in actions}
    assert widths <= {0.0, 0.08}
