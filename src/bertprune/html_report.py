"""``bertprune report PATH --html``: one self-contained HTML file (images embedded as data URIs)
with the sparsity and parameter tables, the figures, the mask's structure, the run's config and
metrics, and — when the run kept a universal mask fixed — how much of that mask's zeros remain.

The page checks itself when it loads (every image decoded, nothing wider than the window) and
writes the result to ``<body data-check=...>``, which the tests read back from headless Chromium.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from .report import find_checkpoint, read_weights, sparsity_report
from .structure import mask_structure

CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
td, th { border: 1px solid #ccc; padding: .2em .5em; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.scroll { overflow-x: auto; max-width: 100%; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
pre { background: #f7f7f7; padding: .6em; font-size: .8em; overflow-x: auto; max-width: 100%; }
.note { color: #666; font-size: .85em; }
"""

SELF_CHECK = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  var doc = document.documentElement;
  var wide = Array.prototype.slice.call(document.querySelectorAll('img, table, pre, h1, h2, p')).filter(function (e) {
    return !e.closest('.scroll') && e.getBoundingClientRect().right > doc.clientWidth + 1;
  }).length;
  document.body.setAttribute('data-check', JSON.stringify({images: imgs.length, broken: broken,
    page_overflow: doc.scrollWidth > doc.clientWidth + 1, wide_elements: wide}));
});
</script>
"""


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _fmt(x, digits=4):
    return f"{x:.{digits}f}" if isinstance(x, float) else (f"{x:,}" if isinstance(x, int) else x)


def pattern_choice(report: dict) -> list[dict]:
    """Query and key of the first, middle and last layers, and ffn_in of the middle one."""
    layers = sorted({m["layer"] for m in report["matrices"] if m["layer"] is not None})
    if not layers:
        return []
    picks = sorted({layers[0], layers[len(layers) // 2], layers[-1]})
    by = {(m["layer"], m["role"]): m for m in report["matrices"]}
    chosen = [by[(layer, role)] for layer in picks for role in ("query", "key") if (layer, role) in by]
    if (layers[len(layers) // 2], "ffn_in") in by:
        chosen.append(by[(layers[len(layers) // 2], "ffn_in")])
    return chosen


def structure_rows(report: dict, weights: dict[str, torch.Tensor], num_heads: int | None) -> list[list[Any]]:
    rows = []
    for m in report["matrices"]:
        s = mask_structure(weights[m["name"]] != 0, m["role"], num_heads)
        rows.append([f"{m['layer']}.{m['role']}", _fmt(s["sparsity"]), _fmt(s["zero_rows"]), _fmt(s["zero_cols"]),
                     _fmt(s["zero_heads"]) if "zero_heads" in s else "-", _fmt(s["empty_blocks"]),
                     " ".join(f"{v:.2f}" for v in s["block_density_hist"])])
    return rows


def build_html(path: str | Path, out: str | Path, seq_len: int = 128, tsne: bool = False, focus: str = "intelligent") -> Path:
    from . import plots

    report = sparsity_report(path, seq_len)
    folder = find_checkpoint(path)
    run_root = folder.parent if (folder.parent / "config.yaml").is_file() else None
    weights = read_weights(folder)
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    num_heads = config.get("num_attention_heads") or config.get("n_heads")
    parts = [f"<h1>bertprune report</h1><p class='note'>{html.escape(str(folder))}</p>"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p, s, m = report["params"], report["sparsity"], report["macs"]
        parts.append("<h2>Sparsity and size</h2>" + _table(["quantity", "value"], [
            ["parameters (all)", _fmt(p["total"])], ["non-zero parameters (all)", _fmt(p["nonzero"])],
            ["targeted matrices: parameters / non-zero", f"{p['targeted']:,} / {p['targeted_nonzero']:,}"],
            ["targeted sparsity (exact zeros)", _fmt(s["targeted"])],
            ["encoder linear weights: dense / non-zero", f"{p['encoder_linear']:,} / {p['encoder_linear_nonzero']:,}"],
            ["encoder compression", f"{report['encoder_compression']:.2f}x"],
            [f"MACs per sequence of {seq_len} tokens: dense / zeros skipped", f"{m['dense']:,} / {m['sparse']:,}"],
        ] + ([["mask file", f"{report['mask']['tensors']} tensors, sparsity {report['mask']['sparsity']:.4f}, weights respect it: "
               f"{report['mask']['weights_respect_mask']}"]] if "mask" in report else [])))
        if report["layers"]:
            parts.append("<h2>Sparsity per layer and role</h2>" + _img(plots.layer_sparsity(report, tmp / "layers")[0]))
            roles = [r for r in ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")]
            parts.append(_table(["layer"] + roles, [[row["layer"]] + [_fmt(row.get(r, float("nan")), 3) for r in roles] for row in report["layers"]]))
        chosen = pattern_choice(report)
        if chosen:
            masks = {f"layer {c['layer']} {c['role']}": weights[c["name"]] != 0 for c in chosen}
            parts.append("<h2>Sparsity patterns</h2><p class='note'>Share of kept weights per block (white: all pruned); "
                         "matrices larger than the figure are shown as block densities.</p>"
                         + _img(plots.sparsity_patterns(masks, tmp / "patterns")[0]))
        if report["matrices"]:
            parts.append("<h2>Structure of the mask</h2><p class='note'>Share of all-zero rows, columns and heads, of empty "
                         "8x8 blocks, and the histogram of 8x8-block densities (10 bins from 0 to 1). A uniformly random mask "
                         "has almost no all-zero rows, columns or heads.</p>"
                         + _table(["matrix", "sparsity", "zero rows", "zero cols", "zero heads", "empty blocks", "block density histogram"],
                                  structure_rows(report, weights, num_heads)))
        if run_root is not None and (run_root / "metrics.jsonl").is_file():
            recs = [json.loads(x) for x in (run_root / "metrics.jsonl").read_text().splitlines() if x.strip()]
            if any("sparsity" in r for r in recs):
                parts.append("<h2>Sparsity over training</h2>" + _img(plots.sparsity_trajectory(run_root / "metrics.jsonl", tmp / "traj")[0]))
        if "universal_mask" in report:
            u = report["universal_mask"]
            parts.append(f"<h2>Universal mask</h2><p>Mask equals the universal mask <code>{html.escape(u['file'])}</code>: "
                         f"<b>{u['mask_equal']}</b>; share of its zeros still zero: <b>{u['universal_zeros_still_zero']:.4f}</b>.</p>"
                         + _table(["layer", "role", "universal zeros", "still zero", "share kept"],
                                  [[r["layer"], r["role"], _fmt(r["universal_zeros"]), _fmt(r["still_zero"]), _fmt(r["share_kept"])]
                                   for r in u["matrices"]]))
        if tsne and run_root is not None:
            import yaml

            from .embeddings import tsne_compare

            start = (yaml.safe_load((run_root / "config.yaml").read_text()) or {}).get("model", {}).get("name")
            if start:
                t = tsne_compare(start, str(folder), tmp / "tsne", focus=focus, labels=("start", "this model"))
                parts.append(f"<h2>Word embeddings (t-SNE)</h2><p>Mean overlap of each word's {t['k']} nearest neighbours "
                             f"between the starting model and this one: <b>{t['overlap']:.3f}</b> ({t['words']} words, "
                             f"{t['kind']} embeddings).</p>" + _img(Path(t["figures"][0])))
        if run_root is not None:
            results = run_root / "results.json"
            if results.is_file():
                r = json.loads(results.read_text())
                parts.append("<h2>Results</h2><pre>" + html.escape(json.dumps({k: r[k] for k in r if k != "head_training"}, indent=1)) + "</pre>")
            parts.append("<h2>Config</h2><pre>" + html.escape((run_root / "config.yaml").read_text()) + "</pre>")
        parts.append("<h2>Every matrix</h2>" + _table(["matrix", "role", "shape", "non-zero", "sparsity"], [
            [x["name"], x["role"], "x".join(map(str, x["shape"])), _fmt(x["nonzero"]), _fmt(x["sparsity"])] for x in report["matrices"]]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>bertprune report</title><style>{CSS}</style>"
                   f"</head><body>{''.join(parts)}{SELF_CHECK}</body></html>")
    return out
