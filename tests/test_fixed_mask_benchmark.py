"""benchmarks/fixed_mask.py: the start it builds (weights × mask), a smoke run of the driver on a tiny model
(teacher, fixed-mask run, record, table) and its labels."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import fixed_mask  # noqa: E402
from bertprune.masks import Masks  # noqa: E402
from bertprune.testing import save_tiny_model  # noqa: E402
import records  # noqa: E402


def test_one_shot_masks_rank_all_matrices_together():
    w = {"a": torch.tensor([[1.0, -5.0], [0.5, 2.0]]), "b": torch.tensor([[-0.1, 3.0], [4.0, 0.2]])}
    kept = fixed_mask.one_shot_masks(w, ["a", "b"], 0.5)  # the 4 smallest |w| of 8: 0.1, 0.2, 0.5, 1.0
    assert kept["a"].tolist() == [[False, True], [False, True]]
    assert kept["b"].tolist() == [[False, True], [True, False]]


@pytest.mark.parametrize("mask", ["magnitude", "zeros", "file", "vote"])
def test_build_start_bakes_the_mask_into_the_weights(tmp_path, mask):
    model = save_tiny_model(tmp_path / "model", "bert")
    given, arg = None, mask
    w = load_file(str(model / "model.safetensors"))
    torch.manual_seed(1)
    if mask == "file":  # a bare encoder's mask from another run, e.g. a universal model's
        given = Masks({n: torch.rand(t.shape) > 0.7 for n, t in w.items() if n.endswith("query.weight")})
        given.save(tmp_path / "given.safetensors")
        arg = str(tmp_path / "given.safetensors")
    if mask == "vote":  # three other runs' masks of the same matrices
        voters = [Masks({n: torch.rand(t.shape) > 0.5 for n, t in w.items() if n.endswith("dense.weight")}) for _ in range(3)]
        arg = [str(tmp_path / f"voter{i}.safetensors") for i in range(3)]
        for m, f in zip(voters, arg):
            m.save(f)
    kept = fixed_mask.build_start(model, arg, 0.8, tmp_path / "start")
    w = load_file(str(tmp_path / "start" / "model.safetensors"))
    masks = Masks.load(tmp_path / "start" / "mask.safetensors")
    assert (tmp_path / "start" / "config.json").is_file()
    for n, m in masks.masks.items():
        assert torch.equal(w[n] != 0, m), n  # the zeros are exactly the mask's (random weights have no zeros)
    if mask == "magnitude":
        assert kept == pytest.approx(0.2, abs=1e-3) and len(masks) == 6 * 2  # six roles, two layers
    elif mask == "zeros":
        assert kept == 1.0
    elif mask == "vote":
        assert kept == pytest.approx(0.2, abs=1e-3) and set(masks.masks) == set(voters[0].masks)
        votes = torch.cat([sum(v[n].flatten().int() for v in voters) for n in masks.names()])
        keep = torch.cat([masks[n].flatten() for n in masks.names()])
        assert int(votes[keep].min()) >= int(votes[~keep].max())  # no pruned entry has more votes than a kept one
        mag = torch.cat([w[n].abs().flatten() for n in masks.names()])
        cut = votes == int(votes[keep].min())  # the vote count the cut falls in: |w| of the start decides there
        assert float(mag[cut & keep].min()) >= float(mag[cut & ~keep].max())
    else:
        assert set(masks.masks) == set(given.masks) and kept == pytest.approx(1 - given.sparsity())


def test_a_single_mask_keeps_its_command_and_run_folder_and_a_vote_names_its_sparsity():
    import argparse

    own = "runs/bench-high-sparsity/mrpc-sparse-kd-0.9-fisher-20ep-s42-5a729f69/final/mask.safetensors"
    args = argparse.Namespace(glue_dir="../shared/data/glue", model=fixed_mask.high_sparsity.DEFAULT_MODEL, start="pretrained",
                              mask=own, sparsity=0.9, teachers=fixed_mask.TEACHERS, teacher_seed=None, set=[])
    # the folder and the command of the run recorded at commit 7bddec4, before votes existed
    assert fixed_mask.run_name("mrpc", args, 42) == "mrpc-pretrained-mrpc-sparse-kd-0.9-fisher-20ep-s42-5a729f69-s42-4be9a6"
    assert fixed_mask.command_args(args, "mrpc", 42) == ["--glue-dir", "../shared/data/glue", "--tasks", "mrpc", "--seeds",
                                                         "42", "--start", "pretrained", "--mask", own]
    args.mask = ["a/final/mask.safetensors", "b/final/mask.safetensors"]
    assert fixed_mask.command_args(args, "stsb", 42)[-5:] == ["--mask", *args.mask, "--sparsity", "0.9"]
    assert fixed_mask.run_name("stsb", args, 42).startswith("stsb-pretrained-vote2-s42-")


def test_labels_name_the_run_folder():
    assert fixed_mask.start_label("runs/u/all-MiniLM-0.9/final") == "all-MiniLM-0.9"
    assert fixed_mask.mask_label("runs/u/all-MiniLM-0.9/final/mask.safetensors") == "all-MiniLM-0.9"
    assert (fixed_mask.start_label("teacher"), fixed_mask.mask_label("magnitude")) == ("teacher", "magnitude")
    assert fixed_mask.mask_label(["r/a/final/mask.safetensors", "r/b/final/mask.safetensors"]) == "vote(a+b)"


@pytest.mark.slow
def test_driver_trains_teacher_then_a_fixed_mask_run(tiny_glue, tmp_path):
    model = save_tiny_model(tmp_path / "model", "bert", positions=128)
    env = {"BERTPRUNE_BENCH_RESULTS": str(tmp_path / "results"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, str(REPO / "benchmarks" / "fixed_mask.py"), "--glue-dir", str(tiny_glue), "--model", str(model),
           "--tasks", "sst2", "--start", "teacher", "--mask", "magnitude", "--sparsity", "0.7", "--quiet",
           "--teachers", str(tmp_path / "teachers"), "--out-dir", str(tmp_path / "runs"),
           "--set", "train.epochs=1", "train.mixed_precision=no", "data.max_length=32"]
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, capture_output=True)
    recs = [json.loads(x) for x in (tmp_path / "results" / "fixed_mask.jsonl").read_text().splitlines()]
    assert len(recs) == 1 and set(records.REQUIRED) <= set(recs[0])
    assert len(recs[0]["mask_sha256"]) == len(recs[0]["start_sha256"]) == 64
    r = recs[0]
    assert (r["start"], r["mask"], r["target_sparsity"]) == ("teacher", "magnitude", 0.7)
    assert r["achieved_sparsity"] == pytest.approx(0.7, abs=1e-3)  # the mask stayed fixed through training
    run = next((tmp_path / "runs").iterdir())
    start = Masks.load(run / "start" / "mask.safetensors")
    final = load_file(str(run / "run" / "final" / "model.safetensors"))
    for n, m in start.aligned(final).masks.items():
        assert torch.equal(final[n] != 0, m), n
    md = (tmp_path / "results" / "fixed_mask.md").read_text()
    assert "| sst2 | teacher | magnitude | 0.70 |" in md
    # --resume skips a run this commit has recorded
    subprocess.run(cmd + ["--resume"], check=True, env=env, cwd=tmp_path, capture_output=True)
    assert len((tmp_path / "results" / "fixed_mask.jsonl").read_text().splitlines()) == 1


def test_a_mask_that_prunes_nothing_is_refused(tiny_glue, tmp_path):
    model = save_tiny_model(tmp_path / "model", "bert", positions=128)  # random weights: no exact zeros
    env = {"BERTPRUNE_BENCH_RESULTS": str(tmp_path / "results"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(REPO / "benchmarks" / "fixed_mask.py"), "--glue-dir", str(tiny_glue), "--tasks", "sst2",
           "--start", str(model), "--mask", "zeros", "--teachers", str(tmp_path / "teachers"), "--out-dir",
           str(tmp_path / "runs"), "--quiet", "--set", "train.epochs=1", "train.mixed_precision=no", "data.max_length=32",
           "--model", str(model)]
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0 and "prunes nothing" in out.stderr
    assert not (tmp_path / "results" / "fixed_mask.jsonl").exists()


def test_task_view_groups_masks_by_kind_and_averages_full_rows():
    def rec(task, mask, score, teacher=50.0, seed=42):
        return {"task": task, "start": "pretrained", "mask": mask, "target_sparsity": 0.9, "seed": seed,
                "main_metric": score, "teacher_metric": teacher, "epochs": 5,
                "command": f"python benchmarks/fixed_mask.py --tasks {task} --mask {mask}"}

    assert fixed_mask.mask_kind("stsb", "stsb-sparse-kd-0.9-fisher-20ep-s42-d95") == "the task's own run"
    assert fixed_mask.mask_kind("stsb", "vote(mrpc-x+rte-y)") == "vote of 2 runs, not the task's own"
    assert fixed_mask.mask_kind("rte", "vote(mrpc-x+rte-y)") == "vote of 2 runs, the task's own among them"
    assert fixed_mask.mask_kind("stsb", "universal-0.9") == "universal-0.9"
    tasks = ["mrpc", "stsb", "rte", "cola", "sst2"]
    recs = [rec(t, f"vote({'+'.join(o + '-r' for o in tasks if o != t)})", 40.0 + i) for i, t in enumerate(tasks)]
    recs += [rec("stsb", "u", 10.0), rec("cola", "u", 5.0), rec("cola", "u", 99.0, seed=43), rec("mrpc", "m", 1.0)]
    recs += [{**rec("mrpc", "u", 77.0), "epochs": 20}]  # another budget: its own row (of one task: not shown)
    lr = [{**rec(t, "u", 60.0), "command": f"python benchmarks/fixed_mask.py --tasks {t} --set train.lr=3e-4"} for t in ("stsb", "rte")]
    recs += lr + [rec("stsb", "u", 11.0)]  # a newer record of the same cell and seed replaces the older
    lines = fixed_mask.task_view(recs)
    vote_row = next(x for x in lines if "vote of 4 runs, not the task's own" in x)
    assert "| 40.00 | 41.00 | 42.00 | 43.00 | 44.00 | 42.00 | 50.00 | 84.0% |" in vote_row
    u_row = next(x for x in lines if "| u |" in x)  # the first seed's record fills a cell; an incomplete row has no average
    assert "| 5 | - | - | 11.00 | - | 5.00 | - | - | - | - |" in u_row and "77.00" not in "".join(lines)
    assert any("| 5 | train.lr=3e-4 | - | 60.00 | 60.00 |" in x for x in lines)  # other overrides: another row
    assert fixed_mask.variant("python b.py --teacher-seed 42 --set train.epochs=20 distill.hardness=0.5") == \
        "--teacher-seed 42 distill.hardness=0.5"
    assert not any("| m |" in x for x in lines)  # one task only: not a row of this view
