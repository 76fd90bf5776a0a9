"""Benchmark: a universal sparse MiniLM, pruned once at the pre-training stage by distillation, then transferred.

A thin driver over bertprune's own commands, in three stages:

* ``--stage pretrain``: ``bertprune pretrain --objective distill`` on ``../shared/data/text`` (the
  dense model is the teacher: hidden states, attention distributions, sentence embeddings) with a
  pruning method (``--method gradual --criterion magnitude`` is NIP; ``--method rpp``), sparsity and
  pattern, for ``--steps`` optimizer steps of 32 blocks of 128 tokens. Its record (task
  ``stsb_zeroshot``) holds zero-shot STS-B dev of the universal model (Spearman of the cosine of
  mean-pooled embeddings, no fine-tuning), the held-out embedding cosine to the teacher, the [CLS]
  pairwise cosine (collapse check), tokens and tokens per second. ``--stage dense`` records the dense
  model's zero-shot STS-B the same way.
* ``--stage transfer``: each task fine-tuned from the universal model with its mask fixed, by the
  high-sparsity KD recipe (``sparse-kd``: logits of the task's dense teacher, the teachers of
  ``benchmarks/high_sparsity.py``, same data and subsample) with ``prune.method=dense prune.mask=...``;
  ``--free`` lets the run prune again from the universal model (Fisher, as downstream) and records which
  share of the universal zeros stayed zeros, by role.
  ``--tasks squad`` transfers to SQuAD v1.1 the same way, with the settings of ``benchmarks/squad.py``'s
  ``sparse-kd`` runs (its training file, length, 2 epochs) and its dense run as teacher (``--squad-teacher``,
  trained first by ``benchmarks/squad.py --runs dense-0.0``).
* ``--stage curve`` / ``--stage fidelity``: records read from or measured on a universal model (trained
  first if missing): its evaluations against tokens (the token-budget curve), and its token states'
  cosine to the dense model's, layer by layer, on the run's held-out blocks.
* ``--stage probe`` / ``--stage dense-probe``: a ridge probe on the *frozen* features of STS-B pairs encoded
  together (``bertprune.sentence.stsb_pair_probe``: [CLS], pooler, mean-pooled; train → dev Spearman) of a
  universal model or of the dense model (task ``stsb_pair_probe``): what an encoder computes across the two
  segments of a pair, which zero-shot STS-B (each sentence alone) does not see.
* ``--table``: ``results/universal.md``: the universal models, then the transfer rows with their
  share of the dense average (dense per task: the best dense row of ``high_sparsity.jsonl``), beside
  pruning downstream at the same sparsity (``high_sparsity.jsonl``).

    python benchmarks/universal.py --stage dense --glue-dir ../shared/data/glue
    python benchmarks/universal.py --stage pretrain --glue-dir ../shared/data/glue --text-dir ../shared/data/text \\
        --method gradual --criterion magnitude --sparsity 0.9 --steps 600 --resume
    python benchmarks/universal.py --stage transfer --glue-dir ../shared/data/glue --text-dir ../shared/data/text \\
        --method gradual --criterion magnitude --sparsity 0.9 --steps 600 --tasks stsb mrpc --resume
    python benchmarks/universal.py --table
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import high_sparsity  # noqa: E402
import records  # noqa: E402
import squad  # noqa: E402

BENCHMARK = "universal"
ZEROSHOT = "stsb_zeroshot"
CURVE = "budget_curve"
FIDELITY = "token_fidelity"
PROBE = "stsb_pair_probe"
# what a record measured on a universal model (curve, fidelity) carries over from the model's own record
UNIVERSAL_FIELDS = ("method", "target_sparsity", "achieved_sparsity", "nonzero_encoder_params", "train_examples", "epochs",
                    "train_seconds", "sec_per_step", "steps", "tokens", "recipe", "criterion", "granularity", "universal")
TRANSFER_RECIPE = "sparse-kd"
SQUAD = "squad"
MAIN = {**high_sparsity.MAIN, SQUAD: "f1"}  # each transfer task's main metric


def overrides_hash(words: list[str]) -> str:
    """Six hex digits naming a list of overrides in folder names."""
    return hashlib.sha256(" ".join(words).encode()).hexdigest()[:6]


def universal_name(args, seed: int) -> str:
    """The folder (and row name) of one universal model: method, criterion, sparsity, pattern, steps, seed, overrides."""
    extra = overrides_hash(sorted(args.set)) if args.set else "base"
    model = Path(args.model).name
    return f"{model}-{args.method}-{args.criterion}-{args.sparsity}-{args.granularity}-{args.steps}st-{extra}-s{seed}"


def pretrain_overrides(args, seed: int, out: Path) -> list[str]:
    return [f"model.name={args.model}", f"data.text_dir={args.text_dir}", f"data.glue_dir={args.glue_dir}",
            "objective=distill", f"prune.method={args.method}", f"prune.criterion={args.criterion}",
            f"prune.sparsity={args.sparsity}", f"prune.granularity={args.granularity}", "prune.scope=global",
            f"train.max_steps={args.steps}", f"train.seed={seed}", f"output_dir={out}", *args.set]


def base_record(task: str, seed: int, cmd: list[str], args) -> dict:
    return {"benchmark": BENCHMARK, "task": task, "model": Path(args.model).name, "split": "dev", "seed": seed,
            "command": records.command_line("benchmarks/universal.py", cmd), "git_commit": args.commit,
            "machine": records.machine()}


def dense_fields(args) -> dict:
    """What a record measured on the dense model says of it, as a universal model's record does (its counted
    sparsity; no training): the fields of ``UNIVERSAL_FIELDS`` that apply."""
    from bertprune.models import resolve_model_path
    from bertprune.report import sparsity_report

    counted = sparsity_report(resolve_model_path(args.model))
    return {"method": "dense", "target_sparsity": 0.0, "achieved_sparsity": counted["sparsity"]["encoder_linear"],
            "nonzero_encoder_params": counted["params"]["encoder_linear_nonzero"], "train_examples": 0, "epochs": 0.0,
            "train_seconds": 0.0, "sec_per_step": 0.0, "recipe": "dense", "criterion": "none",
            "granularity": "unstructured", "universal": "dense"}


def run_dense(args) -> dict:
    """Zero-shot STS-B dev of the dense model (the reference of every universal model)."""
    from transformers import AutoModel

    from bertprune.config import ModelConfig
    from bertprune.models import load_model, load_tokenizer
    from bertprune.sentence import stsb_zeroshot

    cmd = ["--stage", "dense", "--glue-dir", args.glue_dir, "--model", args.model]
    done = [r for r in records.read(BENCHMARK) if r["command"] == records.command_line("benchmarks/universal.py", cmd)]
    if args.resume and done:
        return done[-1]
    mc = ModelConfig(name=args.model)
    scores = stsb_zeroshot(load_model(mc, AutoModel), load_tokenizer(mc), args.glue_dir)
    rec = {**base_record(ZEROSHOT, 0, cmd, args), **dense_fields(args), "metrics": scores,
           "main_metric": round(100 * scores["spearman"], 2),
           "notes": "the dense model as published, no training; mean-pooled embeddings, full STS-B dev"}
    records.append(BENCHMARK, rec)
    return rec


def pretrain_cmd(args, seed: int, stage: str = "pretrain") -> list[str]:
    """The driver's arguments for one universal model's ``stage`` (pretrain, or a record measured on it)."""
    return ["--stage", stage, "--method", args.method, "--criterion", args.criterion, "--sparsity", str(args.sparsity),
            "--granularity", args.granularity, "--steps", str(args.steps), "--seeds", str(seed)] + \
        (["--set", *args.set] if args.set else [])


def ensure_universal(args, seed: int) -> tuple[Path, dict]:
    """The universal model of these settings (trained once, resumable) and its record."""
    from bertprune.config import PretrainConfig, load_config
    from bertprune.pretrain import pretrain

    name = universal_name(args, seed)
    out = Path(args.out_dir) / name
    cmd = pretrain_cmd(args, seed)
    done = [r for r in records.read(BENCHMARK) if r.get("universal") == name and r["task"] == ZEROSHOT]
    if done and (out / "final" / "mask.safetensors").is_file():
        return out, done[-1]
    cfg = load_config(None, pretrain_overrides(args, seed, out), schema=PretrainConfig)
    if (out / "results.json").is_file():
        results = json.loads((out / "results.json").read_text())
    else:
        results = pretrain(cfg, **records.restart(args.resume), quiet=args.quiet)
    dev = results["final"]["dev"]
    tokens = results["steps"] * cfg.train.batch_size * cfg.data.block_size
    rec = {**base_record(ZEROSHOT, seed, cmd, args), "method": f"pretrain-distill-{args.method}",
           "target_sparsity": args.sparsity, "achieved_sparsity": round(results["achieved_sparsity"], 6),
           "nonzero_encoder_params": results["nonzero_encoder_params"], "metrics": dev,
           "main_metric": round(100 * dev["stsb_zeroshot_spearman"], 2), "train_examples": results["train_examples"],
           "epochs": round(results["steps"] / max(1, results["train_examples"] // cfg.train.batch_size), 4),
           "train_seconds": round(results["train_seconds"], 1), "sec_per_step": round(results["sec_per_step_median"], 4),
           "steps": results["steps"], "tokens": tokens, "tokens_per_second": round(tokens / results["train_seconds"], 1),
           "recipe": "pretrain-distill", "criterion": args.criterion if args.method == "gradual" else args.method,
           "granularity": args.granularity, "universal": name,
           "notes": f"objective distill (weights {cfg.distill.hidden_weight} hidden, {cfg.distill.attn_weight} attention "
                    f"{cfg.distill.attn_loss}, {cfg.distill.embedding_weight} embedding, {cfg.distill.task_weight} MLM); "
                    f"blocks of {cfg.data.block_size} tokens, batch {cfg.train.batch_size}; precision {cfg.train.mixed_precision}"
                    + (f"; {cfg.data.pair_fraction:.0%} of the training examples segment pairs (tokens count padded "
                       "positions; held-out metrics on packed blocks)" if cfg.data.pair_fraction else "")}
    records.append(BENCHMARK, rec)
    return out, rec


def token_cosine_layers(dev: dict) -> list[float]:
    """The token-state cosine to the dense model after each layer (0 = embeddings, the last = the states the
    sentence embedding pools), from an evaluation's metrics; empty for a run older than the metric."""
    layers = sorted(int(k.removeprefix("token_cosine_layer")) for k in dev if k.startswith("token_cosine_layer"))
    return [dev[f"token_cosine_layer{i}"] for i in layers]


