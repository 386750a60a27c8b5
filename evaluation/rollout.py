"""Closed-loop episodes of a policy in the simulator, in process (no ROS), through the
same frame-health + runner path as the ROS policy node.

The simulated task and robot are a task config's (evaluation.sim_task): a checkpoint's
own task by default. Each episode: reset the task's SimEnv(seed, fault_plan), reset the
agent; every tick hand the agent the camera frames (each at its native size, as the
robot description says) with their capture stamps and the proprioception of the
policy's embodiment, execute the chunk's first `actions_per_token` actions (one env step
each), and stop at success or after `max_steps` env steps. The success rate comes with a
95 % Wilson interval (honest at 0 % and 100 % with a few dozen episodes).

`evaluate_checkpoint` evaluates a checkpoint directory (`dfstack evaluate-sim`);
`evaluate_policy` a model in memory; `make_sim_evaluator` builds the callable the
trainer runs at each evaluation (named by training/conf/evaluation as a hydra target).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.conditions import (
    DEFAULT_EVAL_SEED,
    DEFAULT_FAULT_EVENTS,
    DEFAULT_FAULT_SPAN_S,
    DEFAULT_MAX_STEPS,
    check_fault_plan,
    fault_plan_for,
)
from evaluation.report import write_gif
from evaluation.results import EpisodeResult, EvalResult
from evaluation.sim_task import DEFAULT_TASK, SimTaskSetup

os.environ.setdefault("MUJOCO_GL", "egl")

STEADY_WINDOW_STEPS = 50  # EpisodeResult.final_motion_m looks at the last 5 s


@dataclass
class EvalSettings:
    episodes: int = 20
    seed: int = DEFAULT_EVAL_SEED  # episode i uses sim seed seed + i
    fault_plan: str = "none"  # a name of conditions.fault_plan_choices(task) or a FaultPlan JSON file
    fault_events: int = DEFAULT_FAULT_EVENTS  # events per episode for named plans
    fault_span_s: tuple[float, float] = DEFAULT_FAULT_SPAN_S
    max_steps: int = DEFAULT_MAX_STEPS
    # Rendered size: None renders each camera at its native size (the robot description's,
    # which the policy's crops refer to); N renders N x N. The agent resizes to the policy's.
    sim_image_size: int | None = None
    runner: Any = None  # policy.runner.RunnerConfig (None: its defaults)
    use_surprise: bool = False
    video_episodes: int = 1  # episodes recorded into the video (from the first)
    # True: an episode ends at its first success (a trial is scored when the fruits are
    # swapped). False: it runs all max_steps and counts as a success only if the task is
    # still done at the end, which checks that the policy stops and stays put.
    stop_at_success: bool = True
    # The simulated task (evaluation.sim_task.SimTaskSetup): None means the checkpoint's
    # own task (evaluate_checkpoint), else the default task config.
    task: SimTaskSetup | None = None

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        check_fault_plan(self.fault_plan, self.task.task if self.task is not None else None)

    def episode_fault_plan(self, seed: int, cameras: tuple[str, ...]) -> Any:
        """The FaultPlan of the episode with sim seed `seed` (evaluation.conditions.fault_plan_for)."""
        task = self.task.task if self.task is not None else None
        return fault_plan_for(
            self.fault_plan, seed, cameras, self.max_steps, self.fault_events, self.fault_span_s, task
        )

    def describe(self) -> dict[str, Any]:
        """The settings as results record them (the task by where it came from)."""
        described = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**described, "task": self.task.name if self.task is not None else None}


def _level_text(levels: dict[str, int], num_levels: int) -> str:
    return "  ".join(f"{name} k={level}/{num_levels}" for name, level in levels.items())


def _video_frame(
    images: dict[str, np.ndarray | None], predicted: dict[str, np.ndarray], text: str, size: int = 128
) -> np.ndarray:
    """Camera views (top) and the model's predicted frames (bottom), with a caption."""
    from PIL import Image, ImageDraw

    def tile(image: np.ndarray | None) -> np.ndarray:
        if image is None:
            return np.zeros((size, size, 3), np.uint8)
        return np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST))

    tiles_top = [tile(image) for image in images.values()]
    tiles_bottom = [tile(predicted.get(name)) for name in images]
    grid = np.concatenate([np.concatenate(tiles_top, 1), np.concatenate(tiles_bottom, 1)], 0)
    lines = text.split("\n")
    header = 12 * len(lines) + 2
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + header), (0, 0, 0))
    canvas.paste(Image.fromarray(grid), (0, header))
    draw = ImageDraw.Draw(canvas)
    for row, line in enumerate(lines):
        draw.text((2, 1 + 12 * row), line, fill=(255, 255, 255))
    return np.asarray(canvas)


