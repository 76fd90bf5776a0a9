"""Crash a real bertprune training and check that ``--resume`` loses nothing.

A run is started as a separate process (``python -m bertprune ...``) and killed with SIGKILL,
either at a named point of the checkpoint protocol (:mod:`bertprune.faultpoints`) or after a
random delay; it is then resumed with ``--resume`` until it finishes (killing the resume too, if
asked), and its outcome is compared with an uninterrupted run of the same command: the final
weights, the masks, every logged metric except timings, and the final evaluation must be equal.

The fault-injection tests (tests/test_faults.py) and ``benchmarks/faults.py`` both drive this
module; it needs no GPU and runs in seconds on the tiny models of :mod:`bertprune.testing`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

#: logged values that measure time, not training: they differ between any two runs
TIMING_KEYS = ("sec_per_step",)


@dataclass
class Attempt:
    returncode: int
    seconds: float
    stderr_tail: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr_tail


@dataclass
class CrashOutcome:
    """One crash-and-resume trial: what was tried and whether the run came out whole."""

    how: str  # the fault point, or "random@<seconds>"
    crashes: int = 0  # how many of the attempts were meant to be killed (the first ones)
    attempts: list[Attempt] = field(default_factory=list)
    same_as_uninterrupted: bool = False
    differences: list[str] = field(default_factory=list)

    @property
    def reached(self) -> bool:
        """Every planned crash really killed its process (a random kill after the run ended hits nothing)."""
        return all(a.killed for a in self.attempts[: self.crashes])

    @property
    def tracebacks(self) -> int:
        return sum(a.traceback for a in self.attempts)

    @property
    def lost(self) -> bool:
        """The run could not be brought to the uninterrupted outcome."""
        return not self.same_as_uninterrupted


def run_cli(args: list[str], fault: str | None = None, kill_after: float | None = None, timeout: float = 600.0) -> Attempt:
    """Run ``bertprune ARGS`` in a fresh process; SIGKILL it at ``fault`` (a faultpoints name,
    ``point@n`` for its n-th visit) or after ``kill_after`` seconds."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("BERTPRUNE_FAULT", None)
    if fault:
        env["BERTPRUNE_FAULT"] = fault
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bertprune", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=kill_after if kill_after is not None else timeout)
    except subprocess.TimeoutExpired:
        if kill_after is None:
            proc.kill()
            raise
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    return Attempt(proc.returncode, time.perf_counter() - start, (err or "")[-3000:])


def fingerprint(run_dir: Path) -> dict[str, str]:
    """What must not change when a run is interrupted: a digest of each part of the outcome."""
    run_dir = Path(run_dir)

    def tensors_digest(path: Path) -> str:
        h = hashlib.sha256()
        for name, t in sorted(load_file(str(path)).items()):
            h.update(name.encode())
            h.update(t.contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def log_digest(path: Path) -> str:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        kept = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()

    out = {"weights": tensors_digest(run_dir / "final" / "model.safetensors"),
           "metrics": log_digest(run_dir / "metrics.jsonl"),
           "final_eval": json.dumps(json.loads((run_dir / "results.json").read_text())["final"], sort_keys=True)}
    if (run_dir / "final" / "mask.safetensors").is_file():
        out["mask"] = tensors_digest(run_dir / "final" / "mask.safetensors")
    leftovers = sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name != ".bertprune-run")
    out["leftovers"] = ",".join(leftovers + (["checkpoints"] if (run_dir / "checkpoints").exists() else []))
    return out


def crash_and_resume(args: list[str], run_dir: Path, reference: dict[str, str], faults: tuple[str, ...] = (),
                     kill_after: tuple[float, ...] = (), max_resumes: int = 3) -> CrashOutcome:
    """Start ``args`` (which must write to ``run_dir``), crash it as asked, resume until it finishes,
    and compare with ``reference`` (the :func:`fingerprint` of an uninterrupted run).

    ``faults`` / ``kill_after``: one crash per entry, in order (the first on the start, the next on
    the resume after it...), at a named point or after that many seconds; then plain resumes."""
    crashes = [{"fault": f} for f in faults] + [{"kill_after": t} for t in kill_after]
    outcome = CrashOutcome("+".join(faults) or "+".join(f"random@{t:.2f}s" for t in kill_after), crashes=len(crashes))
    for i, crash in enumerate(crashes):
        outcome.attempts.append(run_cli([*args, "--resume"] if i else args, **crash))
    for _ in range(max_resumes):
        if (run_dir / "results.json").is_file() and outcome.attempts and outcome.attempts[-1].returncode == 0:
            break
        outcome.attempts.append(run_cli([*args, "--resume"]))
    try:
        mine = fingerprint(run_dir)
    except (OSError, ValueError, KeyError) as e:
        outcome.differences = [f"no outcome to compare: {e}"]
        return outcome
    outcome.differences = [k for k in reference if reference[k] != mine.get(k)]
    outcome.same_as_uninterrupted = not outcome.differences
    return outcome


#: how each named point is reached in a short run that checkpoints every few steps: the n-th visit
#: (a second checkpoint, so an older one exists), or after an earlier crash (final/ is replaced only
#: by a run that already wrote it)
NAMED_CRASHES: dict[str, tuple[str, ...]] = {
    "checkpoint.written": ("checkpoint.written@2",),
    "checkpoint.renamed": ("checkpoint.renamed@2",),
    "checkpoint.published": ("checkpoint.published@2",),
    "hf.written": ("hf.written@1",),
    "hf.moved_aside": ("end.final", "hf.moved_aside@1"),
    "metrics.midline": ("metrics.midline@3",),
    "end.final": ("end.final",),
    "end.cleanup": ("end.cleanup",),
}


def random_delays(n: int, longest: float, seed: int) -> list[float]:
    """``n`` kill times spread over the second half of a run of ``longest`` seconds (seeded): the
    first part of a short run is Python importing its libraries, where a kill tests nothing."""
    rng = random.Random(seed)
    return [rng.uniform(0.4 * longest, longest) for _ in range(n)]
