"""Any bertprune method inside a Hugging Face ``Trainer``.

Add :class:`PruningCallback` to your ``Trainer`` (or use :class:`PruningTrainer`, which also adds
the method's loss terms, e.g. distillation)::

    from bertprune.config import PruneConfig
    from bertprune.hf_trainer import PruningTrainer, method_from_config

    method = method_from_config(PruneConfig(method="gradual", criterion="fisher", sparsity=0.9, scope="global"))
    trainer = PruningTrainer(model=model, args=args, train_dataset=train, eval_dataset=dev, method=method)
    trainer.train()                              # or trainer.train(resume_from_checkpoint=True)

What the callback does, at the Trainer's events:

- ``on_train_begin``: ``method.prepare(model, max_steps, steps_per_epoch)``; on a resumed run,
  the method's state (masks, criterion statistics, schedule position) is loaded from the
  checkpoint being resumed; the optimizer's ``step`` is wrapped so that every optimizer step goes
  through :func:`bertprune.train.optimizer_step`, the same hook order as bertprune's own loop
  (criterion after clipping → ``optimizer.step()`` → masks updated and re-applied), before the
  Trainer's learning-rate scheduler steps;
- ``on_save``: the method's state into the Trainer's ``checkpoint-N/`` (``bertprune-method.*``,
  safetensors + JSON, no pickle), so ``resume_from_checkpoint`` continues exactly;
- ``on_log``: the achieved sparsity added to the logs (and to ``trainer.state.log_history``);
- ``on_train_end``: ``method.finalize()`` (zeros baked into the weights) and the mask saved as
  ``<output_dir>/mask.safetensors``.

Your own ``Trainer`` subclass keeps its ``compute_loss`` and calls :func:`pruning_loss` in it when
the method adds loss terms (distillation); plain pruning needs no loss change at all.

Pruning while distilling (the high-sparsity recipe): ``method_from_config(prune, distill=DistillConfig(...),
teacher=FOLDER_OR_MODEL)``, and ``PruningTrainer(..., lr_schedule="rewind")`` for the recipe's cyclic
learning rate; ``examples/own_trainer.py`` runs a shipped recipe this way on your own CSV/JSON files.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from . import checkpoint as ckpt
from .config import DistillConfig, PruneConfig, TargetConfig
from .errors import BertpruneError
from .masks import MASK_FILE
from .methods import PruningMethod, build_method
from .schedules import LR_SCHEDULES, lr_factor
from .train import forward_loss, optimizer_step

STATE_STEM = "bertprune-method"


def method_from_config(prune: PruneConfig, targets: TargetConfig | None = None, *, distill: DistillConfig | None = None,
                       teacher: str | torch.nn.Module | None = None, regression: bool = False) -> PruningMethod:
    """The pruning method a :class:`~bertprune.config.PruneConfig` names (as ``bertprune finetune`` builds it);
    with ``distill`` and ``teacher`` (a fine-tuned model, or its folder: a run folder or any Hugging Face
    checkpoint), pruning while distilling as ``bertprune distill`` does. ``regression``: the task has one
    output (the prediction term is then the MSE to the teacher's score)."""
    from types import SimpleNamespace

    from .config import validate

    if distill is not None:  # the same checks as a recipe's distill section (hardness → weights, attn_loss...)
        import dataclasses

        distill = dataclasses.replace(distill, teacher=distill.teacher or str(getattr(teacher, "name_or_path", "") or "given"))
        if distill.augment.copies:
            raise BertpruneError("distill.augment edits the training set of `bertprune distill`; with your own Trainer the "
                                 "dataset is yours: augment it with bertprune.data.augment.augment and keep copies=0 here")
        if distill.transfer.examples:
            raise BertpruneError("distill.transfer adds rows to the training set of `bertprune distill`; with your own Trainer "
                                 "the dataset is yours: add them with bertprune.data.transfer.with_transfer_set and keep examples=0 here")
    validate(SimpleNamespace(prune=prune, **({"distill": distill} if distill is not None else {})))
    method = build_method(prune, targets)
    if distill is None:
        if teacher is not None:
            raise BertpruneError("a teacher was given without distill=DistillConfig(...): say how to distil from it")
        return method
    if teacher is None:
        raise BertpruneError("distill=... needs teacher= (a fine-tuned model or its folder)")
    from .methods.distill import Distillation

    load = (lambda: teacher) if isinstance(teacher, torch.nn.Module) else (lambda: load_teacher(teacher))
    return Distillation(method, load, distill, regression=regression)


def load_teacher(path: str) -> torch.nn.Module:
    """A fine-tuned sequence classifier from a bertprune run folder (its ``final/``) or any Hugging Face
    folder, loaded safely (safetensors, no remote code)."""
    from transformers import AutoModelForSequenceClassification

    from .config import ModelConfig
    from .models import load_model

    folder = Path(path)
    if (folder / "final" / "config.json").is_file():
        folder = folder / "final"
    return load_model(ModelConfig(name=str(folder)), AutoModelForSequenceClassification)


def lr_lambda(method: PruningMethod, kind: str, total_steps: int, warmup: int = 0, min_ratio: float = 0.1):
    """The factor of bertprune's learning-rate schedule ``kind`` at each step, for a ``LambdaLR`` made before
    the method is prepared: ``rewind`` reads the method's pruning steps once it knows them (the Trainer
    prepares it at ``on_train_begin``, after making its scheduler; only step 0, a cycle's start, comes first)."""
    restarts: list[int] | None = None

    def factor(step: int) -> float:
        nonlocal restarts
        if kind == "rewind" and restarts is None:
            if not getattr(method, "total_steps", 0):  # not prepared yet
                if step > 0:
                    raise BertpruneError("the learning-rate schedule 'rewind' needs the method prepared first "
                                         "(add PruningCallback, or use PruningTrainer)")
                return lr_factor(kind, step, total_steps, warmup, restarts=(), min_ratio=min_ratio)
            restarts = method.prune_steps()
        return lr_factor(kind, step, total_steps, warmup, restarts=restarts or (), min_ratio=min_ratio)

    return factor


def pruning_loss(model, inputs: dict, method: PruningMethod) -> torch.Tensor:
    """The loss bertprune's loop would use on this batch (the method's terms added): call it from a
    ``compute_loss`` of your own."""
    return forward_loss(model, inputs, method)


def _unwrapped(optimizer):
    """The torch optimizer under Accelerate's wrapper (masks zero its state at pruned places)."""
    return getattr(optimizer, "optimizer", optimizer)


class PruningCallback(TrainerCallback):
    """Runs ``method`` inside a ``Trainer``; see the module's documentation for what happens when."""

    def __init__(self, method: PruningMethod):
        self.method = method
        self.state = None  # the Trainer's state (its global_step numbers the optimizer steps)

    def on_train_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs):
        self.state = state
        steps_per_epoch = None
        if train_dataloader is not None and hasattr(train_dataloader, "__len__"):
            steps_per_epoch = max(1, math.ceil(len(train_dataloader) / args.gradient_accumulation_steps))
        self.method.prepare(model, state.max_steps, steps_per_epoch)
        if self.method.extra_parameters():
            raise BertpruneError(
                "this distillation needs a learned projection (the student is narrower than the teacher and a "
                "hidden-state term is on), which the Trainer's optimizer cannot know of: set distill.hidden_weight=0 "
                "and distill.last_hidden_weight=0, or use `bertprune distill`")
        if state.global_step > 0:  # resume_from_checkpoint: the Trainer restored weights, optimizer, RNG
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not (folder / f"{STATE_STEM}.json").is_file():
                raise BertpruneError(f"{folder} holds no bertprune method state ({STATE_STEM}.json): it was not saved "
                                     f"with PruningCallback, so the pruning cannot continue exactly from it")
            self.method.load_state_dict(ckpt.load_tree(folder, STATE_STEM))
        self._wrap(optimizer)

    def _wrap(self, optimizer) -> None:
        """Every ``optimizer.step()`` of the Trainer goes through :func:`bertprune.train.optimizer_step`."""
        if getattr(optimizer, "_bertprune_wrapped", False):
            return
        inner_step = optimizer.step

        def step(*args, **kwargs):
            optimizer_step(self.method, lambda: inner_step(*args, **kwargs), self.state.global_step + 1,
                           _unwrapped(optimizer))

        functools.update_wrapper(step, inner_step)  # keeps the marks torch's LR scheduler put on step()
        optimizer.step = step
        optimizer._bertprune_wrapped = True

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            ckpt.save_tree(self.method.state_dict(), folder, STATE_STEM)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or not len(self.method.masks):
            return
        sparsity = round(float(self.method.log_metrics()["sparsity"]), 6)
        logs["sparsity"] = sparsity  # what the Trainer's printers and reporters see
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1]["sparsity"] = sparsity  # the Trainer appended a copy before calling us

    def on_train_end(self, args, state, control, **kwargs):
        masks = self.method.finalize()
        if state.is_world_process_zero and len(masks):
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
            masks.save(Path(args.output_dir) / MASK_FILE)


