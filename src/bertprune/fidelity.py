"""How faithfully a distilled student copies its teacher ("fidelity", Stanton et al. 2021, "Does Knowledge
Distillation Really Work?"): the task's own metrics with the teacher's predictions in place of the gold labels.
Accuracy is then the share of examples where student and teacher predict the same class; for STS-B, Pearson and
Spearman against the teacher's scores.

It separates two reasons a student scores low: it fails to copy its teacher (low agreement), or it copies a
teacher whose own margin over chance is small (on RTE the MiniLM teacher is 5 points above the majority class, so a
student that agrees with it on 80% of dev pairs is back at the majority class).
"""

from __future__ import annotations

from typing import Any


def teacher_agreement(task, student, teacher, loaders: dict, accelerator) -> dict[str, dict[str, float]] | None:
    """``{split: metrics of the student's predictions against the teacher's}`` over ``loaders``; None for a task
    without per-example predictions (``task.predict``), e.g. SQuAD or the masked-LM stage. Both models run in
    eval mode under the accelerator's autocast; their modes are restored."""
    if not callable(getattr(task, "predict", None)):
        return None
    modes = [(m, m.training) for m in (student, teacher)]
    for m, _ in modes:
        m.eval()
    try:
        out: dict[str, Any] = {}
        for name, loader in loaders.items():
            with accelerator.autocast():  # the precision both ran in during training (the teacher is not prepared)
                s, _ = task.predict(student, loader, accelerator)
                t, _ = task.predict(teacher, loader, accelerator)
            out[name] = task.metrics(s, t)
        return out
    finally:
        for m, mode in modes:
            m.train(mode)
