"""The causal Diffusion Forcing policy: z_t = f(z_{t-1}, x_t^k, k).

A token t holds the camera frames and proprioception observed at t and the
action chunk executed since token t-1. Each sub-token (every camera, the
proprioception, the actions) carries its own noise level. The latent z_t is a
GRU state started from a learned z_0, the same in training and at run time;
heads read z_t and predict the clean token: the action chunk (as x0 or v), a low-resolution
frame per camera and the proprioception.

Observation sub-tokens are gated by sqrt(alpha_bar(k)): at k = K the gate is
exactly zero, so a frame marked unusable cannot move the latent, whatever its
pixels, and the latent advances on its prior (a Bayes filter without a
measurement). Actions are not gated: they are what the sampler denoises, and a
denoiser must see its noisy input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from policy.config_io import dataclass_from_dict
from policy.noise import NoiseSchedule, PredictionTarget
from policy.spec import PolicySpec

MemoryMode = Literal["recurrent", "memoryless"]
ContextMode = Literal["diffusion_forcing", "teacher_forcing"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and the variant it implements.

    The baselines are values of these fields, not other code:
    memory="memoryless" resets the latent to z_0 every token and rebuilds it from
    the last `memory_window` tokens (a Diffusion-Policy-like reference);
    context="teacher_forcing" trains next-token diffusion on clean context.
    """

    latent_dim: int = 256
    embed_dim: int = 256
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    frame_prediction_size: int = 16
    num_levels: int = 1000
    prediction: PredictionTarget = "x0"
    memory: MemoryMode = "recurrent"
    memory_window: int = 1
    context: ContextMode = "diffusion_forcing"

    def __post_init__(self) -> None:
        if self.prediction not in ("x0", "v"):
            raise ValueError(f"prediction must be 'x0' or 'v', got {self.prediction!r}")
        if self.memory not in ("recurrent", "memoryless"):
            raise ValueError(f"memory must be 'recurrent' or 'memoryless', got {self.memory!r}")
        if self.context not in ("diffusion_forcing", "teacher_forcing"):
            raise ValueError(f"context must be 'diffusion_forcing' or 'teacher_forcing', got {self.context!r}")
        if self.memory_window < 1:
            raise ValueError(f"memory_window must be >= 1, got {self.memory_window}")
        if self.memory == "memoryless" and self.context == "teacher_forcing":
            raise ValueError("memoryless and teacher_forcing are separate baselines; pick one")
        if not self.encoder_channels:
            raise ValueError("encoder_channels must name at least one convolution")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["encoder_channels"] = list(self.encoder_channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        values = dict(data)
        if "encoder_channels" in values:
            values["encoder_channels"] = tuple(values["encoder_channels"])
        return dataclass_from_dict(cls, values, "model config")


class LevelEmbedding(nn.Module):
    """Sinusoidal features of k/K followed by an MLP."""

    def __init__(self, num_levels: int, dim: int, features: int = 64) -> None:
        super().__init__()
        self.num_levels = num_levels
        frequencies = torch.exp(-math.log(1000.0) * torch.arange(features // 2) / (features // 2))
        self.register_buffer("frequencies", frequencies, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        phase = (levels.float() / self.num_levels * 1000.0)[..., None] * self.frequencies
        return self.mlp(torch.cat([phase.sin(), phase.cos()], dim=-1))


class ImageEncoder(nn.Module):
    """Strided convolutions, then a 4x4 spatial grid flattened, so where things are
    in the image (which slot holds which fruit) survives; works for 32-96 px."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.GroupNorm(8, width), nn.SiLU()]
            previous = width
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.out = nn.Linear(previous * 16, out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.convs(images)
        if features.shape[-2:] != (4, 4):  # at 32 px the convs already end at 4x4; the pool would cost ~10% of a step
            features = self.pool(features)
        return self.out(features.flatten(1))


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, out_dim)
    )


@dataclass
class TokenPrediction:
    """Raw head outputs for one latent: `action` in the configured prediction
    target (x0 or v); `proprio` and `frames` (in [-1, 1]) always as clean values."""

    action: torch.Tensor  # (B, A*d)
    proprio: torch.Tensor  # (B, P)
    frames: torch.Tensor  # (B, N, C, s, s)


class DFPolicyModel(nn.Module):
    def __init__(self, spec: PolicySpec, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.config = config or ModelConfig()
        cfg = self.config
        channels = {c.channels for c in spec.cameras}
        if len(channels) > 1:
            raise ValueError(f"all cameras must have the same channel count, got {sorted(channels)}")
        self.image_channels = channels.pop() if channels else 3
        self.num_cameras = len(spec.cameras)
        self.action_size = spec.actions_per_token * spec.action.dim
        self.schedule = NoiseSchedule(cfg.num_levels)
        embed = cfg.embed_dim

        self.image_encoder = ImageEncoder(self.image_channels, cfg.encoder_channels, embed)
        self.proprio_encoder = _mlp(max(spec.proprio_dim, 1), embed, embed)
        self.action_encoder = _mlp(self.action_size, embed, embed)
        self.level_embedding = LevelEmbedding(cfg.num_levels, embed)
        # Which sub-token a level belongs to: each camera, proprioception, actions.
        self.part_embedding = nn.Parameter(torch.randn(self.num_cameras + 2, embed) * 0.02)
        self.fuse = nn.Sequential(nn.Linear(embed * (self.num_cameras + 2), embed), nn.LayerNorm(embed), nn.SiLU())
        self.cell = nn.GRUCell(embed, cfg.latent_dim)
        self.initial_latent = nn.Parameter(torch.zeros(cfg.latent_dim))

        s = cfg.frame_prediction_size
        self.action_head = _mlp(cfg.latent_dim, cfg.latent_dim, self.action_size)
        self.proprio_head = _mlp(cfg.latent_dim, cfg.latent_dim, max(spec.proprio_dim, 1))
        self.frame_head = nn.Linear(cfg.latent_dim, self.num_cameras * self.image_channels * s * s)

    # -- token embedding -------------------------------------------------------------
    def observation_parts(
        self,
        frames: torch.Tensor,
        frame_levels: torch.Tensor,
        proprio: torch.Tensor,
        proprio_levels: torch.Tensor,
    ) -> list[torch.Tensor]:
        """Embeddings of each camera and the proprioception, gated by their signal.

        frames (B, N, C, H, W) noisy, in [-1, 1] at level 0; frame_levels (B, N);
        proprio (B, P) noisy; proprio_levels (B,). Cameras whose frames are all at
        level K are not encoded at all: their gate is exactly zero.
        """
        batch = frames.shape[0]
        K = self.config.num_levels
        parts: list[torch.Tensor] = []
        seen = (frame_levels < K).flatten()
        encoded: torch.Tensor | None = None
        if self.num_cameras and bool(seen.any()):
            # Only frames below level K are encoded: at K the gate is exactly zero, so the
            # rest cost nothing (in training most are: future tokens, unknown draws, padding).
            flat = frames.flatten(0, 1)
            if bool(seen.all()):
                encoded = self.image_encoder(flat)
            else:
                features = self.image_encoder(flat[seen])
                encoded = features.new_zeros(flat.shape[0], features.shape[-1]).index_copy(
                    0, seen.nonzero().squeeze(1), features
                )
            encoded = encoded.view(batch, self.num_cameras, -1)
        for i in range(self.num_cameras):
            level = frame_levels[:, i]
            part = self.level_embedding(level) + self.part_embedding[i]
            if encoded is not None:
                part = part + self.schedule.signal_of(level, encoded[:, i]) * encoded[:, i]
            parts.append(part)
        if self.spec.proprio_dim == 0:
            proprio = proprio.new_zeros(batch, 1)
        proprio_part = self.schedule.signal_of(proprio_levels, proprio) * self.proprio_encoder(proprio)
        parts.append(proprio_part + self.level_embedding(proprio_levels) + self.part_embedding[self.num_cameras])
        return parts

    def action_part(
        self,
        actions: torch.Tensor,
        action_levels: torch.Tensor | None = None,
        level_part: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """actions (B, A*d) noisy and normalised, with either their levels (B,) or
        `level_part` = action_level_part(levels) when the caller has it cached."""
        if level_part is None:
            if action_levels is None:
                raise ValueError("action_part needs action_levels or a cached level_part")
            level_part = self.action_level_part(action_levels)
        return self.action_encoder(actions) + level_part

    def action_level_part(self, action_levels: torch.Tensor) -> torch.Tensor:
        return self.level_embedding(action_levels) + self.part_embedding[-1]

    def fuse_token(self, observation_parts: list[torch.Tensor], action_part: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([*observation_parts, action_part], dim=-1))

    def fuser_for_fixed_observation(
        self, observation_parts: list[torch.Tensor]
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """fuse_token for many tokens that share their observation parts (a tick's
        future tokens are all "not observed yet"): the fuse layer's linear map splits
        into a constant for the observation and a small product for the action."""
        linear, norm, activation = self.fuse
        observation = torch.cat(observation_parts, dim=-1)
        width = observation.shape[-1]
        constant = F.linear(observation, linear.weight[:, :width], linear.bias)
        action_weight = linear.weight[:, width:]
        return lambda action_part: activation(norm(constant + F.linear(action_part, action_weight)))

    def embed_token(
        self,
        frames: torch.Tensor,
        frame_levels: torch.Tensor,
        proprio: torch.Tensor,
        proprio_levels: torch.Tensor,
        actions: torch.Tensor,
        action_levels: torch.Tensor,
    ) -> torch.Tensor:
        parts = self.observation_parts(frames, frame_levels, proprio, proprio_levels)
        return self.fuse_token(parts, self.action_part(actions, action_levels))

    # -- recurrence and heads ----------------------------------------------------------
    def start_latent(self, batch: int) -> torch.Tensor:
        return self.initial_latent.expand(batch, -1)

    def transition(self, latent: torch.Tensor, token_embedding: torch.Tensor) -> torch.Tensor:
        return self.cell(token_embedding, latent)

    def predict(self, latent: torch.Tensor) -> TokenPrediction:
        proprio = self.proprio_head(latent)
        if self.spec.proprio_dim == 0:
            proprio = proprio[:, :0]
        return TokenPrediction(self.action_head(latent), proprio, self.predict_frames(latent))

    def predict_frames(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, N, C, s, s) in [-1, 1]: the clean frames of the token the latent absorbed."""
        s = self.config.frame_prediction_size
        return torch.tanh(self.frame_head(latent).view(-1, self.num_cameras, self.image_channels, s, s))

    def frame_targets(self, frames: torch.Tensor) -> torch.Tensor:
        """Clean frames (..., C, H, W) reduced to the frame head's resolution."""
        s = self.config.frame_prediction_size
        lead = frames.shape[:-3]
        flat = frames.reshape(-1, *frames.shape[-3:])
        height, width = flat.shape[-2:]
        if height % s == 0 and width % s == 0:  # the same means, without adaptive pooling's overhead
            pooled = F.avg_pool2d(flat, (height // s, width // s))
        else:
            pooled = F.adaptive_avg_pool2d(flat, s)
        return pooled.view(*lead, *pooled.shape[-3:])

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
