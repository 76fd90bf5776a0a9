"""``bertprune demo``: the main job, end to end on the default model.

Fine-tunes all-MiniLM-L6-v2 on a subsample of SST-2 twice with the same recipe
(``recipes/demo.yaml``): dense, and with gradual magnitude pruning to the target sparsity. Then it
prints the two sparsity reports and the dev accuracy side by side.
"""

from __future__ import annotations

from pathlib import Path

from .config import load_config
from .report import sparsity_report
from .train import finetune

RECIPE = Path(__file__).parent / "recipes" / "demo.yaml"
DEFAULT_SPARSITY = 0.8


def demo(output_dir: str = "runs/demo", glue_dir=None, model=None, sparsity=None, train_examples=None, quiet=False):
    out = Path(output_dir)
    common = [f"data.glue_dir={glue_dir}"] if glue_dir else []
    if model:
        common.append(f"model.name={model}")
    if train_examples:
        common.append(f"data.train_examples={train_examples}")
    runs = {
        "dense": common + [f"output_dir={out / 'dense'}", "prune.method=dense"],
        "gmp": common + [f"output_dir={out / 'gmp'}", "prune.method=gmp",
                         f"prune.sparsity={sparsity if sparsity is not None else DEFAULT_SPARSITY}"],
    }
    configs = {name: load_config(RECIPE, overrides) for name, overrides in runs.items()}  # all checks first
    print(f"bertprune demo: {configs['dense'].model.name} on SST-2 ({configs['dense'].data.train_examples} "
          f"training sentences, full dev set); dense vs gradual magnitude pruning to "
          f"{configs['gmp'].prune.sparsity:.0%}. Runs are written under {out}/ (replaced).", flush=True)
    rows = {}
    for name, cfg in configs.items():
        results = finetune(cfg, overwrite=True, quiet=quiet)
        rows[name] = (results, sparsity_report(Path(cfg.output_dir) / "final", seq_len=cfg.data.max_length))
    print()
    print(side_by_side(rows))
    return rows


ROWS = [
    ("target sparsity", lambda r, rep: f"{r['target_sparsity']:.2f}"),
    ("achieved sparsity (zeros counted in saved weights)", lambda r, rep: f"{rep['sparsity']['targeted']:.4f}"),
    ("non-zero encoder linear weights", lambda r, rep: f"{rep['params']['encoder_linear_nonzero']:,}"),
    ("encoder compression", lambda r, rep: f"{rep['encoder_compression']:.2f}x"),
    ("non-zero parameters (all, incl. embeddings)", lambda r, rep: f"{rep['params']['nonzero']:,}"),
    ("MACs per sequence, zeros skipped", lambda r, rep: f"{rep['macs']['sparse'] / 1e6:,.1f} M"),
    ("SST-2 dev accuracy (final model)", lambda r, rep: f"{100 * r['final']['dev']['accuracy']:.2f}"),
    ("training time", lambda r, rep: f"{r['train_seconds']:.0f} s"),
]


def side_by_side(rows) -> str:
    """A Markdown table, one column per run; ``rows`` maps run name → (results, report)."""
    names = list(rows)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, fn in ROWS:
        lines.append(f"| {label} | " + " | ".join(fn(*rows[n]) for n in names) + " |")
    return "\n".join(lines)
