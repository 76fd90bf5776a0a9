"""Benchmark: never lose a run. Kills, divergence and fuzzed input, counted.

A thin driver over :mod:`bertprune.crashtest` (the same harness as tests/test_faults.py) and the
fuzz tests (tests/test_fuzz.py), on the tiny random model of :mod:`bertprune.testing`:

- **named kills**: a 12-step pruning run killed with SIGKILL at each point of the checkpoint
  protocol (:mod:`bertprune.faultpoints`), then ``--resume``d;
- **random kills**: the same run killed after seeded random delays, then resumed;
- **divergence**: ``train.lr=1e10``: the exit code, and whether any NaN weight was saved;
- **fuzz**: tests/test_fuzz.py (hypothesis) run with a case counter.

A kill *survived* when the resumed run's final weights, mask, logged metrics (timings aside) and
final evaluation equal the uninterrupted run's and nothing half-written is left; a *traceback* is
any Python traceback printed by a bertprune process (goal 0); a run is *lost* when it cannot be
brought to that outcome (goal 0). One record per kind in ``results/faults.jsonl``; table
``results/faults.md``.

    python benchmarks/faults.py                      # 8 named points, 20 random kills, divergence, fuzz
    python benchmarks/faults.py --random-kills 50 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import records

from bertprune import faultpoints
from bertprune.crashtest import NAMED_CRASHES, crash_and_resume, fingerprint, random_delays, run_cli
from bertprune.testing import save_tiny_model, write_tiny_glue

BENCHMARK = "faults"
REPO = Path(__file__).resolve().parents[1]


def run_args(model: Path, glue: Path, out: Path, *extra: str) -> list[str]:
    """The crash tests' run: 12 steps of gradual pruning, evaluated and checkpointed every 3 steps."""
    return ["finetune", "--task", "sst2", "--model", str(model), "--glue-dir", str(glue), "-o", str(out),
            "--max-steps", "12", "--batch-size", "16", "--lr", "3e-3", "--quiet", "train.log_every=2",
            "train.eval_every=3", "train.save_every=3", "data.max_length=32", "--method", "gmp", "--sparsity", "0.8",
            "prune.schedule.every=1", *extra]


def kills(model: Path, glue: Path, work: Path, n_random: int, seed: int) -> dict[str, dict]:
    reference = run_cli(run_args(model, glue, work / "reference"))
    if reference.returncode != 0:
        raise SystemExit(f"the uninterrupted run failed:\n{reference.stderr_tail}")
    expected = fingerprint(work / "reference")
    trials = {"named": [], "random": []}
    for point in faultpoints.POINTS:
        faults = NAMED_CRASHES[point]
        outcome = crash_and_resume(run_args(model, glue, work / point), work / point, expected, faults=faults)
        trials["named"].append(outcome)
        print(json.dumps({"kill": outcome.how, "reached": outcome.reached, "survived": outcome.same_as_uninterrupted,
                          "tracebacks": outcome.tracebacks}), flush=True)
    for i, delay in enumerate(random_delays(n_random, reference.seconds, seed)):
        out = work / f"random-{i}"
        outcome = crash_and_resume(run_args(model, glue, out), out, expected, kill_after=(delay,))
        trials["random"].append(outcome)
        print(json.dumps({"kill": outcome.how, "reached": outcome.reached, "survived": outcome.same_as_uninterrupted,
                          "tracebacks": outcome.tracebacks}), flush=True)
    summary = {}
    for kind, outcomes in trials.items():
        summary[kind] = {
            "tried": len(outcomes), "kills_landed": sum(o.reached for o in outcomes),
            "survived": sum(o.same_as_uninterrupted for o in outcomes), "lost": sum(o.lost for o in outcomes),
            "tracebacks": sum(o.tracebacks for o in outcomes),
            "details": [{"how": o.how, "reached": o.reached, "survived": o.same_as_uninterrupted,
                         "differences": o.differences, "returncodes": [a.returncode for a in o.attempts]} for o in outcomes],
        }
    summary["random"]["reference_seconds"] = round(reference.seconds, 2)
    return summary


def divergence(model: Path, glue: Path, work: Path) -> dict:
    """``train.lr=1e10``: the guard must stop the run (exit 3) and save no NaN weights anywhere."""
    import torch
    from safetensors.torch import load_file

    out = work / "diverge"
    attempt = run_cli(run_args(model, glue, out, "--lr", "1e10"))
    saved = [p for p in out.rglob("*.safetensors") if p.name == "model.safetensors"]
    nan_files = [str(p.relative_to(out)) for p in saved if not all(torch.isfinite(t).all() for t in load_file(str(p)).values())]
    message = attempt.stderr_tail.strip().splitlines()[-1] if attempt.stderr_tail.strip() else ""
    return {"tried": 1, "exit_code": attempt.returncode, "stopped": attempt.returncode == 3,
            "final_written": (out / "final").exists(), "nan_weight_files": nan_files,
            "tracebacks": int(attempt.traceback), "lost": 0 if attempt.returncode == 3 and not nan_files else 1,
            "message": message}


