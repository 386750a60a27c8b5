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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from policy.imaging import resize_area, to_channels
from policy.model import DFPolicyModel
from policy.normalizer import Normalizer, images_to_unit_range, unit_range_to_images
from policy.schedules import ScheduleKind, next_row_targets, scheduling_matrix


@dataclass(frozen=True)
class RunnerConfig:
    schedule: ScheduleKind = "pyramid"
    horizon: int = 2
    steps: int = 8
    uncertainty_scale: float = 2.0
    carry: bool = True
    seed: int = 0

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
    ) -> None:
        self.model = model.to(device).eval()
        self.normalizer = normalizer
        self.config = config or RunnerConfig()
        self.device = torch.device(device)
        self.spec = model.spec
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

    # -- the tick --------------------------------------------------------------------
    @torch.inference_mode()
    def step(self, observation: Observation) -> ActionChunk:
        evaluations = 0
        levels = self._frame_levels(observation)
        token = self._observed_token(observation, levels)
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
        targets = next_row_targets(self.matrix, future_levels)
        x0 = future.clone()
        last_frames: torch.Tensor | None = None
        for row, target in enumerate(targets):
            estimates, last_frames = self._denoise_row(future, future_levels, want_frames=row == len(targets) - 1)
            evaluations += len(future_levels)
            x0 = estimates
            future = self.model.schedule.ddim_step(
                future, estimates, torch.as_tensor(future_levels), torch.as_tensor(target)
            )
            future_levels = target
        if last_frames is None:  # every row skipped: the nearest token was already clean
            x0, last_frames = self._denoise_row(future, future_levels, want_frames=True)
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

    def _prepare_frame(self, name: str, frame: np.ndarray) -> torch.Tensor:
        """Resize and convert exactly as the training data was (policy.imaging)."""
        camera = next(c for c in self.spec.cameras if c.name == name)
        array = np.asarray(frame)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (1, 3):
            raise ValueError(
                f"camera {name!r}: expected an HxWx1 or HxWx3 uint8 image, got shape {array.shape} {array.dtype}"
            )
        array = to_channels(resize_area(array, camera.height, camera.width), camera.channels)
        return images_to_unit_range(np.ascontiguousarray(array))

    def _observed_token(self, observation: Observation, levels: dict[str, int]) -> torch.Tensor:
        spec = self.spec
        frames = torch.zeros(
            1, len(spec.cameras), spec.cameras[0].channels, spec.cameras[0].height, spec.cameras[0].width
        )
        for i, name in enumerate(spec.camera_names):
            frame = observation.frames.get(name)
            if frame is not None and levels[name] < self.K:
                frames[0, i] = self._prepare_frame(name, frame)
        frame_levels = torch.tensor([[levels[n] for n in spec.camera_names]])
        noise = torch.randn(frames.shape, generator=self._generator)
        frames = self.model.schedule.add_noise(frames, frame_levels, noise)

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
        proprio_levels = torch.tensor([proprio_level])
        proprio = self.model.schedule.add_noise(
            proprio, proprio_levels, torch.randn(proprio.shape, generator=self._generator)
        )

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
        return self.model.embed_token(
            frames.to(self.device),
            frame_levels.to(self.device),
            proprio.to(self.device),
            proprio_levels.to(self.device),
            actions.to(self.device),
            torch.tensor([action_level], device=self.device),
        )

    def _future_tokens(self) -> tuple[torch.Tensor, np.ndarray]:
        H = self.config.horizon
        fresh = torch.randn(H, self.model.action_size, generator=self._generator)
        if not self.config.carry or self._future is None:
            return fresh, np.full(H, self.K, dtype=np.int64)
        # The nearest token was just absorbed as executed; the rest move one step closer.
        future = torch.cat([self._future[1:], fresh[:1]])
        levels = np.concatenate([self._future_levels[1:], [self.K]]).astype(np.int64)
        return future, levels

    def _future_fuser(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Token embedding for future tokens, whose observation is "not seen yet": every
        gate is zero, so that part does not depend on any frame and is computed once.
        (Derived quantities are cached: build a new runner after changing weights.)"""
        if self._fuser is None:
            spec, cam = self.spec, self.spec.cameras[0]
            unknown_observation = self.model.observation_parts(
                torch.zeros(1, len(spec.cameras), cam.channels, cam.height, cam.width, device=self.device),
                torch.full((1, len(spec.cameras)), self.K, device=self.device),
                torch.zeros(1, spec.proprio_dim, device=self.device),
                torch.full((1,), self.K, device=self.device),
            )
            self._fuser = self.model.fuser_for_fixed_observation(unknown_observation)
        return self._fuser

    def _action_level_part(self, level: int) -> torch.Tensor:
        """Level embeddings are fixed once the model is loaded; a tick reuses them."""
        part = self._level_parts.get(level)
        if part is None:
            part = self.model.action_level_part(torch.tensor([level], device=self.device))
            self._level_parts[level] = part
        return part

    def _denoise_row(
        self, future: torch.Tensor, levels: np.ndarray, want_frames: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One pass along the horizon: x0 estimates (H, A*d) and, when asked, the
        nearest token's predicted frames (the model's guess of the next observation)."""
        fuse = self._future_fuser()
        latent = self._latent
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
        return torch.cat(estimates).cpu(), None if first_frames is None else first_frames.cpu()

    def _chunk(
        self, stamp: float, x0: torch.Tensor, frames: torch.Tensor, levels: dict[str, int], evaluations: int
    ) -> ActionChunk:
        spec = self.spec
        A, d = spec.actions_per_token, spec.action.dim
        normalised = x0.reshape(-1, A, d).reshape(-1, d).numpy()
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
