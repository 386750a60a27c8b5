"""A synthetic task that needs memory, and its demonstration.

Each episode shows a cue for the first few tokens: a bright square in one of
four quadrants. Then come uninformative frames (faint noise), and at the last
observation a "go" frame (a white border). The action that follows the go frame
must point to the cued quadrant; every other action is zero. Without memory
the policy sees only the go frame and can do no better than chance (25%).

Corruption replaces a frame with a misleading one: a cue square in a random
quadrant over noise, as a distractor passing the camera would. The DF policy is
told these frames are unusable (k = K); the teacher-forcing baseline, which
never saw a noisy context, must take them as truth.

`python -m policy.synthetic_memory` trains the three variants and prints the
table; the test suite runs the same functions with the same settings.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from policy.model import DFPolicyModel, ModelConfig
from policy.normalizer import Normalizer, images_to_unit_range
from policy.objective import ObjectiveConfig, TokenBatch, diffusion_forcing_loss
from policy.runner import Observation, PolicyRunner, RunnerConfig
from policy.spec import ActionComponent, ActionSpec, CameraSpec, PolicySpec

CAMERA = "camera"


@dataclass(frozen=True)
class MemoryTask:
    num_classes: int = 4
    cue_tokens: int = 3
    length: int = 12
    image_size: int = 16

    def __post_init__(self) -> None:
        if self.num_classes not in (2, 4):
            raise ValueError(f"num_classes must be 2 or 4 (quadrant cues), got {self.num_classes}")
        if not 1 <= self.cue_tokens <= self.length - 3:
            raise ValueError(
                f"cue_tokens must leave at least one uninformative token before the go frame, "
                f"got cue_tokens={self.cue_tokens}, length={self.length}"
            )

    @property
    def go_token(self) -> int:
        return self.length - 2

    def spec(self) -> PolicySpec:
        return PolicySpec(
            cameras=(CameraSpec(CAMERA, self.image_size, self.image_size),),
            proprio_dim=0,
            action=ActionSpec((ActionComponent("direction", 2),)),
            actions_per_token=1,
            token_period_s=1.0,
        )

    def targets(self) -> np.ndarray:
        angles = np.arange(self.num_classes) * (2 * math.pi / self.num_classes)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def small_model_config(**overrides: object) -> ModelConfig:
    """The model size used for the synthetic task (trains in seconds on a CPU)."""
    values: dict[str, object] = {
        "latent_dim": 64,
        "embed_dim": 64,
        "encoder_channels": (16, 32),
        "frame_prediction_size": 8,
        "num_levels": 100,
    }
    values.update(overrides)
    return ModelConfig(**values)  # type: ignore[arg-type]


def _cue_frame(task: MemoryTask, cls: int, rng: np.random.Generator) -> np.ndarray:
    s = task.image_size
    frame = rng.integers(0, 40, size=(s, s, 3), dtype=np.uint8)
    half = s // 2
    quadrant = cls if task.num_classes == 4 else cls * 2
    y0, x0 = (quadrant // 2) * half, (quadrant % 2) * half
    margin = s // 8
    frame[y0 + margin : y0 + half - margin, x0 + margin : x0 + half - margin] = rng.integers(200, 256, size=3)
    return frame


def _blank_frame(task: MemoryTask, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 40, size=(task.image_size, task.image_size, 3), dtype=np.uint8)


def _go_frame(task: MemoryTask, rng: np.random.Generator) -> np.ndarray:
    frame = _blank_frame(task, rng)
    frame[:2], frame[-2:], frame[:, :2], frame[:, -2:] = 255, 255, 255, 255
    return frame


@dataclass
class Episode:
    cls: int
    frames: np.ndarray  # (T, s, s, 3) uint8 as the camera delivers them
    corrupted: np.ndarray  # (T,) bool
    actions: np.ndarray  # (T, 2): token t holds the action executed between t-1 and t


def make_episode(task: MemoryTask, rng: np.random.Generator, corruption_prob: float = 0.0) -> Episode:
    cls = int(rng.integers(task.num_classes))
    frames = []
    for t in range(task.length):
        if t < task.cue_tokens:
            frames.append(_cue_frame(task, cls, rng))
        elif t == task.go_token:
            frames.append(_go_frame(task, rng))
        else:
            frames.append(_blank_frame(task, rng))
    corrupted = rng.random(task.length) < corruption_prob
    for t in np.flatnonzero(corrupted):
        frames[t] = _cue_frame(task, int(rng.integers(task.num_classes)), rng)
    actions = np.zeros((task.length, 2))
    actions[task.go_token + 1] = task.targets()[cls]
    return Episode(cls, np.stack(frames), corrupted, actions)


def make_batch(task: MemoryTask, batch_size: int, rng: np.random.Generator) -> TokenBatch:
    episodes = [make_episode(task, rng) for _ in range(batch_size)]
    frames = images_to_unit_range(np.stack([e.frames for e in episodes]))[:, :, None]  # one camera
    actions = torch.from_numpy(np.stack([e.actions for e in episodes])).float()
    return TokenBatch(
        frames=frames,
        proprio=torch.zeros(batch_size, task.length, 0),
        actions=actions,
        valid=torch.ones(batch_size, task.length, dtype=torch.bool),
    )


@dataclass
class TrainResult:
    model: DFPolicyModel
    normalizer: Normalizer
    losses: list[float]
    seconds: float  # wall clock
    cpu_seconds_per_thread: float  # CPU time of the training per thread (OpenMP spin-waits inflate it under load)


def train(
    task: MemoryTask,
    model_config: ModelConfig,
    steps: int = 600,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
    objective: ObjectiveConfig | None = None,
    progress: bool = False,
    label: str = "",
) -> TrainResult:
    """Fit one variant on freshly generated episodes (a plain Adam loop: the project's
    full trainer, with EMA and checkpoints, lives in training/)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DFPolicyModel(task.spec(), model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)),
    )
    objective = objective or ObjectiveConfig()
    losses: list[float] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(range(steps), desc=f"train {label}".strip(), disable=not progress, leave=False)
    model.train()
    for _ in bar:
        loss, metrics = diffusion_forcing_loss(model, make_batch(task, batch_size, rng), objective, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(metrics["action_loss"])
        bar.set_postfix(action_loss=f"{metrics['action_loss']:.4f}")
    model.eval()
    # Actions are already in [-1, 1] and there is no proprioception.
    normalizer = Normalizer.identity(2, 0)
    cpu_per_thread = (time.process_time() - cpu_start) / torch.get_num_threads()
    return TrainResult(model, normalizer, losses, time.perf_counter() - start, cpu_per_thread)


def evaluate(
    result: TrainResult,
    task: MemoryTask,
    episodes: int = 200,
    corruption_prob: float = 0.0,
    mark_corrupted: bool = True,
    runner_config: RunnerConfig | None = None,
    seed: int = 1000,
    progress: bool = False,
    label: str = "",
) -> float:
    """Closed-loop accuracy through the real-time runner: the action after the go
    frame must point to the cued quadrant. Corrupted frames are marked k = K when
    `mark_corrupted` (the runner of a teacher-forcing model ignores the mark)."""
    rng = np.random.default_rng(seed)
    runner = PolicyRunner(
        result.model,
        result.normalizer,
        runner_config or RunnerConfig(schedule="autoregressive", horizon=1, steps=10, carry=False),
    )
    targets = task.targets()
    K = result.model.config.num_levels
    correct = 0
    for episode_index in tqdm(range(episodes), desc=f"evaluate {label}".strip(), disable=not progress, leave=False):
        episode = make_episode(task, rng, corruption_prob)
        runner.reset(seed=seed + episode_index)
        chunk = None
        for t in range(task.go_token + 1):
            level = K if (mark_corrupted and episode.corrupted[t]) else 0
            chunk = runner.step(
                Observation(
                    stamp=float(t),
                    frames={CAMERA: episode.frames[t]},
                    frame_levels={CAMERA: level},
                    executed_actions=episode.actions[t][None] if t > 0 else None,
                )
            )
        assert chunk is not None
        predicted = int(np.argmax(targets @ chunk.actions[0]))
        correct += int(predicted == episode.cls)
    return correct / episodes


VARIANTS: dict[str, dict[str, object]] = {
    "diffusion_forcing": {},
    "memoryless": {"memory": "memoryless", "memory_window": 1},
    "teacher_forcing": {"context": "teacher_forcing"},
}


def run_demo(
    steps: int, episodes: int, corruption_prob: float, seed: int, progress: bool = True
) -> dict[str, dict[str, float]]:
    task = MemoryTask()
    table: dict[str, dict[str, float]] = {}
    curves: dict[str, list[float]] = {}
    for name, overrides in VARIANTS.items():
        result = train(task, small_model_config(**overrides), steps=steps, seed=seed, progress=progress, label=name)
        curves[name] = result.losses
        table[name] = {
            "train_seconds": result.seconds,
            "clean_accuracy": evaluate(result, task, episodes, progress=progress, label=f"{name} clean"),
            "corrupted_accuracy": evaluate(
                result, task, episodes, corruption_prob=corruption_prob, progress=progress, label=f"{name} corrupted"
            ),
        }
    table["_curves"] = curves  # type: ignore[assignment]
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Synthetic memory demonstration: a cue at the start decides the action many steps later. "
            "Trains the DF policy, the memoryless and the teacher-forcing variants on the CPU and "
            "evaluates each through the real-time runner on clean episodes and on episodes with "
            "corrupted frames (DF marks them k = K; teacher forcing must trust them)."
        )
    )
    parser.add_argument("--steps", type=int, default=600, help="training steps per variant (default 600)")
    parser.add_argument("--episodes", type=int, default=300, help="evaluation episodes per condition (default 300)")
    parser.add_argument("--corruption", type=float, default=0.3, help="fraction of corrupted frames (default 0.3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-dir", type=Path, default=None, help="write results.json and a loss plot here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    print(
        f"Training 3 variants x {args.steps} steps on the CPU (under a minute each), "
        f"then {args.episodes} evaluation episodes per condition."
    )
    table = run_demo(args.steps, args.episodes, args.corruption, args.seed)
    curves = table.pop("_curves")
    chance = 1.0 / MemoryTask().num_classes
    print(f"\n{'variant':<20}{'clean':>8}{'corrupted ' + format(args.corruption, '.0%'):>18}{'train s':>10}")
    for name, row in table.items():
        print(f"{name:<20}{row['clean_accuracy']:>8.1%}{row['corrupted_accuracy']:>18.1%}{row['train_seconds']:>10.1f}")
    print(f"(chance is {chance:.0%}; DF marks corrupted frames with k = K, teacher forcing takes them as clean)")
    if args.report_dir is not None:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        (args.report_dir / "results.json").write_text(json.dumps(table, indent=2))
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 3.5))
            for name, losses in curves.items():
                window = max(1, len(losses) // 50)
                smoothed = np.convolve(losses, np.ones(window) / window, mode="valid")
                ax.plot(smoothed, label=name)
            ax.set_yscale("log")
            ax.set_xlabel("training step")
            ax.set_ylabel("action loss")
            ax.legend()
            fig.tight_layout()
            fig.savefig(args.report_dir / "training_loss.png", dpi=120)
            print(f"report written to {args.report_dir}/")
        except ImportError:
            print(f"results written to {args.report_dir}/results.json (install matplotlib for the loss plot)")
    print(json.dumps({name: {k: round(v, 4) for k, v in row.items()} for name, row in table.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
