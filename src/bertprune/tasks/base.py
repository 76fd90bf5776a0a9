"""The interface between a task and the training loop (:func:`bertprune.train.train`).

A task builds the model, tokenizer and datasets from the run config, evaluates, and may do work
before the main loop (e.g. train an untrained masked-LM head) or touch up a saved checkpoint. The
loop never knows which task it runs; the task never steps an optimizer of the main loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass
class Built:
    model: Any
    tokenizer: Any
    train_set: Any  # a datasets.Dataset of model inputs
    eval_sets: dict[str, Any]  # name → dataset; "dev" holds the headline metric
    collate: Callable


class Task:
    name: str = "task"
    #: key of the headline metric in ``evaluate()["dev"]``
    main_metric: str = ""
    #: tokens per sequence, for the MAC count of the report
    seq_len: int = 128

    def build(self, accelerator) -> Built:
        raise NotImplementedError

    def evaluate(self, model, loaders: dict, accelerator) -> dict[str, dict[str, float]]:
        raise NotImplementedError

    def headline(self, metrics: dict[str, dict[str, float]]) -> float:
        """The headline metric on a 0-100 scale."""
        return 100.0 * metrics["dev"][self.main_metric]

    def before_training(self, built: Built, eval_loaders: dict, accelerator, log, quiet: bool) -> dict[str, Any]:
        """Work before the main loop on a fresh (not resumed) run; returns facts for results.json."""
        return {}

    def touch_up_checkpoint(self, folder: Path) -> None:
        """Adjust a saved Hugging Face checkpoint (e.g. add tensors other models need)."""
