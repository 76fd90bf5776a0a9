"""Fuzzing the readers, the config and the command line with generated inputs (hypothesis).

Property, for every target: an input either works or raises exactly one :class:`BertpruneError` with a
non-empty message (the CLI: exit status 0 or 2, no traceback); never another exception. Each case runs
in a fresh temporary folder as the working directory, and nothing outside it may change: the module's
shared folder (inputs and the working directory between cases included) is compared before and after.

No case trains or downloads anything: readers and the config are called directly, and the CLI's
training, demo and t-SNE entry points are replaced by stubs that only record the resolved config, so
the CLI is fuzzed through argument parsing, config resolution and the file-reading commands.

``BERTPRUNE_FUZZ_COUNT_FILE=path.json`` makes the module write how many cases ran (total, per target,
and how many worked or were refused with a message) when it finishes, for benchmarks that report it;
``BERTPRUNE_FUZZ_SCALE=10`` runs ten times as many cases.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save, save_file

from bertprune.errors import BertpruneError

#: cases per target; 6 targets, 1,200 cases in all (times $BERTPRUNE_FUZZ_SCALE, for a longer hunt)
_SCALE = float(os.environ.get("BERTPRUNE_FUZZ_SCALE", "1"))
EXAMPLES = {k: max(1, round(v * _SCALE)) for k, v in
            {"glue": 250, "squad": 200, "text": 150, "config": 250, "masks": 200, "cli": 150}.items()}
CASES: Counter = Counter()
OUTCOMES: Counter = Counter()
FUZZ = settings(deadline=None, database=None, derandomize=False, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


# --- shared set-up --------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def count_file():
    """Write the case counts to $BERTPRUNE_FUZZ_COUNT_FILE (if set) once the module is done."""
    yield
    target = os.environ.get("BERTPRUNE_FUZZ_COUNT_FILE")
    if target:
        counts = {"total": sum(CASES.values()), "per_target": dict(CASES), "outcomes": dict(sorted(OUTCOMES.items()))}
        Path(target).write_text(json.dumps(counts, indent=1))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Iterator[Path]:
    """The shared folder of this module: inputs every case reads, one sub-folder per case, and ``start``,
    the working directory between cases (ours alone: the repository may be edited meanwhile)."""
    from bertprune.testing import save_tiny_model, write_tokenizer

    folder = tmp_path_factory.mktemp("fuzz")
    write_tokenizer(folder / "inputs" / "tokenizer")
    save_tiny_model(folder / "inputs" / "tiny", "bert")  # copied into the CLI cases that name it
    (folder / "start").mkdir()
    previous = Path.cwd()
    os.chdir(folder / "start")
    try:
        yield folder
    finally:
        os.chdir(previous)


@pytest.fixture(scope="module")
def tokenizer(root):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(root / "inputs" / "tokenizer")


def _tree(folder: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` except ``skip``: (size, modification time)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        if Path(dirpath) == skip:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p != skip:
                st_ = p.lstat()
                out[str(p.relative_to(folder))] = (st_.st_size if p.is_file() else 0, st_.st_mtime_ns)
    return out


@contextlib.contextmanager
def sandbox(root: Path, target: str) -> Iterator[Path]:
    """A fresh folder as the working directory for one case; afterwards, nothing else under ``root``
    and nothing in the previous working directory changed. Counts the case."""
    case = Path(tempfile.mkdtemp(dir=root, prefix="case-"))
    before, home = _tree(root, case), Path.cwd()
    home_before = sorted(os.listdir(home))
    os.chdir(case)
    try:
        yield case
    finally:
        os.chdir(home)
        shutil.rmtree(case, ignore_errors=True)
        CASES[target] += 1
    after = _tree(root, case)
    assert after == before, f"a case changed files outside its folder: {sorted(set(after.items()) ^ set(before.items()))}"
    assert sorted(os.listdir(home)) == home_before, f"a case changed the working directory it started in ({home})"


@contextlib.contextmanager
def works_or_explains(target: str) -> Iterator[None]:
    """The property: no exception, or exactly a BertpruneError with a message. Counts which it was, so
    that a generator that only ever produces refused inputs shows in the count file."""
    try:
        yield
    except BertpruneError as e:
        assert type(e) is BertpruneError and str(e).strip(), f"empty or subclassed error: {e!r}"
        OUTCOMES[f"{target}:explained"] += 1
    else:
        OUTCOMES[f"{target}:works"] += 1


# --- building blocks of generated inputs ------------------------------------------------------------
#: text that stresses parsers: tabs, quotes, line breaks of every kind, NUL, non-ASCII, YAML and
#: OmegaConf syntax, digits
NASTY = st.text(alphabet=st.sampled_from(list("ab z09.,-_:=${}[]'\"\\#&*!|>%@`\t\r\n\x00\x0b\x1c\x85\u2028é漢😀")), max_size=30)
WORDS_ = st.sampled_from("good bad movie the cat dog sat park film , . !".split())
SENTENCE = st.lists(WORDS_, min_size=0, max_size=12).map(" ".join)
TEXT = st.one_of(SENTENCE, NASTY, st.text(max_size=40))


def often(draw, good, bad, one_in: int = 5):
    """Draw from ``bad`` once in ``one_in`` times, else from ``good``: mostly valid inputs with a fault
    here and there reach deeper than inputs that are broken everywhere."""
    return draw(bad) if draw(st.integers(1, one_in)) == 1 else draw(good)


# --- GLUE TSV reader ----------------------------------------------------------------------------------
def _tsv(draw, task) -> bytes:
    from bertprune.data.glue import TASKS

    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    spec = TASKS[task]
    if spec.tsv_header:
        header = ["index"] + [c for c in (spec.tsv_a, spec.tsv_b, spec.tsv_label) if c is not None]
        if draw(st.integers(0, 9)) == 0:  # a column missing or renamed
            header[draw(st.integers(0, len(header) - 1))] = draw(st.sampled_from(["x", ""]))
        width, label_col = len(header), len(header) - 1
    else:
        header, width, label_col = [], spec.tsv_columns, spec.tsv_label
    labels = st.sampled_from(list(spec.labels or ("0.5", "3.2", "5")))
    rows = ["\t".join(header)] if header else []
    for _ in range(draw(st.integers(0, 5))):
        n = often(draw, st.just(width), st.sampled_from([width - 1, width + 1]))
        fields = [often(draw, SENTENCE, TEXT) for _ in range(n)]
        if label_col < n:
            fields[label_col] = often(draw, labels, st.sampled_from(["nan", "inf", "-1", "x", "", " 1 "]))
        rows.append("\t".join(fields))
    text = "\n".join(rows) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return (("\ufeff" if draw(st.booleans()) else "") + text).encode("utf-8", "surrogatepass")


@st.composite
def glue_files(draw):
    task = draw(st.sampled_from(["cola", "sst2", "mrpc", "stsb", "rte", "mnli"]))
    return task, _tsv(draw, task)


@settings(FUZZ, max_examples=EXAMPLES["glue"])
@given(glue_files())
def test_glue_reader(root, tokenizer, case):
    from bertprune.data.glue import TASKS, read_tsv, tokenize

    task, payload = case
    with sandbox(root, "glue") as folder, works_or_explains("glue"):
        (folder / "train.tsv").write_bytes(payload)
        ds = read_tsv(folder / "train.tsv", TASKS[task])
        assert set(ds.column_names) >= {"text_a", "label"}
        if len(ds):
            tokenize(ds, tokenizer, TASKS[task], 16)


# --- SQuAD JSON reader --------------------------------------------------------------------------------
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20), st.floats(allow_nan=False), TEXT)


@st.composite
def squad_files(draw) -> bytes:
    """Mostly well-formed SQuAD trees, now and then with a mutation, sometimes raw bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=120))
    paragraphs = []
    for p in range(often(draw, st.integers(1, 3), st.just(0), 20)):
        context = often(draw, SENTENCE.filter(bool), TEXT, 20)
        qas = []
        for q in range(often(draw, st.integers(1, 3), st.just(0), 20)):
            answers = []
            for _ in range(often(draw, st.integers(1, 2), st.just(0), 20)):
                if context and draw(st.integers(0, 19)):
                    start = draw(st.integers(0, len(context) - 1))
                    end = draw(st.integers(start + 1, len(context)))
                    answers.append({"text": context[start:end], "answer_start": start})
                else:
                    answers.append({"text": draw(TEXT), "answer_start": draw(st.integers(-2, 40))})
            qas.append({"id": often(draw, st.just(f"q{p}-{q}"), st.just("dup"), 20),
                        "question": often(draw, SENTENCE, st.one_of(TEXT, SENTENCE.map(lambda x: x * 8)), 5), "answers": answers})
        paragraphs.append({"context": context, "qas": qas})
    tree = {"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # a value of the wrong type, or a key removed
        tree = _mutate(draw, tree)
    return json.dumps(tree).encode()


def _mutate(draw, tree):
    if isinstance(tree, dict) and tree:
        key = draw(st.sampled_from(sorted(tree)))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            return {k: v for k, v in tree.items() if k != key}
        if choice == 1:
            return {**tree, key: draw(JSON_LEAF)}
        return {**tree, key: _mutate(draw, tree[key])}
    if isinstance(tree, list) and tree:
        i = draw(st.integers(0, len(tree) - 1))
        return tree[:i] + [_mutate(draw, tree[i]) if draw(st.booleans()) else draw(JSON_LEAF)] + tree[i + 1 :]
    return draw(JSON_LEAF)


@settings(FUZZ, max_examples=EXAMPLES["squad"])
@given(squad_files(), st.sampled_from([(16, 4), (24, 8), (32, 12)]))
def test_squad_reader_and_features(root, tokenizer, payload, window):
    from bertprune.data.squad import eval_features, read_squad, train_features

    with sandbox(root, "squad") as folder, works_or_explains("squad"):
        (folder / "train.json").write_bytes(payload)
        ds = read_squad(folder / "train.json")
        assert len(ds) == len(set(ds["id"]))
        train_features(ds, tokenizer, *window)
        eval_features(ds, tokenizer, *window)


# --- plain-text reader --------------------------------------------------------------------------------
@st.composite
def text_corpora(draw):
    files = []
    for _ in range(draw(st.integers(0, 3))):
        raw = draw(st.one_of(st.binary(max_size=80), st.lists(st.one_of(SENTENCE, TEXT), max_size=8).map("\n".join).map(str.encode)))
        files.append((draw(st.sampled_from(["a.txt", "b.txt", "c.md", "d.txt/"])), raw))
    return files, draw(st.sampled_from([0.0, 0.05, 0.3, 0.5])), draw(st.sampled_from([8, 12, 32])), draw(st.booleans())


@settings(FUZZ, max_examples=EXAMPLES["text"])
@given(text_corpora())
def test_text_reader(root, tokenizer, corpus):
    from bertprune.data.text import nsp_pairs, pack_blocks, read_documents, split_documents, tokenize_documents

    files, fraction, block, nsp = corpus
    with sandbox(root, "text") as folder, works_or_explains("text"):
        texts = folder / "texts"
        texts.mkdir()
        for name, raw in files:
            if name.endswith("/"):
                (texts / name).mkdir(exist_ok=True)  # a folder named like a text file
            else:
                (texts / name).write_bytes(raw)
        docs = read_documents(str(texts))
        train, _ = split_documents(docs, fraction, seed=0)
        ids = tokenize_documents(train, tokenizer)
        if nsp:
            nsp_pairs(ids, block, tokenizer.cls_token_id, tokenizer.sep_token_id, seed=0)
        else:
            pack_blocks(ids, block, tokenizer.cls_token_id, tokenizer.sep_token_id)


# --- YAML recipes and key=value overrides -----------------------------------------------------------
KEYS = ["output_dir", "model.name", "model.revision", "data.task", "data.max_length", "data.glue_dir", "data.doc_stride",
        "data.block_size", "data.text_files", "prune.method", "prune.sparsity", "prune.scope", "prune.granularity",
        "prune.mask", "prune.schedule.start", "prune.schedule.end", "prune.schedule.every", "prune.schedule.start_epoch",
        "prune.rpp.gamma", "targets.roles", "targets.patterns", "train.lr", "train.epochs", "train.max_steps",
        "train.batch_size", "train.mixed_precision", "train.lr_schedule", "distill.teacher", "distill.hardness",
        "head.steps", "nosuch.key", "train", "prune"]
SECRET = "fuzz-secret-value-7f3a"
VALUES = st.one_of(
    st.sampled_from(["gmp", "dense", "0.9", "0.5", "2:4", "4x1", "1e-3", ".nan", ".inf", "-1", "0", "null", "true", "no",
                     "[query,key]", "{a: b}", "sst2", "squad", "~", "${train.lr}", "${oc.env:BERTPRUNE_FUZZ_SECRET}",
                     "${oc.decode:'1'}", "${nope}", "${", "'", "\"x", "a: b", "- a", "x\\${y}"]),
    NASTY, st.integers(-3, 10**6).map(str), st.floats().map(repr),
)
YAML_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 1000), st.floats(), VALUES),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["lr", "method", "a", "mask"]), inner, max_size=3)),
    max_leaves=6,
)


