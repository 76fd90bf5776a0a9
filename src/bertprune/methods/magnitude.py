"""Magnitude pruning: one-shot, and gradual with the cubic schedule (the "NIP" baseline).

Both are configurations of the general :class:`~bertprune.methods.pruner.Pruner` with the
``magnitude`` criterion; this module keeps the names of the magnitude-specific functions.
"""

from __future__ import annotations

from typing import Mapping

import torch

from .pruner import GradualMagnitude, OneShotMagnitude
from .selection import lowest_k, masked_scores, select_masks

#: keep-masks from scores (|w| for magnitude pruning); see :func:`~bertprune.methods.selection.select_masks`
magnitude_masks = select_masks

__all__ = ["GradualMagnitude", "OneShotMagnitude", "lowest_k", "magnitude_masks", "masked_magnitude"]


def masked_magnitude(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``|w|`` with already-pruned entries at ``-inf``, so a new mask never regrows them."""
    return masked_scores({n: w.detach().abs() for n, w in weights.items()}, masks)
