"""benchmarks/squad.py builds each run's config as its docstring says (no training here)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import squad  # noqa: E402

from bertprune import precision  # noqa: E402


def _args(tmp_path, smoke=False):
    return argparse.Namespace(squad_dir=str(tmp_path), seed=42, out_dir=str(tmp_path / "runs"), smoke=smoke)


def test_sparse_kd_takes_the_squad_data_and_length_and_keeps_the_recipe_for_the_rest(tmp_path):
    cfg = squad.run_config(_args(tmp_path), "sparse-kd", 0.9)
    assert (cfg.data.max_length, cfg.data.doc_stride, cfg.train.epochs) == (384, 128, 2)  # RECIPE's, not sparse-kd's 128 / 5
    assert (cfg.prune.method, cfg.prune.criterion, cfg.prune.sparsity) == ("gradual", "fisher", 0.9)
    assert cfg.train.lr_schedule == "rewind" and cfg.train.mixed_precision == precision.resolve("auto") and cfg.train.warmup_ratio == 0
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


def test_a_tagged_variant_gets_its_overrides_and_folder_and_distils_its_models_plain_dense_run(tmp_path):
    args = _args(tmp_path)
    args.model, args.tag, args.set = str(tmp_path / "m16"), "10ep", ["train.epochs=10", "prune.schedule.every_epochs=1.0"]
    cfg = squad.run_config(args, "sparse-kd", 0.9)
    assert (cfg.train.epochs, cfg.prune.schedule.every_epochs) == (10, 1.0)  # after the recipe's 2 and 0.2
    assert cfg.output_dir == str(tmp_path / "runs" / "m16" / "sparse-kd-0.9-10ep")  # apart from the default model's runs
    assert cfg.distill.teacher == str(tmp_path / "runs" / "m16" / "dense-0.0")
    assert cfg.model.name == str(tmp_path / "m16")
    assert squad.model_args(args) == ["--model", str(tmp_path / "m16"), "--tag", "10ep", "--set", *args.set]
    assert squad.model_args(_args(tmp_path)) == []  # the plain runs' commands are as before


def test_shares_are_against_the_dense_f1_of_the_same_starting_model():
    def rec(method, s, f1, model=squad.MODEL, tag=""):
        return {"method": method, "target_sparsity": s, "main_metric": f1, "tag": tag, "model": model}

    runs = {(r["method"], r["target_sparsity"], r["tag"], r["model"]): r for r in
            [rec("dense", 0.0, 70.0), rec("sparse-kd", 0.9, 50.0), rec("dense", 0.0, 80.0, "m16"),
             rec("sparse-kd", 0.0, 82.0, "m16", "10ep")]}
    assert squad.best_dense_f1(runs) == 70.0
    assert squad.best_dense_f1(runs, "m16") == 82.0  # its tagged twin counts; the other model's dense does not


def test_each_run_is_compared_with_the_dense_run_of_its_own_start_tag_and_epochs():
    def rec(method, s, f1, tag="", epochs=2):
        return {"method": method, "target_sparsity": s, "main_metric": f1, "tag": tag, "model": squad.MODEL, "epochs": epochs}

    runs = {(r["method"], r["target_sparsity"], r["tag"], r["model"]): r for r in
            [rec("dense", 0.0, 70.0), rec("gmp", 0.9, 35.0), rec("sparse-kd", 0.9, 49.0),
             rec("sparse-kd", 0.9, 56.0, "4ep", 4), rec("sparse-kd", 0.0, 72.0, "4ep", 4),
             rec("sparse-kd", 0.9, 60.0, "8ep", 8), rec("sparse-kd", 0.0, 73.0, "8ep", 4)]}
    key = lambda method, s, tag="": (method, s, tag, squad.MODEL)  # noqa: E731
    assert squad.twin(runs, key("gmp", 0.9))["main_metric"] == 70.0  # from the pre-trained model, as the dense run
    assert squad.twin(runs, key("sparse-kd", 0.9, "4ep"))["main_metric"] == 72.0  # not the 2-epoch dense run
    assert squad.twin(runs, key("sparse-kd", 0.9)) is None  # its 2-epoch twin was not run
    assert squad.twin(runs, key("sparse-kd", 0.9, "8ep")) is None  # a twin of another length is no twin
    lines = squad._model_table({k: {**r, "achieved_sparsity": r["target_sparsity"], "nonzero_encoder_params": 1,
                                     "metrics": {"exact_match": 0.5}, "train_seconds": 60} for k, r in runs.items()}, 72.0)
    row = next(line for line in lines if line.startswith("| sparse-kd | 4ep | 0.90"))
    assert "| 77.8% | 77.8% |" in row  # 56 / 72 both ways: the best dense F1 is the twin here
    assert next(line for line in lines if line.startswith("| gmp |")).split(" | ")[8] == "50.0%"  # 35 / 70