#: keys and values that are valid on their own, per schema (a combination may still be refused)
PLAUSIBLE = {
    "output_dir": ["runs/x", "out"], "model.name": ["bert-base-uncased", "m"], "model.revision": ["main"],
    "train.lr": [1e-4, 3e-5], "train.epochs": [1, 2.5], "train.max_steps": [10], "train.batch_size": [8, 16],
    "train.mixed_precision": ["no", "bf16"], "train.lr_schedule": ["linear", "constant", "rewind"], "train.seed": [1],
    "prune.scope": ["local", "global"], "targets.roles": [["query", "key"]], "targets.extra": [["embeddings"]],
    "prune.schedule.every": [5], "prune.schedule.end": [0.5], "prune.rpp.gamma": [0.01],
}
PLAUSIBLE_FOR = {
    "RunConfig": {"data.task": ["sst2", "squad", "mrpc"], "data.max_length": [64, 128], "data.glue_dir": ["glue"],
                  "data.doc_stride": [16], "data.train_examples": [50]},
    "PretrainConfig": {"data.block_size": [32, 64], "head.steps": [0, 5], "data.nsp": [True], "data.text_dir": ["texts"]},
    "DistillRunConfig": {"distill.temperature": [2.0], "distill.hardness": [0.5], "data.task": ["rte"]},
}
#: pruning settings that only work together
PRUNING = [{"prune.method": "gmp", "prune.sparsity": 0.9}, {"prune.method": "rpp"}, {"prune.method": "dense"},
           {"prune.method": "gradual", "prune.criterion": "movement", "prune.sparsity": 0.5},
           {"prune.method": "oneshot", "prune.sparsity": 0.5, "prune.granularity": "2:4"}]


