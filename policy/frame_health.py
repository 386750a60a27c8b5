"""Frame health: how far a camera frame can be trusted, as a noise level k.

Cheap checks run on every frame: missing, decode error, stale timestamp,
black or saturated, frozen (identical to the previous frame), heavy blur or heavy
pixel noise (sharpness far below or above the camera's own recent frames), and
optionally surprise against the model's own predicted frame. A frame judged
unusable gets k = K and enters the policy as pure noise, so the latent carries
on from its prior; a doubtful one gets an intermediate level.

Thresholds are in the units a person can check on a frame: mean brightness in
0..255, seconds, and sharpness relative to the camera's own recent healthy
frames (absolute sharpness differs per scene and resolution).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from policy.config_io import documented


class FrameIssue(str, enum.Enum):
    MISSING = "missing"
    DECODE_ERROR = "decode_error"
    STALE = "stale"
    BLACK = "black"
    SATURATED = "saturated"
    FROZEN = "frozen"
    BLURRED = "blurred"
    NOISY = "noisy"
    SURPRISE = "surprise"


@dataclass(frozen=True)
class HealthConfig:
    fresh_age_s: float = documented(0.10, "frames younger than this are fully trusted (s since capture)", low=0.0)
    stale_age_s: float = documented(
        0.30, "frames older than this are unusable (k = K); the level rises linearly in between (s)", low=0.0
    )
    black_max_mean: float = documented(12.0, "a flat frame with a mean grey level below this is black", low=0.0)
    saturated_min_mean: float = documented(243.0, "a flat frame with a mean grey level above this is saturated")
    flat_max_std: float = documented(4.0, "black/saturated also need a grey-level std below this (flat)", low=0.0)
    frozen_max_mean_abs_diff: float = documented(
        0.0, "a frame this close to the previous one (mean abs grey difference) is frozen; 0: identical only", low=0.0
    )
    blur_min_relative_sharpness: float = documented(
        0.35, "sharpness below this fraction of the camera's baseline is blurred", low=0.0
    )
    blurred_level_fraction: float = documented(0.6, "noise level of a blurred frame, as a fraction of K", 0.0, 1.0)
    noise_min_relative_sharpness: float = documented(
        2.5, "sharpness above this multiple of the baseline is pixel noise", low=0.0
    )
    noisy_level_fraction: float = documented(0.6, "noise level of a noisy frame, as a fraction of K", 0.0, 1.0)
    sharpness_baseline_frames: int = documented(10, "healthy frames that set the sharpness baseline", low=1)
    surprise_low: float = documented(
        0.02, "surprise (MSE against the predicted frame, [-1, 1] units) below this is no surprise", low=0.0
    )
    surprise_high: float = documented(0.10, "surprise at or above this gives the largest surprise level", low=0.0)
    surprise_max_level_fraction: float = documented(1.0, "the largest surprise level, as a fraction of K", 0.0, 1.0)

    def __post_init__(self) -> None:
        if not 0 <= self.fresh_age_s < self.stale_age_s:
            raise ValueError(f"need 0 <= fresh_age_s < stale_age_s, got {self.fresh_age_s}, {self.stale_age_s}")
        if not 0 <= self.surprise_low < self.surprise_high:
            raise ValueError(f"need 0 <= surprise_low < surprise_high, got {self.surprise_low}, {self.surprise_high}")


@dataclass
class FrameHealth:
    level: int
    issues: tuple[FrameIssue, ...]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return not self.issues


def _gray(frame: np.ndarray) -> np.ndarray:
    array = frame.astype(np.float32)
    return array.mean(axis=2) if array.ndim == 3 else array


def sharpness(frame: np.ndarray) -> float:
    """Variance of a 4-neighbour Laplacian of the grey image (higher = sharper).

    For uint8 frames the Laplacian of the channel sum is taken in integers (exact, and
    3x faster than in float on a 64 px frame, where numpy's per-call overhead dominates);
    the grey image is that sum over the channel count, so the variance is scaled back."""
    if frame.dtype != np.uint8:
        g = _gray(frame)
        if g.shape[0] < 3 or g.shape[1] < 3:
            return 0.0
        lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
        return float(lap.var())
    if frame.shape[0] < 3 or frame.shape[1] < 3:
        return 0.0
    channels = frame.shape[2] if frame.ndim == 3 else 1
    # |Laplacian| <= 8 * 255 * channels: int16 holds it up to 16 channels.
    total = np.empty(frame.shape[:2], dtype=np.int16 if channels <= 16 else np.int32)
    if frame.ndim == 3:
        np.copyto(total, frame[:, :, 0])
        for c in range(1, channels):
            total += frame[:, :, c]
    else:
        np.copyto(total, frame)
    centre = total[1:-1, 1:-1]
    lap = total[:-2, 1:-1] + total[2:, 1:-1]
    lap += total[1:-1, :-2]
    lap += total[1:-1, 2:]
    lap -= 4 * centre
    values = lap.ravel().astype(np.float64)
    n = values.size
    mean = float(values.sum()) / n
    # einsum, not a BLAS dot: OpenBLAS threads a long dot and stalls on a busy machine.
    return max(float(np.einsum("i,i->", values, values)) / n - mean * mean, 0.0) / (channels * channels)


def _downsample(frame: np.ndarray, size: int) -> np.ndarray:
    """Block-average an HxWxC uint8 frame to size x size in [-1, 1]."""
    h, w = frame.shape[:2]
    ys = (np.arange(size + 1) * h) // size
    xs = (np.arange(size + 1) * w) // size
    f = frame.astype(np.float32).reshape(h, w, -1)
    sums = np.add.reduceat(np.add.reduceat(f, ys[:-1], axis=0), xs[:-1], axis=1)
    counts = np.diff(ys)[:, None, None] * np.diff(xs)[None, :, None]
    return sums / counts / 127.5 - 1.0


def surprise(frame: np.ndarray, predicted: np.ndarray) -> float:
    """Mean squared difference between a frame and the model's predicted frame,
    both at the prediction's resolution, in [-1, 1] units."""
    size = predicted.shape[0]
    actual = _downsample(frame, size)
    expected = predicted.astype(np.float32).reshape(size, size, -1) / 127.5 - 1.0
    if actual.shape[-1] != expected.shape[-1]:
        actual = actual.mean(-1, keepdims=True)
        expected = expected.mean(-1, keepdims=True)
    return float(np.mean((actual - expected) ** 2))


def _median(values: list[float]) -> float:
    """np.median of a short list without the array round trip."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class CameraHealthMonitor:
    """Frame health for one camera; keeps what the checks need from earlier frames."""

    def __init__(self, num_levels: int, config: HealthConfig | None = None) -> None:
        self.K = num_levels
        self.config = config or HealthConfig()
        self._previous: np.ndarray | None = None
        self._baseline: list[float] = []

    def reset(self) -> None:
        self._previous = None
        self._baseline = []

    def assess(
        self,
        frame: np.ndarray | None,
        stamp: float | None,
        now: float,
        predicted: np.ndarray | None = None,
        decode_error: bool = False,
    ) -> FrameHealth:
        """Noise level and reasons for one frame.

        frame: HxW or HxWxC uint8, None when nothing arrived; stamp: the frame's
        capture time and now: the time of the tick (seconds, same clock);
        predicted: the model's predicted frame (s x s x C uint8) for surprise;
        decode_error: the driver or decoder failed on this frame.
        """
        cfg, K = self.config, self.K
        if decode_error:
            return FrameHealth(K, (FrameIssue.DECODE_ERROR,))
        if frame is None:
            return FrameHealth(K, (FrameIssue.MISSING,))
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or frame.size == 0:
            return FrameHealth(K, (FrameIssue.DECODE_ERROR,), {"ndim": float(frame.ndim)})

        issues: list[FrameIssue] = []
        level = 0
        metrics: dict[str, float] = {}

        if stamp is not None:
            age = now - stamp
            metrics["age_s"] = age
            if age > cfg.stale_age_s:
                issues.append(FrameIssue.STALE)
                level = K
            elif age > cfg.fresh_age_s:
                issues.append(FrameIssue.STALE)
                level = max(level, round(K * (age - cfg.fresh_age_s) / (cfg.stale_age_s - cfg.fresh_age_s)))

        mean, std = float(frame.mean()), float(frame.std())
        metrics["mean"], metrics["std"] = mean, std
        if mean <= cfg.black_max_mean and std <= cfg.flat_max_std:
            issues.append(FrameIssue.BLACK)
            level = K
        elif mean >= cfg.saturated_min_mean and std <= cfg.flat_max_std:
            issues.append(FrameIssue.SATURATED)
            level = K

        previous, self._previous = self._previous, frame.copy()
        if previous is not None and previous.shape == frame.shape:
            change = float(np.mean(np.abs(frame.astype(np.int16) - previous.astype(np.int16))))
            metrics["mean_abs_change"] = change
            if change <= cfg.frozen_max_mean_abs_diff:
                issues.append(FrameIssue.FROZEN)
                level = K

        sharp = sharpness(frame)
        metrics["sharpness"] = sharp
        if len(self._baseline) >= cfg.sharpness_baseline_frames:
            reference = _median(self._baseline)
            relative = sharp / reference if reference > 0 else 1.0
            metrics["relative_sharpness"] = relative
            if relative < cfg.blur_min_relative_sharpness:
                issues.append(FrameIssue.BLURRED)
                level = max(level, round(K * cfg.blurred_level_fraction))
            elif relative > cfg.noise_min_relative_sharpness:
                issues.append(FrameIssue.NOISY)
                level = max(level, round(K * cfg.noisy_level_fraction))

        if predicted is not None:
            error = surprise(frame, predicted)
            metrics["surprise"] = error
            if error > cfg.surprise_low:
                fraction = min(1.0, (error - cfg.surprise_low) / (cfg.surprise_high - cfg.surprise_low))
                issues.append(FrameIssue.SURPRISE)
                level = max(level, round(K * fraction * cfg.surprise_max_level_fraction))

        if not issues:
            # Only healthy frames define what "sharp" means for this camera.
            self._baseline.append(sharp)
            if len(self._baseline) > 5 * cfg.sharpness_baseline_frames:
                self._baseline.pop(0)
        return FrameHealth(int(min(level, K)), tuple(issues), metrics)
