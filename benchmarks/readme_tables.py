"""Print the README's summary tables from the committed records (so the README never drifts from them).

    python benchmarks/readme_tables.py                 # print them
    python benchmarks/readme_tables.py --write-readme  # replace the tables after the README's markers
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402

GLUE_TASKS = ["mrpc", "stsb", "rte", "cola", "sst2"]
MAIN = {"sst2": "acc", "mrpc": "F1", "stsb": "Spearman", "cola": "MCC", "rte": "acc"}


def glue() -> str:
    recs = records.latest(records.read("glue_magnitude"), key=lambda r: (r["task"], r["method"], r["target_sparsity"]))
    if not recs:
        return ""
    sparsities = sorted({k[2] for k in recs})
    lines = ["| method | sparsity | " + " | ".join(f"{t} ({MAIN[t]})" for t in GLUE_TASKS) + " | average | share of dense |",
             "|---|---|" + "---|" * (len(GLUE_TASKS) + 2)]
    dense_avg = None
    for s in sparsities:
        m = "dense" if s == 0 else "gmp"
        vals = [recs.get((t, m, s), {}).get("main_metric") for t in GLUE_TASKS]
        ok = all(v is not None for v in vals)
        avg = statistics.mean(vals) if ok else None
        if s == 0:
            dense_avg = avg
        share = f"{100 * avg / dense_avg:.1f}%" if ok and dense_avg else "-"
        lines.append(f"| {m} | {s:.2f} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in vals)
                     + f" | {'-' if avg is None else f'{avg:.2f}'} | {share} |")
    return "\n".join(lines)


def rpp() -> str:
    """The README's RPP table: full-scale records once any masked-LM run has one, else the quick ones."""
    from rpp_universal import scale_of

    recs = records.read("rpp_universal")
    full = [r for r in recs if scale_of(r) == "full"]
    recs = full if any(r.get("stage") == "mlm" for r in full) else [r for r in recs if scale_of(r) == "quick"]
    mlm = records.latest([r for r in recs if r.get("stage") == "mlm"], key=lambda r: (r["method"], r["target_sparsity"]))
    ft = records.latest([r for r in recs if r.get("stage") == "finetune"], key=lambda r: (r["task"], r["method"], r["target_sparsity"]))
    if not mlm:
        return ""
    sparsities = sorted({k[1] for k in mlm if k[0] != "dense"})
    tasks = [t for t in GLUE_TASKS if any(k[0] == t for k in ft)]

    def cell(r):
        return f"{r['main_metric']:.2f}" if r else "-"

    def average(method, s):  # over every task of the table, or none when one is missing
        vals = [ft[(t, method, s)]["main_metric"] for t in tasks if (t, method, s) in ft]
        return statistics.mean(vals) if tasks and len(vals) == len(tasks) else None

    def row(label, cells):
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [row("", [f"{s:.0%}" for s in sparsities]), "|---|" + "---|" * len(sparsities)]
    lines.append(row("MLM accuracy, dense (same steps)", [cell(mlm.get(("dense", 0.0)))] * len(sparsities)))
    for m, label in (("gmp", "NIP"), ("rpp", "RPP")):
        lines.append(row(f"MLM accuracy, {label}", [cell(mlm.get((m, s))) for s in sparsities]))
    if len(tasks) > 1:
        d, dm = average("dense", 0.0), average("dense+mlm", 0.0)
        for m, label in (("gmp+mask", "NIP mask"), ("rpp+mask", "RPP mask")):
            avgs = [average(m, s) for s in sparsities]
            lines.append(row(f"**average of {len(tasks)} tasks, {label} fixed**",
                             [f"**{a:.2f}**" + (f" ({100 * a / d:.0f}%)" if d else "") if a is not None else "-" for a in avgs]))
        lines.append(row(f"average of {len(tasks)} tasks, dense: original / after the MLM stage",
                         [f"{d:.2f} / {dm:.2f}" if d is not None and dm is not None else "-"] + [""] * (len(sparsities) - 1)))
    for t in tasks:
        for m, label in (("gmp+mask", "NIP mask"), ("rpp+mask", "RPP mask")):
            lines.append(row(f"{t} ({MAIN[t]}), {label} fixed", [cell(ft.get((t, m, s))) for s in sparsities]))
        lines.append(row(f"{t}, dense: original / after the MLM stage",
                         [f"{cell(ft.get((t, 'dense', 0.0)))} / {cell(ft.get((t, 'dense+mlm', 0.0)))}"] + [""] * (len(sparsities) - 1)))
    return "\n".join(lines)


