"""`dfstack train` / `python -m training.train`: train a DF policy from an episode store.

Arguments are Hydra overrides of the config tree in training/conf; see --help.
Under torchrun every process runs this same entry point (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap

from .config import CONFIG_DIR, TrainingConfigError, build_evaluator, compose_config, group_choices

# What each config group sets; its options are listed from training/conf when --help runs.
GROUP_SUMMARIES = {
    "task": "cameras, image size, rates, action spec, dataset path, augmentation",
    "model": "the DF policy and its baselines (same code, other ModelConfig values)",
    "optim": "lr, warmup, cosine decay, batch size, EMA, gradient clipping, amp",
    "logging": "progress bar, TensorBoard, checkpoint interval",
    "evaluation": "validation loss and closed-loop simulator episodes",
    "experiment": "presets: a task, a model and their settings",
}

EXAMPLES = textwrap.dedent(
    """\
    Each group also takes a path to a YAML file, e.g. task=/path/to/my_task.yaml (see docs/training.md).

    examples:
      python -m training.train experiment=swap_fruit task.dataset=data/swap_fruit.zarr
      python -m training.train experiment=swap_fruit_memoryless task.dataset=data/swap_fruit.zarr \\
          evaluation.sim_episodes=50
      python -m training.train task=my_task.yaml task.dataset=data/my_task.zarr   (a task file of your own)
      python -m training.train resume=outputs/swap_fruit-df     (continue a run exactly, with its own configuration)
      python -m torch.distributed.run --nproc_per_node=4 -m training.train experiment=swap_fruit \\
          task.dataset=/data/swap_fruit.zarr device=cuda
      python -m training.train --cfg model=tiny                     (print the resolved config)
    """
)


def _epilog() -> str:
    lines = ["configuration groups (training/conf):"]
    order = list(GROUP_SUMMARIES)
    groups = sorted(group_choices().items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    for group, choices in groups:
        lines.append(f"  {group}={'|'.join(choices)}")
        lines.append(f"      {GROUP_SUMMARIES.get(group, '')}".rstrip())
    return "\n".join(lines) + "\n\n" + EXAMPLES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfstack train",
        description=f"Train the causal Diffusion Forcing policy on an episode store (Hydra config tree: {CONFIG_DIR}).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=tiny optim.total_steps=200")
    parser.add_argument("--cfg", action="store_true", help="print the resolved configuration and exit")
    parser.add_argument("--json", action="store_true", help="print the run summary as one JSON line at the end")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = compose_config(args.overrides)
    except TrainingConfigError as error:
        print(f"dfstack train: {error}", file=sys.stderr)
        return 2
    if args.cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(config))
        return 0

    from .trainer import Trainer

    trainer = None
    try:
        trainer = Trainer(config, evaluate=build_evaluator(config))
        result = trainer.train()
    except TrainingConfigError as error:
        print(f"dfstack train: {error}", file=sys.stderr)
        return 2
    finally:
        if trainer is not None:
            trainer.close()
    if trainer.is_main:
        summary = {
            "run_dir": str(result.run_dir),
            "step": result.step,
            "train_loss": result.train_loss,
            "val_loss": result.val_loss,
            "best_val_loss": result.best_val_loss,
            "tokens_per_s": round(result.tokens_per_s, 1),
            "seconds": round(result.seconds, 1),
            "latest_checkpoint": str(result.latest_checkpoint),
            "sim": result.sim,
            "best_sim_checkpoint": None if result.best_sim_checkpoint is None else str(result.best_sim_checkpoint),
            "best_sim_success": result.best_sim_success,
        }
        if args.json:
            print(json.dumps(summary))
        else:
            print(
                f"trained {result.step} steps in {result.seconds:.0f} s ({result.tokens_per_s:.0f} tokens/s); "
                f"loss {result.train_loss:.4f}, val {result.val_loss}; checkpoint {result.latest_checkpoint}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
