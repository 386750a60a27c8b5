"""Min-max normalisation of actions and proprioception to [-1, 1].

Fitted once on the training set and stored in the checkpoint, so the runtime
maps network outputs back to the same physical units the data was recorded in.
Images need no statistics: uint8 maps to [-1, 1] by a fixed rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# A dimension that never moves in the data (e.g. a fixed orientation component)
# would divide by ~0; it is centred instead and keeps unit scale.
_MIN_RANGE = 1e-4


def images_to_unit_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, C) to float (..., C, H, W) in [-1, 1]."""
    tensor = torch.as_tensor(images)
    if tensor.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {tensor.dtype}")
    return tensor.movedim(-1, -3).float().div(127.5).sub(1.0)


def unit_range_to_images(tensor: torch.Tensor) -> np.ndarray:
    """float (..., C, H, W) in [-1, 1] to uint8 (..., H, W, C)."""
    return tensor.detach().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


@dataclass
class Normalizer:
    action_low: np.ndarray
    action_high: np.ndarray
    proprio_low: np.ndarray
    proprio_high: np.ndarray

    @classmethod
    def fit(cls, actions: np.ndarray, proprio: np.ndarray, margin: float = 0.0) -> Normalizer:
        """actions (N, d), proprio (N, P): per-dimension min and max, widened by `margin`
        of the range on each side."""
        actions = np.asarray(actions, dtype=np.float64).reshape(-1, np.shape(actions)[-1])
        proprio = np.asarray(proprio, dtype=np.float64).reshape(-1, np.shape(proprio)[-1])
        for name, values in (("actions", actions), ("proprio", proprio)):
            if values.shape[0] == 0 and values.shape[1] > 0:
                raise ValueError(f"cannot fit a normaliser on zero {name} samples")
            if not np.all(np.isfinite(values)):
                raise ValueError(f"{name} contain NaN or infinite values; clean the dataset before fitting")

        def bounds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if values.shape[1] == 0:
                return np.zeros(0), np.zeros(0)
            low, high = values.min(0), values.max(0)
            pad = (high - low) * margin
            return low - pad, high + pad

        a_low, a_high = bounds(actions)
        p_low, p_high = bounds(proprio)
        return cls(a_low, a_high, p_low, p_high)

    @classmethod
    def identity(cls, action_dim: int, proprio_dim: int) -> Normalizer:
        return cls(-np.ones(action_dim), np.ones(action_dim), -np.ones(proprio_dim), np.ones(proprio_dim))

    @staticmethod
    def _scale(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        span = high - low
        centre = (high + low) / 2
        half = np.where(span < _MIN_RANGE, 1.0, span / 2)
        return centre, half

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        centre, half = self._scale(self.action_low, self.action_high)
        return ((np.asarray(actions, dtype=np.float64) - centre) / half).astype(np.float32)

    def denormalize_actions(self, actions: np.ndarray) -> np.ndarray:
        centre, half = self._scale(self.action_low, self.action_high)
        return np.asarray(actions, dtype=np.float64) * half + centre

    def normalize_proprio(self, proprio: np.ndarray) -> np.ndarray:
        centre, half = self._scale(self.proprio_low, self.proprio_high)
        return ((np.asarray(proprio, dtype=np.float64) - centre) / half).astype(np.float32)

    def denormalize_proprio(self, proprio: np.ndarray) -> np.ndarray:
        centre, half = self._scale(self.proprio_low, self.proprio_high)
        return np.asarray(proprio, dtype=np.float64) * half + centre

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {
            "action_low": torch.from_numpy(np.asarray(self.action_low, dtype=np.float64)),
            "action_high": torch.from_numpy(np.asarray(self.action_high, dtype=np.float64)),
            "proprio_low": torch.from_numpy(np.asarray(self.proprio_low, dtype=np.float64)),
            "proprio_high": torch.from_numpy(np.asarray(self.proprio_high, dtype=np.float64)),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> Normalizer:
        expected = ("action_low", "action_high", "proprio_low", "proprio_high")
        missing = [k for k in expected if k not in tensors]
        if missing:
            raise ValueError(f"normaliser file lacks {missing}; it has {sorted(tensors)}")
        return cls(*(tensors[k].numpy().astype(np.float64) for k in expected))
