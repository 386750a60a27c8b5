"""Per-tick latency of the DF runner against a Diffusion-Policy-size reference, measured
fairly.

- The deployed configuration: the policy spec, the model size and the runner settings
  are read from the task and experiment configs (swap fruit: two 32 px cameras, 8
  actions per 0.8 s token, pyramid schedule over 2 tokens with 8 denoising steps,
  partly denoised tokens carried between ticks), never restated here.
- Every contender runs at the same intra-op thread counts (1 and 2 by default), one
  after the other in this process, on the same observations.
- Costs are reported per call and per second of robot time: DF ticks once per token;
  the reference predicts 16 actions and executes 8 at the task's action rate (Diffusion
  Policy's own horizon and action steps), so it is called once per 8 actions.
- The reference is a Diffusion-Policy-style network at Diffusion Policy's own sizes: a
  ResNet-18 with GroupNorm per camera over two observation steps, a FiLM-conditioned
  1-D convolutional UNet with down_dims 256/512/1024 over the 16-action chunk, sampled
  with 16 DDIM steps. (Written here, not taken from torchvision: the package index's
  torchvision is built against CUDA torch and its compiled ops do not load beside this
  machine's CPU torch; the model is a few dozen lines.)
- The load average before and after is in the JSON line; when the machine is busy
  (1-minute load above half a core per core), no ratio is reported: the numbers would
  measure the other work, not the policies.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from policy.model import DFPolicyModel
from policy.noise import NoiseSchedule
from policy.normalizer import Normalizer
from policy.runner import Observation, PolicyRunner, RunnerConfig
from policy.spec import PolicySpec

REFERENCE_HORIZON = 16  # actions predicted per call (Diffusion Policy: horizon 16)
REFERENCE_EXECUTED = 8  # actions executed per call (Diffusion Policy: n_action_steps 8)
REFERENCE_DDIM_STEPS = 16
REFERENCE_TRAIN_LEVELS = 100
REFERENCE_DOWN_DIMS = (256, 512, 1024)  # Diffusion Policy's ConditionalUnet1D default
REFERENCE_OBSERVATION_STEPS = 2
# Busy: the 1-minute load average above this many runnable processes per core.
BUSY_LOAD_PER_CORE = 0.5
GOAL_RATIO_PER_ROBOT_SECOND = 20.0
GOAL_DF_P99_MS = 5.0


# ------------------------------------------------------------------ the reference


class _BasicBlock(nn.Module):
    """ResNet's basic block with GroupNorm (Diffusion Policy replaces BatchNorm with it)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(channels_out // 16, channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(channels_out // 16, channels_out)
        self.down = (
            nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                nn.GroupNorm(channels_out // 16, channels_out),
            )
            if stride != 1 or channels_in != channels_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.down(x))


class ResNet18GroupNorm(nn.Module):
    """ResNet-18 (2, 2, 2, 2 basic blocks of 64, 128, 256, 512 channels), global average
    pooled to a 512-D feature."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.GroupNorm(4, 64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        blocks, channels = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_BasicBlock(channels, width, stride), _BasicBlock(width, width, 1)]
            channels = width
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(-2, -1))


class _FiLMBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, condition_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv1d(channels_in, channels_out, 5, padding=2), nn.GroupNorm(8, channels_out), nn.Mish()
        )
        self.conv2 = nn.Sequential(
            nn.Conv1d(channels_out, channels_out, 5, padding=2), nn.GroupNorm(8, channels_out), nn.Mish()
        )
        self.film = nn.Linear(condition_dim, 2 * channels_out)
        self.skip = nn.Conv1d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(condition)[..., None].chunk(2, dim=1)
        h = self.conv1(x) * (1 + scale) + shift
        return self.conv2(h) + self.skip(x)


class ReferenceUnet1d(nn.Module):
    """A 1-D UNet over the action chunk, conditioned on observation features and the
    diffusion step (FiLM), in the style of Diffusion Policy's CNN variant."""

    def __init__(self, action_dim: int, condition_dim: int, widths: tuple[int, ...] = REFERENCE_DOWN_DIMS) -> None:
        super().__init__()
        self.step_embedding = nn.Sequential(nn.Linear(256, 1024), nn.Mish(), nn.Linear(1024, 256))
        cond = condition_dim + 256
        self.down = nn.ModuleList()
        channels = action_dim
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        _FiLMBlock(channels, width, cond),
                        _FiLMBlock(width, width, cond),
                        nn.Identity() if last else nn.Conv1d(width, width, 3, stride=2, padding=1),
                    ]
                )
            )
            channels = width
        self.middle = nn.ModuleList([_FiLMBlock(channels, channels, cond), _FiLMBlock(channels, channels, cond)])
        self.up = nn.ModuleList()
        for width in reversed(widths[:-1]):
            # Input: the current features concatenated with the skip of equal width.
            self.up.append(
                nn.ModuleList(
                    [
                        _FiLMBlock(channels * 2, width, cond),
                        _FiLMBlock(width, width, cond),
                        nn.ConvTranspose1d(width, width, 4, stride=2, padding=1),
                    ]
                )
            )
            channels = width
        self.out = nn.Sequential(
            nn.Conv1d(channels, channels, 5, padding=2), nn.Mish(), nn.Conv1d(channels, action_dim, 1)
        )

    def forward(self, actions: torch.Tensor, step: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(128) / 128)
        phase = step.float()[:, None] * frequencies
        condition = torch.cat([features, self.step_embedding(torch.cat([phase.sin(), phase.cos()], -1))], -1)
        x = actions.transpose(1, 2)
        skips = []
        for block1, block2, down in self.down:
            x = block2(block1(x, condition), condition)
            skips.append(x)
            x = down(x)
        for block in self.middle:
            x = block(x, condition)
        for block1, block2, up in self.up:
            x = up(block2(block1(torch.cat([x, skips.pop()], 1), condition), condition))
        return self.out(x).transpose(1, 2)


