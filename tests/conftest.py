"""Shared fixtures: tiny random BERT / RoBERTa / DistilBERT models, a tiny tokenizer, tiny GLUE files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(1)  # tiny models: threads cost more than they give, and keep timings stable

POSITIVE = "good great fine nice happy love best fun".split()
NEGATIVE = "bad awful poor sad hate worst boring dull".split()
FILLER = "the a movie film story plot actor is was it this that and but very not so".split()
WORDS = POSITIVE + NEGATIVE + FILLER + "cat dog man woman sat ran on mat park".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-") + WORDS

KINDS = ("bert", "roberta", "distilbert")


def tiny_config(kind: str, layers: int = 2, hidden: int = 32, heads: int = 4, ffn: int = 64, dropout: float = 0.0):
    """Dropout is off by default so that runs on 1 and 2 processes compute the same thing."""
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    common = dict(vocab_size=len(VOCAB), pad_token_id=0)
    if kind == "bert":
        return BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=ffn, max_position_embeddings=64, hidden_dropout_prob=dropout,
                          attention_probs_dropout_prob=dropout, **common)
    if kind == "roberta":
        return RobertaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                             intermediate_size=ffn, max_position_embeddings=70, type_vocab_size=2,  # the tiny BERT tokenizer emits segment ids
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **common)
    if kind == "distilbert":
        return DistilBertConfig(dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=ffn,
                                max_position_embeddings=64, dropout=0.0, attention_dropout=0.0, **common)
    raise ValueError(kind)


def write_tokenizer(folder: Path):
    """A word-level-ish WordPiece tokenizer over :data:`VOCAB` (vocab.txt + config, any transformers version)."""
    import json

    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok("good movie")["input_ids"] == [2, VOCAB.index("good"), VOCAB.index("movie"), 3]
    tok.save_pretrained(folder)
    return tok


def save_tiny_model(folder: Path, kind: str = "bert", **kw) -> Path:
    """A tiny random *pre-trained-style* checkpoint: the bare encoder, no task head."""
    from transformers import AutoModel

    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config(kind, **kw))
    model.save_pretrained(folder)
    write_tokenizer(folder)
    return folder


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


def _sentence(rng: random.Random, label: int) -> str:
    words = rng.choices(POSITIVE if label else NEGATIVE, k=2) + rng.choices(FILLER, k=rng.randint(2, 6))
    rng.shuffle(words)
    return " ".join(words)


def write_tiny_glue(root: Path, n_train: int = 96, n_dev: int = 32, seed: int = 0) -> Path:
    """SST-2, RTE and STS-B in the official layout, with a learnable signal."""
    rng = random.Random(seed)
    sst = root / "SST-2"
    sst.mkdir(parents=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["sentence\tlabel"]
        for _ in range(n):
            y = rng.randint(0, 1)
            rows.append(f"{_sentence(rng, y)} \t{y}")
        (sst / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    rte = root / "RTE"
    rte.mkdir()
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["index\tsentence1\tsentence2\tlabel"]
        for i in range(n):
            y = rng.randint(0, 1)
            rows.append(f"{i}\t{_sentence(rng, y)}\t{_sentence(rng, 1 - y)}\t{'entailment' if y else 'not_entailment'}")
        (rte / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    sts = root / "STS-B"
    sts.mkdir()
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
        for i in range(n):
            y = rng.randint(0, 1)
            score = 4.0 * y + rng.random()
            rows.append(f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{_sentence(rng, y)}\t{_sentence(rng, y)}\t{score:.3f}")
        (sts / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


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


def write_tiny_text(folder: Path, n_docs: int = 120, seed: int = 0) -> Path:
    """Documents with a learnable structure: a few fixed phrases in random order."""
    rng = random.Random(seed)
    phrases = ["the cat sat on the mat", "the dog ran in the park", "a man is happy", "a woman is sad",
               "this movie is great", "that film was boring", "it is not so bad", "the story is fun"]
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(2):
        lines = [" . ".join(rng.choices(phrases, k=rng.randint(2, 6))) + " ." for _ in range(n_docs // 2)]
        (folder / f"part{part}.txt").write_text("\n".join(lines) + "\n\n")  # a blank line: skipped
    return folder


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
