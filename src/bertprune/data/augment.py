"""Data augmentation for task distillation: perturbed copies of the training texts, labelled by the teacher.

A student learns from the teacher's outputs, so it can learn from any input the teacher can label, not
only the few thousand gold examples of a small task. TinyBERT (Jiao et al. 2020) distils on ~20x
augmented task data and loses most without it on the smallest tasks (CoLA, RTE, MRPC); SparseBERT's 95%
MRPC model trains on augmented data too. TinyBERT replaces words by masked-LM predictions and GloVe
neighbours; all-MiniLM-L6-v2 has no trained MLM head and this project downloads nothing, so the edits
here are word-level and need no model:

* delete a word;
* replace it by a word drawn uniformly from the training texts' own words (their vocabulary);
* swap it with its right neighbour.

Each word meets each edit with its own probability. An edited text is no longer an example of its gold
label (a CoLA sentence with two words swapped is usually unacceptable), so the copies are for the KD
loss only: ``distill.augment`` needs ``distill.task_weight = 0`` (hardness 1). Everything is seeded; the
same seed gives the same copies, so a resumed run trains on the same data.
"""

from __future__ import annotations

import random

from datasets import Dataset, concatenate_datasets


def perturb(words: list[str], rng: random.Random, vocab: list[str], delete: float, replace: float,
            swap: float) -> list[str]:
    """One edited copy of ``words``. In order, for each word: delete with probability ``delete``, else
    replace by ``rng.choice(vocab)`` with probability ``replace``; then, left to right over the result, each
    word swaps with its right neighbour with probability ``swap`` (a swapped pair moves no further). Never empty: when every word was deleted, one of the
    originals is kept."""
    out: list[str] = []
    for w in words:
        if rng.random() < delete:
            continue
        out.append(rng.choice(vocab) if rng.random() < replace else w)
    if not out and words:
        out = [rng.choice(words)]
    i = 0
    while i < len(out) - 1:
        if rng.random() < swap:
            out[i], out[i + 1] = out[i + 1], out[i]
            i += 2  # a swapped word does not move on again
        else:
            i += 1
    return out


def augment(ds: Dataset, copies: int, seed: int, delete: float, replace: float, swap: float) -> Dataset:
    """``ds`` (columns ``text_a``, optional ``text_b``, ``label``) followed by ``copies`` edited copies of
    every row, copy k of all rows before copy k+1. Both texts of a pair are edited, independently. The
    copies keep the row's label only as a placeholder: the KD loss ignores it (see the module docstring)."""
    if copies <= 0:
        return ds
    columns = [c for c in ("text_a", "text_b") if c in ds.column_names]
    vocab = sorted({w for c in columns for t in ds[c] if t for w in t.split()})
    rng = random.Random(seed)
    extra = []
    for _ in range(copies):
        rows = {c: [] for c in ds.column_names}
        for row in ds:
            for c in ds.column_names:
                v = row[c]
                if c in columns and v:
                    v = " ".join(perturb(v.split(), rng, vocab, delete, replace, swap))
                rows[c].append(v)
        extra.append(Dataset.from_dict(rows, features=ds.features))
    return concatenate_datasets([ds, *extra])
