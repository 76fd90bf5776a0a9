"""benchmarks/squad.py builds each run's config as its docstring says (no training here)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import squad  # noqa: E402


def _args(tmp_path, smoke=False):
    return argparse.Namespace(squad_dir=str(tmp_path), seed=42, out_dir=str(tmp_path / "runs"), smoke=smoke)


def test_sparse_kd_takes_the_squad_data_and_length_and_keeps_the_recipe_for_the_rest(tmp_path):
    cfg = squad.run_config(_args(tmp_path), "sparse-kd", 0.9)
    assert (cfg.data.max_length, cfg.data.doc_stride, cfg.train.epochs) == (384, 128, 2)  # RECIPE's, not sparse-kd's 128 / 5
    assert (cfg.prune.method, cfg.prune.criterion, cfg.prune.sparsity) == ("gradual", "fisher", 0.9)
    assert cfg.train.lr_schedule == "rewind" and cfg.train.mixed_precision == "bf16" and cfg.train.warmup_ratio == 0
    assert cfg.prune.schedule.every_epochs == 0.2 and cfg.prune.schedule.initial_sparsity == 0.3
    assert cfg.distill.init_from_teacher and cfg.distill.teacher == str(tmp_path / "runs" / "dense-0.0")
    twin = squad.run_config(_args(tmp_path), "sparse-kd", 0.0)
    assert (twin.prune.method, twin.prune.sparsity, twin.prune.schedule.initial_sparsity) == ("dense", 0.0, 0.0)
    assert twin.train.lr_schedule == "rewind" and twin.distill.init_from_teacher


def test_smoke_shrinks_every_run_and_leaves_the_full_recipe_alone(tmp_path):
    for method in ("sparse-kd", "dense", "distill"):
        cfg = squad.run_config(_args(tmp_path, smoke=True), method, 0.9 if method != "dense" else 0.0)
        assert (cfg.train.max_steps, cfg.data.train_examples, cfg.train.batch_size) == (3, 64, 8)
    full = squad.run_config(_args(tmp_path), "dense", 0.0)
    assert full.train.batch_size == 32 and full.data.train_examples is None and full.train.mixed_precision == "no"
    assert full.train.warmup_ratio == 0.1 and full.prune.method == "dense"