def _nest(key: str, value):
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _merge(tree: dict, key: str, value) -> None:
    """Set a dotted key in a nested dict (a leaf in the way is replaced)."""
    *parents, last = key.split(".")
    for part in parents:
        if not isinstance(tree.get(part), dict):
            tree[part] = {}
        tree = tree[part]
    tree[last] = value


@st.composite
def settings_for(draw, schema: str) -> dict:
    """Dotted key → value: mostly plausible ones, now and then any key with any value."""
    table = {**PLAUSIBLE, **PLAUSIBLE_FOR[schema]}
    chosen = dict(draw(st.sampled_from(PRUNING))) if draw(st.booleans()) else {}
    if schema == "DistillRunConfig" and draw(st.integers(0, 4)):
        chosen["distill.teacher"] = "teacher"
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.integers(0, 3)):
            key = draw(st.sampled_from(sorted(table)))
            chosen[key] = draw(st.sampled_from(table[key]))
        else:
            chosen[draw(st.sampled_from(KEYS))] = draw(YAML_VALUE)
    return chosen


@st.composite
def recipes(draw, schema: str = "RunConfig") -> str | None:
    kind = draw(st.sampled_from(["none", "tree", "tree", "tree", "text", "list"]))
    if kind == "none":
        return None
    if kind == "text":
        return draw(NASTY)
    if kind == "list":
        return yaml.safe_dump(draw(st.lists(YAML_VALUE, max_size=3)))
    tree: dict = {}
    for key, value in draw(settings_for(schema)).items():
        _merge(tree, key, value)
    return yaml.safe_dump(tree, allow_unicode=True)


