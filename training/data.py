"""Training data: whole episodes (or long windows from their start) over the store's read
path, a per-rank sampler with an exact position, and augmentation on the device.

The latent memory has to see an episode from its beginning: a window cut from the
middle would teach the model to act without the first frames that decide the task.
So a training sequence always starts at token 0 and holds at most `max_tokens`
tokens; shorter episodes are padded and the padding is masked out of the loss.

Episodes are aligned once with `data_collection.reader.align_episode` (which reads
the low-resolution copies written at record time) and kept in memory as uint8:
a sample is a few numpy slices, so the reader outruns the trainer by far.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_collection.mapping import FeatureMapping
from data_collection.reader import align_episode
from data_collection.schema import StoreError
from data_collection.store import EpisodeStore
from policy.normalizer import Normalizer
from policy.objective import TokenBatch
from policy.spec import PolicySpec

from .config import TrainingConfigError

log = logging.getLogger("training.data")

# The last action chunk of an episode that ends at rest spreads over less than this in
# every normalised action dimension (5% of the demonstrated range; the scripted swap-fruit
# demonstrations, which end holding the rest pose, spread over about 0).
END_AT_REST_SPREAD = 0.1


@dataclass
class EpisodeArrays:
    """One aligned episode, in the trainer's layout (physical units, not normalised)."""

    episode_id: str
    frames: np.ndarray  # (T, N, C, H, W) uint8, channels first once at load time (cheap batches)
    proprio: np.ndarray  # (T, P) float32
    actions: np.ndarray  # (T, A*d) float32: the chunk executed between token t-1 and t
    valid: np.ndarray  # (T,) bool: every part of the token is real (token 0: its observation)

    def __len__(self) -> int:
        return int(self.valid.shape[0])


@dataclass(frozen=True)
class AugmentationConfig:
    shift_px: int = 0
    brightness: float = 0.0
    contrast: float = 0.0

    def __post_init__(self) -> None:
        if self.shift_px < 0 or self.brightness < 0 or not 0 <= self.contrast < 1:
            raise TrainingConfigError(
                f"augmentation needs shift_px >= 0, brightness >= 0 and 0 <= contrast < 1, got {self}"
            )

    @property
    def enabled(self) -> bool:
        return self.shift_px > 0 or self.brightness > 0 or self.contrast > 0


# -- opening and checking the store ------------------------------------------------------


def open_store(dataset: str | Path) -> EpisodeStore:
    path = Path(dataset)
    if not path.exists():
        raise TrainingConfigError(
            f"dataset {str(path)!r} does not exist; set task.dataset to an episode store "
            "(record one with `dfstack collect-sim`)"
        )
    try:
        store = EpisodeStore.open(path, durable=False)
    except StoreError as error:
        raise TrainingConfigError(f"dataset {str(path)!r} cannot be opened: {error}") from error
    if not store.episode_ids():
        raise TrainingConfigError(f"dataset {str(path)!r} holds no committed episode")
    return store


def check_dataset(store: EpisodeStore, spec: PolicySpec, mapping: FeatureMapping | None = None) -> None:
    """Refuse, before any training step, a spec the dataset cannot feed: cameras it lacks,
    streams (task.streams) it lacks or whose sizes do not make the embodiment's vectors."""
    mapping = mapping or FeatureMapping.for_spec(spec)
    try:
        mapping.check(spec)
    except ValueError as error:
        raise TrainingConfigError(f"{error}; the task's robot description names the embodiment") from error
    for episode_id in store.episode_ids():
        episode = store.episode(episode_id)
        streams = episode.stream_names
        cameras = [s for s in streams if episode.spec(s).is_image]
        missing_cameras = [c for c in spec.camera_names if c not in streams]
        if missing_cameras:
            raise TrainingConfigError(
                f"dataset {store.path} lacks camera(s) {missing_cameras} (episode {episode_id} has cameras "
                f"{cameras}); fix task.cameras"
            )
        problems = mapping.stream_problems({s: episode.spec(s) for s in streams})
        if problems:
            raise TrainingConfigError(
                f"dataset {store.path}: episode {episode_id} {'; '.join(problems)}. The task reads "
                f"{_streams_setting(mapping)}; the episode has streams {streams}"
                + _imported_streams_hint(episode.metadata, mapping)
            )
    first = store.episode(store.episode_ids()[0])
    for camera in spec.cameras:
        if not first.has_lowres(camera.name, (camera.height, camera.width)):
            log.warning(
                "the store has no %dx%d copy of camera %r: full frames are decoded and resized (slow). "
                "Pick task.image_size among the store's policy_image_sizes.",
                camera.height,
                camera.width,
                camera.name,
            )


