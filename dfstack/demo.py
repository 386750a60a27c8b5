"""`make demo`: the whole stack on the simulated Franka, start to finish, on the CPU.

The task is a task config with a `sim:` section (`--task`, default swap_fruit_sim):

1. record scripted demonstrations through the recorder into a zarr store
   (dfstack.collect_sim);
2. train the causal DF policy for a fixed time budget (training.trainer, the same
   hydra preset as `dfstack train experiment=swap_fruit`);
3. run it in closed loop through the ROS 2 nodes, sim_robot_node + policy_node, on
   clean episodes and on the paper's occlusion test (front camera black for spans, a
   distractor), in a private network namespace (evaluation.ros);
4. write a report folder: success per condition with 95% intervals, the training curve,
   a video of a clean and an occluded episode (camera views, predicted frames, noise
   level k per camera), a still for the README (evaluation.report).

Run it as `make demo` (which wraps it in scripts/in_netns.sh) or
`scripts/in_netns.sh .venv/bin/python -m dfstack.demo --help`. Stages are cached in
--out: a second run reuses the demonstrations and the trained policy (--fresh redoes
them). The default sizes finish in about 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from evaluation.sim_task import DEFAULT_TASK

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
EPISODE_SECONDS = 17.0  # wall time of one closed-loop episode through ROS (real time, ~14 s task + reset)
COLLECT_EPISODES_PER_S = 0.6  # scripted demos per second with 2 processes on 2 cores


def _stage(number: int, title: str) -> float:
    print(f"\n== [{number}/4] {title}", flush=True)
    return time.perf_counter()


def _done(started: float, what: str) -> None:
    print(f"   {what} ({time.perf_counter() - started:.0f} s)", flush=True)


def collect(store: Path, episodes: int, task: str) -> None:
    from dfstack.collect_sim import SimCollectionConfig, ensure_demonstrations

    summary = ensure_demonstrations(store, episodes, config=SimCollectionConfig(task=task))
    if summary is None:
        print(f"   {episodes} demonstrations already in {store} (cached)")
    else:
        print("   " + summary.describe().replace("\n", "\n   "))


def train(store: Path, run_dir: Path, seconds: float, overrides: list[str], task: str) -> Path:
    from training.config import compose_config
    from training.trainer import Trainer

    checkpoint = run_dir / "checkpoints" / "latest"
    if (run_dir / "train_result.json").exists() and checkpoint.exists():
        print(f"   policy already trained in {run_dir} (cached)")
        return checkpoint
    config = compose_config(
        [
            # The DF preset; its task replaced by the demo's (the experiment names swap fruit).
            "experiment=swap_fruit",
            f"task={task}",
            f"task.dataset={store}",
            f"run_dir={run_dir}",
            f"time_budget_s={seconds}",
            # The budget alone ends the run and paces the learning-rate decay.
            "optim.total_steps=1000000",
            "overwrite=true",
            "logging.tensorboard=false",
            *overrides,
        ]
    )
    trainer = Trainer(config)
    try:
        result = trainer.train()
    finally:
        trainer.close()
    summary = {"step": result.step, "seconds": round(result.seconds, 1), "tokens_per_s": round(result.tokens_per_s)}
    summary |= {"train_loss": result.train_loss, "val_loss": result.val_loss}
    (run_dir / "train_result.json").write_text(json.dumps(summary, indent=1))
    print(f"   {result.step} steps, {result.tokens_per_s:.0f} tokens/s, loss {result.train_loss:.4f}")
    return checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "demo", help="work and report folder")
    parser.add_argument(
        "--task",
        default=DEFAULT_TASK,
        help=f"task config with a sim: section: a name in training/conf/task/ or a YAML path (default {DEFAULT_TASK})",
    )
    parser.add_argument("--demos", type=int, default=120, help="scripted demonstrations to record (default 120)")
    parser.add_argument("--train-minutes", type=float, default=8.0, help="training time budget (default 8)")
    parser.add_argument("--episodes", type=int, default=4, help="closed-loop episodes per condition (default 4)")
    parser.add_argument(
        "--max-steps", type=int, default=300, help="closed-loop episode limit in 0.1 s steps (default 300: 30 s)"
    )
    parser.add_argument("--fresh", action="store_true", help="redo every stage instead of reusing cached ones")
    parser.add_argument(
        "--train-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra hydra override for training (repeatable), e.g. optim.batch_size=16",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.demos < 2 or args.episodes < 1 or args.train_minutes <= 0 or args.max_steps < 1:
        print("make demo: need --demos >= 2, --episodes >= 1, --train-minutes > 0, --max-steps >= 1", file=sys.stderr)
        return 2
    from evaluation.ros import ClosedLoopSettings, PrivateNetworkError, require_private_network

    try:  # fail in the first second, not after the training
        require_private_network()
    except PrivateNetworkError as error:
        print(f"make demo: {error}", file=sys.stderr)
        return 2
    out: Path = args.out
    if args.fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    store, run_dir, report_dir = out / "demos.zarr", out / "run", out / "report"
    estimate = (
        args.demos / COLLECT_EPISODES_PER_S + args.train_minutes * 60 + 2 * args.episodes * EPISODE_SECONDS + 60
    ) / 60
    print(
        f"make demo: {args.demos} demonstrations -> {args.train_minutes:g} min of DF training -> "
        f"{args.episodes} clean + {args.episodes} occluded episodes through the ROS 2 nodes -> {report_dir}\n"
        f"this takes about {estimate:.0f} minutes on 2 CPU cores (less where stages are cached)",
        flush=True,
    )
    begun = time.perf_counter()

    started = _stage(1, f"record {args.demos} scripted demonstrations through the recorder")
    try:
        collect(store, args.demos, args.task)
    except ValueError as error:  # a cached store from an older df-stack: never train on it
        print(f"make demo: {error}\nmake demo: DEMO_ARGS=--fresh redoes every stage", file=sys.stderr)
        return 2
    _done(started, f"store {store}")

    started = _stage(2, f"train the DF policy for {args.train_minutes:g} minutes")
    checkpoint = train(store, run_dir, args.train_minutes * 60, args.train_override, args.task)
    _done(started, f"checkpoint {checkpoint}")

    from evaluation.report import format_table, load_training_history, machine_info, write_report
    from evaluation.ros import run_ros_episodes

    started = _stage(3, f"closed loop through sim_robot_node + policy_node: {args.episodes} episodes per condition")
    settings = ClosedLoopSettings(episodes_per_condition=args.episodes, max_steps=args.max_steps)
    results = run_ros_episodes(checkpoint, None, settings, log_dir=report_dir / "logs")
    _done(started, "episodes done")

    started = _stage(4, "report")
    command = (
        "make demo"
        if argv is None and os.environ.get("MAKELEVEL")
        else "python -m dfstack.demo " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    )
    files = write_report(report_dir, results, load_training_history(run_dir), machine_info(), command)
    _done(started, f"report in {report_dir}")
    print("\n" + format_table(results))
    listed: dict[str, Any] = {name: str(path) for name, path in files.items()}
    print("\nfiles: " + ", ".join(f"{name}: {path}" for name, path in listed.items()))
    print(f"make demo finished in {(time.perf_counter() - begun) / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
