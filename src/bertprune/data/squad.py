"""SQuAD v1.1: the official JSON format (local file or the Hugging Face hub), and features.

Features follow the usual sliding-window recipe: each (question, context) pair is tokenised with the
context cut into windows of ``max_length`` tokens that overlap by ``stride`` tokens
(``return_overflowing_tokens``), keeping the character offsets of every context token. In training,
an answer that does not lie wholly inside a window is labelled with the [CLS] position (index 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..errors import BertpruneError


def read_squad(path: str | Path) -> Dataset:
    """Examples of an official SQuAD v1.1 JSON file: id, title, context, question, answers.

    Every field is checked for its type (a wrong one is refused with the file, the question id and the
    field), every question must have at least one answer (v1.1 has no unanswerable questions), and
    every answer must sit at its ``answer_start`` in the context."""
    path = Path(path)
    if not path.is_file():
        raise BertpruneError(
            f"SQuAD file not found: {path}. Point --squad-dir (or $BERTPRUNE_SQUAD_DIR) at a folder with the official "
            f"JSON files (data.squad_train_file / data.squad_dev_file name them), or leave it unset to use the hub."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise BertpruneError(f"{path} is not JSON: {e}") from None
    rows: dict[str, list] = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    seen: set[str] = set()
    layout = _Layout(path)
    top = layout.mapping(data, "the top level")
    for i, article in enumerate(layout.items(top, "data", "the top level")):
        where = f"data[{i}]"
        article = layout.mapping(article, where)
        title = layout.text(article.get("title", ""), f"{where}.title")
        for j, paragraph in enumerate(layout.items(article, "paragraphs", where)):
            where_p = f"{where}.paragraphs[{j}]"
            paragraph = layout.mapping(paragraph, where_p)
            context = layout.text(layout.field(paragraph, "context", where_p), f"{where_p}.context")
            for k, qa in enumerate(layout.items(paragraph, "qas", where_p)):
                qid, question, answers = _question(layout, qa, context, f"{where_p}.qas[{k}]")
                if qid in seen:
                    raise BertpruneError(f"{path}: question id {qid!r} appears twice; ids must be unique (predictions are keyed by id)")
                seen.add(qid)
                rows["id"].append(qid)
                rows["title"].append(title)
                rows["context"].append(context)
                rows["question"].append(question)
                rows["answers"].append(answers)
    if not rows["id"]:
        raise BertpruneError(f"{path} holds no questions")
    return Dataset.from_dict(rows)


class _Layout:
    """Type checks of the SQuAD v1.1 layout (data → paragraphs → context/qas → id/question/answers);
    each failure names the file and the place, and says what was expected."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, what: str) -> BertpruneError:
        return BertpruneError(
            f"{self.path}: {where}: {what}. The file is not in the SQuAD v1.1 layout (data → paragraphs → "
            f"context/qas → id/question/answers → text/answer_start); fix that entry or use the official file."
        )

    def mapping(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a JSON object, found {_json_type(value)}")
        return value

    def field(self, obj: dict, key: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(where, f"missing {key!r}")
        return obj[key]

    def items(self, obj: dict, key: str, where: str) -> list:
        value = self.field(obj, key, where)
        if not isinstance(value, list):
            raise self.fail(where, f"{key!r} must be a list, found {_json_type(value)}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, found {_json_type(value)}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone \ud800-style escape: no text can hold it
            raise self.fail(where, "the string holds an unpaired surrogate escape (\\udXXX)") from None
        return value


def _question(layout: _Layout, qa: Any, context: str, where: str) -> tuple[str, str, dict]:
    """(id, question, answers) of one ``qas`` entry, checked; errors name the question by its id."""
    qa = layout.mapping(qa, where)
    qid = layout.text(layout.field(qa, "id", where), f"{where}.id")
    where = f"question {qid!r} ({where})"
    question = layout.text(layout.field(qa, "question", where), f"{where}: question")
    answers = layout.items(qa, "answers", where)
    if not answers:
        raise layout.fail(where, "no answers; every SQuAD v1.1 question has at least one (v2.0's unanswerable "
                                 "questions are not supported)")
    texts, starts = [], []
    for n, answer in enumerate(answers):
        at = f"{where}: answers[{n}]"
        answer = layout.mapping(answer, at)
        text = layout.text(layout.field(answer, "text", at), f"{at}.text")
        start = layout.field(answer, "answer_start", at)
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise layout.fail(at, f"answer_start must be a character offset (an integer >= 0), found {start!r}")
        if not text or context[start : start + len(text)] != text:
            raise BertpruneError(
                f"{layout.path}: {where}: answer {text!r} is not at character {start} of its context "
                f"(found {context[start:start + len(text)]!r}); the file is corrupted or not SQuAD v1.1"
            )
        texts.append(text)
        starts.append(start)
    return qid, question, {"text": texts, "answer_start": starts}


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else f"{names.get(type(value), type(value).__name__)} ({json.dumps(value)[:40]})"


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
    questions = _short_questions(tokenizer, [q.lstrip() for q in examples["question"]], max_length, stride)
    return tokenizer(
        questions if pad_right else examples["context"],
        examples["context"] if pad_right else questions,
        truncation="only_second" if pad_right else "only_first",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def _short_questions(tokenizer, questions: list[str], max_length: int, stride: int) -> list[str]:
    """Questions cut to the tokens that leave a window room for ``stride + 1`` context tokens.

    The tokenizer cuts only the context, so a question longer than that fails the whole batch (the
    fast tokenizer even panics when the stride does not fit). BERT's SQuAD recipe cut questions the same
    way (``max_query_length``); official questions are far shorter and pass unchanged."""
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - stride - 1
    if room < 1:
        raise BertpruneError(f"data.max_length={max_length} leaves no room for a question beside data.doc_stride={stride} "
                             f"context tokens; raise data.max_length or lower data.doc_stride")
    offsets = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out = []
    for question, spans in zip(questions, offsets):
        keep = room
        while len(spans) > room and keep > 0:  # cut at a token's end; a cut word may re-tokenize into more pieces
            question = question[: spans[keep - 1][1]]
            spans = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            keep -= 1
        out.append(question if len(spans) <= room else "")
    return out


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
            if not ctx or offsets[ctx[0]][0] > a_start or offsets[ctx[-1]][1] < a_end:  # not wholly inside this window
                starts.append(0)
                ends.append(0)
                continue
            first, last = ctx[0], ctx[-1]
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
