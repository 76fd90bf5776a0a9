"""Benchmark: RPP vs NIP (gradual magnitude) at the masked-LM stage, then each universal mask kept
fixed while fine-tuning GLUE tasks, against dense fine-tuning.

Stages (each appends records to ``results/rpp_universal.jsonl`` and rebuilds ``.md``):

``head``      all-MiniLM-L6-v2 ships with an untrained MLM head: train it, encoder frozen (record:
              held-out MLM accuracy before/after). Every later MLM run starts from this checkpoint.
``sweep``     short target-mode RPP runs at 80% over ε, T and the γ controller's rate, plus fixed-γ
              runs; the defaults in ``RppConfig`` were chosen from these records.
``mlm``       RPP and NIP at 50/70/80/90% (same steps, same cubic schedule length, same recipe), and
              a dense run of the same length: held-out MLM accuracy (``task: mlm``).
``finetune``  each universal mask fixed (``method: rpp+mask`` / ``gmp+mask``) while fine-tuning MRPC,
              STS-B, RTE, CoLA and SST-2 (seeded subsamples of the training sets, full dev sets);
              against the original dense model (``dense``) and the dense model after the same
              masked-LM stage (``dense+mlm``), all with one recipe.

    python benchmarks/rpp_universal.py --stage head sweep mlm finetune --rpp-from-sweep \\
        --text-dir ../shared/data/text --glue-dir ../shared/data/glue

The full scale is hours of a 2-core machine. ``--resume`` makes the same command continue after an
interruption: runs already recorded at this ``--scale`` are skipped (records name their run folder),
and an interrupted run continues from its last checkpoint (every 100 steps at the masked-LM stage,
every epoch when fine-tuning); resume is bit-exact, so the records are those of an uninterrupted run.
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
import records  # noqa: E402

BENCHMARK = "rpp_universal"
MODEL = "all-MiniLM-L6-v2"
SPARSITIES = [0.5, 0.7, 0.8, 0.9]
TASKS = ["mrpc", "stsb", "rte", "cola", "sst2"]
MAIN = {"sst2": "accuracy", "mrpc": "f1", "stsb": "spearman", "cola": "mcc", "rte": "accuracy"}
FT_TRAIN_EXAMPLES = 2000
HEAD = {"head.steps": 300, "head.lr": 1e-3}
MLM = {  # the masked-LM stage recipe, the same for RPP, NIP and dense
    "data.block_size": 128, "data.validation_fraction": 0.05, "data.eval_blocks": 1000,
    "train.batch_size": 32, "train.lr": 1e-4, "train.warmup_ratio": 0.06, "train.weight_decay": 0.01,
    "train.log_every": 10, "train.save_every": 100, "prune.schedule.start": 0.0, "prune.schedule.end": 0.7,
}
MLM_STEPS = 400
SWEEP_STEPS = 150
SWEEP_GRID = "full"
SCALE = "full"
# `--scale quick`: the same stages, shorter (for a 2-core machine and a session of a few hours);
# every record made this way says so in its command and notes.
QUICK = {"mlm_steps": 120, "sweep_steps": 60, "ft_examples": 1000, "eval_blocks": 500, "head_steps": 200}
FT = {  # the fine-tuning recipe, the same for every run
    "train.epochs": 3, "train.batch_size": 32, "train.lr": 1e-4, "train.warmup_ratio": 0.06,
    "train.weight_decay": 0.01, "data.max_length": 128, "train.log_every": 20, "train.group_by_length": True,
}


def _quiet():
    from bertprune.cli import _quiet_libraries

    _quiet_libraries()


def _overrides(d: dict) -> list[str]:
    return [f"{k}={v}" for k, v in d.items()]


def _recorded(args, run: str, checkpoint: Path | None = None) -> bool:
    """With --resume: does a record of run folder ``run`` at this --scale exist already?

    ``checkpoint``: a run whose checkpoint later stages read (the head, the MLM stage) counts as done
    only while that checkpoint is still in --out-dir. Run folders are not committed, so on a fresh
    checkout such a run is trained again; its new record is appended and supersedes the old one in the
    tables (records are never edited)."""
    done = args.resume and any(r.get("run") == run and f"--scale {SCALE}" in r["command"] for r in records.read(BENCHMARK))
    if done and checkpoint is not None and not (checkpoint / "config.json").exists():
        print(f"{run}: recorded, but its checkpoint {checkpoint} is gone; training it again", flush=True)
        return False
    return done


def _mlm_record(args, run, results, method, sparsity, steps, notes, stage, extra_args):
    dev = results["final"]["dev"]
    blocks = results["train_examples"]
    return {
        "benchmark": BENCHMARK, "run": run, "task": "mlm", "model": MODEL, "method": method,
        "target_sparsity": sparsity, "achieved_sparsity": round(results["achieved_sparsity"], 6),
        "nonzero_encoder_params": results["nonzero_encoder_params"],
        "metrics": {k: dev[k] for k in ("mlm_accuracy", "mlm_loss", "mlm_perplexity")},
        "main_metric": round(100 * dev["mlm_accuracy"], 2), "split": f"held-out 5% of ../shared/data/text ({MLM['data.eval_blocks']} blocks)",
        "seed": args.seed, "train_examples": steps * MLM["train.batch_size"],
        "epochs": round(steps * MLM["train.batch_size"] / blocks, 4), "train_seconds": round(results["train_seconds"], 1),
        "sec_per_step": round(results["sec_per_step_median"] or 0.0, 4), "steps": steps,
        "method_summary": results.get("method_summary"), "head_training": results.get("head_training"),
        "stage": stage,
        "command": records.command_line("benchmarks/rpp_universal.py", ["--stage", stage, "--scale", SCALE, *extra_args]),
        "git_commit": args.commit, "machine": records.machine(),
        "notes": f"{notes}; block 128 tokens, batch 32; recipe {json.dumps(MLM, sort_keys=True)}; train_examples = blocks seen",
    }


def _pretrain(args, name, overrides, steps):
    from bertprune.config import PretrainConfig, load_config
    from bertprune.pretrain import pretrain

    cfg = load_config(None, _overrides(MLM) + [f"data.text_dir={args.text_dir}", f"train.max_steps={steps}",
                                              f"train.eval_every={steps}", f"train.seed={args.seed}",
                                              f"output_dir={Path(args.out_dir) / name}"] + overrides, schema=PretrainConfig)
    return pretrain(cfg, quiet=args.quiet, **records.restart(args.resume))


def head_checkpoint(args) -> Path:
    return Path(args.out_dir) / "head" / "final"


def stage_head(args):
    if _recorded(args, "head", head_checkpoint(args)):
        return
    res = _pretrain(args, "head", [f"model.name={MODEL}", "prune.method=dense"] + _overrides(HEAD), 0)
    rec = _mlm_record(args, "head", res, "dense", 0.0, 0, f"head only: {HEAD['head.steps']} steps, encoder frozen",
                      "head", ["--text-dir", args.text_dir])
    rec["metrics"]["mlm_accuracy_before_head"] = res["head_training"]["before"]["mlm_accuracy"]
    records.append(BENCHMARK, rec)


def _rpp_name(sparsity, extra):
    return "rpp-" + str(sparsity) + "".join("-" + e.split("=")[0].split(".")[-1] + e.split("=")[1] for e in extra)


def stage_sweep(args):
    base = [f"model.name={head_checkpoint(args)}", "prune.method=rpp"]
    if SWEEP_GRID == "full":
        grid = [[f"prune.rpp.eps={e}", f"prune.rpp.reweight_every={t}", "prune.rpp.gamma_rate=1.05"]
                for e in (1e-4, 1e-3, 1e-2) for t in (10, 50)]
        grid += [["prune.rpp.eps=1e-3", "prune.rpp.reweight_every=50", f"prune.rpp.gamma_rate={r}"] for r in (1.02, 1.1)]
    else:  # quick: ε and T at the default controller rate
        grid = [[f"prune.rpp.eps={e}", f"prune.rpp.reweight_every={t}", "prune.rpp.gamma_rate=1.02"]
                for e in (1e-3, 1e-2) for t in (10, 50)]
    for extra in grid:  # target mode at 80%
        run = "sweep-" + _rpp_name(0.8, extra)
        if _recorded(args, run):
            continue
        res = _pretrain(args, run, base + ["prune.sparsity=0.8"] + extra, SWEEP_STEPS)
        records.append(BENCHMARK, _mlm_record(args, run, res, "rpp", 0.8, SWEEP_STEPS, "sweep (target mode) " + " ".join(extra),
                                              "sweep", ["--text-dir", args.text_dir]))
    for gamma in ((0.1, 1.0, 10.0) if SWEEP_GRID == "full" else (1.0,)):  # fixed-gamma mode: what sparsity does a gamma give?
        extra = [f"prune.rpp.gamma={gamma}", "prune.rpp.eps=1e-3", "prune.rpp.reweight_every=50"]
        run = "sweep-" + _rpp_name(0.0, extra)
        if _recorded(args, run):
            continue
        res = _pretrain(args, run, base + ["prune.sparsity=0.0"] + extra, SWEEP_STEPS)
        records.append(BENCHMARK, _mlm_record(args, run, res, "rpp", 0.0, SWEEP_STEPS, "sweep (fixed gamma) " + " ".join(extra),
                                              "sweep", ["--text-dir", args.text_dir]))


def mlm_run_dir(args, method, sparsity) -> Path:
    return Path(args.out_dir) / f"mlm-{method}-{sparsity}"


def _best_sweep(recs: list[dict]) -> dict | None:
    """The target-mode sweep record with the best held-out MLM accuracy among ``recs`` (one --scale:
    longer runs score higher)."""
    sweep = [r for r in recs if r.get("stage") == "sweep" and r["target_sparsity"] > 0]
    return max(sweep, key=lambda r: r["main_metric"]) if sweep else None


def _sweep_settings(record: dict) -> list[str]:
    return record["notes"].split("sweep (target mode) ", 1)[1].split(";")[0].split()


def best_sweep_settings() -> list[str]:
    """The settings ``--rpp-from-sweep`` gives the MLM stage: the best target-mode sweep run at this --scale."""
    best = _best_sweep([r for r in records.read(BENCHMARK) if scale_of(r) == SCALE])
    if best is None:
        raise SystemExit(f"--rpp-from-sweep: no sweep records at --scale {SCALE} yet; run --stage sweep first")
    return _sweep_settings(best)


def stage_mlm(args):
    base = [f"model.name={head_checkpoint(args)}"]
    rpp_settings = best_sweep_settings() if args.rpp_from_sweep else list(args.rpp_settings)
    runs = [("dense", 0.0)] if "dense" in args.methods else []
    runs += [(m, s) for m in ("rpp", "gmp") if m in args.methods for s in args.sparsities]
    for method, s in runs:
        run = mlm_run_dir(args, method, s).name
        if _recorded(args, run, mlm_run_dir(args, method, s) / "final"):
            continue
        extra = [f"prune.method={method}", f"prune.sparsity={s}"]
        extra += ["prune.schedule.every=10"] if method == "gmp" else rpp_settings if method == "rpp" else []
        res = _pretrain(args, run, base + extra, MLM_STEPS)
        cmd = ["--text-dir", args.text_dir, "--methods", method, "--sparsities", str(s)]
        if method == "rpp" and rpp_settings:
            cmd += ["--rpp-settings", *rpp_settings]
        records.append(BENCHMARK, _mlm_record(args, run, res, method, s, MLM_STEPS, f"MLM stage, {MLM_STEPS} steps from the head "
                                              f"checkpoint{'; ' + ' '.join(rpp_settings) if method == 'rpp' else ''}", "mlm", cmd))


def finetune_overrides(glue_dir: str, task: str, model: str, seed: int, out: Path, mask: str | None = None) -> list[str]:
    """The config overrides of one fine-tuning run: the shared recipe ``FT`` on a seeded subsample of
    ``FT_TRAIN_EXAMPLES``, optionally with a fixed mask."""
    overrides = _overrides(FT) + [f"data.task={task}", f"data.glue_dir={glue_dir}", f"model.name={model}",
                                  f"data.train_examples={FT_TRAIN_EXAMPLES}", f"train.seed={seed}", f"output_dir={out}"]
    return overrides + ([f"prune.mask={mask}"] if mask else [])


def stage_finetune(args):
    from bertprune.config import load_config
    from bertprune.report import sparsity_report
    from bertprune.train import finetune

    runs = []
    if "dense" in args.methods:
        runs += [("dense", 0.0, MODEL, None), ("dense+mlm", 0.0, str(mlm_run_dir(args, "dense", 0.0) / "final"), None)]
    for m in ("rpp", "gmp"):
        if m in args.methods:
            for s in args.sparsities:
                final = mlm_run_dir(args, m, s) / "final"
                runs.append((f"{m}+mask", s, str(final), str(final / "mask.safetensors")))
    for method, s, model, mask in runs:
        for task in args.tasks:
            out = Path(args.out_dir) / f"ft-{method}-{s}-{task}"
            if _recorded(args, out.name):
                continue
            if not (Path(model) / "config.json").exists() and model != MODEL:
                raise SystemExit(f"{out.name}: the masked-LM stage's checkpoint {model} is missing; "
                                 f"run --stage mlm first (same --scale and --out-dir)")
            overrides = finetune_overrides(args.glue_dir, task, model, args.seed, out, mask)
            res = finetune(load_config(None, overrides), quiet=args.quiet, **records.restart(args.resume))
            report = sparsity_report(out)
            dev = res["final"]["dev"]
            records.append(BENCHMARK, {
                "benchmark": BENCHMARK, "run": out.name, "task": task, "model": MODEL, "method": method, "target_sparsity": s,
                "achieved_sparsity": round(res["achieved_sparsity"], 6), "nonzero_encoder_params": res["nonzero_encoder_params"],
                "metrics": dev, "main_metric": round(100 * dev[MAIN[task]], 2), "split": "dev", "seed": args.seed,
                "train_examples": res["train_examples"], "epochs": FT["train.epochs"],
                "train_seconds": round(res["train_seconds"], 1), "sec_per_step": round(res["sec_per_step_median"], 4),
                "mask_equals_universal": report.get("universal_mask", {}).get("mask_equal"),
                "stage": "finetune",
                "command": records.command_line("benchmarks/rpp_universal.py", [
                    "--stage", "finetune", "--scale", SCALE, "--glue-dir", args.glue_dir, "--methods", method.split("+")[0],
                    "--sparsities", str(s), "--tasks", task]),
                "git_commit": args.commit, "machine": records.machine(),
                "notes": (f"fine-tuned from {'the original model' if method == 'dense' else 'the MLM-stage checkpoint'}"
                          + (", universal mask kept fixed" if mask else "")
                          + f"; seeded subsample of {FT_TRAIN_EXAMPLES} training examples, full dev set; "
                          f"recipe {json.dumps(FT, sort_keys=True)}; needs the mlm stage's checkpoints in --out-dir"),
            })


# --- the Markdown table ------------------------------------------------------------------------
def scale_of(record: dict) -> str:
    """The --scale a record was made at (its command says so)."""
    return "quick" if "--scale quick" in record["command"] else "full"


def table() -> str:
    """One section per --scale: full-length and reduced runs never share a table."""
    recs = records.read(BENCHMARK)
    lines = ["# RPP vs NIP at the masked-LM stage, then the universal mask fixed while fine-tuning", ""]
    for scale in ("full", "quick"):
        if any(scale_of(r) == scale for r in recs):
            lines += [f"## `--scale {scale}`", "", _scale_table([r for r in recs if scale_of(r) == scale])]
    if recs:
        lines += ["Commands, commits and recipes: the records in `rpp_universal.jsonl`."]
    return "\n".join(lines) + "\n"


def _machines(shown: list[dict]) -> str:
    """Which machine made which of the records a section shows (a benchmark resumed on another machine
    mixes them; every number names its own)."""
    by_machine: dict[str, list[str]] = {}
    for r in shown:
        stages = by_machine.setdefault(r["machine"], [])
        if r["stage"] not in stages:
            stages.append(r["stage"])
    return "; ".join(f"{m} ({', '.join(st)})" for m, st in by_machine.items())


def _metric(record: dict | None) -> str:
    return f"{record['main_metric']:.2f}" if record else "-"


def _reopened_by_cut(summary: dict) -> float:
    """Share of proximal zeros the hard cut gives back when the proximal steps overshot s*.

    Records written before the rename (all full-scale records, made at 5b6c2bd and 7b4c0c6) call it
    ``proximal_zeros_kept_by_cut``."""
    return summary.get("proximal_zeros_reopened_by_cut", summary.get("proximal_zeros_kept_by_cut", float("nan")))


def _scale_table(recs: list[dict]) -> str:
    mlm = records.latest([r for r in recs if r.get("stage") == "mlm"], key=lambda r: (r["method"], r["target_sparsity"]))
    ft = records.latest([r for r in recs if r.get("stage") == "finetune"], key=lambda r: (r["task"], r["method"], r["target_sparsity"]))
    sweep = [r for r in recs if r.get("stage") == "sweep"]
    head = [r for r in recs if r.get("stage") == "head"]
    lines = []
    if head:
        h = head[-1]
        lines += [f"Head training (encoder frozen, {h['notes'].split(' steps')[0].split(': ')[-1]} steps): held-out MLM accuracy "
                  f"{100 * h['metrics']['mlm_accuracy_before_head']:.2f} → {h['main_metric']:.2f}.", ""]
    if mlm:
        dense = mlm.get(("dense", 0.0))
        lines += ["### Masked-LM stage: held-out MLM accuracy", "",
                  f"{next(iter(mlm.values()))['steps']} steps of batch 32 × 128 tokens from the head-trained checkpoint; NIP = gradual magnitude "
                  "pruning; RPP in target-sparsity mode (γ steered along the same cubic schedule, hard cut at 70% of "
                  "the steps, then the mask fixed, as for NIP).", "",
                  "| sparsity | dense | NIP (gmp) | RPP | RPP: zeros from proximal steps | RPP: added by the cut | RPP: re-opened by the cut |",
                  "|---|---|---|---|---|---|---|"]
        for s in sorted({k[1] for k in mlm if k[0] != "dense"}):
            g, r = mlm.get(("gmp", s)), mlm.get(("rpp", s))
            ms = (r or {}).get("method_summary") or {}
            lines.append(f"| {s:.2f} | {dense['main_metric']:.2f} | {_metric(g)} | {_metric(r)} | "
                         f"{ms.get('sparsity_from_proximal_steps', float('nan')):.3f} | {ms.get('sparsity_added_by_cut', float('nan')):.3f} | "
                         f"{_reopened_by_cut(ms):.3f} |"
                         if dense else f"| {s:.2f} | - | {_metric(g)} | {_metric(r)} | | | |")
        lines.append("")
    if ft:
        methods = sorted({(k[1], k[2]) for k in ft}, key=lambda m: (m[1], m[0]))
        tasks = [t for t in TASKS if any(k[0] == t for k in ft)]
        n_train = sorted({ft[k]["notes"].split("seeded subsample of ")[1].split(" ")[0] for k in ft})
        lines += ["### Fine-tuning with the universal mask fixed (dev metric, 0-100)", "",
                  f"Seeded subsamples of {'/'.join(n_train)} training examples per task, full dev sets, 3 epochs, one recipe. "
                  "Share = average over tasks / the dense average.", "",
                  "| method | sparsity | " + " | ".join(f"{t} ({MAIN[t]})" for t in tasks) + " | average | share of dense | mask = universal |",
                  "|---|---|" + "---|" * (len(tasks) + 3)]
        dense_avg = None
        rows = []
        for m, s in methods:
            vals = [ft.get((t, m, s), {}).get("main_metric") for t in tasks]
            avg = statistics.mean(vals) if all(v is not None for v in vals) else None
            if m == "dense":
                dense_avg = avg
            eq = {ft[(t, m, s)].get("mask_equals_universal") for t in tasks if (t, m, s) in ft}
            rows.append((m, s, vals, avg, eq))
        for m, s, vals, avg, eq in rows:
            share = f"{100 * avg / dense_avg:.1f}%" if avg is not None and dense_avg else "-"
            lines.append(f"| {m} | {s:.2f} | " + " | ".join(f"{v:.2f}" if v is not None else "-" for v in vals)
                         + f" | {avg:.2f} | {share} | {'yes' if eq == {True} else ('-' if eq <= {None} else 'NO')} |"
                         if avg is not None else f"| {m} | {s:.2f} | " + " | ".join(f"{v:.2f}" if v is not None else "-" for v in vals) + " | - | - | |")
        lines.append("")
    if sweep:
        lines += ["### RPP hyper-parameter sweep (short runs from the head-trained checkpoint)", "",
                  "| steps | mode | settings | achieved sparsity | from proximal steps | MLM accuracy |", "|---|---|---|---|---|---|"]
        for r in sweep:
            ms = r.get("method_summary") or {}
            lines.append(f"| {r['steps']} | {ms.get('mode')} | {r['notes'].split(') ', 1)[-1].split(';')[0]} | {r['achieved_sparsity']:.4f} | "
                         f"{ms.get('sparsity_from_proximal_steps', r['achieved_sparsity']):.4f} | {r['main_metric']:.2f} |")
        best = _best_sweep(sweep)
        if best:
            lines += ["", f"`--rpp-from-sweep` gives the masked-LM stage the best target-mode run's settings: "
                      f"`{' '.join(_sweep_settings(best))}` (MLM accuracy {best['main_metric']:.2f})."]
        lines.append("")
    shown = list(mlm.values()) + list(ft.values()) + sweep + head[-1:]
    if shown:
        lines += [f"Machine: {_machines(shown)}.", ""]
    return "\n".join(lines)


def main() -> None:
    global MLM_STEPS, SWEEP_STEPS, FT_TRAIN_EXAMPLES, SWEEP_GRID, SCALE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", nargs="+", choices=["head", "sweep", "mlm", "finetune"], default=[])
    p.add_argument("--text-dir", default=os.environ.get("BERTPRUNE_TEXT_DIR"))
    p.add_argument("--glue-dir", default=os.environ.get("BERTPRUNE_GLUE_DIR"))
    p.add_argument("--methods", nargs="+", default=["dense", "rpp", "gmp"], choices=["dense", "rpp", "gmp"])
    p.add_argument("--sparsities", nargs="+", type=float, default=SPARSITIES)
    p.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out-dir", help="run folders (default: runs/bench-rpp-universal/SCALE)")
    p.add_argument("--rpp-settings", nargs="*", default=[], metavar="prune.rpp.KEY=VALUE",
                   help="RPP settings for the mlm stage (default: bertprune's defaults)")
    p.add_argument("--rpp-from-sweep", action="store_true", help="mlm stage: use the best target-mode sweep settings")
    p.add_argument("--scale", choices=["full", "quick"], default="full",
                   help=f"quick: {QUICK} and a smaller sweep grid (stated in every record)")
    p.add_argument("--resume", action="store_true", help="skip runs already recorded at this --scale and continue an "
                   "interrupted run from its last checkpoint")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--smoke", action="store_true", help="a tiny version of every stage, to check the script (records go "
                   "to $BERTPRUNE_BENCH_RESULTS, which must be set)")
    args = p.parse_args()
    if args.scale == "quick":
        SWEEP_GRID = SCALE = "quick"
        MLM_STEPS, SWEEP_STEPS, FT_TRAIN_EXAMPLES = QUICK["mlm_steps"], QUICK["sweep_steps"], QUICK["ft_examples"]
        HEAD["head.steps"] = QUICK["head_steps"]
        MLM["data.eval_blocks"] = QUICK["eval_blocks"]
    if args.smoke:
        if "BERTPRUNE_BENCH_RESULTS" not in os.environ:
            p.error("--smoke needs $BERTPRUNE_BENCH_RESULTS, so that no smoke record lands in benchmarks/results")
        MLM_STEPS, SWEEP_STEPS, FT_TRAIN_EXAMPLES = 3, 3, 32
        HEAD["head.steps"] = 2
        MLM.update({"data.max_documents": 400, "data.eval_blocks": 16, "train.batch_size": 8})
        FT.update({"train.epochs": 1, "train.batch_size": 8})
    args.out_dir = args.out_dir or f"runs/bench-rpp-universal/{'smoke' if args.smoke else args.scale}"
    args.commit = records.git_commit()
    if set(args.stage) & {"head", "sweep", "mlm"} and not args.text_dir:
        p.error("--text-dir (or $BERTPRUNE_TEXT_DIR) is required for the masked-LM stages")
    if "finetune" in args.stage and not args.glue_dir:
        p.error("--glue-dir (or $BERTPRUNE_GLUE_DIR) is required for the finetune stage")
    _quiet()
    for stage in ("head", "sweep", "mlm", "finetune"):
        if stage in args.stage:
            start = time.time()
            globals()[f"stage_{stage}"](args)
            print(f"stage {stage} done in {time.time() - start:.0f} s", flush=True)
            (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    print(table())


if __name__ == "__main__":
    main()
