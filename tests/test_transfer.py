"""A transfer set for task distillation (``distill.transfer``): sentence splitting on hand-computed cases,
the rows for single-sentence and pair tasks, the config checks, and the rows reaching a real distillation run."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

from bertprune.cli import run
from bertprune.config import DistillConfig, DistillRunConfig, PretrainConfig, PruneConfig, load_config
from bertprune.data.transfer import read_sentences, split_sentences, transfer_rows, with_transfer_set
from bertprune.errors import BertpruneError

from conftest import cli_fails


def test_sentences_of_a_line_on_a_hand_computed_case():
    line = 'The cat sat on the mat. "Where is it?" she asked him twice! Then e.g. it ran off home. Too short. ok'
    assert split_sentences(line) == ["The cat sat on the mat.", '"Where is it?" she asked him twice!',
                                     "Then e.g. it ran off home."]  # "Too short. ok": under 4 words each
    assert split_sentences(" = = Early life = = ") == []  # a wikitext heading
    assert split_sentences(" ".join(["word"] * 41) + ".") == []  # over 40 words
    assert split_sentences("no capital after the stop. so one sentence here") == ["no capital after the stop. so one sentence here"]


DOCS = [["a1 w w w", "a2 w w w", "a3 w w w"], ["b1 x x x x x x"], ["c1 y y y", "c2 y y y"]]


def test_single_sentence_rows_are_distinct_sentences_and_seeded():
    rows = transfer_rows(DOCS, 6, pair=False, seed=3, label=0)
    assert set(rows) == {"text_a", "label"} and rows["label"] == [0] * 6
    assert sorted(rows["text_a"]) == sorted(s for d in DOCS for s in d)  # without replacement: all six
    assert transfer_rows(DOCS, 6, False, 3, 0) == rows
    assert transfer_rows(DOCS, 6, False, 4, 0) != rows
    with pytest.raises(BertpruneError, match="only 6 sentences"):
        transfer_rows(DOCS, 7, False, 3, 0)


def test_pair_rows_take_the_next_sentence_a_span_or_any_sentence():
    rows = transfer_rows(DOCS, 6, pair=True, seed=0, label=0.0)
    everything = [s for d in DOCS for s in d]
    kinds = set()
    for a, b in zip(rows["text_a"], rows["text_b"]):
        assert a in everything
        doc = next(d for d in DOCS if a in d)
        words = a.split()
        if b not in everything:  # a span of A's words: contiguous, at least half, never all
            assert len(words) // 2 <= len(b.split()) < len(words) and f" {b} " in f" {a} "
            kinds.add("span")
        elif doc.index(a) + 1 < len(doc) and b == doc[doc.index(a) + 1]:
            kinds.add("next")
        else:
            kinds.add("any")
    assert kinds == {"span", "next", "any"}  # seed 0 draws all three kinds
    many = transfer_rows([[f"s{i} w w w w w w w" for i in range(300)]], 300, True, 1, 0)
    spans = sum(b not in set(many["text_a"]) for b in many["text_b"])
    assert 70 < spans < 130  # a third of the pairs, within sampling noise


def test_rows_join_the_training_set_with_its_columns_and_label_type(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("One two three four. Five six seven eight!\n= = Head = =\nNine ten eleven twelve.\n")
    assert read_sentences(str(text)) == [["One two three four.", "Five six seven eight!"], ["Nine ten eleven twelve."]]
    assert read_sentences(str(tmp_path)) == read_sentences(str(text))  # a folder of .txt files
    single = Dataset.from_dict({"text_a": ["x y", "p q"], "label": [1, 0]})
    out = with_transfer_set(single, str(text), 2, seed=0)
    assert out.column_names == ["text_a", "label"] and len(out) == 4 and list(out["label"]) == [1, 0, 0, 0]
    assert set(out["text_a"][2:]) <= {"One two three four.", "Five six seven eight!", "Nine ten eleven twelve."}
    pair = Dataset.from_dict({"text_a": ["x y"], "text_b": ["z w"], "label": [3.5]})
    out = with_transfer_set(pair, str(text), 3, seed=0)
    assert len(out) == 4 and all(b for b in out["text_b"]) and list(out["label"]) == [3.5, 0.0, 0.0, 0.0]
    assert with_transfer_set(pair, str(text), 0, seed=0) is pair
    with pytest.raises(BertpruneError, match="not found"):
        with_transfer_set(pair, str(tmp_path / "none.txt"), 1, seed=0)


def config_with(*overrides, schema=DistillRunConfig):
    return load_config(None, ["distill.teacher=t", *overrides], schema=schema)


def test_config_checks():
    cfg = config_with("distill.transfer.text=some.txt", "distill.transfer.examples=5")
    assert (cfg.distill.transfer.text, cfg.distill.transfer.examples) == ("some.txt", 5)
    with pytest.raises(BertpruneError, match="needs distill.transfer.text"):
        config_with("distill.transfer.examples=5")
    with pytest.raises(BertpruneError, match="no gold label"):
        config_with("distill.transfer.text=t.txt", "distill.transfer.examples=5", "distill.hardness=0.5")
    with pytest.raises(BertpruneError, match=">= 0"):
        config_with("distill.transfer.examples=-1")
    with pytest.raises(BertpruneError, match="SQuAD"):
        config_with("distill.transfer.text=t.txt", "distill.transfer.examples=5", "data.task=squad")
    with pytest.raises(BertpruneError, match="pre-training stage"):
        load_config(None, ["objective=distill", "distill.transfer.examples=1"], schema=PretrainConfig)


def test_the_trainer_integration_refuses_a_transfer_set():
    from bertprune.hf_trainer import method_from_config

    distill = DistillConfig(hardness=1.0)
    distill.transfer.text, distill.transfer.examples = "t.txt", 4
    with pytest.raises(BertpruneError, match="the dataset is yours"):
        method_from_config(PruneConfig(method="gmp", sparsity=0.5), distill=distill, teacher="t")


def test_a_distillation_run_trains_on_the_transfer_set(run_args, tiny_models, tiny_glue, tmp_path, capsys):
    assert run(run_args("teacher", "bert", "rte", "--max-steps", "2")) == 0
    text = tmp_path / "text"
    text.mkdir()
    (text / "a.txt").write_text("\n".join(f"Sentence number {i} has some words. And then another one {i} follows."
                                          for i in range(40)))
    base = ["distill", "--task", "rte", "--teacher", str(tmp_path / "teacher"), "--student", str(tiny_models["bert"]),
            "--glue-dir", str(tiny_glue), "--sparsity", "0.5", "--epochs", "1", "--batch-size", "16", "--quiet",
            "data.max_length=32", "train.log_every=1", "distill.hardness=1", f"distill.transfer.text={text}"]

    def steps(out: str, *extra: str) -> int:
        assert run([*base, "-o", str(tmp_path / out), *extra]) == 0
        log = [json.loads(x) for x in (tmp_path / out / "metrics.jsonl").read_text().splitlines()]
        return max(r["step"] for r in log if "loss" in r)

    plain, more = steps("d0"), steps("d64", "distill.transfer.examples=64")
    assert more - plain == 4  # 64 more training pairs, in batches of 16
    cli_fails([*base, "-o", str(tmp_path / "bad"), "distill.transfer.examples=81"], capsys, "only 80 sentences")
    assert not (tmp_path / "bad").exists()  # the error came before the run folder
