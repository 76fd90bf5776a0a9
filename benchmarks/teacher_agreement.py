"""How closely finished distillation runs copy their teachers on the dev set (:mod:`bertprune.fidelity`).

Records of ``high_sparsity.py`` carry the agreement (field ``teacher_agreement``) from the commit that added it on;
this driver measures it after the fact for any run folder of ``bertprune distill`` whose teacher is still on disk.
Run it from the folder the runs were started in (their configs hold relative paths). One JSON line per run: the
student's and the teacher's dev metrics (against the gold labels) and the student's against the teacher's predictions.

    python benchmarks/teacher_agreement.py runs/bench-high-sparsity/rte-sparse-kd-0.9-fisher-20ep-s42-cf176b08
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def agreement_of(run: Path) -> dict:
    from bertprune.config import DistillRunConfig, load_config
    from bertprune.fidelity import teacher_agreement
    from bertprune.rundir import CONFIG_FILE, FINAL
    from bertprune.train import downstream_task, evaluate, make_accelerator, make_eval_loaders

    cfg = load_config(run / CONFIG_FILE, [f"model.name={run / FINAL}"], schema=DistillRunConfig)
    task = downstream_task(cfg)
    accelerator = make_accelerator(cfg)
    built = task.build(accelerator)
    loaders = make_eval_loaders(cfg, built, accelerator)
    # prepared as in training: the run's mixed precision (bf16 autocast) applies to every forward
    student, teacher = accelerator.prepare(built.model), accelerator.prepare(task.load_teacher(cfg.distill.teacher))
    return {"run": str(run), "task": task.name, "teacher": cfg.distill.teacher,
            "student_dev": evaluate(task, student, loaders, accelerator)["dev"],
            "teacher_dev": evaluate(task, teacher, loaders, accelerator)["dev"],
            "agreement": teacher_agreement(task, student, teacher, loaders, accelerator)["dev"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders of bertprune distill (with config.yaml and final/)")
    args = p.parse_args(argv)
    for run in args.runs:
        print(json.dumps(agreement_of(run)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
