"""Benchmark: keep the accuracy at high sparsity (all-MiniLM-L6-v2 on MRPC, STS-B, RTE, CoLA, SST-2).

A thin driver over bertprune's own commands: every pruned row is ``bertprune distill`` (or
``finetune``) with a committed recipe from ``src/bertprune/recipes/`` plus the overrides the row
names (sparsity, criterion, pattern, seed); every dense row is the same machinery with
``prune.method=dense``. Teachers are dense fine-tuned runs (recipe ``teacher``), one per task and
seed, trained once and reused. The metric is the *final* model's on the full dev set (no
checkpoint picked on dev); SST-2 trains on a seeded 8,000-sentence subsample (a row's ``--set
data.train_examples=N`` may lift it; 67349 is the full set).

Each finished run appends a record to ``results/high_sparsity.jsonl`` (format:
../shared/BENCHMARKS.md; ``recipe``, ``criterion`` and ``granularity`` filled) and the table
``results/high_sparsity.md`` is rebuilt: per row the five tasks, their average, its share of the
dense average, epochs and training minutes.

    python benchmarks/high_sparsity.py --glue-dir ../shared/data/glue --recipe sparse-kd --sparsity 0.9 --tasks mrpc stsb
    python benchmarks/high_sparsity.py --glue-dir ../shared/data/glue --recipe sparse-kd --sparsity 0.9 \\
        --set prune.criterion=movement --tag movement          # an ablation row
    python benchmarks/high_sparsity.py --glue-dir ../shared/data/glue --recipe sparse-kd --sparsity 0   # dense, same recipe
    python benchmarks/high_sparsity.py --table
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402

BENCHMARK = "high_sparsity"
TASKS = ["mrpc", "stsb", "rte", "cola", "sst2"]
MAIN = {"sst2": "accuracy", "mrpc": "f1", "stsb": "spearman", "cola": "mcc", "rte": "accuracy"}
SST2_SUBSAMPLE = 8000
SST2_TRAIN = 67349  # sentences in SST-2's training file
TEACHER_RECIPE = "teacher"
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def recorded(cmd_args: list[str], commit: str | None = None) -> list[dict]:
    """Records made by this exact command (and, when given, at this commit)."""
    command = records.command_line("benchmarks/high_sparsity.py", cmd_args)
    return [r for r in records.read(BENCHMARK) if r["command"] == command and commit in (None, r["git_commit"])]


def task_overrides(task: str, args, seed: int) -> list[str]:
    out = [f"data.task={task}", f"data.glue_dir={args.glue_dir}", f"train.seed={seed}"]
    if task == "sst2":
        out.append(f"data.train_examples={SST2_SUBSAMPLE}")
    return out


def model_args(args) -> list[str]:
    """``--model`` as a record's command names it: only when it is not the default."""
    return [] if args.model == DEFAULT_MODEL else ["--model", args.model]


def teacher_dir(args, task: str, seed: int) -> Path:
    return Path(args.out_dir) / f"teacher-{task}-s{seed}"


def record_of(results: dict, cfg, task: str, seed: int, recipe: str, tag: str, cmd_args: list[str], args,
              teacher: str | None) -> dict:
    dev = results["final"]["dev"]
    prune = cfg.prune
    return {
        "benchmark": BENCHMARK,
        "task": task,
        "model": Path(args.model).name,
        "method": results["method"] if prune.method != "dense" else "dense",
        "target_sparsity": prune.sparsity,
        "achieved_sparsity": round(results["achieved_sparsity"], 6),
        "nonzero_encoder_params": results["nonzero_encoder_params"],
        "metrics": dev,
        "main_metric": round(100 * dev[MAIN[task]], 2),
        "split": "dev",
        "seed": seed,
        "train_examples": results["train_examples"],
        "epochs": cfg.train.epochs,
        "train_seconds": round(results["train_seconds"], 1),
        "sec_per_step": round(results["sec_per_step_median"], 4),
        "steps": results["steps"],
        "command": records.command_line("benchmarks/high_sparsity.py", cmd_args),
        "git_commit": args.commit,
        "machine": records.machine(),
        "granularity": prune.granularity,
        "criterion": prune.criterion if prune.method != "dense" else "none",
        "recipe": recipe,
        "tag": tag,
        "lr": cfg.train.lr,
        "teacher": teacher,
        **({"teacher_agreement": results["teacher_agreement"]["dev"]} if "teacher_agreement" in results else {}),
        "notes": (f"final model, full dev set; precision {cfg.train.mixed_precision}; "
                  + (sst2_note(results["train_examples"]) if task == "sst2" else "")
                  + (f"student starts from the teacher ({teacher}); " if teacher and getattr(cfg, 'distill', None)
                     and cfg.distill.init_from_teacher else "")
                  + (f"training rows include {cfg.distill.transfer.examples:,} transfer-set rows of "
                     f"{cfg.distill.transfer.text} (KD only); " if getattr(cfg, 'distill', None)
                     and cfg.distill.transfer.examples else "")),
    }


