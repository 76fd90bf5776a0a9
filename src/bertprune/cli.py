"""The ``bertprune`` command line.

``bertprune finetune`` builds a config from defaults, ``--config RECIPE.yaml``, the named flags and
free ``key.sub=value`` overrides (in that order) and runs :func:`bertprune.train.finetune`.
``bertprune report`` prints the sparsity report of a run or checkpoint. ``bertprune demo`` is the
main job: dense vs gradually pruned MiniLM-L6 on SST-2. ``bertprune bench`` times a model on this CPU,
dense PyTorch against the sparse engine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import BertpruneError

# named flag → config key; each given flag becomes an override `key=value`
FINETUNE_FLAGS = {
    "task": "data.task",
    "model": "model.name",
    "glue_dir": "data.glue_dir",
    "squad_dir": "data.squad_dir",
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
    "mask": "prune.mask",
    "keep_zeros": "prune.keep_zeros",
}

PRETRAIN_FLAGS = {
    "objective": "objective",
    "text_dir": "data.text_dir",
    "glue_dir": "data.glue_dir",
    "hub_dataset": "data.hub_dataset",
    "hub_config": "data.hub_config",
    "block_size": "data.block_size",
    "nsp": "data.nsp",
    "head_steps": "head.steps",
    **{k: v for k, v in FINETUNE_FLAGS.items() if k in
       ("model", "method", "sparsity", "scope", "epochs", "max_steps", "lr", "batch_size", "seed", "output_dir")},
}


def _run_parser(sub, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """A training command's parser: overrides, recipe and model first; its own flags come next."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    p.add_argument("--config", help="YAML recipe (a file)")
    p.add_argument("--recipe", help="a recipe shipped with bertprune, by name (e.g. sparse-kd); see bertprune/recipes/")
    p.add_argument("--model", help="all-MiniLM-L6-v2 (default), a local HF folder or a hub id")
    return p


def _add_finetune(sub):
    p = _run_parser(
        sub, "finetune", "fine-tune (and prune) a model on a GLUE task",
        "Fine-tune and prune. Config = defaults, then --config YAML, then the flags below, "
        "then key.sub=value overrides (e.g. train.lr=3e-5 prune.schedule.end=0.6). Unknown keys are errors.",
    )
    p.add_argument("--task", help="GLUE task (cola sst2 mrpc stsb qqp mnli qnli rte wnli), squad, or text_classification / "
                   "text_regression on your files (data.train_file=... data.validation_file=...)")
    p.add_argument("--glue-dir", help="local GLUE folder (official TSV layout); default $BERTPRUNE_GLUE_DIR, else the hub")
    p.add_argument("--squad-dir", help="local folder of SQuAD v1.1 JSON files; default $BERTPRUNE_SQUAD_DIR, else the hub")
    p.add_argument("--train-examples", type=int, help="subsample the training set")
    p.add_argument("--max-length", type=int)
    p.add_argument("--mask", help="keep this mask.safetensors fixed (e.g. a universal mask from `bertprune pretrain`)")
    p.add_argument("--keep-zeros", action="store_true", default=None,
                   help="keep the starting checkpoint's zeros (in the targeted matrices) as a fixed mask")
    _add_run_flags(p)


def _positive(text: str) -> int:
    """argparse type of counts: an integer >= 1 (argparse turns the ValueError into a usage error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    """argparse type of counts that may be zero (warm-up runs)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _add_run_flags(p):
    p.add_argument("--method", help="dense, oneshot, gmp or rpp")
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


DISTILL_FLAGS = {**FINETUNE_FLAGS, "teacher": "distill.teacher", "student": "model.name", "temperature": "distill.temperature"}


def _add_distill(sub):
    p = _run_parser(
        sub, "distill", "prune a pre-trained student while distilling a fine-tuned teacher (SparseBERT)",
        "Knowledge-aware pruning while distilling. Loss = attention-score MSE + hidden-state MSE + soft cross-entropy "
        "(weights distill.attn_weight, distill.hidden_weight, distill.pred_weight); pruning = prune.method "
        "(default gmp to prune.sparsity 0.9, schedule ending at half of training; dense = distillation only).",
    )
    p.add_argument("--task", help="GLUE task, squad, text_classification or text_regression")
    p.add_argument("--squad-dir", help="local folder of SQuAD v1.1 JSON files; default $BERTPRUNE_SQUAD_DIR, else the hub")
    p.add_argument("--teacher", help="dense model fine-tuned on the task (a `bertprune finetune` run folder or HF checkpoint)")
    p.add_argument("--student", help="the student's starting checkpoint (default all-MiniLM-L6-v2, pre-trained)")
    p.add_argument("--temperature", type=float, help="τ of the soft cross-entropy (default 1)")
    p.add_argument("--glue-dir", help="local GLUE folder; default $BERTPRUNE_GLUE_DIR, else the hub")
    p.add_argument("--train-examples", type=int, help="subsample the training set")
    p.add_argument("--max-length", type=int)
    _add_run_flags(p)


