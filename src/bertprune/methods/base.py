"""The interface between a pruning method and the training loop.

A method never owns the loop. The loop (:func:`bertprune.train.finetune`, or any loop of yours)
calls a few named hooks, in this order::

    method.prepare(model, total_steps)                 # choose target matrices, make first masks (model on its device)
    for step in range(1, total_steps + 1):             # step = optimizer steps done after this one
        outputs = model(**batch, **method.forward_kwargs())
        loss = method.loss(outputs.loss, outputs, batch)   # add or replace loss terms
        loss.backward(); clip_grad_norm_(...)
        method.before_optimizer_step()                 # a criterion reads the gradients
        optimizer.step()
        method.after_step(step, optimizer)             # update masks on schedule, re-apply them
        lr_scheduler.step(); optimizer.zero_grad()
    masks = method.finalize()                          # zeros baked into the weights

:func:`bertprune.train.train_step` is this order in code; bertprune's loop, the benchmarks and your
own loop can all call it instead of writing the hooks out.

``after_step`` runs before ``lr_scheduler.step()`` so that ``optimizer.param_groups[i]["lr"]``
is the learning rate of the step just taken (a proximal method needs it). ``state_dict`` and
``load_state_dict`` hold everything ``after_step`` depends on, so a resumed run continues exactly.

A method is a thin stateful class around a pure function (e.g. :func:`~bertprune.methods.magnitude.
magnitude_masks`): the function decides, the class remembers and enforces. Masks live in a
:class:`~bertprune.masks.Masks` keyed by parameter name; parameters are never replaced.
"""

from __future__ import annotations

from typing import Any

import torch

from ..config import TargetConfig
from ..masks import Masks
from ..targets import Target, model_targets


class PruningMethod:
    """Base class: target selection, mask bookkeeping and enforcement. Leaves override hooks."""

    name = "base"

    def __init__(self, targets: TargetConfig | None = None):
        self.targets_cfg = targets or TargetConfig()
        self.targets: list[Target] = []
        self.masks = Masks()
        self.total_steps = 0

    # --- hooks --------------------------------------------------------------------------------
    def prepare(self, model: torch.nn.Module, total_steps: int, steps_per_epoch: int | None = None) -> None:
        """Bind to ``model`` (unwrapped, before DDP, already on its device) and the run's length; make the
        first masks. Masks and criterion statistics are made beside the weights and stay there."""
        self.total_steps = total_steps
        self.targets = model_targets(model, self.targets_cfg)
        params = dict(model.named_parameters())
        self.masks = Masks.dense({t.name: params[t.name] for t in self.targets}).bind(model)

    def forward_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for the model's forward (e.g. ``output_hidden_states=True``)."""
        return {}

    def loss(self, task_loss: torch.Tensor, outputs: Any, batch: dict) -> torch.Tensor:
        """The loss to minimise, given the task loss and the model outputs. Default: the task loss."""
        return task_loss

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters the method trains besides the model's (the loop adds them to the optimizer)."""
        return []

    def before_optimizer_step(self) -> None:
        """After backward, before the optimizer step (gradients in ``.grad``, synced across processes):
        a criterion accumulates its statistics here. Default: nothing."""

    def after_step(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        """After each optimizer step: re-apply the masks (and zero optimizer state at pruned places)."""
        self.masks.apply(optimizer)

    def finalize(self) -> Masks:
        """Bake the zeros into the weights for good and return the final masks."""
        if len(self.masks):
            self.masks.apply()
        return self.masks

    # --- reporting ----------------------------------------------------------------------------
    def log_metrics(self) -> dict[str, Any]:
        """Numbers for the run's metrics.jsonl at each log step: the sparsity of the targeted
        matrices (exact zeros) and of each matrix, keyed ``<layer>.<role>``."""
        if not self.targets:
            return {"sparsity": 0.0}
        per = {}
        zeros = total = 0
        for t in self.targets:
            z = int((self.masks._params[t.name] == 0).sum())
            per[f"{t.layer}.{t.role}" if t.layer is not None else t.name] = round(z / t.numel, 5)
            zeros, total = zeros + z, total + t.numel
        return {"sparsity": zeros / total, "matrix_sparsity": per}

    def summary(self) -> dict[str, Any]:
        """Facts about the finished pruning for results.json."""
        return {"sparsity": self.masks.sparsity()} if len(self.masks) else {}

    # --- schedule -----------------------------------------------------------------------------
    def target_sparsity(self, step: int) -> float:
        """The sparsity the method aims at after ``step`` optimizer steps."""
        return 0.0

    def reached_target(self, step: int) -> bool:
        """True once the masks are final: only then is a checkpoint a candidate for "best"."""
        return True

    def prune_steps(self) -> list[int]:
        """Optimizer steps after which the masks may change (the learning rate rewinds there)."""
        return []

    # --- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"masks": dict(self.masks.masks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks.update(state["masks"])

    # --- helpers for leaves -------------------------------------------------------------------
    def set_masks(self, new: dict[str, torch.Tensor]) -> None:
        """Install new masks, identical on every rank (rank 0's win under torch.distributed)."""
        self.masks.update(new)
        self.masks.broadcast_()

    def check_granularity(self, granularity, sparsity: float) -> None:
        """Fail before training when the pattern cannot tile a target matrix or reach the sparsity."""
        from ..errors import BertpruneError

        for t in self.targets:
            if (why := granularity.check_shape(t.shape)) is not None:
                raise BertpruneError(f"prune.granularity={granularity}: {why} ({t.name}); choose a pattern that divides "
                                     f"the matrix sides, or prune.granularity=unstructured")
        if (why := granularity.check_sparsity(sparsity)) is not None:
            raise BertpruneError(f"prune.granularity={granularity}: {why}")

    def weights(self) -> dict[str, torch.Tensor]:
        return {t.name: self.masks._params[t.name].detach() for t in self.targets}


class Dense(PruningMethod):
    """No pruning: the dense baseline. Touches nothing and needs no prunable matrices."""

    name = "dense"

    def prepare(self, model: torch.nn.Module, total_steps: int, steps_per_epoch: int | None = None) -> None:
        self.total_steps = total_steps

    def after_step(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        pass
