"""A transfer set for task distillation: natural sentences from plain text, labelled by the teacher only.

Hinton et al. (2015) distil on a *transfer set*, any inputs the teacher can label. On a small task the
student can fit the teacher on the few thousand training examples and still disagree with it on new
ones (bertprune's 90% RTE model matches its teacher's outputs on the training pairs, KD loss 0.04, and
agrees with it on 78% of the dev pairs where the dense twin agrees on 90%). More inputs labelled by the
teacher constrain the student where the task's data do not. :mod:`bertprune.data.augment` makes them by
editing the task's own texts, which on CoLA makes grammatical sentences ungrammatical; a transfer set
takes sentences people wrote, from any plain text (``../shared/data/text``: news, fiction, reviews...).

* **Single-sentence tasks** (CoLA, SST-2): ``n`` sentences drawn without replacement.
* **Pair tasks** (MRPC, STS-B, RTE...): ``n`` pairs, each of a drawn sentence A and, in equal shares, one of
  three partners B: the sentence after A in its document (related, not a paraphrase), a contiguous span of
  A's own words (from half of them to all but one: entailed-like, a near paraphrase), or a sentence drawn
  from anywhere (unrelated). The teacher's outputs on such pairs span its classes, where random pairs alone
  would all look unrelated to it.

Sentences are the lines of the files (one paragraph or document per line) cut after ``.``, ``!`` or ``?``
when a capital letter follows, kept when they have :data:`MIN_WORDS` to :data:`MAX_WORDS` words; lines
that start with ``=`` (wikitext's headings) are left out. The rows join the training set after the task's
own (and after ``distill.augment``'s copies) with a placeholder label that only the KD loss sees, so the
option needs ``distill.task_weight = 0`` (hardness 1). Everything is seeded: a resumed run trains on the
same rows.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from datasets import Dataset, concatenate_datasets

from ..errors import BertpruneError
from .text import read_documents

MIN_WORDS, MAX_WORDS = 4, 40
#: a sentence ends at . ! or ? (closing quotes or brackets may follow) before whitespace and a capital letter
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z])")


def split_sentences(line: str) -> list[str]:
    """The sentences of one line, with :data:`MIN_WORDS` to :data:`MAX_WORDS` words each."""
    if line.lstrip().startswith("="):
        return []
    return [s.strip() for s in _SENTENCE_END.split(line) if MIN_WORDS <= len(s.split()) <= MAX_WORDS]


def read_sentences(path: str) -> list[list[str]]:
    """The sentences of a text file, or of the ``*.txt`` files of a folder, one list per line (document)."""
    p = Path(path)
    if not p.exists():
        raise BertpruneError(f"distill.transfer.text not found: {path} (a .txt file or a folder of them, one paragraph "
                             f"or document per line, e.g. ../shared/data/text)")
    docs = read_documents(text_dir=str(p)) if p.is_dir() else read_documents(files=[str(p)])
    return [s for s in (split_sentences(d) for d in docs) if s]


def transfer_rows(docs: list[list[str]], n: int, pair: bool, seed: int, label) -> dict[str, list]:
    """``n`` rows (columns ``text_a``, ``text_b`` when ``pair``, ``label`` = the placeholder) from the
    sentences ``docs`` (one list per document); see the module docstring for how pairs are made."""
    where = [(d, i) for d, sents in enumerate(docs) for i in range(len(sents))]  # every sentence, in order
    if n > len(where):
        raise BertpruneError(f"distill.transfer.examples={n}, but the text holds only {len(where)} sentences of "
                             f"{MIN_WORDS}-{MAX_WORDS} words; ask for fewer or give more text")
    rng = random.Random(seed)
    picked = rng.sample(range(len(where)), n)
    rows: dict[str, list] = {"text_a": [], "label": [label] * n}
    if pair:
        rows["text_b"] = []
    for k in picked:
        d, i = where[k]
        a = docs[d][i]
        rows["text_a"].append(a)
        if not pair:
            continue
        kind = rng.randrange(3)
        if kind == 0 and i + 1 < len(docs[d]):  # the next sentence of the same document
            b = docs[d][i + 1]
        elif kind == 1:  # a contiguous span of A's words: at least half of them, never all
            words = a.split()
            length = rng.randint(max(1, len(words) // 2), len(words) - 1)
            start = rng.randint(0, len(words) - length)
            b = " ".join(words[start:start + length])
        else:  # a sentence from anywhere (also the next-sentence kind at a document's last sentence)
            dd, ii = where[rng.randrange(len(where))]
            b = docs[dd][ii]
        rows["text_b"].append(b)
    return rows


def with_transfer_set(train: Dataset, path: str, n: int, seed: int) -> Dataset:
    """``train`` followed by ``n`` transfer rows from the text at ``path`` (pairs when ``train`` has ``text_b``)."""
    if n <= 0:
        return train
    pair = "text_b" in train.column_names and any(t is not None for t in train["text_b"])
    label = 0.0 if str(getattr(train.features["label"], "dtype", "")).startswith("float") else 0  # placeholder, label's type
    rows = transfer_rows(read_sentences(path), n, pair, seed, label)
    if "text_b" in train.column_names and not pair:
        rows["text_b"] = [None] * n
    return concatenate_datasets([train, Dataset.from_dict({c: rows[c] for c in train.column_names}, features=train.features)])
