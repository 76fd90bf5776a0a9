"""End to end on tiny random models: the loop, checkpoints, resume, the run folder, the CLI."""

import json

import pytest
import torch
from safetensors.torch import load_file

import bertprune.train as train_mod
from bertprune.cli import run
from bertprune.config import load_config
from bertprune.report import sparsity_report


def _cfg(run_args, *extra, out="run"):
    """A RunConfig from the same arguments the CLI gets (exercises the flag → override mapping)."""
    from bertprune.cli import finetune_overrides, parse

    args = parse(run_args(out, "bert", "sst2", *extra))
    return load_config(args.config, finetune_overrides(args))


def test_gmp_run_end_to_end(run_args, tmp_path):
    assert run(run_args("gmp", "bert", "sst2", "--method", "gmp", "--sparsity", "0.9", "prune.schedule.every=2")) == 0
    out = tmp_path / "gmp"
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 12 and results["method"] == "gmp"
    assert abs(results["achieved_sparsity"] - 0.9) < 1e-3
    report = sparsity_report(out)
    assert report["source"].endswith("final")
    for m in report["matrices"]:
        assert abs(m["nonzero"] - 0.1 * m["params"]) <= 1
    assert report["mask"]["weights_respect_mask"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "loss" in r]
    assert [r["step"] for r in train_records] == [2, 4, 6, 8, 10, 12]
    assert train_records[0]["target_sparsity"] < train_records[-1]["target_sparsity"] == pytest.approx(0.9)
    assert any("eval" in r for r in records)
    saved = load_config(out / "config.yaml")
    assert saved.prune.sparsity == 0.9 and saved.train.eval_every == 6
    # best is only chosen once the target sparsity was reached
    best_mask = load_file(str(out / "best" / "mask.safetensors"))
    zeros = sum(int((~m).sum()) for m in best_mask.values())
    assert zeros / sum(m.numel() for m in best_mask.values()) == pytest.approx(0.9, abs=1e-3)


@pytest.mark.parametrize("kind", ["roberta", "distilbert"])
def test_other_architectures_run(run_args, tmp_path, kind):
    assert run(run_args(kind, kind, "rte", "--method", "oneshot", "--sparsity", "0.5", "--max-steps", "3")) == 0
    assert sparsity_report(tmp_path / kind)["sparsity"]["targeted"] == pytest.approx(0.5, abs=1e-3)


def test_stsb_is_regression(run_args, tmp_path):
    from transformers import AutoConfig

    assert run(run_args("stsb", "bert", "stsb", "--max-steps", "3")) == 0
    results = json.loads((tmp_path / "stsb" / "results.json").read_text())
    assert set(results["final"]["dev"]) == {"pearson", "spearman"}
    config = AutoConfig.from_pretrained(tmp_path / "stsb" / "final")
    assert config.num_labels == 1 and config.problem_type == "regression"


def test_dense_run_learns_the_planted_signal(run_args, tmp_path):
    assert run(run_args("learn", "bert", "sst2", "--epochs", "8", "--lr", "3e-3")) == 0
    results = json.loads((tmp_path / "learn" / "results.json").read_text())
    assert results["final"]["dev"]["accuracy"] >= 0.8


@pytest.mark.parametrize("crash_step,grouped", [(6, False), (9, False), (9, True)])  # epoch boundary, mid-epoch
def test_resume_reaches_the_same_final_weights(run_args, tmp_path, monkeypatch, crash_step, grouped):
    """Interrupted after the checkpoint of step ``crash_step`` and resumed: bit-identical to an uninterrupted run.
    The model has dropout, so the RNG state must be restored too, not only weights and optimizer."""
    extra = ("--method", "gmp", "--sparsity", "0.8", "prune.schedule.every=1", "train.save_every=3", "train.eval_every=100",
             f"train.group_by_length={grouped}")
    assert run(run_args("straight", "bert-dropout", "sst2", *extra)) == 0

    original = train_mod.save_training_state

    def save_then_crash(root, accelerator, model, optimizer, scheduler, method, progress):
        original(root, accelerator, model, optimizer, scheduler, method, progress)
        if progress.step == crash_step:
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(train_mod, "save_training_state", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(run_args("resumed", "bert-dropout", "sst2", *extra))
    monkeypatch.setattr(train_mod, "save_training_state", original)
    assert (tmp_path / "resumed" / "checkpoints" / "latest").read_text() == f"step-{crash_step:08d}"
    assert not (tmp_path / "resumed" / "final").exists()
    assert run(run_args("resumed", "bert-dropout", "sst2", *extra, "--resume")) == 0

    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [2, 4, 6, 8, 10, 12]  # no duplicated steps
    # the logged losses too: a crash between log steps (step 9) must not lose the loss window
    assert without_timings(log) == without_timings(
        [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()])


def without_timings(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "sec_per_step"} for r in log]


