"""Plain text for the masked-LM (pre-training) stage.

Documents come from plain-text files, one paragraph or document per line (as in
``../shared/data/text``), or from a Hugging Face hub dataset (e.g. ``Salesforce/wikitext``,
config ``wikitext-103-raw-v1``). A seeded share of the *documents* is held out for validation, so
no held-out text leaks into training blocks.

* :func:`pack_blocks` (masked LM): the token ids of all documents, joined by ``[SEP]``, cut into
  blocks of ``block_size`` tokens that start with ``[CLS]`` and end with ``[SEP]``.
* :func:`nsp_pairs` (masked LM + next-sentence prediction, BERT's pre-training): each document's
  tokens are cut into windows of ``block_size − 3`` tokens; a window splits at a random point into
  segments A and B; half the time B is replaced by a random span of another document
  (``next_sentence_label`` 1 = random, 0 = the true continuation, as ``BertForPreTraining`` expects).

Masking (15% of tokens; 80% ``[MASK]``, 10% random, 10% kept) is dynamic, drawn per batch by
transformers' ``DataCollatorForLanguageModeling``.
"""

from __future__ import annotations

import glob
import random
from pathlib import Path
from typing import Sequence

from ..errors import BertpruneError


def read_documents(text_dir: str | None = None, files: Sequence[str] = (), hub_dataset: str | None = None,
                   hub_config: str | None = None, hub_split: str = "train", text_column: str = "text") -> list[str]:
    """Non-empty lines of the text files (``text_dir/*.txt`` and ``files``), or of a hub dataset's column."""
    if hub_dataset:
        import datasets

        try:
            ds = datasets.load_dataset(hub_dataset, hub_config, split=hub_split)
        except Exception as e:
            raise BertpruneError(
                f"could not load {hub_dataset} ({hub_config}, {hub_split}) from the Hugging Face hub: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. Offline? Use --text-dir with "
                f"local .txt files (one paragraph or document per line)."
            ) from e
        if text_column not in ds.column_names:
            raise BertpruneError(f"{hub_dataset} has no column {text_column!r} (columns: {ds.column_names}); set data.text_column")
        return [t.strip() for t in ds[text_column] if t and t.strip()]
    paths = []
    if text_dir:
        if not Path(text_dir).is_dir():
            raise BertpruneError(f"text folder not found: {text_dir}. Pass --text-dir with .txt files (e.g. ../shared/data/text)")
        paths += sorted(f for f in glob.glob(str(Path(text_dir) / "*.txt")) if Path(f).is_file())  # not a folder a.txt/
        if not paths:
            raise BertpruneError(f"no .txt files in {text_dir}; the masked-LM stage reads *.txt, one document per line")
    for f in files:
        if not Path(f).is_file():
            raise BertpruneError(f"text file not found: {f}")
        paths.append(f)
    if not paths:
        raise BertpruneError("no text given: pass --text-dir (or $BERTPRUNE_TEXT_DIR), data.text_files, or --hub-dataset")
    docs = []
    for p in paths:
        try:
            lines = Path(p).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise BertpruneError(f"{p} is not UTF-8 text ({e}); convert it or leave it out") from e
        except OSError as e:  # a folder named in data.text_files, no permission...
            raise BertpruneError(f"cannot read text file {p}: {e.strerror or e}") from None
        docs += [line.strip() for line in lines if line.strip()]
    if not docs:
        raise BertpruneError(f"the text files hold no non-empty lines: {paths}")
    return docs


def split_documents(docs: list[str], validation_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of documents into (train, validation); order within each part is kept."""
    n_val = max(1, round(validation_fraction * len(docs))) if validation_fraction > 0 else 0
    if n_val >= len(docs):
        raise BertpruneError(f"{len(docs)} documents are too few to hold out {validation_fraction:.0%} for validation")
    held = set(random.Random(seed).sample(range(len(docs)), n_val))
    return [d for i, d in enumerate(docs) if i not in held], [d for i, d in enumerate(docs) if i in held]


def tokenize_documents(docs: list[str], tokenizer, chunk: int = 2000) -> list[list[int]]:
    ids: list[list[int]] = []
    for i in range(0, len(docs), chunk):
        ids += tokenizer(docs[i : i + chunk], add_special_tokens=False, truncation=False)["input_ids"]
    return [t for t in ids if t]


def pack_blocks(docs_ids: list[list[int]], block_size: int, cls_id: int, sep_id: int) -> list[list[int]]:
    """``[CLS] t₁ … t_{block−2} [SEP]`` blocks over the concatenation of documents (joined by ``[SEP]``).
    The final partial block is kept if it holds at least a quarter of a block."""
    body = block_size - 2
    stream: list[int] = []
    for ids in docs_ids:
        stream += ids + [sep_id]
    blocks = [[cls_id] + stream[i : i + body] + [sep_id] for i in range(0, len(stream), body)]
    if blocks and len(blocks[-1]) - 2 < body // 4:
        blocks.pop()
    return blocks


def nsp_pairs(docs_ids: list[list[int]], block_size: int, cls_id: int, sep_id: int, seed: int) -> dict[str, list]:
    """Sentence pairs for next-sentence prediction: ``[CLS] A [SEP] B [SEP]`` with segment ids."""
    rng = random.Random(seed)
    room = block_size - 3
    out = {"input_ids": [], "token_type_ids": [], "next_sentence_label": []}
    usable = [i for i, d in enumerate(docs_ids) if len(d) >= 2]
    if len(usable) < 2:
        raise BertpruneError("next-sentence prediction needs at least two documents of two or more tokens")
    for doc_index in usable:
        ids = docs_ids[doc_index]
        for start in range(0, len(ids) - 1, room):
            window = ids[start : start + room]
            if len(window) < 2:
                continue
            cut = rng.randint(1, len(window) - 1)
            a, b = window[:cut], window[cut:]
            label = 0
            if rng.random() < 0.5:
                other = rng.choice(usable)
                while other == doc_index:
                    other = rng.choice(usable)
                o = docs_ids[other]
                begin = rng.randint(0, max(0, len(o) - len(b)))
                b = o[begin : begin + len(b)]
                label = 1
            out["input_ids"].append([cls_id] + a + [sep_id] + b + [sep_id])
            out["token_type_ids"].append([0] * (len(a) + 2) + [1] * (len(b) + 1))
            out["next_sentence_label"].append(label)
    return out
