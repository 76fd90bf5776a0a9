"""Universal mask: `bertprune pretrain` with RPP or NIP, then `bertprune finetune --mask`, end to end."""

import json
import time

import pytest
import torch
from safetensors.torch import load_file

import bertprune.train as train_mod
from bertprune.cli import run
from bertprune.masks import Masks
from bertprune.report import sparsity_report


@pytest.mark.parametrize("method", ["rpp", "gmp"])
def test_pretrain_then_finetune_with_the_mask_fixed(pretrain_args, run_args, tmp_path, tiny_models, method):
    start = time.time()
    extra = ("prune.rpp.gamma_rate=1.2", "prune.rpp.reweight_every=3") if method == "rpp" else ()
    assert run(pretrain_args("pre", "bert", "--method", method, "--sparsity", "0.8", "prune.schedule.every=1", *extra)) == 0
    final = tmp_path / "pre" / "final"
    universal = Masks.load(final / "mask.safetensors")
    assert universal.sparsity() == pytest.approx(0.8, abs=1e-3)
    pre_results = json.loads((tmp_path / "pre" / "results.json").read_text())
    assert pre_results["achieved_sparsity"] == pytest.approx(0.8, abs=1e-3)
    if method == "rpp":
        s = pre_results["method_summary"]
        assert s["mode"] == "target" and 0 < s["sparsity_from_proximal_steps"] <= 1
        logged = [json.loads(x) for x in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
        per_matrix = [r["matrix_sparsity"] for r in logged if "matrix_sparsity" in r]
        assert len(per_matrix) >= 5 and "0.query" in per_matrix[0]  # per-matrix sparsity over steps
    # the pooler of the starting checkpoint was carried over into the masked-LM checkpoint
    saved = load_file(str(final / "model.safetensors"))
    source = load_file(str(tiny_models["bert"] / "model.safetensors"))
    assert torch.equal(saved["bert.pooler.dense.weight"], source["pooler.dense.weight"])

    args = run_args("ft", "bert", "sst2", "--model", str(final), "--mask", str(final / "mask.safetensors"),
                    "--epochs", "3")
    assert run(args) == 0
    ft = tmp_path / "ft"
    results = json.loads((ft / "results.json").read_text())
    assert results["method"] == "mask" and results["achieved_sparsity"] == pytest.approx(0.8, abs=1e-3)
    weights = load_file(str(ft / "final" / "model.safetensors"))
    for name in universal.names():
        assert (weights[name][~universal[name]] == 0).all(), name  # zeros stayed zeros
        assert (weights[name][universal[name]] != 0).float().mean() > 0.99  # kept weights trained
    report = sparsity_report(ft)
    assert report["universal_mask"]["mask_equal"] is True
    assert report["universal_mask"]["universal_zeros_still_zero"] == 1.0
    assert "mask equals it: True" in (ft / "report.md").read_text()
    assert time.time() - start < 60


def test_keep_zeros_of_a_pruned_checkpoint(run_args, tmp_path):
    assert run(run_args("src", "bert", "sst2", "--method", "oneshot", "--sparsity", "0.6", "--max-steps", "2")) == 0
    src = tmp_path / "src" / "final"
    assert run(run_args("kz", "bert", "sst2", "--model", str(src), "--keep-zeros", "--max-steps", "6")) == 0
    weights = load_file(str(tmp_path / "kz" / "final" / "model.safetensors"))
    before = Masks.load(src / "mask.safetensors")
    for name in before.names():
        assert (weights[name][~before[name]] == 0).all()
    assert json.loads((tmp_path / "kz" / "results.json").read_text())["achieved_sparsity"] == pytest.approx(0.6, abs=1e-3)


def test_mask_for_another_model_is_refused(run_args, tmp_path, tiny_models, capsys):
    from bertprune.cli import main

    bad = tmp_path / "bad.safetensors"
    Masks({"bert.encoder.layer.0.attention.self.query.weight": torch.ones(5, 5, dtype=torch.bool)}).save(bad)
    with pytest.raises(SystemExit):
        main(run_args("x", "bert", "sst2", "--mask", str(bad)))
    assert "shape" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(run_args("x", "bert", "sst2", "--mask", str(bad), "--method", "gmp", "--sparsity", "0.5"))
    assert "cannot be combined" in capsys.readouterr().err


def test_rpp_at_the_fine_tuning_stage_resumes_exactly(run_args, tmp_path, monkeypatch):
    extra = ("--method", "rpp", "--sparsity", "0.7", "prune.rpp.reweight_every=2", "prune.rpp.gamma_rate=1.2",
             "train.save_every=4", "train.eval_every=100")
    assert run(run_args("straight", "bert-dropout", "sst2", *extra)) == 0
    original = train_mod.save_training_state

    def save_then_crash(root, accelerator, model, optimizer, scheduler, method, progress):
        original(root, accelerator, model, optimizer, scheduler, method, progress)
        if progress.step == 4:  # mid proximal phase: α, γ and Adam state all matter
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "save_training_state", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(run_args("resumed", "bert-dropout", "sst2", *extra))
    monkeypatch.setattr(train_mod, "save_training_state", original)
    assert run(run_args("resumed", "bert-dropout", "sst2", *extra, "--resume")) == 0
    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "final" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "straight" / "results.json").read_text())["achieved_sparsity"] == pytest.approx(0.7, abs=1e-3)
