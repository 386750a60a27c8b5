"""The stateful real-time runner: one call per policy tick.

`reset()` at the start of an episode; then each `step()` takes the newest
frames (with the noise level frame health gave each), the proprioception and
the actions executed since the last tick, absorbs them into the latent, and
denoises the next `horizon` tokens along a scheduling matrix. It returns an
action chunk stamped from the observation time.

Per-tick cost is bounded: one token absorbed (one image encoding per usable
camera, one recurrent step) plus, per denoising row, one recurrent step and the
heads for each of the `horizon` future tokens. Nothing grows with the episode.
With `carry=True` the partly denoised future tokens are kept between ticks
(rolling pyramid), so a tick only pays for the rows that take the nearest
token from where the previous tick left it down to clean.

Run it with one intra-op thread (`torch.set_num_threads(1)`): at batch size 1 the
operations are too small to split, and a second thread only adds OpenMP barriers
that stall whenever another process takes a core (see `make bench-latency`).

At batch size 1 a tick costs mostly per-operation overhead, not arithmetic, so the
runner evaluates the network through a fast path (`_FastPath`) on the model's own
weights: what repeats every tick is computed once (level embeddings, the "not observed
yet" observation of future tokens, DDIM coefficients, the schedule's row targets), the
action encoder's last linear map is folded into the fuse layer, a row's action
encodings and action heads run batched over the horizon (only the recurrence is
sequential), and noise is drawn only where it is used. It is checked against the
model's own methods when built and falls back to them if the model differs
(`fast=False` forces the reference path).
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from policy.config_io import documented
from policy.model import DFPolicyModel
from policy.normalizer import Normalizer, images_to_unit_range, unit_range_to_images
from policy.schedules import SCHEDULE_KINDS, ScheduleKind, next_row_targets, scheduling_matrix


@dataclass(frozen=True)
class RunnerConfig:
    schedule: ScheduleKind = documented(
        "pyramid",
        "scheduling matrix: autoregressive, pyramid (far future noisier) or full_sequence",
        choices=SCHEDULE_KINDS,
    )
    horizon: int = documented(2, "tokens denoised per tick (the next one and how many after it)", low=1)
    steps: int = documented(8, "denoising rows per token (DDIM steps)", low=1)
    uncertainty_scale: float = documented(2.0, "pyramid: how much noisier each further token stays", low=0.0)
    carry: bool = documented(True, "keep the partly denoised future tokens from tick to tick (rolling pyramid)")
    seed: int = documented(0, "seed of the runner's noise (reset() may set another per episode)")

    def __post_init__(self) -> None:
        # Building the matrix validates every field with a message naming it.
        scheduling_matrix(self.schedule, self.horizon, self.steps, 1000, self.uncertainty_scale)


@dataclass
class Observation:
    """What the robot delivered at `stamp` (seconds, the observation time).

    frames: camera name -> HxWxC uint8 (any size; resized to the spec), or None
    when the camera delivered nothing. frame_levels: camera name -> noise level
    from frame health (0 = trust fully, K = unusable); cameras not listed are
    trusted. executed_actions: (actions_per_token, d) in physical units, the
    commands executed since the last tick; None means "what the last tick
    returned", and on the first tick of an episode "unknown".
    """

    stamp: float
    frames: Mapping[str, np.ndarray | None]
    frame_levels: Mapping[str, int] = field(default_factory=dict)
    proprio: np.ndarray | None = None
    proprio_level: int = 0
    executed_actions: np.ndarray | None = None


@dataclass
class ActionChunk:
    """Actions for the next `horizon` tokens, in physical units.

    The first `clean_actions` rows are fully denoised (the next token); later rows
    are the current estimate of further tokens, usable if the next tick is late.
    `stamps[i]` is the time at which action i should be reached.
    """

    stamps: np.ndarray
    actions: np.ndarray
    clean_actions: int
    predicted_frames: dict[str, np.ndarray]
    frame_levels: dict[str, int]
    network_evaluations: int


class PolicyRunner:
    def __init__(
        self,
        model: DFPolicyModel,
        normalizer: Normalizer,
        config: RunnerConfig | None = None,
        device: str | torch.device = "cpu",
        *,
        fast: bool = True,
    ) -> None:
        self.model = model.to(device).eval()
        self.normalizer = normalizer
        self.config = config or RunnerConfig()
        self.device = torch.device(device)
        self.spec = model.spec
        self._cameras = {camera.name: camera for camera in self.spec.cameras}
        self.K = model.config.num_levels
        self.matrix = scheduling_matrix(
            self.config.schedule, self.config.horizon, self.config.steps, self.K, self.config.uncertainty_scale
        )
        # Teacher forcing never saw a noisy context in training, so it can only
        # take a delivered frame as truth: that is the baseline's defining weakness.
        self.trusts_every_frame = model.config.context == "teacher_forcing"
        self._generator = torch.Generator(device="cpu")
        self._fuser: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._level_parts: dict[int, torch.Tensor] = {}
        self._targets: dict[tuple[int, ...], list[np.ndarray]] = {}
        # Built at the first tick (weights loaded after construction still count), None
        # until then; False when not wanted or the model does not match it.
        self._fast: _FastPath | bool | None = None if fast else False
        self._signal = self.model.schedule.signal.tolist()
        self._sigma = self.model.schedule.sigma.tolist()
        self.reset()

    # -- lifecycle -------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Start an episode: the latent returns to the learned z_0."""
        self._generator.manual_seed(self.config.seed if seed is None else seed)
        self._latent = self.model.start_latent(1).detach().to(self.device)
        self._window: deque[torch.Tensor] = deque(maxlen=self.model.config.memory_window)
        self._future: torch.Tensor | None = None  # (H, A*d) noisy normalised actions
        self._future_levels: np.ndarray | None = None
        self._last_clean: torch.Tensor | None = None  # (A*d,) what the last tick returned
        self._ticks = 0

    @property
    def ticks(self) -> int:
        return self._ticks

    @property
    def uses_fast_path(self) -> bool:
        """Whether ticks run through the fast path (known after the first tick)."""
        return isinstance(self._fast, _FastPath)

    # -- the tick --------------------------------------------------------------------
    @torch.inference_mode()
    def step(self, observation: Observation) -> ActionChunk:
        if self._fast is None:
            self._fast = _FastPath.build(self) or False
        fast = self._fast if isinstance(self._fast, _FastPath) else None
        evaluations = 0
        levels = self._frame_levels(observation)
        token = self._observed_token(observation, levels, fast)
        if self.model.config.memory == "recurrent":
            self._latent = self.model.transition(self._latent, token)
        else:
            self._window.append(token)
            latent = self.model.start_latent(1)
            for past in self._window:
                latent = self.model.transition(latent, past)
                evaluations += 1
            self._latent = latent
        evaluations += 1

        future, future_levels = self._future_tokens()
        targets = self._row_targets(future_levels)
        x0 = future
        last_frames: torch.Tensor | None = None
        for row, target in enumerate(targets):
            want_frames = row == len(targets) - 1
            if fast is not None:
                estimates, last_frames = fast.denoise_row(self._latent, future, future_levels, want_frames)
                x0 = estimates
                future = fast.ddim_step(future, estimates, future_levels, target)
            else:
                estimates, last_frames = self._denoise_row(self._latent, future, future_levels, want_frames)
                x0 = estimates
                future = self.model.schedule.ddim_step(
                    future, estimates, torch.as_tensor(future_levels), torch.as_tensor(target)
                )
            evaluations += len(future_levels)
            future_levels = target
        if last_frames is None:  # every row skipped: the nearest token was already clean
            row = fast.denoise_row if fast is not None else self._denoise_row
            x0, last_frames = row(self._latent, future, future_levels, True)
            evaluations += len(future_levels)
        x0[0] = future[0]
        self._future, self._future_levels = future, future_levels
        self._last_clean = future[0].clone()
        self._ticks += 1
        return self._chunk(observation.stamp, x0, last_frames, levels, evaluations)

    # -- pieces ----------------------------------------------------------------------
    def _frame_levels(self, observation: Observation) -> dict[str, int]:
        levels: dict[str, int] = {}
        unknown_names = set(observation.frame_levels) - set(self.spec.camera_names)
        if unknown_names:
            raise ValueError(
                f"frame_levels name cameras {sorted(unknown_names)} the policy does not have; "
                f"its cameras are {list(self.spec.camera_names)}"
            )
        for name in self.spec.camera_names:
            frame = observation.frames.get(name)
            if frame is None:
                levels[name] = self.K
                continue
            level = int(observation.frame_levels.get(name, 0))
            if not 0 <= level <= self.K:
                raise ValueError(f"camera {name!r}: noise level {level} outside 0..{self.K}")
            levels[name] = 0 if (self.trusts_every_frame and level < self.K) else level
        return levels

    def _row_targets(self, levels: np.ndarray) -> list[np.ndarray]:
        """next_row_targets, remembered: a carried tick starts from the same levels every time."""
        key = tuple(int(level) for level in levels)
        targets = self._targets.get(key)
        if targets is None:
            targets = next_row_targets(self.matrix, levels)
            if len(self._targets) < 1024:
                self._targets[key] = targets
        return targets

    def _prepare_frame(self, name: str, frame: np.ndarray) -> torch.Tensor:
        """Crop, resize and convert exactly as the training data was (CameraSpec.prepare)."""
        camera = self._cameras[name]
        return images_to_unit_range(np.ascontiguousarray(camera.prepare(frame)))

    def _noised(self, x0: torch.Tensor, level: int) -> torch.Tensor:
        """q(x_k | x_0) for one sub-token. Noise is drawn only where it is used: at level 0
        the sub-token is exactly x0, and at level K its gate is zero (the value is unused)."""
        if level <= 0 or level >= self.K:
            return x0
        noise = torch.randn(x0.shape, generator=self._generator)
        return self._signal[level] * x0 + self._sigma[level] * noise

    def _observed_token(
        self, observation: Observation, levels: dict[str, int], fast: _FastPath | None = None
    ) -> torch.Tensor:
        spec = self.spec
        frame_levels = [levels[n] for n in spec.camera_names]
        frames: dict[int, torch.Tensor] = {}  # camera index -> noisy frame (C, H, W), usable cameras only
        for i, name in enumerate(spec.camera_names):
            frame = observation.frames.get(name)
            if frame is not None and frame_levels[i] < self.K:
                frames[i] = self._noised(self._prepare_frame(name, frame), frame_levels[i]).to(self.device)

        proprio_level = observation.proprio_level if observation.proprio is not None else self.K
        proprio = torch.zeros(1, spec.proprio_dim)
        if observation.proprio is not None:
            values = np.asarray(observation.proprio, dtype=np.float64).reshape(-1)
            if values.shape != (spec.proprio_dim,):
                raise ValueError(f"proprio has {values.shape[0]} values, the policy expects {spec.proprio_dim}")
            if not np.all(np.isfinite(values)):
                proprio_level = self.K  # a NaN state reading is no reading
            else:
                proprio = torch.from_numpy(self.normalizer.normalize_proprio(values))[None]
        proprio = self._noised(proprio, proprio_level).to(self.device)

        action_level = 0
        if observation.executed_actions is not None:
            executed = np.asarray(observation.executed_actions, dtype=np.float64)
            expected = (spec.actions_per_token, spec.action.dim)
            if executed.shape != expected:
                raise ValueError(f"executed_actions has shape {executed.shape}, expected {expected}")
            actions = torch.from_numpy(self.normalizer.normalize_actions(executed)).reshape(1, -1)
        elif self._last_clean is not None:
            actions = self._last_clean[None]
        else:
            actions = torch.randn(1, self.model.action_size, generator=self._generator)
            action_level = self.K  # nothing was executed before the episode started
        actions = actions.to(self.device)
        if fast is not None:
            return fast.embed_observed(frames, frame_levels, proprio, proprio_level, actions, action_level)
        cam = spec.cameras[0]
        frames_tensor = torch.zeros(1, len(spec.cameras), cam.channels, cam.height, cam.width, device=self.device)
        for i, frame in frames.items():
            frames_tensor[0, i] = frame
        return self.model.embed_token(
            frames_tensor,
            torch.tensor([frame_levels], device=self.device),
            proprio,
            torch.tensor([proprio_level], device=self.device),
            actions,
            torch.tensor([action_level], device=self.device),
        )

    def _future_tokens(self) -> tuple[torch.Tensor, np.ndarray]:
        H = self.config.horizon
        if not self.config.carry or self._future is None:
            fresh = torch.randn(H, self.model.action_size, generator=self._generator).to(self.device)
            return fresh, np.full(H, self.K, dtype=np.int64)
        # The nearest token was just absorbed as executed; the rest move one step closer.
        fresh = torch.randn(1, self.model.action_size, generator=self._generator).to(self.device)
        future = torch.cat([self._future[1:], fresh])
        levels = np.concatenate([self._future_levels[1:], [self.K]]).astype(np.int64)
        return future, levels

    def _future_fuser(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Token embedding for future tokens, whose observation is "not seen yet": every
        gate is zero, so that part does not depend on any frame and is computed once.
        (Derived quantities are cached: build a new runner after changing weights.)"""
        if self._fuser is None:
            self._fuser = self.model.fuser_for_fixed_observation(_unknown_observation(self))
        return self._fuser

    def _action_level_part(self, level: int) -> torch.Tensor:
        """Level embeddings are fixed once the model is loaded; a tick reuses them."""
        part = self._level_parts.get(level)
        if part is None:
            part = self.model.action_level_part(torch.tensor([level], device=self.device))
            self._level_parts[level] = part
        return part

    def _denoise_row(
        self, latent: torch.Tensor, future: torch.Tensor, levels: np.ndarray, want_frames: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One pass along the horizon from `latent` (the reference path, on the model's own
        methods): x0 estimates (H, A*d) and, when asked, the nearest token's predicted
        frames (the model's guess of the next observation)."""
        fuse = self._future_fuser()
        estimates = []
        first_frames = None
        kind = self.model.config.prediction
        for h in range(future.shape[0]):
            level = int(levels[h])
            noisy = future[h : h + 1].to(self.device)
            action = self.model.action_part(noisy, level_part=self._action_level_part(level))
            latent = self.model.transition(latent, fuse(action))
            output = self.model.action_head(latent)
            estimate = self.model.schedule.to_x0(kind, output, noisy, torch.tensor([level]))
            estimates.append(estimate.clamp(-1.0, 1.0))
            if h == 0 and want_frames:
                first_frames = self.model.predict_frames(latent)[0]
        return torch.cat(estimates), first_frames

    def _chunk(
        self, stamp: float, x0: torch.Tensor, frames: torch.Tensor, levels: dict[str, int], evaluations: int
    ) -> ActionChunk:
        spec = self.spec
        A, d = spec.actions_per_token, spec.action.dim
        normalised = x0.cpu().reshape(-1, A, d).reshape(-1, d).numpy()
        actions = self.normalizer.denormalize_actions(normalised)
        # Token t+1's actions are those executed between observation t and t+1:
        # action j is due j action periods after the observation.
        stamps = stamp + np.arange(actions.shape[0]) * spec.action_period_s
        predicted = unit_range_to_images(frames)
        return ActionChunk(
            stamps=stamps,
            actions=actions,
            clean_actions=A,
            predicted_frames={name: predicted[i] for i, name in enumerate(spec.camera_names)},
            frame_levels=levels,
            network_evaluations=evaluations,
        )


def _unknown_observation(runner: PolicyRunner) -> list[torch.Tensor]:
    """The observation parts of a token not observed yet: every camera and the
    proprioception at level K."""
    spec, device, K = runner.spec, runner.device, runner.K
    cam = spec.cameras[0]
    return runner.model.observation_parts(
        torch.zeros(1, len(spec.cameras), cam.channels, cam.height, cam.width, device=device),
        torch.full((1, len(spec.cameras)), K, device=device),
        torch.zeros(1, spec.proprio_dim, device=device),
        torch.full((1,), K, device=device),
    )


def _mlp_layers(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of a Linear, SiLU, Linear, ... Linear stack; TypeError otherwise."""
    if not isinstance(module, nn.Sequential) or len(module) % 2 == 0:
        raise TypeError(f"expected a Linear/SiLU stack, got {type(module).__name__}")
    layers = []
    for i, layer in enumerate(module):
        if i % 2 == 0 and isinstance(layer, nn.Linear) and layer.bias is not None:
            layers.append((layer.weight, layer.bias))
        elif i % 2 == 1 and isinstance(layer, nn.SiLU):
            continue
        else:
            raise TypeError(f"unexpected layer {layer!r} in a Linear/SiLU stack")
    return layers


class _FastPath:
    """The network evaluations of a tick, on the model's own weights, with what repeats
    from tick to tick computed once.

    Future token (a row of the denoising schedule): its observation is "not seen yet",
    so the fuse layer's observation block is a constant; with the action level's
    embedding and the action encoder's last bias it becomes one bias per level, and the
    action encoder's last linear map is folded into the fuse layer's action block:
        e_h = SiLU(LN(W_fa W_3 SiLU(W_2 SiLU(W_1 x_h)) + bias(k_h)))
    The encodings of all H tokens of a row run as one batch, then the H recurrent steps
    (the only sequential part), then the action head as one batch over the H latents.
    Observed token: level embeddings (with the part embedding) are cached per level;
    only usable cameras are encoded (a camera at level K has gate zero).
    DDIM: x_next = a * x0 + b * x_k with (a, b) per (level, next level) pair, cached.
    """

    def __init__(self, runner: PolicyRunner) -> None:
        model = runner.model
        self.model, self.K, self.device = model, runner.K, runner.device
        self.kind = model.config.prediction
        self.encoder = _mlp_layers(model.action_encoder)
        self.head = _mlp_layers(model.action_head)
        if len(self.encoder) < 2:
            raise TypeError("the action encoder needs at least two linear layers")
        fuse = model.fuse
        if not (
            isinstance(fuse, nn.Sequential)
            and len(fuse) == 3
            and isinstance(fuse[0], nn.Linear)
            and isinstance(fuse[1], nn.LayerNorm)
            and isinstance(fuse[2], nn.SiLU)
        ):
            raise TypeError("expected fuse = Linear, LayerNorm, SiLU")
        if not isinstance(model.cell, nn.GRUCell):
            raise TypeError("expected a GRUCell recurrence")
        linear, norm = fuse[0], fuse[1]
        self.fuse_weight, self.fuse_bias = linear.weight, linear.bias
        self.norm = (tuple(norm.normalized_shape), norm.weight, norm.bias, norm.eps)
        cell = model.cell
        self.gru = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)

        # Future tokens: fold the constant observation and the encoder's last layer.
        observation = torch.cat(_unknown_observation(runner), dim=-1)
        width = observation.shape[-1]
        self.action_weight = linear.weight[:, width:]
        self.constant = F.linear(observation, linear.weight[:, :width], linear.bias)[0]
        self.encoder_last_weight, self.last_bias = self.encoder[-1]
        self.encoder = self.encoder[:-1]
        folded = self.action_weight.double() @ self.encoder_last_weight.double()
        self.folded_t = folded.to(self.action_weight.dtype).t()  # (hidden, E), for addmm
        self.num_parts = model.num_cameras + 2
        self._parts: dict[tuple[int, int], torch.Tensor] = {}  # (sub-token, level) -> (1, E)
        self._biases: dict[int, torch.Tensor] = {}  # future-token bias per level, (E,)
        self._rows: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = {}
        self._ddim: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}
        self.signal = model.schedule.signal.tolist()
        self.sigma = model.schedule.sigma.tolist()

    @classmethod
    def build(cls, runner: PolicyRunner) -> _FastPath | None:
        """The fast path for this runner's model, or None (with a warning) when the model
        is not built the way it assumes or its results differ from the model's own."""
        try:
            fast = cls(runner)
            error = fast.check(runner)
        except (TypeError, ValueError, AttributeError, IndexError, RuntimeError) as problem:
            error = f"{type(problem).__name__}: {problem}"
        if error is None:
            return fast
        warnings.warn(f"PolicyRunner: fast path unavailable ({error}); using the model's own methods", stacklevel=3)
        return None

    # -- cached constants -------------------------------------------------------------
    def _part(self, index: int, level: int) -> torch.Tensor:
        """level_embedding(level) + part_embedding[index], the level-only part of a sub-token."""
        key = (index, level)
        part = self._parts.get(key)
        if part is None:
            model = self.model
            part = model.level_embedding(torch.tensor([level], device=self.device)) + model.part_embedding[index]
            if len(self._parts) > 8192:
                self._parts.clear()
            self._parts[key] = part
        return part

    def _row(self, levels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """For a row's levels: the fused biases (H, E) and, for v-prediction, the
        to-x0 coefficients (H, 1)."""
        key = tuple(int(level) for level in levels)
        row = self._rows.get(key)
        if row is None:
            biases = []
            for level in key:
                bias = self._biases.get(level)
                if bias is None:
                    action_bias = self.last_bias + self._part(self.num_parts - 1, level)[0]
                    bias = self.constant + F.linear(action_bias, self.action_weight)
                    self._biases[level] = bias
                biases.append(bias)
            signal = sigma = None
            if self.kind == "v":
                signal = torch.tensor([[self.signal[k]] for k in key], device=self.device)
                sigma = torch.tensor([[self.sigma[k]] for k in key], device=self.device)
            row = (torch.stack(biases), signal, sigma)
            if len(self._rows) > 1024:
                self._rows.clear()
            self._rows[key] = row
        return row

    # -- evaluations -----------------------------------------------------------------
    def embed_observed(
        self,
        frames: Mapping[int, torch.Tensor],
        frame_levels: list[int],
        proprio: torch.Tensor,
        proprio_level: int,
        actions: torch.Tensor,
        action_level: int,
    ) -> torch.Tensor:
        """model.embed_token for one observed token; `frames` holds the usable cameras'
        noisy frames (C, H, W) by index, the others are at level K."""
        model = self.model
        encoded: dict[int, torch.Tensor] = {}
        if frames:
            order = sorted(frames)
            features = model.image_encoder(torch.stack([frames[i] for i in order]))
            encoded = {i: features[j] for j, i in enumerate(order)}
        parts = []
        for i, level in enumerate(frame_levels):
            part = self._part(i, level)
            if i in encoded:
                part = part + self.signal[level] * encoded[i]
            parts.append(part)
        proprio_part = self._part(model.num_cameras, proprio_level)
        if proprio_level < self.K:
            if proprio.shape[-1] == 0:
                proprio = proprio.new_zeros(proprio.shape[0], 1)
            proprio_part = self.signal[proprio_level] * model.proprio_encoder(proprio) + proprio_part
        parts.append(proprio_part)
        hidden = actions
        for weight, bias in self.encoder:
            hidden = F.silu(F.linear(hidden, weight, bias))
        action_part = F.linear(hidden, self.encoder_last_weight, self.last_bias) + self._part(
            self.num_parts - 1, action_level
        )
        parts.append(action_part)
        shape, norm_weight, norm_bias, eps = self.norm
        fused = F.linear(torch.cat(parts, dim=-1), self.fuse_weight, self.fuse_bias)
        return F.silu(F.layer_norm(fused, shape, norm_weight, norm_bias, eps))

    def denoise_row(
        self, latent: torch.Tensor, future: torch.Tensor, levels: np.ndarray, want_frames: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """PolicyRunner._denoise_row: x0 estimates (H, A*d), clamped to [-1, 1], and the
        nearest token's predicted frames when asked."""
        biases, signal, sigma = self._row(levels)
        hidden = future
        for weight, bias in self.encoder:
            hidden = F.silu(F.linear(hidden, weight, bias))
        shape, norm_weight, norm_bias, eps = self.norm
        embedded = F.silu(F.layer_norm(torch.addmm(biases, hidden, self.folded_t), shape, norm_weight, norm_bias, eps))
        latents = []
        for h in range(future.shape[0]):
            latent = torch.gru_cell(embedded[h : h + 1], latent, *self.gru)
            latents.append(latent)
        output = torch.cat(latents) if len(latents) > 1 else latents[0]
        for j, (weight, bias) in enumerate(self.head):
            output = F.linear(output, weight, bias)
            if j < len(self.head) - 1:
                output = F.silu(output)
        if self.kind == "v":
            output = signal * future - sigma * output
        first_frames = self.model.predict_frames(latents[0])[0] if want_frames else None
        return output.clamp_(-1.0, 1.0), first_frames

    def ddim_step(
        self, x_noisy: torch.Tensor, x0_estimate: torch.Tensor, levels: np.ndarray, next_levels: np.ndarray
    ) -> torch.Tensor:
        """NoiseSchedule.ddim_step for an estimate already clamped to [-1, 1], with the
        coefficients of each (level, next level) pair computed once:
        x_next = signal' x0 + sigma' (x - signal x0) / sigma = a x0 + b x."""
        key = (tuple(int(k) for k in levels), tuple(int(k) for k in next_levels))
        coefficients = self._ddim.get(key)
        if coefficients is None:
            a, b = [], []
            for level, target in zip(*key, strict=True):
                if target > level:
                    raise ValueError("a DDIM step cannot add noise: next_levels must be <= levels")
                if target == level:
                    a.append(0.0)
                    b.append(1.0)
                else:
                    ratio = self.sigma[target] / max(self.sigma[level], 1e-8)
                    a.append(self.signal[target] - ratio * self.signal[level])
                    b.append(ratio)
            coefficients = (
                torch.tensor(a, device=self.device)[:, None],
                torch.tensor(b, device=self.device)[:, None],
            )
            if len(self._ddim) > 1024:
                self._ddim.clear()
            self._ddim[key] = coefficients
        a, b = coefficients
        return torch.addcmul(b * x_noisy, a, x0_estimate)

    # -- the check -------------------------------------------------------------------
    def check(self, runner: PolicyRunner, tolerance: float = 1e-4) -> str | None:
        """None when the fast path reproduces the model's own methods on random inputs
        (without touching the runner's generator), else what differs."""
        model, K = self.model, self.K
        generator = torch.Generator().manual_seed(1234)
        spec = runner.spec
        latent = torch.randn(1, model.config.latent_dim, generator=generator).to(self.device)
        future = torch.rand(3, model.action_size, generator=generator).mul(2).sub(1).to(self.device)
        levels = np.array([K // 2, K, K], dtype=np.int64)
        targets = np.array([K // 4, K // 2, K], dtype=np.int64)  # (the last column stays)
        fast_x0, fast_frames = self.denoise_row(latent, future, levels, True)
        slow_x0, slow_frames = runner._denoise_row(latent, future, levels, True)
        worst = {
            "row estimates": (fast_x0 - slow_x0).abs().max(),
            "row frames": (fast_frames - slow_frames).abs().max(),
            "ddim step": (
                self.ddim_step(future, slow_x0, levels, targets)
                - model.schedule.ddim_step(future, slow_x0, torch.as_tensor(levels), torch.as_tensor(targets))
            )
            .abs()
            .max(),
        }
        cam = spec.cameras[0]
        frames = torch.rand(len(spec.cameras), cam.channels, cam.height, cam.width, generator=generator).to(self.device)
        frames = frames.mul(2).sub(1)
        proprio = torch.randn(1, spec.proprio_dim, generator=generator).to(self.device)
        actions = torch.randn(1, model.action_size, generator=generator).to(self.device)
        cases = [([0] * len(spec.cameras), 0, 0), ([K // 3] + [K] * (len(spec.cameras) - 1), K, K)]
        for frame_levels, proprio_level, action_level in cases:
            usable = {i: frames[i] for i, level in enumerate(frame_levels) if level < K}
            fast = self.embed_observed(usable, frame_levels, proprio, proprio_level, actions, action_level)
            slow = model.embed_token(
                frames[None],
                torch.tensor([frame_levels], device=self.device),
                proprio,
                torch.tensor([proprio_level], device=self.device),
                actions,
                torch.tensor([action_level], device=self.device),
            )
            worst[f"observed token at levels {frame_levels}"] = (fast - slow).abs().max()
        for name, value in worst.items():
            if not float(value) <= tolerance:
                return f"{name} differ by {float(value):.3g}"
        return None
