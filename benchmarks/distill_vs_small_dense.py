"""Benchmark: is sparse pruning while distilling better than a small dense model? (SparseBERT's thesis)

On MRPC, STS-B, RTE, CoLA (full training sets) and SST-2 (a seeded 8,000-sentence subsample), with
the recipe of ``glue_magnitude.py`` (3 epochs, batch 32, lr 1e-4, cubic schedule ending at 70%):

- ``dense`` teacher: all-MiniLM-L6-v2 fine-tuned (the dense run of glue_magnitude.py, reused);
- ``distill``: all-MiniLM-L6-v2 (pre-trained) pruned while distilling the teacher at 50% (about the
  non-zero encoder weights of the 3-layer MiniLM), 90% and 95%;
- ``gmp``: the same sparsities without distillation (50% and 90% reused from glue_magnitude.py);
- small dense: paraphrase-MiniLM-L3-v2 fine-tuned (``dense``), and distilled from the same teacher
  without pruning (``distill``, target 0);
- ablation: the student starts from the fine-tuned teacher instead of the pre-trained model
  (``distill-from-teacher``, 90%).

A record reused from ``glue_magnitude.jsonl`` keeps its own command and commit and says so in
``reused_from``. The ``cost`` stage times a distillation step against a dense fine-tuning step on
the same batches (``results/distill_step_cost.json``); it runs only when asked, because a timing
taken beside other work is wrong and would overwrite a quiet one.

    python benchmarks/distill_vs_small_dense.py --glue-dir ../shared/data/glue --shared ../shared
    python benchmarks/distill_vs_small_dense.py --stage cost --glue-dir ../shared/data/glue  # on a quiet machine
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import glue_magnitude as gm  # noqa: E402  (the same recipe, tasks and metrics)
import records  # noqa: E402

BENCHMARK = "distill_vs_small_dense"
TASKS = gm.TASKS
L6, L3 = "all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2"
SPARSITIES = [0.5, 0.9, 0.95]


def teacher_dir(args, task) -> Path:
    return Path(args.glue_runs) / f"{task}-dense-0.0"


def _record(args, task, model, method, sparsity, res, cmd, notes):
    dev = res["final"]["dev"]
    return {
        "benchmark": BENCHMARK, "task": task, "model": model, "method": method, "target_sparsity": sparsity,
        "achieved_sparsity": round(res["achieved_sparsity"], 6), "nonzero_encoder_params": res["nonzero_encoder_params"],
        "metrics": dev, "main_metric": round(100 * dev[gm.MAIN[task]], 2), "split": "dev", "seed": args.seed,
        "train_examples": res["train_examples"], "epochs": gm.RECIPE["train.epochs"],
        "train_seconds": round(res["train_seconds"], 1), "sec_per_step": round(res["sec_per_step_median"], 4),
        "command": records.command_line("benchmarks/distill_vs_small_dense.py", cmd), "git_commit": args.commit,
        "machine": records.machine(),
        "notes": notes + f"; recipe of glue_magnitude.py {json.dumps(gm.RECIPE, sort_keys=True)}; final model, full dev set"
                 + (f"; SST-2 subsample {gm.SST2_SUBSAMPLE} (seeded)" if task == "sst2" else ""),
    }


def _overrides(args, task, model, method, sparsity, out):
    o = [f"{k}={v}" for k, v in gm.RECIPE.items()] + [
        f"data.task={task}", f"data.glue_dir={args.glue_dir}", f"model.name={model}", f"prune.method={method}",
        f"prune.sparsity={sparsity}", f"train.seed={args.seed}", f"output_dir={out}"]
    if task == "sst2":
        o.append(f"data.train_examples={gm.SST2_SUBSAMPLE}")
    return o


def run_finetune(args, task, model, method, sparsity, name):
    from bertprune.config import load_config
    from bertprune.train import finetune

    out = Path(args.out_dir) / f"{task}-{name}" if name else teacher_dir(args, task)  # no name: the teacher
    return finetune(load_config(None, _overrides(args, task, model, method, sparsity, out)), overwrite=True, quiet=args.quiet)


def run_distill(args, task, student, sparsity, name):
    from bertprune.config import DistillRunConfig, load_config
    from bertprune.train import distill

    out = Path(args.out_dir) / f"{task}-{name}"
    o = _overrides(args, task, student, "gmp" if sparsity > 0 else "dense", sparsity, out)
    o.append(f"distill.teacher={teacher_dir(args, task)}")
    return distill(load_config(None, o, schema=DistillRunConfig), overwrite=True, quiet=args.quiet)


def ensure_teacher(args, task):
    """The dense teacher: glue_magnitude.py's dense run (same recipe), trained here if missing."""
    if not (teacher_dir(args, task) / "final" / "config.json").is_file():
        run_finetune(args, task, L6, "dense", 0.0, None)


