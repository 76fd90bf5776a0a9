"""Benchmark: which start can a fixed 90% mask be fine-tuned from? Controls for the universal transfer.

A universal 90% model keeps zero-shot STS-B near 79 but fine-tunes with its mask fixed to ~20 Spearman
(``results/universal.md``), where pruning downstream keeps 85. These runs separate the suspects: the
universal *weights*, the universal *mask*, and the *start* (pre-trained or task-trained weights).

Each run builds a start = some weights × some mask, then fine-tunes the task with the mask fixed by the
universal transfer's recipe (``sparse-kd``'s dense twin, KD from the task's dense teacher of
``benchmarks/high_sparsity.py``, ``distill.init_from_teacher=false``, ``prune.mask=`` the start's mask):

* ``--start``: ``pretrained`` (``--model``), ``teacher`` (the task's dense teacher, trained if missing), or
  a model folder (a universal model's ``final``, a pruned run's ``final``);
* ``--mask``: ``magnitude`` (one-shot: the start's own weights, global magnitude over the pruned matrices,
  at ``--sparsity``), ``zeros`` (the start's own exact zeros), a ``mask.safetensors``, or several of them: their
  vote (:func:`bertprune.masks.vote`: the entries most masks keep, global, at ``--sparsity``, ties broken by the
  start's |w|), e.g. the masks of the other tasks' pruned runs, to ask whether a mask found on some tasks
  transfers to an unseen one.

    python benchmarks/fixed_mask.py --glue-dir ../shared/data/glue --tasks stsb --start pretrained --mask magnitude
    python benchmarks/fixed_mask.py --glue-dir ../shared/data/glue --tasks stsb --start teacher \\
        --mask runs/bench-universal/<universal model>/final/mask.safetensors
    python benchmarks/fixed_mask.py --glue-dir ../shared/data/glue --tasks stsb --start pretrained \\
        --mask runs/bench-high-sparsity/{mrpc,rte,cola,sst2}-sparse-kd-0.9-fisher-20ep-s42-*/final/mask.safetensors
    python benchmarks/fixed_mask.py --table
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import high_sparsity  # noqa: E402
import records  # noqa: E402

BENCHMARK = "fixed_mask"
RECIPE = "sparse-kd"
TEACHERS = "runs/bench-high-sparsity"


def start_label(start: str) -> str:
    """``pretrained``/``teacher``, or the run folder a ``final`` folder belongs to."""
    if start in ("pretrained", "teacher"):
        return start
    p = Path(start)
    return p.parent.name if p.name == "final" else p.name


def mask_label(mask: str | list[str]) -> str:
    """``magnitude``/``zeros``, the run folder a mask file belongs to (``<run>/final/mask.safetensors``), or
    ``vote(<run>+<run>+…)`` for several mask files."""
    if isinstance(mask, list):
        return "vote(" + "+".join(mask_label(m) for m in mask) + ")"
    if mask in ("magnitude", "zeros"):
        return mask
    p = Path(mask)
    return p.parent.parent.name if p.parent.name == "final" else p.parent.name


def one_shot_masks(weights: dict, names: list[str], sparsity: float) -> dict:
    """Keep-masks of ``names``: the lowest-|w| ``sparsity`` of them all ranked together (global scope)."""
    from bertprune.criteria import magnitude_score
    from bertprune.methods.selection import select_masks

    return select_masks({n: magnitude_score(weights[n].float()) for n in names}, sparsity, scope="global")


def build_start(weights_dir: Path, mask: str | list[str], sparsity: float, out: Path) -> float:
    """``out`` = the model folder ``weights_dir`` with the mask's zeros baked in, and the mask beside it
    (``mask.safetensors``). Returns the share of the pruned matrices' entries kept."""
    from safetensors.torch import load_file, save_file

    from bertprune.criteria import magnitude_score
    from bertprune.masks import MASK_FILE, Masks, vote
    from bertprune.targets import select_targets

    weights = load_file(str(weights_dir / "model.safetensors"))
    model_type = json.loads((weights_dir / "config.json").read_text()).get("model_type")
    names = [t.name for t in select_targets([(n, tuple(w.shape)) for n, w in weights.items()], model_type)]
    if mask == "magnitude":
        masks = Masks(one_shot_masks(weights, names, sparsity))
    elif mask == "zeros":
        masks = Masks.from_weights({n: weights[n] for n in names})
    elif isinstance(mask, list):
        voters = [Masks.load(m).aligned(weights).check_against(weights, m) for m in mask]
        masks = vote(voters, sparsity, {n: magnitude_score(weights[n].float()) for n in voters[0].names()})
    else:
        masks = Masks.load(mask).aligned(weights).check_against(weights, mask)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in weights_dir.iterdir():  # config, tokenizer, ... (not sub-folders)
        if f.is_file() and f.name not in ("model.safetensors", MASK_FILE):
            shutil.copy(f, out / f.name)
    for n, m in masks.masks.items():
        weights[n] = weights[n] * m.to(weights[n].dtype)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    masks.save(out / MASK_FILE)
    return 1.0 - masks.sparsity()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_name(task: str, args, seed: int) -> str:
    key = json.dumps([args.model, args.start, args.mask, args.sparsity, args.teachers, args.teacher_seed, sorted(args.set)])
    mask = f"vote{len(args.mask)}" if isinstance(args.mask, list) else mask_label(args.mask)
    return f"{task}-{start_label(args.start)}-{mask}-s{seed}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"


