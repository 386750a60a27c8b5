"""`dfstack evaluate-sim`: closed-loop success rate of a checkpoint in the simulator, in
process (no ROS), through the same frame-health + runner path as the ROS policy node
(evaluation.rollout does the work; this is its command line).

    dfstack evaluate-sim --checkpoint outputs/swap_fruit-df/checkpoints/latest --episodes 50
    dfstack evaluate-sim --checkpoint ... --fault-plan occlusion --video eval.gif

The simulated task is the one the checkpoint was trained on (its training config keeps
the task config, `sim:` section included); `--task NAME|PATH` runs another task config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation.conditions import DEFAULT_EVAL_SEED, DEFAULT_FAULT_EVENTS, DEFAULT_MAX_STEPS, FAULT_PLAN_CHOICES


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
        "--schedule",
        choices=SCHEDULE_KINDS,
        help="runner scheduling matrix (default: the checkpoint's, as it was evaluated in training)",
    )
    parser.add_argument("--horizon", type=int, help="runner horizon in tokens (default: the checkpoint's)")
    parser.add_argument("--steps", type=int, help="denoising steps per token (default: the checkpoint's)")


def runner_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The runner settings given on the command line (RunnerConfig field names)."""
    given = {"schedule": args.schedule, "horizon": args.horizon, "steps": args.steps}
    return {name: value for name, value in given.items() if value is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfstack evaluate-sim",
        description="Closed-loop success rate of a policy checkpoint in its simulated task (no ROS).",
    )
    parser.add_argument("--checkpoint", required=True, help="policy checkpoint directory (e.g. <run>/checkpoints/best)")
    parser.add_argument(
        "--task",
        help="task config to simulate: a name in training/conf/task/ or a YAML file (default: the checkpoint's task)",
    )
    parser.add_argument("--episodes", type=int, default=20, help="number of episodes (default 20)")
    parser.add_argument("--seed", type=int, default=DEFAULT_EVAL_SEED, help="sim seed of the first episode")
    parser.add_argument(
        "--fault-plan",
        default="none",
        help=f"one of {', '.join(FAULT_PLAN_CHOICES)}, a plan the task names (sim.fault_plans), or a FaultPlan "
        "JSON file (default none)",
    )
    parser.add_argument(
        "--fault-events", type=int, default=DEFAULT_FAULT_EVENTS, help="fault events per episode for a named plan"
    )
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="env steps before giving up")
    add_episode_arguments(parser)
    parser.add_argument("--surprise", action="store_true", help="frame health also compares with predicted frames")
    parser.add_argument("--video", help="write a GIF of the first episode(s) here")
    parser.add_argument("--video-episodes", type=int, default=1, help="episodes in the video (default 1)")
    parser.add_argument("--output", help="write the full results (per episode) as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from evaluation.rollout import EvalSettings, evaluate_checkpoint
    from evaluation.sim_task import checkpoint_sim_task, checkpoint_training_config, load_sim_task
    from policy.checkpoint import CheckpointError

    try:
        # The task first: its fault plans are among the names --fault-plan may give. An
        # unreadable checkpoint leaves it to evaluate_checkpoint, which says what is wrong.
        training = checkpoint_training_config(args.checkpoint)
        if args.task:
            task = load_sim_task(args.task)
        else:
            task = checkpoint_sim_task(training, args.checkpoint) if training is not None else None
        settings = EvalSettings(
            episodes=args.episodes,
            seed=args.seed,
            fault_plan=args.fault_plan,
            fault_events=args.fault_events,
            max_steps=args.max_steps,
            stop_at_success=not args.full_episodes,
            use_surprise=args.surprise,
            video_episodes=args.video_episodes,
            task=task,
        )
        # The checkpoint's runner settings, with what the command line changes.
        result = evaluate_checkpoint(args.checkpoint, settings, args.video, runner_overrides=runner_overrides(args))
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
        f"(95% CI {100 * low:.1f}-{100 * high:.1f}%), task {result.settings['task']}, "
        f"fault plan {summary['fault_plan']}"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
