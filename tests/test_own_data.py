"""Your own data: text_classification / text_regression over CSV, TSV, JSON and JSON-lines files."""

import csv
import json

import pytest

from bertprune.cli import run
from bertprune.config import DataConfig
from bertprune.data.files import load_files
from conftest import cli_fails


def _rows(tiny_glue, folder, split):
    with open(tiny_glue / folder / f"{split}.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _write(path, rows, columns):
    """``rows`` (dicts) as a .csv, .tsv, .json (one array) or .jsonl file with ``columns``."""
    rows = [{c: r[c] for c in columns} for r in rows]
    if path.suffix in (".csv", ".tsv"):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, columns, delimiter="\t" if path.suffix == ".tsv" else ",",
                               quoting=csv.QUOTE_NONE if path.suffix == ".tsv" else csv.QUOTE_MINIMAL)
            w.writeheader()
            w.writerows(rows)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


NAMES = {"0": "negative", "1": "positive"}


@pytest.fixture
def sst_files(tiny_glue, tmp_path):
    """SST-2 with string labels (negative/positive): (train, dev) in a format."""

    def make(ext, names=True):
        out = []
        for split in ("train", "dev"):
            rows = [{**r, "label": NAMES[r["label"]] if names else int(r["label"])} for r in _rows(tiny_glue, "SST-2", split)]
            out.append(_write(tmp_path / f"sst-{split}{ext}", rows, ["sentence", "label"]))
        return out

    return make


@pytest.fixture
def sts_files(tiny_glue, tmp_path):
    def make(ext):
        return [_write(tmp_path / f"sts-{s}{ext}", [{**r, "score": float(r["score"])} for r in _rows(tiny_glue, "STS-B", s)],
                       ["sentence1", "sentence2", "score"]) for s in ("train", "dev")]

    return make


def _own(args_of, out, task, train, dev, columns, label, *extra):
    args = args_of(out, "bert", task, f"data.train_file={train}", f"data.validation_file={dev}",
                   f"data.text_columns=[{','.join(columns)}]", f"data.label_column={label}", *extra)
    return args


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".json", ".jsonl"])
def test_formats_parse(ext, sst_files, sts_files, tiny_glue):
    train, dev = sst_files(ext)
    data = load_files(DataConfig(task="text_classification", train_file=str(train), validation_file=str(dev),
                                 text_columns=["sentence"]), "text_classification")
    gold = _rows(tiny_glue, "SST-2", "train")
    assert data.spec.labels == ("negative", "positive") and data.spec.num_labels == 2 and not data.spec.is_pair
    assert data.train["text_a"] == [r["sentence"] for r in gold]
    assert data.train["label"] == [int(r["label"]) for r in gold] and "text_b" not in data.train.column_names
    assert len(data.eval["dev"]) == 32
    train, dev = sts_files(ext)  # two text columns, numeric labels
    data = load_files(DataConfig(task="text_regression", train_file=str(train), validation_file=str(dev),
                                 text_columns=["sentence1", "sentence2"], label_column="score"), "text_regression")
    gold = _rows(tiny_glue, "STS-B", "dev")
    assert data.spec.is_pair and data.spec.is_regression and data.spec.num_labels == 1
    assert data.eval["dev"]["text_b"] == [r["sentence2"] for r in gold]
    assert data.eval["dev"]["label"] == pytest.approx([float(r["score"]) for r in gold])


def test_dataset_folder_as_hub_dataset(sst_files, tmp_path):
    """data.hub_dataset goes through datasets.load_dataset(NAME): a local folder of split files stands in offline."""
    folder = tmp_path / "mydata"
    folder.mkdir()
    train, dev = sst_files(".csv")
    train.rename(folder / "train.csv")
    dev.rename(folder / "validation.csv")
    data = load_files(DataConfig(task="text_classification", hub_dataset=str(folder), text_columns=["sentence"]),
                      "text_classification")
    assert data.spec.labels == ("negative", "positive") and len(data.train) == 96 and len(data.eval["dev"]) == 32


def test_numeric_class_labels_sort_as_numbers(tmp_path):
    rows = [{"text": f"t{i}", "label": v} for i, v in enumerate([10, 2, 1, 2, 10, 1])]
    train = _write(tmp_path / "t.jsonl", rows, ["text", "label"])
    data = load_files(DataConfig(task="text_classification", train_file=str(train), validation_file=str(train)),
                      "text_classification")
    assert data.spec.labels == ("1", "2", "10") and data.train["label"] == [2, 1, 0, 1, 2, 0]


def test_classification_end_to_end(run_args, sst_files, tmp_path, capsys):
    from transformers import AutoConfig

    train, dev = sst_files(".csv")
    assert run(_own(run_args, "cls", "text_classification", train, dev, ["sentence"], "label",
                    "--epochs", "8", "--lr", "3e-3")) == 0
    results = json.loads((tmp_path / "cls" / "results.json").read_text())
    assert results["task"] == "text_classification" and results["main_metric"] == "accuracy"
    assert set(results["final"]["dev"]) == {"accuracy", "f1_macro"}
    assert results["final"]["dev"]["accuracy"] > 0.7  # the tiny files hold a learnable signal
    config = AutoConfig.from_pretrained(tmp_path / "cls" / "final")
    assert config.id2label == {0: "negative", 1: "positive"} and config.label2id == {"negative": 0, "positive": 1}
    # a sparse student distilled from it on the same file, then report and export
    args = ["distill", "--task", "text_classification", "--teacher", str(tmp_path / "cls"), "--student",
            str(tmp_path / "cls" / "final"), "-o", str(tmp_path / "d"), "--sparsity", "0.5", "--epochs", "1",
            "--batch-size", "16", "--quiet", "data.max_length=32", f"data.train_file={train}",
            f"data.validation_file={dev}", "data.text_columns=[sentence]"]
    assert run(args) == 0
    results = json.loads((tmp_path / "d" / "results.json").read_text())
    assert results["task"] == "text_classification" and results["achieved_sparsity"] == pytest.approx(0.5, abs=2e-3)
    assert AutoConfig.from_pretrained(tmp_path / "d" / "final").id2label == {0: "negative", 1: "positive"}
    assert run(["report", str(tmp_path / "d"), "--json"]) == 0
    assert run(["export", str(tmp_path / "d"), "--format", "sparse"]) == 0
    ints, ints_dev = sst_files(".jsonl", names=False)  # classes 0/1: not the teacher's negative/positive
    bad = [a.replace(str(train), str(ints)).replace(str(dev), str(ints_dev)) for a in args]
    bad[bad.index("-o") + 1] = str(tmp_path / "d2")
    _fails(bad, capsys, "predicts the classes ['negative', 'positive']", "are ['0', '1']")
    assert not (tmp_path / "d2").exists()


