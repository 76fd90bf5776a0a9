"""The committed Markdown tables are what their records give today: each benchmark's ``results/<name>.md`` and the
README's tables after a ``readme_tables.py`` marker. A table goes stale when records it reads change without a
rebuild — e.g. ``universal.md`` compares with the best dense rows of ``high_sparsity.jsonl``. Rebuild with the
benchmark's ``--table`` (or ``python benchmarks/readme_tables.py --write-readme``)."""

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import readme_tables  # noqa: E402
import records  # noqa: E402

BENCHMARKS = sorted(p.stem for p in (REPO / "benchmarks" / "results").glob("*.md"))


def test_every_table_has_its_benchmark_script():
    assert BENCHMARKS and all((REPO / "benchmarks" / f"{name}.py").is_file() for name in BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_committed_table_is_rebuilt_from_its_records(name, monkeypatch):
    monkeypatch.setattr(records, "RESULTS", REPO / "benchmarks" / "results")
    module = importlib.import_module(name)
    assert module.table() == (REPO / "benchmarks" / "results" / f"{name}.md").read_text(), \
        f"benchmarks/results/{name}.md is stale: python benchmarks/{name}.py --table (or its table() rebuild)"


def test_the_readme_tables_are_rebuilt_from_the_records(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RESULTS", REPO / "benchmarks" / "results")
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text())
    readme_tables.write_readme(readme)
    assert readme.read_text() == (REPO / "README.md").read_text(), "python benchmarks/readme_tables.py --write-readme"