def sst2_note(train_examples: int | None) -> str:
    """What a SST-2 record trained on: the row's own ``data.train_examples`` (``--set`` may lift the 8,000)."""
    if train_examples is None or train_examples >= SST2_TRAIN:
        return f"SST-2 full training set ({SST2_TRAIN:,}); "
    return f"SST-2 subsample {train_examples:,} of {SST2_TRAIN:,} (seeded); "


def same_model(a, b) -> bool:
    """Two ``model.name`` values name the same model: equal strings, or paths to the same folder
    (``../shared/models/x`` from here and ``/work/shared/models/x`` are one model)."""
    if a == b:
        return True
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def saved_config(run: Path) -> dict:
    """The resolved config a run saved beside itself (empty when it has none)."""
    import yaml

    return (yaml.safe_load((run / "config.yaml").read_text()) or {}) if (run / "config.yaml").is_file() else {}


def check_same_teacher(out: Path, cfg) -> None:
    """A teacher folder is reused only for the teacher it holds: the same model, task, data and seed."""
    if not (out / "config.yaml").is_file():
        return
    saved = saved_config(out)
    want = {"model.name": cfg.model.name, "data.task": cfg.data.task, "data.train_examples": cfg.data.train_examples,
            "train.seed": cfg.train.seed, "train.epochs": cfg.train.epochs}
    have = {k: (saved.get(k.split(".")[0]) or {}).get(k.split(".")[1]) for k in want}
    differ = {k: (have[k], v) for k, v in want.items()
              if not (same_model(have[k], v) if k == "model.name" else have[k] == v)}
    if differ:
        raise SystemExit(f"{out} holds another teacher ({', '.join(f'{k}: {a!r} there, {b!r} here' for k, (a, b) in differ.items())}); "
                         f"pass another --out-dir (nothing was changed)")


def ensure_teacher(args, task: str, seed: int) -> Path:
    """The dense fine-tuned teacher of ``task`` (recipe ``teacher``), trained once and reused."""
    from bertprune.config import load_config
    from bertprune.recipes import recipe_file
    from bertprune.train import finetune

    out = teacher_dir(args, task, seed)
    cmd = ["--glue-dir", args.glue_dir, *model_args(args), "--teacher-only", "--tasks", task, "--seeds", str(seed)]
    overrides = task_overrides(task, args, seed) + [f"model.name={args.model}", f"output_dir={out}"]
    cfg = load_config(recipe_file(TEACHER_RECIPE), overrides)
    check_same_teacher(out, cfg)
    if (out / "results.json").is_file() and recorded(cmd):
        return out
    if (out / "results.json").is_file():  # trained, not yet recorded (e.g. the record step was interrupted)
        results = json.loads((out / "results.json").read_text())
    else:
        results = finetune(cfg, **records.restart(args.resume), quiet=args.quiet)
    records.append(BENCHMARK, record_of(results, cfg, task, seed, TEACHER_RECIPE, "teacher", cmd, args, None))
    return out


