"""The training loop: AdamW + warmup/cosine, gradient clipping, EMA, mixed precision on
GPU, DistributedDataParallel under torchrun, TensorBoard, checkpoints and exact resume.

Reproducibility: every random draw of a step (noise levels, noise, augmentation)
comes from a generator seeded by (seed, rank, step), and the data order from
(seed, epoch); the resume state stores the step and the sampler position (plus the
global RNG states for anything else), so N steps + resume + N steps equals 2N steps.

Run directory layout:

    config.yaml              the resolved configuration
    checkpoints/latest/      policy checkpoint (EMA weights), loadable by policy.checkpoint
    checkpoints/best/        the same, at the lowest validation loss so far
    checkpoints/best_sim/    the same, at the highest closed-loop success so far (only when
                             evaluation.sim_episodes > 0; ties go to the later step).
                             Give evaluation.sim_seed seeds other than the final test's, or
                             the test measures the selection.
    resume/                  the resume state (training/state.py)
    tensorboard/             scalars
    eval/                    closed-loop videos and per-evaluation results
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn

from policy.checkpoint import save_checkpoint
from policy.model import DFPolicyModel
from policy.normalizer import Normalizer
from policy.objective import ObjectiveConfig, TokenBatch, diffusion_forcing_loss

from .config import (
    TrainingConfigError,
    feature_mapping,
    model_config,
    objective_config,
    policy_spec,
    to_container,
)
from .data import (
    AugmentationConfig,
    EpisodeSampler,
    SequenceDataset,
    check_dataset,
    dataset_fingerprint,
    fit_normalizer,
    load_episodes,
    open_store,
    split_episodes,
    to_token_batch,
)
from .ema import EMA
from .state import RESUME_DIR, find_resume_dir, load_resume_state, restore_rng, save_resume_state

log = logging.getLogger("training")


@dataclass
class TrainResult:
    """What a finished run reports (rank 0 has the evaluation fields)."""

    run_dir: Path
    step: int
    train_loss: float
    val_loss: float | None
    best_val_loss: float | None
    tokens_per_s: float
    seconds: float
    latest_checkpoint: Path
    best_checkpoint: Path | None
    sim: dict[str, Any] | None = None
    best_sim_checkpoint: Path | None = None
    best_sim_success: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)


class EvaluationResult(Protocol):
    """What a closed-loop evaluation returns (evaluation.results.EvalResult is one)."""

    def summary(self) -> dict[str, Any]:
        """The headline figures; holds "success_rate" in [0, 1]."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready: written to <run_dir>/eval/step_<N>.json."""
        ...


# The closed-loop evaluation a Trainer is given: (EMA model, its normalizer, where to write
# a GIF of the first episode or None) -> result. training.config.build_evaluator makes the
# configured one; the trainer never imports evaluation code itself.
PolicyEvaluator = Callable[[DFPolicyModel, Normalizer, Path | None], EvaluationResult]


class _LossModule(nn.Module):
    """The model and its objective as one module, so DistributedDataParallel sees a
    forward() that touches every parameter the loss uses."""

    def __init__(self, model: DFPolicyModel, objective: ObjectiveConfig) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: TokenBatch, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return diffusion_forcing_loss(self.model, batch, self.objective, generator)