def _override(item: tuple[str, object]) -> str:
    key, value = item
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


@st.composite
def overrides_for(draw, schema: str) -> list[str]:
    items = [_override(kv) for kv in draw(settings_for(schema)).items()]
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):  # junk: a nasty text, or any key with any value
        items.insert(draw(st.integers(0, len(items))),
                     draw(st.one_of(NASTY, st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), VALUES))))
    return items


@st.composite
def configs(draw):
    schema = draw(st.sampled_from(["RunConfig", "PretrainConfig", "DistillRunConfig"]))
    return draw(recipes(schema)), draw(overrides_for(schema)), schema


@settings(FUZZ, max_examples=EXAMPLES["config"])
@given(configs())
def test_config_recipes_and_overrides(root, monkeypatch, case):
    from bertprune import config

    recipe, overrides, schema = case
    monkeypatch.setenv("BERTPRUNE_FUZZ_SECRET", SECRET)
    with sandbox(root, "config") as folder, works_or_explains("config"):
        path = None
        if recipe is not None:
            path = folder / "recipe.yaml"
            path.write_text(recipe, encoding="utf-8", errors="surrogatepass")
        cfg = config.load_config(path, overrides, schema=getattr(config, schema))
        assert SECRET not in config.to_yaml(cfg), "an environment variable reached the saved config"


