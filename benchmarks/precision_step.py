"""Seconds per training step by autocast precision on this machine: why the recipes say ``mixed_precision: auto``.

    python benchmarks/precision_step.py [--model all-MiniLM-L6-v2] [--batch 32] [--length 128]

For each precision (``no`` = fp32, ``bf16``): ``bertprune.train.train_step`` (forward, loss, backward, clip,
AdamW step; dense, no pruning hooks) of the model with a 2-class head on a seeded random batch of ``--batch`` x
``--length`` tokens, under the accelerator bertprune's training builds for that precision; one warm-up step,
then the median of ``--steps`` steps (at most ``--budget`` seconds each precision, at least one step: emulated
bf16 takes over a minute a step). ``auto`` names what ``bertprune.precision.resolve`` picks on this machine.
Records: ``benchmarks/results/precision_step.jsonl`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402

BENCHMARK = "precision_step"
PRECISIONS = ("no", "bf16")


def step_seconds(model_name: str, mixed_precision: str, batch: int, length: int, steps: int, budget: float,
                 seed: int = 42) -> list[float]:
    """Wall seconds of each timed training step (after one warm-up step)."""
    from transformers import AutoModelForSequenceClassification

    from bertprune.config import ModelConfig, load_config
    from bertprune.methods.base import Dense
    from bertprune.models import load_model
    from bertprune.train import make_accelerator, train_step

    torch.manual_seed(seed)
    model = load_model(ModelConfig(name=model_name), AutoModelForSequenceClassification, num_labels=2)
    with warnings.catch_warnings():  # the emulated-bf16 warning is what this measures
        warnings.simplefilter("ignore")
        accelerator = make_accelerator(load_config(None, [f"train.mixed_precision={mixed_precision}"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model, optimizer = accelerator.prepare(model, optimizer)
    method = Dense()
    method.prepare(model, steps + 1)
    g = torch.Generator().manual_seed(seed)
    data = {"input_ids": torch.randint(min(1000, model.config.vocab_size // 2), model.config.vocab_size, (batch, length), generator=g),  # [B, T]
            "attention_mask": torch.ones(batch, length, dtype=torch.long),                          # [B, T]
            "labels": torch.randint(0, 2, (batch,), generator=g)}                                   # [B]
    seconds: list[float] = []
    for step in range(1, steps + 2):
        start = time.perf_counter()
        train_step(model, data, method, optimizer, None, step, accelerator)
        if step == 1:  # the first step warms up (allocations, oneDNN kernels)
            timed_from = time.perf_counter()
            continue
        seconds.append(time.perf_counter() - start)
        if time.perf_counter() - timed_from > budget:
            break
    return seconds


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--budget", type=float, default=60.0, help="seconds per precision, after the warm-up step")
    p.add_argument("--table", action="store_true", help="only rebuild the Markdown table")
    args = p.parse_args(argv)
    if not args.table:
        from bertprune.precision import native_bf16, resolve

        commit = records.git_commit()
        for mp in PRECISIONS:
            secs = step_seconds(args.model, mp, args.batch, args.length, args.steps, args.budget)
            median = statistics.median(secs)
            records.append(BENCHMARK, {
                "benchmark": BENCHMARK, "task": "train_step", "model": Path(args.model).name, "method": "dense",
                "target_sparsity": 0.0, "achieved_sparsity": 0.0, "nonzero_encoder_params": None,
                "metrics": {"step_seconds": [round(s, 3) for s in secs], "batch": args.batch, "length": args.length},
                "main_metric": round(median, 3), "split": "-", "seed": 42, "train_examples": args.batch * len(secs),
                "epochs": 0, "train_seconds": round(sum(secs), 1), "sec_per_step": round(median, 4),
                "precision": mp, "native_bf16": native_bf16(), "auto": resolve("auto"),
                "command": records.command_line("benchmarks/precision_step.py", sys.argv[1:] if argv is None else argv),
                "git_commit": commit, "machine": records.machine(),
                "notes": "random token batch; median wall seconds of the timed steps after one warm-up step",
            })
            print(f"{mp}: {median:.2f} s/step over {len(secs)} steps", flush=True)
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    print(table())


def table() -> str:
    recs = records.latest(records.read(BENCHMARK),
                          key=lambda r: (r["machine"], r["model"], r["metrics"]["batch"], r["metrics"]["length"], r["precision"]))
    lines = ["# Seconds per training step by precision", "",
             "`bertprune.train.train_step` (dense) on a random batch, median after a warm-up step. `auto` is what the "
             "shipped recipes' `train.mixed_precision: auto` resolves to on that machine.", "",
             "| machine | model | batch x tokens | precision | s/step | steps timed | native bf16 | auto picks | commit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in recs.values():
        m = r["metrics"]
        lines.append(f"| {r['machine']} | {r['model']} | {m['batch']} x {m['length']} | "
                     f"{'fp32' if r['precision'] == 'no' else r['precision']} | {r['sec_per_step']:.2f} | "
                     f"{len(m['step_seconds'])} | {'yes' if r['native_bf16'] else 'no'} | "
                     f"{'fp32' if r['auto'] == 'no' else r['auto']} | {r['git_commit'][:7]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
