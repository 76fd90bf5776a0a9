"""Magnitude pruning: one-shot, and gradual with the cubic schedule (the "NIP" baseline)."""

from __future__ import annotations

from typing import Mapping

import torch

from ..config import ScheduleConfig, TargetConfig
from ..schedules import cubic_sparsity, steps_from_fraction
from .base import PruningMethod
from .granularity import Granularity, block_scores, expand_blocks, nm_prune, parse_granularity


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


def magnitude_masks(scores: Mapping[str, torch.Tensor], sparsity: float, scope: str = "local",
                    granularity: Granularity | str = "unstructured") -> dict[str, torch.Tensor]:
    """Keep-masks that prune the entries with the lowest scores, exactly ``round(sparsity · n)`` of them.

    ``scope="local"``: each tensor loses ``round(sparsity · numel)`` entries.
    ``scope="global"``: the tensors are ranked together and lose ``round(sparsity · total)`` in all,
    so layers with smaller weights lose more. Scores are usually ``|w|``; pass ``-inf`` for entries
    that must stay pruned (no regrowth). With a block ``granularity`` the units counted and ranked
    are blocks (scored by their mean); with N:M, every group of M inputs loses round(sparsity · M)
    (scope does not apply). See :mod:`bertprune.methods.granularity`.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if scope not in ("local", "global"):
        raise ValueError(f"scope must be 'local' or 'global', got {scope!r}")
    g = parse_granularity(granularity) if isinstance(granularity, str) else granularity
    for name, s in scores.items():
        if (why := g.check_shape(tuple(s.shape))) is not None:
            raise ValueError(f"{name}: {why}")
    if g.kind == "nm":
        return {n: ~nm_prune(s, round(sparsity * g.m), g.m) for n, s in scores.items()}
    units = {n: block_scores(s, g) for n, s in scores.items()} if g.kind == "block" else dict(scores)
    if scope == "local":
        kept = {n: ~lowest_k(s, round(sparsity * s.numel())) for n, s in units.items()}
    else:
        names = list(units)
        flat = torch.cat([units[n].detach().flatten().float().cpu() for n in names])
        pruned = lowest_k(flat, round(sparsity * flat.numel()))
        kept, offset = {}, 0
        for n in names:
            s = units[n]
            kept[n] = ~pruned[offset : offset + s.numel()].view(s.shape).to(s.device)
            offset += s.numel()
    return {n: expand_blocks(m, g) for n, m in kept.items()} if g.kind == "block" else kept


def masked_magnitude(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``|w|`` with already-pruned entries at ``-inf``, so a new mask never regrows them."""
    return {n: w.detach().abs().float().masked_fill(~masks[n], float("-inf")) for n, w in weights.items()}


class OneShotMagnitude(PruningMethod):
    """Prune to the target once, before training, by magnitude; the mask then stays fixed."""

    name = "oneshot"

    def __init__(self, sparsity: float, scope: str = "local", targets: TargetConfig | None = None,
                 granularity: str = "unstructured"):
        super().__init__(targets)
        self.sparsity, self.scope = sparsity, scope
        self.granularity = parse_granularity(granularity)

    def prepare(self, model, total_steps):
        super().prepare(model, total_steps)
        self.check_granularity(self.granularity, self.sparsity)
        self.set_masks(magnitude_masks(masked_magnitude(self.weights(), self.masks.masks), self.sparsity, self.scope,
                                       self.granularity))
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
        granularity: str = "unstructured",
    ):
        super().__init__(targets)
        self.sparsity, self.scope = sparsity, scope
        self.schedule = schedule or ScheduleConfig()
        self.granularity = parse_granularity(granularity)
        self.start_step = self.end_step = 0
        self.current = 0.0  # sparsity the masks were last computed for

    def prepare(self, model, total_steps):
        super().prepare(model, total_steps)
        self.check_granularity(self.granularity, self.sparsity)
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
            self.set_masks(magnitude_masks(masked_magnitude(self.weights(), self.masks.masks), target, self.scope,
                                           self.granularity))
            self.current = target

    def after_step(self, step, optimizer):
        self._update(step)
        super().after_step(step, optimizer)

    def state_dict(self):
        return {**super().state_dict(), "current": self.current}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.current = float(state["current"])
