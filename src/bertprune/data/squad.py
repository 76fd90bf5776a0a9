"""SQuAD v1.1: the official JSON format (local file or the Hugging Face hub), and features.

Features follow the usual sliding-window recipe: each (question, context) pair is tokenised with the
context cut into windows of ``max_length`` tokens that overlap by ``stride`` tokens
(``return_overflowing_tokens``), keeping the character offsets of every context token. In training,
an answer that does not lie wholly inside a window is labelled with the [CLS] position (index 0).
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset

from ..errors import BertpruneError


def read_squad(path: str | Path) -> Dataset:
    """Examples of an official SQuAD v1.1 JSON file: id, title, context, question, answers."""
    path = Path(path)
    if not path.is_file():
        raise BertpruneError(
            f"SQuAD file not found: {path}. Point --squad-dir (or $BERTPRUNE_SQUAD_DIR) at a folder with the official "
            f"JSON files (data.squad_train_file / data.squad_dev_file name them), or leave it unset to use the hub."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BertpruneError(f"{path} is not JSON: {e}") from e
    rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    try:
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    texts = [a["text"] for a in qa["answers"]]
                    starts = [int(a["answer_start"]) for a in qa["answers"]]
                    for t, s in zip(texts, starts):
                        if context[s : s + len(t)] != t:
                            raise BertpruneError(
                                f"{path}: question {qa['id']}: answer {t!r} is not at character {s} of its context "
                                f"(found {context[s:s + len(t)]!r}); the file is corrupted or not SQuAD v1.1"
                            )
                    rows["id"].append(qa["id"])
                    rows["title"].append(article.get("title", ""))
                    rows["context"].append(context)
                    rows["question"].append(qa["question"])
                    rows["answers"].append({"text": texts, "answer_start": starts})
    except (KeyError, TypeError) as e:
        raise BertpruneError(
            f"{path} is not in the SQuAD v1.1 layout (data → paragraphs → context/qas → id/question/answers): "
            f"missing {e}"
        ) from e
    if not rows["id"]:
        raise BertpruneError(f"{path} holds no questions")
    return Dataset.from_dict(rows)


def load_squad_hub(split: str) -> Dataset:
    import datasets

    try:
        return datasets.load_dataset("rajpurkar/squad", split=split)
    except Exception as e:
        raise BertpruneError(
            f"could not load SQuAD ({split}) from the Hugging Face hub: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. Offline? Pass --squad-dir with the official JSON files."
        ) from e


def _encode(tokenizer, examples, max_length: int, stride: int):
    if not getattr(tokenizer, "is_fast", False):
        raise BertpruneError("SQuAD features need a fast tokenizer (offset mappings); the model folder needs tokenizer.json")
    pad_right = tokenizer.padding_side == "right"
    return tokenizer(
        [q.lstrip() for q in examples["question"]] if pad_right else examples["context"],
        examples["context"] if pad_right else [q.lstrip() for q in examples["question"]],
        truncation="only_second" if pad_right else "only_first",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def train_features(examples: Dataset, tokenizer, max_length: int = 384, stride: int = 128) -> Dataset:
    """Windows with ``start_positions`` / ``end_positions`` (0, the [CLS] token, when the answer is cut off)."""

    def prepare(batch):
        enc = _encode(tokenizer, batch, max_length, stride)
        sample_of = enc.pop("overflow_to_sample_mapping")
        offsets_all = enc.pop("offset_mapping")
        starts, ends = [], []
        for i, offsets in enumerate(offsets_all):
            answers = batch["answers"][sample_of[i]]
            a_start = answers["answer_start"][0]
            a_end = a_start + len(answers["text"][0])
            seq = enc.sequence_ids(i)
            ctx = [k for k, s in enumerate(seq) if s == 1]
            first, last = ctx[0], ctx[-1]
            if offsets[first][0] > a_start or offsets[last][1] < a_end:  # not wholly inside this window
                starts.append(0)
                ends.append(0)
                continue
            s = first
            while s <= last and offsets[s][0] <= a_start:
                s += 1
            e = last
            while e >= first and offsets[e][1] >= a_end:
                e -= 1
            starts.append(s - 1)
            ends.append(e + 1)
        enc["start_positions"] = starts
        enc["end_positions"] = ends
        return enc

    return examples.map(prepare, batched=True, remove_columns=examples.column_names, desc="SQuAD train features")


def eval_features(examples: Dataset, tokenizer, max_length: int = 384, stride: int = 128) -> Dataset:
    """Windows with ``example_id`` and context-only ``offset_mapping`` (None outside the context)."""

    def prepare(batch):
        enc = _encode(tokenizer, batch, max_length, stride)
        sample_of = enc.pop("overflow_to_sample_mapping")
        enc["example_id"] = []
        for i in range(len(enc["input_ids"])):
            seq = enc.sequence_ids(i)
            enc["example_id"].append(batch["id"][sample_of[i]])
            enc["offset_mapping"][i] = [o if seq[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
        return enc

    return examples.map(prepare, batched=True, remove_columns=examples.column_names, desc="SQuAD eval features")
