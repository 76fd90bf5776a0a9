"""The run folder is ours alone, a diverging run stops cleanly, and the checkpoint protocol survives
a crash at any point (in-process checks; tests/test_faults.py kills real processes)."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import bertprune.train as train_mod
from bertprune import checkpoint as ckpt
from bertprune.cli import main, run
from bertprune.errors import BertpruneError, DivergenceError
from bertprune.runlog import MetricsLog


def _exit_code(args) -> int:
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


# --- --overwrite deletes only what bertprune created ---------------------------------------------
def test_overwrite_never_deletes_a_folder_bertprune_did_not_create(run_args, tmp_path, capsys):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.yaml").write_text("name: x\n")
    (proj / "src" / "main.py").write_text("hi\n")
    assert _exit_code(run_args("proj", "bert", "sst2", "--max-steps", "1", "--overwrite")) == 2
    err = capsys.readouterr().err
    assert "did not create" in err and "pass --overwrite" not in err
    assert (proj / "src" / "main.py").read_text() == "hi\n" and (proj / "config.yaml").read_text() == "name: x\n"
    # without --overwrite the message does not invite the flag either
    assert _exit_code(run_args("proj", "bert", "sst2", "--max-steps", "1")) == 2
    assert "pass --overwrite" not in capsys.readouterr().err


def test_overwrite_replaces_a_run_bertprune_created(run_args, tmp_path):
    assert run(run_args("mine", "bert", "sst2", "--max-steps", "1")) == 0
    marker = json.loads((tmp_path / "mine" / ".bertprune-run").read_text())
    assert run(run_args("mine", "bert", "sst2", "--max-steps", "2", "--overwrite")) == 0
    assert json.loads((tmp_path / "mine" / ".bertprune-run").read_text())["run_id"] != marker["run_id"]
    assert json.loads((tmp_path / "mine" / "results.json").read_text())["steps"] == 2


def test_output_dir_that_is_a_file_or_below_one(run_args, tmp_path, capsys):
    (tmp_path / "afile").write_text("data")
    assert _exit_code(run_args("afile", "bert", "sst2", "--max-steps", "1")) == 2
    assert "is a file" in capsys.readouterr().err
    assert _exit_code(run_args("afile/below", "bert", "sst2", "--max-steps", "1")) == 2
    assert "below a file" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "data"


# --- the divergence guard ---------------------------------------------------------------------
def test_huge_learning_rate_stops_with_exit_code_3_and_saves_nothing_diverged(run_args, tmp_path, capsys):
    assert _exit_code(run_args("boom", "bert", "sst2", "--lr", "1e10")) == 3
    err = capsys.readouterr().err
    assert "diverged" in err and "train.lr" in err and "Traceback" not in err
    out = tmp_path / "boom"
    assert not (out / "final").exists() and not (out / "results.json").exists()
    if (out / "best").exists():
        assert all(torch.isfinite(t).all() for t in load_file(str(out / "best" / "model.safetensors")).values())
    log = MetricsLog(out / "metrics.jsonl").read()
    assert any("diverged" in r for r in log)
    assert all(r["loss"] is not None for r in log if "loss" in r)  # never a NaN loss logged as null


@pytest.mark.parametrize("lr", ["inf", "nan", "-1"])
def test_non_finite_learning_rate_is_refused(run_args, capsys, lr, tmp_path):
    assert _exit_code(run_args("x", "bert", "sst2", f"train.lr={lr}")) == 2
    err = capsys.readouterr().err
    assert "train.lr" in err and ("finite" in err or "> 0" in err)
    assert not (tmp_path / "x").exists()


def test_divergence_keeps_the_last_good_checkpoint_and_resume_continues(run_args, tmp_path, monkeypatch):
    """A NaN loss at step 9 (checkpoints every 3 steps): the run stops, checkpoints 3 and 6 stay whole
    and finite (two kept), nothing is written after, and --resume from step 6 finishes the run."""
    extra = ("train.save_every=3", "train.eval_every=100")
    original = train_mod.train_step

    def nan_at_step_9(model, batch, method, optimizer, scheduler, next_step, *a, **kw):
        result = original(model, batch, method, optimizer, scheduler, next_step, *a, **kw)
        if next_step == 9:
            result.loss = torch.tensor(float("nan"))
        return result

    monkeypatch.setattr(train_mod, "train_step", nan_at_step_9)
    with pytest.raises(DivergenceError, match=r"diverged at step 9: the loss is nan.*checkpoints/step-00000006"):
        run(run_args("nan", "bert", "sst2", *extra))
    root = tmp_path / "nan" / "checkpoints"
    assert sorted(p.name for p in root.glob("step-*")) == ["step-00000003", "step-00000006"]
    assert all(ckpt.is_complete(p) for p in root.glob("step-*"))
    assert not (tmp_path / "nan" / "final").exists()
    monkeypatch.setattr(train_mod, "train_step", original)
    assert run(run_args("nan", "bert", "sst2", *extra, "--resume")) == 0
    assert json.loads((tmp_path / "nan" / "results.json").read_text())["steps"] == 12


def test_divergence_rules():
    from bertprune.train import divergence

    assert divergence(0.7, 1.0, 1e4) is None
    assert "nan" in divergence(float("nan"), 1.0, 1e4)
    assert "inf" in divergence(0.7, math.inf, None)
    assert "exceeds train.max_loss" in divergence(2e4, 1.0, 1e4)
    assert divergence(2e4, 1.0, None) is None


# --- resume ---------------------------------------------------------------------------------------
def test_resume_on_a_finished_run_changes_nothing(run_args, tmp_path):
    assert run(run_args("done", "bert", "sst2", "--max-steps", "4")) == 0
    out = tmp_path / "done"
    before = {p.name: p.read_bytes() for p in (out / "metrics.jsonl", out / "results.json", out / "final" / "model.safetensors")}
    assert run(run_args("done", "bert", "sst2", "--max-steps", "4", "--resume")) == 0
    after = {p.name: p.read_bytes() for p in (out / "metrics.jsonl", out / "results.json", out / "final" / "model.safetensors")}
    assert before == after


def test_results_give_final_and_best_in_the_same_units(run_args, tmp_path):
    assert run(run_args("units", "bert", "sst2", "--max-steps", "6", "train.eval_every=3")) == 0
    results = json.loads((tmp_path / "units" / "results.json").read_text())
    final, best = results["final"]["dev"]["accuracy"], results["best"]["dev"]["accuracy"]
    assert 0 <= final <= 1 and 0 <= best <= 1 and best >= final
    assert results["headline"] == {"metric": "accuracy", "final": pytest.approx(100 * final), "best": pytest.approx(100 * best)}


# --- the checkpoint protocol, piece by piece --------------------------------------------------------
def _state(root, step: int):
    tmp = root / f".step-{step:08d}.tmp"
    tmp.mkdir(parents=True)
    (tmp / "model.safetensors").write_bytes(b"x" * (10 + step))
    ckpt.write_json(tmp / "progress.json", {"step": step})
    return tmp


def test_newest_complete_checkpoint_wins_over_a_stale_latest_and_a_torn_folder(tmp_path):
    root = tmp_path / "checkpoints"
    ckpt.install(_state(root, 3), root, "step-00000003")
    ckpt.install(_state(root, 6), root, "step-00000006")
    ckpt.write_text(root / "latest", "step-00000003")  # a crash after the rename, before `latest` moved
    assert ckpt.latest_checkpoint(root).name == "step-00000006"
    ckpt.install(_state(root, 6), root, "step-00000006")  # the same step written again: no "Directory not empty"
    assert ckpt.latest_checkpoint(root).name == "step-00000006"
    ckpt.install(_state(root, 9), root, "step-00000009")
    assert sorted(p.name for p in root.glob("step-*")) == ["step-00000006", "step-00000009"]  # two kept
    (root / "step-00000009" / "model.safetensors").write_bytes(b"torn")  # a file cut short
    assert ckpt.latest_checkpoint(root).name == "step-00000006"
    (root / "step-00000006" / "progress.json").unlink()  # a clean-up cut short
    assert ckpt.latest_checkpoint(root) is None
    (root / ".step-00000012.tmp").mkdir()
    assert ckpt.clean_checkpoints(root) and not list(root.iterdir())[1:]  # only `latest` is left


def test_recover_puts_back_a_folder_moved_aside_and_drops_temporaries(tmp_path):
    (tmp_path / ".final.old123").mkdir()
    (tmp_path / ".final.old123" / "model.safetensors").write_text("old final")
    (tmp_path / ".best.tmp456").mkdir()
    (tmp_path / ".results.json.tmp789").write_text("{")
    (tmp_path / "best").mkdir()
    (tmp_path / ".best.old1").mkdir()
    (tmp_path / "mine.txt").write_text("not bertprune's")
    done = ckpt.recover_run_dir(tmp_path, ("best", "final"))
    assert (tmp_path / "final" / "model.safetensors").read_text() == "old final"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "final", "mine.txt"]
    assert len(done) == 4


def test_a_torn_last_line_of_metrics_is_dropped_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 2, "loss": 1.0}\n{"step": 4, "loss": 0.9}\n{"step": 6, "lo')
    log = MetricsLog(path)
    assert [r["step"] for r in log.read()] == [2, 4]
    log.truncate_after(2)
    assert path.read_text() == '{"step": 2, "loss": 1.0}\n'


def test_bertprune_error_exit_codes():
    assert BertpruneError("x").exit_code == 2 and DivergenceError("x").exit_code == 3


def test_overwrite_that_fails_at_set_up_keeps_the_old_run(run_args, tmp_path, capsys):
    assert run(run_args("kept", "bert", "sst2", "--max-steps", "1")) == 0
    # 65 tokens do not fit the tiny model's 64 positions: refused at set-up, before anything is deleted
    assert _exit_code(run_args("kept", "bert", "sst2", "--max-steps", "1", "data.max_length=65", "--overwrite")) == 2
    assert "max_length" in capsys.readouterr().err
    assert (tmp_path / "kept" / "results.json").is_file() and (tmp_path / "kept" / "final").is_dir()


def test_final_checkpoint_has_a_model_card_with_the_counted_sparsity(run_args, tmp_path):
    import yaml

    from bertprune.report import sparsity_report

    assert run(run_args("card", "bert", "sst2", "--method", "oneshot", "--sparsity", "0.75", "--max-steps", "2")) == 0
    card = (tmp_path / "card" / "final" / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"
    assert "bertprune" in meta["tags"] and "sparsity-75" in meta["tags"]
    counted = sparsity_report(tmp_path / "card")["sparsity"]["targeted"]
    assert f"| {counted:.4f} (target 0.75) |" in body
    assert "--sparsity 0.75" in body and "accelerate(model)" in body and "| dev | accuracy |" in body