def budget_curve(run_dir: Path, tokens_per_step: int) -> list[dict]:
    """The evaluations of a pre-training run (its ``metrics.jsonl``: one per ``train.eval_every`` steps), each
    with the tokens seen and the sparsity of the last log line at or before it: the token-budget curve."""
    from bertprune.runlog import MetricsLog

    sparsity, points = 0.0, {}
    for r in MetricsLog(run_dir / "metrics.jsonl").read():  # a line a crash tore is skipped
        if "eval" not in r:
            sparsity = r.get("sparsity", sparsity)
        elif "stsb_zeroshot_spearman" in r["eval"]["dev"]:
            d = r["eval"]["dev"]
            points[r["step"]] = {  # a step logged twice: the last one counts
                "step": r["step"], "tokens": r["step"] * tokens_per_step, "sparsity": round(sparsity, 4),
                "stsb_zeroshot": round(100 * d["stsb_zeroshot_spearman"], 2), "embedding_cosine": d["embedding_cosine"],
                "cls_pairwise_cosine": d["stsb_cls_pairwise_cosine"], "hidden_mse": d["hidden_mse"],
                "last_layer_token_cosine": (token_cosine_layers(d) or [None])[-1]}
    return [points[k] for k in sorted(points)]


def run_curve(args, seed: int) -> dict:
    """The token-budget curve of a universal model as its own record (task ``budget_curve``), read from the
    run folder's evaluations; the model is trained first if it is not there."""
    from bertprune.config import PretrainConfig, load_config

    out, uni = ensure_universal(args, seed)
    cfg = load_config(None, pretrain_overrides(args, seed, out), schema=PretrainConfig)
    cmd = pretrain_cmd(args, seed, "curve")
    curve = budget_curve(out, cfg.train.batch_size * cfg.data.block_size)
    rec = {**base_record(CURVE, seed, cmd, args),
           **{k: uni[k] for k in UNIVERSAL_FIELDS},
           "metrics": {"points": curve}, "main_metric": curve[-1]["stsb_zeroshot"] if curve else uni["main_metric"],
           "notes": f"the evaluations of the run's metrics.jsonl (every train.eval_every steps; zero-shot STS-B on the "
                    f"full dev set, the other columns on {cfg.data.eval_blocks} held-out blocks)"}
    records.append(BENCHMARK, rec)
    return rec


