"""The nine GLUE tasks, from the official TSV layout on disk or from the Hugging Face hub.

Both sources give the same :class:`datasets.Dataset` with columns ``text_a``, ``text_b`` (pair
tasks only) and ``label`` (an int class id, or a float for STS-B); class ids follow the hub's
``nyu-mll/glue`` label order, so a model fine-tuned from either source predicts the same ids.

The TSV layout is that of the GLUE download script: tab separated, no quoting (SST-2 and others hold
bare ``"`` characters, so ``csv.QUOTE_NONE``), a header row except CoLA's train/dev files, MRPC's
header starting with a UTF-8 byte-order mark, MNLI's dev sets split into ``dev_matched.tsv`` and
``dev_mismatched.tsv``. Columns are found by header name, so MNLI's train (12 columns) and dev (16)
files both parse; every row must have as many fields as its header.
"""

from __future__ import annotations

import csv
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from ..errors import BertpruneError

csv.field_size_limit(sys.maxsize)  # some GLUE rows (MNLI parses) exceed the default 128 KiB


@dataclass(frozen=True)
class GlueTask:
    name: str  # our name and the hub config, e.g. "sst2"
    folder: str  # folder in the GLUE download layout, e.g. "SST-2"
    #: columns in the TSV files: header names, or positions for a headerless file (CoLA)
    tsv_a: str | int
    tsv_b: str | int | None
    tsv_label: str | int
    #: the same columns on the hub
    hub_a: str
    hub_b: str | None
    #: TSV label strings in class-id order (the hub's); None for regression
    labels: tuple[str, ...] | None
    main_metric: str
    #: evaluation sets: our name → (TSV file stem, hub split)
    eval_sets: dict[str, tuple[str, str]] = field(default_factory=lambda: {"dev": ("dev", "validation")})
    tsv_header: bool = True
    tsv_columns: int | None = None  # fixed column count of a headerless file

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        return self.hub_b is not None


TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in [
        GlueTask("cola", "CoLA", 3, None, 1, "sentence", None, ("0", "1"), "mcc", tsv_header=False, tsv_columns=4),
        GlueTask("sst2", "SST-2", "sentence", None, "label", "sentence", None, ("0", "1"), "accuracy"),
        GlueTask("mrpc", "MRPC", "#1 String", "#2 String", "Quality", "sentence1", "sentence2", ("0", "1"), "f1"),
        GlueTask("stsb", "STS-B", "sentence1", "sentence2", "score", "sentence1", "sentence2", None, "spearman"),
        GlueTask("qqp", "QQP", "question1", "question2", "is_duplicate", "question1", "question2", ("0", "1"), "f1"),
        GlueTask(
            "mnli", "MNLI", "sentence1", "sentence2", "gold_label", "premise", "hypothesis",
            ("entailment", "neutral", "contradiction"), "accuracy",
            eval_sets={"dev": ("dev_matched", "validation_matched"), "dev_mm": ("dev_mismatched", "validation_mismatched")},
        ),
        GlueTask("qnli", "QNLI", "question", "sentence", "label", "question", "sentence", ("entailment", "not_entailment"), "accuracy"),
        GlueTask("rte", "RTE", "sentence1", "sentence2", "label", "sentence1", "sentence2", ("entailment", "not_entailment"), "accuracy"),
        GlueTask("wnli", "WNLI", "sentence1", "sentence2", "label", "sentence1", "sentence2", ("0", "1"), "accuracy"),
    ]
}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli_matched": "mnli"}


def get_task(name: str) -> GlueTask:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise BertpruneError(f"unknown task {name!r}; tasks are the GLUE tasks {', '.join(TASKS)}, "
                             f"squad, and text_classification / text_regression on your own files")
    return TASKS[key]


# --- local TSV files -----------------------------------------------------------------------------
def read_tsv(path: str | Path, task: GlueTask) -> Dataset:
    """Read one labelled GLUE TSV file (train or dev) into ``text_a``/``text_b``/``label`` columns."""
    path = Path(path)
    if not path.is_file():
        raise BertpruneError(
            f"GLUE file not found: {path}. Point --glue-dir (or $BERTPRUNE_GLUE_DIR) at a folder in the "
            f"official GLUE layout, holding {task.folder}/train.tsv and {task.folder}/dev.tsv; "
            f"leave both unset to download {task.name} from the Hugging Face hub."
        )
    rows = _read_rows(path)
    if not rows:
        raise BertpruneError(f"{path} is empty; expected the {task.folder} {'header and ' if task.tsv_header else ''}rows")

    first_line = 1
    if task.tsv_header:
        header = rows[0]
        rows = rows[1:]
        first_line = 2
        width = len(header)
        wanted = [c for c in (task.tsv_a, task.tsv_b, task.tsv_label) if c is not None]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise BertpruneError(
                f"{path}: header lacks column(s) {missing} (found {header}); a {task.folder} file in the "
                f"official GLUE layout has a header with {wanted}. Is this the test file (no labels) or another task's?"
            )
        col = {c: header.index(c) for c in wanted}
    else:
        width = task.tsv_columns
        col = {c: c for c in (task.tsv_a, task.tsv_b, task.tsv_label) if c is not None}

    a, b, labels = [], [], []
    for i, row in enumerate(rows):
        line = first_line + i
        if len(row) != width:
            raise BertpruneError(
                f"{path}, line {line}: {len(row)} tab-separated fields, expected {width} "
                f"({task.folder} layout). A field may hold a stray tab or the file is truncated."
            )
        a.append(row[col[task.tsv_a]])
        if task.tsv_b is not None:
            b.append(row[col[task.tsv_b]])
        labels.append(_parse_label(row[col[task.tsv_label]], task, path, line))
    columns = {"text_a": a, "label": labels}
    if task.tsv_b is not None:
        columns["text_b"] = b
    return Dataset.from_dict(columns)


