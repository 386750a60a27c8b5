"""The Diffusion Forcing training loss (DF Algorithm 1), for every model variant.

Every sub-token of every token gets its own noise level; the model rolls its
latent over the noisy sequence and is trained to predict each clean token from
the latent that has just absorbed it. Options add what the robot will meet:
bursts of consecutive unusable observations (an occlusion lasting seconds) and
a clean first token half of the time (an episode starts with a good view).

The first token's action part is "what was executed before the episode": it is
unknown, so it always sits at level K and carries no loss, in training and at
run time alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from policy.config_io import dataclass_from_dict
from policy.model import DFPolicyModel
from policy.noise import NoiseSchedule


@dataclass(frozen=True)
class ObjectiveConfig:
    """How noise levels are drawn during training.

    Observation levels mix three draws: clean (level 0, the usual camera frame),
    unknown (level K, an unusable frame) and uniform over 0..K (DF's own draw,
    which teaches the in-between). The defaults give the run-time cases their
    own weight; set observation_clean_prob = observation_unknown_prob = 0 for the
    paper's plain uniform draw.
    """

    observation_clean_prob: float = 0.3
    observation_unknown_prob: float = 0.2
    burst_prob: float = 0.3
    burst_min_tokens: int = 2
    burst_max_tokens: int = 8
    clean_first_prob: float = 0.5
    # A token whose observations are all unknown (every camera and the proprioception
    # at K): what the runner's future tokens are at run time, where the actions must
    # come from the latent alone. Without it, a token's own observation (taken after
    # its actions were executed) gives the actions away in training. 0.5 keeps the
    # synthetic memory task at 100% (DF) while closing that gap for the robot.
    future_token_prob: float = 0.5
    action_loss_weight: float = 1.0
    proprio_loss_weight: float = 0.5
    frame_loss_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in (
            "observation_clean_prob",
            "observation_unknown_prob",
            "burst_prob",
            "clean_first_prob",
            "future_token_prob",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.observation_clean_prob + self.observation_unknown_prob > 1.0:
            raise ValueError("observation_clean_prob + observation_unknown_prob must not exceed 1")
        if not 1 <= self.burst_min_tokens <= self.burst_max_tokens:
            raise ValueError(
                f"burst lengths must satisfy 1 <= min <= max, got {self.burst_min_tokens}..{self.burst_max_tokens}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectiveConfig:
        return dataclass_from_dict(cls, data, "objective config")


@dataclass
class TokenBatch:
    """A batch of token sequences, already normalised.

    frames (B, T, N, C, H, W) float in [-1, 1]; proprio (B, T, P); actions
    (B, T, A*d) where token t holds the actions executed between t-1 and t;
    valid (B, T) bool, False on padding after an episode's end.
    """

    frames: torch.Tensor
    proprio: torch.Tensor
    actions: torch.Tensor
    valid: torch.Tensor

    def __post_init__(self) -> None:
        b, t = self.valid.shape
        for name in ("frames", "proprio", "actions"):
            shape = getattr(self, name).shape
            if tuple(shape[:2]) != (b, t):
                raise ValueError(f"TokenBatch.{name} has leading shape {tuple(shape[:2])}, expected {(b, t)}")


@dataclass
class NoiseLevels:
    frames: torch.Tensor  # (B, T, N)
    proprio: torch.Tensor  # (B, T)
    actions: torch.Tensor  # (B, T)


def sample_levels(
    batch: TokenBatch, num_levels: int, config: ObjectiveConfig, generator: torch.Generator | None = None
) -> NoiseLevels:
    B, T, N = batch.frames.shape[:3]
    K = num_levels
    device = batch.frames.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.randint(0, K + 1, shape, generator=generator).to(device)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator).to(device)

    def observation_draw(*shape: int) -> torch.Tensor:
        levels = uniform(*shape)
        u = rand(*shape)
        levels = torch.where(u < config.observation_clean_prob, torch.zeros_like(levels), levels)
        unknown = (u >= config.observation_clean_prob) & (
            u < config.observation_clean_prob + config.observation_unknown_prob
        )
        return torch.where(unknown, torch.full_like(levels, K), levels)

    frame_levels = observation_draw(B, T, N)
    proprio_levels = observation_draw(B, T)
    action_levels = uniform(B, T)

    if config.future_token_prob > 0:
        future = rand(B, T) < config.future_token_prob
        frame_levels = torch.where(future[..., None], torch.full_like(frame_levels, K), frame_levels)
        proprio_levels = torch.where(future, torch.full_like(proprio_levels, K), proprio_levels)

    frame_levels = torch.where(_burst_mask(B, T, N, config, generator).to(device), K, frame_levels)

    clean_first = rand(B) < config.clean_first_prob
    frame_levels[:, 0] = torch.where(clean_first[:, None], torch.zeros_like(frame_levels[:, 0]), frame_levels[:, 0])
    proprio_levels[:, 0] = torch.where(clean_first, torch.zeros_like(proprio_levels[:, 0]), proprio_levels[:, 0])
    action_levels[:, 0] = K
    # Padding after an episode's end is unobserved: nothing to encode, and it comes after
    # every real token, so the real tokens' latents and losses are unchanged.
    padding = ~batch.valid.to(device)
    frame_levels = torch.where(padding[..., None], torch.full_like(frame_levels, K), frame_levels)
    return NoiseLevels(frame_levels, proprio_levels, action_levels)


def _burst_mask(
    batch_size: int, tokens: int, cameras: int, config: ObjectiveConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, T, N) True where an occlusion makes a camera unusable: with burst_prob per
    sequence, one camera (or all of them) for burst_min..max consecutive tokens."""
    mask = torch.zeros(batch_size, tokens, cameras, dtype=torch.bool)
    if config.burst_prob <= 0 or tokens <= 1:
        return mask
    for b in range(batch_size):
        if float(torch.rand(1, generator=generator)) >= config.burst_prob:
            continue
        length = int(torch.randint(config.burst_min_tokens, config.burst_max_tokens + 1, (1,), generator=generator))
        length = min(length, tokens)
        start = int(torch.randint(0, tokens - length + 1, (1,), generator=generator))
        camera = int(torch.randint(0, cameras + 1, (1,), generator=generator))  # `cameras` means all
        if camera == cameras:
            mask[b, start : start + length, :] = True
        else:
            mask[b, start : start + length, camera] = True
    return mask


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like `x`, drawn on the CPU generator (reproducible on any device)."""
    return torch.randn(x.shape, generator=generator).to(x.device, x.dtype)


def _noisy_frames(
    schedule: NoiseSchedule, frames: torch.Tensor, levels: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """frames (B, T, N, C, H, W) at their levels (B, T, N). Noise is drawn only for frames
    strictly between 0 and K: a frame at 0 is itself, and one at K is never encoded (its gate
    is exactly zero), so it is left as zeros. Drawing noise for every frame was ~10% of a
    training step on the CPU, and most frames sit at 0 or K."""
    K = schedule.num_levels
    noisy = torch.where((levels == 0)[(...,) + (None,) * 3], frames, torch.zeros((), dtype=frames.dtype))
    partial = (levels > 0) & (levels < K)
    if bool(partial.any()):
        index = partial.nonzero(as_tuple=True)
        clean = frames[index]
        noisy[index] = schedule.add_noise(clean, levels[index], _noise_like(clean, generator))
    return noisy


def _embed_sequence(
    model: DFPolicyModel,
    batch: TokenBatch,
    levels: NoiseLevels,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise every sub-token to its level and embed all tokens in one batched call.

    Returns (embeddings (B, T, E), noisy actions, action noise)."""
    B, T = batch.valid.shape
    schedule = model.schedule

    noisy_frames = _noisy_frames(schedule, batch.frames, levels.frames, generator)
    proprio_noise = _noise_like(batch.proprio, generator)
    action_noise = _noise_like(batch.actions, generator)
    noisy_proprio = schedule.add_noise(batch.proprio, levels.proprio, proprio_noise)
    noisy_actions = schedule.add_noise(batch.actions, levels.actions, action_noise)
    embeddings = model.embed_token(
        noisy_frames.flatten(0, 1),
        levels.frames.flatten(0, 1),
        noisy_proprio.flatten(0, 1),
        levels.proprio.flatten(0, 1),
        noisy_actions.flatten(0, 1),
        levels.actions.flatten(0, 1),
    ).view(B, T, -1)
    return embeddings, noisy_actions, action_noise


