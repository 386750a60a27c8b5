"""Scheduling matrices: which noise level each future token has at each denoising row.

A matrix has shape (rows, H): row 0 is where sampling starts (every token pure
noise, level K) and the last row is all clean. Columns are future tokens, the
nearest first. Every column is non-increasing down the rows. H and the number of
denoising steps are arguments, so both are chosen at run time: the model was
trained on independent levels and accepts any of them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ScheduleKind = Literal["autoregressive", "pyramid", "full_sequence"]
SCHEDULE_KINDS: tuple[str, ...] = ("autoregressive", "pyramid", "full_sequence")


def _levels_for_steps(num_levels: int, steps: int) -> np.ndarray:
    """steps+1 integer levels from K down to 0, as evenly spaced as integers allow."""
    return np.round(np.linspace(num_levels, 0, steps + 1)).astype(np.int64)


def scheduling_matrix(
    kind: ScheduleKind,
    horizon: int,
    steps: int,
    num_levels: int,
    uncertainty_scale: float = 1.0,
) -> np.ndarray:
    """Integer level matrix of shape (rows, horizon).

    - autoregressive: token h starts denoising only when token h-1 is clean
      (rows = steps * horizon + 1).
    - pyramid: token h lags token h-1 by `uncertainty_scale` denoising steps, so
      the far future stays noisier than the near future (rows = steps + lag + 1).
    - full_sequence: every token at the same level (rows = steps + 1).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps > num_levels:
        raise ValueError(f"steps ({steps}) cannot exceed the number of noise levels ({num_levels})")
    if uncertainty_scale < 0:
        raise ValueError(f"uncertainty_scale must be >= 0, got {uncertainty_scale}")
    ladder = _levels_for_steps(num_levels, steps)  # ladder[i]: level after i steps

    def lagged(lag_per_column: float) -> np.ndarray:
        lags = np.round(np.arange(horizon) * lag_per_column).astype(np.int64)
        rows = steps + int(lags[-1]) + 1
        progress = np.arange(rows)[:, None] - lags[None, :]  # steps taken by each column
        return ladder[np.clip(progress, 0, steps)]

    if kind == "autoregressive":
        return lagged(float(steps))
    if kind == "pyramid":
        return lagged(float(uncertainty_scale))
    if kind == "full_sequence":
        return lagged(0.0)
    raise ValueError(f"unknown schedule {kind!r}; expected one of {SCHEDULE_KINDS}")


def next_row_targets(matrix: np.ndarray, current: np.ndarray) -> list[np.ndarray]:
    """The level targets that take tokens at `current` levels to the matrix's end.

    Rows that would not lower any level are skipped, and no level is ever raised:
    tokens carried over from the previous tick, already partly denoised, simply
    join the matrix where it reaches them. The sequence stops as soon as the
    nearest token (column 0) is clean, because that is all a tick must deliver.
    """
    levels = np.asarray(current, dtype=np.int64).copy()
    if levels.shape != (matrix.shape[1],):
        raise ValueError(f"current levels have shape {levels.shape}, matrix has {matrix.shape[1]} columns")
    targets: list[np.ndarray] = []
    for row in matrix[1:]:
        if levels[0] == 0:
            break
        new = np.minimum(levels, row)
        if np.array_equal(new, levels):
            continue
        targets.append(new)
        levels = new
    return targets
