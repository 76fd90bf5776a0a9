"""GLUE fine-tuning as a :class:`~bertprune.tasks.base.Task`."""

from __future__ import annotations

import torch

from ..data.glue import get_task, load_glue, tokenize
from ..metrics import glue_metrics
from ..models import load_sequence_classifier, load_tokenizer
from .base import Built, Task


class GlueTask(Task):
    def __init__(self, cfg):
        self.cfg = cfg
        self.spec = get_task(cfg.data.task)
        self.name = self.spec.name
        self.main_metric = self.spec.main_metric
        self.seq_len = cfg.data.max_length

    def build(self, accelerator) -> Built:
        from transformers import DataCollatorWithPadding

        cfg, spec = self.cfg, self.spec
        model = load_sequence_classifier(cfg.model, spec)
        tokenizer = load_tokenizer(cfg.model)
        data = load_glue(spec.name, cfg.data.glue_dir, cfg.data.train_examples, cfg.data.eval_examples, cfg.train.seed)
        with accelerator.main_process_first():
            train_set = tokenize(data.train, tokenizer, spec, cfg.data.max_length)
            eval_sets = {k: tokenize(v, tokenizer, spec, cfg.data.max_length) for k, v in data.eval.items()}
        return Built(model, tokenizer, train_set, eval_sets, DataCollatorWithPadding(tokenizer))

    @torch.no_grad()
    def evaluate(self, model, loaders, accelerator):
        results = {}
        for name, loader in loaders.items():
            preds, golds = [], []
            for batch in loader:
                logits = model(**batch).logits
                pred = logits.squeeze(-1).float() if self.spec.is_regression else logits.argmax(-1)
                pred, gold = accelerator.gather_for_metrics((pred, batch["labels"]))
                preds.append(pred.cpu())
                golds.append(gold.cpu())
            results[name] = glue_metrics(self.name, torch.cat(preds).numpy(), torch.cat(golds).numpy())
        return results