def roll_latents(model: DFPolicyModel, embeddings: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """Latents z_t (B, T, D) for every token, as the model's memory mode defines them.

    recurrent: z_t = f(z_{t-1}, e_t) from z_0.
    memoryless: z_t is rebuilt from z_0 over the last `memory_window` tokens and e_t.
    context (teacher forcing): embeddings of the clean sequence; z_t = f(zc_{t-1}, e_t)
    where zc is the recurrent latent over the clean context.
    """
    B, T, _ = embeddings.shape
    z0 = model.start_latent(B)
    if context is not None:
        clean_latents = []
        z = z0
        for t in range(T):
            clean_latents.append(z)  # the latent *before* token t, from clean tokens < t
            z = model.transition(z, context[:, t])
        previous = torch.stack(clean_latents, dim=1)
        return model.transition(previous.flatten(0, 1), embeddings.flatten(0, 1)).view(B, T, -1)
    if model.config.memory == "recurrent":
        latents = []
        z = z0
        for t in range(T):
            z = model.transition(z, embeddings[:, t])
            latents.append(z)
        return torch.stack(latents, dim=1)
    window = model.config.memory_window
    z = model.start_latent(B * T)
    for offset in range(window, -1, -1):
        # Token t - offset; before the episode start there is nothing to absorb.
        shifted = torch.roll(embeddings, shifts=offset, dims=1)
        exists = (torch.arange(T, device=embeddings.device) >= offset).repeat(B)
        stepped = model.transition(z, shifted.flatten(0, 1))
        z = torch.where(exists[:, None], stepped, z)
    return z.view(B, T, -1)


def diffusion_forcing_loss(
    model: DFPolicyModel,
    batch: TokenBatch,
    config: ObjectiveConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked DF loss and its parts (for logging)."""
    K = model.config.num_levels
    levels = sample_levels(batch, K, config, generator)
    context = None
    if model.config.context == "teacher_forcing":
        # Next-token diffusion: the context is the clean sequence (only the unknown
        # first action stays at K); noise is on the token being predicted alone.
        clean = NoiseLevels(
            torch.zeros_like(levels.frames), torch.zeros_like(levels.proprio), torch.zeros_like(levels.actions)
        )
        clean.actions[:, 0] = K
        context, _, _ = _embed_sequence(model, batch, clean, generator)
    embeddings, _, action_noise = _embed_sequence(model, batch, levels, generator)
    latents = roll_latents(model, embeddings, context)
    return _loss(model, batch, config, levels, latents, action_noise)


def _loss(
    model: DFPolicyModel,
    batch: TokenBatch,
    config: ObjectiveConfig,
    levels: NoiseLevels,
    latents: torch.Tensor,
    action_noise: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    B, T, _ = latents.shape
    prediction = model.predict(latents.flatten(0, 1))
    schedule = model.schedule
    kind = model.config.prediction

    valid = batch.valid.float()
    action_mask = valid.clone()
    action_mask[:, 0] = 0.0  # the action before the first observation is unknown

    def masked_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (per_token * mask).sum() / mask.sum().clamp_min(1.0)

    action_target = schedule.target(kind, batch.actions, action_noise, levels.actions)
    action_error = F.mse_loss(prediction.action.view(B, T, -1), action_target, reduction="none").mean(-1)
    action_loss = masked_mean(action_error, action_mask)

    # Proprioception and frames are never run through a sampler, so their heads
    # always predict the clean value, whatever the action prediction target is.
    proprio_loss = torch.zeros((), device=latents.device)
    if batch.proprio.shape[-1] > 0:
        proprio_error = F.mse_loss(prediction.proprio.view(B, T, -1), batch.proprio, reduction="none").mean(-1)
        proprio_loss = masked_mean(proprio_error, valid)

    frame_target = model.frame_targets(batch.frames)
    frame_error = F.mse_loss(prediction.frames.view_as(frame_target), frame_target, reduction="none")
    frame_loss = masked_mean(frame_error.flatten(2).mean(-1), valid)

    loss = (
        config.action_loss_weight * action_loss
        + config.proprio_loss_weight * proprio_loss
        + config.frame_loss_weight * frame_loss
    )
    metrics = {
        "loss": float(loss.detach()),
        "action_loss": float(action_loss.detach()),
        "proprio_loss": float(proprio_loss.detach()),
        "frame_loss": float(frame_loss.detach()),
    }
    return loss, metrics