def _md_table(name: str) -> str:
    """The first table of ``results/NAME.md`` (after its title, introduction and any section heading)."""
    path = records.RESULTS / f"{name}.md"
    return next((b for b in path.read_text().split("\n\n") if b.startswith("|")), "") if path.exists() else ""


def distill() -> str:
    return _md_table("distill_vs_small_dense")


def squad() -> str:
    return _md_table("squad")


def high_sparsity() -> str:
    return _md_table("high_sparsity")


def _dense_label(recipe: str, tag: str, rs: list[dict]) -> str:
    """A dense row as the summary names it: recipe / tag (or the epochs of an untagged row), and its seeds."""
    name = tag if tag and tag != recipe else (f"{rs[0]['epochs']:g} ep" if rs[0].get("epochs") else "-")
    return f"{recipe} / {name}" + (f", {len(rs)} seeds" if len(rs) > 1 else "")


def summary() -> str:
    """The README's first table: sparsity → accuracy kept → speed → size. Accuracy: at each sparsity and
    pattern, the high_sparsity row with the most tasks, then the most seeds (a one-seed variant of a sweep
    must not displace the recipe measured over several), then the highest lowest-task share; per task as a
    share of the best dense row, which the first row names per task (recipe / tag, or the epochs of an untagged
    row). Speed and size: the inference records (sequence 128, 2 threads)."""
    import high_sparsity

    inf = records.latest(records.read("inference"), key=lambda r: (r["engine"], r["target_sparsity"], r["granularity"], r["batch_size"]))
    hs_rows, dense = high_sparsity.grouped(records.read("high_sparsity"))  # the benchmark table's rows and baselines
    rows: dict[tuple, dict[tuple, tuple[int, dict[str, float]]]] = {}  # (sparsity, pattern) → (recipe, tag) → (seeds, shares)
    for (recipe, tag, sp, g, _criterion), by_task in hs_rows.items():
        if sp > 0:
            rows.setdefault((sp, g), {})[(recipe, tag)] = (max(len(rs) for rs in by_task.values()), {
                t: high_sparsity.seed_mean(rs) / dense[t] for t, rs in by_task.items() if t in dense})
    lines = ["| sparsity | pattern | accuracy kept (share of dense, per task) | row | speed-up b1 / b8 (bertprune fp32; int8) | compact file |",
             "|---|---|---|---|---|---|"]
    dense_bytes = inf.get(("torch-default", 0.0, None, 1), {}).get("file_bytes")
    best = {t: " = ".join(sorted(_dense_label(recipe, tag, by_task[t]) for (recipe, tag, sp, _g, _c), by_task in hs_rows.items()
                                 if sp == 0 and t in by_task
                                 and high_sparsity.seed_mean(by_task[t]) == dense[t]))  # ties: all of them
            for t in GLUE_TASKS if t in dense}
    if best:  # the reference every share below divides by
        lines.append("| 0% | dense | the reference, each task's best dense row: " + ", ".join(
            f"{t} {dense[t]:.2f} ({best[t]})" for t in best) + f" | - | {'1.0x' if inf else '-'} | "
            + (f"{dense_bytes / 1e6:.1f} MB |" if dense_bytes else "- |"))
    for (sp, g), variants in sorted(rows.items()):
        (recipe, tag), (_seeds, shares) = max(variants.items(), key=lambda kv: (len(kv[1][1]), kv[1][0], min(kv[1][1].values(), default=0)))
        kept = ", ".join(f"{t} {100 * shares[t]:.1f}%" for t in GLUE_TASKS if t in shares) or "-"  # no dense row yet
        if len(shares) == len(GLUE_TASKS):
            kept = f"mean of task shares {100 * statistics.mean(shares.values()):.1f}% ({kept})"
        f1, f8 = inf.get(("bertprune-fp32", sp, g, 1)), inf.get(("bertprune-fp32", sp, g, 8))
        i1, i8 = inf.get(("bertprune-int8", sp, g, 1)), inf.get(("bertprune-int8", sp, g, 8))
        speed = (f"{f1['speedup_vs_dense_torch']:.1f}x / {f8['speedup_vs_dense_torch']:.1f}x; "
                 f"{i1['speedup_vs_dense_torch']:.1f}x / {i8['speedup_vs_dense_torch']:.1f}x") if f1 and f8 and i1 and i8 else "-"
        size = (f"{f1['file_bytes'] / 1e6:.1f} MB (dense {dense_bytes / 1e6:.1f} MB)" if f1 and dense_bytes else "-")
        lines.append(f"| {sp:.0%} | {g} | {kept} | {recipe}{' / ' + tag if tag else ''} | {speed} | {size} |")
    return "\n".join(lines)


