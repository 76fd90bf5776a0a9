"""benchmarks/cls_collapse.py: the [CLS] similarity measure, the STS-B sentence reader and the table."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import cls_collapse  # noqa: E402
import records  # noqa: E402


def test_mean_pairwise_cosine_identical_orthogonal_and_opposite_rows():
    assert abs(cls_collapse.mean_pairwise_cosine(torch.ones(5, 8) * torch.rand(5, 1).add(0.1)) - 1.0) < 1e-6
    assert abs(cls_collapse.mean_pairwise_cosine(torch.eye(4))) < 1e-6
    x = torch.tensor([[1.0, 2.0], [-1.0, -2.0]])
    assert abs(cls_collapse.mean_pairwise_cosine(x) + 1.0) < 1e-6


def test_mean_pairwise_cosine_ignores_the_diagonal():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    expected = (0 + 2 ** -0.5 + 2 ** -0.5) * 2 / 6
    assert abs(cls_collapse.mean_pairwise_cosine(x) - expected) < 1e-6


def test_dev_sentences_reads_the_first_column_of_sentence_pairs(tmp_path):
    (tmp_path / "STS-B").mkdir()
    (tmp_path / "STS-B" / "dev.tsv").write_text("index\tsentence1\tsentence2\tscore\n0\ta \"quoted\" one\tb\t1.0\n1\tc\td\t2.0\n")
    assert cls_collapse.dev_sentences(str(tmp_path), n=5) == ['a "quoted" one', "c"]


def test_table_keeps_the_newest_record_per_run(monkeypatch):
    def rec(run, cosine, metric):
        return {"run": run, "start": run, "target_sparsity": 0.5, "mask_during_finetuning": "none", "main_metric": metric,
                "metrics": {"cls_mean_cosine": cosine}, "machine": "m", "git_commit": "abcdef0123", "seed": 42,
                "command": "python benchmarks/cls_collapse.py"}
    monkeypatch.setattr(records, "read", lambda b: [rec("mlm-rpp-0.5", 0.9, 1.0), rec("mlm-rpp-0.5", 0.96, 4.74)])
    table = cls_collapse.table()
    assert "| mlm-rpp-0.5 | 0.50 | none | 0.960 | 4.74 |" in table and "1.00 |" not in table
    assert "commit abcdef0" in table and "(seed 42)" in table