def run_fidelity(args, seed: int) -> dict:
    """How faithful a universal model's token states are, layer by layer (task ``token_fidelity``): its
    run's held-out evaluation recomputed on its final model (same blocks, so the run's other metrics
    reproduce), for the per-layer token cosine to the dense model the run may predate."""
    from bertprune.config import PretrainConfig, load_config
    from bertprune.pretrain import evaluate_distilled
    from bertprune.rundir import CONFIG_FILE

    out, uni = ensure_universal(args, seed)
    run = load_config(out / CONFIG_FILE, [], schema=PretrainConfig)  # the run's own config: its blocks, its teacher
    cfg = load_config(out / CONFIG_FILE, [f"model.name={out / 'final'}",
                                          f"distill.teacher={run.distill.teacher or run.model.name}"], schema=PretrainConfig)
    dev = evaluate_distilled(cfg)["dev"]
    cmd = pretrain_cmd(args, seed, "fidelity")
    rec = {**base_record(FIDELITY, seed, cmd, args),
           **{k: uni[k] for k in UNIVERSAL_FIELDS},
           "metrics": dev, "main_metric": round(100 * token_cosine_layers(dev)[-1], 2),
           "notes": f"the final model's held-out evaluation ({cfg.data.eval_blocks} blocks of the run), recomputed; "
                    "main metric: 100 × the last layer's token-state cosine to the dense model"}
    records.append(BENCHMARK, rec)
    return rec