def unsafe_target_problems(
    target: np.ndarray, previous: np.ndarray | None, period_s: float, limits: Any, robot: Any = None
) -> list[str]:
    """What is unsafe about one policy target against `limits` (policy.commanding.SafetyLimits:
    the simulated robot's description's, as the policy node holds them), sent `period_s`
    after `previous`: a 10-D end-effector target (position, rot6d, gripper), or, with the
    `robot` description of a joint_position robot, an 8-D joint target (7 joints, gripper)."""
    from policy.commanding import PoseCommand, limit_violations
    from policy.geometry import rot6d_to_quat

    if not np.all(np.isfinite(target)):
        return ["non-finite values"]
    if robot is not None and robot.embodiment == "joint_position":
        return _unsafe_joint_target(target, previous, period_s, limits, robot)
    # The gripper width is clamped by the safety filter and a few mm past fully open are
    # harmless (the normaliser's margin lets the policy overshoot 8 cm): only the pose counts.
    gripper = min(max(float(target[9]), limits.gripper_min_m), limits.gripper_max_m)
    command = PoseCommand(0.0, target[:3], rot6d_to_quat(target[3:9]), gripper)
    problems = limit_violations(limits, command)
    if previous is not None and np.all(np.isfinite(previous)):
        speed = float(np.linalg.norm(target[:3] - previous[:3])) / period_s
        if speed > limits.max_linear_speed_m_s:
            problems.append(f"speed {speed:.2f} m/s exceeds {limits.max_linear_speed_m_s} m/s")
    return problems


def _unsafe_joint_target(
    target: np.ndarray, previous: np.ndarray | None, period_s: float, limits: Any, robot: Any
) -> list[str]:
    """unsafe_target_problems for a joint target: joint limits (less the margin the node
    keeps), joint speed, and the TCP inside the workspace box."""
    from robots.franka import tcp_pose

    arm = robot.arm
    lower, upper = arm.limits
    joints = np.asarray(target[:7], dtype=np.float64)
    problems = []
    margin = limits.joint_limit_margin_rad
    outside = (joints < lower + margin - 1e-9) | (joints > upper - margin + 1e-9)
    if np.any(outside):
        problems.append(f"joints {[arm.joint_names[i] for i in np.flatnonzero(outside)]} outside their limits")
    tcp = tcp_pose(joints)[:3, 3]
    if np.any(tcp < np.asarray(limits.workspace_low) - 1e-6) or np.any(tcp > np.asarray(limits.workspace_high) + 1e-6):
        problems.append(f"TCP {np.round(tcp, 4).tolist()} outside the workspace box")
    if previous is not None and np.all(np.isfinite(previous)):
        speed = np.abs(joints - np.asarray(previous[:7])) / period_s
        allowed = np.asarray(arm.joint_velocity_limit) * limits.max_joint_speed_fraction
        if np.any(speed > allowed + 1e-9):
            fastest = int(np.argmax(speed / allowed))
            problems.append(
                f"{arm.joint_names[fastest]} speed {speed[fastest]:.2f} rad/s exceeds {allowed[fastest]:.2f}"
            )
    return problems


