"""Exponential moving average of the model's weights (used for evaluation and export)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Shadow copy of a model whose weights follow the trained ones slowly.

    The decay ramps up as min(max_decay, (1 + step) / (10 + step)), so the first
    steps are not averaged with the random initialisation for thousands of steps.
    """

    def __init__(self, model: nn.Module, max_decay: float) -> None:
        if not 0.0 <= max_decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {max_decay}")
        self.max_decay = max_decay
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def decay(self, step: int) -> float:
        return min(self.max_decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = self.decay(step)
        for shadow, current in zip(self.model.parameters(), model.parameters(), strict=True):
            shadow.lerp_(current.detach(), 1.0 - decay)
        for shadow, current in zip(self.model.buffers(), model.buffers(), strict=True):
            shadow.copy_(current)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
