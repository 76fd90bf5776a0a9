"""Magnitude pruning: one-shot, and gradual with the cubic schedule (the "NIP" baseline)."""

from __future__ import annotations

from typing import Mapping

import torch

from ..config import ScheduleConfig, TargetConfig
from ..schedules import cubic_sparsity, steps_from_fraction
from .base import PruningMethod


def lowest_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean tensor of ``scores``' shape marking exactly ``k`` entries with the lowest scores.

    Ties at the threshold are broken by position (first entries first), so the count is exact
    whatever the data (e.g. many weights already at zero).
    """
    flat = scores.flatten()
    n = flat.numel()
    out = torch.zeros(n, dtype=torch.bool, device=flat.device)
    if k <= 0:
        return out.view(scores.shape)
    if k >= n:
        return out.fill_(True).view(scores.shape)
    threshold = flat.kthvalue(k).values  # O(n) selection, no full sort
    out |= flat < threshold
    short = k - int(out.sum())
    if short > 0:
        ties = (flat == threshold).nonzero().flatten()[:short]
        out[ties] = True
    return out.view(scores.shape)


def magnitude_masks(scores: Mapping[str, torch.Tensor], sparsity: float, scope: str = "local") -> dict[str, torch.Tensor]:
    """Keep-masks that prune the entries with the lowest scores, exactly ``round(sparsity · n)`` of them.

    ``scope="local"``: each tensor loses ``round(sparsity · numel)`` entries.
    ``scope="global"``: the tensors are ranked together and lose ``round(sparsity · total)`` in all,
    so layers with smaller weights lose more. Scores are usually ``|w|``; pass ``-inf`` for entries
    that must stay pruned (no regrowth).
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if scope == "local":
        return {n: ~lowest_k(s, round(sparsity * s.numel())) for n, s in scores.items()}
    if scope == "global":
        names = list(scores)
        flat = torch.cat([scores[n].detach().flatten().float().cpu() for n in names])
        pruned = lowest_k(flat, round(sparsity * flat.numel()))
        out, offset = {}, 0
        for n in names:
            s = scores[n]
            out[n] = ~pruned[offset : offset + s.numel()].view(s.shape).to(s.device)
            offset += s.numel()
        return out
    raise ValueError(f"scope must be 'local' or 'global', got {scope!r}")


def masked_magnitude(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``|w|`` with already-pruned entries at ``-inf``, so a new mask never regrows them."""
    return {n: w.detach().abs().float().masked_fill(~masks[n], float("-inf")) for n, w in weights.items()}


class OneShotMagnitude(PruningMethod):
    """Prune to the target once, before training, by magnitude; the mask then stays fixed."""

    name = "oneshot"

    def __init__(self, sparsity: float, scope: str = "local", targets: TargetConfig | None = None):
        super().__init__(targets)
        self.sparsity, self.scope = sparsity, scope

    def prepare(self, model, total_steps):
        super().prepare(model, total_steps)
        self.set_masks(magnitude_masks(masked_magnitude(self.weights(), self.masks.masks), self.sparsity, self.scope))
        self.masks.apply()

    def target_sparsity(self, step: int) -> float:
        return self.sparsity


class GradualMagnitude(PruningMethod):
    """Gradual magnitude pruning (Zhu & Gupta 2017): the target follows :func:`cubic_sparsity`;
    every Δt steps between t_0 and t_0 + n·Δt the masks are recomputed from the magnitudes of the
    already-masked weights (pruned weights stay pruned)."""

    name = "gmp"

    def __init__(
        self,
        sparsity: float,
        scope: str = "local",
        schedule: ScheduleConfig | None = None,
        targets: TargetConfig | None = None,
    ):
        super().__init__(targets)
        self.sparsity, self.scope = sparsity, scope
        self.schedule = schedule or ScheduleConfig()
        self.start_step = self.end_step = 0
        self.current = 0.0  # sparsity the masks were last computed for

    def prepare(self, model, total_steps):
        super().prepare(model, total_steps)
        self.start_step = steps_from_fraction(self.schedule.start, total_steps)
        self.end_step = max(self.start_step + 1, steps_from_fraction(self.schedule.end, total_steps))
        self._update(0)

    def target_sparsity(self, step: int) -> float:
        return cubic_sparsity(
            step, self.sparsity, self.start_step, self.end_step, self.schedule.every, self.schedule.initial_sparsity
        )

    def reached_target(self, step: int) -> bool:
        return step >= self.end_step

    def _update(self, step: int) -> None:
        target = self.target_sparsity(step)
        if target > self.current:
            self.set_masks(magnitude_masks(masked_magnitude(self.weights(), self.masks.masks), target, self.scope))
            self.current = target

    def after_step(self, step, optimizer):
        self._update(step)
        super().after_step(step, optimizer)

    def state_dict(self):
        return {**super().state_dict(), "current": self.current}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.current = float(state["current"])
