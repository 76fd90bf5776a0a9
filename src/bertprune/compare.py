"""``bertprune compare`` and ``bertprune curve``: runs side by side, and metric against sparsity.

``compare`` takes run folders (or checkpoints) and puts them in one table and one set of bar charts:
headline metric, sparsity, non-zero encoder weights and multiply-accumulates per sequence (counted
in the saved weights). ``curve`` draws the headline metric against sparsity, one line per method,
from benchmark records (``benchmarks/results/*.jsonl``) or run folders, with the dense runs as a line.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from .errors import BertpruneError
from .paths import make_output_dir
from .report import find_checkpoint, sparsity_report


def run_summary(path: str | Path) -> dict:
    folder = find_checkpoint(path)
    root = folder.parent if (folder.parent / "results.json").is_file() else None
    report = sparsity_report(folder)
    row = {"run": Path(path).name, "path": str(path), "task": None, "method": None, "target": None, "metric_name": None,
           "metric": None, "achieved": report["sparsity"]["targeted"], "nonzero": report["params"]["encoder_linear_nonzero"],
           "macs": report["macs"]["sparse"], "seq_len": report["seq_len"]}
    if root is not None:
        row.update(_results(root / "results.json"))
    return row


def _results(file: Path) -> dict:
    """task, method, target and headline metric of a run's results.json, checked."""
    r = _json(file.read_bytes(), f"{file}")
    try:
        name = r["main_metric"]
        out = {"task": r["task"], "method": r["method"], "target": float(r["target_sparsity"]), "metric_name": name,
               "metric": 100 * float(r["final"]["dev"][name])}
    except (KeyError, TypeError, ValueError) as e:
        raise BertpruneError(f"{file} is not a bertprune results.json (bad or missing {e}); the run may be "
                             f"unfinished or the file edited. Re-run it, or leave it out.") from None
    if not isinstance(out["task"], str) or not isinstance(out["method"], str) or not isinstance(name, str):
        raise BertpruneError(f"{file}: task, method and main_metric must be strings; the file was edited or is not bertprune's")
    return out


def _json(raw: bytes, where: str):
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BertpruneError(f"{where} is not JSON ({e}); a record file holds one JSON object per line") from None


def compare_runs(paths: Sequence[str | Path], out_dir: str | Path) -> tuple[str, list[Path]]:
    from . import plots

    rows = [run_summary(p) for p in paths]
    names = [r["run"] if [x["run"] for x in rows].count(r["run"]) == 1 else r["path"] for r in rows]
    lines = ["| run | task | method | target | achieved sparsity | non-zero encoder weights | MACs/sequence | metric |",
             "|---|---|---|---|---|---|---|---|"]
    for n, r in zip(names, rows):
        metric = f"{r['metric_name']} {r['metric']:.2f}" if r["metric"] is not None else "-"
        target = f"{r['target']:.2f}" if r["target"] is not None else "-"
        lines.append(f"| {n} | {r['task'] or '-'} | {r['method'] or '-'} | {target} | {r['achieved']:.4f} | "
                     f"{r['nonzero']:,} | {r['macs'] / 1e6:,.1f} M | {metric} |")
    out = make_output_dir(out_dir, "--out")  # after the inputs were read, before any figure
    figures = []
    if all(r["metric"] is not None for r in rows):
        figures += plots.bars(dict(zip(names, [r["metric"] for r in rows])), out / "compare-metric", "headline metric (0-100)", "metric")
    figures += plots.bars(dict(zip(names, [r["achieved"] for r in rows])), out / "compare-sparsity", "sparsity", "sparsity of the targeted matrices")
    figures += plots.bars(dict(zip(names, [r["nonzero"] / 1e6 for r in rows])), out / "compare-nonzero", "millions", "non-zero encoder weights")
    figures += plots.bars(dict(zip(names, [r["macs"] / 1e6 for r in rows])), out / "compare-macs", "millions",
                          f"MACs per sequence of {rows[0]['seq_len']} tokens, zeros skipped")
    table = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table)
    return table, [f for f in figures if f.suffix == ".png"]


def curve_points(inputs: Sequence[str | Path], task: str) -> tuple[dict[str, list[tuple[float, float]]], float | None, str]:
    """(method → [(sparsity, metric)], dense metric, metric name) from records and run folders.
    Sweep records (``stage: sweep``) and head-training records (``stage: head``: only the MLM head was
    trained, so it is no dense baseline of the same steps) are left out; the newest record per point wins."""
    points: dict[tuple[str, float], float] = {}
    dense, metric_name = [], None
    for item in inputs:
        p = Path(item)
        if p.suffix == ".jsonl":
            for method, target, metric in _record_points(p, task):
                if target == 0:  # dense runs make the baseline line (dense+mlm etc. are left out)
                    if method == "dense":
                        dense.append(metric)
                    continue
                points[(method, round(target, 4))] = metric
        else:
            if not (p / "results.json").is_file():
                raise BertpruneError(
                    f"{p} is neither a benchmark record file (*.jsonl) nor a finished run folder (with results.json); "
                    f"pass `bertprune finetune` output folders or benchmarks/results/*.jsonl"
                )
            row = run_summary(p)
            if row["task"] != task:
                continue
            metric_name = row["metric_name"]
            if row["method"] == "dense":
                dense.append(row["metric"])
            else:
                points[(row["method"], round(row["achieved"], 4))] = row["metric"]
    if not points and not dense:
        raise BertpruneError(f"no records or runs of task {task!r} in {list(map(str, inputs))}")
    series = defaultdict(list)
    for (method, s), v in sorted(points.items()):
        series[method].append((s, v))
    return dict(series), (dense[-1] if dense else None), metric_name or "headline metric (0-100)"


def _record_points(path: Path, task: str) -> list[tuple[str, float, float]]:
    """(method, target sparsity, headline metric) of the usable records of ``task`` in a .jsonl file."""
    if not path.is_file():
        raise BertpruneError(f"record file not found: {path}; pass benchmark records (*.jsonl) or run folders")
    out = []
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        r = _json(line, f"{path}, line {n}")
        if not isinstance(r, dict):
            raise BertpruneError(f"{path}, line {n}: a record is a JSON object, found {type(r).__name__}")
        if r.get("task") != task or r.get("stage") in ("sweep", "head") or r.get("reused_from"):
            continue
        method, target, metric = r.get("method"), r.get("target_sparsity"), r.get("main_metric")
        if not isinstance(method, str) or not _number(target) or not _number(metric):
            raise BertpruneError(
                f"{path}, line {n}: a record needs method (a string), target_sparsity and main_metric (numbers); "
                f"found {method!r}, {target!r}, {metric!r}"
            )
        out.append((method, float(target), float(metric)))
    return out


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
