"""Sparsity schedules: pure functions of the optimizer step."""

from __future__ import annotations

import math


def cubic_sparsity(
    step: int,
    final_sparsity: float,
    start_step: int,
    end_step: int,
    every: int = 1,
    initial_sparsity: float = 0.0,
) -> float:
    """Target sparsity after ``step`` optimizer steps, by the cubic schedule of Zhu & Gupta (2017),
    "To prune, or not to prune: exploring the efficacy of pruning for model compression", eq. (1):

        s_t = s_f + (s_0 - s_f) * (1 - (t - t_0) / (n * Δt)) ** 3,   t ∈ {t_0, t_0 + Δt, ..., t_0 + n·Δt}

    with ``t_0 = start_step``, ``Δt = every`` and ``t_0 + n·Δt = end_step``. Between updates the
    value holds at the last update step; before ``t_0`` nothing is pruned (0.0); from ``end_step`` on
    it is ``final_sparsity`` exactly, even when ``end_step - start_step`` is not a multiple of Δt.
    The schedule prunes fast early, while the network still has redundant weights, and slowly near the
    end. It is the "NIP" baseline of the RPP paper and the schedule of the SparseBERT reference code.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if step < start_step:
        return 0.0
    if step >= end_step or end_step <= start_step:
        return float(final_sparsity)
    t = start_step + ((step - start_step) // every) * every  # last update step at or before `step`
    progress = (t - start_step) / (end_step - start_step)
    return float(final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3)


def is_update_step(step: int, start_step: int, end_step: int, every: int = 1) -> bool:
    """Whether the cubic schedule changes its value at ``step`` (t_0, t_0 + Δt, ..., and end_step)."""
    if step < start_step or step > end_step:
        return False
    return step == end_step or (step - start_step) % every == 0


def steps_from_fraction(fraction: float, total_steps: int) -> int:
    """A point of training given as a fraction of ``total_steps``, as a step number."""
    return int(math.floor(fraction * total_steps + 1e-9))