class PruningTrainer(Trainer):
    """A ``Trainer`` that prunes with ``method`` (adding :class:`PruningCallback`) and trains on the
    method's loss (:func:`pruning_loss`: distillation terms included).

    ``lr_schedule`` (optional) replaces the Trainer's learning-rate scheduler by one of bertprune's
    (``rewind``: the recipe's cyclic schedule, restarting at each pruning step and decaying to
    ``lr_min_ratio`` of the rate; ``linear``, ``constant``), with the warm-up of ``args`` (``warmup_steps``);
    ``None`` keeps ``args.lr_scheduler_type``."""

    def __init__(self, *args: Any, method: PruningMethod, lr_schedule: str | None = None, lr_min_ratio: float = 0.1,
                 **kwargs: Any):
        if lr_schedule is not None and lr_schedule not in LR_SCHEDULES:
            raise BertpruneError(f"unknown lr_schedule {lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        super().__init__(*args, **kwargs)
        # pruning_loss is a mean, not a sum over num_items_in_batch: let the Trainer scale it for accumulation
        self.model_accepts_loss_kwargs = False
        self.method = method
        self.lr_schedule, self.lr_min_ratio = lr_schedule, lr_min_ratio
        # first in line, so the printers and reporters that follow see the sparsity it adds to the logs
        self.callback_handler.callbacks.insert(0, PruningCallback(method))

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_schedule is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            factor = lr_lambda(self.method, self.lr_schedule, num_training_steps,
                               self.args.get_warmup_steps(num_training_steps), self.lr_min_ratio)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, factor)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs or not model.training:  # evaluation: the task's own loss and outputs
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        return pruning_loss(model, inputs, self.method)