def reuse(task, method, sparsity) -> dict | None:
    """The newest glue_magnitude.py record of this run, relabelled for this benchmark."""
    found = [r for r in records.read("glue_magnitude") if r["task"] == task and r["method"] == method
             and r["target_sparsity"] == sparsity]
    if not found:
        return None
    rec = dict(found[-1])
    rec.update(benchmark=BENCHMARK, reused_from="glue_magnitude.jsonl")
    return rec


def stage_runs(args):
    small = str(Path(args.shared) / "models" / L3)
    for task in args.tasks:
        base = ["--glue-dir", args.glue_dir, "--tasks", task]
        plan = [("dense", L6, 0.0, None, "run_finetune", "the dense teacher"),
                ("gmp", L6, 0.5, "gmp-0.5", "run_finetune", "gmp without distillation"),
                ("gmp", L6, 0.9, "gmp-0.9", "run_finetune", "gmp without distillation"),
                ("gmp", L6, 0.95, "gmp-0.95", "run_finetune", "gmp without distillation")]
        plan += [("distill", L6, s, f"distill-{s}", "run_distill", "pruned while distilling; student = pre-trained model") for s in SPARSITIES]
        plan += [("dense", small, 0.0, "L3-dense", "run_finetune", "small dense model fine-tuned"),
                 ("distill", small, 0.0, "L3-distill", "run_distill", "small dense model distilled from the teacher, no pruning"),
                 ("distill-from-teacher", str(teacher_dir(args, task) / "final"), 0.9, "distill-from-teacher-0.9", "run_distill",
                  "ablation: student = the fine-tuned teacher, pruned while distilling")]
        for method, model, sparsity, name, fn, notes in plan:
            if args.only and (name or "teacher") not in args.only:
                continue
            reused = reuse(task, method, sparsity) if model == L6 and method in ("dense", "gmp") else None
            if reused is not None and (method != "dense" or (teacher_dir(args, task) / "final").is_dir()):
                records.append(BENCHMARK, reused)
                continue
            res = run_finetune(args, task, model, method, sparsity, name) if fn == "run_finetune" else \
                run_distill(args, task, model, sparsity, name)
            label = L3 if model == small else L6
            records.append(BENCHMARK, _record(args, task, label, method, sparsity, res, base + ["--only", name or "teacher"], notes))
            (records.RESULTS / f"{BENCHMARK}.md").write_text(table())


