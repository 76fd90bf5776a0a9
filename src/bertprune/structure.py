"""Structure in a mask, as numbers: "RPP's sparsity is structured" checked, not eyeballed.

For a keep-mask (True = kept) of a [out, in] matrix: the share of all-zero rows (output units no
weight feeds), all-zero columns (inputs no weight reads), all-zero attention heads (for query, key
and value the rows of a head; for the attention output the columns of a head), and the histogram of
the density of square blocks. An unstructured (uniformly random) mask at sparsity s has all-zero
rows with probability s^in, i.e. practically none; block densities concentrate around 1 − s.
"""

from __future__ import annotations

import math

import numpy as np
import torch

HEAD_ROWS = {"query", "key", "value"}  # a head owns rows of these matrices
HEAD_COLS = {"attn_out"}  # ... and columns of this one


def block_density(mask: torch.Tensor, block_rows: int, block_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Density of kept entries per block, and the number of entries in each block.

    Blocks tile the matrix from the top left; blocks on the last row/column may be smaller, and
    their density is over their own size, so Σ (1 − density) · size equals the number of zeros.
    """
    m = mask.detach().cpu().to(torch.float64)
    rows, cols = m.shape
    nr, nc = math.ceil(rows / block_rows), math.ceil(cols / block_cols)
    padded = torch.zeros(nr * block_rows, nc * block_cols, dtype=torch.float64)
    padded[:rows, :cols] = m
    present = torch.zeros_like(padded)
    present[:rows, :cols] = 1.0
    kept = padded.view(nr, block_rows, nc, block_cols).sum((1, 3))
    size = present.view(nr, block_rows, nc, block_cols).sum((1, 3))
    return (kept / size).numpy(), size.numpy()


def downsample_for_display(mask: torch.Tensor, max_side: int = 256) -> tuple[np.ndarray, tuple[int, int]]:
    """Block densities small enough to draw (at most ``max_side`` blocks a side) and the block shape."""
    rows, cols = mask.shape
    br, bc = max(1, math.ceil(rows / max_side)), max(1, math.ceil(cols / max_side))
    density, _ = block_density(mask, br, bc)
    return density, (br, bc)


def mask_structure(mask: torch.Tensor, role: str | None = None, num_heads: int | None = None, block: int = 8,
                   bins: int = 10) -> dict:
    m = mask.detach().cpu().bool()
    rows, cols = m.shape
    out = {
        "sparsity": float((~m).float().mean()),
        "zero_rows": float((~m.any(1)).float().mean()),
        "zero_cols": float((~m.any(0)).float().mean()),
    }
    if num_heads and role in HEAD_ROWS and rows % num_heads == 0:
        out["zero_heads"] = float((~m.view(num_heads, -1).any(1)).float().mean())
    elif num_heads and role in HEAD_COLS and cols % num_heads == 0:
        out["zero_heads"] = float((~m.t().reshape(num_heads, -1).any(1)).float().mean())
    density, _ = block_density(m, block, block)
    hist, edges = np.histogram(density.ravel(), bins=bins, range=(0.0, 1.0))
    out["block"] = block
    out["block_density_hist"] = (hist / hist.sum()).round(4).tolist()
    out["block_density_edges"] = edges.round(3).tolist()
    out["empty_blocks"] = float((density == 0).mean())
    return out
