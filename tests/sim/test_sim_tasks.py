"""The task seam: a task's camera mounts and non-square cameras, joint-space stepping,
per-camera rates, and what a task config must hold to be simulated."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.sim

pytest.importorskip("mujoco")

from evaluation.conditions import fault_plan_for  # noqa: E402
from evaluation.sim_task import SimTaskError, sim_task_from_config  # noqa: E402
from sim.env import EnvConfig, SimEnv  # noqa: E402
from sim.faults import FaultPlan  # noqa: E402
from sim.franka import JOINT_LOWER, JOINT_UPPER  # noqa: E402
from sim.hil import HilConfig, SimulatedRobot  # noqa: E402
from sim.tasks.swap_fruit import TOP_DOWN, SwapFruitTask  # noqa: E402

SIDE = {"side": {"position": [0.5, -0.9, 0.45], "look_at": [0.5, 0.0, 0.05], "fovy": 60}}


def test_a_task_mounts_cameras_and_each_renders_at_its_own_size() -> None:
    task = SwapFruitTask(cameras=SIDE)
    assert task.camera_names == ("front", "wrist", "side")
    sizes = {"front": (48, 64), "wrist": (32, 32), "side": (40, 72)}
    env = SimEnv(EnvConfig(cameras=("front", "wrist", "side"), camera_sizes=sizes), task)
    try:
        observation = env.reset(0)
        for camera, (height, width) in sizes.items():
            image = observation.images[camera]
            assert image.shape == (height, width, 3) and image.std() > 5, camera
        assert env.describe()["cameras"]["side"] == {
            "height": 40,
            "width": 72,
            "encoding": "rgb8",
            "fovy_deg": 60.0,
            "mount": "world (static)",
        }
    finally:
        env.close()


def test_bad_cameras_are_refused_naming_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"unknown cameras \['side'\].*has \['front', 'wrist'\].*sim.cameras"):
        SimEnv(EnvConfig(cameras=("front", "side")), SwapFruitTask())
    with pytest.raises(ValueError, match=r"sim.cameras.side: missing \['look_at'\]"):
        SwapFruitTask(cameras={"side": {"position": [1, 0, 1]}})
    with pytest.raises(ValueError, match=r"built into every scene"):
        SwapFruitTask(cameras={"front": SIDE["side"]})
    with pytest.raises(ValueError, match=r"not vertical"):
        SwapFruitTask(cameras={"top": {"position": [0.5, 0, 1.0], "look_at": [0.5, 0, 0]}})
    with pytest.raises(ValueError, match=r"camera_sizes names 'side'"):
        EnvConfig(cameras=("front",), camera_sizes={"side": (32, 32)})
    with pytest.raises(ValueError, match=r"sim.fault_plans.dark: fault plan names camera 'top'"):
        SwapFruitTask(
            fault_plans={"dark": {"events": [{"kind": "blackout", "start_s": 0, "end_s": 1, "camera": "top"}]}}
        )


def test_joint_space_env_tracks_joint_targets_and_reaches_an_experts_pose() -> None:
    env = SimEnv(EnvConfig(cameras=(), embodiment="joint_position"), SwapFruitTask())
    observation = env.reset(1)
    assert observation.proprio("joint_position").shape == (8,)
    position = observation.ee_position + np.array([0.1, 0.05, -0.1])
    target = env.joint_target_for(position, TOP_DOWN)
    action = np.concatenate([target, [0.04]])
    for _ in range(15):
        observation = env.step(action)
    np.testing.assert_allclose(observation.joint_positions, target, atol=2e-3)
    assert np.linalg.norm(observation.ee_position - position) < 3e-3
    assert observation.gripper_width == pytest.approx(0.04, abs=2e-3)
    # A pose target after joint targets starts where the joints left the arm (no jump).
    env.command(position, TOP_DOWN)
    env.advance(1)
    assert np.linalg.norm(env.robot_state().ee_position - position) < 3e-3
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        env.step(np.zeros(10))
    outside = target.copy()
    outside[3] = JOINT_UPPER[3] + 0.2
    with pytest.raises(ValueError, match=r"\{'fr3_joint4': .*outside the joint limits"):
        env.step(np.concatenate([outside, [0.08]]))
    env.close()
    clipping = SimEnv(EnvConfig(cameras=(), embodiment="joint_position", clip_targets=True), SwapFruitTask())
    clipping.reset(1)
    low = np.concatenate([JOINT_LOWER - 1.0, [0.08]])
    clipping.command_joints(low[:7])
    assert np.all(clipping.joint_reference >= JOINT_LOWER - 1e-12)


def test_each_camera_publishes_at_its_own_rate() -> None:
    env_config = EnvConfig(image_size=16, cameras=("front", "wrist", "side"))
    robot = SimulatedRobot(env_config, HilConfig(camera_rates_hz={"side": 5.0}), SwapFruitTask(cameras=SIDE))
    try:
        robot.reset(0)
        counts = {"front": 0, "wrist": 0, "side": 0}
        for _ in range(100):  # 1 s
            for frame in robot.tick().cameras:
                counts[frame.camera] += 1
        assert counts == {"front": 10, "wrist": 10, "side": 5}
        with pytest.raises(ValueError, match=r"camera_rates_hz names \['top'\]"):
            SimulatedRobot(env_config, HilConfig(camera_rates_hz={"top": 5.0}), SwapFruitTask(cameras=SIDE))
    finally:
        robot.close()


def test_a_task_config_without_a_simulated_task_is_refused_naming_the_fix() -> None:
    with pytest.raises(SimTaskError, match=r"task 'real' has no `sim:` section.*_target_"):
        sim_task_from_config({"name": "real", "robot": "fr3_real"})
    with pytest.raises(SimTaskError, match=r"is not a sim.tasks.base.SimTask"):
        sim_task_from_config({"name": "odd", "robot": "fr3_sim", "sim": {"_target_": "collections.OrderedDict"}})
    with pytest.raises(SimTaskError, match=r"first_fruit must be one of"):
        sim_task_from_config(
            {
                "name": "x",
                "robot": "fr3_sim",
                "sim": {"_target_": "sim.tasks.swap_fruit.SwapFruitTask", "first_fruit": "kiwi"},
            }
        )
    # fr3_real's cameras are front and wrist: both built in. A robot with a camera the
    # scene lacks is refused until the task mounts it.
    setup = sim_task_from_config(
        {"name": "ok", "robot": "fr3_sim", "sim": {"_target_": "sim.tasks.swap_fruit.SwapFruitTask"}}
    )
    assert setup.env_config().camera_sizes == {"front": (96, 96), "wrist": (96, 96)}


def test_a_task_names_its_own_fault_plans_and_its_active_time() -> None:
    plan = {"events": [{"kind": "blur", "start_s": 1.0, "end_s": 2.0, "camera": "side"}]}
    task = SwapFruitTask(cameras=SIDE, fault_plans={"smudge": plan}, active_s=5.0)
    assert fault_plan_for("smudge", 3, ("front", "side"), task=task) == FaultPlan.from_dict(plan)
    drawn = fault_plan_for("random", 3, ("front",), max_steps=300, task=task)
    assert all(event.start_s < 0.6 * 5.0 for event in drawn.events)  # within the task's active time
    with pytest.raises(ValueError, match=r"neither one of .*'smudge'"):
        fault_plan_for("fog", 3, ("front",), task=task)
