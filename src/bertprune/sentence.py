"""Sentence embeddings of an encoder: the job all-MiniLM-L6-v2 was trained for.

* :func:`encode`: the [CLS] state and the mean of the real tokens' last hidden states, per sentence;
* :func:`stsb_zeroshot`: zero-shot STS-B, the Spearman (and Pearson) correlation × 1 of the cosine of
  the two sentences' mean-pooled embeddings with the gold similarity, with no fine-tuning at all;
* :func:`mean_pairwise_cosine`: how alike a set of embeddings is (1.0 = every sentence gets the same
  vector: the [CLS] collapse of a masked-LM-only pruning stage).
"""

from __future__ import annotations

from pathlib import Path

import torch
from scipy.stats import pearsonr, spearmanr

from .methods.distill import pairwise_cosines, sentence_embeddings

STSB_ZEROSHOT = "stsb_zeroshot"


def mean_pairwise_cosine(x: torch.Tensor) -> float:
    """x: [n, width] → the mean cosine over the n·(n−1) ordered pairs of distinct rows."""
    if len(x) < 2:
        raise ValueError("the mean pairwise cosine needs at least two embeddings")
    return float(pairwise_cosines(x).mean())


def last_hidden_state(outputs) -> torch.Tensor:
    """[batch, T, width] from a bare encoder's or a task model's outputs (run with output_hidden_states)."""
    if getattr(outputs, "last_hidden_state", None) is not None:
        return outputs.last_hidden_state
    return outputs.hidden_states[-1]


@torch.no_grad()
def encode(model, tokenizer, sentences: list[str], batch_size: int = 64, max_length: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """([CLS] states [n, width], mean-pooled states [n, width]) of ``sentences``, in order."""
    from .models import forward_inputs

    was = model.training
    model.eval()
    device = next(model.parameters()).device
    cls, mean = [], []
    try:
        for i in range(0, len(sentences), batch_size):
            batch = tokenizer(sentences[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            inputs = forward_inputs(model, batch)
            out = model(**inputs)
            if getattr(out, "last_hidden_state", None) is None:  # a task model: ask for its hidden states
                out = model(**inputs, output_hidden_states=True)
            c, m = sentence_embeddings(last_hidden_state(out), batch["attention_mask"])
            cls.append(c.cpu())
            mean.append(m.cpu())
    finally:
        model.train(was)
    return torch.cat(cls), torch.cat(mean)


def zeroshot_scores(a: torch.Tensor, b: torch.Tensor, gold) -> dict[str, float]:
    """Correlations of cos(a_i, b_i) with the gold similarities (a, b: [n, width] sentence embeddings)."""
    cos = torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).numpy()
    return {"spearman": float(spearmanr(cos, gold)[0]), "pearson": float(pearsonr(cos, gold)[0])}


def stsb_zeroshot(model, tokenizer, glue_dir: str | Path | None, batch_size: int = 64, max_length: int = 128) -> dict[str, float]:
    """Zero-shot STS-B dev: cosine of mean-pooled embeddings vs gold scores (Spearman, Pearson), and the
    mean pairwise cosine of the first sentences' [CLS] states (the collapse check)."""
    from .data.glue import get_task, read_tsv

    if glue_dir:  # only the dev set: the training set plays no part in a zero-shot score
        dev = read_tsv(Path(glue_dir) / "STS-B" / "dev.tsv", get_task("stsb"))
    else:
        from .data.glue import load_glue

        dev = load_glue("stsb", None).eval["dev"]
    cls_a, mean_a = encode(model, tokenizer, list(dev["text_a"]), batch_size, max_length)
    _, mean_b = encode(model, tokenizer, list(dev["text_b"]), batch_size, max_length)
    return {**zeroshot_scores(mean_a, mean_b, list(dev["label"])), "cls_pairwise_cosine": mean_pairwise_cosine(cls_a),
            "pairs": len(dev["label"])}
