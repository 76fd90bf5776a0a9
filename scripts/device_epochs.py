"""How many epochs fit what is left of a call to the lent GPU machine (``device_high_sparsity.sh``).

The runs already finished in the call (the teachers, or SQuAD's dense run) measured the seconds per step;
an epoch of the rows to come costs ``steps_per_epoch × that × factor`` (the factor covers distillation's
teacher pass and the runs that share the GPU). Prints the most epochs of ``--choices`` that fit, at most
``--cap``, or ``--fallback`` when none does; the measurement goes to stderr for the call's log.

    python scripts/device_epochs.py benchmarks/results/high_sparsity.jsonl --model M --elapsed 120 \\
        --where recipe=teacher --steps-per-epoch 268 --factor 1.5 --choices 30 20 15 10 8 5 --fallback 5
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import records  # noqa: E402  (the benchmarks' reader: it skips a line another process is still appending)

MARGIN_S = 40  # the last records' copy and the call's own exit


def epochs_that_fit(sec_per_step: float, steps_per_epoch: int, factor: float, budget_s: float,
                    choices: list[int], cap: int) -> int | None:
    """The largest of ``choices`` (at most ``cap``) whose epochs take at most ``budget_s``; None if none."""
    per_epoch = steps_per_epoch * sec_per_step * factor
    fit = [e for e in choices if e <= cap and e * per_epoch <= budget_s]
    return max(fit) if fit else None


def measured_step(path: Path, model: str, where: dict[str, str], default: float) -> float:
    """The slowest seconds per step among the records of ``model`` matching every ``key=value``."""
    steps = [r["sec_per_step"] for r in records.read_file(path)
             if r.get("model") == model and all(str(r.get(k)) == v for k, v in where.items())]
    return max(steps, default=default)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("records", type=Path)
    p.add_argument("--model", required=True, help="the model's path or name (its folder name is the records' model)")
    p.add_argument("--elapsed", type=float, required=True, help="seconds the call has run so far")
    p.add_argument("--where", nargs="*", default=[], metavar="KEY=VALUE", help="which records measured the step")
    p.add_argument("--steps-per-epoch", type=int, required=True)
    p.add_argument("--factor", type=float, required=True)
    p.add_argument("--choices", type=int, nargs="+", required=True)
    p.add_argument("--fallback", type=int, required=True)
    p.add_argument("--default-step", type=float, default=0.05, help="seconds per step when no record matches")
    p.add_argument("--budget", type=float, default=float(os.environ.get("BUDGET", 560)))
    p.add_argument("--cap", type=int, default=int(os.environ.get("EPOCHS", 20)))
    a = p.parse_args(argv)
    where = dict(kv.split("=", 1) for kv in a.where)
    step = measured_step(a.records, Path(a.model).name, where, a.default_step)
    budget = a.budget - a.elapsed - MARGIN_S
    epochs = epochs_that_fit(step, a.steps_per_epoch, a.factor, budget, a.choices, a.cap)
    print(epochs if epochs is not None else a.fallback)
    print(f"{step:.4f} s/step, {a.steps_per_epoch * step * a.factor:.0f} s per epoch, budget {budget:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
