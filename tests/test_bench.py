"""``bertprune bench`` on tiny models: every engine timed at every shape, the engine's outputs those of
PyTorch, the user's texts padded per batch, the dev metric under each engine, JSON and Markdown from
the CLI, and bad input refused with one message (exit 2)."""

import json

import pytest
import torch

from bertprune.bench import DENSE, bench, random_batch, read_texts, to_markdown
from bertprune.cli import main, run
from bertprune.errors import BertpruneError
from bertprune.methods import OneShotMagnitude
from bertprune.testing import (
    save_tiny_model,
    tiny_config,
    write_tiny_glue,
    write_tokenizer,
)

FAST = ["--runs", "2", "--warmup", "1"]
ENGINES = [DENSE, "bertprune-fp32", "bertprune-int8"]
TEXTS = "good movie\n\n  the film was very bad and boring  \nfun\na cat sat on the mat in the park\nhappy\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A run folder holding a tiny 80%-sparse (4x1 blocks) BERT classifier in final/, a bare tiny
    encoder, a texts file of uneven lengths (so batches are padded) and tiny GLUE data."""
    from transformers import AutoModelForSequenceClassification

    root = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    config = tiny_config("bert")
    config.num_labels = 2
    classifier = AutoModelForSequenceClassification.from_config(config)
    OneShotMagnitude(0.8, granularity="4x1").prepare(classifier, 1)  # zeros in the weights the engine reads
    classifier.save_pretrained(root / "run" / "final")
    write_tokenizer(root / "run" / "final")
    (root / "run" / "config.yaml").write_text("data:\n  task: sst2\n  max_length: 16\n")  # the run's evaluation length
    (root / "texts.txt").write_text(TEXTS, encoding="utf-8")
    return {"run": root / "run", "encoder": save_tiny_model(root / "encoder", "bert"), "texts": root / "texts.txt",
            "glue": write_tiny_glue(root / "glue"), "root": root}


def test_bench_times_each_engine_at_each_shape_with_the_dense_outputs(models):
    result = bench(models["run"], [1, 2], [8, 16], texts=models["texts"], runs=2, warmup=1, threads=1, force=True,
                   task="sst2", glue_dir=str(models["glue"]))
    assert result["model"].endswith("final") and result["output"] == "logits" and result["threads"] == 1
    shapes = [(r["input"], r["batch"], r["tokens"]) for r in result["rows"] if r["engine"] == DENSE]
    assert shapes == [("random", 1, 8), ("random", 2, 8), ("random", 1, 16), ("random", 2, 16),
                      ("texts", 1, 11), ("texts", 2, 11)]  # texts: in file order, each batch padded to its longest
    assert [r["engine"] for r in result["rows"]] == ENGINES * len(shapes)
    for r in result["rows"]:
        assert 0 < r["median_ms"] <= r["p90_ms"] and r["throughput"] > 0 and r["speedup"] > 0
        if r["engine"] == DENSE:
            assert r["speedup"] == 1.0 and r["max_abs_diff"] == 0.0
        elif r["engine"] == "bertprune-fp32":
            assert r["max_abs_diff"] < 1e-4
    assert all(c["bound"] for c in result["engines"].values())
    texts = [r for r in result["rows"] if r["input"] == "texts"]
    assert all(r["texts"] == 5 for r in texts) and texts[0]["mean_tokens"] == pytest.approx(6.0)  # 4,9,3,11,3 tokens
    metric = result["metric"]
    assert metric["task"] == "sst2" and metric["max_length"] == 16  # the run's data.max_length
    dev = metric["sets"]["dev"]
    assert dev["examples"] == 32 and set(dev) == {"examples", *ENGINES}
    assert dev["bertprune-fp32"] == dev[DENSE]  # same logits to 1e-9: same predictions
    table = to_markdown(result)
    assert table.count("\n| ") == 1 + len(result["rows"]) + 2  # header and rows; the metric's header and its one row
    assert "| sst2 dev" in table and "| dev accuracy (32 examples) |" in table


def test_bench_on_a_bare_encoder_compares_the_last_hidden_state(models):
    result = bench(models["encoder"], [2], None, texts=models["texts"], int8=False, runs=2, warmup=1, force=True)
    assert result["output"] == "last_hidden_state" and result["metric"] is None
    assert [(r["engine"], r["input"]) for r in result["rows"]] == [(DENSE, "texts"), ("bertprune-fp32", "texts")]
    assert 0 < result["rows"][1]["max_abs_diff"] < 1e-4  # hidden states (not tiny logits), padding positions left out
    assert "bertprune-int8" not in result["engines"]


def test_bench_zero_shot_stsb_of_a_sparse_bare_encoder_under_each_engine(models, tmp_path):
    """A pruned sentence encoder (no task head): zero-shot STS-B under PyTorch and under the engine agree."""
    from transformers import AutoModel

    from bertprune.sentence import stsb_zeroshot
    from bertprune.testing import write_tokenizer

    torch.manual_seed(0)
    encoder = AutoModel.from_config(tiny_config("bert"))
    OneShotMagnitude(0.8, granularity="4x1").prepare(encoder, 1)
    encoder.save_pretrained(tmp_path / "enc")
    write_tokenizer(tmp_path / "enc")
    result = bench(tmp_path / "enc", [4], [8], int8=False, runs=2, warmup=1, force=True, task="stsb_zeroshot",
                   glue_dir=str(models["glue"]))
    dev = result["metric"]["sets"]["dev"]
    assert result["metric"]["task"] == "stsb_zeroshot" and set(dev) == {"examples", DENSE, "bertprune-fp32"}
    assert dev[DENSE]["spearman"] == pytest.approx(dev["bertprune-fp32"]["spearman"], abs=1e-6)
    from transformers import AutoTokenizer

    direct = stsb_zeroshot(encoder.eval(), AutoTokenizer.from_pretrained(tmp_path / "enc"), models["glue"], batch_size=4)
    assert dev[DENSE]["spearman"] == pytest.approx(direct["spearman"], abs=1e-6)
    assert "| dev spearman" in to_markdown(result)
    with pytest.raises(BertpruneError, match="bare encoder"):
        bench(models["run"], [1], [8], runs=1, warmup=0, task="stsb_zeroshot", glue_dir=str(models["glue"]))


def test_cli_prints_json_and_markdown(models, capsys):
    assert run(["bench", str(models["run"]), "--batch-sizes", "1", "--seq-lens", "8", *FAST, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [(r["engine"], r["batch"], r["tokens"]) for r in result["rows"]] == [(e, 1, 8) for e in ENGINES]
    assert result["runs"] == 2 and result["warmup"] == 1
    assert run(["bench", str(models["encoder"]), "--batch-sizes", "1", "2", *FAST, "--no-int8"]) == 0
    out = capsys.readouterr().out
    assert "| engine | batch | tokens | median ms | p90 ms | sequences/s | speed-up | max abs diff |" in out
    assert "| torch-fp32 | 2 | 64 |" in out  # default 128 tokens, capped at the 64 positions of the tiny model
    assert "bertprune-int8" not in out and "difference: last hidden state" in out


def test_cli_texts_file_alone_runs_only_the_texts(models, capsys):
    assert run(["bench", str(models["run"]), "--texts", str(models["texts"]), "--batch-sizes", "4", *FAST, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["input"] for r in rows} == {"texts"} and len(rows) == 3 and rows[0]["batch"] == 4


def test_inputs_skip_padding_and_blank_lines(tmp_path):
    x = random_batch(vocab_size=6, pad_token_id=2, batch=4, seq_len=50)
    assert x["input_ids"].shape == (4, 50) and 2 not in x["input_ids"] and x["input_ids"].max() <= 5
    assert torch.equal(x["input_ids"], random_batch(6, 2, 4, 50)["input_ids"])  # seeded
    (tmp_path / "t.txt").write_text(TEXTS)
    assert read_texts(tmp_path / "t.txt")[:2] == ["good movie", "the film was very bad and boring"]
    with pytest.raises(BertpruneError, match="--batch-sizes must be integers >= 1"):
        bench(tmp_path, [0])


def _fails(args, capsys, *fragments):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_bad_input_is_one_message_and_exit_2(models, capsys, tmp_path):
    run_folder, encoder = str(models["run"]), str(models["encoder"])
    _fails(["bench", str(tmp_path / "no" / "such")], capsys, "bertprune: error:", "not an existing folder")
    (tmp_path / "empty").mkdir()
    _fails(["bench", str(tmp_path / "empty")], capsys, "bertprune: error:", "has no config.json")
    _fails(["bench", run_folder, "--seq-lens", "200"], capsys, "--seq-lens 200 exceeds the 64 positions")
    _fails(["bench", run_folder, "--batch-sizes", "0"], capsys, "--batch-sizes", "must be an integer >= 1")  # argparse
    (tmp_path / "blank.txt").write_text("\n  \n")
    _fails(["bench", run_folder, "--texts", str(tmp_path / "blank.txt")], capsys, "holds no text")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    _fails(["bench", run_folder, "--texts", str(tmp_path / "latin1.txt")], capsys, "is not UTF-8 text")
    _fails(["bench", run_folder, "--texts", str(tmp_path / "missing.txt")], capsys, "no such file")
    _fails(["bench", encoder, "--task", "sst2", *FAST], capsys, "bare encoder without a classification head")
    _fails(["bench", run_folder, "--task", "sst3"], capsys, "unknown task 'sst3'")
    _fails(["bench", run_folder, "--task", "mnli", "--glue-dir", str(models["glue"])], capsys, "3 label(s)")


def test_demo_times_with_the_same_loop(models):
    from bertprune.demo import speed_table, time_engine

    speed = time_engine(models["run"] / "final", str(models["glue"]), 32, (1, 4), repeats=2)
    assert [s["batch"] for s in speed] == [1, 4] and all(s["pytorch_ms"] > 0 and s["accelerate_ms"] > 0 for s in speed)
    assert all(s["max_logit_diff"] < 1e-4 for s in speed) and "| batch 4 (" in speed_table(speed)
