"""Pruning methods: a pure-function core plus a thin stateful class each.

See :class:`~bertprune.methods.base.PruningMethod` for the hooks and the loop that calls them.
"""

from __future__ import annotations

from ..config import PruneConfig, TargetConfig
from ..errors import BertpruneError
from .base import Dense, PruningMethod
from .fixed import FixedMask
from .magnitude import GradualMagnitude, OneShotMagnitude, lowest_k, magnitude_masks, masked_magnitude
from .pruner import Pruner
from .selection import select_masks
from .rpp import ReweightedProximal, prox_reweighted_l1, reweight

__all__ = [
    "PruningMethod",
    "Pruner",
    "select_masks",
    "Dense",
    "OneShotMagnitude",
    "GradualMagnitude",
    "ReweightedProximal",
    "FixedMask",
    "prox_reweighted_l1",
    "reweight",
    "magnitude_masks",
    "masked_magnitude",
    "lowest_k",
    "build_method",
]


def build_method(prune: PruneConfig, targets: TargetConfig | None = None) -> PruningMethod:
    """The method a config names."""
    if prune.method == "dense":
        if prune.mask or prune.keep_zeros:
            return FixedMask(prune.mask, prune.keep_zeros, targets)
        return Dense(targets)
    if prune.method == "oneshot":
        return OneShotMagnitude(prune.sparsity, prune.scope, targets, prune.granularity, prune.max_layer_sparsity)
    if prune.method in ("gmp", "gradual"):
        return Pruner(prune.sparsity, prune.criterion, prune.scope, prune.schedule, targets, prune.granularity,
                      prune.max_layer_sparsity, name=prune.method)
    if prune.method == "rpp":
        return ReweightedProximal(prune.sparsity, prune.scope, prune.rpp, prune.schedule, targets, prune.granularity,
                                  prune.max_layer_sparsity)
    raise BertpruneError(f"unknown pruning method {prune.method!r}; choose dense, oneshot, gmp, gradual or rpp")
