"""Your own data: text classification and regression over CSV, TSV, JSON, JSON-lines files or a hub dataset.

The files are read with :func:`datasets.load_dataset` (its ``csv`` and ``json`` builders; ``.tsv`` is the
``csv`` builder with a tab delimiter and no quoting, as GLUE's TSV files hold bare ``"`` characters). CSV and
TSV cells are read as strings (so a text column of digits stays text). The result has the columns of
:mod:`bertprune.data.glue` — ``text_a``, ``text_b`` (two text columns only) and ``label`` (a class id, or a
float for regression) — so the GLUE tokenizer and collator apply unchanged.

Class ids follow the sorted training labels (numerically when every label is a number), and are saved
as the model's ``id2label``/``label2id``. Every problem with the input is one :class:`BertpruneError`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from ..errors import BertpruneError

FILE_TASKS = ("text_classification", "text_regression")
#: file extension → (datasets builder, its options)
FORMATS = {
    ".csv": ("csv", {"na_filter": False}),
    ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "na_filter": False}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
}


@dataclass
class FileTaskSpec:
    """What the GLUE helpers (tokenize, load_sequence_classifier) need to know of the task."""

    name: str
    is_regression: bool
    is_pair: bool = False
    #: class names in class-id order; None for regression (and before the data is read)
    labels: tuple[str, ...] | None = None

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels or ())

    @property
    def main_metric(self) -> str:
        return "pearson" if self.is_regression else "accuracy"


def _suffix(path: str) -> str:
    return Path(path).suffix.lower()


def check_sources(data) -> None:
    """Config-time checks (before any model is loaded) of the data keys of a file task."""
    cols = list(data.text_columns)
    if not 1 <= len(cols) <= 2 or not all(isinstance(c, str) and c for c in cols):
        raise BertpruneError(f"data.text_columns must name one text column or two (a sentence pair), got {cols}; "
                             f"e.g. data.text_columns=[sentence] or data.text_columns=[sentence1,sentence2]")
    if not data.label_column:
        raise BertpruneError("data.label_column must name the label column, e.g. data.label_column=label")
    if data.label_column in cols:
        raise BertpruneError(f"data.label_column={data.label_column} is also one of data.text_columns {cols}")
    if data.train_file or data.validation_file:
        for key in ("train_file", "validation_file"):
            path = getattr(data, key)
            if not path:
                raise BertpruneError(f"task {data.task} needs both data.train_file and data.validation_file; "
                                     f"data.{key} is not set")
            if _suffix(path) not in FORMATS:
                raise BertpruneError(f"data.{key}={path}: unknown file extension {_suffix(path) or '(none)'!r}; "
                                     f"use a .csv, .tsv, .json or .jsonl (JSON lines) file")
            if not Path(path).is_file():
                raise BertpruneError(f"data.{key}={path}: file not found")
    elif not data.hub_dataset:
        raise BertpruneError(f"task {data.task} needs your data: data.train_file=... data.validation_file=... "
                             f"(.csv, .tsv, .json or .jsonl), or data.hub_dataset=<a Hugging Face dataset id>")


def _load_file(path: str) -> Dataset:
    import datasets

    builder, options = FORMATS[_suffix(path)]
    if Path(path).stat().st_size == 0:
        raise BertpruneError(f"{path} is empty; expected a header row and labelled rows")
    try:
        datasets.disable_progress_bars()
        if builder == "csv":  # every column as text: a text column of digits stays text, "01" stays "01"
            options = {**options, "features": datasets.Features({c: datasets.Value("string") for c in _header(path, options)})}
        ds = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as e:
        if "corresponds to no data" in str(e):  # a header without rows, an empty JSON array
            raise BertpruneError(f"{path} is empty: no labelled rows") from None
        cause = e.__cause__ or e
        first = str(cause).splitlines()[0] if str(cause) else ""
        raise BertpruneError(f"could not read {path} as {_suffix(path)[1:].upper()}: {type(cause).__name__}: {first}") from None
    if len(ds) == 0:
        raise BertpruneError(f"{path} is empty: no rows below the header")
    return ds


def _header(path: str, options: dict) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f, delimiter=options.get("delimiter", ","), quoting=options.get("quoting", 0)), [])
    except UnicodeDecodeError as e:
        raise BertpruneError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); re-encode it (e.g. iconv -t UTF-8)") from None
    if not header:
        raise BertpruneError(f"{path} is empty; expected a header row and labelled rows")
    return header


def _load_hub(data, split: str) -> Dataset:
    import datasets

    try:
        ds = datasets.load_dataset(data.hub_dataset, data.hub_config, split=split)
    except Exception as e:
        raise BertpruneError(
            f"could not load {data.hub_dataset} ({split}) from the Hugging Face hub: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. Offline? Use local files: data.train_file=... "
            f"data.validation_file=..."
        ) from None
    label = ds.features.get(data.label_column)
    if isinstance(label, datasets.ClassLabel):  # class ids → their names, so id2label says what they mean
        ds = ds.cast_column(data.label_column, datasets.Value("int64"))
        names = label.names
        ds = ds.map(lambda r: {data.label_column: names[r[data.label_column]]})
    return ds


def _columns(ds: Dataset, source: str, data) -> tuple[list[str], list[str] | None, list]:
    wanted = [*data.text_columns, data.label_column]
    missing = [c for c in wanted if c not in ds.column_names]
    if missing:
        raise BertpruneError(f"{source}: no column(s) {missing} (found {ds.column_names}); set data.text_columns "
                             f"and data.label_column to the file's column names")

    def text(values, column):
        out = []
        for i, v in enumerate(values):
            if v is None:
                raise BertpruneError(f"{source}, row {i + 1}: no text in column {column!r}")
            out.append(v if isinstance(v, str) else str(v))
        return out

    a = text(ds[data.text_columns[0]], data.text_columns[0])
    b = text(ds[data.text_columns[1]], data.text_columns[1]) if len(data.text_columns) == 2 else None
    return a, b, list(ds[data.label_column])


def _kind(v) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return type(v).__name__


def _is_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except (TypeError, ValueError):
        return False


def _class_keys(labels: list, source: str, column: str) -> list[str]:
    """Labels as strings (the keys of label2id), refusing missing labels and mixed types."""
    kinds = {}
    for i, v in enumerate(labels):
        if v is None or (isinstance(v, str) and not v.strip()):
            raise BertpruneError(f"{source}, row {i + 1}: no label in column {column!r}")
        kinds.setdefault(_kind(v), (i, v))
    if len(kinds) > 1:
        seen = ", ".join(f"{k} {v!r} (row {i + 1})" for k, (i, v) in kinds.items())
        raise BertpruneError(f"{source}: column {column!r} mixes label types: {seen}; give every label the same type")
    if not kinds.keys() <= {"string", "number", "boolean"}:
        raise BertpruneError(f"{source}: column {column!r} holds {next(iter(kinds))} values; labels must be strings or numbers")
    return [_key(v) for v in labels]


def _key(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def _scores(labels: list, source: str, column: str) -> list[float]:
    out = []
    for i, v in enumerate(labels):
        try:
            score = math.nan if isinstance(v, bool) else float(v)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):  # float() also reads "nan" and "inf", which would poison the loss
            raise BertpruneError(f"{source}, row {i + 1}: label {v!r} in column {column!r} is not a number; "
                                 f"text_regression needs numeric labels (use text_classification for classes)")
        out.append(score)
    return out


@dataclass
class FileData:
    spec: FileTaskSpec
    train: Dataset
    eval: dict[str, Dataset]


def load_files(data, task: str, train_examples=None, eval_examples=None, seed: int = 0) -> FileData:
    """Training and validation sets of your own data, as ``text_a``/``text_b``/``label`` columns."""
    from .glue import subsample

    if task not in FILE_TASKS:
        raise BertpruneError(f"unknown task {task!r}; own-data tasks are {', '.join(FILE_TASKS)}")
    check_sources(data)
    regression = task == "text_regression"
    if data.train_file:
        raw = {"train": (_load_file(data.train_file), data.train_file),
               "dev": (_load_file(data.validation_file), data.validation_file)}
    else:
        raw = {"train": (_load_hub(data, data.train_split), f"{data.hub_dataset} ({data.train_split})"),
               "dev": (_load_hub(data, data.validation_split), f"{data.hub_dataset} ({data.validation_split})")}
    parts = {name: (*_columns(ds, source, data), source) for name, (ds, source) in raw.items()}
    column = data.label_column
    spec = FileTaskSpec(task, regression, is_pair=len(data.text_columns) == 2)
    if regression:
        labels = {name: _scores(p[2], p[3], column) for name, p in parts.items()}
    else:
        keys = {name: _class_keys(p[2], p[3], column) for name, p in parts.items()}
        kind_train, kind_dev = (_kind(parts[n][2][0]) for n in ("train", "dev"))
        if kind_train != kind_dev:
            raise BertpruneError(f"{column!r} labels are {kind_train}s in {parts['train'][3]} but {kind_dev}s in "
                                 f"{parts['dev'][3]}; give both files the same label type")
        names = sorted(set(keys["train"]), key=lambda k: (0, float(k), k) if _is_number(k) else (1, 0.0, k))
        if len(names) < 2:
            raise BertpruneError(f"{parts['train'][3]}: column {column!r} holds one class only ({names}); "
                                 f"text_classification needs at least two")
        unseen = sorted(set(keys["dev"]) - set(names))
        if unseen:
            raise BertpruneError(f"{parts['dev'][3]}: label(s) {unseen[:5]} never occur in the training file "
                                 f"{parts['train'][3]} (its labels: {names[:20]}); the model cannot predict them")
        spec.labels = tuple(names)
        ids = {k: i for i, k in enumerate(names)}
        labels = {name: [ids[k] for k in ks] for name, ks in keys.items()}
    sets = {}
    for name, (a, b, _, _) in parts.items():
        columns = {"text_a": a, "label": labels[name]}
        if b is not None:
            columns["text_b"] = b
        sets[name] = Dataset.from_dict(columns)
    return FileData(spec, subsample(sets["train"], train_examples, seed),
                    {"dev": subsample(sets["dev"], eval_examples, seed)})
