"""Simulator benchmark: env steps per second with the task's cameras (swap fruit: front
and wrist) at 96 px on one core, the wall time to collect 100 expert demonstrations with
2 processes, and the scripted expert's success rate over 200 seeded episodes.

    python -m benchmarks.bench_sim            # the full run (make bench-sim)
    python -m benchmarks.bench_sim --quick    # a few episodes, seconds (used by a test)
    python -m benchmarks.bench_sim --task /path/to/my_task.yaml

The last printed line is one JSON object with at least env_steps_per_s and
demos_100_seconds. Targets: >= 80 steps/s, <= 240 s, expert success >= 98 %.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from typing import Any

from evaluation.sim_task import DEFAULT_TASK

TARGET_STEPS_PER_S = 80.0
TARGET_DEMOS_100_SECONDS = 240.0
TARGET_SUCCESS_RATE = 0.98

_worker_env: Any = None


def _init_worker(setup: Any, image_size: int, render: bool, pin_cpu: int | None) -> None:
    """Each worker process owns one environment (and one OpenGL context): the task's robot
    (`setup`, loaded once by the parent) with every camera at image_size (or none)."""
    global _worker_env
    if pin_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {pin_cpu})
    _worker_env = setup.make_env(None if render else (), image_size)


def _demo(seed: int) -> dict[str, Any]:
    """One expert demonstration, kept in memory as a recorder would buffer it."""
    from sim.expert import run_expert_episode

    frames: list[Any] = []

    def keep(observation: Any, action: Any) -> None:
        frames.append((observation.images, observation.proprio(), action))

    result = run_expert_episode(_worker_env, seed, on_step=keep)
    image_bytes = sum(image.nbytes for images, _, _ in frames for image in images.values() if image is not None)
    return {
        "seed": seed,
        "success": bool(result["success"]),
        "steps": int(result["steps"]),
        "failed_picks": int(result["failed_picks"]),
        "image_bytes": image_bytes,
    }


def _steps_per_second(max_steps: int) -> dict[str, Any]:
    """Expert episodes stepped back to back (every camera rendered every step)."""
    env = _worker_env
    env.reset(10_000)  # warm-up: first render creates the GL context
    steps, seconds, seed = 0, 0.0, 10_000
    while steps < max_steps:
        env.reset(seed)
        expert = env.task.expert(env)
        expert.reset()
        start = time.perf_counter()
        while not expert.done and steps < max_steps:
            env.step(env.expert_action(expert.act()))
            steps += 1
        seconds += time.perf_counter() - start
        seed += 1
    return {"steps": steps, "seconds": seconds}


def _progress(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="ep", file=sys.stderr)


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("MUJOCO_GL", "egl")
    # llvmpipe: one rasteriser thread per process, so N processes use N cores.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    context = mp.get_context("spawn")  # a fresh process per worker: no inherited GL state
    show = not args.no_progress
    from evaluation.sim_task import load_sim_task

    setup = load_sim_task(args.task)

    # 1. steps/s on one core, in a process pinned to CPU 0
    with context.Pool(1, _init_worker, (setup, args.image_size, True, 0)) as pool:
        measured = pool.apply(_steps_per_second, (args.steps,))
    steps_per_s = measured["steps"] / measured["seconds"]
    print(
        f"env steps/s ({args.task}'s cameras at {args.image_size} px, 1 core): {steps_per_s:.1f} "
        f"({measured['steps']} steps in {measured['seconds']:.2f} s)",
        flush=True,
    )

    # 2. demonstrations with N processes, wall time from pool start to the last episode
    start = time.perf_counter()
    demos: list[dict[str, Any]] = []
    with context.Pool(args.processes, _init_worker, (setup, args.image_size, True, None)) as pool:
        for result in _progress(pool.imap_unordered(_demo, range(args.episodes)), args.episodes, "demos", show):
            demos.append(result)
    demo_seconds = time.perf_counter() - start
    demos_100 = demo_seconds * 100.0 / max(1, args.episodes)
    print(
        f"{args.episodes} expert demos with {args.processes} processes: {demo_seconds:.1f} s "
        f"(= {demos_100:.1f} s per 100)",
        flush=True,
    )

    # 3. success rate: the demos plus physics-only episodes up to --success-episodes
    outcomes = list(demos)
    extra = max(0, args.success_episodes - len(demos))
    if extra:
        seeds = range(args.episodes, args.episodes + extra)
        with context.Pool(args.processes, _init_worker, (setup, args.image_size, False, None)) as pool:
            for result in _progress(pool.imap_unordered(_demo, seeds), extra, "success", show):
                outcomes.append(result)
    successes = sum(o["success"] for o in outcomes)
    rate = successes / max(1, len(outcomes))
    failed = sorted(o["seed"] for o in outcomes if not o["success"])
    steps = [o["steps"] for o in outcomes]
    print(
        f"expert success: {successes}/{len(outcomes)} = {rate:.1%}; episode steps "
        f"min {min(steps)} mean {sum(steps) / len(steps):.1f} max {max(steps)}; "
        f"failed seeds {failed}",
        flush=True,
    )
    return {
        "env_steps_per_s": round(steps_per_s, 1),
        "demos_100_seconds": round(demos_100, 1),
        "demos": args.episodes,
        "demos_seconds": round(demo_seconds, 1),
        "processes": args.processes,
        "task": args.task,
        "image_size": args.image_size,
        "expert_success_rate": round(rate, 4),
        "expert_episodes": len(outcomes),
        "expert_failed_seeds": failed,
        "mean_episode_steps": round(sum(steps) / len(steps), 1),
        "max_episode_steps": max(steps),
        "demo_image_megabytes": round(sum(d["image_bytes"] for d in demos) / 1e6, 1),
        "quick": bool(args.quick),
        "meets_targets": bool(
            steps_per_s >= TARGET_STEPS_PER_S and demos_100 <= TARGET_DEMOS_100_SECONDS and rate >= TARGET_SUCCESS_RATE
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--episodes", type=int, default=100, help="expert demos to collect")
    parser.add_argument("--processes", type=int, default=2, help="worker processes for demos")
    parser.add_argument("--steps", type=int, default=600, help="env steps for the steps/s figure")
    parser.add_argument(
        "--success-episodes",
        type=int,
        default=200,
        help="episodes for the expert success rate (the demos count; the rest run physics only)",
    )
    parser.add_argument("--image-size", type=int, default=96, help="camera images are N x N")
    parser.add_argument(
        "--task", default=DEFAULT_TASK, help=f"task config: a name or a YAML file (default {DEFAULT_TASK})"
    )
    parser.add_argument("--quick", action="store_true", help="a few episodes: seconds, not minutes")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = parser.parse_args(argv)
    if args.quick:
        args.episodes, args.steps, args.success_episodes = 4, 40, 4
    for name in ("episodes", "processes", "steps", "image_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    summary = run(args)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
