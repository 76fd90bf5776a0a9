"""Benchmark: SQuAD v1.1 with all-MiniLM-L6-v2 — dense, gradual magnitude pruning at 80% and 90%,
pruning while distilling (the dense run as teacher) at 80% and 90%, and the high-sparsity recipe
(``sparse-kd``: the student starts from the dense run and learns its start/end logits while the
diagonal Fisher prunes it, LR rewound at each pruning step) at 80% and 90% with its dense twin (the
same recipe at sparsity 0: as many epochs after the dense run, the like-for-like reference).

Training set: ``../shared/data/squad/train-v1.1-first44.json`` (the first 44 articles, 11,877
questions); evaluation: the complete dev set (10,570 questions), official EM/F1. One recipe for the
dense, gmp and distill runs (``RECIPE``), the shipped ``sparse-kd`` recipe with RECIPE's data and length
for the sparse-kd runs; the final model is evaluated (no checkpoint picked on dev). Training batches windows of similar
length (``train.group_by_length``): windows average 161 of 384 tokens, and random batches of 32 pad
to ~343, so grouping halves the work.

    python benchmarks/squad.py --squad-dir ../shared/data/squad
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402

BENCHMARK = "squad"
MODEL = "all-MiniLM-L6-v2"
TRAIN_FILE, DEV_FILE = "train-v1.1-first44.json", "dev-v1.1.json"
RECIPE = {
    "train.epochs": 2, "train.batch_size": 32, "train.lr": 1e-4, "train.warmup_ratio": 0.1, "train.weight_decay": 0.01,
    "data.max_length": 384, "data.doc_stride": 128, "data.max_answer_length": 30, "data.n_best": 20,
    "prune.schedule.start": 0.0, "prune.schedule.end": 0.7, "prune.schedule.every": 10, "train.log_every": 20,
    "train.eval_batch_size": 64, "train.group_by_length": True,
}
RUNS = [("dense", 0.0), ("gmp", 0.8), ("gmp", 0.9), ("distill", 0.8), ("distill", 0.9),
        ("sparse-kd", 0.0), ("sparse-kd", 0.8), ("sparse-kd", 0.9)]
SMOKE = {"train.max_steps": 3, "data.train_examples": 64, "data.eval_examples": 64, "train.batch_size": 8}
# what the sparse-kd runs take from RECIPE: the data, the length of training and the evaluation; the
# learning-rate schedule, KD terms, precision (auto: bf16 where native) and pruning criterion are the recipe's own (as on GLUE)
SPARSE_KD_KEYS = ("train.epochs", "data.max_length", "data.doc_stride", "data.max_answer_length", "data.n_best",
                  "train.log_every", "train.eval_batch_size", "train.group_by_length")
# 2 epochs where GLUE trains 5: a mask update (and LR rewind) every 0.2 epochs keeps GLUE's 7 of them over
# the pruning phase (the first 70% of training), instead of 3 larger jumps
SPARSE_KD_SQUAD = {"prune.schedule.every_epochs": 0.2}


def model_dir(args) -> Path:
    """The run folders of one starting model: ``--out-dir`` itself for the default, a subfolder for another
    (a run of another model must never replace, or distil, the default model's runs)."""
    model = getattr(args, "model", MODEL)
    return Path(args.out_dir) / (Path(model).name if model != MODEL else "")


def run_dir(args, method, sparsity) -> Path:
    tag = getattr(args, "tag", "")
    return model_dir(args) / (f"{method}-{sparsity}" + (f"-{tag}" if tag else ""))


def teacher_dir(args) -> Path:
    """The teacher of every distillation run: the plain dense run of the same model (a tagged variant distils it too)."""
    return model_dir(args) / "dense-0.0"


def model_args(args) -> list[str]:
    """``--model``, ``--tag`` and ``--set`` as a record's command names them (only when given)."""
    model, tag, sets = getattr(args, "model", MODEL), getattr(args, "tag", ""), getattr(args, "set", [])
    return (["--model", model] if model != MODEL else []) + (["--tag", tag] if tag else []) + (["--set", *sets] if sets else [])


def run_config(args, method, sparsity, extra: list[str] | tuple[str, ...] = ()):
    """The resolved config of one run (``args.smoke``: the tiny settings on top; ``args.set``: the variant's
    overrides, after the recipe; ``extra``: overrides applied last, e.g. a universal model's transfer in
    ``benchmarks/universal.py``)."""
    from bertprune.config import DistillRunConfig, RunConfig, load_config
    from bertprune.recipes import DENSE_TWIN, recipe_file

    base = ({k: RECIPE[k] for k in SPARSE_KD_KEYS} | SPARSE_KD_SQUAD) if method == "sparse-kd" else dict(RECIPE)
    o = [f"{k}={v}" for k, v in (base | (SMOKE if args.smoke else {})).items()] + [
        "data.task=squad", f"data.squad_dir={args.squad_dir}", f"data.squad_train_file={TRAIN_FILE}",
        f"data.squad_dev_file={DEV_FILE}", f"model.name={getattr(args, 'model', MODEL)}", f"train.seed={args.seed}",
        f"output_dir={run_dir(args, method, sparsity)}", f"prune.sparsity={sparsity}",
    ]
    extra = [*getattr(args, "set", []), *extra]
    if method == "sparse-kd":
        o += [f"distill.teacher={teacher_dir(args)}"] + (list(DENSE_TWIN) if sparsity == 0 else [])
        return load_config(recipe_file("sparse-kd"), o + list(extra), schema=DistillRunConfig)
    o.append(f"prune.method={'dense' if method == 'dense' else 'gmp'}")
    if method == "distill":
        return load_config(None, o + [f"distill.teacher={teacher_dir(args)}", *extra], schema=DistillRunConfig)
    return load_config(None, o + list(extra), schema=RunConfig)


def run_one(args, cfg, method) -> dict:
    from bertprune.train import distill, finetune

    restart = records.restart(args.resume)  # checkpoints are taken after each epoch's evaluation
    return (distill if method in ("distill", "sparse-kd") else finetune)(cfg, quiet=args.quiet, **restart)


def model_of(r: dict) -> str:
    return r.get("model", MODEL)


def latest_runs() -> dict[tuple[str, float, str, str], dict]:
    """The latest record of each (method, target sparsity, tag, starting model)."""
    return records.latest(records.read(BENCHMARK), key=lambda r: (r["method"], r["target_sparsity"], r.get("tag", ""), model_of(r)))


def best_dense_f1(runs: dict[tuple[str, float, str, str], dict], model: str = MODEL) -> float | None:
    """The reference of every share: the best F1 at sparsity 0 (the dense run, or a sparse-kd twin) of
    the same starting model."""
    return max((r["main_metric"] for (_, s, _, m), r in runs.items() if s == 0 and m == model), default=None)


def twin(runs: dict[tuple[str, float, str, str], dict], key: tuple[str, float, str, str]) -> dict | None:
    """The like-for-like reference of a run: the sparsity-0 run of the same starting point, tag, model and
    epochs. A sparse-kd run starts from the dense run and distils it, so its twin is the sparse-kd recipe at
    sparsity 0; every other method starts from the pre-trained model, so its twin is the dense run."""
    method, _s, tag, model = key
    found = runs.get(("sparse-kd" if method == "sparse-kd" else "dense", 0.0, tag, model))
    return found if found and found["epochs"] == runs[key]["epochs"] else None


def table() -> str:
    recs = latest_runs()
    lines = ["# SQuAD v1.1 (all-MiniLM-L6-v2)", "",
             f"Trained on `{TRAIN_FILE}` (11,877 questions), evaluated on the full dev set (10,570 questions) with the "
             "official EM/F1; final model; share = F1 / the best dense F1 of the same starting model (the dense run, or "
             "the sparse-kd recipe at sparsity 0: as many epochs again, from the dense run). Share of twin = F1 / the F1 of "
             "the run's dense twin: the sparse-kd recipe at sparsity 0 with the same tag for a sparse-kd run, the dense run "
             "for the others, with the same epochs (`-`: not run). A tag names a variant "
             "(its overrides are in the record's command)."]
    lines += records.model_sections({k[3] for k in recs}, MODEL, lambda model: _model_table(
        {k: r for k, r in recs.items() if k[3] == model}, best_dense_f1(recs, model)))
    some = next(iter(recs.values()), None)
    if some:
        lines += ["", f"Recipe (dense, gmp, distill): {json.dumps(RECIPE, sort_keys=True)}. sparse-kd: the shipped recipe "
                  f"(`bertprune distill --recipe sparse-kd`) with these keys as above: {', '.join(SPARSE_KD_KEYS)}; "
                  f"and {json.dumps(SPARSE_KD_SQUAD)} (2 epochs: as many mask updates as on GLUE's 5).",
                  f"Machines: {'; '.join(sorted({r['machine'] for r in recs.values()}))}. "
                  "Each record in `squad.jsonl` holds its command and commit."]
    return "\n".join(lines) + "\n"


def _model_table(recs: dict, dense_f1: float | None) -> list[str]:
    lines = ["| method | tag | target | achieved | non-zero encoder weights | EM | F1 | share of dense F1 | share of twin | epochs | precision | train time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in sorted(recs.items(), key=lambda kv: (kv[0][0] != "dense", kv[0][0], kv[0][1], kv[0][2])):
        method, s, tag, _ = key
        share = f"{100 * r['main_metric'] / dense_f1:.1f}%" if dense_f1 else "-"
        ref = twin(recs, key)
        of_twin = f"{100 * r['main_metric'] / ref['main_metric']:.1f}%" if ref and ref["main_metric"] > 0 else "-"
        lines.append(f"| {method} | {tag or '-'} | {s:.2f} | {r['achieved_sparsity']:.4f} | {r['nonzero_encoder_params']:,} | "
                     f"{100 * r['metrics']['exact_match']:.2f} | {r['main_metric']:.2f} | {share} | {of_twin} | {r['epochs']:g} | "
                     f"{'fp32' if r.get('precision', 'no') == 'no' else r['precision']} | {r['train_seconds'] / 60:.0f} min |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--squad-dir", default=os.environ.get("BERTPRUNE_SQUAD_DIR"))
    p.add_argument("--runs", nargs="+", default=[f"{m}-{s}" for m, s in RUNS], help="e.g. dense-0.0 gmp-0.9")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--model", default=MODEL, help="the starting model (a record names it by its folder's name)")
    p.add_argument("--set", nargs="*", default=[], metavar="key=value", help="overrides of every run named, after the "
                   "recipe (e.g. train.epochs=10); give them a --tag")
    p.add_argument("--tag", default="", help="names the variant: its run folders and table rows")
    p.add_argument("--out-dir", default="runs/bench-squad")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs from their last checkpoint "
                   "(same recipe); without it every run starts over")
    p.add_argument("--smoke", action="store_true", help="tiny runs to check the script (needs $BERTPRUNE_BENCH_RESULTS)")
    args = p.parse_args()
    if not args.squad_dir:
        p.error("--squad-dir (or $BERTPRUNE_SQUAD_DIR) is required")
    if args.set and not args.tag:
        p.error("--set changes the runs: name the variant with --tag (its folders and rows must not mix with the plain runs')")
    if args.smoke:
        if "BERTPRUNE_BENCH_RESULTS" not in os.environ:
            p.error("--smoke needs $BERTPRUNE_BENCH_RESULTS, so that no smoke record lands in benchmarks/results")
    args.commit = records.git_commit()
    from bertprune.cli import _quiet_libraries

    _quiet_libraries()
    for method, s in RUNS:
        if f"{method}-{s}" not in args.runs:
            continue
        cfg = run_config(args, method, s)
        res = run_one(args, cfg, method)
        dev = res["final"]["dev"]
        records.append(BENCHMARK, {
            "benchmark": BENCHMARK, "task": "squad", "model": Path(args.model).name, "tag": args.tag, "method": method,
            "target_sparsity": s,
            "achieved_sparsity": round(res["achieved_sparsity"], 6), "nonzero_encoder_params": res["nonzero_encoder_params"],
            "metrics": dev, "main_metric": round(100 * dev["f1"], 2), "split": "dev (all 10,570 questions)", "seed": args.seed,
            "train_examples": res["train_examples"], "epochs": cfg.train.epochs,
            "precision": cfg.train.mixed_precision,
            "train_seconds": round(res["train_seconds"], 1), "sec_per_step": round(res["sec_per_step_median"], 4),
            "command": records.command_line("benchmarks/squad.py", ["--squad-dir", args.squad_dir, "--runs", f"{method}-{s}",
                                                                     *model_args(args)]),
            "git_commit": args.commit, "machine": records.machine(),
            "recipe": "sparse-kd" if method == "sparse-kd" else "squad",
            "notes": f"train_examples counts windows (features) of {TRAIN_FILE}; "
                     + (f"recipe sparse-kd with {json.dumps({k: RECIPE[k] for k in SPARSE_KD_KEYS} | SPARSE_KD_SQUAD, sort_keys=True)}"
                        if method == "sparse-kd" else f"recipe {json.dumps(RECIPE, sort_keys=True)}")
                     + ("; teacher = the dense run" if method in ("distill", "sparse-kd") else ""),
        })
        (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    print(table())


if __name__ == "__main__":
    main()