def run_probe(args, seed: int) -> dict:
    """The pair probe (task ``stsb_pair_probe``) of the universal model of these settings (trained first if
    missing) or, at ``--stage dense-probe``, of the dense model."""
    from transformers import AutoModel

    from bertprune.config import ModelConfig
    from bertprune.models import load_model, load_tokenizer
    from bertprune.sentence import stsb_pair_probe

    dense = args.stage == "dense-probe"
    if dense:
        cmd = ["--stage", "dense-probe", "--glue-dir", args.glue_dir, "--model", args.model]
    else:
        out, uni = ensure_universal(args, seed)
        cmd = pretrain_cmd(args, seed, "probe")
    command = records.command_line("benchmarks/universal.py", cmd)
    done = [r for r in records.read(BENCHMARK) if r["command"] == command and r["git_commit"] == args.commit]
    if args.resume and done:
        return done[-1]
    fields = dense_fields(args) if dense else {k: uni[k] for k in UNIVERSAL_FIELDS}
    model_dir = args.model if dense else str(out / "final")
    mc = ModelConfig(name=model_dir)
    scores = stsb_pair_probe(load_model(mc, AutoModel), load_tokenizer(mc), args.glue_dir)
    rec = {**base_record(PROBE, 0 if dense else seed, cmd, args), **fields, "metrics": scores,
           "main_metric": round(100 * scores["cls_spearman"], 2),
           "notes": "frozen encoder; STS-B pairs encoded together; ridge (alpha by leave-one-out CV) fitted on the full "
                    "train set, Spearman x 100 on the full dev set; main metric: the [CLS] features"}
    records.append(BENCHMARK, rec)
    return rec


def transfer_folder(task: str, kind: str, seed: int, transfer_set: list[str]) -> str:
    """A transfer's folder under its universal model: a transfer with its own overrides gets its own (else
    ``--resume`` would find the plain run's); hashed in the order given, as the record's label and command
    keep them (a repeated key: the last one wins, so the order matters)."""
    extra = "-" + overrides_hash(transfer_set) if transfer_set else ""
    return f"{task}-{kind}{extra}-s{seed}"


