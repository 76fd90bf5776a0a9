"""The model card of a run's ``final/``: a ``README.md`` in the Hugging Face model-card format.

YAML metadata (base model, library, pipeline tag, tags) followed by what a reader needs to trust and
use the checkpoint: the sparsity *counted* in the saved weights (from the run's report, not the
target asked for), the pattern, the method and its recipe, the metrics of the final model, the
command that made it, and how to load and accelerate it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

PIPELINE_TAGS = {"squad": "question-answering", "mlm": "fill-mask"}


_cli_argv: list[str] | None = None  # set by bertprune.cli.run: the arguments it was given


def remember_cli_arguments(argv: list[str]) -> None:
    global _cli_argv
    _cli_argv = list(argv)


def invocation() -> str:
    """The command that made this run, as a user would type it: the ``bertprune`` arguments when the
    CLI (or ``cli.run``) started it, else this process's command line."""
    if _cli_argv is not None:
        return shlex.join(["bertprune", *_cli_argv])
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if name in ("bertprune", "__main__.py"):
        return shlex.join(["bertprune", *sys.argv[1:]])
    return shlex.join(["python", *sys.argv]) if name else "(Python API)"


def _metrics_rows(final_eval: dict[str, Any]) -> list[str]:
    rows = []
    for split, metrics in final_eval.items():
        if isinstance(metrics, dict):
            rows += [f"| {split} | {name} | {value:.4f} |" for name, value in metrics.items() if isinstance(value, (int, float))]
    return rows


def model_card(cfg, task_name: str, final_eval: dict[str, Any], report: dict[str, Any], command: str) -> str:
    """The card's text. ``report``: :func:`bertprune.report.write_report`'s dict for ``final/``."""
    prune = cfg.prune
    method = f"{prune.method}, while distilling a dense teacher" if getattr(cfg, "distill", None) else prune.method
    counted = report["sparsity"]["targeted"]
    params = report["params"]
    meta = {
        "base_model": cfg.model.name,
        "library_name": "transformers",
        "pipeline_tag": PIPELINE_TAGS.get(task_name, "text-classification"),
        "tags": ["bertprune", "sparse", "pruned", f"sparsity-{round(100 * counted)}", prune.granularity],
    }
    criterion = prune.criterion if prune.method == "gradual" else {"rpp": "rpp"}.get(prune.method, "magnitude")
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "",
        f"# {task_name}: {100 * counted:.1f}% sparse {Path(cfg.model.name).name}", "",
        f"Pruned with bertprune from `{cfg.model.name}` on `{task_name}`. The zeros are in the "
        f"weights: this is a plain Hugging Face checkpoint, with its mask in `mask.safetensors`.", "",
        "| | |", "|---|---|",
        f"| sparsity (counted zeros in the pruned matrices) | {counted:.4f} (target {prune.sparsity}) |",
        f"| non-zero encoder linear weights | {params['encoder_linear_nonzero']:,} of {params['encoder_linear']:,} |",
        f"| pattern | {prune.granularity} |",
        f"| method | {method}; criterion {criterion}; scope {prune.scope} |",
        f"| schedule | {prune.schedule.kind}, initial {prune.schedule.initial_sparsity}, "
        f"start {prune.schedule.start}, end {prune.schedule.end} |",
        f"| training | {cfg.train.epochs} epochs, lr {cfg.train.lr:g} ({cfg.train.lr_schedule}), batch {cfg.train.batch_size}, "
        f"seed {cfg.train.seed} |",
        "", "## Metrics of this model (final step, no checkpoint picked on them)", "",
        "| split | metric | value |", "|---|---|---|", *_metrics_rows(final_eval),
        "", "## How it was made", "", "```bash", command, "```", "",
        "The complete resolved configuration is `config.yaml` in the run folder this checkpoint came from.",
        "", "## Use it", "", "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer"
        if task_name not in PIPELINE_TAGS else "from transformers import AutoModel, AutoTokenizer",
        f"model = {'AutoModelForSequenceClassification' if task_name not in PIPELINE_TAGS else 'AutoModel'}"
        f".from_pretrained(PATH)   # the folder of this README",
        "tokenizer = AutoTokenizer.from_pretrained(PATH)",
        "from bertprune import accelerate",
        "fast = accelerate(model)   # sparse CPU kernels; outputs equal the model's to fp32 rounding",
        "```", "",
        "`bertprune report PATH` recounts the sparsity; `bertprune export PATH --format sparse` writes the compact file.",
    ]
    return "\n".join(lines) + "\n"
