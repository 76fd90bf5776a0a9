"""Data augmentation for task distillation (``distill.augment``): the edits on hand-computed cases, the
copies of a dataset, the config checks, and the copies reaching a real distillation run."""

from __future__ import annotations

import json
import random

import pytest
from datasets import Dataset

from bertprune.cli import run
from bertprune.config import DistillConfig, DistillRunConfig, PretrainConfig, PruneConfig, load_config
from bertprune.data.augment import augment, perturb
from bertprune.errors import BertpruneError

from conftest import cli_fails


class Scripted:
    """A stand-in for random.Random: random() returns the scripted numbers in order; choice() the first item."""

    def __init__(self, numbers):
        self.numbers = list(numbers)

    def random(self):
        return self.numbers.pop(0)

    def choice(self, seq):
        return seq[0]


WORDS = "the cat sat down".split()


def test_no_edit_probability_gives_the_words_back():
    assert perturb(WORDS, random.Random(0), ["z"], 0.0, 0.0, 0.0) == WORDS


def test_each_edit_on_a_hand_computed_case():
    assert perturb(WORDS, random.Random(0), ["z"], 0.0, 0.999, 0.0) == ["z"] * 4  # replace every word
    assert perturb(WORDS, random.Random(0), ["z"], 0.0, 0.0, 0.999) == ["cat", "the", "down", "sat"]  # swap pairs
    assert perturb(["a", "b", "c"], random.Random(0), ["z"], 0.0, 0.0, 0.999) == ["b", "a", "c"]  # the last one stays
    # every word deleted: one original word is kept, never an empty text
    assert perturb(WORDS, Scripted([0.0] * 4), ["z"], 0.5, 0.0, 0.0) == ["the"]


def test_the_order_of_the_draws():
    # per word: the delete draw, then (if kept) the replace draw; then one swap draw per position
    draws = [0.9, 0.9,   # "the": kept, not replaced
             0.1,        # "cat": deleted
             0.9, 0.1,   # "sat": replaced by vocab[0] = "z"
             0.9, 0.9,   # "down": kept
             0.9,        # swap draw at "the" (no)
             0.1]        # swap draw at "z" (yes): ["the", "down", "z"]
    assert perturb(WORDS, Scripted(draws), ["z"], 0.5, 0.5, 0.5) == ["the", "down", "z"]


def toy(pair: bool) -> Dataset:
    rows = {"text_a": ["a good film", "bad acting all along", "fine"], "label": [1, 0, 1]}
    if pair:
        rows["text_b"] = ["one two three", "four five", "six seven eight nine"]
    return Dataset.from_dict(rows)


@pytest.mark.parametrize("pair", [False, True])
def test_copies_follow_the_originals_with_their_labels(pair):
    ds = toy(pair)
    out = augment(ds, 2, seed=1, delete=0.2, replace=0.2, swap=0.2)
    assert len(out) == 9 and out.column_names == ds.column_names
    assert out.select(range(3)).to_dict() == ds.to_dict()  # the originals first, untouched
    assert list(out["label"]) == [1, 0, 1] * 3
    words = {w for c in ds.column_names if c != "label" for t in ds[c] for w in t.split()}
    for c in [c for c in ds.column_names if c != "label"]:
        assert all(t and set(t.split()) <= words for t in list(out[c]))  # never empty, words of the training texts only
    edited = [c for c in ds.column_names if c != "label" and list(out[c])[3:] != list(ds[c]) * 2]
    assert edited == [c for c in ds.column_names if c != "label"]  # both texts of a pair are edited


def test_copies_are_seeded():
    ds = toy(True)
    a, b = augment(ds, 3, 7, 0.2, 0.2, 0.2), augment(ds, 3, 7, 0.2, 0.2, 0.2)
    assert a.to_dict() == b.to_dict()
    assert augment(ds, 3, 8, 0.2, 0.2, 0.2).to_dict() != a.to_dict()
    assert augment(ds, 0, 7, 0.2, 0.2, 0.2) is ds


def test_a_single_sentence_task_keeps_its_empty_second_text():
    ds = Dataset.from_dict({"text_a": ["x y z", "p q"], "text_b": [None, None], "label": [0, 1]})
    assert list(augment(ds, 1, 0, 0.3, 0.3, 0.3)["text_b"]) == [None] * 4


def config_with(*overrides, schema=DistillRunConfig):
    return load_config(None, ["distill.teacher=t", *overrides], schema=schema)


def test_config_checks():
    assert config_with("distill.augment.copies=2").distill.augment.copies == 2
    with pytest.raises(BertpruneError, match="no gold label"):
        config_with("distill.augment.copies=2", "distill.hardness=0.5")
    with pytest.raises(BertpruneError, match="SQuAD"):
        config_with("distill.augment.copies=1", "data.task=squad")
    with pytest.raises(BertpruneError, match="copies >= 0"):
        config_with("distill.augment.copies=-1")
    with pytest.raises(BertpruneError, match="delete, replace, swap"):
        config_with("distill.augment.copies=1", "distill.augment.swap=1.0")
    with pytest.raises(BertpruneError, match="plain text"):
        load_config(None, ["objective=distill", "distill.augment.copies=1"], schema=PretrainConfig)


def test_the_trainer_integration_refuses_augment():
    from bertprune.hf_trainer import method_from_config

    distill = DistillConfig(hardness=1.0)
    distill.augment.copies = 1
    with pytest.raises(BertpruneError, match="the dataset is yours"):
        method_from_config(PruneConfig(method="gmp", sparsity=0.5), distill=distill, teacher="t")


def test_a_distillation_run_trains_on_the_copies(run_args, tiny_models, tiny_glue, tmp_path, capsys):
    assert run(run_args("teacher", "bert", "sst2", "--max-steps", "2")) == 0
    base = ["distill", "--task", "sst2", "--teacher", str(tmp_path / "teacher"), "--student", str(tiny_models["bert"]),
            "--glue-dir", str(tiny_glue), "--sparsity", "0.5", "--epochs", "1", "--batch-size", "16", "--quiet",
            "data.max_length=32", "train.log_every=1", "distill.hardness=1"]

    def steps(out: str, *extra: str) -> int:
        assert run([*base, "-o", str(tmp_path / out), *extra]) == 0
        log = [json.loads(x) for x in (tmp_path / out / "metrics.jsonl").read_text().splitlines()]
        return max(r["step"] for r in log if "loss" in r)

    plain, tripled = steps("d0"), steps("d2", "distill.augment.copies=2")
    assert (plain, tripled) == (6, 18)  # 96 training rows, then 3 × 96, in batches of 16
    cli_fails([*base, "-o", str(tmp_path / "bad"), "distill.augment.copies=1", "distill.hardness=0.5"], capsys,
              "no gold label", "distill.hardness=1")
    assert not (tmp_path / "bad").exists()  # the error came before the run folder
