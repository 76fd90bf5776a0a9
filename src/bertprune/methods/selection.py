"""From scores to keep-masks: exact counts, any pattern, local or global scope. Pure functions."""

from __future__ import annotations

import math
from typing import Mapping

import torch

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


def _global_lowest(units: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    names = list(units)
    flat = torch.cat([units[n].detach().flatten().float().cpu() for n in names])
    pruned = lowest_k(flat, k)
    out, offset = {}, 0
    for n in names:
        s = units[n]
        out[n] = pruned[offset : offset + s.numel()].view(s.shape).to(s.device)
        offset += s.numel()
    return out


def global_lowest_with_cap(units: Mapping[str, torch.Tensor], k: int, cap: float = 1.0) -> dict[str, torch.Tensor]:
    """Prune the ``k`` lowest entries over all tensors together, but at most ``floor(cap · numel)``
    of any one tensor (Intel Neural Compressor's per-layer cap: global scope must not empty a
    layer). Tensors that would exceed the cap are held at it and the rest is ranked again."""
    held: dict[str, torch.Tensor] = {}
    free = dict(units)
    limit = {n: math.floor(cap * s.numel() + 1e-9) for n, s in units.items()}
    if k > sum(limit.values()):
        raise ValueError(f"cannot prune {k} entries with at most {cap:.0%} of each tensor")
    while True:
        pruned = _global_lowest(free, k) if free else {}
        over = [n for n, m in pruned.items() if int(m.sum()) > limit[n]]
        if not over:
            return {**held, **pruned}
        for n in over:
            held[n] = lowest_k(units[n], limit[n])
            k -= limit[n]
            del free[n]


def select_masks(scores: Mapping[str, torch.Tensor], sparsity: float, scope: str = "local",
                 granularity: Granularity | str = "unstructured", max_layer_sparsity: float = 1.0) -> dict[str, torch.Tensor]:
    """Keep-masks that prune the entries with the lowest scores, exactly ``round(sparsity · n)`` of them.

    ``scope="local"``: each tensor loses ``round(sparsity · numel)`` entries.
    ``scope="global"``: the tensors are ranked together and lose ``round(sparsity · total)`` in all,
    none more than ``max_layer_sparsity`` of its own entries. Pass ``-inf`` for entries that must stay
    pruned (no regrowth). With a block ``granularity`` the units counted and ranked are blocks (scored
    by their mean); with N:M, every group of M inputs loses round(sparsity · M) (scope does not apply).
    See :mod:`bertprune.methods.granularity`.
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
        total = sum(s.numel() for s in units.values())
        kept = {n: ~m for n, m in global_lowest_with_cap(units, round(sparsity * total), max_layer_sparsity).items()}
    return {n: expand_blocks(m, g) for n, m in kept.items()} if g.kind == "block" else kept


def masked_scores(scores: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scores with already-pruned entries at ``-inf``, so a new mask never regrows them (NaN scores,
    e.g. from an overflowing step, count as lowest: the counts stay exact)."""
    return {n: torch.nan_to_num(s.float(), nan=float("-inf")).masked_fill(~masks[n], float("-inf")) for n, s in scores.items()}