@pytest.mark.parametrize("method", ["oneshot", "gradual", "rpp"])
def test_pruning_methods(method, run_args, sst_files, tmp_path):
    train, dev = sst_files(".jsonl", names=False)  # integer labels
    args = _own(run_args, method, "text_classification", train, dev, ["sentence"], "label",
                f"prune.method={method}", "prune.sparsity=0.5", "--max-steps", "4")
    assert run(args) == 0
    results = json.loads((tmp_path / method / "results.json").read_text())
    assert results["achieved_sparsity"] == pytest.approx(0.5, abs=0.1)
    assert results["final"]["dev"]["f1_macro"] >= 0


def test_regression_end_to_end(run_args, sts_files, tmp_path):
    train, dev = sts_files(".tsv")
    args = _own(run_args, "reg", "text_regression", train, dev, ["sentence1", "sentence2"], "score",
                "prune.method=gmp", "prune.sparsity=0.5", "--epochs", "8", "--lr", "3e-3")
    assert run(args) == 0
    results = json.loads((tmp_path / "reg" / "results.json").read_text())
    assert results["task"] == "text_regression" and set(results["final"]["dev"]) == {"pearson", "spearman"}
    assert results["final"]["dev"]["pearson"] > 0.3


_fails = cli_fails


def test_bad_input(run_args, sst_files, sts_files, tmp_path, capsys):
    train, dev = sst_files(".csv")

    def fails(task, tr, dv, columns, label, *fragments):
        _fails(_own(run_args, "x", task, tr, dv, columns, label), capsys, *fragments)
        assert not (tmp_path / "x").exists()

    fails("text_classification", train, dev, ["text"], "label", "no column(s) ['text']", "sentence")
    fails("text_classification", train, dev, ["sentence"], "stars", "no column(s) ['stars']")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    fails("text_classification", empty, dev, ["sentence"], "label", "empty.csv is empty")
    header = tmp_path / "header.csv"
    header.write_text("sentence,label\n")
    fails("text_classification", header, dev, ["sentence"], "label", "header.csv is empty")
    extra = _write(tmp_path / "extra.csv", [{"sentence": "a b", "label": "neutral"}], ["sentence", "label"])
    fails("text_classification", train, extra, ["sentence"], "label", "label(s) ['neutral'] never occur in the training file")
    fails("text_regression", train, dev, ["sentence"], "label", "row 1: label 'positive'", "is not a number")
    mixed = _write(tmp_path / "mixed.jsonl", [{"sentence": "a", "label": 1}, {"sentence": "b", "label": "pos"}],
                   ["sentence", "label"])
    fails("text_classification", mixed, mixed, ["sentence"], "label", "mixes label types")
    ints, _ = sst_files(".jsonl", names=False)
    strings, _ = sst_files(".json")
    fails("text_classification", ints, strings, ["sentence"], "label", "labels are numbers", "but strings")
    odd = tmp_path / "train.parquet"
    odd.write_text("x")
    fails("text_classification", odd, dev, ["sentence"], "label", "unknown file extension '.parquet'")
    fails("text_classification", tmp_path / "none.csv", dev, ["sentence"], "label", "none.csv: file not found")
    fails("text_classification", train, dev, ["sentence", "sentence", "label"], "x", "one text column or two")
    _fails(run_args("x", "bert", "text_classification"), capsys, "needs your data")


@pytest.mark.slow
def test_two_processes(run_args, sst_files, tmp_path):
    """Under torchrun (Accelerate, two CPU processes): every rank reads the file and labels the same ids."""
    import os
    import subprocess
    import sys

    from transformers import AutoConfig

    train, dev = sst_files(".jsonl")
    args = _own(run_args, "two", "text_classification", train, dev, ["sentence"], "label", "--max-steps", "4")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bertprune", *args]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "two" / "results.json").read_text())
    assert results["processes"] == 2 and results["task"] == "text_classification"
    assert AutoConfig.from_pretrained(tmp_path / "two" / "final").label2id == {"negative": 0, "positive": 1}


def test_hub_class_labels_become_their_names(tmp_path):
    """A hub dataset whose label column is a ClassLabel (as GLUE's on the hub): ids become the class names,
    so id2label says what they mean. A local folder of parquet files (which carry the features) stands in."""
    import datasets

    folder = tmp_path / "hubish"
    folder.mkdir()
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    for split, n in (("train", 12), ("validation", 6)):
        rows = {"text": [f"sentence {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"{split}.parquet"))
    data = load_files(DataConfig(task="text_classification", hub_dataset=str(folder), text_columns=["text"]),
                      "text_classification")
    assert data.spec.labels == ("negative", "positive")
    assert list(data.train["label"][:4]) == [0, 1, 0, 1] and len(data.eval["dev"]) == 6
