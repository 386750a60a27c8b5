"""Per-tick latency of the DF runner against a Diffusion-Policy-style reference.

Both run on a 2-core CPU on the deployed configuration read from the task config
(swap fruit: two 32 px cameras, 10-D proprioception, 10-D end-effector actions, 8
actions per 0.8 s token) and the same action horizon (16 actions). The reference gets
both cores (its convolutions use them). The DF runner uses one intra-op thread: at
batch size 1 its operations are too small to split, and with two threads one
descheduled thread stalls every OpenMP barrier
(p99 ~200 ms while another process is busy); one thread also leaves the second
core to the ROS executor. The DF figures with two threads are printed as well.

- DF: the real-time runner (pyramid schedule over 2 tokens of 8 actions, 8
  denoising steps, partly denoised tokens carried between ticks).
- Reference: a CNN encoder over two observation steps plus a FiLM-conditioned
  1-D convolutional UNet over a 16-action chunk, sampled with 16 DDIM steps, as
  Diffusion Policy does at run time. Its widths (64, 128, 256) are a quarter of
  Diffusion Policy's defaults, so the speedup reported here is a lower bound.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import time

import numpy as np
import torch
from torch import nn

from policy.model import DFPolicyModel, ModelConfig
from policy.noise import NoiseSchedule
from policy.normalizer import Normalizer
from policy.runner import Observation, PolicyRunner, RunnerConfig
from policy.spec import PolicySpec
from training.config import deployed_policy

REFERENCE_CHUNK = 16
REFERENCE_DDIM_STEPS = 16


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
    """A 1-D UNet over the action chunk, conditioned on observation features and
    the diffusion step (FiLM), in the style of Diffusion Policy's CNN variant."""

    def __init__(self, action_dim: int, condition_dim: int, widths: tuple[int, ...] = (64, 128, 256)) -> None:
        super().__init__()
        self.step_embedding = nn.Sequential(nn.Linear(64, 128), nn.Mish(), nn.Linear(128, 128))
        cond = condition_dim + 128
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
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(32) / 32)
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
    def __init__(
        self, cameras: int, image_size: int, proprio_dim: int, action_dim: int, observation_steps: int = 2
    ) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1),
            nn.GroupNorm(8, 32),
            nn.Mish(),
            nn.Conv2d(32, 64, 3, 2, 1),
            nn.GroupNorm(8, 64),
            nn.Mish(),
            nn.Conv2d(64, 128, 3, 2, 1),
            nn.GroupNorm(8, 128),
            nn.Mish(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        feature_dim = observation_steps * (cameras * 128 + proprio_dim)
        self.unet = ReferenceUnet1d(action_dim, feature_dim)
        self.schedule = NoiseSchedule(100)
        self.action_dim = action_dim

    @torch.inference_mode()
    def act(self, images: torch.Tensor, proprio: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """images (steps, cameras, 3, H, W), proprio (steps, P) -> (16, action_dim)."""
        visual = self.encoder(images.flatten(0, 1)).view(images.shape[0], -1)
        features = torch.cat([visual, proprio], -1).reshape(1, -1)
        x = torch.randn(1, REFERENCE_CHUNK, self.action_dim, generator=generator)
        levels = np.round(np.linspace(100, 0, REFERENCE_DDIM_STEPS + 1)).astype(np.int64)
        for level, next_level in itertools.pairwise(levels):
            step = torch.tensor([int(level)])
            x0 = self.unet(x, step, features)
            x = self.schedule.ddim_step(x, x0, step, torch.tensor([int(next_level)]))
        return x[0]


def _percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples_s) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def measure_df(
    ticks: int, warmup: int, runner_config: RunnerConfig, spec: PolicySpec, model_config: ModelConfig
) -> list[float]:
    torch.manual_seed(0)
    runner = PolicyRunner(
        DFPolicyModel(spec, model_config), Normalizer.identity(spec.action.dim, spec.proprio_dim), runner_config
    )
    rng = np.random.default_rng(0)
    frames = [
        {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in spec.cameras} for _ in range(8)
    ]
    samples = []
    for tick in range(warmup + ticks):
        observation = Observation(
            stamp=tick * spec.token_period_s, frames=frames[tick % 8], proprio=rng.uniform(-1, 1, spec.proprio_dim)
        )
        start = time.perf_counter()
        runner.step(observation)
        if tick >= warmup:
            samples.append(time.perf_counter() - start)
    return samples


def measure_reference(ticks: int, warmup: int, spec: PolicySpec) -> tuple[list[float], int]:
    image_size = spec.cameras[0].height
    torch.manual_seed(0)
    reference = ReferencePolicy(len(spec.cameras), image_size, spec.proprio_dim, spec.action.dim).eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, len(spec.cameras), 3, image_size, image_size) * 2 - 1
    proprio = torch.zeros(2, spec.proprio_dim)
    samples = []
    for tick in range(warmup + ticks):
        start = time.perf_counter()
        reference.act(images, proprio, generator)
        if tick >= warmup:
            samples.append(time.perf_counter() - start)
    return samples, sum(p.numel() for p in reference.parameters())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=500, help="measured DF ticks (default 500)")
    parser.add_argument("--reference-ticks", type=int, default=60, help="measured reference ticks (default 60)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the reference (default 2)")
    parser.add_argument("--df-threads", type=int, default=1, help="intra-op threads of the DF runner (default 1)")
    parser.add_argument(
        "--task", default="swap_fruit_sim", help="task config whose policy is timed (default swap_fruit_sim)"
    )
    parser.add_argument("--quick", action="store_true", help="a few ticks only: checks that the benchmark runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.ticks, args.reference_ticks = 20, 3
    warmup = 3 if args.quick else 20

    # The deployed configuration: the task config's cameras, image size and rates.
    spec, model_config = deployed_policy([f"task={args.task}"])
    torch.set_num_threads(args.df_threads)
    df_config = RunnerConfig(schedule="pyramid", horizon=2, steps=8, uncertainty_scale=2.0, carry=True)
    print(f"DF runner, {df_config}, {args.df_threads} thread(s): {args.ticks} ticks ...", flush=True)
    df = measure_df(args.ticks, warmup, df_config, spec, model_config)
    no_carry = RunnerConfig(schedule="pyramid", horizon=2, steps=8, uncertainty_scale=2.0, carry=False)
    print("DF runner without carried tokens (every tick from pure noise) ...", flush=True)
    df_fresh = measure_df(max(args.ticks // 5, 10), warmup, no_carry, spec, model_config)
    torch.set_num_threads(args.threads)
    print(f"DF runner with {args.threads} threads ...", flush=True)
    df_two = measure_df(max(args.ticks // 5, 10), warmup, df_config, spec, model_config)
    print(
        f"Diffusion-Policy-style reference, {REFERENCE_DDIM_STEPS} DDIM steps: {args.reference_ticks} ticks ...",
        flush=True,
    )
    reference, reference_parameters = measure_reference(args.reference_ticks, 2 if args.quick else 5, spec)

    df_p50, df_p99 = _percentiles(df)
    fresh_p50, fresh_p99 = _percentiles(df_fresh)
    two_p50, two_p99 = _percentiles(df_two)
    ref_p50, ref_p99 = _percentiles(reference)
    df_parameters = DFPolicyModel(spec, model_config).parameter_count()
    print(f"{'':<28}{'p50 ms':>10}{'p99 ms':>10}{'params':>12}")
    print(f"{'DF (carry)':<28}{df_p50:>10.2f}{df_p99:>10.2f}{df_parameters:>12,}")
    print(f"{'DF (no carry)':<28}{fresh_p50:>10.2f}{fresh_p99:>10.2f}{df_parameters:>12,}")
    print(f"{'DF (carry, ' + str(args.threads) + ' threads)':<28}{two_p50:>10.2f}{two_p99:>10.2f}{df_parameters:>12,}")
    print(f"{'DP-style reference':<28}{ref_p50:>10.2f}{ref_p99:>10.2f}{reference_parameters:>12,}")
    result = {
        "df_tick_p50_ms": round(df_p50, 3),
        "df_tick_p99_ms": round(df_p99, 3),
        "df_no_carry_tick_p50_ms": round(fresh_p50, 3),
        "df_no_carry_tick_p99_ms": round(fresh_p99, 3),
        "df_two_threads_tick_p50_ms": round(two_p50, 3),
        "df_two_threads_tick_p99_ms": round(two_p99, 3),
        "reference_tick_p50_ms": round(ref_p50, 3),
        "reference_tick_p99_ms": round(ref_p99, 3),
        "speedup_p50": round(ref_p50 / df_p50, 2),
        "action_horizon": 16,
        "df_threads": args.df_threads,
        "reference_threads": args.threads,
        "image_size": spec.cameras[0].height,
        "actions_per_token": spec.actions_per_token,
        "token_period_s": spec.token_period_s,
        "df_ticks": len(df),
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
