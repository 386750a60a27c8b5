"""Training benchmark: tokens per second of the trainer on this CPU for the default
swap-fruit config (experiment=swap_fruit), and how much faster the data path feeds
batches than the trainer consumes them.

    python -m benchmarks.bench_train                       # records 6 expert demos first (~20 s)
    python -m benchmarks.bench_train --dataset data/swap_fruit.zarr
    python -m benchmarks.bench_train --quick               # tiny model, seconds (used by a test)

Two read paths are measured against the trainer's demand (sequences per second):
* loader: a training batch from the aligned, in-memory episodes (sampling, padding,
  uint8 -> float, augmentation): what each step waits for;
* store: aligning episodes from the zarr store (data_collection.reader.align_episode,
  low-resolution copies), which the trainer does once at start-up.

The last printed line is one JSON object with at least train_tokens_per_s and
loader_to_trainer_ratio (target >= 5).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_LOADER_RATIO = 5.0


def _ensure_dataset(path: str | None, workdir: Path, episodes: int) -> Path:
    if path:
        return Path(path)
    from dfstack.collect_sim import collect_sim

    store = workdir / "bench_swap_fruit.zarr"
    collect_sim(store, episodes, seed=0)
    return store


def run(dataset: Path, workdir: Path, steps: int, quick: bool, overrides: list[str]) -> dict[str, Any]:
    import torch

    from training.config import compose_config
    from training.data import load_episodes, open_store, to_token_batch
    from training.trainer import Trainer

    torch.set_num_threads(2)
    settings = [
        "experiment=swap_fruit",
        f"task.dataset={dataset}",
        f"run_dir={workdir / 'run'}",
        "task.val_fraction=0",
        "logging.progress=false",
        "logging.tensorboard=false",
        "overwrite=true",
        "device=cpu",
        *(["model=tiny", "optim.batch_size=4"] if quick else []),
        *overrides,
    ]
    config = compose_config(settings)
    trainer = Trainer(config)
    batch_size = trainer.sampler.batch_size
    sequence_length = trainer.train_data.sequence_length
    mean_tokens = sum(min(len(e), sequence_length) for e in trainer.train_data.episodes) / len(trainer.train_data)

    for _ in range(2):  # warm-up: allocator, first-call overheads
        trainer.train_step()
    started = time.perf_counter()
    real_tokens = 0
    for _ in range(steps):
        _, tokens = trainer.train_step()
        real_tokens += tokens
    train_seconds = time.perf_counter() - started
    trainer_sequences_per_s = steps * batch_size / train_seconds

    generator = torch.Generator().manual_seed(0)
    loader_batches = max(20, steps)
    started = time.perf_counter()
    for _ in range(loader_batches):
        host = trainer.train_data.batch(trainer.sampler.next_batch())
        to_token_batch(host, trainer.device, trainer.augmentation, generator)
    loader_sequences_per_s = loader_batches * batch_size / (time.perf_counter() - started)

    store = open_store(dataset)
    ids = store.episode_ids()[: max(4, min(20, len(store.episode_ids())))]
    started = time.perf_counter()
    aligned = load_episodes(store, trainer.spec, ids, config.task.tolerance_s)
    store_seconds = time.perf_counter() - started
    store_tokens_per_s = sum(len(e) for e in aligned) / store_seconds
    train_tokens_per_s = real_tokens / train_seconds
    trainer.close()
    return {
        "config": "experiment=swap_fruit" + (" model=tiny (quick)" if quick else ""),
        "image_size": int(config.task.image_size),
        "batch_size": batch_size,
        "sequence_length": sequence_length,
        "mean_episode_tokens": round(mean_tokens, 1),
        "parameters": trainer.model.parameter_count(),
        "torch_threads": torch.get_num_threads(),
        "steps_timed": steps,
        "seconds_per_step": round(train_seconds / steps, 4),
        "train_tokens_per_s": round(train_tokens_per_s, 1),
        "trainer_sequences_per_s": round(trainer_sequences_per_s, 2),
        "loader_sequences_per_s": round(loader_sequences_per_s, 1),
        "loader_to_trainer_ratio": round(loader_sequences_per_s / trainer_sequences_per_s, 1),
        "store_read_tokens_per_s": round(store_tokens_per_s, 1),
        "store_to_trainer_ratio": round(store_tokens_per_s / train_tokens_per_s, 1),
        "target_loader_to_trainer_ratio": TARGET_LOADER_RATIO,
        "meets_target": loader_sequences_per_s / trainer_sequences_per_s >= TARGET_LOADER_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", help="episode store to read (default: record a few expert demos first)")
    parser.add_argument("--episodes", type=int, default=6, help="expert demos to record when no --dataset")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed (default 20)")
    parser.add_argument("--quick", action="store_true", help="tiny model and 3 demos: a smoke run in seconds")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. task.image_size=64")
    args = parser.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        workdir = Path(tmp)
        episodes = 3 if args.quick and not args.dataset else args.episodes
        dataset = _ensure_dataset(args.dataset, workdir, episodes)
        steps = min(args.steps, 5) if args.quick else args.steps
        result = run(dataset, workdir, steps, args.quick, args.overrides)
    print(
        f"training: {result['train_tokens_per_s']:.0f} tokens/s ({result['seconds_per_step']:.3f} s/step, "
        f"batch {result['batch_size']} x {result['sequence_length']} tokens, {result['image_size']} px); "
        f"loader feeds {result['loader_to_trainer_ratio']:.0f}x the trainer's demand, "
        f"store read path {result['store_to_trainer_ratio']:.0f}x"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