def run_episode(
    env: Any,
    agent: Any,
    seed: int,
    settings: EvalSettings,
    robot: Any,
    video: list[np.ndarray] | None = None,
) -> EpisodeResult:
    """One episode of `agent` (a policy.agent.PolicyAgent) in `env` (a sim.env.SimEnv) with
    sim seed `seed`, its targets audited against the safety limits of `robot` (the
    simulated robot's description); its frames are appended to `video` when one is given."""
    from policy.agent import CameraInput

    limits = robot.safety
    spec = agent.runner.spec
    plan = settings.episode_fault_plan(seed, tuple(env.config.cameras))
    observation = env.reset(seed, fault_plan=plan)
    agent.reset(seed)
    steps, ticks, unusable, tick_seconds = 0, 0, 0, 0.0
    success = env.success()
    first_success_step: int | None = 0 if success else None
    recent_positions: deque[np.ndarray] = deque(maxlen=STEADY_WINDOW_STEPS)
    unsafe, previous_target = 0, None
    while steps < settings.max_steps and not (success and settings.stop_at_success):
        cameras = {}
        for name in spec.camera_names:
            image = observation.images.get(name)
            stamp = observation.image_stamps.get(name)
            usable_stamp = None if stamp is None or not math.isfinite(stamp) else float(stamp)
            cameras[name] = CameraInput(image, usable_stamp)
        started = time.perf_counter()
        tick = agent.tick(
            now=float(observation.time),
            cameras=cameras,
            proprio=observation.proprio(spec.embodiment),
            proprio_stamp=float(observation.state_stamp),
            executed_actions=None,
        )
        tick_seconds += time.perf_counter() - started
        ticks += 1
        unusable += sum(1 for h in tick.health.values() if h.level >= agent.K)
        if video is not None:
            levels = {name: h.level for name, h in tick.health.items()}
            caption = f"seed {seed}  t={observation.time:.1f} s  (top: cameras, bottom: predicted)\n"
            caption += _level_text(levels, agent.K)
            video.append(_video_frame(dict(observation.images), tick.chunk.predicted_frames, caption))
        for action in tick.chunk.actions[: spec.actions_per_token]:
            target = np.asarray(action, dtype=np.float64)
            unsafe += bool(unsafe_target_problems(target, previous_target, env.config.step_period_s, limits, robot))
            previous_target = target
            observation = env.step(target)
            steps += 1
            recent_positions.append(observation.state.ee_position.copy())
            if steps >= settings.max_steps:
                break
        success = env.success()
        if success and first_success_step is None:
            first_success_step = steps
    final_motion = None
    if len(recent_positions) == STEADY_WINDOW_STEPS:
        final_motion = max(float(np.linalg.norm(p - recent_positions[-1])) for p in recent_positions)
    return EpisodeResult(
        seed=seed,
        success=bool(success),
        steps=steps,
        sim_time_s=float(env.time),
        ticks=ticks,
        mean_tick_ms=1000.0 * tick_seconds / max(ticks, 1),
        unusable_frames=unusable,
        fault_plan=plan.to_dict(),
        report=env.success_report(),
        first_success_step=first_success_step,
        final_motion_m=final_motion,
        unsafe_actions=unsafe,
    )


def evaluate_policy(
    model: Any,
    normalizer: Any,
    settings: EvalSettings | None = None,
    video_path: str | Path | None = None,
    progress: bool = True,
) -> EvalResult:
    """Closed-loop episodes of `model` (a DFPolicyModel) with its `normalizer` in the task of
    `settings.task` (default: the default task config's)."""
    from policy.agent import PolicyAgent
    from policy.runner import PolicyRunner, RunnerConfig

    settings = settings or EvalSettings()
    if settings.task is None:
        from evaluation.sim_task import load_sim_task

        settings = replace(settings, task=load_sim_task(DEFAULT_TASK))
    setup = settings.task
    assert setup is not None
    runner_config = settings.runner or RunnerConfig()
    was_training = model.training
    runner = PolicyRunner(model, normalizer, runner_config, device=next(model.parameters()).device)
    agent = PolicyAgent(runner, use_surprise=settings.use_surprise)
    check_fits_simulator(model.spec, setup)
    # Only the policy's cameras are rendered; targets outside the workspace (or the joint
    # limits) are clipped (as the ROS command layer does), not raised.
    env = setup.make_env(model.spec.camera_names, settings.sim_image_size, clip_targets=True)
    seeds = range(settings.seed, settings.seed + settings.episodes)
    iterator: Any = seeds
    bar = None
    if progress:
        from tqdm import tqdm

        bar = iterator = tqdm(seeds, desc="evaluate", unit="episode")
    frames: list[np.ndarray] = []
    results: list[EpisodeResult] = []
    started = time.perf_counter()
    try:
        for number, seed in enumerate(iterator):
            record = video_path is not None and number < settings.video_episodes
            results.append(run_episode(env, agent, int(seed), settings, setup.robot, frames if record else None))
            if bar is not None:
                done = sum(r.success for r in results)
                bar.set_postfix(success=f"{done}/{len(results)}")
    finally:
        env.close()
        model.train(was_training)
    if video_path is not None and frames:
        write_gif(frames, video_path)
    described = {**settings.describe(), "runner": asdict(runner_config)}
    return EvalResult(sum(r.success for r in results), results, described, time.perf_counter() - started)


