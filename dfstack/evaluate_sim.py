"""`dfstack evaluate-sim`: closed-loop success rate of a checkpoint in the simulator, in
process (no ROS), through the same frame-health + runner path as the ROS policy node.

Each episode: reset SwapFruitEnv(seed, fault_plan), reset the agent; every tick hand
the agent the camera frames with their capture stamps and the proprioception from the
robot state, execute the chunk's first `actions_per_token` actions (one env step each),
and stop at success or after `max_steps` env steps. The success rate comes with a 95 %
Wilson interval (honest at 0 % and 100 % with a few dozen episodes).

    dfstack evaluate-sim --checkpoint outputs/swap_fruit-df/checkpoints/latest --episodes 50
    dfstack evaluate-sim --checkpoint ... --fault-plan occlusion --video eval.gif
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.faults import FAULT_KINDS

os.environ.setdefault("MUJOCO_GL", "egl")

# Fault plans by name: `none`, one fault kind (sim.faults.FAULT_KINDS), or `random` (any kind).
# `paper`: the Diffusion Forcing paper's robustness test (front camera fully occluded for
# spans, and a distractor), sim.faults.FaultPlan.occlusion_test.
FAULT_PLAN_CHOICES = ("none", "random", "paper", *FAULT_KINDS)  # sim.faults is numpy only
DEFAULT_MAX_STEPS = 300  # about 2.5x the scripted expert's 120-step episodes
DEFAULT_EVAL_SEED = 100_000  # far from the seeds demonstrations are recorded with
STEADY_WINDOW_STEPS = 50  # EpisodeResult.final_motion_m looks at the last 5 s


@dataclass
class EvalSettings:
    episodes: int = 20
    seed: int = DEFAULT_EVAL_SEED  # episode i uses sim seed seed + i
    fault_plan: str = "none"  # a name from FAULT_PLAN_CHOICES or a path to a FaultPlan JSON file
    fault_events: int = 3  # events per episode for named plans
    fault_span_s: tuple[float, float] = (1.0, 3.0)
    max_steps: int = DEFAULT_MAX_STEPS
    sim_image_size: int = 96  # rendered size; the agent resizes to the policy's size
    runner: Any = None  # policy.runner.RunnerConfig (None: its defaults)
    use_surprise: bool = False
    video_episodes: int = 1  # episodes recorded into the video (from the first)
    # True: an episode ends at its first success (a trial is scored when the fruits are
    # swapped). False: it runs all max_steps and counts as a success only if the task is
    # still done at the end, which checks that the policy stops and stays put.
    stop_at_success: bool = True

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.fault_plan not in FAULT_PLAN_CHOICES and not Path(self.fault_plan).is_file():
            raise ValueError(
                f"fault plan {self.fault_plan!r} is neither one of {list(FAULT_PLAN_CHOICES)} nor a JSON file"
            )


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    sim_time_s: float
    ticks: int
    mean_tick_ms: float
    unusable_frames: int  # camera frames the agent marked k = K
    fault_plan: dict[str, Any]
    first_success_step: int | None = None  # env steps to the first success (None: never)
    # How far the end effector moved over the episode's last STEADY_WINDOW_STEPS steps
    # (largest distance from its final position, m): a policy that has finished and
    # rests stays within millimetres; one that keeps working moves decimetres.
    final_motion_m: float | None = None
    # Policy targets the robot's safety filter would have to clamp or refuse (outside the
    # workspace, non-finite, faster than the speed limit): 0 means the policy alone stays
    # safe, before any filter.
    unsafe_actions: int = 0
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    successes: int
    episodes: list[EpisodeResult]
    settings: dict[str, Any]
    seconds: float

    @property
    def success_rate(self) -> float:
        return self.successes / max(1, len(self.episodes))

    def summary(self) -> dict[str, Any]:
        return {
            **success_summary(self.successes, len(self.episodes)),
            "fault_plan": self.settings.get("fault_plan"),
            "mean_steps": float(np.mean([e.steps for e in self.episodes])),
            "seconds": round(self.seconds, 1),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "settings": self.settings, "per_episode": [asdict(e) for e in self.episodes]}


def success_summary(successes: int, episodes: int) -> dict[str, Any]:
    """The success figures every evaluation reports: rate, 95 % Wilson interval, counts."""
    low, high = wilson_interval(successes, episodes)
    return {
        "success_rate": successes / max(1, episodes),
        "ci95": [round(low, 4), round(high, 4)],
        "successes": successes,
        "episodes": episodes,
    }


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def fault_plan_for(settings: EvalSettings, seed: int, cameras: tuple[str, ...]) -> Any:
    """The episode's FaultPlan: drawn from the episode seed for a named plan, so every
    policy evaluated with the same settings meets exactly the same faults."""
    from sim.faults import FAULT_KINDS, FaultPlan

    if settings.fault_plan == "none":
        return FaultPlan.none()
    if settings.fault_plan not in FAULT_PLAN_CHOICES:
        return FaultPlan.from_json(Path(settings.fault_plan).read_text())
    duration = min(settings.max_steps * 0.1, 20.0) * 0.6  # faults fall while the task is still under way
    if settings.fault_plan == "paper":
        return FaultPlan.occlusion_test(seed=seed, duration_s=duration, camera=cameras[0])
    kinds = FAULT_KINDS if settings.fault_plan == "random" else (settings.fault_plan,)
    low, high = settings.fault_span_s
    return FaultPlan.random(
        seed=seed,
        duration_s=duration,
        cameras=cameras,
        kinds=kinds,
        events=settings.fault_events,
        min_span_s=low,
        max_span_s=high,
    )


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


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float = 2.5) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def unsafe_target_problems(target: np.ndarray, previous: np.ndarray | None, period_s: float) -> list[str]:
    """What is unsafe about one 10-D policy target (position, rot6d, gripper) against the
    default SafetyLimits, sent `period_s` after `previous` (the policy_node's limits)."""
    from policy.commanding import PoseCommand, SafetyLimits, limit_violations
    from policy.geometry import rot6d_to_quat

    limits = SafetyLimits()
    if not np.all(np.isfinite(target)):
        return ["non-finite values"]
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


def run_episode(
    env: Any, agent: Any, seed: int, settings: EvalSettings, video: list[np.ndarray] | None = None
) -> EpisodeResult:
    from policy.agent import CameraInput

    spec = agent.runner.spec
    plan = fault_plan_for(settings, seed, tuple(env.config.cameras))
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
            proprio=observation.state.proprio(),
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
            unsafe += bool(unsafe_target_problems(target, previous_target, env.config.step_period_s))
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
    """Closed-loop episodes of `model` (a DFPolicyModel) with its `normalizer`."""
    from policy.agent import PolicyAgent
    from policy.runner import PolicyRunner, RunnerConfig
    from sim.env import EnvConfig, SwapFruitEnv

    settings = settings or EvalSettings()
    runner_config = settings.runner or RunnerConfig()
    was_training = model.training
    runner = PolicyRunner(model, normalizer, runner_config, device=next(model.parameters()).device)
    agent = PolicyAgent(runner, use_surprise=settings.use_surprise)
    check_fits_simulator(model.spec)
    # Only the policy's cameras are rendered; targets outside the workspace are clipped
    # (as the ROS command layer does), not raised.
    env = SwapFruitEnv(
        EnvConfig(image_size=settings.sim_image_size, cameras=model.spec.camera_names, clip_targets=True)
    )
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
            results.append(run_episode(env, agent, int(seed), settings, frames if record else None))
            if bar is not None:
                done = sum(r.success for r in results)
                bar.set_postfix(success=f"{done}/{len(results)}")
    finally:
        env.close()
        model.train(was_training)
    if video_path is not None and frames:
        write_gif(frames, video_path)
    described = {**asdict(settings), "runner": asdict(runner_config)}
    return EvalResult(sum(r.success for r in results), results, described, time.perf_counter() - started)


def check_fits_simulator(spec: Any, checkpoint: str | Path = "policy") -> None:
    """Refuse a policy the simulated robot cannot drive, naming every reason: cameras the
    scene lacks (a subset of its cameras is fine), other proprioception or actions, or
    an action period other than the env step."""
    from policy.spec import swap_fruit_spec
    from sim.scene import CAMERAS

    robot = swap_fruit_spec()
    problems = []
    unknown = [name for name in spec.camera_names if name not in CAMERAS]
    if unknown:
        problems.append(f"cameras {unknown} are not in the scene (it has {list(CAMERAS)})")
    if spec.action != robot.action:
        problems.append(f"action spec [{spec.action.describe()}], the simulator takes [{robot.action.describe()}]")
    if spec.proprio_dim != robot.proprio_dim:
        problems.append(f"proprioception of {spec.proprio_dim} values, the simulator gives {robot.proprio_dim}")
    if abs(spec.action_period_s - 0.1) > 1e-9:
        problems.append(f"action period {spec.action_period_s} s, the simulator steps 0.1 s")
    if problems:
        raise ValueError(f"checkpoint {checkpoint} does not fit the simulated robot:\n  - " + "\n  - ".join(problems))


def evaluate_checkpoint(
    checkpoint: str | Path,
    settings: EvalSettings | None = None,
    video_path: str | Path | None = None,
    progress: bool = True,
) -> EvalResult:
    """Load a policy checkpoint (refused if it does not fit the simulated robot) and evaluate it."""
    import torch

    from policy.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    check_fits_simulator(loaded.spec, checkpoint)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return evaluate_policy(loaded.model, loaded.normalizer, settings, video_path, progress)


def add_episode_arguments(parser: argparse.ArgumentParser) -> None:
    """How episodes end and how the runner samples: shared by evaluate-sim and the ROS
    closed loop, so both accept the same words."""
    from policy.schedules import SCHEDULE_KINDS

    parser.add_argument(
        "--full-episodes",
        action="store_true",
        help="run every episode for --max-steps and score the final state (the policy must stop and stay put)",
    )
    parser.add_argument(
        "--schedule", default="pyramid", help=f"runner scheduling matrix: {'|'.join(SCHEDULE_KINDS)} (default pyramid)"
    )
    parser.add_argument("--horizon", type=int, default=2, help="runner horizon in tokens (default 2)")
    parser.add_argument("--steps", type=int, default=8, help="denoising steps (default 8)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfstack evaluate-sim",
        description="Closed-loop success rate of a policy checkpoint in the swap-fruit simulator (no ROS).",
    )
    parser.add_argument("--checkpoint", required=True, help="policy checkpoint directory (e.g. <run>/checkpoints/best)")
    parser.add_argument("--episodes", type=int, default=20, help="number of episodes (default 20)")
    parser.add_argument("--seed", type=int, default=DEFAULT_EVAL_SEED, help="sim seed of the first episode")
    parser.add_argument(
        "--fault-plan",
        default="none",
        help=f"one of {', '.join(FAULT_PLAN_CHOICES)}, or a FaultPlan JSON file (default none)",
    )
    parser.add_argument("--fault-events", type=int, default=3, help="fault events per episode for a named plan")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="env steps before giving up")
    add_episode_arguments(parser)
    parser.add_argument("--surprise", action="store_true", help="frame health also compares with predicted frames")
    parser.add_argument("--video", help="write a GIF of the first episode(s) here")
    parser.add_argument("--video-episodes", type=int, default=1, help="episodes in the video (default 1)")
    parser.add_argument("--output", help="write the full results (per episode) as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from policy.checkpoint import CheckpointError
    from policy.runner import RunnerConfig

    try:
        settings = EvalSettings(
            episodes=args.episodes,
            seed=args.seed,
            fault_plan=args.fault_plan,
            fault_events=args.fault_events,
            max_steps=args.max_steps,
            stop_at_success=not args.full_episodes,
            runner=RunnerConfig(schedule=args.schedule, horizon=args.horizon, steps=args.steps),
            use_surprise=args.surprise,
            video_episodes=args.video_episodes,
        )
        result = evaluate_checkpoint(args.checkpoint, settings, args.video)
    except (ValueError, CheckpointError) as error:
        print(f"dfstack evaluate-sim: {error}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result.to_dict(), indent=1))
    summary = result.summary()
    low, high = summary["ci95"]
    print(
        f"success {summary['successes']}/{summary['episodes']} = {100 * summary['success_rate']:.1f}% "
        f"(95% CI {100 * low:.1f}-{100 * high:.1f}%), fault plan {summary['fault_plan']}"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