def row_dir_stem(task: str, recipe: str, sparsity: float, tag: str, seed: int) -> str:
    """A row's run folder name before the digest of its resolved config (``run_unit`` adds ``-<digest>``)."""
    return f"{task}-{recipe}-{float(sparsity)}-{tag or 'base'}-s{seed}"


def dense_row_dir(args, task: str, seed: int) -> Path:
    """The run folder of this benchmark's dense row ``--teacher-row`` (same recipe at sparsity 0, task and seed):
    a teacher stronger than the 3-epoch one (e.g. the 20-epoch dense twin). Exactly one finished folder, or a
    clear error saying which row to run first."""
    pattern = f"{row_dir_stem(task, args.recipe, 0.0, args.teacher_row, seed)}-*"
    found = sorted(d for d in Path(args.out_dir).glob(pattern) if (d / "results.json").is_file())
    if not found:
        raise SystemExit(f"--teacher-row {args.teacher_row}: no finished run matches {Path(args.out_dir) / pattern}; run the "
                         f"dense row first: --recipe {args.recipe} --sparsity 0 --tasks {task} --seeds {seed} --tag "
                         f"{args.teacher_row} (nothing was changed)")
    if len(found) > 1:  # the row ran under two configs (e.g. before and after a recipe change): the user picks
        raise SystemExit(f"--teacher-row {args.teacher_row}: {len(found)} finished runs match {Path(args.out_dir) / pattern} "
                         f"({', '.join(d.name for d in found)}); move all but one aside (nothing was changed)")
    check_row_model(found[0], args)
    return found[0]


def check_row_model(run: Path, args) -> None:
    """A dense row distils from (and starts from) this out-dir's teacher; that teacher must hold ``--model``, or the
    student would learn another model's task head under this model's name."""
    teacher = (saved_config(run).get("distill") or {}).get("teacher")  # none: not read from the cwd's config.yaml
    model = (saved_config(Path(teacher)).get("model") or {}).get("name") if teacher else None
    if model is None:
        raise SystemExit(f"--teacher-row {args.teacher_row}: cannot tell which model {run} was trained from (its config.yaml "
                         f"names no readable teacher); nothing was changed")
    if not same_model(model, args.model):
        raise SystemExit(f"--teacher-row {args.teacher_row}: {run} was trained from {model}, not {args.model}; pass the "
                         f"--out-dir of {args.model}'s runs (nothing was changed)")


def run_unit(args, task: str, seed: int) -> dict:
    """One row of one task: the recipe at the sparsity, with the row's overrides."""
    import yaml

    from bertprune.config import DistillRunConfig, RunConfig, load_config, to_yaml
    from bertprune.recipes import DENSE_TWIN, recipe_file
    from bertprune.train import distill, finetune

    recipe = recipe_file(args.recipe)
    is_distill = "distill" in (yaml.safe_load(recipe.read_text()) or {})  # a recipe with a distill section
    if args.teacher_row and not is_distill:
        raise SystemExit(f"--teacher-row: recipe {args.recipe} does not distil (no distill section); nothing was changed")
    teacher_seed = seed if args.teacher_seed is None else args.teacher_seed
    teacher = dense_row_dir(args, task, teacher_seed) if args.teacher_row else ensure_teacher(args, task, teacher_seed)
    overrides = task_overrides(task, args, seed)
    if args.sparsity == 0:
        overrides += list(DENSE_TWIN)
    else:
        overrides += [f"prune.sparsity={args.sparsity}"]
    if is_distill:
        overrides += [f"distill.teacher={teacher}"]
    overrides += args.set
    cfg = load_config(recipe, overrides, schema=DistillRunConfig if is_distill else RunConfig)
    # the folder is named by the resolved config, so a changed recipe never meets an old run's folder
    digest = hashlib.sha256(to_yaml(cfg).encode()).hexdigest()[:8]
    cfg.output_dir = str(Path(args.out_dir) / f"{row_dir_stem(task, args.recipe, args.sparsity, args.tag, seed)}-{digest}")
    cmd = ["--glue-dir", args.glue_dir, *model_args(args), "--recipe", args.recipe, "--sparsity", str(args.sparsity), "--tasks", task,
           "--seeds", str(seed)] + (["--tag", args.tag] if args.tag else []) + (["--set", *args.set] if args.set else []) + \
        (["--teacher-seed", str(args.teacher_seed)] if args.teacher_seed is not None else []) + \
        (["--teacher-row", args.teacher_row] if args.teacher_row else [])
    done = recorded(cmd, args.commit)
    if args.resume and done:  # --resume skips rows already recorded by this code (recipes included)
        return done[-1]
    results = (distill if is_distill else finetune)(cfg, **records.restart(args.resume), quiet=args.quiet)
    record = record_of(results, cfg, task, seed, args.recipe, args.tag or "", cmd, args,
                       cfg.distill.teacher if is_distill else None)  # the resolved one: --set may name another
    if args.teacher_row:
        record["teacher_row"] = args.teacher_row
    records.append(BENCHMARK, record)
    return record