def run_transfer(args, task: str, seed: int, teacher: Path) -> dict:
    """One task fine-tuned from the universal model (mask fixed, or free with ``--free``) by the KD recipe,
    distilling ``teacher`` (the task's dense teacher of the high-sparsity benchmark)."""
    from bertprune.config import DistillRunConfig, load_config
    from bertprune.recipes import DENSE_TWIN, recipe_file
    from bertprune.report import sparsity_report
    from bertprune.train import distill

    universal, _ = ensure_universal(args, seed)
    mask = universal / "final" / "mask.safetensors"
    start = [f"model.name={universal / 'final'}", f"distill.teacher={teacher}", "distill.init_from_teacher=false"]
    if task == SQUAD:  # squad.py's sparse-kd run (its twin at sparsity 0 when the mask is fixed), from the universal model
        sq = argparse.Namespace(squad_dir=args.squad_dir, seed=seed, out_dir=str(teacher.parent), smoke=False)
        own = [f"prune.granularity={args.granularity}"] if args.free else [f"prune.mask={mask}"]
        cfg = squad.run_config(sq, TRANSFER_RECIPE, args.sparsity if args.free else 0.0, start + own + args.transfer_set)
    else:
        overrides = high_sparsity.task_overrides(task, args, seed) + start
        overrides += ([f"prune.sparsity={args.sparsity}", f"prune.granularity={args.granularity}"] if args.free else
                      [*DENSE_TWIN, f"prune.mask={mask}"])
        overrides += args.transfer_set
        cfg = load_config(recipe_file(TRANSFER_RECIPE), overrides, schema=DistillRunConfig)
    kind = "free" if args.free else "fixed"
    cfg.output_dir = str(universal / transfer_folder(task, kind, seed, args.transfer_set))
    cmd = pretrain_cmd(args, seed)[2:] + ["--stage", "transfer", "--tasks", task] + (["--free"] if args.free else []) + \
        (["--transfer-set", *args.transfer_set] if args.transfer_set else [])
    if task == SQUAD:  # the data and the teacher, which no GLUE command names (so a re-run with another teacher is new)
        cmd += ["--squad-dir", args.squad_dir, "--squad-teacher", str(teacher)]
    command = records.command_line("benchmarks/universal.py", cmd)
    done = [r for r in records.read(BENCHMARK) if r["command"] == command and r["git_commit"] == args.commit]
    if args.resume and done:
        return done[-1]
    results = distill(cfg, **records.restart(args.resume), quiet=args.quiet)
    report = sparsity_report(cfg.output_dir, universal_mask=mask)
    kept = report["universal_mask"]
    by_role: dict[str, list[int]] = {}
    for m in kept["matrices"]:
        acc = by_role.setdefault(m["role"], [0, 0])
        acc[0], acc[1] = acc[0] + m["still_zero"], acc[1] + m["universal_zeros"]
    dev = results["final"]["dev"]
    rec = {**base_record(task, seed, cmd, args), "method": f"universal-{kind}", "target_sparsity": args.sparsity,
           "achieved_sparsity": round(results["achieved_sparsity"], 6),
           "nonzero_encoder_params": results["nonzero_encoder_params"], "metrics": dev,
           "main_metric": round(100 * dev[MAIN[task]], 2), "train_examples": results["train_examples"],
           "epochs": cfg.train.epochs, "train_seconds": round(results["train_seconds"], 1),
           "sec_per_step": round(results["sec_per_step_median"], 4), "steps": results["steps"],
           "precision": cfg.train.mixed_precision, "recipe": f"universal-{kind}+{TRANSFER_RECIPE}",
           "criterion": cfg.prune.criterion if args.free else args.criterion, "granularity": args.granularity,
           "universal": universal_name(args, seed), "teacher": str(teacher),
           "transfer_set": " ".join(args.transfer_set),
           "universal_zeros_kept": kept["universal_zeros_still_zero"],
           "universal_zeros_kept_by_role": {r: round(z / n, 6) if n else 1.0 for r, (z, n) in sorted(by_role.items())},
           "notes": f"final model, full dev set; KD recipe {TRANSFER_RECIPE} from the task teacher; "
                    + ("mask fixed" if not args.free else "pruned again from the universal model (mask free)")
                    + (f"; SQuAD settings of benchmarks/squad.py ({squad.TRAIN_FILE}, train_examples counts windows)"
                       if task == SQUAD else "")}
    records.append(BENCHMARK, rec)
    return rec


# --- the table ----------------------------------------------------------------------------------
def distill_overrides(r: dict) -> str:
    """The ``distill.*`` overrides in a record's command (the names of universal models hash them)."""
    words = r["command"].split()
    changed = [w.removeprefix("distill.") for w in words if w.startswith("distill.")]
    return ", ".join(changed) if changed else "-"


