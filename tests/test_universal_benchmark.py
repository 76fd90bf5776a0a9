"""benchmarks/universal.py: a smoke run of the driver on a tiny model (the dense zero-shot row, a universal
model pruned by distillation, its transfer with the mask fixed and free), and the table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bertprune.testing import save_tiny_model, write_tiny_text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import records  # noqa: E402


@pytest.mark.slow
def test_driver_pretrains_transfers_and_writes_records(tiny_glue, tmp_path):
    model = save_tiny_model(tmp_path / "model", "bert", positions=128)
    text = write_tiny_text(tmp_path / "text")
    env = {"BERTPRUNE_BENCH_RESULTS": str(tmp_path / "results"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    base = [sys.executable, str(REPO / "benchmarks" / "universal.py"), "--glue-dir", str(tiny_glue), "--text-dir", str(text),
            "--model", str(model), "--quiet", "--out-dir", str(tmp_path / "runs"), "--teachers", str(tmp_path / "teachers"),
            "--sparsity", "0.5", "--steps", "6", "--set", "data.block_size=32", "train.batch_size=8", "train.eval_every=3",
            "prune.schedule.every=2", "--tasks", "sst2",
            "--transfer-set", "train.epochs=1", "train.mixed_precision=no", "data.max_length=32"]

    def run(*extra):
        done = subprocess.run(base + list(extra), env=env, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]

    run("--stage", "dense")
    run("--stage", "transfer")  # trains the universal model first, then the task
    run("--stage", "transfer", "--free")
    run("--stage", "curve")  # the universal model's evaluations (steps 3 and 6) as their own record
    run("--stage", "fidelity")  # the final model's held-out evaluation, recomputed with the per-layer token cosines
    run("--stage", "probe")  # ridge on the universal model's frozen pair features
    run("--stage", "dense-probe")
    recs = [json.loads(x) for x in (tmp_path / "results" / "universal.jsonl").read_text().splitlines()]
    dense_probe, probe = recs.pop(), recs.pop()
    assert probe["task"] == dense_probe["task"] == "stsb_pair_probe"
    assert probe["universal"] == recs[1]["universal"] and dense_probe["universal"] == "dense"
    assert set(probe["metrics"]) == {"cls_spearman", "pooler_spearman", "mean_spearman", "train_pairs", "dev_pairs"}
    assert probe["main_metric"] == pytest.approx(100 * probe["metrics"]["cls_spearman"], abs=0.01)
    assert probe["metrics"] != dense_probe["metrics"]  # the pruned encoder's features are not the dense one's
    fidelity, curve = recs.pop(), recs.pop()
    assert fidelity["task"] == "token_fidelity" and fidelity["universal"] == recs[1]["universal"]
    layers = [fidelity["metrics"][f"token_cosine_layer{i}"] for i in range(3)]  # the tiny encoder: 2 layers
    for k in ("embedding_cosine", "hidden_mse", "stsb_zeroshot_spearman", *(f"token_cosine_layer{i}" for i in range(3))):
        assert fidelity["metrics"][k] == pytest.approx(recs[1]["metrics"][k], rel=1e-4, abs=1e-6)  # the run's own numbers
    assert fidelity["main_metric"] == pytest.approx(100 * layers[-1], abs=0.01) and layers[-1] < 1
    assert curve["task"] == "budget_curve" and curve["universal"] == recs[1]["universal"]
    assert [(p["step"], p["tokens"]) for p in curve["metrics"]["points"]] == [(3, 3 * 8 * 32), (6, 6 * 8 * 32)]
    assert curve["main_metric"] == recs[1]["main_metric"]  # the last evaluation is the final model's
    assert [(r["task"], r["method"]) for r in recs] == [
        ("stsb_zeroshot", "dense"), ("stsb_zeroshot", "pretrain-distill-gradual"), ("sst2", "universal-fixed"),
        ("sst2", "universal-free")]
    assert all(set(records.REQUIRED) <= set(r) for r in recs)
    universal, fixed, free = recs[1:]
    assert universal["achieved_sparsity"] == pytest.approx(0.5, abs=2e-3)
    assert universal["tokens"] == 6 * 8 * 32 and universal["tokens_per_second"] > 0
    assert -100 <= universal["main_metric"] <= 100 and 0 < universal["metrics"]["embedding_cosine"] <= 1
    assert fixed["universal_zeros_kept"] == 1.0 and fixed["achieved_sparsity"] == pytest.approx(0.5, abs=2e-3)
    assert set(fixed["universal_zeros_kept_by_role"]) == {"query", "key", "value", "attn_out", "ffn_in", "ffn_out"}
    assert 0 <= free["universal_zeros_kept"] <= 1
    teachers = [json.loads(x) for x in (tmp_path / "results" / "high_sparsity.jsonl").read_text().splitlines()]
    assert [r["recipe"] for r in teachers] == ["teacher"]  # trained once, reused by the second transfer
    md = (tmp_path / "results" / "universal.md").read_text()
    # the transfer rows carry their own overrides, and so do their folders (a plain one: the last test)
    label = "train.epochs=1 train.mixed_precision=no data.max_length=32"
    assert fixed["transfer_set"] == label
    probe_rows = md.split("## Pair probe")[1].split("\n\n")[1].splitlines()[2:]  # the rows under the header
    assert probe_rows[0].startswith("| dense | 0.00 |") and probe_rows[0].endswith("| 100.0% |")
    assert probe_rows[1].startswith(f"| {probe['universal']} | 0.50 |")
    dense_row = next(line for line in md.splitlines() if line.startswith("| dense | 0.00 | unstructured |"))
    assert "| 100.0% |" in dense_row  # zero-shot share against the dense zero-shot row, not against its probe
    assert "## Token-state fidelity" in md and "| embeddings | layer 1 | layer 2 |" in md
    assert "| dense | 0.00 |" in md and f"| fixed, {label} |" in md and f"| free, {label} |" in md
    assert "## Token-budget curves" in md and f"| {curve['universal']} | 6 | 1,536 | 0.50 |" in md
    assert len(list((tmp_path / "runs").glob("*/sst2-fixed-??????-s42"))) == 1
    fixed_row = next(line for line in md.splitlines() if f"| fixed, {label} |" in line)
    assert fixed_row.endswith("| - | - | 1.0000 |")  # one task of five: no average, no share of dense


def test_a_plain_transfer_keeps_its_folder_and_label_and_overrides_get_their_own():
    import universal

    assert universal.transfer_folder("stsb", "fixed", 42, []) == "stsb-fixed-s42"
    a, b = (universal.transfer_folder("stsb", "fixed", 42, x) for x in (["train.lr=3e-4"], ["train.lr=1e-4"]))
    assert a != b and a.startswith("stsb-fixed-") and a.endswith("-s42")
    assert universal.transfer_label({"method": "universal-fixed"}) == "fixed"
    assert universal.transfer_label({"method": "universal-free", "transfer_set": "train.lr=3e-4"}) == "free, train.lr=3e-4"


def test_budget_curve_reads_the_evaluations_with_the_sparsity_then_reached(tmp_path):
    import universal

    dev = {"stsb_zeroshot_spearman": 0.5, "embedding_cosine": 0.9, "stsb_cls_pairwise_cosine": 0.6, "hidden_mse": 0.1}
    lines = [{"step": 10, "loss": 1.0, "sparsity": 0.3}, {"step": 10, "eval": {"step": 10, "dev": dev}},
             {"step": 20, "loss": 1.0, "sparsity": 0.6},
             {"step": 20, "eval": {"step": 20, "dev": {**dev, "stsb_zeroshot_spearman": 0.4}}},
             {"step": 20, "eval": {"step": 20, "dev": {**dev, "stsb_zeroshot_spearman": 0.45, "token_cosine_layer0": 0.9,
                                                        "token_cosine_layer10": 0.4, "token_cosine_layer2": 0.7}}},  # resumed: logged again
             {"step": 30, "eval": {"step": 30, "dev": {"hidden_mse": 0.1}}}]  # no zero-shot (no GLUE folder): not a point
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    curve = universal.budget_curve(tmp_path, tokens_per_step=100)
    assert [(p["step"], p["tokens"], p["sparsity"], p["stsb_zeroshot"]) for p in curve] == [(10, 1000, 0.3, 50.0),
                                                                                             (20, 2000, 0.6, 45.0)]
    assert [p["last_layer_token_cosine"] for p in curve] == [None, 0.4]  # layer 10 is the last (numeric order), older runs: none


@pytest.mark.slow
def test_squad_transfer_keeps_the_universal_mask_and_needs_a_dense_squad_teacher(tiny_glue, tmp_path):
    from bertprune.cli import run as cli
    from bertprune.testing import write_tiny_squad

    model = save_tiny_model(tmp_path / "model", "bert", positions=128)
    text = write_tiny_text(tmp_path / "text")
    squad_dir = write_tiny_squad(tmp_path / "squad", names=("train-v1.1-first44.json", "dev-v1.1.json"))
    small = ["data.max_length=24", "data.doc_stride=8", "train.batch_size=16", "train.mixed_precision=no"]
    assert cli(["finetune", "--task", "squad", "--model", str(model), "-o", str(tmp_path / "teacher"), "--quiet",
                "--squad-dir", str(squad_dir), "--epochs", "1", "data.squad_train_file=train-v1.1-first44.json",
                "data.squad_dev_file=dev-v1.1.json", *small]) == 0
    env = {"BERTPRUNE_BENCH_RESULTS": str(tmp_path / "results"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    base = [sys.executable, str(REPO / "benchmarks" / "universal.py"), "--glue-dir", str(tiny_glue), "--text-dir", str(text),
            "--model", str(model), "--quiet", "--out-dir", str(tmp_path / "runs"), "--sparsity", "0.5", "--steps", "4",
            "--set", "data.block_size=32", "train.batch_size=8", "train.eval_every=4", "prune.schedule.every=2",
            "--stage", "transfer", "--tasks", "squad", "--squad-dir", str(squad_dir),
            "--transfer-set", "train.epochs=1", *small]

    def run(*extra):
        return subprocess.run(base + list(extra), env=env, cwd=tmp_path, capture_output=True, text=True)

    missing = run("--squad-teacher", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no finished dense SQuAD run" in missing.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything was trained
    done = run("--squad-teacher", str(tmp_path / "teacher"))
    assert done.returncode == 0, done.stderr[-3000:]
    rec = [json.loads(x) for x in (tmp_path / "results" / "universal.jsonl").read_text().splitlines()][-1]
    assert (rec["task"], rec["method"], rec["teacher"]) == ("squad", "universal-fixed", str(tmp_path / "teacher"))
    assert set(rec["metrics"]) == {"exact_match", "f1"} and rec["main_metric"] == pytest.approx(100 * rec["metrics"]["f1"], abs=0.01)
    assert rec["universal_zeros_kept"] == 1.0 and rec["achieved_sparsity"] == pytest.approx(0.5, abs=2e-3)
    assert rec["command"].endswith(f"--squad-dir {squad_dir} --squad-teacher {tmp_path / 'teacher'}")
    assert rec["precision"] == "no"  # as the transfer trained (--transfer-set train.mixed_precision=no)
    run_dir = next((tmp_path / "runs").glob("*/squad-fixed-??????-s42"))
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())  # squad.py's settings, from the universal model
    assert cfg["data"]["squad_train_file"] == "train-v1.1-first44.json" and cfg["distill"]["init_from_teacher"] is False
    assert cfg["model"]["name"] == str(run_dir.parent / "final") and cfg["prune"]["method"] == "dense"
    md = (tmp_path / "results" / "universal.md").read_text()
    assert "## SQuAD v1.1" in md and f"| {rec['universal']} | fixed, train.epochs=1 " in md


def test_squad_rows_stand_beside_the_dense_run_and_pruning_downstream(tmp_path, monkeypatch):
    import universal

    monkeypatch.setattr(records, "RESULTS", tmp_path)
    down = [{"method": "dense", "target_sparsity": 0.0, "main_metric": 60.0},
            {"method": "sparse-kd", "target_sparsity": 0.0, "main_metric": 80.0},  # the best dense: the reference
            {"method": "sparse-kd", "target_sparsity": 0.8, "main_metric": 72.0}]
    (tmp_path / "squad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in down))
    row = {"universal": "u80", "method": "universal-fixed", "target_sparsity": 0.8, "main_metric": 40.0, "seed": 42,
           "granularity": "unstructured", "metrics": {"exact_match": 0.3, "f1": 0.4}, "universal_zeros_kept": 1.0,
           "train_seconds": 600}
    lines = universal.squad_section([row, {**row, "universal": "u90", "target_sparsity": 0.9},
                                     {**row, "universal": "u80-1x4", "granularity": "1x4"}])
    assert "| u80 | fixed | 42 | 30.00 | 40.00 | 50.0% | 72.00 (90.0%) | 1.0000 | 10 |" in lines
    assert "| u90 | fixed | 42 | 30.00 | 40.00 | 50.0% | - | 1.0000 | 10 |" in lines  # no downstream run at 90%
    assert "| u80-1x4 | fixed | 42 | 30.00 | 40.00 | 50.0% | - | 1.0000 | 10 |" in lines  # downstream is unstructured
    assert universal.squad_section([]) == []