# --- the table ----------------------------------------------------------------------------------
def row_key(r: dict) -> tuple:
    return (r["recipe"], r.get("tag", ""), r["target_sparsity"], r.get("granularity", "unstructured"), r.get("criterion"))


def model_of(r: dict) -> str:
    return r.get("model", DEFAULT_MODEL)


def seed_mean(rs: list[dict]) -> float:
    """A row's score on one task: the mean of its seeds' main metrics."""
    return statistics.mean(x["main_metric"] for x in rs)


def grouped(recs: list[dict], model: str | None = DEFAULT_MODEL) -> tuple[dict[tuple, dict[str, list[dict]]], dict[str, float]]:
    """Rows (``row_key`` → task → the latest record of each seed) and, per task, the dense baseline:
    the best seed-mean over dense rows (the teacher, or a recipe at sparsity 0), over the records of
    one starting model (``None``: all). Another model (e.g. the fp16-rounded copy a GPU machine gets)
    has its own rows and its own dense baseline."""
    recs = [r for r in recs if model is None or model_of(r) == model]
    latest = records.latest(recs, key=lambda r: (*row_key(r), r["task"], r["seed"]))
    rows: dict[tuple, dict[str, list[dict]]] = {}
    for (*key, task, _seed), r in latest.items():
        rows.setdefault(tuple(key), {}).setdefault(task, []).append(r)
    dense: dict[str, float] = {}
    for key, by_task in rows.items():
        if key[2] == 0:
            for t, rs in by_task.items():
                dense[t] = max(dense.get(t, float("-inf")), seed_mean(rs))
    return rows, dense


def table() -> str:
    recs = records.read(BENCHMARK)
    lines = ["# High sparsity: all-MiniLM-L6-v2, five GLUE tasks", "",
             "Final model, full dev sets (SST-2 trained on a seeded 8,000-sentence subsample unless the tag names another size, "
             "e.g. 40k, 67k = the full set). Cells: mean ± sd over "
             "seeds when there are several (n = seeds). Share = the row's five-task average / the dense average, "
             "where dense per task is the best dense row of the same starting model (the 3-epoch teacher or the same "
             "recipe at sparsity 0). Minutes = training minutes summed over the row's tasks (first seed).", "",
             "Like for like, below each model's table: each pruned row against its dense twin, the dense row of the same "
             "recipe whose tag is the row's without its criterion or pattern (same epochs, data and overrides; rows "
             "without one are left out). Cells: the row's seed mean as a share of the twin's; share = the row's "
             "average / the twin's over the tasks both have (the issue's measure when all five are there). A composite "
             "takes some tasks from another row, each against its own twin."]
    lines += records.model_sections({model_of(r) for r in recs} or {DEFAULT_MODEL}, DEFAULT_MODEL,
                                    lambda model: _model_table([r for r in recs if model_of(r) == model]))
    lines += ["", "Reproduce a cell: the `command` field of its record in `high_sparsity.jsonl`."]
    return "\n".join(lines) + "\n"


