"""Masked-LM (optionally + next-sentence prediction) pre-training stage as a :class:`Task`.

Held-out metrics: ``mlm_loss`` (mean cross-entropy over masked tokens), ``mlm_accuracy`` (share of
masked tokens predicted exactly) and, with NSP, ``nsp_accuracy``. Evaluation masks the held-out
blocks with a fixed seed, so every evaluation of every run sees the same masked positions (and the
training RNG is left untouched).

Many checkpoints (all-MiniLM-L6-v2 among them) ship without a trained pre-training head. When
weights of the head are missing, :meth:`MlmTask.before_training` first trains the head alone, the
encoder frozen, so that pruning starts from a meaningful masked-LM loss; held-out accuracy before
and after goes to results.json.
"""

from __future__ import annotations

import random
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers.utils import ModelOutput

from ..data.text import nsp_pairs, pack_blocks, read_documents, split_documents, tokenize_documents
from ..errors import BertpruneError
from ..models import forward_inputs, load_model, load_tokenizer, resolve_model_path, sequence_length
from .base import Built, Task

EVAL_SEED = 1234


@dataclass
class MaskedOnlyOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # [masked tokens, vocab]: only the positions with a label
    seq_relationship_logits: torch.Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


def _prediction_heads(model):
    """(token head, NSP head or None) of a masked-LM / pre-training model, or None if unknown."""
    if hasattr(model, "cls"):  # BERT: BertOnlyMLMHead, or BertPreTrainingHeads with NSP
        if hasattr(model.cls, "seq_relationship"):
            return model.cls.predictions, model.cls.seq_relationship
        return model.cls, None
    if hasattr(model, "lm_head"):  # RoBERTa family
        return model.lm_head, None
    if hasattr(model, "vocab_projector"):  # DistilBERT
        return (lambda h: model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(h))))), None
    return None


def _masked_only_forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                         next_sentence_label=None, **kwargs):
    token_head, nsp_head = _prediction_heads(self)
    inputs = forward_inputs(self.base_model, {"input_ids": input_ids, "attention_mask": attention_mask,
                                              "token_type_ids": token_type_ids})
    out = self.base_model(**inputs, **kwargs)  # kwargs: output_hidden_states and the like, passed as given
    hidden = out[0]  # [batch, tokens, hidden]
    selected = labels != -100 if labels is not None else torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    logits = token_head(hidden[selected])  # [masked tokens, vocab]
    loss = torch.nn.functional.cross_entropy(logits.float(), labels[selected]) if labels is not None else None
    nsp_logits = None
    if nsp_head is not None:
        nsp_logits = nsp_head(out[1])  # pooled [CLS]
        if next_sentence_label is not None:
            nsp_loss = torch.nn.functional.cross_entropy(nsp_logits.float(), next_sentence_label.view(-1))
            loss = nsp_loss if loss is None else loss + nsp_loss
    return MaskedOnlyOutput(loss=loss, logits=logits, seq_relationship_logits=nsp_logits,
                            hidden_states=getattr(out, "hidden_states", None), attentions=getattr(out, "attentions", None))


def use_masked_only_forward(model) -> bool:
    """Make ``model`` project to the vocabulary only at the masked positions (≈15% of tokens).

    Hugging Face's masked-LM models score every position and then ignore 85% of them in the loss;
    for a 384-wide model with a 30k vocabulary that projection costs more than the whole encoder.
    The loss is the same (mean cross-entropy over labelled positions, plus NSP's when present).
    The forward is bound to the instance, so parameter names, ``save_pretrained`` and
    ``copy.deepcopy`` are unaffected. Returns False (and changes nothing) for unknown heads.
    """
    if _prediction_heads(model) is None:
        return False
    model.forward = types.MethodType(_masked_only_forward, model)
    return True