# --- mask files ----------------------------------------------------------------------------------------
PARAMS = {"enc.0.query.weight": (4, 6), "enc.0.key.weight": (4, 6), "enc.0.output.weight": (6, 4), "enc.0.query.bias": (4,)}
DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "I32": 4, "F16": 2, "F32": 4, "F64": 8, "XX": 1}


def _raw_safetensors(tensors: list[tuple[str, str, list[int], bytes]], padding: bytes = b"") -> bytes:
    """safetensors bytes written by hand, so that headers may lie (wrong sizes, unknown dtypes, bool byte 2)."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    blob = json.dumps(header).encode() + padding
    return struct.pack("<Q", len(blob)) + blob + data


@st.composite
def mask_files(draw) -> bytes:
    """Mostly masks saved by safetensors with a flaw or none; sometimes hand-written headers or raw bytes."""
    kind = draw(st.sampled_from(["saved", "saved", "saved", "raw", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    odd_shapes = st.lists(st.integers(0, 5), max_size=3).map(tuple)
    if kind == "saved":
        tensors = {}
        for name in draw(st.lists(st.sampled_from(sorted(PARAMS)), max_size=4, unique=True)):
            if draw(st.integers(0, 9)) == 0:
                name = draw(st.sampled_from(["other.weight", ""]))
            shape = often(draw, st.just(PARAMS.get(name, (2, 2))), odd_shapes)
            dtype = often(draw, st.just(torch.bool), st.sampled_from([torch.uint8, torch.float32, torch.int64]))
            values = often(draw, st.just(None), st.sampled_from([0, 1, 2, -1]))
            t = torch.randint(0, 2, shape) if values is None else torch.full(shape, values)
            tensors[name] = t.to(dtype)
        return save(tensors)
    tensors = []
    for _ in range(draw(st.integers(1, 3))):
        dtype = draw(st.sampled_from(sorted(DTYPES)))
        name = draw(st.sampled_from(sorted(PARAMS)))
        shape = list(often(draw, st.just(PARAMS[name]), odd_shapes))
        n = int(torch.tensor(shape).prod()) if shape else 1
        raw = draw(st.binary(min_size=n * DTYPES[dtype], max_size=n * DTYPES[dtype] + 1))
        tensors.append((name, dtype, shape, raw))
    return _raw_safetensors(tensors, draw(st.sampled_from([b"", b"  ", b"\x00"])))


@settings(FUZZ, max_examples=EXAMPLES["masks"])
@given(mask_files())
def test_mask_files(root, payload):
    from bertprune.masks import MASK_FILE, Masks
    from bertprune.report import sparsity_report

    weights = {n: torch.randn(shape) for n, shape in PARAMS.items()}
    with sandbox(root, "masks") as folder, works_or_explains("masks"):
        (folder / MASK_FILE).write_bytes(payload)
        masks = Masks.load(folder / MASK_FILE).check_against(weights, folder / MASK_FILE, every_name=False)
        assert all(m.dtype == torch.bool and tuple(m.shape) == tuple(weights[n].shape) for n, m in masks.masks.items() if n in weights)
        save_file(weights, str(folder / "model.safetensors"))
        sparsity_report(folder)


# --- the command line -------------------------------------------------------------------------------------
COMMANDS = ["finetune", "pretrain", "distill", "report", "export", "compare", "curve", "tsne", "demo"]
FLAGS = ["--config", "--recipe", "--model", "--task", "--glue-dir", "--squad-dir", "--train-examples", "--max-length",
         "--mask", "--keep-zeros", "--method", "--sparsity", "--scope", "--epochs", "--max-steps", "--lr", "--batch-size",
         "--seed", "--output-dir", "-o", "--resume", "--overwrite", "--quiet", "--teacher", "--student", "--temperature",
         "--text-dir", "--hub-dataset", "--block-size", "--nsp", "--head-steps", "--seq-len", "--json", "--matrices",
         "--universal-mask", "--html", "--format", "--int8", "--out", "--title", "--word", "--words", "-k", "--kind",
         "--sparsity=0.5", "--help", "-h", "--", "--nosuch"]
#: paths of the files each CLI case finds in its folder
FILES = ["recipe.yaml", "records.jsonl", "notes.txt", "weights.safetensors", "model", "tiny", "glue", "missing", "missing.jsonl"]
#: argv holds no NUL (the OS cannot pass one) and, here, no "/" and no "..": every path a case names
#: stays inside its folder
SAFE = st.text(alphabet=st.sampled_from(list("abz09._-=:${}[]'\"~, é")), max_size=12).filter(lambda s: ".." not in s)
ARG = st.one_of(st.sampled_from(FLAGS), st.sampled_from(FILES), st.sampled_from(["sst2", "squad", "mrpc", "sparse", "onnx",
                "gmp", "0.9", "1.5", "-1", "nan", "inf", "2", "teacher", "input", "demo"]), SAFE,
                st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), SAFE))
#: argument groups that make sense for each command
PLAUSIBLE_ARGV = {
    "finetune": [["--task", "sst2"], ["--model", "m"], ["--method", "gmp", "--sparsity", "0.9"], ["--epochs", "1"],
                 ["--output-dir", "out"], ["--glue-dir", "glue"], ["--config", "recipe.yaml"], ["--recipe", "demo"],
                 ["train.lr=1e-4"], ["--max-length", "64"], ["--quiet"], ["--mask", "weights.safetensors"]],
    "pretrain": [["--text-dir", "texts"], ["--block-size", "32"], ["--nsp"], ["--head-steps", "0"], ["--model", "m"],
                 ["--method", "rpp"], ["-o", "out"], ["--config", "recipe.yaml"]],
    "distill": [["--teacher", "teacher"], ["--student", "m"], ["--temperature", "2"], ["--task", "rte"], ["--config", "recipe.yaml"]],
    "report": [["model"], ["tiny"], ["tiny"], ["weights.safetensors"], ["notes.txt"], ["--json"], ["--matrices"], ["--seq-len", "64"],
               ["--universal-mask", "weights.safetensors"], ["--html"]],
    "export": [["model"], ["tiny"], ["tiny"], ["--format", "sparse"], ["--format", "sparse"], ["--format", "onnx"],
               ["-o", "exp"], ["-o", "notes.txt"], ["--int8"]],
    "compare": [["model"], ["notes.txt"], ["-o", "cmp"], ["tiny"]],
    "curve": [["records.jsonl"], ["records.jsonl"], ["--task", "mrpc"], ["--task", "mrpc"], ["-o", "curve"], ["--title", "t"]],
    "tsne": [["m"], ["n"], ["--word", "good"], ["-k", "3"], ["--words", "10"], ["--kind", "input"], ["-o", "maps"]],
    "demo": [["--glue-dir", "glue"], ["-o", "demo"], ["--sparsity", "0.9"], ["--train-examples", "10"], ["--quiet"]],
}
RECORD = st.fixed_dictionaries({"task": st.sampled_from(["mrpc", "mrpc", "mlm"]), "method": st.sampled_from(["gmp", "dense", "rpp", 3]),
                                "target_sparsity": st.sampled_from([0, 0.5, 0.9, 0.9, "x", None]),
                                "main_metric": st.sampled_from([80.0, 75, 70.5, None, "x"])})


@st.composite
def cli_cases(draw):
    command = draw(st.sampled_from(COMMANDS))
    argv = [command]
    for group in draw(st.lists(st.sampled_from(PLAUSIBLE_ARGV[command]), max_size=5)):
        argv += group
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 4]))):  # faults: stray flags, odd values, overrides
        argv.insert(draw(st.integers(1, len(argv))), draw(ARG))
    records = often(draw, st.lists(RECORD, max_size=3).map(lambda rs: "\n".join(map(json.dumps, rs))), NASTY)
    return argv, draw(recipes()) or "", records


def _cli_inputs(folder: Path, recipe: str, records: str, tiny: Path | None) -> None:
    if tiny is not None:  # a real tiny checkpoint (its own copy: export writes into it by default)
        shutil.copytree(tiny, folder / "tiny")
    (folder / "recipe.yaml").write_text(recipe, encoding="utf-8", errors="surrogatepass")
    (folder / "records.jsonl").write_text(records, encoding="utf-8", errors="surrogatepass")
    (folder / "notes.txt").write_text("not weights\n")
    (folder / "weights.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    (folder / "model").mkdir()
    (folder / "model" / "config.json").write_text('{"model_type": "bert"}')
    (folder / "glue" / "SST-2").mkdir(parents=True)


@pytest.fixture
def no_training(monkeypatch):
    """Training, the demo and t-SNE replaced by stubs that record the resolved config: the CLI is fuzzed
    through parsing and config resolution, and no model is loaded, trained or downloaded."""
    import bertprune.demo
    import bertprune.embeddings
    import bertprune.pretrain
    import bertprune.train

    calls = []

    def run(cfg, **kwargs):
        calls.append(cfg)
        return {"final": {}}

    for module, name in [(bertprune.train, "finetune"), (bertprune.train, "distill"), (bertprune.pretrain, "pretrain")]:
        monkeypatch.setattr(module, name, run)
    monkeypatch.setattr(bertprune.demo, "demo", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(bertprune.embeddings, "tsne_compare", lambda *a, **k: calls.append(a) or {})
    return calls


@settings(FUZZ, max_examples=EXAMPLES["cli"])
@given(cli_cases())
def test_cli(root, no_training, capsys, case):
    from bertprune.cli import main

    argv, recipe, records = case
    with sandbox(root, "cli") as folder:
        _cli_inputs(folder, recipe, records, root / "inputs" / "tiny" if "tiny" in argv else None)
        with pytest.raises(SystemExit) as done:
            main(argv)
        err = capsys.readouterr().err
        assert done.value.code in (0, 2), (argv, done.value.code, err)
        assert "Traceback" not in err
        if done.value.code == 2:
            assert err.strip(), argv
        OUTCOMES[f"cli:exit {done.value.code}"] += 1
