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
* :func:`segment_pairs` (distillation): two short spans in one sequence, ``[CLS] A [SEP] B [SEP]`` with
  segment ids, the shape a GLUE pair task feeds the encoder; :func:`mix_pairs` puts a share of them among
  the packed blocks.

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


def segment_pairs(docs_ids: list[list[int]], block_size: int, cls_id: int, sep_id: int, seed: int,
                  min_tokens: int = 4) -> dict[str, list]:
    """Pairs of text spans encoded together, ``[CLS] A [SEP] B [SEP]`` with ``token_type_ids`` 0 for A and 1 for B.

    The documents are cut, in order, into spans of a seeded random length between ``min_tokens`` and
    ``(block_size − 3) // 2`` tokens (a document's last span may be shorter); spans 2k and 2k+1 make a pair
    (B follows A: in the same document, or the next one's start), and half the time B is swapped for a random
    other span. Distilling on packed single blocks alone never shows the encoder segment B, its segment
    embedding, or a short two-part input, which is what every pair task fine-tunes on."""
    rng = random.Random(seed)
    half = (block_size - 3) // 2
    if half < 1:
        raise BertpruneError(f"data.block_size={block_size} leaves no room for two segments; use at least 5")
    low = max(1, min(min_tokens, half))
    spans: list[list[int]] = []
    for ids in docs_ids:
        start = 0
        while start < len(ids):
            n = rng.randint(low, half)
            spans.append(ids[start : start + n])
            start += n
    if len(spans) < 3:
        raise BertpruneError(f"too little text for segment pairs: {len(spans)} spans (need 3 or more)")
    out: dict[str, list] = {"input_ids": [], "token_type_ids": []}
    for i in range(0, len(spans) - 1, 2):
        a, b = spans[i], spans[i + 1]
        if rng.random() < 0.5:  # an unrelated B, as a pair task's low-similarity or non-paraphrase pairs
            j = rng.randrange(len(spans) - 2)
            b = spans[j if j < i else j + 2]  # any span but A and its own continuation
        out["input_ids"].append([cls_id] + a + [sep_id] + b + [sep_id])
        out["token_type_ids"].append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    return out


def mix_pairs(docs_ids: list[list[int]], block_size: int, cls_id: int, sep_id: int, seed: int,
              pair_fraction: float) -> dict[str, list]:
    """Packed blocks (:func:`pack_blocks`) with a ``pair_fraction`` share of them replaced by
    :func:`segment_pairs` (seeded choice of both), as many examples as there are blocks, in a seeded order;
    every example carries ``token_type_ids`` (zeros for a block). ``pair_fraction`` 0 gives the blocks alone,
    1 the pairs alone (where the text makes fewer pairs than blocks, or too little for pairs at all, blocks fill the rest)."""
    if not 0.0 <= pair_fraction <= 1.0:
        raise BertpruneError(f"data.pair_fraction must be within [0, 1], got {pair_fraction}")
    rng = random.Random(seed)
    blocks = pack_blocks(docs_ids, block_size, cls_id, sep_id)
    n_pairs = round(pair_fraction * len(blocks))
    pairs: dict[str, list] = {"input_ids": [], "token_type_ids": []}
    if n_pairs and sum(len(d) for d in docs_ids) >= 3 * max(1, (block_size - 3) // 2):  # surely 3+ spans
        pairs = segment_pairs(docs_ids, block_size, cls_id, sep_id, seed + 1)
    n_pairs = min(n_pairs, len(pairs["input_ids"]))
    chosen_blocks = sorted(rng.sample(range(len(blocks)), len(blocks) - n_pairs))
    chosen_pairs = sorted(rng.sample(range(len(pairs["input_ids"])), n_pairs))
    examples = [(blocks[i], [0] * len(blocks[i])) for i in chosen_blocks]
    examples += [(pairs["input_ids"][i], pairs["token_type_ids"][i]) for i in chosen_pairs]
    rng.shuffle(examples)
    return {"input_ids": [e[0] for e in examples], "token_type_ids": [e[1] for e in examples]}
