"""``bertprune demo``: the main job, end to end on the default model.

1. Fine-tunes all-MiniLM-L6-v2 densely on a subsample of SST-2 (``recipes/demo.yaml``): the dense
   model, and the teacher of step 2.
2. Prunes it to 90% with the high-sparsity recipe (``recipes/sparse-kd.yaml``): the student starts
   from the dense model and distils its logits while it is pruned.
3. Measures both on the full dev set, counts their zeros, and times the sparse model under the
   sparse CPU engine (:func:`bertprune.sparse.accelerate`) against PyTorch on the same inputs.
"""

from __future__ import annotations

from pathlib import Path

from .config import DistillRunConfig, load_config
from .recipes import recipe_file
from .report import sparsity_report
from .train import distill, finetune

RECIPE = Path(__file__).parent / "recipes" / "demo.yaml"
SPARSE_RECIPE = "sparse-kd"
DEFAULT_SPARSITY = 0.9
#: epochs of the pruning run: None = the recipe's (its data settings come from demo.yaml)
SPARSE_EPOCHS = None


def demo(output_dir: str = "runs/demo", glue_dir=None, model=None, sparsity=None, train_examples=None, quiet=False,
         sparse_epochs: float | None = SPARSE_EPOCHS, time_batches: tuple[int, ...] = (1, 8)):
    out = Path(output_dir)
    common = [f"data.glue_dir={glue_dir}"] if glue_dir else []
    if model:
        common.append(f"model.name={model}")
    if train_examples:
        common.append(f"data.train_examples={train_examples}")
    dense_cfg = load_config(RECIPE, common + [f"output_dir={out / 'dense'}"])
    d = dense_cfg.data
    target = sparsity if sparsity is not None else DEFAULT_SPARSITY
    sparse_cfg = load_config(recipe_file(SPARSE_RECIPE), common + [  # same data as the dense run
        f"output_dir={out / 'sparse'}", f"distill.teacher={out / 'dense'}", f"data.task={d.task}",
        f"data.max_length={d.max_length}", f"data.train_examples={d.train_examples}",
        *([f"train.epochs={sparse_epochs}"] if sparse_epochs is not None else []), f"train.seed={dense_cfg.train.seed}",
        f"prune.sparsity={target}", f"prune.schedule.initial_sparsity={min(0.3, target)}",
    ], schema=DistillRunConfig)  # all checks before the first step
    print(f"bertprune demo: {dense_cfg.model.name} on SST-2 ({d.train_examples} training sentences, full dev set): "
          f"dense fine-tuning ({dense_cfg.train.epochs:g} epochs), then pruning to {sparse_cfg.prune.sparsity:.0%} while "
          f"distilling it (recipe {SPARSE_RECIPE}, {sparse_cfg.train.epochs:g} epochs). Runs are written under {out}/ (replaced).",
          flush=True)
    rows = {}
    results = finetune(dense_cfg, overwrite=True, quiet=quiet)
    rows["dense"] = (results, sparsity_report(out / "dense" / "final", seq_len=d.max_length))
    results = distill(sparse_cfg, overwrite=True, quiet=quiet)
    rows[f"{sparse_cfg.prune.sparsity:.0%} sparse"] = (results, sparsity_report(out / "sparse" / "final", seq_len=d.max_length))
    speed = time_engine(out / "sparse" / "final", d.glue_dir, d.max_length, time_batches)  # the resolved folder ($BERTPRUNE_GLUE_DIR)
    print()
    print(side_by_side(rows))
    print()
    print(speed_table(speed))
    return rows, speed


def time_engine(folder: Path, glue_dir, max_length: int, batches: tuple[int, ...], repeats: int = 20) -> list[dict]:
    """Median latency of PyTorch and of :func:`~bertprune.sparse.accelerate` on real SST-2 dev
    sentences (padded to the longest of the batch), and the largest logit difference. The timing
    loop is :func:`bertprune.bench.time_calls`, the one ``bertprune bench`` uses."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .bench import max_difference, time_calls
    from .data.glue import load_glue
    from .sparse import accelerate

    sentences = load_glue("sst2", glue_dir, None, None, 0).eval["dev"]["text_a"]
    tok = AutoTokenizer.from_pretrained(folder)
    plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    fast = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    accelerate(fast, tokens=tuple(sorted({b * max_length for b in batches})))
    out = []
    for b in batches:
        inputs = dict(tok(sentences[:b], padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
        times = {name: time_calls(lambda x, m=m: m(**x), [inputs], repeats, warmup=3).median_ms
                 for name, m in (("pytorch", plain), ("accelerate", fast))}
        out.append({"batch": b, "tokens": int(inputs["input_ids"].shape[1]), "pytorch_ms": times["pytorch"],
                    "accelerate_ms": times["accelerate"], "speedup": times["pytorch"] / times["accelerate"],
                    "max_logit_diff": max_difference(plain, fast, [inputs], classifier=True)})
    return out


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
    """A Markdown table, one column per run; ``rows`` maps run name → (results, report). The last
    column's accuracy is also given as a share of the first's."""
    names = list(rows)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, fn in ROWS:
        lines.append(f"| {label} | " + " | ".join(fn(*rows[n]) for n in names) + " |")
    first, last = rows[names[0]][0], rows[names[-1]][0]
    kept = 100 * last["final"]["dev"]["accuracy"] / first["final"]["dev"]["accuracy"]
    lines.append("| accuracy kept | 100.0% | " + " | ".join(f"{kept:.1f}%" for _ in names[1:]) + " |")
    return "\n".join(lines)


def speed_table(speed: list[dict]) -> str:
    lines = ["| sparse model, SST-2 dev sentences | PyTorch (ms) | bertprune accelerate (ms) | speed-up | max logit difference |",
             "|---|---|---|---|---|"]
    for s in speed:
        lines.append(f"| batch {s['batch']} ({s['tokens']} tokens) | {s['pytorch_ms']:.1f} | {s['accelerate_ms']:.1f} | "
                     f"{s['speedup']:.2f}x | {s['max_logit_diff']:.1e} |")
    return "\n".join(lines)