def command_args(args, task: str, seed: int) -> list[str]:
    """The arguments that reproduce one run (its record's ``command``): ``--sparsity`` where it decides the mask
    (magnitude, a vote), options only where they are not the defaults."""
    masks = args.mask if isinstance(args.mask, list) else [args.mask]
    by_sparsity = args.mask == "magnitude" or isinstance(args.mask, list)
    return ["--glue-dir", args.glue_dir, *high_sparsity.model_args(args), "--tasks", task, "--seeds", str(seed),
            "--start", args.start, "--mask", *masks] + (["--sparsity", str(args.sparsity)] if by_sparsity else []) \
        + (["--teachers", args.teachers] if args.teachers != TEACHERS else []) \
        + (["--teacher-seed", str(args.teacher_seed)] if args.teacher_seed is not None else []) \
        + (["--set", *args.set] if args.set else [])


def run(args, task: str, seed: int) -> dict:
    from bertprune.config import DistillRunConfig, load_config
    from bertprune.masks import MASK_FILE
    from bertprune.models import resolve_model_path
    from bertprune.recipes import DENSE_TWIN, recipe_file
    from bertprune.train import FINAL, distill

    teacher_seed = seed if args.teacher_seed is None else args.teacher_seed
    command = records.command_line("benchmarks/fixed_mask.py", command_args(args, task, seed))
    done = [r for r in records.read(BENCHMARK) if r["command"] == command and r["git_commit"] == args.commit]
    if args.resume and done:
        return done[-1]
    teacher_args = argparse.Namespace(glue_dir=args.glue_dir, model=args.model, out_dir=args.teachers,
                                      resume=args.resume, quiet=args.quiet, commit=args.commit)
    teacher = high_sparsity.ensure_teacher(teacher_args, task, teacher_seed)
    source = {"pretrained": Path(resolve_model_path(args.model)), "teacher": teacher / FINAL}.get(args.start, Path(args.start))
    out = Path(args.out_dir) / run_name(task, args, seed)
    kept = build_start(source, args.mask, args.sparsity, out / "start")
    if kept == 1.0:
        raise SystemExit(f"--mask {args.mask} on --start {args.start} prunes nothing: that is a dense fine-tune, not a "
                         "fixed-mask run (nothing recorded)")
    overrides = high_sparsity.task_overrides(task, args, seed) + [
        f"model.name={out / 'start'}", f"distill.teacher={teacher}", "distill.init_from_teacher=false",
        *DENSE_TWIN, f"prune.mask={out / 'start' / MASK_FILE}", *args.set]
    cfg = load_config(recipe_file(RECIPE), overrides, schema=DistillRunConfig)
    cfg.output_dir = str(out / "run")
    results = distill(cfg, overwrite=True, quiet=args.quiet)  # the start is rebuilt, so the run starts over
    dev = results["final"]["dev"]
    teacher_dev = json.loads((teacher / "results.json").read_text())["final"]["dev"]
    main = high_sparsity.MAIN[task]
    rec = {"benchmark": BENCHMARK, "task": task, "model": Path(args.model).name, "split": "dev", "seed": seed,
           "command": command, "git_commit": args.commit, "machine": records.machine(),
           "method": "fixed-mask", "start": start_label(args.start), "mask": mask_label(args.mask),
           "target_sparsity": round(1.0 - kept, 4), "achieved_sparsity": round(results["achieved_sparsity"], 6),
           "nonzero_encoder_params": results["nonzero_encoder_params"],
           "metrics": dev, "main_metric": round(100 * dev[main], 2), "teacher_metric": round(100 * teacher_dev[main], 2),
           "train_examples": results["train_examples"], "epochs": cfg.train.epochs,
           "train_seconds": round(results["train_seconds"], 1), "steps": results["steps"],
           "sec_per_step": round(results["sec_per_step_median"], 4), "precision": cfg.train.mixed_precision,
           "recipe": f"{RECIPE} dense twin, mask fixed", "criterion": "none",
           # what the command's paths held when it ran (run folders are rebuilt by their own benchmarks)
           "start_sha256": file_sha256(source / "model.safetensors"),
           "mask_sha256": file_sha256(out / "start" / MASK_FILE),
           "teacher": str(teacher),
           "notes": "final model, full dev set; start = the start's weights with the mask's zeros baked in; "
                    "KD from the task's dense teacher, init_from_teacher=false, mask fixed throughout"}
    records.append(BENCHMARK, rec)
    return rec


