"""The pre-training stage by distillation: ``bertprune pretrain objective=distill``.

The student (the model being pruned) learns the dense teacher's hidden states, attention
distributions and, optionally, sentence embeddings on plain text (:class:`~bertprune.methods.distill.Distillation`
with the ``distill`` section's weights), instead of the masked-LM loss alone, which never trains the
[CLS] position and lets it collapse while the encoder is pruned (``benchmarks/results/cls_collapse.md``).
The teacher is the starting model itself unless ``distill.teacher`` names another.

* ``distill.task_weight == 0`` (the default): the student is the bare encoder (``AutoModel``, pooler
  included), fed the text unmasked; its checkpoint is a plain encoder, as all-MiniLM-L6-v2 is.
* ``distill.task_weight > 0``: the masked-LM loss is one more term; the student is the masked-LM model
  (its untrained head first trained with the encoder frozen, as ``objective=mlm`` does), both models see
  the same masked text.

Held-out metrics (on the held-out blocks of the text): each distillation term without its weight
(``hidden_mse``, ``attn_kl`` is left to training logs), ``embedding_cosine`` — the mean cosine of the
student's and the teacher's mean-pooled embeddings, the headline — ``cls_cosine`` likewise for [CLS],
``token_cosine_layer{i}`` the mean cosine of the student's and the teacher's token states after layer i
(0 = embeddings; over real tokens: what the hidden MSE mixes with scale, layer by layer),
and ``cls_pairwise_cosine`` of the student and of the teacher (the collapse check); masked-LM metrics
too when the masked-LM term is on; with ``data.glue_dir``, zero-shot STS-B dev (``stsb_zeroshot_spearman``)
and the pairwise cosine of its first sentences' [CLS] states.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import ModelConfig
from ..sentence import last_hidden_state, mean_pairwise_cosine, stsb_zeroshot
from ..errors import BertpruneError
from ..methods.distill import hidden_state_loss, layer_map, sentence_embeddings, token_cosines
from ..models import load_model, load_tokenizer, sequence_length
from .base import Built, Task
from .mlm import MlmTask, text_blocks


class TextDistillTask(Task):
    name = "text_distill"
    main_metric = "embedding_cosine"

    def __init__(self, cfg):
        self.cfg = cfg
        self.seq_len = cfg.data.block_size
        self.mlm = MlmTask(cfg) if cfg.distill.task_weight > 0 else None  # the masked-LM term, its model and data
        self._teacher = None

    @property
    def teacher_name(self) -> str:
        return self.cfg.distill.teacher or self.cfg.model.name

    def load_teacher(self) -> torch.nn.Module:
        """The dense teacher as a bare encoder, loaded once (the distillation and the evaluation share it)."""
        if self._teacher is None:
            from transformers import AutoModel

            teacher = load_model(ModelConfig(name=self.teacher_name, revision=self.cfg.model.revision), AutoModel)
            self._teacher = teacher.eval().requires_grad_(False)
        return self._teacher

    # --- model and data -----------------------------------------------------------------------
    def build(self, accelerator) -> Built:
        if self.mlm is not None:
            return self.mlm.build(accelerator)
        from transformers import AutoModel, DataCollatorWithPadding

        cfg = self.cfg
        model = load_model(cfg.model, AutoModel)
        if getattr(model, "pooler", None) is not None:  # not in any loss term: frozen, so DDP sees no unused gradient;
            model.pooler.requires_grad_(False)          # the checkpoint still carries it for task models
        tokenizer = load_tokenizer(cfg.model)
        sequence_length(model, cfg.data.block_size, cfg.data.block_size, key="data.block_size")
        if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
            raise BertpruneError("the tokenizer lacks the [CLS]/[SEP] tokens that text blocks are made of")
        if cfg.data.nsp:
            raise BertpruneError("objective=distill does not do next-sentence prediction; set data.nsp=false")

        if cfg.data.pair_fraction > 0:
            for which, name, c in (("model", cfg.model.name, model.config),
                                   ("teacher", self.teacher_name, self.load_teacher().config)):
                if getattr(c, "type_vocab_size", 0) < 2:  # RoBERTa: one segment; DistilBERT: no segment ids at all
                    raise BertpruneError(f"data.pair_fraction needs segment ids (type_vocab_size >= 2); the {which} "
                                         f"({name}) has {getattr(c, 'type_vocab_size', 'none')}: set data.pair_fraction=0")

        def blocks(docs_ids, tok, seed):
            from datasets import Dataset

            from ..data.text import pack_blocks

            return Dataset.from_dict({"input_ids": pack_blocks(docs_ids, cfg.data.block_size, tok.cls_token_id,
                                                               tok.sep_token_id)})

        def mixed(docs_ids, tok, seed):  # a share of two-segment inputs, as pair tasks fine-tune on
            from datasets import Dataset

            from ..data.text import mix_pairs

            return Dataset.from_dict(mix_pairs(docs_ids, cfg.data.block_size, tok.cls_token_id, tok.sep_token_id,
                                               seed, cfg.data.pair_fraction))

        # the held-out set stays packed blocks, so its metrics compare across pair_fraction values
        train_set, eval_set = text_blocks(cfg, tokenizer, accelerator, mixed if cfg.data.pair_fraction > 0 else blocks,
                                          eval_examples=blocks)
        return Built(model, tokenizer, train_set, {"dev": eval_set}, DataCollatorWithPadding(tokenizer))

    def before_training(self, built, eval_loaders, accelerator, log, quiet):
        return self.mlm.before_training(built, eval_loaders, accelerator, log, quiet) if self.mlm is not None else {}

    def touch_up_checkpoint(self, folder: Path) -> None:
        if self.mlm is not None:  # a masked-LM checkpoint lacks the pooler: carry it over
            self.mlm.touch_up_checkpoint(folder)

    # --- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model, loaders, accelerator):
        teacher = self.load_teacher().to(accelerator.device)
        results = {}
        for name, loader in loaders.items():
            sums = torch.zeros(3, dtype=torch.float64)  # hidden MSE, embedding cosine, [CLS] cosine (× rows)
            rows, student_cls, teacher_cls = 0, [], []
            # student layer i against the teacher layer distillation pairs it with (the same one at equal depth)
            pairs = [0] + layer_map(accelerator.unwrap_model(model).config.num_hidden_layers, teacher.config.num_hidden_layers)
            layer_cos, tokens = torch.zeros(len(pairs), dtype=torch.float64), 0  # Σ token cosine per student layer; Σ tokens
            for batch in loader:
                mask = batch.get("attention_mask")
                inputs = {k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label")}
                # a masked-LM student keeps its labels: it then projects only the masked positions to the vocabulary
                s = model(**(batch if self.mlm is not None else inputs), output_hidden_states=True)
                t = teacher(**inputs, output_hidden_states=True)
                t_states = [t.hidden_states[j] for j in pairs]
                n = len(batch["input_ids"])
                s_cls, s_mean = sentence_embeddings(last_hidden_state(s), mask)
                t_cls, t_mean = sentence_embeddings(last_hidden_state(t), mask)
                sums += torch.tensor([
                    float(hidden_state_loss(list(s.hidden_states), t_states, None, mask)) * n,
                    float(torch.nn.functional.cosine_similarity(s_mean, t_mean, dim=-1).sum()),
                    float(torch.nn.functional.cosine_similarity(s_cls, t_cls, dim=-1).sum()),
                ], dtype=torch.float64)
                rows += n
                cos, k = token_cosines(list(s.hidden_states), t_states, mask)
                layer_cos += cos.double().cpu()
                tokens += k
                student_cls.append(s_cls.cpu())
                teacher_cls.append(t_cls.cpu())
            sums = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()
            rows = int(accelerator.reduce(torch.tensor(rows, device=accelerator.device), reduction="sum"))
            layer_cos = accelerator.reduce(layer_cos.to(accelerator.device), reduction="sum").cpu()
            tokens = int(accelerator.reduce(torch.tensor(tokens, device=accelerator.device), reduction="sum"))
            metrics = {"hidden_mse": float(sums[0]) / rows, "embedding_cosine": float(sums[1]) / rows,
                       "cls_cosine": float(sums[2]) / rows,
                       # layer 0 = the embedding layer's output, the last = the states the sentence embedding pools
                       **{f"token_cosine_layer{i}": float(c) / tokens for i, c in enumerate(layer_cos)},
                       "blocks": rows}
            if sum(len(x) for x in student_cls) >= 2:  # this process's held-out rows
                metrics["cls_pairwise_cosine"] = mean_pairwise_cosine(torch.cat(student_cls))
                metrics["cls_pairwise_cosine_teacher"] = mean_pairwise_cosine(torch.cat(teacher_cls))
            results[name] = metrics
        if self.mlm is not None:  # the masked-LM metrics too, on the same held-out blocks
            for name, metrics in self.mlm.evaluate(model, loaders, accelerator).items():
                results[name].update(metrics)
        if self.cfg.data.glue_dir and accelerator.is_main_process:  # the sentence encoder's own job, no fine-tuning
            tokenizer = load_tokenizer(self.cfg.model)
            scores = stsb_zeroshot(accelerator.unwrap_model(model), tokenizer, self.cfg.data.glue_dir)
            results["dev"].update({"stsb_zeroshot_spearman": scores["spearman"],
                                   "stsb_cls_pairwise_cosine": scores["cls_pairwise_cosine"]})
        return results

