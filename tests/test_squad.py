"""SQuAD v1.1: official metrics, windows, post-processing, the CLI."""

import json
import time

import numpy as np
import pytest

from bertprune.cli import run
from bertprune.data.squad import eval_features, read_squad, train_features
from bertprune.errors import BertpruneError
from bertprune.squad_metrics import best_answers, exact_match_score, f1_score, normalize_answer, squad_metrics

from bertprune.testing import FILLER, write_tiny_squad, write_tokenizer


# --- metrics, worked by hand --------------------------------------------------------------------
def test_normalization_edge_cases():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear & the plum.") == "apple pear plum"
    assert normalize_answer("Theater") == "theater"  # "the" only as a word
    assert normalize_answer("  U.S.A. ") == "usa"
    assert normalize_answer("A") == ""


def test_exact_match_and_f1_by_hand():
    assert exact_match_score("the Eiffel tower", "Eiffel Tower.") == 1.0
    assert exact_match_score("Eiffel", "Eiffel Tower") == 0.0
    # pred "eiffel", gold "eiffel tower": precision 1, recall 1/2 → F1 2/3
    assert f1_score("Eiffel", "Eiffel Tower") == pytest.approx(2 / 3)
    # pred "big red dog", gold "red dog house": overlap 2, P = R = 2/3
    assert f1_score("big red dog", "red dog house") == pytest.approx(2 / 3)
    assert f1_score("", "something") == 0.0 and f1_score("the", "a") == 0.0  # both normalise to nothing
    # duplicates count once per occurrence: pred "the cat cat", gold "cat" → P 1/2, R 1 → 2/3
    assert f1_score("the cat cat", "cat") == pytest.approx(2 / 3)