def _add_pretrain(sub):
    p = _run_parser(
        sub, "pretrain", "pre-training stage (masked LM, or distillation from the dense model) with any pruning method; "
        "writes a pruned checkpoint and its (universal) mask",
        "Objective mlm (default): the masked-LM loss (optionally + NSP). Objective distill: the dense model's hidden "
        "states (distill.hidden_weight), attention distributions (distill.attn_weight, distill.attn_loss=kl), sentence "
        "embeddings (distill.embedding_weight), their similarities within a batch (distill.relation_weight) and optionally the masked-LM loss (distill.task_weight); teacher = the "
        "starting model unless distill.teacher names another. Config = defaults (bertprune/config.py: PretrainConfig), "
        "then --config YAML, then flags, then key.sub=value overrides (e.g. prune.rpp.gamma=1e-3).",
    )
    p.add_argument("--objective", choices=["mlm", "distill"], help="mlm (default) or distill (from the dense model)")
    p.add_argument("--glue-dir", help="with --objective distill: a GLUE folder; every evaluation then also measures "
                                      "zero-shot STS-B (default $BERTPRUNE_GLUE_DIR)")
    p.add_argument("--text-dir", help="folder of .txt files, one document per line; default $BERTPRUNE_TEXT_DIR")
    p.add_argument("--hub-dataset", help="a Hugging Face hub dataset instead, e.g. Salesforce/wikitext")
    p.add_argument("--hub-config", help="its config, e.g. wikitext-103-raw-v1")
    p.add_argument("--block-size", type=int, help="tokens per training block (default 128)")
    p.add_argument("--nsp", action="store_true", default=None, help="add next-sentence prediction (BERT models)")
    p.add_argument("--head-steps", type=int, help="head-only training steps when the head is untrained (default 300)")
    _add_run_flags(p)


def _add_report(sub):
    p = sub.add_parser("report", help="sparsity, parameter and MAC report of a run folder or checkpoint")
    p.add_argument("path", help="run folder, HF checkpoint folder, .safetensors file, or all-MiniLM-L6-v2")
    p.add_argument("--seq-len", type=_positive, default=128, help="sequence length for the MAC count")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--matrices", action="store_true", help="include the per-matrix table")
    p.add_argument("--universal-mask", help="compare with this mask.safetensors (default: a run's prune.mask)")
    p.add_argument("--html", nargs="?", const="", metavar="FILE",
                   help="write a self-contained HTML report (default <run>/report.html)")
    p.add_argument("--tsne", action="store_true", help="HTML: add t-SNE maps of the starting and the final model")
    p.add_argument("--word", default="intelligent", help="HTML with --tsne: the word to zoom on")


def _add_export(sub):
    p = sub.add_parser("export", help="compact sparse files or ONNX (checked against PyTorch, run under ONNX Runtime)")
    p.add_argument("path", help="run folder or checkpoint")
    p.add_argument("--format", required=True, choices=["sparse", "onnx"])
    p.add_argument("--int8", action="store_true", help="sparse: int8 values (lossy); onnx: also an int8 graph")
    p.add_argument("--out", "-o", help="output folder (default <path>/export-<format>)")
    p.add_argument("--seq-len", type=_positive, default=128, help="onnx: sequence length of the check inputs")


def _add_compare(sub):
    p = sub.add_parser("compare", help="runs side by side: one table and one set of plots")
    p.add_argument("runs", nargs="+", help="run folders or checkpoints")
    p.add_argument("--out", "-o", default="runs/compare", help="folder for compare.md and the figures")


def _add_curve(sub):
    p = sub.add_parser("curve", help="metric against sparsity, one line per method, dense as a line")
    p.add_argument("inputs", nargs="+", help="benchmark records (*.jsonl) and/or run folders")
    p.add_argument("--task", required=True, help="e.g. mlm, mrpc, squad")
    p.add_argument("--out", "-o", default="runs/curve", help="output stem (PNG and SVG)")
    p.add_argument("--title", default="")


