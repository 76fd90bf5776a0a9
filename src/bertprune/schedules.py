"""Sparsity and learning-rate schedules: pure functions of the optimizer step.

A sparsity schedule is a *shape* f(p, s_0, s_f) over the progress p ∈ [0, 1] of the pruning phase
(:data:`SPARSITY_SHAPES`: one function and one registry line adds a shape); :func:`sparsity_at`
turns it into a step function: nothing before ``start_step`` (the dense warm-up), a value that holds
between updates every Δt steps (a jump to s_0 at ``start_step`` when ``initial_sparsity`` > 0:
oBERT's one-shot jump), exactly s_f from ``end_step`` on (the mask-fixed cool-down).

A learning-rate schedule (:data:`LR_SCHEDULES`) is a factor of the base learning rate, a pure
function of the step too: linear decay, constant, or ``rewind`` (cyclic: the rate is rewound to
its base value at every pruning step and decays linearly to ``min_ratio`` of it until the next
one, as oBERT's recipes do).
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Sequence


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
    return sparsity_at("cubic", step, final_sparsity, start_step, end_step, every, initial_sparsity)


def is_update_step(step: int, start_step: int, end_step: int, every: int = 1) -> bool:
    """Whether the cubic schedule changes its value at ``step`` (t_0, t_0 + Δt, ..., and end_step)."""
    if step < start_step or step > end_step:
        return False
    return step == end_step or (step - start_step) % every == 0


def steps_from_fraction(fraction: float, total_steps: int) -> int:
    """A point of training given as a fraction of ``total_steps``, as a step number."""
    return int(math.floor(fraction * total_steps + 1e-9))


# --- sparsity shapes ---------------------------------------------------------------------------
def cubic_shape(p: float, s0: float, sf: float) -> float:
    """Zhu & Gupta (2017): s_f + (s_0 − s_f)(1 − p)³: fast early, slow near the end."""
    return sf + (s0 - sf) * (1.0 - p) ** 3


def linear_shape(p: float, s0: float, sf: float) -> float:
    return s0 + (sf - s0) * p


def exponential_shape(p: float, s0: float, sf: float) -> float:
    """The density 1 − s falls geometrically: the same *fraction of the survivors* goes at every
    update (1 − s = (1 − s_0)·((1 − s_f)/(1 − s_0))^p); gentle early, steep at high sparsity."""
    return 1.0 - (1.0 - s0) * ((1.0 - sf) / (1.0 - s0)) ** p


def oneshot_shape(p: float, s0: float, sf: float) -> float:
    """Everything at the first update (``start_step``)."""
    return sf


SPARSITY_SHAPES: dict[str, Callable[[float, float, float], float]] = {
    "cubic": cubic_shape,
    "linear": linear_shape,
    "exponential": exponential_shape,
    "oneshot": oneshot_shape,
}


def sparsity_at(kind: str, step: int, final_sparsity: float, start_step: int, end_step: int, every: int = 1,
                initial_sparsity: float = 0.0) -> float:
    """Target sparsity after ``step`` optimizer steps for the shape ``kind`` (see the module doc)."""
    if kind not in SPARSITY_SHAPES:
        raise ValueError(f"unknown sparsity schedule {kind!r}; choose one of {', '.join(SPARSITY_SHAPES)}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if step < start_step:
        return 0.0
    if step >= end_step or end_step <= start_step:
        return float(final_sparsity)
    t = start_step + ((step - start_step) // every) * every
    return float(SPARSITY_SHAPES[kind]((t - start_step) / (end_step - start_step), initial_sparsity, final_sparsity))


def update_steps(start_step: int, end_step: int, every: int) -> list[int]:
    """The steps where a schedule may change its value: t_0, t_0 + Δt, ... and ``end_step``."""
    return [t for t in range(start_step, end_step + 1) if is_update_step(t, start_step, end_step, every)]


# --- learning-rate factors ---------------------------------------------------------------------
def _warm(step: int, warmup: int) -> float | None:
    return step / max(1, warmup) if step < warmup else None


def linear_lr(step: int, total: int, warmup: int = 0, **_) -> float:
    """Linear warm-up, then linear decay to 0 at ``total`` (BERT's schedule)."""
    if (w := _warm(step, warmup)) is not None:
        return w
    return max(0.0, (total - step) / max(1, total - warmup))


def constant_lr(step: int, total: int, warmup: int = 0, **_) -> float:
    if (w := _warm(step, warmup)) is not None:
        return w
    return 1.0


def rewind_lr(step: int, total: int, warmup: int = 0, restarts: Sequence[int] = (), min_ratio: float = 0.1) -> float:
    """Cyclic: back to 1 at every step of ``restarts`` (the pruning steps), then linear decay to
    ``min_ratio`` at the next restart (or at ``total``); warm-up as in the others."""
    if (w := _warm(step, warmup)) is not None:
        return w
    bounds = sorted({warmup, *[r for r in restarts if warmup < r < total], total})
    i = bisect.bisect_right(bounds, step) - 1
    lo, hi = bounds[max(i, 0)], bounds[min(i + 1, len(bounds) - 1)]
    if hi <= lo:
        return min_ratio
    return 1.0 - (1.0 - min_ratio) * (step - lo) / (hi - lo)


LR_SCHEDULES: dict[str, Callable[..., float]] = {"linear": linear_lr, "constant": constant_lr, "rewind": rewind_lr}


def lr_factor(kind: str, step: int, total: int, warmup: int = 0, restarts: Sequence[int] = (), min_ratio: float = 0.1) -> float:
    if kind not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {kind!r}; choose one of {', '.join(LR_SCHEDULES)}")
    return LR_SCHEDULES[kind](step, total, warmup=warmup, restarts=restarts, min_ratio=min_ratio)