def _model_table(recs: list[dict]) -> list[str]:
    """One starting model's rows, against its own dense baseline."""
    rows, dense = grouped(recs, model=None)
    tasks = [t for t in TASKS if any(t in v for v in rows.values())]
    lines = ["| recipe | tag | sparsity | pattern | criterion | " + " | ".join(f"{t} ({MAIN[t]})" for t in tasks)
             + " | average | share of dense | min task share | epochs | minutes | n |",
             "|---|---|---|---|---|" + "---|" * (len(tasks) + 6)]
    for key in sorted(rows, key=lambda k: (k[2] > 0, k[2], k[0], k[1])):
        by_task = rows[key]
        cells, means, shares = [], [], []
        for t in tasks:
            rs = by_task.get(t)
            if not rs:
                cells.append("-")
                continue
            vals = [x["main_metric"] for x in rs]
            m = seed_mean(rs)
            means.append(m)
            if t in dense and dense[t]:
                shares.append(m / dense[t])
            cells.append(f"{m:.2f} ± {statistics.stdev(vals):.2f}" if len(vals) > 1 else f"{m:.2f}")
        complete = len(means) == len(tasks) and all(t in dense for t in tasks)
        avg = statistics.mean(means) if len(means) == len(tasks) else float("nan")  # only over every task
        dense_avg = statistics.mean(dense[t] for t in tasks) if complete else None
        share = f"{100 * avg / dense_avg:.1f}%" if dense_avg else "-"
        first = [min(rs, key=lambda x: x["seed"]) for rs in by_task.values()]
        minutes = sum(x["train_seconds"] for x in first) / 60
        epochs = sorted({x["epochs"] for x in first})
        n = max(len(rs) for rs in by_task.values())
        lines.append(f"| {key[0]} | {key[1] or '-'} | {key[2]:.2f} | {key[3]} | {key[4]} | " + " | ".join(cells)
                     + f" | {'-' if avg != avg else f'{avg:.2f}'} | {share} | {100 * min(shares):.1f}% | {'/'.join(f'{e:g}' for e in epochs)} | "
                       f"{minutes:.0f} | {n} |" if shares else
                     f"| {key[0]} | {key[1] or '-'} | {key[2]:.2f} | {key[3]} | {key[4]} | " + " | ".join(cells)
                     + f" | {'-' if avg != avg else f'{avg:.2f}'} | - | - | {'/'.join(f'{e:g}' for e in epochs)} | {minutes:.0f} | {n} |")
    machines = sorted({r["machine"] for r in recs})
    return (lines + _like_for_like_table(rows) + (["", "Machines: " + "; ".join(machines)] if machines else [])
            + _agreement_table(recs))


# --- like for like: each pruned row against its dense twin -----------------------------------------
# The targets divide by dense *trained on the same budget*. A row's twin is the dense row of the same
# recipe whose tag is the row's tag without its criterion or pattern name (``fisher-10ep`` → ``10ep``, ``1x4``
# and ``fisher`` → the untagged twin): the same epochs, data and other overrides, at sparsity 0. A task counts
# only where both ran the same epochs.
# A composite is a row (recipe, sparsity, pattern, criterion, tag) with some tasks taken from another tag of
# the same recipe, sparsity, pattern and criterion, each cell against its own twin: the longest budget
# measured per task (SST-2's full training set in 3 epochs costs what 20 epochs of 8,000 sentences do).
COMPOSITES = [(("sparse-kd", 0.9, "unstructured", "fisher", "fisher-20ep"), {"sst2": "fisher-67k-3ep"}),
              (("sparse-kd", 0.8, "unstructured", "fisher", "fisher-10ep"), {"sst2": "fisher-67k-3ep"})]


def twin_tag(tag: str, criterion: str | None, pattern: str | None) -> str:
    """The tag of a pruned row's dense twin: ``tag`` without leading criterion or pattern names (either order)."""
    names = [n.replace("_", "-") for n in (criterion, pattern) if n]
    while hit := next((n for n in names if tag == n or tag.startswith(n + "-")), None):
        tag = tag[len(hit) + 1:]
    return tag