def stage_cost(args, steps: int = 20):
    """Seconds per optimizer step on the same MRPC batches: dense fine-tuning vs distillation (90%)."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from bertprune.config import DistillConfig, load_config
    from bertprune.methods import Dense, GradualMagnitude
    from bertprune.methods.distill import Distillation
    from bertprune.tasks.glue import GlueTask
    from bertprune.train import train_step

    task = "mrpc"
    ensure_teacher(args, task)
    cfg = load_config(None, _overrides(args, task, L6, "dense", 0.0, "/tmp/unused"))
    glue = GlueTask(cfg)

    class _Acc:  # what GlueTask.build needs of an Accelerator
        def main_process_first(self):
            import contextlib

            return contextlib.nullcontext()

    built = glue.build(_Acc())
    batches = list(DataLoader(built.train_set.select(range(32 * steps)), batch_size=32, collate_fn=DataCollatorWithPadding(built.tokenizer)))
    times = {"dense": [], "distill": []}
    models = {}
    for kind in ("dense", "distill"):
        torch.manual_seed(0)
        model = glue.build(_Acc()).model if kind == "distill" else built.model
        method = Dense() if kind == "dense" else Distillation(GradualMagnitude(0.9), lambda: glue.load_teacher(str(teacher_dir(args, task))),
                                                              DistillConfig(teacher="t"))
        method.prepare(model, steps)
        opt = torch.optim.AdamW(list(model.parameters()) + method.extra_parameters(), lr=1e-5)
        models[kind] = (model, method, opt)
    for i, batch in enumerate(batches):  # interleaved, so both see the same machine state
        for kind, (model, method, opt) in models.items():
            start = time.perf_counter()
            train_step(model, batch, method, opt, None, i + 1, max_grad_norm=None)
            times[kind].append(time.perf_counter() - start)
    dense, dist = statistics.median(times["dense"][2:]), statistics.median(times["distill"][2:])
    result = {"task": task, "batch_size": 32, "steps": steps, "dense_sec_per_step": round(dense, 4),
              "distill_sec_per_step": round(dist, 4), "ratio": round(dist / dense, 3),
              "what": "median seconds per optimizer step (first 2 dropped), the same batches interleaved; distill = student "
                      "forward with hidden states + teacher forward (no grad) + attention/hidden/prediction losses + backward "
                      "+ AdamW + mask re-application (gmp 90%)",
              "command": records.command_line("benchmarks/distill_vs_small_dense.py", ["--stage", "cost", "--glue-dir", args.glue_dir]),
              "git_commit": args.commit, "machine": records.machine()}
    (records.RESULTS / "distill_step_cost.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


def table() -> str:
    recs = records.latest(records.read(BENCHMARK), key=lambda r: (r["task"], r["model"], r["method"], r["target_sparsity"]))
    rows = sorted({(m, meth, s) for (_, m, meth, s) in recs}, key=lambda k: (k[0] != L6, k[1] != "dense", k[1], k[2]))
    tasks = [t for t in TASKS if any(k[0] == t for k in recs)]  # the tasks run so far (a stated subset)
    lines = ["# Pruning while distilling vs a small dense model", "",
             "Dev metric (0-100) of the final model; share = metric / the dense teacher's on the same task; "
             "non-zero encoder weights = non-zero weights in the encoder's linear matrices.", "",
             "| model | method | sparsity | non-zero encoder weights | " + " | ".join(f"{t} ({gm.MAIN[t]})" for t in tasks)
             + " | average | share of teacher |", "|---|---|---|---|" + "---|" * (len(tasks) + 2)]
    teacher = {t: recs.get((t, L6, "dense", 0.0)) for t in tasks}
    for model, method, s in rows:
        cells, shares, nnz = [], [], None
        for t in tasks:
            r = recs.get((t, model, method, s))
            if r is None:
                cells.append("-")
                continue
            nnz = r["nonzero_encoder_params"]
            cells.append(f"{r['main_metric']:.2f}")
            if teacher[t] and teacher[t]["main_metric"]:
                shares.append(r["main_metric"] / teacher[t]["main_metric"])
        vals = [float(c) for c in cells if c != "-"]
        avg = f"{statistics.mean(vals):.2f}" if len(vals) == len(tasks) else "-"
        share = f"{100 * statistics.mean(shares):.1f}%" if len(shares) == len(tasks) else "-"
        label = "dense (teacher)" if (model, method) == (L6, "dense") else method
        lines.append(f"| {model} | {label} | {s:.2f} | {nnz:,} | " + " | ".join(cells) + f" | {avg} | {share} |")
    cost = records.RESULTS / "distill_step_cost.json"
    if cost.exists():
        c = json.loads(cost.read_text())
        lines += ["", f"Cost: a distillation step takes {c['ratio']:.2f}x a dense fine-tuning step on the same MRPC batches "
                      f"({c['distill_sec_per_step']:.3f} s vs {c['dense_sec_per_step']:.3f} s, median of {c['steps'] - 2}; "
                      f"`{c['command']}`)."]
    some = next(iter(recs.values()), None)
    if some:
        lines += ["", f"Machine: {some['machine']}. Each record in `{BENCHMARK}.jsonl` holds its command and commit; "
                      "rows reused from glue_magnitude.jsonl say so (`reused_from`)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", nargs="+", choices=["runs", "cost"], default=["runs"],
                   help="runs: the table's fine-tuning runs; cost: time a distillation step vs a dense step (quiet machine)")
    p.add_argument("--glue-dir", default=os.environ.get("BERTPRUNE_GLUE_DIR"))
    p.add_argument("--shared", default="../shared", help="the shared folder (for models/paraphrase-MiniLM-L3-v2)")
    p.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    p.add_argument("--only", nargs="*", help="run only these rows (e.g. distill-0.9 L3-dense)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--glue-runs", default="runs/bench-glue-magnitude", help="glue_magnitude.py's run folder (teachers)")
    p.add_argument("--out-dir", default="runs/bench-distill")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny runs to check the script (needs $BERTPRUNE_BENCH_RESULTS)")
    args = p.parse_args()
    if args.smoke:
        if "BERTPRUNE_BENCH_RESULTS" not in os.environ:
            p.error("--smoke needs $BERTPRUNE_BENCH_RESULTS, so that no smoke record lands in benchmarks/results")
        gm.RECIPE.update({"train.max_steps": 3, "data.eval_examples": 16, "train.batch_size": 8})
        gm.SST2_SUBSAMPLE = 32
    if not args.glue_dir:
        p.error("--glue-dir (or $BERTPRUNE_GLUE_DIR) is required")
    args.commit = records.git_commit()
    from bertprune.cli import _quiet_libraries

    _quiet_libraries()
    if "cost" in args.stage:
        stage_cost(args, steps=4 if args.smoke else 20)
    if "runs" in args.stage:
        stage_runs(args)
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    print(table())


if __name__ == "__main__":
    main()