def _streams_setting(mapping: FeatureMapping) -> str:
    return "task.streams: " + ", ".join(f"{role}={name}" for role, name in vars(mapping.streams).items())


def _imported_streams_hint(metadata: dict[str, Any], mapping: FeatureMapping) -> str:
    """The task.streams overrides that an imported episode's mapping file names, when they
    differ from what the task reads."""
    recorded = metadata.get("training_streams")
    if not isinstance(recorded, dict):
        return ""
    changes = [
        f"task.streams.{role}={name}"
        for role, name in recorded.items()
        if name and getattr(mapping.streams, role, None) != name
    ]
    if not changes:
        return ""
    return f". It was imported with the mapping's streams {recorded}: set {' '.join(changes)}"


def check_finite_samples(store: EpisodeStore, episode_id: str) -> None:
    """Refuse an episode whose vector streams hold NaN or infinity, naming the episode, the
    stream and the first bad sample. The recorder never writes such samples, so an importer
    or an edit of the store did; caught here, not as a traceback deep in fitting or a step."""
    episode = store.episode(episode_id)
    for stream in episode.stream_names:
        if episode.spec(stream).is_image:
            continue
        problem = episode.nonfinite_problem(stream)
        if problem:
            raise TrainingConfigError(
                f"dataset {store.path}: {problem}. Delete that episode (python -m data_collection.cli delete "
                f"{store.path} {episode_id}) or re-import it; `validate --quick` lists every such episode"
            )


