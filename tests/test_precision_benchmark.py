"""benchmarks/precision_step.py times bertprune's train_step per precision and records what auto picks."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import precision_step  # noqa: E402
import records  # noqa: E402

from bertprune import precision  # noqa: E402


def test_each_precision_gets_a_record_and_a_table_row_on_a_tiny_model(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RESULTS", tmp_path)
    precision_step.main(["--model", str(tiny_models["bert"]), "--batch", "2", "--length", "8", "--steps", "3"])
    recs = [json.loads(line) for line in (tmp_path / "precision_step.jsonl").read_text().splitlines()]
    assert [r["precision"] for r in recs] == ["no", "bf16"]
    for r in recs:
        assert not [k for k in records.REQUIRED if k not in r]
        assert len(r["metrics"]["step_seconds"]) == 3 and all(s > 0 for s in r["metrics"]["step_seconds"])
        assert abs(r["sec_per_step"] - sorted(r["metrics"]["step_seconds"])[1]) < 1e-3  # the median of three
        assert r["auto"] == precision.resolve("auto") and r["native_bf16"] == precision.native_bf16()
    table = (tmp_path / "precision_step.md").read_text()
    assert table == precision_step.table() and table.count("| 2 x 8 |") == 2 and "| fp32 |" in table


def test_the_budget_stops_timing_after_at_least_one_step(tiny_models):
    secs = precision_step.step_seconds(str(tiny_models["bert"]), "no", 2, 8, steps=50, budget=0.0)
    assert len(secs) == 1
