"""GLUE fine-tuning as a :class:`~bertprune.tasks.base.Task`."""

from __future__ import annotations

import torch

from ..data.glue import get_task, load_glue, tokenize
from ..errors import BertpruneError
from ..metrics import glue_metrics
from ..models import load_sequence_classifier, load_tokenizer, sequence_length
from .base import Built, Task


def training_rows(cfg, train):
    """The training rows, followed in a distillation run by the edited copies of ``distill.augment``, then by
    the plain-text sentences of ``distill.transfer``."""
    distill = getattr(cfg, "distill", None)
    if distill is None:
        return train
    a, t = distill.augment, distill.transfer
    if a.copies:
        from ..data.augment import augment

        train = augment(train, a.copies, cfg.train.seed, a.delete, a.replace, a.swap)
    if t.examples:
        from ..data.transfer import with_transfer_set

        train = with_transfer_set(train, t.text, t.examples, cfg.train.seed)
    return train


class GlueTask(Task):
    def __init__(self, cfg):
        self.cfg = cfg
        self.spec = get_task(cfg.data.task)
        self.name = self.spec.name
        self.main_metric = self.spec.main_metric
        self.seq_len = cfg.data.max_length or 128

    def build(self, accelerator) -> Built:
        from transformers import DataCollatorWithPadding

        cfg, spec = self.cfg, self.spec
        model = load_sequence_classifier(cfg.model, spec)
        self.seq_len = sequence_length(model, cfg.data.max_length, 128)  # before any run folder exists
        tokenizer = load_tokenizer(cfg.model)
        data = load_glue(spec.name, cfg.data.glue_dir, cfg.data.train_examples, cfg.data.eval_examples, cfg.train.seed)
        with accelerator.main_process_first():
            train_set = tokenize(training_rows(cfg, data.train), tokenizer, spec, self.seq_len)
            eval_sets = {k: tokenize(v, tokenizer, spec, self.seq_len) for k, v in data.eval.items()}
        return Built(model, tokenizer, train_set, eval_sets, DataCollatorWithPadding(tokenizer))

    def load_teacher(self, path: str):
        """A model fine-tuned on this task (a run folder's final/ or any HF checkpoint)."""
        from pathlib import Path

        from transformers import AutoModelForSequenceClassification

        from ..config import ModelConfig
        from ..models import load_model

        folder = Path(path)
        if (folder / "final" / "config.json").is_file():  # a bertprune run folder
            folder = folder / "final"
        model, info = load_model(ModelConfig(name=str(folder)), AutoModelForSequenceClassification, output_loading_info=True)
        head = [k for k in info["missing_keys"] if "classifier" in k or "score" in k]
        if head:
            raise BertpruneError(
                f"teacher {path} has no trained classification head (missing {head[0]}); pass a model "
                f"fine-tuned on {self.name}, e.g. the final/ folder of `bertprune finetune --task {self.name}`"
            )
        return model

    @torch.no_grad()
    def predict(self, model, loader, accelerator):
        """(predictions, gold labels) of ``model`` over ``loader``, gathered from every process: the
        predicted class, or the score for regression."""
        preds, golds = [], []
        for batch in loader:
            logits = model(**batch).logits
            pred = logits.squeeze(-1).float() if self.spec.is_regression else logits.argmax(-1)
            pred, gold = accelerator.gather_for_metrics((pred, batch["labels"]))
            preds.append(pred.cpu())
            golds.append(gold.cpu())
        return torch.cat(preds).numpy(), torch.cat(golds).numpy()

    def evaluate(self, model, loaders, accelerator):
        return {name: self.metrics(*self.predict(model, loader, accelerator)) for name, loader in loaders.items()}

    def metrics(self, predictions, labels) -> dict[str, float]:
        return glue_metrics(self.name, predictions, labels)