def _read_rows(path: Path) -> list[list[str]]:
    """The non-blank rows of a TSV file, refusing what is not UTF-8 text (a binary or zipped file)."""
    rows = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig drops MRPC's byte-order mark
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            for row in reader:
                if any("\0" in field for field in row):  # Python >= 3.11's csv reads NUL bytes silently
                    raise csv.Error("a NUL byte")
                if row and any(c.strip() for c in row):
                    rows.append(row)
    except UnicodeDecodeError as e:
        raise BertpruneError(
            f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); is it a binary, compressed or differently "
            f"encoded file? GLUE files are UTF-8 TSV: unpack or re-encode it (e.g. iconv -t UTF-8)."
        ) from None
    except csv.Error as e:
        raise BertpruneError(f"{path}, line {reader.line_num}: {e}; GLUE files are UTF-8 text without NUL bytes. "
                             f"Is it a binary file?") from None
    return rows


def _parse_label(raw: str, task: GlueTask, path: Path, line: int):
    raw = raw.strip()
    if task.labels is None:
        try:
            score = float(raw)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):  # float() also reads "nan" and "inf", which would poison the loss
            raise BertpruneError(f"{path}, line {line}: score {raw!r} is not a number ({task.folder} scores are 0-5)")
        return score
    if raw not in task.labels:
        raise BertpruneError(f"{path}, line {line}: label {raw!r} is not one of {list(task.labels)} ({task.folder})")
    return task.labels.index(raw)


# --- hub -----------------------------------------------------------------------------------------
def _load_hub(task: GlueTask, split: str) -> Dataset:
    import datasets

    try:
        ds = datasets.load_dataset("nyu-mll/glue", task.name, split=split)
    except Exception as e:
        raise BertpruneError(
            f"could not load GLUE {task.name} ({split}) from the Hugging Face hub: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. Offline? Point --glue-dir or $BERTPRUNE_GLUE_DIR "
            f"at a local folder in the official GLUE layout."
        ) from e
    columns = {"text_a": ds[task.hub_a], "label": ds["label"]}
    if task.hub_b is not None:
        columns["text_b"] = ds[task.hub_b]
    return Dataset.from_dict(columns)


# --- entry point ---------------------------------------------------------------------------------
def subsample(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded random subset of ``n`` rows in file order (all rows when n is None or >= len)."""
    if n is None or n >= len(ds):
        return ds
    keep = sorted(random.Random(seed).sample(range(len(ds)), n))
    return ds.select(keep)


@dataclass
class GlueData:
    task: GlueTask
    train: Dataset
    eval: dict[str, Dataset]  # "dev" (and "dev_mm" for MNLI)


def load_glue(task_name: str, glue_dir: str | None, train_examples=None, eval_examples=None, seed: int = 0) -> GlueData:
    """Train and evaluation sets of a GLUE task, from ``glue_dir`` when given, else the hub."""
    task = get_task(task_name)
    if glue_dir:
        root = Path(glue_dir)
        if not root.is_dir():
            raise BertpruneError(f"GLUE folder not found: {root}. Pass --glue-dir pointing at it (e.g. ../shared/data/glue).")
        folder = root / task.folder
        train = read_tsv(folder / "train.tsv", task)
        evals = {name: read_tsv(folder / f"{stem}.tsv", task) for name, (stem, _) in task.eval_sets.items()}
    else:
        train = _load_hub(task, "train")
        evals = {name: _load_hub(task, split) for name, (_, split) in task.eval_sets.items()}
    if len(train) == 0:
        raise BertpruneError(f"the {task.name} training set is empty")
    return GlueData(
        task,
        subsample(train, train_examples, seed),
        {k: subsample(v, eval_examples, seed) for k, v in evals.items()},
    )


#: The longest text a token can stand for. BERT's WordPiece turns a word of more than
#: ``max_input_chars_per_word`` = 100 characters into one [UNK], and a shorter word into at most as many
#: tokens as it has characters, so every token covers at most 100 characters (byte-level BPE and
#: SentencePiece pieces are shorter still).
CHARS_PER_TOKEN = 100


def cut_text(text: str, max_length: int) -> str:
    """The head of ``text`` that holds its first ``max_length`` tokens: ``max_length`` × 100 characters.

    Tokenizers truncate only after tokenizing the whole text, so one 20 MB row would cost gigabytes of
    token objects and offsets for 128 kept tokens; the cut bounds that by ``max_length``. The rule keeps
    every kept token (see :data:`CHARS_PER_TOKEN`); only a text with runs of thousands of spaces (which
    give no tokens) could lose tokens it would have kept. One more difference, in pairs whose two texts
    both exceed half the budget: truncation gives an odd leftover token to the longer text, and cutting
    can change which text that is, so one token may move from one text to the other."""
    limit = CHARS_PER_TOKEN * max_length
    return text if len(text) <= limit else text[:limit]


def tokenize(ds: Dataset, tokenizer, task: GlueTask, max_length: int) -> Dataset:
    """Token ids (no padding: the collator pads each batch to its longest row) and ``labels``."""

    def encode(batch):
        a = [cut_text(t, max_length) for t in batch["text_a"]]
        args = (a,) if not task.is_pair else (a, [cut_text(t, max_length) for t in batch["text_b"]])
        enc = tokenizer(*args, truncation=True, max_length=max_length)
        enc["labels"] = batch["label"]
        return enc

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc=f"tokenize {task.name}")
