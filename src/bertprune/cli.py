"""The ``bertprune`` command line.

``bertprune finetune`` builds a config from defaults, ``--config RECIPE.yaml``, the named flags and
free ``key.sub=value`` overrides (in that order) and runs :func:`bertprune.train.finetune`.
``bertprune report`` prints the sparsity report of a run or checkpoint. ``bertprune demo`` is the
main job: dense vs gradually pruned MiniLM-L6 on SST-2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import BertpruneError

# named flag → config key; each given flag becomes an override `key=value`
FINETUNE_FLAGS = {
    "task": "data.task",
    "model": "model.name",
    "glue_dir": "data.glue_dir",
    "train_examples": "data.train_examples",
    "max_length": "data.max_length",
    "method": "prune.method",
    "sparsity": "prune.sparsity",
    "scope": "prune.scope",
    "epochs": "train.epochs",
    "max_steps": "train.max_steps",
    "lr": "train.lr",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
    "output_dir": "output_dir",
}


def _add_finetune(sub):
    p = sub.add_parser(
        "finetune",
        help="fine-tune (and prune) a model on a GLUE task",
        description="Fine-tune and prune. Config = defaults, then --config YAML, then the flags below, "
        "then key.sub=value overrides (e.g. train.lr=3e-5 prune.schedule.end=0.6). Unknown keys are errors.",
    )
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    p.add_argument("--config", help="YAML recipe")
    p.add_argument("--task", help="GLUE task: cola sst2 mrpc stsb qqp mnli qnli rte wnli")
    p.add_argument("--model", help="all-MiniLM-L6-v2 (default), a local HF folder or a hub id")
    p.add_argument("--glue-dir", help="local GLUE folder (official TSV layout); default $BERTPRUNE_GLUE_DIR, else the hub")
    p.add_argument("--train-examples", type=int, help="subsample the training set")
    p.add_argument("--max-length", type=int)
    p.add_argument("--method", help="dense, oneshot or gmp")
    p.add_argument("--sparsity", type=float, help="target fraction of zeros in [0, 1)")
    p.add_argument("--scope", help="local (per matrix) or global")
    p.add_argument("--epochs", type=float)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int, help="global batch size (split across processes)")
    p.add_argument("--seed", type=int)
    p.add_argument("--output-dir", "-o")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --output-dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_report(sub):
    p = sub.add_parser("report", help="sparsity, parameter and MAC report of a run folder or checkpoint")
    p.add_argument("path", help="run folder, HF checkpoint folder, .safetensors file, or all-MiniLM-L6-v2")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length for the MAC count")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--matrices", action="store_true", help="include the per-matrix table")


def _add_demo(sub):
    p = sub.add_parser("demo", help="the main job: dense vs gradually pruned all-MiniLM-L6-v2 on SST-2")
    p.add_argument("--glue-dir", help="local GLUE folder; default $BERTPRUNE_GLUE_DIR, else the hub")
    p.add_argument("--output-dir", "-o", default="runs/demo", help="parent folder of the two runs (replaced)")
    p.add_argument("--model", default=None, help="model (default all-MiniLM-L6-v2)")
    p.add_argument("--sparsity", type=float, default=None, help="target sparsity of the pruned run")
    p.add_argument("--train-examples", type=int, default=None, help="SST-2 training subsample")
    p.add_argument("--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertprune", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_finetune(sub)
    _add_report(sub)
    _add_demo(sub)
    return parser


def finetune_overrides(args: argparse.Namespace) -> list[str]:
    flags = [f"{key}={getattr(args, attr)}" for attr, key in FINETUNE_FLAGS.items() if getattr(args, attr) is not None]
    return flags + list(args.overrides)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, letting ``key=value`` overrides sit anywhere among the flags."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    stray = [r for r in rest if r.startswith("-") or "=" not in r]
    if stray or (rest and args.command != "finetune"):
        parser.error(f"unrecognized arguments: {' '.join(stray or rest)}")
    if rest:
        args.overrides = list(args.overrides) + rest
    return args


def run(argv: list[str] | None = None) -> int:
    args = parse(argv)
    _quiet_libraries()
    if args.command == "finetune":
        from .config import load_config
        from .train import finetune

        cfg = load_config(args.config, finetune_overrides(args))
        results = finetune(cfg, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
        print(json.dumps({"output_dir": cfg.output_dir, "final": results["final"]}, indent=1))
    elif args.command == "report":
        from .report import sparsity_report, to_markdown

        report = sparsity_report(args.path, seq_len=args.seq_len)
        print(json.dumps(report, indent=1) if args.json else to_markdown(report, matrices=args.matrices))
    elif args.command == "demo":
        from .demo import demo

        demo(args.output_dir, glue_dir=args.glue_dir, model=args.model, sparsity=args.sparsity,
             train_examples=args.train_examples, quiet=args.quiet)
    return 0


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except BertpruneError as e:
        print(f"bertprune: error: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)