def _twin_cells(by_task: dict[str, list[dict]], twin: dict[str, list[dict]]) -> dict[str, tuple[float, float]]:
    """Task → (the row's seed mean, the twin's), over the tasks both ran with the same epochs."""
    return {t: (seed_mean(by_task[t]), seed_mean(twin[t])) for t in TASKS
            if t in by_task and t in twin and by_task[t][0]["epochs"] == twin[t][0]["epochs"]}


def _like_for_like_table(rows: dict[tuple, dict[str, list[dict]]]) -> list[str]:
    """Per pruned row with a twin: each task's seed mean as a share of the twin's, and the share of the twin's
    average over the tasks both have (the issue's measure when all five are there)."""
    dense = {(recipe, tag): by_task for (recipe, tag, sparsity, *_), by_task in rows.items() if sparsity == 0}
    out = []  # (recipe, sparsity, pattern, criterion, label, twin label, task → (row, twin))
    for (recipe, tag, sparsity, pattern, criterion), by_task in rows.items():
        twin = twin_tag(tag, criterion, pattern)
        cells = _twin_cells(by_task, dense.get((recipe, twin), {})) if sparsity > 0 else {}
        if cells:
            out.append((recipe, sparsity, pattern, criterion, tag or "-", twin or "-", cells))
    for (recipe, sparsity, pattern, criterion, base), other in COMPOSITES:
        tags = {t: other.get(t, base) for t in TASKS}
        twins = {t: twin_tag(tag, criterion, pattern) for t, tag in tags.items()}
        mine = {t: rows.get((recipe, tag, sparsity, pattern, criterion), {}).get(t) for t, tag in tags.items()}
        ref = {t: dense.get((recipe, twin), {}).get(t) for t, twin in twins.items()}
        cells = _twin_cells({t: v for t, v in mine.items() if v}, {t: v for t, v in ref.items() if v})
        if cells:  # a composite not (yet) measured on every task shows what it has, with its task count
            label = f"{base}; " + ", ".join(f"{t} from {tag}" for t, tag in other.items())
            twin = f"{twin_tag(base, criterion, pattern) or '-'}; " + ", ".join(f"{t}: {twins[t] or '-'}" for t in other)
            out.append((recipe, sparsity, pattern, criterion, label, twin, cells))
    if not out:
        return []
    lines = ["", "Like for like (each pruned row against its dense twin, as the introduction says):", "",
             "| recipe | tag | sparsity | pattern | criterion | twin | " + " | ".join(TASKS)
             + " | share of twin | min task share | tasks |", "|---|---|---|---|---|---|" + "---|" * (len(TASKS) + 3)]
    for recipe, sparsity, pattern, criterion, label, twin, cells in sorted(out, key=lambda r: (r[1], r[2], r[4])):
        share = {t: mine / ref for t, (mine, ref) in cells.items() if ref > 0}  # an MCC of 0 or below has no share
        total = sum(ref for _mine, ref in cells.values())
        lines.append(f"| {recipe} | {label} | {sparsity:.2f} | {pattern} | {criterion} | {twin} | "
                     + " | ".join(f"{100 * share[t]:.1f}%" if t in share else "-" for t in TASKS)
                     + (f" | {100 * sum(m for m, _r in cells.values()) / total:.1f}%" if total > 0 else " | -")
                     + (f" | {100 * min(share.values()):.1f}%" if share else " | -") + f" | {len(cells)} |")
    return lines


AGREEMENT = {"stsb": "spearman"}  # what "agrees" means per task: equal predictions (accuracy) unless named here


