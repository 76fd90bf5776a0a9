"""Sentence embeddings of an encoder: the job all-MiniLM-L6-v2 was trained for.

* :func:`encode`: the [CLS] state and the mean of the real tokens' last hidden states, per sentence;
* :func:`stsb_zeroshot`: zero-shot STS-B, the Spearman (and Pearson) correlation × 1 of the cosine of
  the two sentences' mean-pooled embeddings with the gold similarity, with no fine-tuning at all;
* :func:`stsb_pair_probe`: a ridge probe on the frozen features of STS-B pairs encoded together, which
  is what a pair task fine-tunes on (zero-shot STS-B encodes each sentence alone);
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
    feats = encode_features(model, tokenizer, sentences, None, batch_size, max_length)
    return feats["cls"], feats["mean"]


@torch.no_grad()
def encode_features(model, tokenizer, texts_a: list[str], texts_b: list[str] | None = None, batch_size: int = 64,
                    max_length: int = 128) -> dict[str, torch.Tensor]:
    """Frozen features of ``texts_a`` (with ``texts_b``: of each pair encoded together, ``[CLS] a [SEP] b [SEP]``,
    as a pair task feeds the encoder): ``cls`` and ``mean`` [n, width], and ``pooler`` [n, width] when the
    model has a pooler."""
    from .models import forward_inputs

    was = model.training
    model.eval()
    device = next(model.parameters()).device
    feats: dict[str, list[torch.Tensor]] = {"cls": [], "mean": [], "pooler": []}
    try:
        for i in range(0, len(texts_a), batch_size):
            second = texts_b[i:i + batch_size] if texts_b is not None else None
            batch = tokenizer(texts_a[i:i + batch_size], second, padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            inputs = forward_inputs(model, batch)
            out = model(**inputs)
            if getattr(out, "last_hidden_state", None) is None:  # a task model: ask for its hidden states
                out = model(**inputs, output_hidden_states=True)
            c, m = sentence_embeddings(last_hidden_state(out), batch["attention_mask"])
            feats["cls"].append(c.float().cpu())
            feats["mean"].append(m.float().cpu())
            if getattr(out, "pooler_output", None) is not None:
                feats["pooler"].append(out.pooler_output.float().cpu())
    finally:
        model.train(was)
    return {k: torch.cat(v) for k, v in feats.items() if v}


def pair_probe(train: dict[str, torch.Tensor], train_gold, dev: dict[str, torch.Tensor], dev_gold) -> dict[str, float]:
    """Per feature kind (the keys of :func:`encode_features`): a ridge regression fitted on the training
    features (its strength chosen by leave-one-out cross-validation on them, scikit-learn's ``RidgeCV``),
    scored by the Spearman correlation of its dev predictions with the dev gold scores."""
    import numpy as np
    from sklearn.linear_model import RidgeCV

    out = {}
    for kind in train:
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(train[kind].numpy(), np.asarray(train_gold, dtype=float))
        out[kind] = float(spearmanr(ridge.predict(dev[kind].numpy()), dev_gold)[0])
    return out


def stsb_pair_probe(model, tokenizer, glue_dir: str | Path, batch_size: int = 64, max_length: int = 128) -> dict[str, float]:
    """How much of STS-B a *frozen* encoder's pair features hold: each STS-B pair encoded together, as
    fine-tuning sees it, and :func:`pair_probe` on [CLS], the pooler and the mean-pooled states (train →
    dev; Spearman × 1). Zero-shot STS-B encodes each sentence alone, so it cannot see a model that keeps
    single-sentence embeddings but loses what the encoder computes across the two segments of a pair."""
    from .data.glue import get_task, read_tsv

    split = {s: read_tsv(Path(glue_dir) / "STS-B" / f"{s}.tsv", get_task("stsb")) for s in ("train", "dev")}
    feats = {s: encode_features(model, tokenizer, list(d["text_a"]), list(d["text_b"]), batch_size, max_length)
             for s, d in split.items()}
    scores = pair_probe(feats["train"], list(split["train"]["label"]), feats["dev"], list(split["dev"]["label"]))
    return {**{f"{k}_spearman": v for k, v in scores.items()}, "train_pairs": len(split["train"]["label"]),
            "dev_pairs": len(split["dev"]["label"])}


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
