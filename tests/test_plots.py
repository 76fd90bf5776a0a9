"""Figures, mask structure, t-SNE overlap, the HTML report (rendered in headless Chromium), compare."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from bertprune import plots
from bertprune.cli import run
from bertprune.embeddings import neighbour_overlap, tsne_compare
from bertprune.report import sparsity_report
from bertprune.structure import block_density, downsample_for_display, mask_structure

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.parametrize("shape, block", [((384, 1536), (7, 13)), ((30, 50), (4, 4)), ((64, 64), (64, 64)), ((5, 3), (1, 1))])
def test_block_density_preserves_the_number_of_zeros(shape, block):
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(shape, generator=g) > 0.83
    density, size = block_density(mask, *block)
    assert size.sum() == mask.numel()
    assert np.isclose(((1 - density) * size).sum(), int((~mask).sum()))
    shown, blocks = downsample_for_display(mask, 96)
    assert max(shown.shape) <= 96
    _, sizes = block_density(mask, *blocks)
    assert np.isclose(((1 - shown) * sizes).sum(), int((~mask).sum()))


def test_structure_numbers_tell_structured_from_random():
    g = torch.Generator().manual_seed(0)
    random_mask = torch.rand(64, 64, generator=g) > 0.5
    structured = torch.ones(64, 64, dtype=torch.bool)
    structured[:32] = False  # half the rows (= 2 of 4 heads of a query matrix) pruned
    r, s = mask_structure(random_mask, "query", 4), mask_structure(structured, "query", 4)
    assert r["zero_rows"] == 0 and r["zero_heads"] == 0 and r["empty_blocks"] < 0.05
    assert s["zero_rows"] == 0.5 and s["zero_heads"] == 0.5 and s["empty_blocks"] == 0.5 and s["zero_cols"] == 0
    cols = mask_structure(structured.t(), "attn_out", 4)  # attn_out: a head owns columns
    assert cols["zero_heads"] == 0.5 and cols["zero_cols"] == 0.5
    assert abs(sum(s["block_density_hist"]) - 1) < 1e-6


@pytest.fixture(scope="module")
def gmp_run(tiny_models, tiny_glue, tmp_path_factory):
    out = tmp_path_factory.mktemp("plots") / "gmp"
    assert run(["finetune", "--task", "sst2", "--model", str(tiny_models["bert"]), "--glue-dir", str(tiny_glue), "-o", str(out),
                "--epochs", "2", "--batch-size", "16", "--method", "gmp", "--sparsity", "0.8", "--quiet",
                "prune.schedule.every=1", "train.log_every=1", "data.max_length=32"]) == 0
    return out


def _nonempty(paths):
    assert {p.suffix for p in paths} == {".png", ".svg"}
    for p in paths:
        assert p.stat().st_size > 1000, p


def test_each_plot_writes_a_non_empty_image(gmp_run, tmp_path):
    report = sparsity_report(gmp_run)
    weights = {m["name"]: m for m in report["matrices"]}
    from safetensors.torch import load_file

    w = load_file(str(gmp_run / "final" / "model.safetensors"))
    masks = {f"layer {m['layer']} {m['role']}": w[n] != 0 for n, m in list(weights.items())[:4]}
    masks["big"] = torch.rand(700, 300) > 0.9  # larger than the figure: drawn as block densities
    _nonempty(plots.sparsity_patterns(masks, tmp_path / "patterns"))
    _nonempty(plots.layer_sparsity(report, tmp_path / "layers"))
    _nonempty(plots.sparsity_trajectory(gmp_run / "metrics.jsonl", tmp_path / "traj"))
    _nonempty(plots.metric_vs_sparsity({"gmp": [(0.5, 80.0), (0.9, 70.0)], "rpp": [(0.5, 81.0), (0.9, 75.0)]},
                                       tmp_path / "curve", "accuracy", dense=82.0))
    _nonempty(plots.bars({"a": 1.0, "b": 2.0}, tmp_path / "bars", "x"))


def test_tsne_overlap_is_one_for_identical_models_and_lower_for_a_perturbed_one(tiny_models, tmp_path):
    from transformers import AutoModel

    same = tsne_compare(str(tiny_models["bert"]), str(tiny_models["bert"]), tmp_path / "same", focus="good", n_words=60, k=5)
    assert same["overlap"] == 1.0 and same["focus_overlap"] == 1.0
    _nonempty([Path(p) for p in same["figures"]])
    perturbed = tmp_path / "perturbed"
    model = AutoModel.from_pretrained(tiny_models["bert"])
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "encoder" in name and p.dim() == 2:
                p.add_(0.5 * torch.randn_like(p))
    model.save_pretrained(perturbed)
    for f in ("vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"):
        if (tiny_models["bert"] / f).exists():
            shutil.copy(tiny_models["bert"] / f, perturbed / f)
    other = tsne_compare(str(tiny_models["bert"]), str(perturbed), tmp_path / "other", focus="good", n_words=60, k=5)
    assert other["overlap"] < 0.9
    a = np.random.default_rng(0).normal(size=(50, 8))
    assert neighbour_overlap(a, a, 5) == 1.0 and neighbour_overlap(a, a + np.random.default_rng(1).normal(size=a.shape), 5) < 1.0


def _chromium(args, cwd):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={cwd / 'profile'}", "--window-size=1280,1000",
             "--virtual-time-budget=5000"]
    return subprocess.run([CHROMIUM, *flags, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_html_report_embeds_every_image(gmp_run, tmp_path):
    from bertprune.html_report import build_html

    out = build_html(gmp_run, tmp_path / "report.html", seq_len=32)
    text = out.read_text()
    imgs = text.count("<img ")
    assert imgs >= 3 and text.count('src="data:image/png;base64,') == imgs  # every image embedded
    assert "src=\"http" not in text and "src=\"file" not in text
    for needle in ("Sparsity per layer and role", "Sparsity patterns", "Structure of the mask", "Sparsity over training", "Config"):
        assert needle in text


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_html_report_renders_in_headless_chromium(gmp_run, tmp_path):
    assert run(["report", str(gmp_run), "--html", str(tmp_path / "r.html")]) == 0
    dom = _chromium(["--dump-dom", (tmp_path / "r.html").as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    import html
    import re

    found = re.search(r'data-check="([^"]+)"', dom.stdout)
    assert found, "the page's self-check did not run"
    check = json.loads(html.unescape(found.group(1)))
    assert check["images"] >= 3 and check["broken"] == 0
    assert check["page_overflow"] is False and check["wide_elements"] == 0
    shot = _chromium(["--screenshot=" + str(tmp_path / "shot.png"), (tmp_path / "r.html").as_uri()], tmp_path)
    assert shot.returncode == 0 and (tmp_path / "shot.png").stat().st_size > 10_000


def test_compare_and_curve_cli(gmp_run, tiny_models, tmp_path, capsys):
    assert run(["compare", str(gmp_run), str(tiny_models["bert"]), "-o", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "| gmp | sst2 | gmp | 0.80 |" in out and (tmp_path / "cmp" / "compare-macs.png").stat().st_size > 1000
    records = tmp_path / "r.jsonl"
    rows = [{"task": "mlm", "method": "dense", "target_sparsity": 0.0, "achieved_sparsity": 0.0, "main_metric": 40.0},
            {"task": "mlm", "method": "gmp", "target_sparsity": 0.5, "achieved_sparsity": 0.5, "main_metric": 35.0},
            {"task": "mlm", "method": "rpp", "target_sparsity": 0.5, "achieved_sparsity": 0.5, "main_metric": 37.0},
            {"task": "mlm", "method": "rpp", "target_sparsity": 0.8, "achieved_sparsity": 0.8, "main_metric": 30.0, "stage": "sweep"},
            # head training alone is no dense baseline (it comes last here, where it would win)
            {"task": "mlm", "method": "dense", "target_sparsity": 0.0, "achieved_sparsity": 0.0, "main_metric": 9.0, "stage": "head"}]
    records.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert run(["curve", str(records), "--task", "mlm", "-o", str(tmp_path / "curve")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dense"] == 40.0 and result["series"] == {"gmp": [[0.5, 35.0]], "rpp": [[0.5, 37.0]]}
    assert (tmp_path / "curve.png").stat().st_size > 1000
