"""Figures (matplotlib, PNG and SVG). Every function writes ``<stem>.png`` and ``<stem>.svg`` and
returns the paths written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .structure import downsample_for_display  # noqa: E402
from .targets import ROLES  # noqa: E402


def _save(fig, stem: str | Path) -> list[Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = stem.with_suffix(f".{ext}")
        fig.savefig(p, dpi=110, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def sparsity_patterns(masks: Mapping[str, torch.Tensor], stem: str | Path, max_side: int = 192, title: str = "") -> list[Path]:
    """Each mask drawn as an image: the share of kept weights per block (white = all pruned). A
    matrix larger than ``max_side`` per side is shown as block densities, with a colour bar."""
    n = len(masks)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.3 * rows), squeeze=False, layout="constrained")
    image = None
    for ax, (label, mask) in zip(axes.flat, masks.items()):
        density, (br, bc) = downsample_for_display(mask, max_side)
        image = ax.imshow(density, cmap="Greys", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
        sparsity = float((~mask.bool()).float().mean())
        block = "" if br == bc == 1 else f", {br}x{bc} blocks"
        ax.set_title(f"{label}\n{tuple(mask.shape)}, sparsity {sparsity:.3f}{block}", fontsize=9)
        ax.set_xlabel("input", fontsize=8)
        ax.set_ylabel("output", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="share of kept (non-zero) weights")
    if title:
        fig.suptitle(title)
    return _save(fig, stem)


def layer_sparsity(report: Mapping, stem: str | Path, title: str = "") -> list[Path]:
    """Grouped bars: the sparsity of each role in each layer (from a report)."""
    layers = report["layers"]
    roles = [r for r in ROLES if any(r in row for row in layers)]
    x = np.arange(len(layers))
    width = 0.8 / max(len(roles), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(layers) + 2), 3.8))
    for i, role in enumerate(roles):
        ax.bar(x + i * width - 0.4 + width / 2, [row.get(role, 0.0) for row in layers], width, label=role)
    ax.set_xticks(x, [str(row["layer"]) for row in layers])
    ax.set_xlabel("layer")
    ax.set_ylabel("sparsity (exact zeros)")
    ax.set_ylim(0, 1)
    overall = report["sparsity"]["targeted"]
    ax.axhline(overall, color="black", lw=0.8, ls="--", label=f"all targeted: {overall:.3f}")
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title(title or "sparsity per layer and role")
    return _save(fig, stem)


def sparsity_trajectory(metrics_jsonl: str | Path, stem: str | Path, title: str = "") -> list[Path]:
    """Sparsity (exact zeros) and the schedule's target over training steps, per matrix in grey."""
    recs = [json.loads(x) for x in Path(metrics_jsonl).read_text().splitlines() if x.strip()]
    recs = [r for r in recs if "sparsity" in r and "step" in r]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    steps = [r["step"] for r in recs]
    per = [r.get("matrix_sparsity") for r in recs]
    if per and all(per):
        for name in per[0]:
            ax.plot(steps, [p.get(name, np.nan) for p in per], color="0.8", lw=0.6)
    ax.plot(steps, [r["sparsity"] for r in recs], color="C0", lw=2, label="sparsity (all targeted)")
    ax.plot(steps, [r.get("target_sparsity", np.nan) for r in recs], color="C1", lw=1.2, ls="--", label="schedule target")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("sparsity")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title or "sparsity over training (grey: each matrix)")
    return _save(fig, stem)


def metric_vs_sparsity(series: Mapping[str, Sequence[tuple[float, float]]], stem: str | Path, metric: str,
                       dense: float | None = None, title: str = "") -> list[Path]:
    """One line per method: the metric at each sparsity; the dense baseline as a horizontal line."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for i, (label, points) in enumerate(series.items()):
        pts = sorted(points)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=f"C{i}", label=label)
    if dense is not None:
        ax.axhline(dense, color="black", ls="--", lw=1, label=f"dense: {dense:.2f}")
    ax.set_xlabel("sparsity of the pruned matrices")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return _save(fig, stem)


def tsne_panels(points: Mapping[str, np.ndarray], words: Sequence[str], focus: str, neighbours: Mapping[str, Sequence[str]],
                stem: str | Path, overlap: float | None = None, k: int = 10) -> list[Path]:
    """Side-by-side t-SNE maps (one per model) of the same words, each with a zoom around ``focus``
    and its nearest neighbours (in the model's own embedding space) listed."""
    from mpl_toolkits.axes_grid1.inset_locator import inset_axes

    fig, axes = plt.subplots(1, len(points), figsize=(6.2 * len(points), 5.6), squeeze=False)
    fi = list(words).index(focus)
    for ax, (label, xy) in zip(axes[0], points.items()):
        near = [list(words).index(w) for w in neighbours[label]]
        ax.scatter(xy[:, 0], xy[:, 1], s=3, color="0.7")
        ax.scatter(xy[near, 0], xy[near, 1], s=12, color="C0")
        ax.scatter([xy[fi, 0]], [xy[fi, 1]], s=40, color="C3", marker="*")
        ax.set_title(f"{label}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        inset = inset_axes(ax, width="38%", height="38%", loc="lower left", borderpad=1.0)
        sel = [fi] + near
        cx, cy = xy[sel, 0], xy[sel, 1]
        pad = max(np.ptp(cx), np.ptp(cy), 1e-3) * 0.25
        inset.scatter(xy[:, 0], xy[:, 1], s=4, color="0.75")
        inset.scatter(cx, cy, s=10, color="C0")
        for j in sel:
            inset.annotate(words[j], (xy[j, 0], xy[j, 1]), fontsize=6, color="C3" if j == fi else "black")
        inset.set_xlim(cx.min() - pad, cx.max() + pad)
        inset.set_ylim(cy.min() - pad, cy.max() + pad)
        inset.set_xticks([])
        inset.set_yticks([])
        ax.text(1.0, 1.0, f"{k} nearest to '{focus}':\n" + "\n".join(neighbours[label]), transform=ax.transAxes,
                fontsize=7, va="top", ha="right", bbox=dict(boxstyle="round", fc="white", alpha=0.85))
    if overlap is not None:
        fig.suptitle(f"t-SNE of {len(words)} words; mean overlap of the {k} nearest neighbours between the models: {overlap:.3f}",
                     fontsize=10)
    return _save(fig, stem)


def bars(values: Mapping[str, float], stem: str | Path, ylabel: str, title: str = "") -> list[Path]:
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(values) + 2), 3.6))
    ax.bar(range(len(values)), list(values.values()), color=[f"C{i}" for i in range(len(values))])
    ax.set_xticks(range(len(values)), list(values), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    for i, v in enumerate(values.values()):
        ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=7)
    return _save(fig, stem)
