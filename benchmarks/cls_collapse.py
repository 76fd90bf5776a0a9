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
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402
from rpp_universal import FT, MODEL, _quiet, finetune_overrides  # noqa: E402

from bertprune.sentence import mean_pairwise_cosine  # noqa: E402

BENCHMARK = "cls_collapse"
SENTENCES = 64


def dev_sentences(glue_dir: str, n: int = SENTENCES) -> list[str]:
    """The first ``n`` first sentences of the STS-B dev set (bertprune's GLUE reader, with its checks)."""
    from bertprune.data.glue import get_task, read_tsv

    return read_tsv(Path(glue_dir) / "STS-B" / "dev.tsv", get_task("stsb"))["text_a"][:n]


def _load(model_name: str):
    """The model with a sequence-classification head, so that its parameter names are the ones a
    fine-tuning mask names (``bert.encoder...``); the [CLS] states come from the encoder, not the head."""
    from transformers import AutoModelForSequenceClassification

    from bertprune.config import ModelConfig
    from bertprune.models import load_model

    return load_model(ModelConfig(name=model_name), AutoModelForSequenceClassification, num_labels=1)


@torch.no_grad()
def cls_cosine(model_name: str, sentences: list[str], mask_file: str | None = None) -> float:
    from bertprune.config import ModelConfig
    from bertprune.masks import Masks
    from bertprune.models import load_tokenizer

    model = _load(model_name).eval()
    if mask_file:
        Masks.load(mask_file).bind(model).apply()
    tok = load_tokenizer(ModelConfig(name=model_name))
    batch = tok(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
    hidden = model(**batch, output_hidden_states=True).hidden_states[-1]  # [n, tokens, hidden]
    return mean_pairwise_cosine(hidden[:, 0])  # [CLS] of each sentence: [n, hidden]


def oneshot_mask(out: Path, sparsity: float) -> str:
    """The original model's one-shot magnitude mask (per matrix), saved where the fine-tuning reads it."""
    from bertprune.methods import OneShotMagnitude

    method = OneShotMagnitude(sparsity)
    method.prepare(_load(MODEL), 1)
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
        overrides = finetune_overrides(args.glue_dir, "stsb", model, args.seed, out, mask)
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
    seeds = ", ".join(str(x) for x in sorted({r["seed"] for r in recs.values()}))
    lines += ["", f"Command: `{next(iter(recs.values()))['command']}` (seed {seeds}). Machine: {'; '.join(machines)}."] if recs else []
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
