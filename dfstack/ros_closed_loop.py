"""`python -m dfstack.ros_closed_loop`: closed-loop success of a checkpoint through the
ROS 2 nodes (evaluation.ros does the work; this is its command line), then the report
folder (evaluation.report).

    scripts/in_netns.sh .venv/bin/python -m dfstack.ros_closed_loop \\
        --checkpoint outputs/swap_fruit-df/checkpoints/best --episodes 10 --report-dir reports/ros_eval
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from dfstack.evaluate_sim import add_episode_arguments
from evaluation.conditions import (
    DEFAULT_CONDITIONS,
    DEFAULT_EVAL_SEED,
    DEFAULT_MAX_STEPS,
    FAULT_PLAN_CHOICES,
    STEP_S,
    check_condition_name,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dfstack.ros_closed_loop",
        description=(
            "Closed-loop success of a policy checkpoint through the ROS 2 nodes: sim_robot_node (the "
            "simulated FR3) and policy_node, each in its own process, over DDS on loopback. Runs the "
            "same episodes (seeds) under each condition, audits every command against the safety "
            "limits, and writes a report folder (results.json, summary.md, a video per condition). "
            "Must run inside a private network namespace: prefix the command with scripts/in_netns.sh."
        ),
        epilog=(
            "conditions: clean (no faults), occluded (front camera black for a few 1-3 s spans), any fault "
            f"name of evaluate-sim ({', '.join(FAULT_PLAN_CHOICES)}; drawn over all cameras), or a FaultPlan "
            "JSON file.\n\nexample:\n  scripts/in_netns.sh .venv/bin/python -m dfstack.ros_closed_loop "
            "--checkpoint outputs/swap_fruit-df/checkpoints/best --episodes 10 --report-dir reports/ros_eval"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="policy checkpoint directory (<run>/checkpoints/best)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per condition (default 10)")
    parser.add_argument("--report-dir", required=True, help="write results.json, summary.md and videos here")
    parser.add_argument(
        "--conditions", default=",".join(DEFAULT_CONDITIONS), help="comma-separated (default clean,occluded)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_EVAL_SEED, help=f"sim seed of episode 0 (default {DEFAULT_EVAL_SEED})"
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=DEFAULT_MAX_STEPS,
        help=f"time limit in sim steps of 0.1 s (default {DEFAULT_MAX_STEPS} = {DEFAULT_MAX_STEPS * STEP_S:g} s)",
    )
    parser.add_argument(
        "--real-time-factor",
        type=float,
        default=1.0,
        help="sim_robot_node pacing (default 1.0). The policy node runs on wall-clock time, so only 1.0 "
        "keeps the simulator's stamps and the policy's clock in step; other values are for debugging only",
    )
    parser.add_argument(
        "--task",
        help="the task config the simulator runs: a name in training/conf/task/ or a YAML path (default: the "
        "checkpoint's task)",
    )
    parser.add_argument(
        "--robot-description",
        help="the simulated robot both nodes run with: a name in robots/descriptions/ or a YAML path (default: the "
        "task's robot)",
    )
    add_episode_arguments(parser)
    parser.add_argument("--videos", type=int, default=1, help="video episodes per condition (default 1; 0 = none)")
    parser.add_argument(
        "--training-run", help="a training run directory: its metrics.jsonl becomes the report's training curve"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or per-episode lines")
    return parser


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a job runner's stop) takes the same path as Ctrl-C: the nodes are stopped.
        signal.signal(signal.SIGTERM, _terminate)
    from evaluation import report as reporting
    from evaluation.ros import ClosedLoopError, ClosedLoopSettings, PrivateNetworkError, run_ros_episodes
    from evaluation.ros.run import closed_loop_task

    names = [name.strip() for name in args.conditions.split(",") if name.strip()]
    try:
        if not names:
            raise ValueError("--conditions is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"--conditions names a condition twice: {names}")
        settings = ClosedLoopSettings(
            episodes_per_condition=args.episodes,
            seed=args.seed,
            max_steps=args.max_steps,
            real_time_factor=args.real_time_factor,
            stop_at_success=not args.full_episodes,
            schedule=args.schedule,
            horizon=args.horizon,
            denoising_steps=args.steps,
            task=args.task,
            robot_description=args.robot_description,
            videos_per_condition=args.videos,
        )
        task = closed_loop_task(Path(args.checkpoint), settings).task
        for name in names:
            check_condition_name(name, task)  # before minutes of start-up
        history = reporting.load_training_history(args.training_run) if args.training_run else None
        report_dir = Path(args.report_dir)
        results = run_ros_episodes(
            args.checkpoint,
            {name: name for name in names},
            settings,
            progress=not args.no_progress,
            log_dir=report_dir / "logs",
        )
    except (PrivateNetworkError, ValueError, OSError) as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    except ClosedLoopError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; the nodes were stopped", file=sys.stderr)
        return 130
    written = reporting.write_report(
        report_dir,
        results,
        training_history=history,
        machine_info=reporting.machine_info(),
        command=" ".join([parser.prog, *(sys.argv[1:] if argv is None else argv)]),
    )
    print(reporting.format_table(results))
    print(f"report: {written['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
