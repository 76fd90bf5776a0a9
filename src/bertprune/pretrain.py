"""``bertprune pretrain``: the pre-training stage with any pruning method, on the masked-LM objective
(``objective=mlm``, the default) or by distillation from the dense model (``objective=distill``,
:mod:`bertprune.tasks.text_distill`).

Writes ``<output_dir>/final/`` (a plain Hugging Face masked-LM checkpoint, zeros baked in, with the
pre-trained pooler carried over) and ``final/mask.safetensors``, the universal mask to keep fixed
while fine-tuning any task: ``bertprune finetune --model <output_dir>/final --mask
<output_dir>/final/mask.safetensors``.
"""

from __future__ import annotations

from typing import Any

from .errors import BertpruneError
from .methods import build_method
from .methods.distill import Distillation
from .tasks.mlm import MlmTask
from .tasks.text_distill import TextDistillTask
from .train import evaluate, make_accelerator, make_eval_loaders, train


def pretrain(cfg, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    if cfg.objective == "distill":  # the dense model's knowledge as the loss; any method prunes meanwhile
        task = TextDistillTask(cfg)
        method = Distillation(build_method(cfg.prune, cfg.targets), task.load_teacher, cfg.distill)
        return train(cfg, task, resume=resume, overwrite=overwrite, quiet=quiet, method=method)
    return train(cfg, MlmTask(cfg), resume=resume, overwrite=overwrite, quiet=quiet)


def evaluate_distilled(cfg) -> dict[str, Any]:
    """The held-out evaluation of an ``objective=distill`` student, without training: ``cfg`` is its run's
    config with ``model.name`` set to the student (e.g. ``<output_dir>/final``) and ``distill.teacher`` to
    the dense model. Same blocks as the run's own evaluations, so a metric added after the run can be
    measured on its model (and the others reproduce the run's final ones)."""
    if cfg.objective != "distill" or not cfg.distill.teacher:
        raise BertpruneError("evaluate_distilled needs objective=distill and distill.teacher (the dense model)")
    accelerator = make_accelerator(cfg)
    task = TextDistillTask(cfg)
    built = task.build(accelerator)
    model = accelerator.prepare(built.model)
    return evaluate(task, model, make_eval_loaders(cfg, built, accelerator), accelerator)
