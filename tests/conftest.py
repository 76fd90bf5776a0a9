"""Shared fixtures over :mod:`bertprune.testing`: tiny random BERT / RoBERTa / DistilBERT models, a tiny
tokenizer, tiny GLUE files and text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(1)  # tiny models: threads cost more than they give, and keep timings stable

from bertprune.testing import KINDS, save_tiny_model, tiny_config, write_tiny_glue, write_tiny_text  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    models = {kind: save_tiny_model(root / kind, kind) for kind in KINDS}
    models["bert-dropout"] = save_tiny_model(root / "bert-dropout", "bert", dropout=0.1)  # RNG state matters
    return models


@pytest.fixture(scope="session")
def tiny_classifier():
    """A factory of tiny random sequence classifiers (not saved)."""
    from transformers import AutoModelForSequenceClassification

    def make(kind: str = "bert", num_labels: int = 2, seed: int = 0):
        torch.manual_seed(seed)
        config = tiny_config(kind)
        config.num_labels = num_labels
        return AutoModelForSequenceClassification.from_config(config)

    return make


@pytest.fixture(scope="session")
def tiny_glue(tmp_path_factory) -> Path:
    return write_tiny_glue(tmp_path_factory.mktemp("glue"))


@pytest.fixture
def run_args(tiny_models, tiny_glue, tmp_path):
    """Base CLI arguments of a fast fine-tuning run on a tiny BERT."""

    def make(out: str = "run", kind: str = "bert", task: str = "sst2", *extra: str) -> list[str]:
        return [
            "finetune", "--task", task, "--model", str(tiny_models[kind]), "--glue-dir", str(tiny_glue),
            "--output-dir", str(tmp_path / out), "--epochs", "2", "--batch-size", "16", "--lr", "1e-3",
            "--quiet", "train.log_every=2", "train.eval_every=6", "data.max_length=32", *extra,
        ]

    return make


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> Path:
    return write_tiny_text(tmp_path_factory.mktemp("text"))


@pytest.fixture
def pretrain_args(tiny_models, tiny_text, tmp_path):
    """Base CLI arguments of a fast masked-LM run on a tiny BERT."""

    def make(out: str = "pre", kind: str = "bert", *extra: str) -> list[str]:
        return [
            "pretrain", "--text-dir", str(tiny_text), "--model", str(tiny_models[kind]), "--output-dir", str(tmp_path / out),
            "--block-size", "32", "--batch-size", "16", "--lr", "1e-3", "--max-steps", "12", "--head-steps", "20",
            "--quiet", "train.log_every=2", "train.eval_every=6", "head.lr=1e-2", *extra,
        ]

    return make


def cli_fails(args, capsys, *fragments) -> str:
    """Run the CLI on ``args``; it must stop with exit code 2 and one message holding every fragment."""
    from bertprune.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("bertprune: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err
