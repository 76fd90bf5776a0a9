"""Word embeddings of two models, their t-SNE maps and how much their neighbourhoods agree.

``kind="contextual"`` (default) embeds each word as the encoder's output for ``[CLS] word [SEP]``
(mean over its word pieces), so the map reflects the (pruned) encoder; ``kind="input"`` uses the rows
of the input embedding matrix, which bertprune leaves unpruned by default (they still move in
training). The number that goes with the picture: for every word, the share of its k nearest
neighbours (cosine) in model A that are also among its k nearest in model B, averaged over words —
1.0 for identical models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .errors import BertpruneError


def model_folder(path: str) -> str:
    """A run folder's final/ checkpoint, or the path itself (or the default model's folder)."""
    from .models import resolve_model_path

    p = Path(path)
    if (p / "final" / "config.json").is_file():
        return str(p / "final")
    return resolve_model_path(path)


def word_list(tokenizer, n: int = 500, include: Sequence[str] = ("intelligent",), start_id: int | None = None) -> list[str]:
    """Up to ``n`` whole, alphabetic words of the vocabulary, with ``include`` guaranteed. They start
    at ``start_id``: by default 1996 for large vocabularies, where BERT's uncased vocabulary begins
    its words in frequency order (before: [unused] slots and single characters), else 0."""
    vocab = tokenizer.get_vocab()
    if start_id is None:
        start_id = 1996 if len(vocab) > 10_000 else 0
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    words = [w for w, i in by_id if i >= start_id and w.isalpha() and w.isascii() and len(w) >= 3][:n]
    missing = [w for w in include if w not in words]
    unknown = [w for w in missing if w not in vocab]
    if unknown:
        raise BertpruneError(f"{unknown[0]!r} is not a word of this tokenizer's vocabulary; choose another --word")
    return (missing + words)[:max(n, len(missing))]


@torch.no_grad()
def embed_words(folder: str, words: Sequence[str], kind: str = "contextual", batch: int = 128) -> np.ndarray:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, use_safetensors=True).eval()
    if kind == "input":
        ids = [tok.convert_tokens_to_ids(w) for w in words]
        return model.get_input_embeddings().weight[ids].float().numpy()
    if kind != "contextual":
        raise BertpruneError(f"embedding kind must be 'contextual' or 'input', got {kind!r}")
    out = []
    for i in range(0, len(words), batch):
        enc = tok(list(words[i : i + batch]), return_tensors="pt", padding=True)
        hidden = model(**enc).last_hidden_state  # [batch, tokens, hidden]
        special = torch.tensor([tok.get_special_tokens_mask(x, already_has_special_tokens=True) for x in enc["input_ids"].tolist()])
        keep = (enc["attention_mask"].bool() & ~special.bool()).unsqueeze(-1).float()
        out.append(((hidden * keep).sum(1) / keep.sum(1).clamp(min=1)).numpy())
    return np.concatenate(out)


def nearest(emb: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k nearest rows by cosine similarity, itself excluded: [n, k]."""
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    na, nb = nearest(a, k), nearest(b, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)]))


def tsne_2d(emb: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(2.0, (len(emb) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, metric="cosine").fit_transform(emb)


def tsne_compare(model_a: str, model_b: str, stem: str | Path, focus: str = "intelligent", n_words: int = 500, k: int = 10,
                 kind: str = "contextual", labels: Sequence[str] = ("before", "after")) -> dict:
    """Embed the same words with both models, draw both t-SNE maps, and measure the neighbour overlap."""
    from transformers import AutoTokenizer

    from .plots import tsne_panels

    fa, fb = model_folder(model_a), model_folder(model_b)
    words = word_list(AutoTokenizer.from_pretrained(fa), n_words, (focus,))
    ea, eb = embed_words(fa, words, kind), embed_words(fb, words, kind)
    overlap = neighbour_overlap(ea, eb, k)
    fi = words.index(focus)
    neighbours = {labels[0]: [words[j] for j in nearest(ea, k)[fi]], labels[1]: [words[j] for j in nearest(eb, k)[fi]]}
    paths = tsne_panels({labels[0]: tsne_2d(ea), labels[1]: tsne_2d(eb)}, words, focus, neighbours, stem, overlap, k)
    return {"words": len(words), "kind": kind, "k": k, "focus": focus, "overlap": overlap, "neighbours": neighbours,
            "focus_overlap": len(set(neighbours[labels[0]]) & set(neighbours[labels[1]])) / k, "figures": [str(p) for p in paths]}
