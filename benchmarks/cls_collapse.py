"""Why universal masks from a masked-LM-only stage lose STS-B: is it the fixed mask, or the pruned weights?

    python benchmarks/cls_collapse.py --glue-dir ../shared/data/glue [--runs runs/bench-rpp-universal/full]

Reads the MLM-stage checkpoints that ``benchmarks/rpp_universal.py --stage mlm`` left in ``--runs``
(dense, and NIP/RPP at ``--sparsities``). For each starting point it records

* ``cls_mean_cosine``: the mean pairwise cosine similarity of the final-layer [CLS] states over the
  first 64 STS-B dev first sentences (1.0 = every sentence gets the same [CLS] vector). The masked-LM
  loss never supervises the [CLS] position, so nothing keeps it informative while the encoder is pruned.
* STS-B dev Spearman after fine-tuning with rpp_universal's recipe (2,000 seeded training examples,
  3 epochs): the MLM checkpoints *without* a mask (their zeros free to move), and the original model with
  a one-shot magnitude mask kept fixed throughout, to separate "fixed mask" from "pruned while doing MLM".

Records: ``benchmarks/results/cls_collapse.jsonl`` and ``.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402
from rpp_universal import FT, FT_TRAIN_EXAMPLES, MODEL, _overrides, _quiet  # noqa: E402

BENCHMARK = "cls_collapse"
SENTENCES = 64


def dev_sentences(glue_dir: str, n: int = SENTENCES) -> list[str]:
    path = Path(glue_dir) / "STS-B" / "dev.tsv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    col = rows[0].index("sentence1")
    return [r[col] for r in rows[1:n + 1]]


def mean_pairwise_cosine(x: torch.Tensor) -> float:
    """x: [n, hidden] -> the mean cosine over the n·(n-1) ordered pairs of distinct rows."""
    x = torch.nn.functional.normalize(x, dim=-1)
    sim = x @ x.T  # [n, n]
    off_diagonal = ~torch.eye(len(x), dtype=torch.bool)
    return float(sim[off_diagonal].mean())


@torch.no_grad()
def cls_cosine(model_name: str, sentences: list[str], mask_file: str | None = None) -> float:
    from transformers import AutoModel, AutoTokenizer

    from bertprune.masks import Masks
    from bertprune.models import resolve_model_path

    path = resolve_model_path(model_name)
    model = AutoModel.from_pretrained(path, use_safetensors=True).eval()
    if mask_file:
        masks = Masks.load(mask_file)
        # masks name parameters of the task model ("bert.encoder..."); AutoModel's are "encoder..."
        params = dict(model.named_parameters())
        for name, keep in masks.masks.items():
            params[name.removeprefix("bert.")].mul_(keep)
    tok = AutoTokenizer.from_pretrained(path)
    hidden = model(**tok(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")).last_hidden_state
    return mean_pairwise_cosine(hidden[:, 0])  # [CLS] of each sentence: [n, hidden]


def oneshot_mask(out: Path, sparsity: float) -> str:
    """The original model's one-shot magnitude mask (per matrix), saved where the fine-tuning reads it."""
    from transformers import AutoModelForSequenceClassification

    from bertprune.methods import OneShotMagnitude
    from bertprune.models import resolve_model_path

    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(MODEL), num_labels=1, use_safetensors=True)
    method = OneShotMagnitude(sparsity)
    method.prepare(model, 1)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "mask.safetensors"
    method.finalize().save(path)
    return str(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--glue-dir", default=os.environ.get("BERTPRUNE_GLUE_DIR"), required=os.environ.get("BERTPRUNE_GLUE_DIR") is None)
    p.add_argument("--runs", default="runs/bench-rpp-universal/full", help="rpp_universal.py's run folders (--out-dir)")
    p.add_argument("--sparsities", nargs="+", type=float, default=[0.5, 0.7])
    p.add_argument("--out-dir", default="runs/bench-cls-collapse")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    commit = records.git_commit()
    _quiet()
    from bertprune.config import load_config
    from bertprune.train import finetune

    runs = Path(args.runs)
    starts = [("original", 0.0, MODEL, "dense")]
    starts += [("original+oneshot-mask", s, MODEL, "oneshot+mask") for s in args.sparsities[:1]]
    starts += [("mlm-dense", 0.0, str(runs / "mlm-dense-0.0" / "final"), "dense+mlm")]
    starts += [(f"mlm-{m}-{s}", s, str(runs / f"mlm-{m}-{s}" / "final"), f"{m}-free")
               for s in args.sparsities for m in ("gmp", "rpp")]
    missing = [m for _, _, m, _ in starts if m != MODEL and not (Path(m) / "config.json").is_file()]
    if missing:
        raise SystemExit(f"missing MLM-stage checkpoints {missing}: run benchmarks/rpp_universal.py --stage head mlm "
                         f"--out-dir {args.runs} first")
    sentences = dev_sentences(args.glue_dir)
    for name, s, model, method in starts:
        out = Path(args.out_dir) / f"{name}-stsb"
        mask = oneshot_mask(out.with_name(out.name + "-mask"), s) if method == "oneshot+mask" else None
        cosine = cls_cosine(model, sentences, mask)
        overrides = _overrides(FT) + ["data.task=stsb", f"data.glue_dir={args.glue_dir}", f"model.name={model}",
                                      f"data.train_examples={FT_TRAIN_EXAMPLES}", f"train.seed={args.seed}", f"output_dir={out}"]
        if mask:
            overrides.append(f"prune.mask={mask}")
        res = finetune(load_config(None, overrides), quiet=args.quiet, overwrite=True)
        dev = res["final"]["dev"]
        records.append(BENCHMARK, {
            "benchmark": BENCHMARK, "run": out.name, "task": "stsb", "model": MODEL, "method": method, "target_sparsity": s,
            "achieved_sparsity": round(res["achieved_sparsity"], 6), "nonzero_encoder_params": res["nonzero_encoder_params"],
            "metrics": {**dev, "cls_mean_cosine": round(cosine, 4), "cls_sentences": len(sentences)},
            "main_metric": round(100 * dev["spearman"], 2), "split": "dev", "seed": args.seed,
            "train_examples": res["train_examples"], "epochs": FT["train.epochs"],
            "train_seconds": round(res["train_seconds"], 1), "sec_per_step": round(res["sec_per_step_median"], 4),
            "start": name, "mask_during_finetuning": "fixed" if mask else "none",
            "command": records.command_line("benchmarks/cls_collapse.py", ["--glue-dir", args.glue_dir, "--runs", args.runs]),
            "git_commit": commit, "machine": records.machine(),
            "notes": f"cls_mean_cosine of the starting encoder{' with its mask applied' if mask else ''}; fine-tuned with "
                     f"rpp_universal's recipe {json.dumps(FT, sort_keys=True)}",
        })
        print(f"{name}: [CLS] mean cosine {cosine:.3f}, STS-B Spearman {100 * dev['spearman']:.2f}", flush=True)
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    print(table())


def table() -> str:
    recs = records.latest(records.read(BENCHMARK), key=lambda r: r["run"])
    lines = ["# [CLS] collapse after pruning at the masked-LM stage (STS-B)", "",
             "Starting encoder → mean pairwise cosine of the final [CLS] states over the first "
             f"{SENTENCES} STS-B dev sentences, then STS-B dev Spearman after fine-tuning (2,000 seeded training "
             "examples, 3 epochs, rpp_universal's recipe). `free`: the MLM checkpoint fine-tuned without a mask.", "",
             "| start | sparsity | mask while fine-tuning | [CLS] mean cosine | STS-B Spearman |", "|---|---|---|---|---|"]
    for r in recs.values():
        lines.append(f"| {r['start']} | {r['target_sparsity']:.2f} | {r['mask_during_finetuning']} | "
                     f"{r['metrics']['cls_mean_cosine']:.3f} | {r['main_metric']:.2f} |")
    machines = sorted({f"{r['machine']} (commit {r['git_commit'][:7]})" for r in recs.values()})
    lines += ["", f"Command: `{next(iter(recs.values()))['command']}` (seed 42). Machine: {'; '.join(machines)}."] if recs else []
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
