"""Your own data (``text_classification``, ``text_regression``) as a :class:`~bertprune.tasks.base.Task`.

The GLUE task with another data source (:mod:`bertprune.data.files`) and other metrics: accuracy and
macro-F1 (headline accuracy), or Pearson (headline) and Spearman. The classes found in the training file
are saved as the model's ``id2label``/``label2id``.
"""

from __future__ import annotations

from ..data.files import FileTaskSpec, load_files
from ..data.glue import tokenize
from ..errors import BertpruneError
from ..metrics import own_data_metrics
from ..models import load_sequence_classifier, load_tokenizer, sequence_length
from .base import Built
from .glue import GlueTask, training_rows


class FileTask(GlueTask):
    def __init__(self, cfg):
        self.cfg = cfg
        self.spec = FileTaskSpec(cfg.data.task, cfg.data.task == "text_regression", len(cfg.data.text_columns) == 2)
        self.name = self.spec.name
        self.main_metric = self.spec.main_metric
        self.seq_len = cfg.data.max_length or 128

    def build(self, accelerator) -> Built:
        from transformers import DataCollatorWithPadding

        cfg = self.cfg
        data = load_files(cfg.data, cfg.data.task, cfg.data.train_examples, cfg.data.eval_examples, cfg.train.seed)
        self.spec = spec = data.spec
        model = load_sequence_classifier(cfg.model, spec)
        self.seq_len = sequence_length(model, cfg.data.max_length, 128)
        tokenizer = load_tokenizer(cfg.model)
        with accelerator.main_process_first():
            train_set = tokenize(training_rows(cfg, data.train), tokenizer, spec, self.seq_len)
            eval_sets = {k: tokenize(v, tokenizer, spec, self.seq_len) for k, v in data.eval.items()}
        return Built(model, tokenizer, train_set, eval_sets, DataCollatorWithPadding(tokenizer))

    def load_teacher(self, path: str):
        model = super().load_teacher(path)
        if self.spec.is_regression:
            if model.config.num_labels != 1:
                raise BertpruneError(f"teacher {path} has {model.config.num_labels} outputs; text_regression needs a "
                                     f"teacher fine-tuned with --task text_regression (one output)")
        elif self.spec.labels is not None:  # known once build() has read the data
            theirs = [model.config.id2label.get(i) for i in range(model.config.num_labels)]
            if theirs != list(self.spec.labels):
                raise BertpruneError(f"teacher {path} predicts the classes {theirs}, but the training file's classes "
                                     f"are {list(self.spec.labels)}; fine-tune the teacher on the same file")
        return model

    def metrics(self, predictions, labels) -> dict[str, float]:
        return own_data_metrics(self.spec.is_regression, predictions, labels, self.spec.num_labels)