def mask_kind(task: str, mask: str) -> str:
    """A mask label as the five-task view groups it: the task's own pruned run, the vote of other tasks' runs
    (not the task's own), or the label itself (one mask for every task, e.g. a universal model's)."""
    if mask.startswith(f"{task}-"):
        return "the task's own run"
    if mask.startswith("vote("):
        voters = mask[len("vote("):-1].split("+")
        own = any(v.startswith(f"{task}-") for v in voters)
        return f"vote of {len(voters)} runs" + (", the task's own among them" if own else ", not the task's own")
    return mask


def variant(command: str) -> str:
    """What else a record's command changed: ``--set`` overrides and a teacher other than the default."""
    words = shlex.split(command)
    out = []
    for flag in ("--teachers", "--teacher-seed"):
        if flag in words:
            out.append(f"{flag} {words[words.index(flag) + 1]}")
    if "--set" in words:
        out += [w for w in words[words.index("--set") + 1:] if not w.startswith("--") and not w.startswith("train.epochs=")]
    return " ".join(out) or "-"


def task_view(recs: list[dict]) -> list[str]:
    """The records (in file order) as rows of start × kind of mask × epochs × other overrides, one column per task
    (each cell: the lowest seed's newest record), with the row's average and its share of the teachers' average
    where all five tasks are in."""
    tasks = high_sparsity.TASKS
    cells: dict[tuple, dict] = {}
    for r in sorted(recs, key=lambda r: -r["seed"]):  # stable: the lowest seed, then the newest, is written last
        key = (r["start"], mask_kind(r["task"], r["mask"]), r["target_sparsity"], r["epochs"], variant(r["command"]))
        cells.setdefault(key, {})[r["task"]] = r
    rows = {k: v for k, v in cells.items() if len(v) > 1}
    if not rows:
        return []
    lines = ["", "## By task: each start × kind of mask (rows with more than one task)", "",
             "| start | mask | sparsity | epochs | overrides | " + " | ".join(f"{t} ({high_sparsity.MAIN[t]})" for t in tasks)
             + " | average | teachers' average | share of teachers |",
             "|---|---|---|---|---|" + "---|" * (len(tasks) + 3)]
    for (start, kind, sp, epochs, other), by_task in sorted(rows.items()):
        got = [by_task[t]["main_metric"] if t in by_task else None for t in tasks]
        full = all(g is not None for g in got)
        avg = sum(got) / len(got) if full else None
        tavg = sum(by_task[t]["teacher_metric"] for t in tasks) / len(tasks) if full else None
        lines.append(f"| {start} | {kind} | {sp:.2f} | {epochs:g} | {other} | " + " | ".join("-" if g is None else f"{g:.2f}" for g in got)
                     + (f" | {avg:.2f} | {tavg:.2f} | {avg / tavg:.1%} |" if full else " | - | - | - |"))
    return lines


