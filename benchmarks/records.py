"""Benchmark records in the format of ``../shared/BENCHMARKS.md``: one JSON line per finished run in
``benchmarks/results/<benchmark>.jsonl`` (appended, never edited) and a Markdown table regenerated
from it in ``benchmarks/results/<benchmark>.md``."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

#: where records go; a smoke run points this elsewhere with $BERTPRUNE_BENCH_RESULTS
RESULTS = Path(os.environ.get("BERTPRUNE_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))
REPO = Path(__file__).resolve().parents[1]

REQUIRED = ["benchmark", "task", "model", "method", "target_sparsity", "achieved_sparsity", "nonzero_encoder_params",
            "metrics", "main_metric", "split", "seed", "train_examples", "epochs", "train_seconds", "sec_per_step",
            "command", "git_commit", "machine"]


#: what a table section of another starting model than the default says about it
MODEL_NOTES = {
    "all-MiniLM-L6-v2-fp16": "all-MiniLM-L6-v2 with its weights rounded to fp16 and back (`scripts/device_pack.py`: the fp32 "
                             "file is over what a call to the lent GPU machine carries), trained there with "
                             "`scripts/device_high_sparsity.sh`, several runs sharing the one GPU; minutes are that machine's.",
}


def model_sections(models: set[str], default: str, body) -> list[str]:
    """A results table's sections, one per starting model (``body(model)`` gives its lines): the default model
    first, under no heading when it is the only one; any other under its name and its ``MODEL_NOTES``."""
    ordered = sorted(models, key=lambda m: (m != default, m))
    lines: list[str] = []
    for i, model in enumerate(ordered):
        if i or len(ordered) > 1:
            lines += ["", f"## {model}"] + (["", MODEL_NOTES[model]] if model in MODEL_NOTES else [])
        lines += [""] + body(model)
    return lines


CODE_PATHS = ["src", "benchmarks", "pyproject.toml"]  # what a result depends on (not README, not tests)


def git_commit() -> str:
    """HEAD, with ``-dirty`` when the code differs from it. Call it once, when a benchmark starts:
    the running process keeps the code it imported even if the files change later.
    ``$BERTPRUNE_GIT_COMMIT`` names it where the tree travelled without its history (a lent GPU machine
    gets a copy of the working tree, no ``.git``): give it this function's value where the tree was
    copied from, so that uncommitted code keeps its ``-dirty``."""
    if os.environ.get("BERTPRUNE_GIT_COMMIT"):
        return os.environ["BERTPRUNE_GIT_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS,
                                ":(exclude)benchmarks/results"], cwd=REPO,  # records are results, not code
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    # The vector unit names the machine kind too: two VMs both called "AMD EPYC" differ 20x in bf16 steps
    # (AVX2 only vs AVX-512 BF16; bertprune/precision.py). Records before 2026-12-07 lack it.
    from bertprune.precision import native_bf16

    isa = torch.backends.cpu.get_cpu_capability() + (" + native bf16" if native_bf16() else "")
    return (f"{os.cpu_count()}-core {platform.machine()} CPU ({cpu}; {isa}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def restart(resume: bool) -> dict:
    """How a benchmark run treats its run folder, as keyword arguments of bertprune's train functions:
    continue from the last checkpoint (``--resume``; bit-exact, so the record is unchanged) or start over."""
    return {"resume": True} if resume else {"overwrite": True}


def command_line(script: str, args: list[str]) -> str:
    return " ".join(["python", script, *map(shlex.quote, args)])


def append(benchmark: str, record: dict) -> None:
    missing = [k for k in REQUIRED if k not in record] if record.get("task") != "inference" else []
    if missing:
        raise ValueError(f"record lacks {missing}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{benchmark}.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def read(benchmark: str) -> list[dict]:
    return read_file(RESULTS / f"{benchmark}.jsonl")


def read_file(path: Path) -> list[dict]:
    """The records of a results file (none if it does not exist yet)."""
    if not path.exists():
        return []
    text = path.read_text()
    if not text.endswith("\n"):  # a line being appended by another process right now: not a record yet
        text = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def latest(records: list[dict], key) -> dict:
    """The newest record for each key (a rerun appends; the table shows the last)."""
    out = {}
    for r in records:
        out[key(r)] = r
    return out


def python_version() -> str:
    return sys.version.split()[0]