def check_fits_simulator(spec: Any, setup: SimTaskSetup, checkpoint: str | Path = "policy") -> None:
    """Refuse a policy the simulated robot of `setup` cannot drive, naming every reason:
    cameras the robot lacks (a subset of its cameras is fine), other proprioception or
    actions, or an action period other than the env step."""
    problems = setup.policy_problems(spec)
    if problems:
        raise ValueError(
            f"checkpoint {checkpoint} does not fit the simulated robot of task {setup.name}:\n  - "
            + "\n  - ".join(problems)
        )


def evaluate_checkpoint(
    checkpoint: str | Path,
    settings: EvalSettings | None = None,
    video_path: str | Path | None = None,
    progress: bool = True,
    runner_overrides: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Load a policy checkpoint (refused if it does not fit the simulated robot) and evaluate
    it in `settings.task`, by default the task it was trained on; without `settings.runner`
    the runner samples as the checkpoint was evaluated in training, with `runner_overrides`
    (RunnerConfig fields) changed."""
    import torch

    from evaluation.sim_task import checkpoint_sim_task
    from policy.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    settings = settings or EvalSettings()
    if settings.task is None:
        settings = replace(settings, task=checkpoint_sim_task(loaded.config, checkpoint))
    assert settings.task is not None
    check_fits_simulator(loaded.spec, settings.task, checkpoint)
    if settings.runner is None:
        settings = replace(settings, runner=replace(loaded.runner_config(), **dict(runner_overrides or {})))
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return evaluate_policy(loaded.model, loaded.normalizer, settings, video_path, progress)


# What the trainer calls at each evaluation: (EMA model, normalizer, GIF path or None) -> result.
SimEvaluator = Callable[[Any, Any, str | Path | None], EvalResult]


def make_sim_evaluator(
    episodes: int,
    task: Mapping[str, Any],
    seed: int = DEFAULT_EVAL_SEED,
    fault_plan: str = "none",
    max_steps: int = DEFAULT_MAX_STEPS,
    runner: Mapping[str, Any] | None = None,
) -> SimEvaluator:
    """The trainer's closed-loop evaluation: `episodes` episodes of the simulated `task`
    (the training config's task section, with its `sim:`) from sim seed `seed` under
    `fault_plan`, each at most `max_steps` steps, sampled with the runner settings `runner`
    (policy.runner.RunnerConfig fields). Settings are checked here, so a bad one stops
    training before its first step, not at its first evaluation."""
    from evaluation.sim_task import sim_task_from_config
    from policy.runner import RunnerConfig

    settings = EvalSettings(
        episodes=int(episodes),
        seed=int(seed),
        fault_plan=str(fault_plan),
        max_steps=int(max_steps),
        runner=RunnerConfig(**dict(runner or {})),
        task=sim_task_from_config(task, "the training task"),
    )

    def evaluate(model: Any, normalizer: Any, video_path: str | Path | None = None) -> EvalResult:
        return evaluate_policy(model, normalizer, settings, video_path=video_path, progress=False)

    return evaluate
