"""Cosine noise schedule over K discrete levels, forward noising and the DDIM step.

Level 0 is the clean signal, level K is pure noise: alpha_bar[K] is exactly 0,
so a token at level K carries no information about its content. That is what
lets the model treat an unusable camera frame as "unknown" (partial masking).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

PredictionTarget = Literal["x0", "v"]


class NoiseSchedule:
    """alpha_bar(k) = cos^2(pi/2 * (k/K + s) / (1 + s)) normalised to alpha_bar(0) = 1.

    Levels are integers 0..K; a DDIM sampler may use any subset of them, so the
    number of denoising steps is chosen at run time without retraining.
    """

    def __init__(self, num_levels: int = 1000, offset: float = 0.008) -> None:
        if num_levels < 2:
            raise ValueError(f"num_levels must be >= 2, got {num_levels}")
        self.num_levels = num_levels
        steps = torch.arange(num_levels + 1, dtype=torch.float64) / num_levels
        f = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
        alpha_bar = (f / f[0]).clamp(0.0, 1.0)
        alpha_bar[-1] = 0.0  # cos(pi/2) is ~1e-33 in float64; make "unknown" exact
        self.alpha_bar = alpha_bar.to(torch.float32)
        self.signal = self.alpha_bar.sqrt()  # sqrt(alpha_bar): how much of x0 survives
        self.sigma = (1.0 - self.alpha_bar).sqrt()  # how much noise there is

    @property
    def K(self) -> int:  # noqa: N802 - K is the paper's name for the top level
        return self.num_levels

    def _gather(self, table: torch.Tensor, levels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        values = table.to(like.device)[levels.long()]
        return values.reshape(values.shape + (1,) * (like.dim() - values.dim())).to(like.dtype)

    def signal_of(self, levels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """sqrt(alpha_bar) at `levels`, broadcastable against `like`."""
        return self._gather(self.signal, levels, like)

    def sigma_of(self, levels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self._gather(self.sigma, levels, like)

    def add_noise(self, x0: torch.Tensor, levels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward process q(x_k | x_0); `levels` has x0's leading dims."""
        return self.signal_of(levels, x0) * x0 + self.sigma_of(levels, x0) * noise

    def target(
        self, kind: PredictionTarget, x0: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor
    ) -> torch.Tensor:
        """What the network is trained to output for `kind`."""
        if kind == "x0":
            return x0
        if kind == "v":
            return self.signal_of(levels, x0) * noise - self.sigma_of(levels, x0) * x0
        raise ValueError(f"prediction target must be 'x0' or 'v', got {kind!r}")

    def to_x0(
        self, kind: PredictionTarget, output: torch.Tensor, x_noisy: torch.Tensor, levels: torch.Tensor
    ) -> torch.Tensor:
        """The network's output turned into an estimate of x0."""
        if kind == "x0":
            return output
        if kind == "v":
            return self.signal_of(levels, x_noisy) * x_noisy - self.sigma_of(levels, x_noisy) * output
        raise ValueError(f"prediction target must be 'x0' or 'v', got {kind!r}")

    def ddim_step(
        self,
        x_noisy: torch.Tensor,
        x0_estimate: torch.Tensor,
        levels: torch.Tensor,
        next_levels: torch.Tensor,
        clip: float | None = 1.0,
    ) -> torch.Tensor:
        """Deterministic DDIM update from `levels` to `next_levels` (<= levels).

        Columns whose level does not change are returned unchanged, so a pyramid
        schedule can step some tokens and hold others in one call.
        """
        if bool((next_levels > levels).any()):
            raise ValueError("a DDIM step cannot add noise: next_levels must be <= levels")
        if clip is not None:
            x0_estimate = x0_estimate.clamp(-clip, clip)
        signal = self.signal_of(levels, x_noisy)
        sigma = self.sigma_of(levels, x_noisy)
        # eps implied by the x0 estimate; at level K (signal 0) it is x_noisy itself.
        eps = (x_noisy - signal * x0_estimate) / sigma.clamp_min(1e-8)
        stepped = self.signal_of(next_levels, x_noisy) * x0_estimate + self.sigma_of(next_levels, x_noisy) * eps
        unchanged = (next_levels == levels).reshape(levels.shape + (1,) * (x_noisy.dim() - levels.dim()))
        return torch.where(unchanged, x_noisy, stepped)