def test_several_gold_answers_take_the_maximum():
    golds = {"q1": ["Denver Broncos", "The Broncos"], "q2": ["1858"], "q3": ["Saint Bernadette Soubirous", "Bernadette"]}
    preds = {"q1": "broncos", "q2": "in 1858", "q3": "Bernadette"}
    m = squad_metrics(preds, golds)
    # q1: EM max(0, 1 ["the broncos" → "broncos"]) = 1; q2: EM 0, F1 2/3; q3: EM 1
    assert m["exact_match"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert squad_metrics({}, golds) == {"exact_match": 0.0, "f1": 0.0}  # missing predictions score 0


# --- windows ------------------------------------------------------------------------------------
def _long_example(n_words=300, seed=0, every=23):
    rng = np.random.default_rng(seed)
    words = [FILLER[i] for i in rng.integers(0, len(FILLER), n_words)]
    context = " ".join(words)
    answers, qids = [], []
    pos = 0
    for w_index, w in enumerate(words):
        if w_index % every == 5 % every and w_index + 2 < n_words:
            text = " ".join(words[w_index : w_index + 3])
            answers.append({"text": [text], "answer_start": [pos]})
            qids.append(f"q{w_index}")
        pos += len(w) + 1
    return context, answers, qids


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    tok = write_tokenizer(tmp_path_factory.mktemp("tok"))
    assert tok.is_fast
    return tok


def test_windows_cover_every_gold_span_and_label_it_exactly(tokenizer):
    from datasets import Dataset

    context, answers, qids = _long_example()
    ds = Dataset.from_dict({"id": qids, "title": ["t"] * len(qids), "context": [context] * len(qids),
                            "question": ["what is it ?"] * len(qids), "answers": answers})
    max_length, stride = 48, 16
    feats = train_features(ds, tokenizer, max_length, stride)
    ev = eval_features(ds, tokenizer, max_length, stride)
    per_example = {}
    for i, eid in enumerate(ev["example_id"]):
        per_example.setdefault(eid, []).append(i)
    n_windows = len(per_example[qids[0]])
    assert n_windows > 3 and all(len(v) == n_windows for v in per_example.values())
    # every context token is in some window; consecutive windows overlap by exactly `stride` tokens
    offs = [[o for o in ev["offset_mapping"][i] if o is not None] for i in per_example[qids[0]]]
    for a, b in zip(offs, offs[1:]):
        assert len([o for o in a if o in b]) == stride
    assert offs[0][0][0] == 0 and offs[-1][-1][1] == len(context)
    # each gold span is labelled in at least one window, with exactly its characters; elsewhere [CLS]
    labelled = {q: 0 for q in qids}
    for f in range(len(feats)):
        eid = ev["example_id"][f]
        s, e = feats["start_positions"][f], feats["end_positions"][f]
        if s == 0 and e == 0:
            continue
        off = ev["offset_mapping"][f]
        gold = answers[qids.index(eid)]
        assert context[off[s][0] : off[e][1]] == gold["text"][0]
        labelled[eid] += 1
    assert all(n >= 1 for n in labelled.values())


def test_answer_cut_by_a_window_boundary(tokenizer):
    from datasets import Dataset

    context, answers, qids = _long_example(n_words=120, every=1)  # an answer at every word: some straddle edges
    ds = Dataset.from_dict({"id": qids, "title": ["t"] * len(qids), "context": [context] * len(qids),
                            "question": ["q"] * len(qids), "answers": answers})
    feats = train_features(ds, tokenizer, 40, 12)
    ev = eval_features(ds, tokenizer, 40, 12)
    cut_somewhere = False
    for f in range(len(feats)):
        eid = ev["example_id"][f]
        gold = answers[qids.index(eid)]
        a0, a1 = gold["answer_start"][0], gold["answer_start"][0] + len(gold["text"][0])
        spans = [o for o in ev["offset_mapping"][f] if o is not None]
        inside = spans[0][0] <= a0 and a1 <= spans[-1][1]
        partly = not inside and spans[0][0] < a1 and a0 < spans[-1][1]
        if partly:  # straddles the window's edge: labelled as no answer here
            cut_somewhere = True
            assert feats["start_positions"][f] == 0 and feats["end_positions"][f] == 0
        elif inside:
            assert feats["start_positions"][f] > 0
    assert cut_somewhere


def test_post_processing_recovers_a_planted_span(tokenizer):
    from datasets import Dataset

    context, answers, qids = _long_example(n_words=150)
    ds = Dataset.from_dict({"id": qids[:3], "title": ["t"] * 3, "context": [context] * 3, "question": ["q"] * 3,
                            "answers": answers[:3]})
    ev = eval_features(ds, tokenizer, 40, 12)
    rng = np.random.default_rng(0)
    n = len(ev)
    start, end = rng.normal(0, 1, (n, 40)), rng.normal(0, 1, (n, 40))
    feats = train_features(ds, tokenizer, 40, 12)
    planted = {}
    for f in range(n):
        s, e = feats["start_positions"][f], feats["end_positions"][f]
        if s and ev["example_id"][f] not in planted:
            start[f, s] += 10
            end[f, e] += 10
            planted[ev["example_id"][f]] = f
    start[:, 1] = end[:, 1] = 50  # tempting but invalid: token 1 belongs to the question
    contexts = dict(zip(qids[:3], [context] * 3))
    preds = best_answers(qids[:3], contexts, ev["example_id"], ev["offset_mapping"], start, end)
    assert set(preds) == set(qids[:3])  # exactly one answer per question
    for q, gold in zip(qids[:3], answers[:3]):
        assert preds[q] == gold["text"][0]
    # the planted spans have 3 tokens: with a 2-token limit they cannot be chosen
    short = best_answers(qids[:3], contexts, ev["example_id"], ev["offset_mapping"], start, end, max_answer_length=2)
    assert all(short[q] != gold["text"][0] for q, gold in zip(qids[:3], answers[:3]))


def test_read_squad_errors(tmp_path):
    with pytest.raises(BertpruneError, match="SQuAD file not found"):
        read_squad(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BertpruneError, match="not JSON"):
        read_squad(bad)
    bad.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "abc"}]}]}))
    with pytest.raises(BertpruneError, match="not in the SQuAD v1.1 layout"):
        read_squad(bad)
    bad.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "the cat sat", "qas": [
        {"id": "1", "question": "who?", "answers": [{"text": "dog", "answer_start": 4}]}]}]}]}))
    with pytest.raises(BertpruneError, match="is not at character 4"):
        read_squad(bad)


