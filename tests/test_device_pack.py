"""scripts/device_pack.py: what travels to a lent GPU machine comes back as the fp16-rounded model in fp32 and
the GLUE files unchanged."""

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from bertprune.testing import save_tiny_model

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import device_pack  # noqa: E402


def test_pack_then_unpack_gives_the_rounded_model_in_fp32_and_the_glue_files(tmp_path):
    model = save_tiny_model(tmp_path / "model", "bert")
    glue = tmp_path / "glue"
    for task in device_pack.TASK_FOLDERS:
        (glue / task).mkdir(parents=True)
        for split in ("train.tsv", "dev.tsv", "test.tsv"):
            (glue / task / split).write_text(f"{task} {split}\n")
    squad = tmp_path / "squad"
    squad.mkdir()
    for name in device_pack.SQUAD_FILES:
        (squad / name).write_text(f'{{"name": "{name}"}}')
    subprocess.run([sys.executable, str(REPO / "scripts" / "device_pack.py"), "pack", "--glue-dir", str(glue), "--model",
                    str(model), "--squad-dir", str(squad), "--out", str(tmp_path / "pack")], check=True, capture_output=True)
    packed = load_file(tmp_path / "pack" / "model16" / device_pack.WEIGHTS)
    assert {v.dtype for v in packed.values() if v.is_floating_point()} == {torch.float16}
    device_pack.unpack(tmp_path / "pack", tmp_path / "there")
    original = load_file(model / device_pack.WEIGHTS)
    back = load_file(tmp_path / "there" / device_pack.MODEL_NAME / device_pack.WEIGHTS)
    assert back.keys() == original.keys()
    for k, v in original.items():
        assert back[k].dtype == v.dtype
        assert torch.equal(back[k], v.half().to(v.dtype) if v.is_floating_point() else v)
    assert (tmp_path / "there" / device_pack.MODEL_NAME / "vocab.txt").read_text() == (model / "vocab.txt").read_text()
    for task in device_pack.TASK_FOLDERS:
        assert (tmp_path / "there" / "glue" / task / "dev.tsv").read_text() == f"{task} dev.tsv\n"
        assert not (tmp_path / "there" / "glue" / task / "test.tsv").exists()  # test sets stay behind
    for name in device_pack.SQUAD_FILES:
        assert (tmp_path / "there" / "squad" / name).read_text() == (squad / name).read_text()


def test_device_epochs_picks_the_most_epochs_that_fit_from_the_slowest_matching_record(tmp_path):
    import device_epochs

    # 268 steps × 0.1 s × 1.5 = 40.2 s per epoch: 10 epochs take 402 s, 15 take 603 s
    assert device_epochs.epochs_that_fit(0.1, 268, 1.5, 500, [30, 20, 15, 10, 8, 5], 20) == 10
    assert device_epochs.epochs_that_fit(0.1, 268, 1.5, 500, [30, 20, 15, 10, 8, 5], 8) == 8  # the cap
    assert device_epochs.epochs_that_fit(0.1, 268, 1.5, 100, [10, 8, 5], 20) is None
    records = tmp_path / "r.jsonl"
    rows = [{"model": "m", "recipe": "teacher", "sec_per_step": 0.1}, {"model": "m", "recipe": "teacher", "sec_per_step": 0.2},
            {"model": "m", "recipe": "sparse-kd", "sec_per_step": 9.0}, {"model": "other", "recipe": "teacher", "sec_per_step": 9.0}]
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert device_epochs.measured_step(records, "m", {"recipe": "teacher"}, 0.05) == 0.2
    assert device_epochs.measured_step(records, "x", {}, 0.05) == 0.05
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "device_epochs.py"), str(records), "--model", "/a/m",
                          "--elapsed", "100", "--where", "recipe=teacher", "--steps-per-epoch", "268", "--factor", "1.5",
                          "--choices", "30", "20", "15", "10", "8", "5", "--fallback", "2", "--budget", "560"],
                         check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "5"  # 0.2 s/step: 80.4 s per epoch, 420 s left → 5 epochs (402 s)
