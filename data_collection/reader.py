"""The training read path: episodes aligned to the policy's token grid.

Token t sits at time t0 + t * token_period_s (t0: the first instant at which every
observation stream has delivered). For each token:

* frames[camera][t]: the newest frame at or before the token time (nearest-earlier,
  never a future frame: the robot cannot see the future either), resized to the spec's
  camera size; valid if it is at most `tolerance` old.
* proprio[t]: end-effector pose + gripper width, nearest-earlier, same rule.
* actions[t, j]: the commanded target in force in the middle of action slot j between
  token t-1 and token t, i.e. the newest command at or before
  t_{t-1} + (j + 0.5) * action_period, j = 0 .. actions_per_token - 1: the chunk
  *executed since the previous token*. Sampling mid-slot (not at a slot's edge, where a
  command may be stamped a hair before or after) makes the label immune to stamp
  jitter; it matches the runner, which issues action j at obs_time + j * action_period.

Everything missing is zero and masked; masks are what the loss must use. Cameras are
read from the policy-resolution copies written while recording (a 64x64 copy is ~1%
of the bytes of the 640x480 frame), so an episode aligns in milliseconds; without a
copy of the right size, full frames are decoded and resized (slow, warned once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy.imaging import to_channels
from policy.spec import CameraSpec, PolicySpec

from .mapping import FeatureMapping
from .store import Episode, EpisodeStore

log = logging.getLogger("data_collection.reader")


@dataclass
class AlignedEpisode:
    episode_id: str
    token_times: np.ndarray  # (T,) float64 seconds
    frames: dict[str, np.ndarray]  # camera -> (T, H, W, C) uint8
    frame_valid: dict[str, np.ndarray]  # camera -> (T,) bool
    frame_age_s: dict[str, np.ndarray]  # camera -> (T,) float32, age of the frame used (NaN: none)
    proprio: np.ndarray  # (T, P) float32
    proprio_valid: np.ndarray  # (T,) bool
    actions: np.ndarray  # (T, A, D) float32
    action_times: np.ndarray  # (T, A) float64
    action_valid: np.ndarray  # (T, A) bool
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.token_times.shape[0])


def nearest_earlier(stamps: np.ndarray, times: np.ndarray, tolerance_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Index of the newest sample at or before each time, and whether it is within the
    tolerance. Indices of invalid entries are 0 (safe to gather, then mask)."""
    index = np.searchsorted(stamps, times, side="right") - 1
    has = index >= 0
    safe = np.where(has, index, 0)
    if len(stamps) == 0:
        return np.zeros(times.shape, dtype=np.int64), np.zeros(times.shape, dtype=bool)
    age = times - stamps[safe]
    valid = has & (age <= tolerance_s + 1e-9)
    return safe, valid


def _tolerance(tolerance_s: float | dict[str, float] | None, episode: Episode, stream: str) -> float:
    if isinstance(tolerance_s, dict) and stream in tolerance_s:
        return float(tolerance_s[stream])
    if isinstance(tolerance_s, (int, float)):
        return float(tolerance_s)
    # Default: 2.5 nominal periods of the stream (one late or lost sample is tolerated),
    # and never less than 0.1 s (camera latency jitter).
    return max(0.1, 2.5 / float(episode.spec(stream).rate_hz))


def align_episode(
    episode: Episode,
    spec: PolicySpec,
    mapping: FeatureMapping | None = None,
    tolerance_s: float | dict[str, float] | None = None,
) -> AlignedEpisode:
    """Align one committed episode to the token grid of `spec` (see the module doc)."""
    mapping = mapping or FeatureMapping.for_spec(spec)
    mapping.check(spec)
    streams = mapping.streams
    cameras = spec.camera_names
    needed = [*cameras, *mapping.proprio_streams(), *mapping.action_streams()]
    missing = [s for s in needed if s not in episode.stream_names]
    if missing:
        raise KeyError(
            f"episode {episode.id} lacks streams {missing} needed by the policy spec; it has {episode.stream_names}"
        )
    stamps = {s: episode.stamps(s) for s in dict.fromkeys(needed)}
    observed = [*cameras, *mapping.proprio_streams()]
    if any(len(stamps[s]) == 0 for s in observed):
        empty = [s for s in observed if len(stamps[s]) == 0]
        raise ValueError(f"episode {episode.id}: streams {empty} have no samples; nothing to align")
    t0 = max(float(stamps[s][0]) for s in observed)
    t_end = max(float(stamps[s][-1]) for s in observed)
    period = spec.token_period_s
    count = int(np.floor((t_end - t0) / period + 1e-9)) + 1
    token_times = t0 + np.arange(count) * period

    frames: dict[str, np.ndarray] = {}
    frame_valid: dict[str, np.ndarray] = {}
    frame_age: dict[str, np.ndarray] = {}
    for camera in spec.cameras:
        index, valid = nearest_earlier(stamps[camera.name], token_times, _tolerance(tolerance_s, episode, camera.name))
        images = _camera_frames(episode, camera, index, valid)
        images[~valid] = 0
        frames[camera.name] = images
        frame_valid[camera.name] = valid
        age = (token_times - stamps[camera.name][index]).astype(np.float32)
        age[~valid] = np.nan
        frame_age[camera.name] = age

    pose_index, pose_valid = nearest_earlier(
        stamps[streams.state],
        token_times,
        _tolerance(tolerance_s, episode, streams.state),
    )
    grip_index, grip_valid = nearest_earlier(
        stamps[streams.gripper],
        token_times,
        _tolerance(tolerance_s, episode, streams.gripper),
    )
    proprio_valid = pose_valid & grip_valid
    proprio = mapping.proprio(
        episode.values(streams.state)[pose_index],
        episode.values(streams.gripper)[grip_index],
    )
    proprio[~proprio_valid] = 0

    per_token = spec.actions_per_token
    offsets = (np.arange(per_token) + 0.5 - per_token) * spec.action_period_s
    action_times = token_times[:, None] + offsets[None, :]
    flat_times = action_times.reshape(-1)
    command_index, action_valid = nearest_earlier(
        stamps[streams.command],
        flat_times,
        _tolerance(tolerance_s, episode, streams.command),
    )
    commands = episode.values(streams.command)[command_index]
    widths = None
    if streams.command_gripper:
        width_index, width_valid = nearest_earlier(
            stamps[streams.command_gripper],
            flat_times,
            _tolerance(tolerance_s, episode, streams.command_gripper),
        )
        widths = episode.values(streams.command_gripper)[width_index]
        action_valid &= width_valid
    actions = mapping.action(commands, widths)
    actions[~action_valid] = 0
    return AlignedEpisode(
        episode_id=episode.id,
        token_times=token_times,
        frames=frames,
        frame_valid=frame_valid,
        frame_age_s=frame_age,
        proprio=proprio,
        proprio_valid=proprio_valid,
        actions=actions.reshape(count, per_token, -1),
        action_times=action_times,
        action_valid=action_valid.reshape(count, per_token),
        metadata=episode.metadata,
    )