# --- end to end ---------------------------------------------------------------------------------
def test_squad_cli_end_to_end_with_pruning_and_distillation(tiny_models, tmp_path):
    start = time.time()
    squad = write_tiny_squad(tmp_path / "squad")
    common = ["--squad-dir", str(squad), "--quiet", "--batch-size", "16", "--lr", "3e-3", "data.squad_train_file=train.json",
              "data.squad_dev_file=dev.json", "data.max_length=24", "data.doc_stride=8", "train.log_every=2"]
    assert run(["finetune", "--task", "squad", "--model", str(tiny_models["bert"]), "-o", str(tmp_path / "dense"),
                "--epochs", "3"] + common) == 0
    assert run(["finetune", "--task", "squad", "--model", str(tiny_models["bert"]), "-o", str(tmp_path / "gmp"),
                "--method", "gmp", "--sparsity", "0.8", "--epochs", "3"] + common) == 0
    assert run(["distill", "--task", "squad", "--teacher", str(tmp_path / "dense"), "--student", str(tiny_models["bert"]),
                "-o", str(tmp_path / "dist"), "--sparsity", "0.8", "--epochs", "3"] + common) == 0
    mask = tmp_path / "gmp" / "final" / "mask.safetensors"  # a universal mask, kept fixed on SQuAD
    assert run(["finetune", "--task", "squad", "--model", str(tiny_models["bert"]), "-o", str(tmp_path / "fixed"),
                "--mask", str(mask), "--epochs", "1"] + common) == 0
    from bertprune.report import sparsity_report

    assert sparsity_report(tmp_path / "fixed")["universal_mask"]["mask_equal"] is True
    for name in ("dense", "gmp", "dist", "fixed"):
        results = json.loads((tmp_path / name / "results.json").read_text())
        assert set(results["final"]["dev"]) == {"exact_match", "f1"} and results["main_metric"] == "f1"
        preds = json.loads((tmp_path / name / "final" / "predictions.json").read_text())
        assert set(preds) == {f"dev.json{i}" for i in range(40)}
    assert json.loads((tmp_path / "gmp" / "results.json").read_text())["achieved_sparsity"] == pytest.approx(0.8, abs=2e-3)
    assert json.loads((tmp_path / "dist" / "results.json").read_text())["method"] == "distill"
    assert time.time() - start < 60


def test_evaluation_in_length_order_gives_the_predictions_of_feature_order(tiny_models, tmp_path):
    """The dev windows run longest first (less padding); the logits must go back to their own features:
    the predictions equal those of every window run alone, unpadded, in feature order."""
    import torch

    from bertprune.config import load_config
    from bertprune.tasks.squad import SquadTask
    from bertprune.train import make_accelerator

    rng = np.random.default_rng(1)
    folder = tmp_path / "squad"
    folder.mkdir()
    for name in ("train.json", "dev.json"):
        paragraphs = []
        for i in range(12):  # contexts of 4..60 words: windows of very different lengths, some examples with several
            words = [FILLER[j] for j in rng.integers(0, len(FILLER), int(rng.integers(4, 60)))]
            paragraphs.append({"context": " ".join(words), "qas": [{"id": f"{name}{i}", "question": "which ?",
                               "answers": [{"text": words[0], "answer_start": 0}]}]})
        (folder / name).write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    cfg = load_config(None, ["data.task=squad", f"data.squad_dir={folder}", "data.squad_train_file=train.json",
                             "data.squad_dev_file=dev.json", f"model.name={tiny_models['bert']}", "data.max_length=32",
                             "data.doc_stride=8", "train.eval_batch_size=4"])
    task = SquadTask(cfg)
    accelerator = make_accelerator(cfg)
    built = task.build(accelerator)
    lengths = [len(x) for x in built.eval_sets["dev"]["input_ids"]]
    assert lengths == sorted(lengths, reverse=True) and len(set(lengths)) > 3 and len(lengths) > len(task.dev["ids"])
    loaders = {"dev": torch.utils.data.DataLoader(built.eval_sets["dev"], batch_size=4, collate_fn=built.collate)}
    model = built.model.eval()
    got = task.evaluate(model, loaders, accelerator)

    by_feature = built.eval_sets["dev"].select(task.dev["restore"])  # back in feature order
    starts, ends = np.full((len(by_feature), 32), -1e4, np.float32), np.full((len(by_feature), 32), -1e4, np.float32)
    with torch.no_grad():
        for f, feat in enumerate(by_feature):
            out = model(**{k: torch.tensor([v]) for k, v in feat.items()})
            starts[f, : len(feat["input_ids"])] = out.start_logits[0].numpy()
            ends[f, : len(feat["input_ids"])] = out.end_logits[0].numpy()
    d = task.dev
    expected = best_answers(d["ids"], d["contexts"], d["feature_ids"], d["offsets"], starts, ends)
    assert task.predictions == expected
    assert got["dev"] == squad_metrics(expected, d["golds"])