def transfer_label(r: dict) -> str:
    """A transfer row's mask kind and its own overrides (``--transfer-set``), e.g. ``fixed, train.lr=3e-4``."""
    kind = r.get("method", "").removeprefix("universal-")
    return f"{kind}, {r['transfer_set']}" if r.get("transfer_set") else kind


def squad_section(rows: list[dict]) -> list[str]:
    """The SQuAD transfer rows beside the dense run and pruning downstream (``squad.jsonl``'s sparse-kd run at
    the same sparsity, unstructured: a universal model in blocks has none beside it); shares against the best
    dense F1 there, as ``squad.md`` takes them."""
    if not rows:
        return []
    down = squad.latest_runs()
    dense = squad.best_dense_f1(down)

    def share(f1: float) -> str:
        return f"{100 * f1 / dense:.1f}%" if dense else "-"

    lines = ["", "## SQuAD v1.1: fine-tuned from the universal model (settings and teacher of `squad.py`'s sparse-kd runs)", "",
             "| universal model | mask, transfer overrides | seed | EM | F1 | share of dense F1 | downstream sparse-kd F1 (share) | "
             "universal zeros kept | minutes |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = down.get(("sparse-kd", r["target_sparsity"], "", squad.MODEL)) if r.get("granularity") == "unstructured" else None
        beside = f"{d['main_metric']:.2f} ({share(d['main_metric'])})" if d else "-"
        lines.append(f"| {r['universal']} | {transfer_label(r)} | {r['seed']} | {100 * r['metrics']['exact_match']:.2f} | "
                     f"{r['main_metric']:.2f} | {share(r['main_metric'])} | {beside} | {r['universal_zeros_kept']:.4f} | "
                     f"{r['train_seconds'] / 60:.0f} |")
    return lines + (["", f"Dense F1 (the best dense row of squad.jsonl): {dense:.2f}."] if dense else [])


def table() -> str:
    recs = records.read(BENCHMARK)
    latest = records.latest(recs, key=lambda r: (r.get("universal"), transfer_label(r), r["task"], r["seed"]))
    dense_zero = [r for k, r in latest.items() if k[0] == "dense" and k[2] == ZEROSHOT]
    ref = dense_zero[-1]["main_metric"] if dense_zero else None
    lines = ["# A universal sparse MiniLM: pruned at the pre-training stage by distillation", "",
             "## Universal models (zero-shot STS-B dev: cosine of mean-pooled embeddings, Spearman × 100, no fine-tuning)", "",
             "| universal model | sparsity | pattern | criterion | distillation terms changed | tokens | tokens/s | zero-shot STS-B | "
             "share of dense | embedding cosine to dense | [CLS] pairwise cosine (dense) | minutes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (name, _, task, seed), r in sorted(latest.items(), key=lambda kv: (kv[1]["target_sparsity"], str(kv[0][0]))):
        if task != ZEROSHOT:
            continue
        m = r["metrics"]
        share = f"{100 * r['main_metric'] / ref:.1f}%" if ref else "-"
        cls = m.get("stsb_cls_pairwise_cosine", m.get("cls_pairwise_cosine", float("nan")))
        lines.append(f"| {name} | {r['target_sparsity']:.2f} | {r['granularity']} | {r['criterion']} | {distill_overrides(r)} | "
                     f"{r.get('tokens', 0):,} | {r.get('tokens_per_second', 0):,.0f} | {r['main_metric']:.2f} | {share} | "
                     f"{m.get('embedding_cosine', 1.0):.4f} | {cls:.3f} | {r['train_seconds'] / 60:.0f} |")
    _, dense = high_sparsity.grouped(records.read(high_sparsity.BENCHMARK))
    tasks = [t for t in high_sparsity.TASKS if any(k[2] == t for k in latest)]
    if tasks:
        lines += ["", "## Transfer: each task fine-tuned from the universal model by the KD recipe", "",
                  "| universal model | mask, transfer overrides | " + " | ".join(tasks) + " | average | share of dense | universal zeros kept |",
                  "|---|---|" + "---|" * (len(tasks) + 3)]
        rows: dict[tuple, dict[str, list[dict]]] = {}
        for (name, method, task, _), r in latest.items():
            if task in tasks:
                rows.setdefault((name, method), {}).setdefault(task, []).append(r)
        for (name, method), by_task in sorted(rows.items()):
            means = {t: high_sparsity.seed_mean(by_task[t]) for t in tasks if t in by_task}
            cells = [f"{means[t]:.2f}" if t in means else "-" for t in tasks]
            # an average only over all five tasks: a partial row's average would compare unlike sets
            complete = set(means) == set(high_sparsity.TASKS) and all(t in dense for t in tasks)
            avg = statistics.mean(means.values()) if complete else None
            avg_cell = f"{avg:.2f}" if complete else "-"
            share = f"{100 * avg / statistics.mean(dense[t] for t in tasks):.1f}%" if complete else "-"
            kept = statistics.mean(x["universal_zeros_kept"] for rs in by_task.values() for x in rs)
            lines.append(f"| {name} | {method} | " + " | ".join(cells) + f" | {avg_cell} | {share} | {kept:.4f} |")
        lines += ["", "Dense per task (the best dense row of high_sparsity.jsonl): "
                  + ", ".join(f"{t} {dense[t]:.2f}" for t in tasks if t in dense) + "."]
    def of_task(task: str) -> list[dict]:  # the latest record of each universal model for a task, in name order
        return [r for k, r in sorted(latest.items(), key=lambda kv: str(kv[0])) if k[2] == task]

    lines += squad_section(of_task(SQUAD))
    curves = of_task(CURVE)
    if curves:
        lines += ["", "## Token-budget curves: the evaluations during each pre-training run", "",
                  "| universal model | step | tokens | sparsity | zero-shot STS-B | share of dense | embedding cosine to dense | "
                  "[CLS] pairwise cosine | hidden MSE | last layer token cosine to dense |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in curves:
            for pt in r["metrics"]["points"]:
                share = f"{100 * pt['stsb_zeroshot'] / ref:.1f}%" if ref else "-"
                lines.append(f"| {r['universal']} | {pt['step']} | {pt['tokens']:,} | {pt['sparsity']:.2f} | "
                             f"{pt['stsb_zeroshot']:.2f} | {share} | {pt['embedding_cosine']:.3f} | "
                             f"{pt['cls_pairwise_cosine']:.3f} | {pt['hidden_mse']:.4f} | "
                             + (f"{pt['last_layer_token_cosine']:.3f} |" if pt.get("last_layer_token_cosine") is not None else "- |"))
    fidelity = of_task(FIDELITY)
    if fidelity:
        n = max(len(token_cosine_layers(r["metrics"])) for r in fidelity) - 1  # layers after the embeddings
        lines += ["", "## Token-state fidelity: cosine of each layer's token states to the dense model's (held-out text)", "",
                  "| universal model | sparsity | " + " | ".join(["embeddings"] + [f"layer {i}" for i in range(1, n + 1)])
                  + " | zero-shot STS-B (re-measured) |", "|---|---|" + "---|" * (n + 2)]
        for r in fidelity:
            m = r["metrics"]
            layers = token_cosine_layers(m)
            cells = [f"{c:.3f}" for c in layers] + ["-"] * (n + 1 - len(layers))
            zero = f"{100 * m['stsb_zeroshot_spearman']:.2f}" if "stsb_zeroshot_spearman" in m else "-"
            lines.append(f"| {r['universal']} | {r['target_sparsity']:.2f} | " + " | ".join(cells) + f" | {zero} |")
    probes = of_task(PROBE)
    if probes:
        dense_probe = [r for r in probes if r["universal"] == "dense"]
        lines += ["", "## Pair probe: ridge on frozen features of STS-B pairs encoded together (train → dev Spearman × 100)", "",
                  "| model | sparsity | [CLS] | pooler | mean-pooled | [CLS] share of dense |", "|---|---|---|---|---|---|"]
        for r in sorted(probes, key=lambda r: (r["target_sparsity"], r["universal"])):
            m = r["metrics"]
            cells = [f"{100 * m[k]:.2f}" if k in m else "-" for k in ("cls_spearman", "pooler_spearman", "mean_spearman")]
            share = f"{100 * r['main_metric'] / dense_probe[-1]['main_metric']:.1f}%" if dense_probe else "-"
            lines.append(f"| {r['universal']} | {r['target_sparsity']:.2f} | " + " | ".join(cells) + f" | {share} |")
    lines += ["", "Machines: " + "; ".join(sorted({r["machine"] for r in recs})),
              "Reproduce a row: the `command` field of its record in `universal.jsonl`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["dense", "pretrain", "curve", "fidelity", "probe", "dense-probe", "transfer"],
                   help="curve: the token-budget curve of a universal model (its evaluations) as a record; "
                        "fidelity: its token states' cosine to the dense model, layer by layer; probe / dense-probe: "
                        "a ridge probe on the frozen features of STS-B pairs encoded together")
    p.add_argument("--glue-dir", help="GLUE folder in the official TSV layout (e.g. ../shared/data/glue)")
    p.add_argument("--text-dir", help="plain text for the pre-training stage (e.g. ../shared/data/text)")
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--method", default="gradual", help="gradual (with --criterion; magnitude = NIP) or rpp")
    p.add_argument("--criterion", default="magnitude")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--granularity", default="unstructured")
    p.add_argument("--steps", type=int, default=600, help="pre-training steps of 32 blocks of 128 tokens")
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--set", nargs="*", default=[], metavar="key=value", help="overrides of the pre-training run")
    p.add_argument("--tasks", nargs="+", default=high_sparsity.TASKS, choices=[*high_sparsity.TASKS, SQUAD],
                   help="the GLUE tasks to transfer to (default: the five of the high-sparsity benchmark), or squad")
    p.add_argument("--squad-dir", help="SQuAD v1.1 folder (e.g. ../shared/data/squad), for --tasks squad")
    p.add_argument("--squad-teacher", default="runs/bench-squad/dense-0.0",
                   help="the dense SQuAD run (benchmarks/squad.py --runs dense-0.0): the teacher of --tasks squad")
    p.add_argument("--free", action="store_true", help="transfer with pruning again instead of the mask fixed")
    p.add_argument("--transfer-set", nargs="*", default=[], metavar="key=value", help="overrides of the transfer runs")
    p.add_argument("--out-dir", default="runs/bench-universal")
    p.add_argument("--teachers", default="runs/bench-high-sparsity", help="where the high-sparsity teachers live")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--table", action="store_true", help="only rebuild the Markdown table")
    args = p.parse_args()
    if args.stage:
        if not args.glue_dir or (args.stage not in ("dense", "dense-probe") and not args.text_dir):
            p.error("--glue-dir (and, to pre-train, --text-dir) are required to run")
        if args.stage == "transfer" and SQUAD in args.tasks:
            if not args.squad_dir:
                p.error("--tasks squad needs --squad-dir")
            if not (Path(args.squad_teacher) / "results.json").is_file():
                p.error(f"no finished dense SQuAD run at {args.squad_teacher} (the teacher of --tasks squad): train it with "
                        f"benchmarks/squad.py --squad-dir {args.squad_dir} --runs dense-0.0, or point --squad-teacher at one")
        from bertprune.cli import _quiet_libraries

        _quiet_libraries()
        args.commit = records.git_commit()
        teachers = argparse.Namespace(**{**vars(args), "out_dir": args.teachers})  # high_sparsity's teacher folders
        for seed in args.seeds:
            if args.stage == "dense":
                print(json.dumps(run_dense(args)["metrics"]), flush=True)
                break
            if args.stage == "dense-probe":
                print(json.dumps(run_probe(args, 0)["metrics"]), flush=True)
                break
            if args.stage == "probe":
                rec = run_probe(args, seed)
                print(json.dumps({"universal": rec["universal"], **rec["metrics"]}), flush=True)
            elif args.stage == "pretrain":
                _, rec = ensure_universal(args, seed)
                print(json.dumps({k: rec[k] for k in ("universal", "main_metric", "train_seconds")}), flush=True)
            elif args.stage == "curve":
                rec = run_curve(args, seed)
                print(json.dumps({"universal": rec["universal"], "points": len(rec["metrics"]["points"])}), flush=True)
            elif args.stage == "fidelity":
                rec = run_fidelity(args, seed)
                print(json.dumps({"universal": rec["universal"], "last_layer_token_cosine": rec["main_metric"]}), flush=True)
            else:
                for task in args.tasks:
                    teacher = Path(args.squad_teacher) if task == SQUAD else high_sparsity.ensure_teacher(teachers, task, seed)
                    rec = run_transfer(args, task, seed, teacher)
                    print(json.dumps({k: rec[k] for k in ("task", "universal", "main_metric", "train_seconds")}), flush=True)
            (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    print(table())


if __name__ == "__main__":
    main()
