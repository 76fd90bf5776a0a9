"""benchmarks/high_sparsity.py: a smoke run of the driver on a tiny model (teacher, pruned row, record,
table) and the table's arithmetic on synthetic records."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import high_sparsity  # noqa: E402
from bertprune.testing import save_tiny_model  # noqa: E402
import records  # noqa: E402


@pytest.mark.slow
def test_driver_trains_teacher_and_row_and_writes_records(tiny_glue, tmp_path):
    model = save_tiny_model(tmp_path / "model", "bert", positions=128)  # the teacher recipe reads 128 tokens
    env = {"BERTPRUNE_BENCH_RESULTS": str(tmp_path / "results"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, str(REPO / "benchmarks" / "high_sparsity.py"), "--glue-dir", str(tiny_glue), "--model",
           str(model), "--tasks", "sst2", "--recipe", "sparse-kd", "--sparsity", "0.5", "--quiet",
           "--out-dir", str(tmp_path / "runs"), "--tag", "smoke", "--set", "train.epochs=1", "train.mixed_precision=no",
           "data.max_length=32"]
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, capture_output=True)
    recs = [json.loads(x) for x in (tmp_path / "results" / "high_sparsity.jsonl").read_text().splitlines()]
    assert [(r["recipe"], r["target_sparsity"]) for r in recs] == [("teacher", 0.0), ("sparse-kd", 0.5)]
    row = recs[1]
    assert set(records.REQUIRED) <= set(row)
    assert (row["criterion"], row["granularity"], row["tag"]) == ("fisher", "unstructured", "smoke")
    assert row["achieved_sparsity"] == pytest.approx(0.5, abs=2e-3)
    assert "--set train.epochs=1" in row["command"]
    md = (tmp_path / "results" / "high_sparsity.md").read_text()
    assert "| sparse-kd | smoke | 0.50 | unstructured | fisher |" in md
    # --resume skips a row this commit has recorded: no new record
    subprocess.run(cmd + ["--resume"], check=True, env=env, cwd=tmp_path, capture_output=True)
    assert len((tmp_path / "results" / "high_sparsity.jsonl").read_text().splitlines()) == 2
    # another seed distilling the seed-42 teacher: no new teacher, the row's second seed
    subprocess.run(cmd + ["--seeds", "43", "--teacher-seed", "42"], check=True, env=env, cwd=tmp_path, capture_output=True)
    recs = [json.loads(x) for x in (tmp_path / "results" / "high_sparsity.jsonl").read_text().splitlines()]
    assert [(r["recipe"], r["seed"]) for r in recs] == [("teacher", 42), ("sparse-kd", 42), ("sparse-kd", 43)]
    assert recs[2]["teacher"] == recs[1]["teacher"] and "--teacher-seed 42" in recs[2]["command"]
    assert "| sparse-kd | smoke | 0.50 |" in (tmp_path / "results" / "high_sparsity.md").read_text()


def _rec(task, metric, sparsity=0.9, recipe="sparse-kd", tag="", seed=42, secs=60.0):
    return {"task": task, "main_metric": metric, "target_sparsity": sparsity, "recipe": recipe, "tag": tag, "seed": seed,
            "granularity": "unstructured", "criterion": "magnitude" if sparsity else "none", "train_seconds": secs,
            "epochs": 5.0, "machine": "m"}


def test_table_shares_against_the_best_dense_and_seed_statistics(monkeypatch):
    store = [_rec(t, 80.0, 0.0, "teacher") for t in high_sparsity.TASKS]
    store += [_rec(t, 90.0, 0.0) for t in ("mrpc", "stsb", "rte", "cola")] + [_rec("sst2", 70.0, 0.0)]  # dense twin
    store += [_rec(t, 72.0) for t in high_sparsity.TASKS]
    store += [_rec("mrpc", 74.0, seed=1), _rec("mrpc", 70.0, seed=2)]
    monkeypatch.setattr(records, "read", lambda benchmark: list(store))
    md = high_sparsity.table()
    row = next(line for line in md.splitlines() if line.startswith("| sparse-kd | - | 0.90"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == "72.00 ± 2.00"  # mrpc over three seeds
    # dense per task = best dense row: 90, 90, 90, 90, 80 → average 88; the row's average 72
    assert cells[10] == "72.00" and cells[11] == "81.8%"
    assert cells[12] == "80.0%"  # the lowest task share: 72 / 90
    assert cells[-1] == "3"


def test_agreement_rows_stand_beside_the_teacher_of_the_same_seed_and_machine(monkeypatch):
    teacher = {**_rec("rte", 57.4, 0.0, "teacher"), "teacher": None}
    other_machine = {**_rec("rte", 60.0, 0.0, "teacher"), "machine": "gpu"}  # another kind of machine: not this teacher
    store = [_rec(t, 80.0, 0.0, "teacher") for t in ("mrpc", "stsb")] + [teacher, other_machine]
    store += [{**_rec("rte", m, seed=s), "teacher": "runs/x/teacher-rte-s42", "teacher_agreement": {"accuracy": a}}
              for s, m, a in ((42, 54.0, 0.70), (43, 52.0, 0.80))]
    store += [{**_rec("stsb", 84.0), "teacher": "runs/x/teacher-stsb-s42",
               "teacher_agreement": {"pearson": 0.5, "spearman": 0.9}}]
    store += [_rec("mrpc", 84.0)]  # an older record without agreement: no agreement row
    monkeypatch.setattr(records, "read", lambda benchmark: list(store))
    md = high_sparsity.table()
    rows = [line for line in md.split("Agreement with the teacher")[1].splitlines() if line.startswith("| sparse-kd")]
    assert rows == ["| sparse-kd | - | 0.90 | magnitude | stsb | 84.00 | 80.00 | 90.0% | 1 |",
                    "| sparse-kd | - | 0.90 | magnitude | rte | 53.00 | 57.40 | 75.0% | 2 |"]
    assert not any("Agreement" in line for line in high_sparsity._model_table([_rec("mrpc", 84.0)]))


def test_another_starting_model_gets_its_own_section_and_dense_baseline(monkeypatch):
    store = [_rec(t, 80.0, 0.0, "teacher") for t in high_sparsity.TASKS] + [_rec(t, 72.0) for t in high_sparsity.TASKS]
    other = "all-MiniLM-L6-v2-fp16"
    store += [{**_rec(t, 90.0, 0.0, "teacher"), "model": other, "machine": "gpu"} for t in high_sparsity.TASKS]
    store += [{**_rec(t, 72.0), "model": other, "machine": "gpu"} for t in high_sparsity.TASKS]
    monkeypatch.setattr(records, "read", lambda benchmark: list(store))
    md = high_sparsity.table()
    first, second = md.split(f"## {other}")
    shares = [[c.strip() for c in line.strip("|").split("|")][11] for part in (first, second)
              for line in part.splitlines() if line.startswith("| sparse-kd | - | 0.90")]
    assert shares == ["90.0%", "80.0%"]  # 72 against its own model's teacher: 80, then 90
    assert "| teacher | - | 0.00" in first and "| teacher | - | 0.00" in second  # neither teacher hides the other
    assert "Machines: m" in first and "Machines: gpu" in second
    assert high_sparsity.grouped(store)[1]["mrpc"] == 80.0  # other benchmarks' baseline: the default model's


def test_a_teacher_folder_is_reused_only_for_the_same_teacher(tmp_path):
    from bertprune.config import load_config, save_config
    from bertprune.recipes import recipe_file

    cfg = load_config(recipe_file(high_sparsity.TEACHER_RECIPE), ["data.task=rte", "model.name=all-MiniLM-L6-v2"])
    save_config(cfg, tmp_path / "config.yaml")
    high_sparsity.check_same_teacher(tmp_path, cfg)  # the same teacher: reused
    other = load_config(recipe_file(high_sparsity.TEACHER_RECIPE), ["data.task=rte", "model.name=/tmp/tiny"])
    with pytest.raises(SystemExit, match="holds another teacher.*model.name"):
        high_sparsity.check_same_teacher(tmp_path, other)


def test_a_teacher_model_path_is_compared_as_a_folder(tmp_path, monkeypatch):
    from bertprune.config import load_config, save_config
    from bertprune.recipes import recipe_file

    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "models" / "n").mkdir()
    run = tmp_path / "teacher"
    run.mkdir()
    monkeypatch.chdir(tmp_path / "models")
    cfg = load_config(recipe_file(high_sparsity.TEACHER_RECIPE), ["data.task=rte", f"model.name={tmp_path}/models/m"])
    save_config(cfg, run / "config.yaml")
    relative = load_config(recipe_file(high_sparsity.TEACHER_RECIPE), ["data.task=rte", "model.name=../models/m"])
    high_sparsity.check_same_teacher(run, relative)  # the same folder, written another way
    sibling = load_config(recipe_file(high_sparsity.TEACHER_RECIPE), ["data.task=rte", "model.name=../models/n"])
    with pytest.raises(SystemExit, match="holds another teacher.*model.name"):
        high_sparsity.check_same_teacher(run, sibling)


def test_records_read_skips_a_line_still_being_appended(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RESULTS", tmp_path)
    (tmp_path / "b.jsonl").write_text('{"a": 1}\n{"a": 2}\n{"a": ')  # another process is mid-write
    assert records.read("b") == [{"a": 1}, {"a": 2}]
    (tmp_path / "b.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    assert records.read("b") == [{"a": 1}, {"a": 2}]


def test_teacher_row_names_exactly_one_finished_dense_run(tmp_path):
    from types import SimpleNamespace

    args = SimpleNamespace(out_dir=str(tmp_path), recipe="sparse-kd", teacher_row="20ep", model="all-MiniLM-L6-v2")
    with pytest.raises(SystemExit, match="no finished run.*--sparsity 0 --tasks mrpc --seeds 42 --tag 20ep"):
        high_sparsity.dense_row_dir(args, "mrpc", 42)
    teacher = tmp_path / "teacher-mrpc-s42"
    teacher.mkdir()
    (teacher / "config.yaml").write_text("model:\n  name: all-MiniLM-L6-v2\n")
    run = tmp_path / "mrpc-sparse-kd-0.0-20ep-s42-1003b2e5"
    run.mkdir()
    (run / "config.yaml").write_text(f"distill:\n  teacher: {teacher}\n")
    with pytest.raises(SystemExit):  # not finished: no results.json
        high_sparsity.dense_row_dir(args, "mrpc", 42)
    (run / "results.json").write_text("{}")
    for other in ("mrpc-sparse-kd-0.0-20ep-s4-aaaaaaaa", "mrpc-sparse-kd-0.0-20ep-x-s42-bbbbbbbb",
                  "mrpc-sparse-kd-0.9-20ep-s42-cccccccc", "stsb-sparse-kd-0.0-20ep-s42-dddddddd"):
        (tmp_path / other).mkdir()
        (tmp_path / other / "results.json").write_text("{}")  # another seed, tag, sparsity or task: not this row
    assert high_sparsity.dense_row_dir(args, "mrpc", 42) == run
    twin = tmp_path / "mrpc-sparse-kd-0.0-20ep-s42-eeeeeeee"  # two finished runs of the row (another config): ambiguous
    twin.mkdir()
    (twin / "results.json").write_text("{}")
    with pytest.raises(SystemExit, match="2 finished runs.*1003b2e5.*eeeeeeee.*move all but one aside"):
        high_sparsity.dense_row_dir(args, "mrpc", 42)


def test_teacher_row_of_another_model_is_refused(tmp_path):
    from types import SimpleNamespace

    args = SimpleNamespace(out_dir=str(tmp_path), recipe="sparse-kd", teacher_row="20ep", model="all-MiniLM-L6-v2")
    run = tmp_path / "mrpc-sparse-kd-0.0-20ep-s42-1003b2e5"
    run.mkdir()
    (run / "results.json").write_text("{}")
    with pytest.raises(SystemExit, match="cannot tell which model"):  # no config.yaml: no teacher to read
        high_sparsity.dense_row_dir(args, "mrpc", 42)
    teacher = tmp_path / "teacher-mrpc-s42"
    teacher.mkdir()
    (teacher / "config.yaml").write_text("model:\n  name: ../shared/models/paraphrase-MiniLM-L3-v2\n")
    (run / "config.yaml").write_text(f"distill:\n  teacher: {teacher}\n")
    with pytest.raises(SystemExit, match="trained from ../shared/models/paraphrase-MiniLM-L3-v2, not all-MiniLM-L6-v2"):
        high_sparsity.dense_row_dir(args, "mrpc", 42)
    (teacher / "config.yaml").write_text("model:\n  name: all-MiniLM-L6-v2\n")
    assert high_sparsity.dense_row_dir(args, "mrpc", 42) == run


def test_agreement_of_a_teacher_row_student_stands_beside_that_dense_row(monkeypatch):
    store = [_rec("mrpc", 85.5, 0.0, "teacher"), _rec("mrpc", 87.67, 0.0, tag="20ep"), _rec("mrpc", 80.0, 0.0, tag="20ep", seed=43)]
    store += [{**_rec("mrpc", 86.0, tag="t20ep"), "teacher": "runs/x/mrpc-sparse-kd-0.0-20ep-s42-1003b2e5",
               "teacher_row": "20ep", "teacher_agreement": {"accuracy": 0.9}}]
    monkeypatch.setattr(records, "read", lambda benchmark: list(store))
    rows = [line for line in high_sparsity.table().split("Agreement with the teacher")[1].splitlines()
            if line.startswith("| sparse-kd | t20ep")]
    assert rows == ["| sparse-kd | t20ep | 0.90 | magnitude | mrpc | 86.00 | 87.67 | 90.0% | 1 |"]


def test_a_sst2_record_notes_the_sentences_it_trained_on():
    assert high_sparsity.sst2_note(8000) == "SST-2 subsample 8,000 of 67,349 (seeded); "
    assert high_sparsity.sst2_note(67349) == high_sparsity.sst2_note(None) == "SST-2 full training set (67,349); "


def test_a_record_notes_a_transfer_set(tmp_path):
    from bertprune.config import DistillRunConfig, load_config

    cfg = load_config(None, ["distill.teacher=t", "distill.hardness=1", "distill.transfer.text=../text",
                             "distill.transfer.examples=8551", "data.task=cola"], schema=DistillRunConfig)
    results = {"final": {"dev": {"mcc": 0.2}}, "method": "gradual", "achieved_sparsity": 0.9, "nonzero_encoder_params": 1,
               "train_examples": 17102, "train_seconds": 1.0, "sec_per_step_median": 0.5, "steps": 2}
    args = SimpleNamespace(model="m", commit="c")
    rec = high_sparsity.record_of(results, cfg, "cola", 42, "sparse-kd", "t", [], args, "teacher")
    assert "8,551 transfer-set rows of ../text (KD only)" in rec["notes"] and rec["train_examples"] == 17102
    cfg.distill.transfer.examples = 0
    assert "transfer" not in high_sparsity.record_of(results, cfg, "cola", 42, "sparse-kd", "t", [], args, "teacher")["notes"]


def test_a_twin_tag_drops_the_criterion_or_pattern_and_nothing_else():
    assert high_sparsity.twin_tag("fisher-10ep", "fisher", "unstructured") == "10ep"
    assert high_sparsity.twin_tag("fisher", "fisher", "unstructured") == ""
    assert high_sparsity.twin_tag("1x4", "fisher", "1x4") == ""
    assert high_sparsity.twin_tag("1x4-fisher-5ep", "fisher", "1x4") == "5ep"  # either order
    assert high_sparsity.twin_tag("snip-momentum", "snip_momentum", "unstructured") == ""
    assert high_sparsity.twin_tag("fisher-10ep-t20ep", "fisher", "unstructured") == "10ep-t20ep"
    assert high_sparsity.twin_tag("fishery", "fisher", "unstructured") == "fishery"  # a name, not a prefix of a word
    assert high_sparsity.twin_tag("local", "magnitude", "unstructured") == "local"


def _like_for_like_rows(store, monkeypatch) -> dict[str, list[str]]:
    monkeypatch.setattr(records, "read", lambda benchmark: list(store))
    section = high_sparsity.table().split("Like for like (")[1]
    return {r[1]: r for r in ([c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
                              if line.startswith("| sparse-kd"))}


def _fisher(task, metric, tag, seed=42, epochs=5.0):
    return {**_rec(task, metric, tag=tag, seed=seed), "criterion": "fisher", "epochs": epochs}


def test_like_for_like_divides_by_the_twin_of_the_same_budget_and_builds_composites(monkeypatch):
    store = [_rec(t, 100.0, 0.0, "teacher") for t in high_sparsity.TASKS]  # the best dense row: not a twin
    store += [_rec(t, 80.0, 0.0, tag="20ep") for t in high_sparsity.TASKS] + [_rec("sst2", 90.0, 0.0, tag="67k-3ep")]
    store += [_fisher(t, 72.0, "fisher-20ep") for t in high_sparsity.TASKS] + [_fisher("cola", 76.0, "fisher-20ep", seed=43)]
    store += [_fisher("sst2", 90.0, "fisher-67k-3ep"), _fisher("mrpc", 70.0, "fisher-lr2e-4")]  # the last has no twin
    rows = _like_for_like_rows(store, monkeypatch)
    # cola: the mean of seeds 42 and 43 (74) over the twin's 80; the row's share: (4·72 + 74) / (5·80)
    assert rows["fisher-20ep"][5:] == ["20ep", "90.0%", "90.0%", "90.0%", "92.5%", "90.0%", "90.5%", "90.0%", "5"]
    assert rows["fisher-67k-3ep"][5:] == ["67k-3ep", "-", "-", "-", "-", "100.0%", "100.0%", "100.0%", "1"]
    assert rows["fisher-20ep; sst2 from fisher-67k-3ep"][5:] == [
        "20ep; sst2: 67k-3ep", "90.0%", "90.0%", "90.0%", "92.5%", "100.0%", "92.7%", "90.0%", "5"]  # (3·72 + 74 + 90) / (4·80 + 90)
    assert "fisher-lr2e-4" not in rows


def test_like_for_like_skips_another_budget_and_a_twin_without_a_share(monkeypatch):
    store = [_rec("mrpc", 80.0, 0.0, tag="10ep"), _rec("cola", 0.0, 0.0, tag="10ep"), _rec("rte", 50.0, 0.0, tag="10ep")]
    store += [_fisher("mrpc", 72.0, "fisher-10ep"), _fisher("cola", 5.0, "fisher-10ep")]
    store += [_fisher("rte", 40.0, "fisher-10ep", epochs=10.0)]  # the twin ran 5 epochs here: not like for like
    rows = _like_for_like_rows(store, monkeypatch)
    # cola's twin scored 0: no share of its own, but its scores still count in the row's sums: 77 / 80
    assert rows["fisher-10ep"][5:] == ["10ep", "90.0%", "-", "-", "-", "-", "96.2%", "90.0%", "2"]