def inference() -> str:
    recs = records.latest(records.read("inference"), key=lambda r: (r["engine"], r["target_sparsity"], r["granularity"], r["batch_size"]))
    if not recs:
        return ""
    sparse = ["bertprune-fp32", "bertprune-int8", "deepsparse"]
    rows = [("dense", 0.0, None, ["torch-default", "torch-onednn", "ort-fp32", "ort-int8", "deepsparse"]),
            ("90% unstructured", 0.9, "unstructured", sparse), ("90% 4x1 blocks", 0.9, "4x1", sparse),
            ("90% 1x4 blocks", 0.9, "1x4", sparse), ("95% unstructured", 0.95, "unstructured", sparse)]
    lines = ["| model | engine | batch 1 (ms) | batch 8 (ms) | vs torch default, b1 / b8 | vs ORT fp32, b8 | vs ORT int8, b1 / b8 |",
             "|---|---|---|---|---|---|---|"]
    # ratios against the dense baselines of the same run (same commit), never across runs
    base = {(r["git_commit"], r["engine"], r["batch_size"]): r["latency_ms_median"] for r in records.read("inference")
            if r["target_sparsity"] == 0 and r["engine"] in ("torch-default", "ort-fp32", "ort-int8")}

    def ratio(r, engine):
        b = base.get((r["git_commit"], engine, r["batch_size"]))
        return f"{b / r['latency_ms_median']:.2f}x" if b else "-"

    for label, s, g, engines in rows:
        for e in engines:
            r1, r8 = recs.get((e, s, g, 1)), recs.get((e, s, g, 8))
            if not (r1 and r8):
                continue
            lines.append(f"| {label} | {e} | {r1['latency_ms_median']:.1f} | {r8['latency_ms_median']:.1f} | "
                         f"{ratio(r1, 'torch-default')} / {ratio(r8, 'torch-default')} | {ratio(r8, 'ort-fp32')} | "
                         f"{ratio(r1, 'ort-int8')} / {ratio(r8, 'ort-int8')} |")
    return "\n".join(lines)


TABLES = {"summary": summary, "high_sparsity": high_sparsity, "glue": glue, "rpp": rpp, "distill": distill, "squad": squad,
          "inference": inference}


def write_readme(readme: Path = Path(__file__).resolve().parents[1] / "README.md") -> None:
    """Replace the Markdown table that follows each `<!-- python benchmarks/readme_tables.py (NAME) -->`
    marker of the README with NAME()'s output; text around the tables is left alone."""
    lines, out, i = readme.read_text().splitlines(), [], 0
    while i < len(lines):
        out.append(lines[i])
        marker = lines[i].strip()
        i += 1
        if marker.startswith("<!--") and "benchmarks/readme_tables.py (" in marker:
            name = marker.split("benchmarks/readme_tables.py (", 1)[1].split(")", 1)[0]
            out.extend(TABLES[name]().splitlines())
            while i < len(lines) and lines[i].startswith("|"):  # drop the old table
                i += 1
    readme.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-readme"]:
        write_readme()
        sys.exit()
    for name, fn in TABLES.items():
        print(f"<!-- {name} -->\n{fn()}\n")
    cost = records.RESULTS / "distill_step_cost.json"
    if cost.exists():
        print("distill cost", json.loads(cost.read_text())["ratio"])
