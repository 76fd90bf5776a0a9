"""Pruning granularities: which groups of weights are kept or pruned together.

* ``unstructured`` — any single weight;
* ``RxC`` blocks (e.g. ``4x1``, ``1x4``, ``4x4``, ``16x16``) — R consecutive output rows × C
  consecutive input columns, scored by the mean |w| of the block. ``4x1`` lets a kernel reuse one
  activation load for 4 outputs (fp32); ``1x4`` feeds int8 VNNI dot products of 4 inputs;
* ``N:M`` (e.g. ``2:4``) — in every group of M consecutive inputs of a row, M − N are pruned (so the
  sparsity is exactly 1 − N/M); the pattern of sparse tensor cores.

Sparsity is exact in units of the granularity: a block pattern prunes round(s · number of blocks)
blocks (per matrix for local scope, over all matrices for global scope).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Granularity:
    kind: str = "unstructured"  # unstructured | block | nm
    rows: int = 1
    cols: int = 1
    n: int = 0  # N:M — keep n ...
    m: int = 0  # ... of every m consecutive inputs

    def __str__(self) -> str:
        return {"unstructured": "unstructured", "block": f"{self.rows}x{self.cols}", "nm": f"{self.n}:{self.m}"}[self.kind]

    def check_shape(self, shape: tuple[int, ...]) -> str | None:
        """Why this granularity cannot tile a matrix of ``shape`` (None if it can)."""
        if len(shape) != 2:
            return f"needs 2-D matrices, got shape {tuple(shape)}"
        if self.kind == "block" and (shape[0] % self.rows or shape[1] % self.cols):
            return f"{self} blocks do not tile a {shape[0]}x{shape[1]} matrix"
        if self.kind == "nm" and shape[1] % self.m:
            return f"{self} groups do not tile {shape[1]} inputs"
        return None

    def check_sparsity(self, sparsity: float) -> str | None:
        if self.kind == "nm" and abs(sparsity * self.m - round(sparsity * self.m)) > 1e-9:
            return f"{self} gives sparsities in steps of 1/{self.m} (e.g. {1 - self.n / self.m}); got {sparsity}"
        return None


def parse_granularity(text: str) -> Granularity:
    t = text.strip().lower().removeprefix("block:")
    if t in ("unstructured", "none", "1x1", ""):
        return Granularity()
    if m := re.fullmatch(r"(\d+)x(\d+)", t):
        r, c = int(m[1]), int(m[2])
        if r < 1 or c < 1:
            raise ValueError(f"block sides must be >= 1: {text!r}")
        return Granularity("block", rows=r, cols=c)
    if m := re.fullmatch(r"(\d+):(\d+)", t):
        n, mm = int(m[1]), int(m[2])
        if not 0 < n < mm:
            raise ValueError(f"N:M needs 0 < N < M: {text!r}")
        return Granularity("nm", n=n, m=mm)
    raise ValueError(f"unknown granularity {text!r}: use unstructured, RxC blocks (e.g. 4x1, 16x16) or N:M (e.g. 2:4)")


def block_scores(scores: torch.Tensor, g: Granularity) -> torch.Tensor:
    """Mean score of each RxC block: [rows/R, cols/C] (−inf where a block holds a −inf entry)."""
    r, c = scores.shape
    return scores.reshape(r // g.rows, g.rows, c // g.cols, g.cols).mean((1, 3))


def expand_blocks(block_mask: torch.Tensor, g: Granularity) -> torch.Tensor:
    return block_mask.repeat_interleave(g.rows, 0).repeat_interleave(g.cols, 1)


def nm_prune(scores: torch.Tensor, prune_per_group: int, m: int) -> torch.Tensor:
    """Boolean mask of the ``prune_per_group`` lowest scores in every group of ``m`` consecutive
    entries of each row (ties by position)."""
    r, c = scores.shape
    groups = scores.reshape(r, c // m, m)
    order = torch.sort(groups, dim=-1, stable=True).indices[..., :prune_per_group]
    pruned = torch.zeros_like(groups, dtype=torch.bool)
    pruned.scatter_(-1, order, True)
    return pruned.reshape(r, c)