class ReferencePolicy(nn.Module):
    """Diffusion Policy's shape: one ResNet-18 per camera over the last two observations,
    their features and the proprioception condition a UNet that denoises the chunk."""

    def __init__(self, cameras: int, proprio_dim: int, action_dim: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleList([ResNet18GroupNorm() for _ in range(cameras)])
        feature_dim = REFERENCE_OBSERVATION_STEPS * (cameras * 512 + proprio_dim)
        self.unet = ReferenceUnet1d(action_dim, feature_dim)
        self.schedule = NoiseSchedule(REFERENCE_TRAIN_LEVELS)
        self.action_dim = action_dim

    @torch.inference_mode()
    def act(self, images: torch.Tensor, proprio: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """images (steps, cameras, 3, H, W), proprio (steps, P) -> (horizon, action_dim)."""
        visual = torch.cat([encoder(images[:, i]) for i, encoder in enumerate(self.encoders)], -1)
        features = torch.cat([visual, proprio], -1).reshape(1, -1)
        x = torch.randn(1, REFERENCE_HORIZON, self.action_dim, generator=generator)
        levels = np.round(np.linspace(REFERENCE_TRAIN_LEVELS, 0, REFERENCE_DDIM_STEPS + 1)).astype(np.int64)
        for level, next_level in itertools.pairwise(levels):
            step = torch.tensor([int(level)])
            x0 = self.unet(x, step, features)
            x = self.schedule.ddim_step(x, x0, step, torch.tensor([int(next_level)]))
        return x[0]


# ------------------------------------------------------------------ measuring


@dataclass
class Contender:
    """One policy to time: `make()` builds it (seeded) and returns the call to time;
    `calls_per_robot_second` is how often the robot calls it."""

    name: str
    make: Callable[[], tuple[Callable[[int], object], int]]
    calls_per_robot_second: float


def df_contender(spec: PolicySpec, model_config: object, runner_config: RunnerConfig) -> Contender:
    def make() -> tuple[Callable[[int], object], int]:
        torch.manual_seed(0)
        model = DFPolicyModel(spec, model_config)  # type: ignore[arg-type]
        runner = PolicyRunner(model, Normalizer.identity(spec.action.dim, spec.proprio_dim), runner_config)
        rng = np.random.default_rng(0)
        frames = [
            {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in spec.cameras}
            for _ in range(8)
        ]

        def tick(index: int) -> object:
            observation = Observation(
                stamp=index * spec.token_period_s,
                frames=frames[index % 8],
                proprio=rng.uniform(-1, 1, spec.proprio_dim),
            )
            return runner.step(observation)

        return tick, model.parameter_count()

    return Contender("df", make, 1.0 / spec.token_period_s)


def reference_contender(spec: PolicySpec) -> Contender:
    def make() -> tuple[Callable[[int], object], int]:
        torch.manual_seed(0)
        reference = ReferencePolicy(len(spec.cameras), spec.proprio_dim, spec.action.dim).eval()
        generator = torch.Generator().manual_seed(0)
        camera = spec.cameras[0]
        images = torch.rand(REFERENCE_OBSERVATION_STEPS, len(spec.cameras), 3, camera.height, camera.width) * 2 - 1
        proprio = torch.zeros(REFERENCE_OBSERVATION_STEPS, spec.proprio_dim)
        return (lambda index: reference.act(images, proprio, generator)), sum(p.numel() for p in reference.parameters())

    return Contender("dp_reference", make, 1.0 / (REFERENCE_EXECUTED * spec.action_period_s))


def measure(contender: Contender, threads: int, calls: int, warmup: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    call, parameters = contender.make()
    samples = []
    for index in range(warmup + calls):
        start = time.perf_counter()
        call(index)
        if index >= warmup:
            samples.append(time.perf_counter() - start)
    ms = np.asarray(samples) * 1000
    p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    per_second = contender.calls_per_robot_second
    return {
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "calls": len(samples),
        "parameters": parameters,
        "p50_ms_per_robot_second": round(p50 * per_second, 3),
    }


def busy(load: float) -> bool:
    return load > BUSY_LOAD_PER_CORE * (os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    from training.config import compose_config, model_config, policy_spec, runner_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=500, help="measured DF ticks per thread count (default 500)")
    parser.add_argument("--reference-ticks", type=int, default=40, help="measured reference calls (default 40)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts (default 1 2)")
    parser.add_argument(
        "--experiment", default="swap_fruit", help="experiment config whose policy is timed (default swap_fruit)"
    )
    parser.add_argument("--quick", action="store_true", help="a few calls only: checks that the benchmark runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.ticks, args.reference_ticks = 10, 2
    warmup, reference_warmup = (2, 1) if args.quick else (20, 3)

    config = compose_config([f"experiment={args.experiment}"])
    spec, runner = policy_spec(config), runner_config(config)
    contenders = [df_contender(spec, model_config(config), runner), reference_contender(spec)]
    loadavg_before = os.getloadavg()
    print(
        f"deployed policy: {len(spec.cameras)} cameras at {spec.cameras[0].height}x{spec.cameras[0].width}, "
        f"{spec.actions_per_token} actions per {spec.token_period_s} s token, runner {runner}; "
        f"load average {loadavg_before[0]:.2f}",
        flush=True,
    )
    results: dict[str, dict[str, dict[str, float]]] = {c.name: {} for c in contenders}
    for threads in args.threads:
        for contender in contenders:
            calls = args.ticks if contender.name == "df" else args.reference_ticks
            print(f"{contender.name}: {calls} calls on {threads} thread(s) ...", flush=True)
            results[contender.name][str(threads)] = measure(
                contender, threads, calls, warmup if contender.name == "df" else reference_warmup
            )
    loadavg_after = os.getloadavg()

    print(f"{'':<14}{'threads':>8}{'p50 ms':>10}{'p99 ms':>10}{'ms/robot-s':>12}{'params':>12}")
    for name, by_threads in results.items():
        for threads, row in by_threads.items():
            print(
                f"{name:<14}{threads:>8}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
                f"{row['p50_ms_per_robot_second']:>12.2f}{row['parameters']:>12,}"
            )
    first = str(args.threads[0])
    df, reference = results["df"][first], results["dp_reference"][first]
    machine_busy = busy(loadavg_before[0]) or busy(loadavg_after[0])
    ratios = {
        threads: {
            "per_call": round(results["dp_reference"][threads]["p50_ms"] / results["df"][threads]["p50_ms"], 2),
            "per_robot_second": round(
                results["dp_reference"][threads]["p50_ms_per_robot_second"]
                / results["df"][threads]["p50_ms_per_robot_second"],
                2,
            ),
        }
        for threads in results["df"]
    }
    if machine_busy:
        print(
            f"the machine is busy (load average {loadavg_before[0]:.2f} before, {loadavg_after[0]:.2f} after, "
            f"{os.cpu_count()} cores): no ratio is reported; run it again on a quiet machine",
            flush=True,
        )
    result = {
        "df_tick_p50_ms": df["p50_ms"],
        "df_tick_p99_ms": df["p99_ms"],
        "dp_reference_p50_ms": reference["p50_ms"],
        "dp_reference_p99_ms": reference["p99_ms"],
        "ratio_per_call_vs_dp": None if machine_busy else ratios[first]["per_call"],
        "ratio_per_robot_second_vs_dp": None if machine_busy else ratios[first]["per_robot_second"],
        "threads": args.threads,
        "results": results,
        "ratios": None if machine_busy else ratios,
        "goals": {
            "ratio_per_robot_second_vs_dp_at_least": GOAL_RATIO_PER_ROBOT_SECOND,
            "df_tick_p99_ms_at_most_one_thread": GOAL_DF_P99_MS,
        },
        "busy": machine_busy,
        "loadavg_before": [round(v, 2) for v in loadavg_before],
        "loadavg_after": [round(v, 2) for v in loadavg_after],
        "cpu_count": os.cpu_count(),
        "image_size": [spec.cameras[0].height, spec.cameras[0].width],
        "actions_per_token": spec.actions_per_token,
        "token_period_s": spec.token_period_s,
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
