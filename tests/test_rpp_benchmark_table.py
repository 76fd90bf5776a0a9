"""The RPP benchmark's tables (benchmarks/rpp_universal.py and readme_tables.rpp) on synthetic records:
the full-scale run fills in over several sessions, so the tables must be right at every partial state."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import readme_tables  # noqa: E402
import records  # noqa: E402
import rpp_universal  # noqa: E402


def _rec(scale, stage, method, sparsity, metric, task="mlm", **extra):
    return {"benchmark": "rpp_universal", "stage": stage, "task": task, "method": method, "target_sparsity": sparsity,
            "achieved_sparsity": sparsity, "main_metric": metric, "steps": 400, "machine": "test machine",
            "command": f"python benchmarks/rpp_universal.py --stage {stage} --scale {scale}",
            "notes": "head only: 300 steps, encoder frozen" if stage == "head" else
            "fine-tuned; seeded subsample of 2000 training examples, full dev set" if stage == "finetune" else "MLM stage",
            **extra}


@pytest.fixture
def recs(monkeypatch):
    store = []
    monkeypatch.setattr(records, "read", lambda benchmark: list(store))
    return store


def test_scales_never_share_a_table(recs):
    recs += [_rec("quick", "head", "dense", 0.0, 8.6, metrics={"mlm_accuracy_before_head": 0.0}),
             _rec("quick", "mlm", "dense", 0.0, 21.6), _rec("quick", "mlm", "rpp", 0.5, 17.6),
             _rec("full", "head", "dense", 0.0, 9.65, metrics={"mlm_accuracy_before_head": 0.0})]
    full, quick = rpp_universal.table().split("## `--scale quick`")
    assert "9.65" in full and "8.60" not in full and "17.6" not in full
    assert "8.60" in quick and "17.6" in quick and "9.65" not in quick
    # no full-scale MLM record yet: the README shows the quick table
    assert "17.60" in readme_tables.rpp()
    recs.append(_rec("full", "mlm", "rpp", 0.5, 30.25))
    assert "30.25" in readme_tables.rpp() and "17.60" not in readme_tables.rpp()


@pytest.mark.parametrize("field", ["proximal_zeros_reopened_by_cut", "proximal_zeros_kept_by_cut"])
def test_the_zeros_reopened_by_the_cut_are_shown_under_either_name(recs, field):
    summary = {"sparsity_from_proximal_steps": 0.854, "sparsity_added_by_cut": 0.0, field: 0.054}
    recs += [_rec("full", "mlm", "dense", 0.0, 20.0), _rec("full", "mlm", "gmp", 0.8, 12.0),
             _rec("full", "mlm", "rpp", 0.8, 11.5, method_summary=summary)]
    row = next(line for line in rpp_universal.table().splitlines() if line.startswith("| 0.80 |"))
    assert row.split("|")[1:-1] == [" 0.80 ", " 20.00 ", " 12.00 ", " 11.50 ", " 0.854 ", " 0.000 ", " 0.054 "]


def test_finetune_rows_share_of_dense_and_mask_check(recs):
    for task, dense in (("mrpc", 80.0), ("rte", 60.0)):
        recs += [_rec("full", "finetune", "dense", 0.0, dense, task=task),
                 _rec("full", "finetune", "rpp+mask", 0.9, dense / 2, task=task, mask_equals_universal=True),
                 _rec("full", "finetune", "gmp+mask", 0.9, dense / 4, task=task, mask_equals_universal=task == "mrpc")]
    recs.append(_rec("full", "mlm", "dense", 0.0, 20.0))
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): [c.strip() for c in line.split("|")[3:-1]]
            for line in rpp_universal.table().splitlines() if line.startswith(("| dense |", "| rpp+mask |", "| gmp+mask |"))}
    assert rows[("dense", "0.00")] == ["80.00", "60.00", "70.00", "100.0%", "-"]
    assert rows[("rpp+mask", "0.90")] == ["40.00", "30.00", "35.00", "50.0%", "yes"]
    assert rows[("gmp+mask", "0.90")][-2:] == ["25.0%", "NO"]  # one task's mask differs from the universal one


def test_the_sweep_pick_is_the_best_target_mode_run_of_its_scale(recs, monkeypatch):
    def sweep(scale, target, settings, metric):
        mode = "target mode" if target else "fixed gamma"
        return {**_rec(scale, "sweep", "rpp", target, metric, steps=150), "notes": f"sweep ({mode}) {settings}; block 128"}

    recs += [sweep("full", 0.8, "prune.rpp.eps=1e-3 prune.rpp.gamma_rate=1.02", 11.77),
             sweep("full", 0.8, "prune.rpp.eps=1e-4 prune.rpp.gamma_rate=1.05", 11.57),
             sweep("full", 0.0, "prune.rpp.gamma=0.1", 23.39),  # fixed gamma: not a candidate
             sweep("quick", 0.8, "prune.rpp.eps=1e-2 prune.rpp.gamma_rate=1.02", 30.0)]  # other scale
    monkeypatch.setattr(rpp_universal, "SCALE", "full")
    assert rpp_universal.best_sweep_settings() == ["prune.rpp.eps=1e-3", "prune.rpp.gamma_rate=1.02"]
    full = rpp_universal.table().split("## `--scale quick`")[0]
    assert "settings: `prune.rpp.eps=1e-3 prune.rpp.gamma_rate=1.02` (MLM accuracy 11.77)" in full


def test_each_machine_is_named_with_the_stages_it_ran(recs):
    recs += [_rec("full", "mlm", "dense", 0.0, 20.0, machine="Xeon"), _rec("full", "mlm", "rpp", 0.8, 11.5, machine="Xeon"),
             _rec("full", "finetune", "dense", 0.0, 80.0, task="mrpc", machine="EPYC"),
             _rec("full", "mlm", "rpp", 0.8, 11.7, machine="EPYC")]  # a rerun on EPYC supersedes the Xeon record
    line = next(line for line in rpp_universal.table().splitlines() if line.startswith("Machine:"))
    assert line == "Machine: Xeon (mlm); EPYC (mlm, finetune)."


def test_readme_table_averages_only_complete_rows(recs):
    recs += [_rec("full", "mlm", "dense", 0.0, 20.0), _rec("full", "mlm", "rpp", 0.9, 12.0)]
    for task, dense in (("mrpc", 80.0), ("rte", 60.0)):
        recs += [_rec("full", "finetune", "dense", 0.0, dense, task=task), _rec("full", "finetune", "dense+mlm", 0.0, dense - 2, task=task),
                 _rec("full", "finetune", "rpp+mask", 0.9, dense / 2, task=task)]
    recs.append(_rec("full", "finetune", "gmp+mask", 0.9, 50.0, task="mrpc"))  # rte missing: no average
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in readme_tables.rpp().splitlines()}
    assert rows["**average of 2 tasks, RPP mask fixed**"] == ["**35.00** (50%)"]
    assert rows["**average of 2 tasks, NIP mask fixed**"] == ["-"]
    assert rows["average of 2 tasks, dense: original / after the MLM stage"] == ["70.00 / 68.00"]
    assert rows["mrpc, dense: original / after the MLM stage"] == ["80.00 / 78.00"]


def test_write_readme_replaces_only_the_tables_after_markers(tmp_path, monkeypatch):
    monkeypatch.setitem(readme_tables.TABLES, "squad", lambda: "| new |\n|---|\n| 1 |")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- python benchmarks/readme_tables.py (squad) -->\n| old |\n|---|\n| 0 |\n| 9 |\n\nafter\n"
                      "| a table without a marker |\n")
    readme_tables.write_readme(readme)
    assert readme.read_text() == ("intro\n<!-- python benchmarks/readme_tables.py (squad) -->\n| new |\n|---|\n| 1 |\n\nafter\n"
                                  "| a table without a marker |\n")


def test_summary_keeps_the_row_of_several_seeds_over_a_luckier_one_seed_variant(monkeypatch):
    def rec(task, metric, sparsity, tag, seed):
        return {"task": task, "main_metric": metric, "target_sparsity": sparsity, "recipe": "sparse-kd", "tag": tag,
                "seed": seed, "granularity": "unstructured", "criterion": "fisher" if sparsity else "none"}
    store = [rec(t, 100.0, 0.0, "", 42) for t in readme_tables.GLUE_TASKS]
    store += [rec(t, 90.0, 0.9, "recipe", s) for t in readme_tables.GLUE_TASKS for s in (42, 43, 44)]
    store += [rec(t, 95.0, 0.9, "sweep", 42) for t in readme_tables.GLUE_TASKS]  # one seed, a higher minimum share
    monkeypatch.setattr(records, "read", lambda benchmark: list(store) if benchmark == "high_sparsity" else [])
    row = next(line for line in readme_tables.summary().splitlines() if line.startswith("| 90% |"))
    assert "| sparse-kd / recipe |" in row and "mean of task shares 90.0%" in row


def test_summary_names_each_tasks_dense_reference_row(monkeypatch):
    def rec(task, metric, tag, seed=42, recipe="sparse-kd"):
        return {"task": task, "main_metric": metric, "target_sparsity": 0.0, "recipe": recipe, "tag": tag, "seed": seed,
                "granularity": "unstructured", "criterion": "none", "epochs": 3.0 if recipe == "teacher" else 5.0}
    store = [rec(t, 80.0, "teacher", recipe="teacher") for t in readme_tables.GLUE_TASKS]
    store += [rec("mrpc", 86.0, "", 42), rec("mrpc", 84.0, "", 43), rec("sst2", 87.5, "67k")]  # mrpc: mean 85.0
    store += [rec("mrpc", 84.5, "20ep")]
    monkeypatch.setattr(records, "read", lambda benchmark: list(store) if benchmark == "high_sparsity" else [])
    row = next(line for line in readme_tables.summary().splitlines() if line.startswith("| 0% | dense |"))
    assert ("mrpc 85.00 (sparse-kd / 5 ep, 2 seeds), stsb 80.00 (teacher / 3 ep), rte 80.00 (teacher / 3 ep), "
            "cola 80.00 (teacher / 3 ep), sst2 87.50 (sparse-kd / 67k)") in row


def test_summary_names_every_dense_row_that_ties_for_best_and_none_without_dense(monkeypatch):
    def rec(task, metric, tag, sparsity=0.0):
        return {"task": task, "main_metric": metric, "target_sparsity": sparsity, "recipe": "sparse-kd", "tag": tag,
                "seed": 42, "granularity": "unstructured", "criterion": "none" if not sparsity else "fisher", "epochs": 5.0}
    store = [rec("mrpc", 86.0, "b"), rec("mrpc", 86.0, "a")]
    monkeypatch.setattr(records, "read", lambda benchmark: list(store) if benchmark == "high_sparsity" else [])
    assert "mrpc 86.00 (sparse-kd / a = sparse-kd / b) | - | - | - |" in readme_tables.summary()
    store[:] = [rec("mrpc", 80.0, "x", 0.9)]  # no dense row: no reference line
    assert not any(line.startswith("| 0% |") for line in readme_tables.summary().splitlines())