def _teacher_score(recs: list[dict], r: dict) -> float | None:
    """The dev score of the teacher a record distilled from: the latest teacher record of its task, seed (the
    folder's ``-sN``) and machine kind (teachers reproduce per CPU model, not across); for ``--teacher-row``,
    the latest record of that dense row, task and seed (the folder's ``-sN-<digest>``)."""
    row = r.get("teacher_row")
    if row:  # a dense row of this benchmark: the seed sits before the folder's digest
        m = re.search(r"-s(\d+)-[0-9a-f]{8}$", r.get("teacher") or "")
        seed = m.group(1) if m else None
    else:
        seed = (r.get("teacher") or "").rpartition("-s")[2]
    mine = [x for x in recs if x["task"] == r["task"] and str(x["seed"]) == seed and x["machine"] == r["machine"]
            and ((x.get("tag") == row and x["target_sparsity"] == 0 and x["recipe"] == r["recipe"]) if row
                 else x["recipe"] == TEACHER_RECIPE)]
    return mine[-1]["main_metric"] if mine else None


def _agreement_table(recs: list[dict]) -> list[str]:
    """Rows whose records carry ``teacher_agreement`` (commit fffa5d5 on): the task's metric of the final student
    with the teacher's predictions as labels, beside both models' dev scores. A student can only copy its teacher:
    high agreement with a weak teacher explains a low score."""
    have = [r for r in recs if r.get("teacher_agreement")]
    if not have:
        return []
    lines = ["", "Agreement with the teacher (records that carry it): the share of dev examples where the final student "
             "predicts the teacher's class (STS-B: Spearman to the teacher's scores), mean over seeds.", "",
             "| recipe | tag | sparsity | criterion | task | dev score | teacher's dev score | agreement | n |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = grouped(have, model=None)[0]  # row → task → the latest record of each seed, as the main table
    by_row = {(*key, task): rs for key, by_task in rows.items() for task, rs in by_task.items()}
    for key in sorted(by_row, key=lambda k: (k[2], k[0], k[1], TASKS.index(k[5]) if k[5] in TASKS else 99)):
        rs = by_row[key]
        task = key[5]
        agree = statistics.mean(100 * x["teacher_agreement"][AGREEMENT.get(task, "accuracy")] for x in rs)
        teachers = {_teacher_score(recs, x) for x in rs} - {None}
        teacher = "/".join(f"{t:.2f}" for t in sorted(teachers)) or "-"
        score = seed_mean(rs)
        lines.append(f"| {key[0]} | {key[1] or '-'} | {key[2]:.2f} | {key[4]} | {task} | {score:.2f} | {teacher} | "
                     f"{agree:.1f}% | {len(rs)} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glue-dir", help="GLUE folder in the official TSV layout (e.g. ../shared/data/glue)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--recipe", default="sparse-kd", help="a recipe name from src/bertprune/recipes/")
    p.add_argument("--sparsity", type=float, default=0.9, help="0 = the recipe's dense twin")
    p.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--set", nargs="*", default=[], metavar="key=value", help="overrides of the recipe for this row")
    p.add_argument("--tag", default="", help="names the row (e.g. the ablated criterion)")
    p.add_argument("--teacher-seed", type=int, help="distill the teacher of this seed in every row's seed (default: the "
                   "row's own seed, a teacher per seed); the seeds then measure the student's variation alone")
    p.add_argument("--teacher-row", metavar="TAG", help="distill from (and, as the recipe says, start from) this "
                   "benchmark's dense row TAG of the same recipe, task and seed (e.g. 20ep) instead of the 3-epoch teacher")
    p.add_argument("--teacher-only", action="store_true", help="only train (and record) the teachers")
    p.add_argument("--out-dir", default="runs/bench-high-sparsity")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs from their last checkpoint")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--table", action="store_true", help="only rebuild the Markdown table")
    args = p.parse_args()
    if not args.table:
        if not args.glue_dir:
            p.error("--glue-dir is required to run")
        from bertprune.cli import _quiet_libraries

        _quiet_libraries()
        args.commit = records.git_commit()
        for seed in args.seeds:
            for task in args.tasks:
                if args.teacher_only:
                    ensure_teacher(args, task, seed)
                else:
                    rec = run_unit(args, task, seed)
                    print(json.dumps({k: rec[k] for k in ("task", "seed", "recipe", "tag", "target_sparsity", "main_metric",
                                                          "train_seconds")}), flush=True)
                (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())  # --table: the rebuild its help promises
    print(table())


if __name__ == "__main__":
    main()