def text_blocks(cfg, tokenizer, accelerator, examples, eval_examples=None) -> tuple:
    """(training, held-out) datasets of ``cfg.data``'s plain text: documents read, sampled
    (``max_documents``), split by document (``validation_fraction``), tokenized, and made into
    examples by ``examples(docs_ids, tokenizer, seed)`` (the held-out ones by ``eval_examples`` when
    given); at most ``eval_blocks`` held out (seeded)."""
    data = cfg.data
    docs = read_documents(data.text_dir, data.text_files, data.hub_dataset, data.hub_config, data.hub_split, data.text_column)
    if data.max_documents is not None and data.max_documents < len(docs):
        keep = sorted(random.Random(cfg.train.seed).sample(range(len(docs)), data.max_documents))
        docs = [docs[i] for i in keep]
    train_docs, val_docs = split_documents(docs, data.validation_fraction, cfg.train.seed)
    if not val_docs:
        raise BertpruneError("data.validation_fraction=0 leaves nothing to evaluate on; use e.g. 0.05")
    with accelerator.main_process_first():
        train_set = examples(tokenize_documents(train_docs, tokenizer), tokenizer, cfg.train.seed)
        eval_set = (eval_examples or examples)(tokenize_documents(val_docs, tokenizer), tokenizer, cfg.train.seed + 1)
    if data.eval_blocks is not None and data.eval_blocks < len(eval_set):
        eval_set = eval_set.select(sorted(random.Random(cfg.train.seed).sample(range(len(eval_set)), data.eval_blocks)))
    if len(train_set) == 0 or len(eval_set) == 0:
        raise BertpruneError(f"too little text: {len(train_set)} training and {len(eval_set)} held-out blocks")
    return train_set, eval_set


