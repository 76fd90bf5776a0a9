"""SQuAD v1.1 extractive question answering as a :class:`~bertprune.tasks.base.Task`.

Headline metric: F1 (official normalisation); ``exact_match`` beside it. Each evaluation's
predictions, ``{question id: answer}`` as the official evaluation script expects, are written to
``predictions.json`` in the checkpoints saved after it (``final/``, ``best/``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.glue import subsample
from ..data.squad import eval_features, load_squad_hub, read_squad, train_features
from ..errors import BertpruneError
from ..models import load_model, load_tokenizer, sequence_length
from ..squad_metrics import best_answers, squad_metrics
from .base import Built, Task


class SquadTask(Task):
    name = "squad"
    main_metric = "f1"

    def __init__(self, cfg):
        self.cfg = cfg
        self.seq_len = cfg.data.max_length or 384
        self.predictions: dict[str, str] = {}

    def build(self, accelerator) -> Built:
        from transformers import AutoModelForQuestionAnswering, DataCollatorWithPadding

        d = self.cfg.data
        model = load_model(self.cfg.model, AutoModelForQuestionAnswering)
        self.seq_len = sequence_length(model, d.max_length, 384)  # before any run folder exists
        if not 0 < d.doc_stride < self.seq_len // 2:  # config.validate checked it against the default 384
            raise BertpruneError(f"data.doc_stride={d.doc_stride} must be in (0, {self.seq_len // 2}) for sequences of "
                                 f"{self.seq_len} tokens (this model's limit); set data.doc_stride lower")
        tokenizer = load_tokenizer(self.cfg.model)
        if d.squad_dir:
            train_ex = read_squad(Path(d.squad_dir) / d.squad_train_file)
            dev_ex = read_squad(Path(d.squad_dir) / d.squad_dev_file)
        else:
            train_ex, dev_ex = load_squad_hub("train"), load_squad_hub("validation")
        train_ex = subsample(train_ex, d.train_examples, self.cfg.train.seed)
        dev_ex = subsample(dev_ex, d.eval_examples, self.cfg.train.seed)
        with accelerator.main_process_first():
            train_set = train_features(train_ex, tokenizer, self.seq_len, d.doc_stride)
            feats = eval_features(dev_ex, tokenizer, self.seq_len, d.doc_stride)
        # Evaluation batches windows of similar length (longest first), since the collator pads each
        # batch to its longest: about 2.4x less work on SQuAD's dev set than padding every batch to
        # ~384. ``restore`` puts the logits back in feature order (``by_length[restore] = arange``).
        by_length = np.argsort([-len(ids) for ids in feats["input_ids"]], kind="stable")
        self.dev = {
            "ids": list(dev_ex["id"]),
            "contexts": dict(zip(dev_ex["id"], dev_ex["context"])),
            "golds": {i: a["text"] for i, a in zip(dev_ex["id"], dev_ex["answers"])},
            "feature_ids": list(feats["example_id"]),
            "offsets": list(feats["offset_mapping"]),
            "restore": np.argsort(by_length),
        }
        eval_set = feats.remove_columns(["example_id", "offset_mapping"]).select(by_length)
        return Built(model, tokenizer, train_set, {"dev": eval_set}, DataCollatorWithPadding(tokenizer))

    def load_teacher(self, path: str):
        from transformers import AutoModelForQuestionAnswering

        from ..config import ModelConfig

        folder = Path(path)
        if (folder / "final" / "config.json").is_file():
            folder = folder / "final"
        model, info = load_model(ModelConfig(name=str(folder)), AutoModelForQuestionAnswering, output_loading_info=True)
        if any("qa_outputs" in k for k in info["missing_keys"]):
            raise BertpruneError(f"teacher {path} has no trained question-answering head; pass a model fine-tuned on SQuAD")
        return model

    @torch.no_grad()
    def evaluate(self, model, loaders, accelerator):
        starts, ends = [], []
        for batch in loaders["dev"]:
            out = model(**batch)
            pad = self.seq_len - out.start_logits.shape[1]  # the collator pads each batch to its longest
            s = F.pad(out.start_logits.float(), (0, pad), value=-1e4)
            e = F.pad(out.end_logits.float(), (0, pad), value=-1e4)
            s, e = accelerator.gather_for_metrics((s, e))
            starts.append(s.cpu())
            ends.append(e.cpu())
        d, cfg = self.dev, self.cfg.data
        start_logits, end_logits = torch.cat(starts).numpy()[d["restore"]], torch.cat(ends).numpy()[d["restore"]]
        self.predictions = best_answers(d["ids"], d["contexts"], d["feature_ids"], d["offsets"], start_logits,
                                        end_logits, cfg.n_best, cfg.max_answer_length)
        return {"dev": squad_metrics(self.predictions, d["golds"])}

    def touch_up_checkpoint(self, folder: Path) -> None:
        if self.predictions:
            (folder / "predictions.json").write_text(json.dumps(self.predictions, indent=0, ensure_ascii=False))