def fuzz(work: Path) -> dict:
    """tests/test_fuzz.py with a case counter: cases tried, and failures (a non-BertpruneError escaping)."""
    counts = work / "fuzz-counts.json"
    env = {**os.environ, "BERTPRUNE_FUZZ_COUNT_FILE": str(counts)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    cases = json.loads(counts.read_text()) if counts.is_file() else {"total": 0, "per_target": {}, "outcomes": {}}
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    return {"tried": cases["total"], "by_target": cases["per_target"], "outcomes": cases["outcomes"],
            "tracebacks": len(failed), "failed_tests": failed, "lost": 0, "seconds": round(time.perf_counter() - start, 1),
            "pytest_exit_code": proc.returncode}


def reference_run(run_dir: Path) -> dict:
    """The record fields of ../shared/BENCHMARKS.md that describe the run every kind of trial is made
    of: the uninterrupted reference (tiny random BERT, gradual magnitude pruning to 80%, 12 steps)."""
    results = json.loads((run_dir / "results.json").read_text())
    return {"model": "tiny random BERT (bertprune.testing, dropout 0.1)", "method": results["method"],
            "target_sparsity": results["target_sparsity"], "achieved_sparsity": results["achieved_sparsity"],
            "nonzero_encoder_params": results["nonzero_encoder_params"], "split": "dev",
            "train_examples": results["train_examples"],
            "epochs": results["steps"] * 16 / results["train_examples"],  # batch 16 (run_args)
            "train_seconds": results["train_seconds"], "sec_per_step": results["sec_per_step_median"]}


def outcome(result: dict) -> dict:
    """``metrics`` and ``main_metric`` of a kind: the share of trials that came out whole (0-100): a kill
    survived, or a run neither lost nor ending in a traceback."""
    whole = result["survived"] if "survived" in result else max(0, result["tried"] - result["lost"] - result["tracebacks"])
    metrics = {"tried": result["tried"], "whole": whole, "tracebacks": result["tracebacks"], "lost": result["lost"]}
    return {"metrics": metrics, "main_metric": round(100.0 * whole / max(result["tried"], 1), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--random-kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-fuzz", action="store_true")
    p.add_argument("--table", action="store_true", help="only rebuild the Markdown table")
    args = p.parse_args()
    if not args.table:
        commit, machine = records.git_commit(), records.machine()
        argv = ["--random-kills", str(args.random_kills), "--seed", str(args.seed)] + (["--no-fuzz"] if args.no_fuzz else [])
        with tempfile.TemporaryDirectory(prefix="bertprune-faults-") as tmp:
            work = Path(tmp)
            model = save_tiny_model(work / "model", "bert", dropout=0.1)
            glue = write_tiny_glue(work / "glue")
            results = kills(model, glue, work, args.random_kills, args.seed)
            run = reference_run(work / "reference")
            results["divergence"] = divergence(model, glue, work)
            if not args.no_fuzz:
                results["fuzz"] = fuzz(work)
        for kind, result in results.items():
            records.append(BENCHMARK, {"benchmark": BENCHMARK, "task": "faults", "kind": kind, **run, **outcome(result),
                                       **result, "seed": args.seed,
                                       "command": records.command_line("benchmarks/faults.py", argv),
                                       "git_commit": commit, "machine": machine})
    (records.RESULTS / f"{BENCHMARK}.md").write_text(table())
    print(table())


def table() -> str:
    recs = records.latest(records.read(BENCHMARK), key=lambda r: r["kind"])
    lines = ["# Faults: kills, divergence and fuzzed input", "",
             "A kill *survived*: after `--resume`, final weights, mask, logged metrics (timings aside) and final evaluation "
             "equal an uninterrupted run's, with nothing half-written left. *Landed*: the process was really killed there "
             "(a random kill after the run ended hits nothing). Goals: 0 tracebacks, 0 runs lost.", "",
             "| kind | tried | kills landed | survived | tracebacks | runs lost | notes |", "|---|---|---|---|---|---|---|"]
    notes = {
        "named": lambda r: ", ".join(d["how"] for d in r["details"]),
        "random": lambda r: f"seeded delays over the second half of a {r.get('reference_seconds', '?')} s run",
        "divergence": lambda r: f"train.lr=1e10: exit code {r['exit_code']}, final/ written: {r['final_written']}, "
                                f"NaN weight files: {len(r['nan_weight_files'])}",
        "fuzz": lambda r: "hypothesis cases by target: " + ", ".join(f"{k} {v}" for k, v in sorted(r["by_target"].items())),
    }
    for kind in ("named", "random", "divergence", "fuzz"):
        if (r := recs.get(kind)) is None:
            continue
        landed = r.get("kills_landed", "-")
        survived = r.get("survived", "-") if kind in ("named", "random") else ("stopped" if r.get("stopped") else "-")
        lines.append(f"| {kind} | {r['tried']} | {landed} | {survived} | {r['tracebacks']} | {r['lost']} | {notes[kind](r)} |")
    some = next(iter(recs.values()), None)
    if some:
        lines += ["", f"Machine: {some['machine']}. Commands and commits: the records in `faults.jsonl`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