def table() -> str:
    every = records.read(BENCHMARK)
    recs = list(records.latest(every, lambda r: (r["task"], r["start"], r["mask"], r["target_sparsity"],
                                                                   r["seed"], r["command"])).values())
    lines = ["# A fixed 90% mask: which starts fine-tune", "",
             "Each run: a start (weights) with a mask's zeros baked in, fine-tuned with the mask fixed by the universal "
             "transfer's recipe (`sparse-kd`'s dense twin: logits KD from the task's dense teacher, 5 epochs). "
             "Final model, full dev set. `pretrained`: all-MiniLM-L6-v2; `teacher`: the task's dense teacher of "
             "`high_sparsity.py`; a run folder: that run's final model (universal model, or a pruned run). Mask "
             "`magnitude`: one-shot global magnitude of the start's own weights; `zeros`: the start's own zeros.", "",
             "| task | start | mask | sparsity | dev score | teacher | share of teacher | epochs | minutes | seed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(recs, key=lambda r: (r["task"], r["mask"], r["start"], r["seed"])):
        share = r["main_metric"] / r["teacher_metric"] if r["teacher_metric"] else float("nan")
        lines.append(f"| {r['task']} | {r['start']} | {r['mask']} | {r['target_sparsity']:.2f} | {r['main_metric']:.2f} | "
                     f"{r['teacher_metric']:.2f} | {share:.1%} | {r['epochs']:g} | {r['train_seconds'] / 60:.0f} | {r['seed']} |")
    lines += task_view(every)
    machines = sorted({r["machine"] for r in recs})
    lines += ["", f"Machines: {'; '.join(machines) if machines else '-'}", "",
              "Reproduce a row: the `command` field of its record in `fixed_mask.jsonl` (a run folder named in it is "
              "made by the benchmark that owns it: `universal.py --stage pretrain`, `high_sparsity.py`)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glue-dir", help="GLUE folder in the official TSV layout (e.g. ../shared/data/glue)")
    p.add_argument("--model", default=high_sparsity.DEFAULT_MODEL)
    p.add_argument("--tasks", nargs="+", default=["stsb"], choices=high_sparsity.TASKS)
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--start", default="pretrained", help="pretrained | teacher | a model folder")
    p.add_argument("--mask", nargs="+", default=["magnitude"],
                   help="magnitude | zeros | a mask.safetensors | several mask files (their vote)")
    p.add_argument("--sparsity", type=float, default=0.9, help="of --mask magnitude or a vote")
    p.add_argument("--set", nargs="*", default=[], metavar="key=value", help="overrides of the transfer recipe")
    p.add_argument("--teachers", default=TEACHERS, help="high_sparsity.py's --out-dir (its teachers)")
    p.add_argument("--teacher-seed", type=int, help="distil the teacher of this seed (default: the run's own seed)")
    p.add_argument("--out-dir", default="runs/bench-fixed-mask")
    p.add_argument("--resume", action="store_true", help="skip a run this commit has recorded")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--table", action="store_true", help="only rebuild the Markdown table")
    args = p.parse_args()
    if not args.table:
        if not args.glue_dir:
            p.error("--glue-dir is required to run")
        if args.start not in ("pretrained", "teacher") and not (Path(args.start) / "model.safetensors").is_file():
            p.error(f"--start {args.start}: not pretrained, teacher or a model folder with model.safetensors")
        args.mask = args.mask[0] if len(args.mask) == 1 else args.mask  # one value: the commands stay as before
        for m in args.mask if isinstance(args.mask, list) else [args.mask]:
            if (isinstance(args.mask, list) or m not in ("magnitude", "zeros")) and not Path(m).is_file():
                p.error(f"--mask {m}: not magnitude, zeros or a mask file (a vote takes mask files only)")
        from bertprune.cli import _quiet_libraries

        _quiet_libraries()
        args.commit = records.git_commit()
        for seed in args.seeds:
            for task in args.tasks:
                rec = run(args, task, seed)
                print(json.dumps({k: rec[k] for k in ("task", "seed", "start", "mask", "main_metric", "train_seconds")}),
                      flush=True)
                (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    print(table())


if __name__ == "__main__":
    main()