def _add_tsne(sub):
    p = sub.add_parser("tsne", help="t-SNE of word embeddings of two models, with neighbour overlap")
    p.add_argument("model_a", help="e.g. the starting model (all-MiniLM-L6-v2)")
    p.add_argument("model_b", help="e.g. a pruned run folder")
    p.add_argument("--word", default="intelligent")
    p.add_argument("--words", type=_positive, default=500, help="how many vocabulary words to embed")
    p.add_argument("-k", type=_positive, default=10, help="nearest neighbours")
    p.add_argument("--kind", default="contextual", choices=["contextual", "input"])
    p.add_argument("--out", "-o", default="runs/tsne", help="output stem (PNG and SVG)")


def _add_demo(sub):
    p = sub.add_parser("demo", help="the main job: dense vs gradually pruned all-MiniLM-L6-v2 on SST-2")
    p.add_argument("--glue-dir", help="local GLUE folder; default $BERTPRUNE_GLUE_DIR, else the hub")
    p.add_argument("--output-dir", "-o", default="runs/demo", help="parent folder of the two runs (replaced)")
    p.add_argument("--model", default=None, help="model (default all-MiniLM-L6-v2)")
    p.add_argument("--sparsity", type=float, default=None, help="target sparsity of the pruned run")
    p.add_argument("--train-examples", type=int, default=None, help="SST-2 training subsample")
    p.add_argument("--quiet", action="store_true")


def _add_bench(sub):
    p = sub.add_parser(
        "bench", help="latency and throughput on this CPU: dense PyTorch vs the sparse engine (fp32, int8)",
        description="Time a model on this CPU under dense PyTorch and under bertprune's sparse engine (accelerate, fp32 "
                    "and int8): median and p90 ms per batch, sequences/s, speed-up, largest output difference from PyTorch.",
    )
    p.add_argument("path", help="a bertprune run folder (its final/) or a Hugging Face model folder (classifier or bare encoder)")
    p.add_argument("--batch-sizes", nargs="+", type=_positive, default=[1, 8], metavar="N", help="default 1 8")
    p.add_argument("--seq-lens", nargs="+", type=_positive, default=None, metavar="N",
                   help="lengths of random-token inputs (default 128, or none when --texts is given)")
    p.add_argument("--texts", metavar="FILE", help="UTF-8 file, one text per line: run in order, each batch padded to its longest text")
    p.add_argument("--runs", type=_positive, default=20, help="timed passes (default 20)")
    p.add_argument("--warmup", type=_non_negative, default=3, help="untimed passes first (default 3)")
    p.add_argument("--threads", type=_positive, help="PyTorch threads (default: PyTorch's)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 engine")
    p.add_argument("--task", help="also measure this GLUE task's dev metric under each engine; stsb_zeroshot: a bare encoder's zero-shot STS-B (cosine of mean-pooled embeddings, Spearman)")
    p.add_argument("--glue-dir", help="local GLUE folder for --task; default $BERTPRUNE_GLUE_DIR, else the hub")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertprune", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_finetune(sub)
    _add_pretrain(sub)
    _add_distill(sub)
    _add_report(sub)
    _add_export(sub)
    _add_compare(sub)
    _add_curve(sub)
    _add_tsne(sub)
    _add_demo(sub)
    _add_bench(sub)
    return parser


def flag_overrides(args: argparse.Namespace, table: dict[str, str]) -> list[str]:
    """Named flags as ``key=value`` overrides, followed by the free overrides."""
    flags = [f"{key}={_yaml_value(getattr(args, attr))}" for attr, key in table.items() if getattr(args, attr, None) is not None]
    return flags + list(args.overrides)


def _yaml_value(value) -> str:
    """A flag's value as the YAML scalar an override holds. Strings are double-quoted (JSON is YAML), so a
    path such as ``it's`` or ``[draft]`` stays a string instead of failing or turning into a list."""
    return json.dumps(value) if isinstance(value, str) else str(value)


def finetune_overrides(args: argparse.Namespace) -> list[str]:
    return flag_overrides(args, FINETUNE_FLAGS)


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
    if stray or (rest and args.command not in ("finetune", "pretrain", "distill")):
        parser.error(f"unrecognized arguments: {' '.join(stray or rest)}")
    if rest:
        args.overrides = list(args.overrides) + rest
    if getattr(args, "recipe", None):
        if args.config:
            parser.error("give --recipe NAME or --config FILE, not both")
        from .recipes import recipe_file

        try:
            args.config = str(recipe_file(args.recipe))
        except BertpruneError as e:
            parser.error(str(e))
    return args