_warned_fallback: set[tuple[str, tuple[int, int]]] = set()


def _camera_frames(episode: Episode, camera: CameraSpec, index: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The camera's frames at `index`, prepared as the policy sees them (CameraSpec.prepare):
    from the low-resolution copy written at record time when there is one of this size
    (copies are of the whole frame, so a cropped camera always decodes full frames)."""
    size = camera.size
    lowres = episode.lowres(camera.name, size) if camera.crop is None else None
    if lowres is not None:
        return to_channels(np.ascontiguousarray(lowres[index]), camera.channels)
    key = (camera.name, size)
    if key not in _warned_fallback and camera.crop is None:
        _warned_fallback.add(key)
        log.warning(
            "no %dx%d copy of camera %r in the store: decoding and resizing full frames (slow); "
            "create the store with this size in policy_image_sizes",
            size[0],
            size[1],
            camera.name,
        )
    source = episode.frames(camera.name)
    out = np.zeros((len(index), size[0], size[1], camera.channels), dtype=np.uint8)
    cache: dict[int, np.ndarray] = {}
    for row, (i, ok) in enumerate(zip(index.tolist(), valid.tolist(), strict=True)):
        if ok:
            if i not in cache:
                try:
                    cache[i] = camera.prepare(np.asarray(source[i]))
                except ValueError as error:
                    raise ValueError(f"episode {episode.id}, camera {camera.name!r}, frame {i}: {error}") from error
            out[row] = cache[i]
    return out


class TokenWindowDataset:
    """Fixed-length windows of aligned tokens over a store, as dicts of numpy arrays (the
    trainer wraps it in its framework's dataset). Episodes are aligned once and kept in
    memory (policy-resolution frames: ~25 KB per token for two 64x64 cameras), so a
    sample is a handful of numpy slices.

    Windows start at every token (stride 1); with pad_end, windows running past the end
    of an episode are zero-padded and `pad` marks the padding (all masks False there).
    """

    def __init__(
        self,
        store: EpisodeStore,
        spec: PolicySpec,
        horizon: int,
        mapping: FeatureMapping | None = None,
        tolerance_s: float | dict[str, float] | None = None,
        episode_ids: Sequence[str] | None = None,
        include_marked: bool = True,
        stride: int = 1,
        pad_end: bool = True,
        progress: bool = False,
    ) -> None:
        if horizon < 1 or stride < 1:
            raise ValueError(f"horizon and stride must be >= 1, got {horizon} and {stride}")
        self.spec = spec
        self.horizon = horizon
        ids = list(episode_ids) if episode_ids is not None else store.episode_ids()
        iterator: Any = ids
        if progress:
            from tqdm import tqdm

            iterator = tqdm(ids, desc="align episodes", unit="episode")
        self.episodes: list[AlignedEpisode] = []
        for episode_id in iterator:
            episode = store.episode(episode_id)
            if not include_marked and episode.metadata.get("marked"):
                continue
            self.episodes.append(align_episode(episode, spec, mapping, tolerance_s))
        self.index: list[tuple[int, int]] = []
        for number, aligned in enumerate(self.episodes):
            last_start = len(aligned) - 1 if pad_end else len(aligned) - horizon
            self.index.extend((number, start) for start in range(0, last_start + 1, stride))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, np.ndarray]:
        number, start = self.index[item]
        episode = self.episodes[number]
        stop = min(start + self.horizon, len(episode))
        real = stop - start
        sample: dict[str, np.ndarray] = {}

        def window(array: np.ndarray) -> np.ndarray:
            if real == self.horizon:
                return array[start:stop]
            padded = np.zeros((self.horizon, *array.shape[1:]), dtype=array.dtype)
            padded[:real] = array[start:stop]
            return padded

        for camera in self.spec.camera_names:
            sample[f"frames/{camera}"] = window(episode.frames[camera])
            sample[f"frame_valid/{camera}"] = window(episode.frame_valid[camera])
        sample["proprio"] = window(episode.proprio)
        sample["proprio_valid"] = window(episode.proprio_valid)
        sample["actions"] = window(episode.actions)
        sample["action_valid"] = window(episode.action_valid)
        sample["token_times"] = window(episode.token_times)
        pad = np.ones(self.horizon, dtype=bool)
        pad[:real] = False
        sample["pad"] = pad
        sample["episode_index"] = np.asarray(number)
        sample["start"] = np.asarray(start)
        return sample