def _append_json_line(file: Any, record: dict[str, Any]) -> None:
    """One JSON object per line, flushed: the curve survives a killed run."""
    if file is not None:
        file.write(json.dumps(record) + "\n")
        file.flush()


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The generator for all random draws of one step of one rank."""
    state = np.random.SeedSequence([seed, rank, step, 0x7E47]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def cosine_with_warmup(warmup_steps: int, total_steps: int, min_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warmup to 1, then cosine decay to `min_ratio` at total_steps."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingConfigError(f"device={name} but CUDA is not available here; use device=cpu or auto")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


def _compatibility(config: DictConfig) -> dict[str, Any]:
    """The configuration sections a resumed run must share with the run it continues."""
    streams = feature_mapping(config).stream_names
    return {
        # Only named when the task names its streams, so runs from before task.streams resume.
        **({"streams": vars(streams)} if streams else {}),
        "spec": policy_spec(config).to_dict(),
        "model": model_config(config).to_dict(),
        "objective": objective_config(config).to_dict(),
        "seed": int(config.seed),
        "batch_size": int(config.optim.batch_size),
    }


def _differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    problems = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            problems += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            problems.append(f"{prefix}{key}: run has {a!r}, configuration has {b!r}")
    return problems


class Trainer:
    def __init__(self, config: DictConfig, evaluate: PolicyEvaluator | None = None) -> None:
        """`evaluate`: the closed-loop evaluation run at each evaluation on the EMA weights
        (rank 0), e.g. training.config.build_evaluator(config); None runs none."""
        self.config = config
        self.policy_evaluator = evaluate
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.is_main = self.rank == 0
        self.device = resolve_device(str(config.device), self.local_rank)
        threads = int(config.optim.num_threads)
        if threads > 0:
            torch.set_num_threads(threads)

        # Everything that can be wrong with the configuration is checked here, before
        # a process group is opened or a step is taken.
        self.spec = policy_spec(config)
        episodes = int(config.evaluation.sim_episodes)
        if episodes > 0 and evaluate is None:
            raise TrainingConfigError(
                f"evaluation.sim_episodes={episodes} asks for closed-loop episodes, but the trainer was given no "
                "evaluation to run: pass evaluate=training.config.build_evaluator(config), or set "
                "evaluation.sim_episodes=0"
            )
        self.model_config = model_config(config)
        self.objective = objective_config(config)
        self.augmentation = AugmentationConfig(**to_container(config.task.augmentation))
        self.run_dir = Path(str(config.run_dir))
        self.resume = load_resume_state(config.resume) if config.resume else None
        if self.resume is None and (self.run_dir / RESUME_DIR).exists() and not config.overwrite:
            raise TrainingConfigError(
                f"run directory {self.run_dir} already holds a training state; pass resume={self.run_dir} to "
                "continue it, overwrite=true to start over, or another run_dir"
            )
        if self.resume is not None:
            problems = _differences(self.resume.state["compatibility"], _compatibility(config))
            if problems:
                raise TrainingConfigError(
                    f"cannot resume {find_resume_dir(str(config.resume))}: the run is incompatible with this "
                    "configuration:\n  - " + "\n  - ".join(problems)
                )

        self.feature_mapping = feature_mapping(config, self.spec)
        store = open_store(str(config.task.dataset))
        check_dataset(store, self.spec, self.feature_mapping)
        ids = store.episode_ids()
        if config.task.max_episodes is not None:
            ids = ids[: int(config.task.max_episodes)]
        train_ids, val_ids = split_episodes(ids, float(config.task.val_fraction), int(config.seed))
        self.fingerprint = dataset_fingerprint(store, ids)
        if self.resume is not None and self.resume.state.get("dataset_fingerprint") != self.fingerprint:
            raise TrainingConfigError(
                f"cannot resume: the dataset changed since the run started (fingerprint "
                f"{self.resume.state.get('dataset_fingerprint')} -> {self.fingerprint})"
            )
        tolerance = config.task.tolerance_s
        progress = bool(config.logging.progress) and self.is_main
        train_episodes = load_episodes(store, self.spec, train_ids, tolerance, progress, self.feature_mapping)
        val_episodes = load_episodes(store, self.spec, val_ids, tolerance, progress, self.feature_mapping)
        self.normalizer = (
            self.resume.normalizer
            if self.resume is not None
            else fit_normalizer(train_episodes, self.spec, float(config.task.normalizer_margin))
        )
        max_tokens = config.task.max_tokens
        hold = int(config.task.get("hold_tokens_after_end", 0))
        self.train_data = SequenceDataset(train_episodes, self.normalizer, max_tokens, hold)
        self.val_data = SequenceDataset(val_episodes, self.normalizer, max_tokens, hold) if val_episodes else None
        self.episode_counts = {"train": len(train_ids), "val": len(val_ids)}
        self.dataset_path = str(config.task.dataset)

        if self.world_size > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend=backend)
        seed = int(config.seed)
        # The same initial weights on every rank (DDP would broadcast them anyway).
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        self.model = DFPolicyModel(self.spec, self.model_config).to(self.device)
        self.ema = EMA(self.model, float(config.optim.ema_decay))
        optim = config.optim
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=float(optim.lr),
            betas=tuple(float(b) for b in optim.betas),
            weight_decay=float(optim.weight_decay),
        )
        self.total_steps = int(optim.total_steps)
        if self.total_steps < 1:
            raise TrainingConfigError(f"optim.total_steps must be >= 1, got {self.total_steps}")
        self.time_budget_s = float(config.time_budget_s) if config.get("time_budget_s") is not None else None
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise TrainingConfigError(f"time_budget_s must be > 0 seconds or null, got {self.time_budget_s}")
        # With a time budget the schedule runs on "schedule steps": the real step or the
        # share of the budget spent, scaled to total_steps, whichever is further on, so
        # the learning rate has decayed when the time is up however fast the machine is.
        self._schedule_step = 0
        factor = cosine_with_warmup(int(optim.warmup_steps), self.total_steps, float(optim.min_lr_ratio))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: factor(self._schedule_step))
        self.sampler = EpisodeSampler(len(self.train_data), int(optim.batch_size), seed, self.rank, self.world_size)
        self.step = 0
        self._started: float | None = None  # set when train() starts (the time budget's clock)
        self.best_val_loss: float | None = None
        self.best_sim_success: float | None = None
        if self.resume is not None:
            self._load_resume()
        self.loss_module: nn.Module = _LossModule(self.model, self.objective)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.loss_module = DistributedDataParallel(
                self.loss_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                # A batch where every frame is marked unusable skips the image encoder.
                find_unused_parameters=True,
            )
        self.amp_dtype = self._amp_dtype(str(optim.amp))

    # -- setup pieces ------------------------------------------------------------------
    def _amp_dtype(self, setting: str) -> torch.dtype | None:
        if setting == "off" or (setting == "auto" and self.device.type != "cuda"):
            return None
        if self.device.type != "cuda":
            raise TrainingConfigError(f"optim.amp={setting} needs a CUDA device; this run is on {self.device}")
        return {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16}[setting]

    def _load_resume(self) -> None:
        assert self.resume is not None
        state = self.resume.state
        self.model.load_state_dict(self.resume.model)
        self.ema.load_state_dict(self.resume.ema)
        self.optimizer.load_state_dict(self.resume.optimizer)
        scheduler_state = dict(state["scheduler"])
        self.scheduler.load_state_dict(scheduler_state)
        self.sampler.load_state_dict(state["sampler"])
        self.step = self._schedule_step = int(state["step"])
        self.best_val_loss = state.get("best_val_loss")
        self.best_sim_success = state.get("best_sim_success")
        restore_rng(state["rng_tensors"], state["rng"])

    # -- the loop ----------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self) -> tuple[dict[str, float], int]:
        """One optimisation step; returns the loss parts and the number of real tokens."""
        generator = step_generator(int(self.config.seed), self.rank, self.step)
        host = self.train_data.batch(self.sampler.next_batch())
        batch = to_token_batch(host, self.device, self.augmentation, generator)
        self.model.train()
        with self._autocast():
            loss, metrics = self.loss_module(batch, generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = float(self.config.optim.grad_clip_norm)
        if clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip))
        self.optimizer.step()
        self.step += 1
        self._schedule_step = self.step
        if self.time_budget_s is not None and self._started is not None:
            spent = (time.perf_counter() - self._started) / self.time_budget_s
            self._schedule_step = max(self.step, int(spent * self.total_steps))
        self.scheduler.step()
        self.ema.update(self.model, self.step)
        return metrics, int(host["valid"].sum())

    def train(self) -> TrainResult:
        config = self.config
        every_eval = int(config.evaluation.every_steps)
        every_checkpoint = int(config.logging.checkpoint_every)
        log_every = max(1, int(config.logging.log_every))
        writer = self._tensorboard()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))
        bar = self._progress()
        started = self._started = time.perf_counter()
        metrics_file = (self.run_dir / "metrics.jsonl").open("a") if self.is_main else None
        window_tokens, window_start = 0, time.perf_counter()
        tokens_per_s = 0.0
        metrics: dict[str, float] = {"loss": float("nan")}
        val_loss: float | None = None
        sim: dict[str, Any] | None = None
        history: list[dict[str, float]] = []
        run_tokens = 0
        stop_at = self.total_steps
        if self.config.stop_at_step is not None:
            stop_at = min(stop_at, int(self.config.stop_at_step))
        try:
            while self.step < stop_at:
                metrics, tokens = self.train_step()
                window_tokens += tokens * self.world_size
                run_tokens += tokens * self.world_size
                if not math.isfinite(metrics["loss"]):
                    raise FloatingPointError(f"loss is {metrics['loss']} at step {self.step}; lower optim.lr")
                if self.step % log_every == 0 or self.step == self.total_steps:
                    elapsed = time.perf_counter() - window_start
                    tokens_per_s = window_tokens / max(elapsed, 1e-9)
                    window_tokens, window_start = 0, time.perf_counter()
                    lr = self.scheduler.get_last_lr()[0]
                    record = {"step": self.step, "lr": lr, "tokens_per_s": tokens_per_s, **metrics}
                    record["elapsed_s"] = time.perf_counter() - started
                    history.append(record)
                    _append_json_line(metrics_file, record)
                    if writer is not None:
                        for name, value in metrics.items():
                            writer.add_scalar(f"train/{name}", value, self.step)
                        writer.add_scalar("train/lr", lr, self.step)
                        writer.add_scalar("train/tokens_per_s", tokens_per_s, self.step)
                        writer.add_scalar("train/epoch", self.sampler.epoch, self.step)
                run_seconds = time.perf_counter() - started
                if bar is not None:
                    if self.time_budget_s is None:
                        bar.update(1)
                    else:
                        bar.update(min(run_seconds, bar.total) - bar.n)
                    bar.set_postfix(
                        step=self.step, loss=f"{metrics['loss']:.4f}", tok_s=f"{tokens_per_s:.0f}", refresh=False
                    )
                out_of_time = self.time_budget_s is not None and run_seconds >= self.time_budget_s
                if out_of_time:
                    stop_at = self.step  # the budget is spent: evaluate and save as at the end
                final = self.step == self.total_steps or out_of_time
                if (every_eval > 0 and self.step % every_eval == 0) or final:
                    val_loss, sim = self.evaluate(writer, with_sim=final or every_eval > 0)
                    elapsed_s = time.perf_counter() - started
                    record = {"step": self.step, "elapsed_s": elapsed_s, "val_loss": val_loss, "sim": sim}
                    _append_json_line(metrics_file, record)
                    if sim is not None:
                        self._keep_if_best_sim(float(sim["success_rate"]), val_loss)
                stopping = self.step == stop_at
                if (every_checkpoint > 0 and self.step % every_checkpoint == 0) or stopping:
                    self.save(val_loss)
        finally:
            if metrics_file is not None:
                metrics_file.close()
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        seconds = time.perf_counter() - started
        # Real (unpadded) tokens of every process; rank 0 counts its own times world_size.
        run_tokens_per_s = run_tokens / max(seconds, 1e-9)
        best = self.run_dir / "checkpoints" / "best"
        best_sim = self.run_dir / "checkpoints" / "best_sim"
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            train_loss=float(metrics["loss"]),
            val_loss=val_loss,
            best_val_loss=self.best_val_loss,
            tokens_per_s=run_tokens_per_s,
            seconds=seconds,
            latest_checkpoint=self.run_dir / "checkpoints" / "latest",
            best_checkpoint=best if best.exists() else None,
            sim=sim,
            history=history,
            best_sim_checkpoint=best_sim if best_sim.exists() else None,
            best_sim_success=self.best_sim_success,
        )

    # -- evaluation --------------------------------------------------------------------
    @torch.no_grad()
    def validation_loss(self, model: DFPolicyModel | None = None) -> float | None:
        """Mean DF loss of `model` (default: the EMA weights) over held-out episodes, with
        fixed noise draws so successive evaluations are comparable."""
        if self.val_data is None:
            return None
        model = model or self.ema.model
        model.eval()
        batch_size = self.sampler.batch_size
        total, count = 0.0, 0
        indices = list(range(len(self.val_data)))
        max_batches = max(1, int(self.config.evaluation.val_batches))
        for number, start in enumerate(range(0, len(indices), batch_size)):
            if number >= max_batches:
                break
            generator = torch.Generator().manual_seed(int(self.config.seed) * 7919 + number)
            batch = to_token_batch(self.val_data.batch(indices[start : start + batch_size]), self.device)
            with self._autocast():
                loss, _ = diffusion_forcing_loss(model, batch, self.objective, generator)
            total += float(loss)
            count += 1
        return total / max(count, 1)

    def evaluate(self, writer: Any, with_sim: bool) -> tuple[float | None, dict[str, Any] | None]:
        """Validation loss and, when configured, closed-loop episodes (rank 0 only)."""
        val_loss, sim = None, None
        if self.is_main:
            val_loss = self.validation_loss()
            if val_loss is not None and writer is not None:
                writer.add_scalar("val/loss", val_loss, self.step)
            if with_sim and self.policy_evaluator is not None:
                sim = self._simulate(self.policy_evaluator)
                if writer is not None:
                    writer.add_scalar("sim/success_rate", sim["success_rate"], self.step)
        self._barrier()
        return val_loss, sim

    def _simulate(self, evaluate: PolicyEvaluator) -> dict[str, Any]:
        video = self.run_dir / "eval" / f"step_{self.step:07d}.gif" if self.config.evaluation.sim_video else None
        result = evaluate(self.ema.model, self.normalizer, video)
        summary = result.summary()
        out = self.run_dir / "eval" / f"step_{self.step:07d}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_dict(), indent=1))
        return summary

    # -- checkpoints -------------------------------------------------------------------
    def _metadata(self, val_loss: float | None) -> dict[str, Any]:
        return {
            "training_step": self.step,
            "dataset": self.dataset_path,
            "dataset_fingerprint": self.fingerprint,
            "episodes": self.episode_counts,
            "val_loss": val_loss,
            "weights": "ema",
            "world_size": self.world_size,
        }

    def _keep_if_best_sim(self, success_rate: float, val_loss: float | None) -> None:
        """checkpoints/best_sim at the highest closed-loop success so far. Ties go to the
        later step: at equal success, more training is the better bet."""
        if not self.is_main:
            return
        if self.best_sim_success is None or success_rate >= self.best_sim_success:
            self.best_sim_success = success_rate
            metadata = {**self._metadata(val_loss), "sim_success_rate": success_rate}
            save_checkpoint(
                self.run_dir / "checkpoints" / "best_sim",
                self.ema.model,
                self.normalizer,
                to_container(self.config),
                metadata,
            )

    def save(self, val_loss: float | None) -> None:
        """latest/ (and best/ on a new lowest validation loss), then the resume state."""
        if self.is_main:
            container = to_container(self.config)
            checkpoints = self.run_dir / "checkpoints"
            save_checkpoint(
                checkpoints / "latest", self.ema.model, self.normalizer, container, self._metadata(val_loss)
            )
            if val_loss is not None and (self.best_val_loss is None or val_loss < self.best_val_loss):
                self.best_val_loss = val_loss
                save_checkpoint(
                    checkpoints / "best", self.ema.model, self.normalizer, container, self._metadata(val_loss)
                )
            # lr_lambdas is [None] for a plain function: the schedule itself is rebuilt from the config.
            scheduler_state = self.scheduler.state_dict()
            save_resume_state(
                self.run_dir,
                self.model.state_dict(),
                self.ema.state_dict(),
                self.optimizer.state_dict(),
                self.normalizer,
                {
                    "step": self.step,
                    "scheduler": scheduler_state,
                    "sampler": self.sampler.state_dict(),
                    "best_val_loss": self.best_val_loss,
                    "best_sim_success": self.best_sim_success,
                    "dataset_fingerprint": self.fingerprint,
                    "compatibility": _compatibility(self.config),
                },
            )
        self._barrier()

    # -- plumbing ----------------------------------------------------------------------
    def _barrier(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()

    def _tensorboard(self) -> Any:
        if not (self.is_main and self.config.logging.tensorboard):
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=self.step or None)

    def _progress(self) -> Any:
        if not (self.is_main and self.config.logging.progress):
            return None
        from tqdm import tqdm

        if self.time_budget_s is not None:
            # A budgeted run ends on time, and optim.total_steps is then often a large cap: a
            # bar over steps would show an ETA of days. This one counts the budget's seconds.
            return tqdm(
                total=float(self.time_budget_s),
                desc="train",
                unit="s",
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} of the time budget{postfix}",
            )
        return tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def iterate_batches(trainer: Trainer, count: int) -> Iterator[TokenBatch]:
    """`count` training batches as the loop would draw them (benchmarks)."""
    for _ in range(count):
        generator = step_generator(int(trainer.config.seed), trainer.rank, trainer.step)
        host = trainer.train_data.batch(trainer.sampler.next_batch())
        yield to_token_batch(host, trainer.device, trainer.augmentation, generator)