def run(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from .modelcard import remember_cli_arguments

    remember_cli_arguments(sys.argv[1:] if argv is None else argv)  # for the model card of final/
    _quiet_libraries()
    if args.command == "finetune":
        from .config import load_config
        from .train import finetune

        cfg = load_config(args.config, finetune_overrides(args))
        results = finetune(cfg, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
        print(json.dumps({"output_dir": cfg.output_dir, "final": results["final"]}, indent=1))
    elif args.command == "pretrain":
        from .config import PretrainConfig, load_config
        from .pretrain import pretrain

        cfg = load_config(args.config, flag_overrides(args, PRETRAIN_FLAGS), schema=PretrainConfig)
        results = pretrain(cfg, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
        print(json.dumps({"output_dir": cfg.output_dir, "final": results["final"],
                          "mask": str(Path(cfg.output_dir) / "final" / "mask.safetensors")}, indent=1))
    elif args.command == "distill":
        from .config import DistillRunConfig, load_config
        from .train import distill

        cfg = load_config(args.config, flag_overrides(args, DISTILL_FLAGS), schema=DistillRunConfig)
        results = distill(cfg, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
        print(json.dumps({"output_dir": cfg.output_dir, "final": results["final"]}, indent=1))
    elif args.command == "report":
        from .report import sparsity_report, to_markdown

        report = sparsity_report(args.path, seq_len=args.seq_len, universal_mask=args.universal_mask)
        print(json.dumps(report, indent=1) if args.json else to_markdown(report, matrices=args.matrices))
        if args.html is not None:
            from .html_report import build_html
            from .paths import make_output_dir
            from .report import find_checkpoint

            folder = find_checkpoint(args.path)
            default = (folder.parent if (folder.parent / "config.yaml").is_file() else folder) / "report.html"
            if args.html and Path(args.html).is_dir():  # writing the page would fail only after the report's work
                raise BertpruneError(f"--html {args.html} is a folder; give a file name, e.g. {Path(args.html) / 'report.html'}")
            make_output_dir(Path(args.html or default).parent, "--html")
            out = build_html(args.path, args.html or default, args.seq_len, tsne=args.tsne, focus=args.word)
            print(f"HTML report: {out}", file=sys.stderr)
    elif args.command == "export":
        from .report import find_checkpoint

        out = args.out or str(Path(args.path) / f"export-{args.format}{'-int8' if args.int8 else ''}")
        if args.format == "sparse":
            from .sparse.format import export_sparse

            result = export_sparse(args.path, out, int8=args.int8)
        else:
            from .sparse.onnx_export import export_onnx

            result = export_onnx(args.path, out, int8=args.int8, seq_len=args.seq_len)
        print(json.dumps({"out": out, "source": str(find_checkpoint(args.path)), **result}, indent=1))
    elif args.command == "compare":
        from .compare import compare_runs

        table, figures = compare_runs(args.runs, args.out)
        print(table)
        print(f"figures: {', '.join(map(str, figures))}", file=sys.stderr)
    elif args.command == "curve":
        from .compare import curve_points
        from .paths import output_stem
        from .plots import metric_vs_sparsity

        series, dense, metric = curve_points(args.inputs, args.task)
        paths = metric_vs_sparsity(series, output_stem(args.out), metric, dense, args.title)
        print(json.dumps({"series": series, "dense": dense, "figures": [str(p) for p in paths]}, indent=1))
    elif args.command == "tsne":
        from .embeddings import tsne_compare
        from .paths import output_stem

        result = tsne_compare(args.model_a, args.model_b, output_stem(args.out), args.word, args.words, args.k, args.kind)
        print(json.dumps(result, indent=1))
    elif args.command == "demo":
        from .demo import demo

        demo(args.output_dir, glue_dir=args.glue_dir, model=args.model, sparsity=args.sparsity,
             train_examples=args.train_examples, quiet=args.quiet)
    elif args.command == "bench":
        from .bench import bench, to_json, to_markdown

        result = bench(args.path, args.batch_sizes, args.seq_lens, texts=args.texts, int8=not args.no_int8, runs=args.runs,
                       warmup=args.warmup, threads=args.threads, task=args.task, glue_dir=args.glue_dir)
        print(to_json(result) if args.json else to_markdown(result))
    return 0


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except BertpruneError as e:
        print(f"bertprune: error: {e}", file=sys.stderr)
        code = e.exit_code
    sys.exit(code)