def split_episodes(episode_ids: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic train/validation split by episode (never within an episode)."""
    if not 0.0 <= val_fraction < 1.0:
        raise TrainingConfigError(f"task.val_fraction must be in [0, 1), got {val_fraction}")
    ids = list(episode_ids)
    count = len(ids)
    held_out = round(count * val_fraction)
    if val_fraction > 0 and count >= 2:
        held_out = max(1, held_out)
    held_out = min(held_out, count - 1)
    order = np.random.default_rng([seed, 0xDA7A]).permutation(count)
    val = sorted(ids[i] for i in order[:held_out])
    train = sorted(ids[i] for i in order[held_out:])
    return train, val


def dataset_fingerprint(store: EpisodeStore, episode_ids: Sequence[str]) -> str:
    """A short hash naming exactly which episodes (and their commit times) were used."""
    digest = hashlib.sha256()
    for episode_id in episode_ids:
        metadata = store.metadata(episode_id)
        digest.update(f"{episode_id}:{metadata.get('stopped_at')}:{metadata.get('duration_s')}\n".encode())
    return digest.hexdigest()[:16]


def load_episodes(
    store: EpisodeStore,
    spec: PolicySpec,
    episode_ids: Sequence[str],
    tolerance_s: float | None = None,
    progress: bool = False,
    mapping: FeatureMapping | None = None,
) -> list[EpisodeArrays]:
    """Align each episode to the token grid once (read path: data_collection.reader),
    reading the streams `mapping` names (default: the embodiment's own)."""
    mapping = mapping or FeatureMapping.for_spec(spec)
    iterator: Any = episode_ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(episode_ids, desc="align episodes", unit="episode", leave=False)
    episodes = []
    for episode_id in iterator:
        check_finite_samples(store, episode_id)
        try:
            aligned = align_episode(store.episode(episode_id), spec, mapping, tolerance_s)
        except (KeyError, ValueError) as error:
            raise TrainingConfigError(f"episode {episode_id} cannot be aligned to the task: {error}") from error
        frames = np.stack([aligned.frames[name] for name in spec.camera_names], axis=1).transpose(0, 1, 4, 2, 3)
        frame_valid = np.stack([aligned.frame_valid[name] for name in spec.camera_names], axis=1).all(axis=1)
        valid = frame_valid & aligned.proprio_valid
        # Token 0's actions precede the episode: the objective never scores them.
        valid[1:] &= aligned.action_valid[1:].all(axis=1)
        T = len(aligned)
        episodes.append(
            EpisodeArrays(
                episode_id=episode_id,
                frames=np.ascontiguousarray(frames),
                proprio=aligned.proprio.astype(np.float32),
                actions=aligned.actions.reshape(T, -1).astype(np.float32),
                valid=valid,
            )
        )
    return episodes


def fit_normalizer(episodes: Sequence[EpisodeArrays], spec: PolicySpec, margin: float) -> Normalizer:
    """Min-max over the valid tokens of the training episodes (fitted once, stored in
    every checkpoint and in the resume state)."""
    d = spec.action.dim
    actions = [e.actions[1:][e.valid[1:]].reshape(-1, d) for e in episodes]
    proprio = [e.proprio[e.valid] for e in episodes]
    return Normalizer.fit(np.concatenate(actions), np.concatenate(proprio), margin=margin)


# -- sequences and batches ---------------------------------------------------------------


class SequenceDataset:
    """Episodes as fixed-length sequences from their start (padded, masked)."""

    def __init__(
        self,
        episodes: Sequence[EpisodeArrays],
        normalizer: Normalizer,
        max_tokens: int | None,
        hold_tokens_after_end: int = 0,
    ) -> None:
        if not episodes:
            raise TrainingConfigError("no episode to build sequences from")
        if hold_tokens_after_end < 0:
            raise TrainingConfigError(f"hold_tokens_after_end must be >= 0, got {hold_tokens_after_end}")
        self.hold_tokens = int(hold_tokens_after_end)
        longest = max(len(e) for e in episodes) + self.hold_tokens
        self.sequence_length = longest if max_tokens is None else min(int(max_tokens), longest)
        if self.sequence_length < 2:
            raise TrainingConfigError(f"sequences need at least 2 tokens, got {self.sequence_length}")
        self.episodes = list(episodes)
        action_dim = normalizer.action_low.shape[0]
        self.action_dim = int(action_dim)
        self._proprio = [normalizer.normalize_proprio(e.proprio) for e in episodes]
        self._actions = [
            normalizer.normalize_actions(e.actions.reshape(len(e), -1, action_dim)).reshape(len(e), -1)
            for e in episodes
        ]
        if self.hold_tokens:
            self._warn_about_episodes_that_end_moving()

    def _warn_about_episodes_that_end_moving(self) -> None:
        # A hold teaches "after the end, keep the last target". For a demonstration that
        # stops mid-motion that is a lesson to freeze wherever the operator let go, so say
        # which episodes do it. Moving = the last chunk's targets spread over more than
        # END_AT_REST_SPREAD of the normalised [-1, 1] range in some action dimension.
        moving = []
        for episode, actions in zip(self.episodes, self._actions, strict=True):
            if not episode.valid[-1]:
                continue
            last_chunk = actions[-1].reshape(-1, self.action_dim)
            if float((last_chunk.max(axis=0) - last_chunk.min(axis=0)).max()) > END_AT_REST_SPREAD:
                moving.append(episode.episode_id)
        if moving:
            log.warning(
                "%d of %d episodes end while the arm is still moving (e.g. %s), but task.hold_tokens_after_end=%d "
                "trains the policy to hold their last target after the end. Record demonstrations that end at "
                "rest, or set task.hold_tokens_after_end=0.",
                len(moving),
                len(self.episodes),
                ", ".join(moving[:3]),
                self.hold_tokens,
            )

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        episode = self.episodes[index]
        L = self.sequence_length
        real = min(L, len(episode))

        def padded(array: np.ndarray) -> np.ndarray:
            out = np.zeros((L, *array.shape[1:]), dtype=array.dtype)
            out[:real] = array[:real]
            return out

        sample = {
            "frames": padded(episode.frames),
            "proprio": padded(self._proprio[index]),
            "actions": padded(self._actions[index]),
            "valid": padded(episode.valid),
        }
        if self.hold_tokens and real == len(episode) and episode.valid[-1]:
            # The robot keeps running after a demonstration ends, so the policy must learn
            # that a finished task stays finished. Past its end the episode goes on as a
            # hold: the last observation repeated, every action of a chunk the last target.
            # This assumes demonstrations end at rest (the scripted ones hold for 3 s).
            # Only hold_tokens past the end: the rest stays padding, which the encoder skips,
            # so one long episode in the store does not make every sequence dearer.
            hold = slice(real, min(L, real + self.hold_tokens))
            last_chunk = self._actions[index][-1].reshape(-1, self.action_dim)
            sample["frames"][hold] = episode.frames[-1]
            sample["proprio"][hold] = self._proprio[index][-1]
            sample["actions"][hold] = np.tile(last_chunk[-1], last_chunk.shape[0])
            sample["valid"][hold] = True
        return sample

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        samples = [self[i] for i in indices]
        return {key: torch.from_numpy(np.stack([s[key] for s in samples])) for key in samples[0]}


class EpisodeSampler:
    """An endless stream of episode indices for one rank, with an exact position.

    Sample j of this rank comes from epoch j // per_rank: a permutation of all episodes
    drawn from (seed, epoch), of which rank r takes every world-th entry. The position
    (samples consumed) is all the state there is, so resuming is exact.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise TrainingConfigError(f"optim.batch_size must be >= 1, got {batch_size}")
        self.per_rank = num_items // world_size
        if self.per_rank < 1:
            raise TrainingConfigError(
                f"{num_items} training episode(s) cannot feed {world_size} processes; record more or use fewer"
            )
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.position = 0
        self._epoch = -1
        self._share = np.zeros(0, dtype=np.int64)

    def _index(self, sample: int) -> int:
        epoch, offset = divmod(sample, self.per_rank)
        if epoch != self._epoch:
            order = np.random.default_rng([self.seed, epoch, 0x5A3B]).permutation(self.num_items)
            self._share = order[self.rank :: self.world_size][: self.per_rank]
            self._epoch = epoch
        return int(self._share[offset])

    def next_batch(self) -> list[int]:
        indices = [self._index(self.position + i) for i in range(self.batch_size)]
        self.position += self.batch_size
        return indices

    @property
    def epoch(self) -> float:
        return self.position / self.per_rank

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position, "per_rank": self.per_rank, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["per_rank"]) != self.per_rank or int(state["world_size"]) != self.world_size:
            raise TrainingConfigError(
                f"the resumed run sampled {state['per_rank']} episodes per process on {state['world_size']} "
                f"process(es); this run has {self.per_rank} on {self.world_size}: same data and process count needed"
            )
        self.position = int(state["position"])


def _shift_uint8(frames: torch.Tensor, shift_px: int, generator: torch.Generator) -> torch.Tensor:
    """frames (B, T, N, C, H, W) uint8: each (sequence, camera) translated by up to
    `shift_px` pixels, edges replicated (index gathers, no padded copy)."""
    B, _, N, _, H, W = frames.shape
    offsets = torch.randint(-shift_px, shift_px + 1, (B, N, 2), generator=generator)
    rows_base = torch.arange(H, device=frames.device)
    cols_base = torch.arange(W, device=frames.device)
    out = torch.empty_like(frames)
    for b in range(B):
        for n in range(N):
            dy, dx = int(offsets[b, n, 0]), int(offsets[b, n, 1])
            rows = (rows_base + dy).clamp_(0, H - 1)
            cols = (cols_base + dx).clamp_(0, W - 1)
            out[b, :, n] = frames[b, :, n].index_select(2, rows).index_select(3, cols)
    return out


def frames_to_model_input(
    frames: torch.Tensor, augmentation: AugmentationConfig | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """uint8 (B, T, N, C, H, W) -> float (B, T, N, C, H, W) in [-1, 1], the same rule as
    policy.normalizer.images_to_unit_range, with augmentation fused into the scaling.

    Each (sequence, camera) gets one random shift and one brightness/contrast change
    for the whole sequence: a camera mount that moved a little, lighting that differs
    between sessions, not a flicker from frame to frame. Contrast scales around
    mid-grey (0 in [-1, 1] units)."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8, got {frames.dtype}")
    B, N = frames.shape[0], frames.shape[2]
    augment = augmentation is not None and augmentation.enabled
    if augment and generator is None:
        raise ValueError("augmentation needs a generator (for exact, reproducible runs)")
    if augment and augmentation.shift_px > 0:  # type: ignore[union-attr]
        frames = _shift_uint8(frames, augmentation.shift_px, generator)  # type: ignore[union-attr,arg-type]
    out = frames.to(torch.float32)
    if augment and (augmentation.brightness > 0 or augmentation.contrast > 0):  # type: ignore[union-attr]
        shape = (B, 1, N, 1, 1, 1)
        brightness = (torch.rand(shape, generator=generator) * 2 - 1) * augmentation.brightness  # type: ignore
        contrast = 1 + (torch.rand(shape, generator=generator) * 2 - 1) * augmentation.contrast  # type: ignore
        # (x / 127.5 - 1) * contrast + brightness, in two in-place passes.
        out.mul_((contrast / 127.5).to(out.device)).add_((brightness - contrast).to(out.device))
        return out.clamp_(-1.0, 1.0)
    return out.div_(127.5).sub_(1.0)


def to_token_batch(
    batch: dict[str, torch.Tensor],
    device: torch.device,
    augmentation: AugmentationConfig | None = None,
    generator: torch.Generator | None = None,
) -> TokenBatch:
    """Host batch (uint8 frames) -> TokenBatch on `device`, augmented when asked."""
    frames = frames_to_model_input(batch["frames"].to(device, non_blocking=True), augmentation, generator)
    return TokenBatch(
        frames=frames,
        proprio=batch["proprio"].to(device),
        actions=batch["actions"].to(device),
        valid=batch["valid"].to(device),
    )