class MlmTask(Task):
    name = "mlm"
    main_metric = "mlm_accuracy"

    def __init__(self, cfg):
        self.cfg = cfg
        self.seq_len = cfg.data.block_size
        self.missing_head: list[str] = []
        self.base_prefix = ""

    # --- model and data -----------------------------------------------------------------------
    def build(self, accelerator) -> Built:
        from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

        cfg, data = self.cfg, self.cfg.data
        if data.nsp:
            from transformers import AutoModelForPreTraining

            model, info = load_model(cfg.model, AutoModelForPreTraining, output_loading_info=True)
            if not hasattr(model, "cls") or not hasattr(model.cls, "seq_relationship"):
                raise BertpruneError(
                    f"data.nsp=true needs a BERT-type model with a next-sentence head; {type(model).__name__} has "
                    f"none. Use data.nsp=false (masked LM only) for this model."
                )
        else:
            model, info = load_model(cfg.model, AutoModelForMaskedLM, output_loading_info=True)
        use_masked_only_forward(model)
        self.missing_head = sorted(info["missing_keys"])
        self.base_prefix = model.base_model_prefix + "."
        tokenizer = load_tokenizer(cfg.model)
        sequence_length(model, data.block_size, data.block_size, key="data.block_size")  # refuses too long blocks
        if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None or tokenizer.mask_token_id is None:
            raise BertpruneError("the tokenizer lacks [CLS]/[SEP]/[MASK] tokens needed for masked-LM training")

        train_set, eval_set = text_blocks(cfg, tokenizer, accelerator, self._examples)
        collate = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=data.mlm_probability)
        return Built(model, tokenizer, train_set, {"dev": eval_set}, collate)

    def _examples(self, docs_ids, tokenizer, seed):
        from datasets import Dataset

        data = self.cfg.data
        if data.nsp:
            return Dataset.from_dict(nsp_pairs(docs_ids, data.block_size, tokenizer.cls_token_id, tokenizer.sep_token_id, seed))
        return Dataset.from_dict({"input_ids": pack_blocks(docs_ids, data.block_size, tokenizer.cls_token_id, tokenizer.sep_token_id)})

    # --- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model, loaders, accelerator):
        results = {}
        for name, loader in loaders.items():
            loss_sum = masked = correct = nsp_correct = nsp_total = 0.0
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(EVAL_SEED)  # the same masked positions at every evaluation
                for batch in loader:
                    out = model(**batch)
                    logits = out.logits if hasattr(out, "logits") else out.prediction_logits
                    labels = batch["labels"]
                    sel = labels != -100
                    if logits.dim() == 3:  # a model scoring every position
                        logits = logits[sel]
                    gold = labels[sel]
                    token_loss = torch.nn.functional.cross_entropy(logits.float(), gold, reduction="sum")
                    stats = torch.stack([token_loss, sel.sum().float(), (logits.argmax(-1) == gold).sum().float()])
                    if "next_sentence_label" in batch:
                        nsp_pred = out.seq_relationship_logits.argmax(-1)
                        stats = torch.cat([stats, torch.stack([(nsp_pred == batch["next_sentence_label"]).sum().float(),
                                                               torch.tensor(float(nsp_pred.numel()), device=nsp_pred.device)])])
                    stats = accelerator.reduce(stats, reduction="sum")
                    loss_sum, masked, correct = loss_sum + stats[0].item(), masked + stats[1].item(), correct + stats[2].item()
                    if stats.numel() > 3:
                        nsp_correct, nsp_total = nsp_correct + stats[3].item(), nsp_total + stats[4].item()
            metrics = {"mlm_loss": loss_sum / max(masked, 1), "mlm_accuracy": correct / max(masked, 1), "masked_tokens": masked}
            metrics["mlm_perplexity"] = float(np.exp(min(metrics["mlm_loss"], 50.0)))
            if nsp_total:
                metrics["nsp_accuracy"] = nsp_correct / nsp_total
            results[name] = metrics
        return results

    # --- the untrained head -------------------------------------------------------------------
    def head_parameters(self, model) -> dict[str, torch.nn.Parameter]:
        """Parameters outside the base model (tied decoder weights appear under the embeddings)."""
        prefix = model.base_model_prefix + "."
        return {n: p for n, p in model.named_parameters() if not n.startswith(prefix)}

    def before_training(self, built, eval_loaders, accelerator, log, quiet):
        from torch.utils.data import DataLoader

        head_cfg = self.cfg.head
        model = built.model
        head = self.head_parameters(model)
        missing = [n for n in self.missing_head if not n.startswith(self.base_prefix)]
        if not head_cfg.force and (not missing or head_cfg.steps == 0):
            return {"head_training": {"done": False, "missing_head_weights": self.missing_head}}
        model.train()
        before = self._eval_main(model, eval_loaders, accelerator)
        frozen = {n: p.requires_grad for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            p.requires_grad_(n in head)
        optimizer = torch.optim.AdamW(list(head.values()), lr=head_cfg.lr, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / head_cfg.steps)
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 7)
        loader = DataLoader(built.train_set, batch_size=self.cfg.train.batch_size, shuffle=True,
                            collate_fn=built.collate, generator=gen)
        device = accelerator.device
        model.to(device)
        start, step, losses = time.time(), 0, []
        bar = tqdm(total=head_cfg.steps, desc="head (encoder frozen)", disable=quiet or not accelerator.is_main_process)
        while step < head_cfg.steps:
            for batch in loader:
                batch = {k: v.to(device) for k, v in batch.items()}
                loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                step += 1
                losses.append(loss.item())
                bar.update(1)
                if step % self.cfg.train.log_every == 0 or step == head_cfg.steps:
                    log.write({"phase": "head", "head_step": step, "loss": float(np.mean(losses))})
                    bar.set_postfix(loss=f"{np.mean(losses):.3f}")
                    losses.clear()
                if step >= head_cfg.steps:
                    break
        bar.close()
        for n, p in model.named_parameters():
            p.requires_grad_(frozen[n])
        after = self._eval_main(model, eval_loaders, accelerator)
        info = {"done": True, "steps": head_cfg.steps, "lr": head_cfg.lr, "seconds": round(time.time() - start, 1),
                "trained": sorted(head), "missing_head_weights": self.missing_head, "before": before, "after": after}
        log.write({"phase": "head", "head_step": step, "eval_before": before, "eval_after": after})
        if accelerator.is_main_process and not quiet:
            tqdm.write(f"head trained for {step} steps: held-out MLM accuracy {before['mlm_accuracy']:.4f} -> {after['mlm_accuracy']:.4f}")
        return {"head_training": info}

    def _eval_main(self, model, loaders, accelerator):
        was = model.training
        model.eval()
        try:
            return self.evaluate(model, loaders, accelerator)["dev"]
        finally:
            model.train(was)

    # --- checkpoints --------------------------------------------------------------------------
    def touch_up_checkpoint(self, folder: Path) -> None:
        """Carry the pooler over from the starting checkpoint. BertForMaskedLM has no pooler, so its
        checkpoint lacks one; a classifier fine-tuned from it would start from a random pooler where a
        classifier fine-tuned from the original checkpoint gets the pre-trained one."""
        source = Path(resolve_model_path(self.cfg.model.name))
        target = folder / "model.safetensors"
        if not source.is_dir() or not target.is_file():
            return
        saved = load_file(str(target))
        pooler = self.base_prefix + "pooler."
        if any(k.startswith(pooler) for k in saved):
            return
        extra = {}
        for f in sorted(source.glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as fh:
                for key in fh.keys():
                    if key.startswith("pooler.") or key.startswith(pooler):
                        extra[key if key.startswith(pooler) else self.base_prefix + key] = fh.get_tensor(key)
        if extra:
            save_file({**saved, **extra}, str(target), metadata={"format": "pt"})