def test_length_grouped_order():
    """A permutation, a pure function of (seed, epoch), whose batches pad to far fewer tokens than random ones."""
    import numpy as np

    from bertprune.train import epoch_order, length_grouped_order

    lengths = np.random.default_rng(0).integers(8, 385, 3000)
    order = length_grouped_order(lengths, 32, seed=42, epoch=0)
    assert sorted(order.tolist()) == list(range(3000))
    assert np.array_equal(order, length_grouped_order(lengths, 32, seed=42, epoch=0))
    assert not np.array_equal(order, length_grouped_order(lengths, 32, seed=42, epoch=1))
    assert not np.array_equal(order, length_grouped_order(lengths, 32, seed=43, epoch=0))
    assert lengths[order[0]] == lengths.max()  # the longest batch first: out of memory at once, not hours in

    def padded_tokens(o):
        return sum(lengths[o[i : i + 32]].max() * len(o[i : i + 32]) for i in range(0, len(o), 32))

    assert padded_tokens(order) < 0.6 * padded_tokens(epoch_order(3000, 42, 0))


def test_group_by_length_needs_tokenized_examples():
    from datasets import Dataset

    from bertprune.errors import BertpruneError
    from bertprune.train import example_lengths

    assert example_lengths(Dataset.from_dict({"input_ids": [[1, 2], [3], [4, 5, 6]]})).tolist() == [2, 1, 3]
    with pytest.raises(BertpruneError, match="group_by_length=false"):
        example_lengths(Dataset.from_dict({"text": ["a b"]}))


def test_resume_without_checkpoint_starts_fresh(run_args, tmp_path):
    assert run(run_args("fresh", "bert", "sst2", "--max-steps", "2", "--resume")) == 0
    assert (tmp_path / "fresh" / "final" / "model.safetensors").is_file()


def test_output_dir_guard(run_args, tmp_path, capsys):
    assert run(run_args("guard", "bert", "sst2", "--max-steps", "2")) == 0
    with pytest.raises(Exception, match="already holds this finished run"):
        run(run_args("guard", "bert", "sst2", "--max-steps", "2"))
    with pytest.raises(Exception, match=r"holds a different run \(train.lr: 0.001 -> 0.002"):
        run(run_args("guard", "bert", "sst2", "--max-steps", "2", "--lr", "2e-3"))
    assert run(run_args("guard", "bert", "sst2", "--max-steps", "2", "--lr", "2e-3", "--overwrite")) == 0
    assert load_config(tmp_path / "guard" / "config.yaml").train.lr == 2e-3
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(Exception, match="did not create"):
        run(run_args("not-a-run", "bert", "sst2", "--max-steps", "2", "--overwrite"))
    assert (other / "precious.txt").read_text() == "keep me"


def test_report_cli(run_args, tmp_path, capsys):
    assert run(run_args("rep", "bert", "sst2", "--method", "oneshot", "--sparsity", "0.75", "--max-steps", "2")) == 0
    capsys.readouterr()
    assert run(["report", str(tmp_path / "rep"), "--json", "--seq-len", "16"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sparsity"]["targeted"] == pytest.approx(0.75, abs=1e-3)
    assert report["macs"]["sparse"] < report["macs"]["dense"]
    assert run(["report", str(tmp_path / "rep" / "final"), "--matrices"]) == 0
    md = capsys.readouterr().out
    assert "| encoder compression ratio | 4.00x |" in md and "attention.self.query.weight" in md
