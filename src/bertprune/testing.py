"""Tiny random models and data for tests, examples and the fault benchmark: a BERT / RoBERTa /
DistilBERT checkpoint of a few thousand weights with a matching tokenizer, GLUE files with a
learnable signal, SQuAD files, plain text. Nothing here downloads anything."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

POSITIVE = "good great fine nice happy love best fun".split()
NEGATIVE = "bad awful poor sad hate worst boring dull".split()
FILLER = "the a movie film story plot actor is was it this that and but very not so".split()
WORDS = POSITIVE + NEGATIVE + FILLER + "cat dog man woman sat ran on mat park".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-") + WORDS

KINDS = ("bert", "roberta", "distilbert")


def tiny_config(kind: str, layers: int = 2, hidden: int = 32, heads: int = 4, ffn: int = 64, dropout: float = 0.0,
                positions: int = 64):
    """Dropout is off by default so that runs on 1 and 2 processes compute the same thing. BERT only:
    ``positions`` position embeddings (a recipe with data.max_length=128 needs 128)."""
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    common = dict(vocab_size=len(VOCAB), pad_token_id=0)
    if kind == "bert":
        return BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=ffn, max_position_embeddings=positions, hidden_dropout_prob=dropout,
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


def _sentence(rng: random.Random, label: int) -> str:
    words = rng.choices(POSITIVE if label else NEGATIVE, k=2) + rng.choices(FILLER, k=rng.randint(2, 6))
    rng.shuffle(words)
    return " ".join(words)


def write_tiny_glue(root: Path, n_train: int = 96, n_dev: int = 32, seed: int = 0) -> Path:
    """SST-2, RTE and STS-B in the official layout, with a learnable signal."""
    rng = random.Random(seed)

    def sst_row(i: int) -> str:
        y = rng.randint(0, 1)
        return f"{_sentence(rng, y)} \t{y}"

    def rte_row(i: int) -> str:
        y = rng.randint(0, 1)
        return f"{i}\t{_sentence(rng, y)}\t{_sentence(rng, 1 - y)}\t{'entailment' if y else 'not_entailment'}"

    def sts_row(i: int) -> str:
        y = rng.randint(0, 1)
        score = 4.0 * y + rng.random()
        return f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{_sentence(rng, y)}\t{_sentence(rng, y)}\t{score:.3f}"

    # in this order: the rows draw from one generator, so the files stay what they always were
    for folder, header, row in (("SST-2", "sentence\tlabel", sst_row),
                                ("RTE", "index\tsentence1\tsentence2\tlabel", rte_row),
                                ("STS-B", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
                                 sts_row)):
        (root / folder).mkdir(parents=True)
        for split, n in (("train", n_train), ("dev", n_dev)):
            (root / folder / f"{split}.tsv").write_text("\n".join([header] + [row(i) for i in range(n)]) + "\n")
    return root


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


def write_tiny_squad(folder: Path, n: int = 40, seed: int = 0, names: tuple[str, str] = ("train.json", "dev.json")) -> Path:
    """SQuAD v1.1 files (train, dev) of ``n`` one-question paragraphs each: 30 filler words with "cat dog" planted
    at a random place, the answer (two gold answers: "cat dog" and "cat")."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        paragraphs = []
        for i in range(n):
            words = rng.choices(FILLER, k=30)
            k = rng.randrange(27)
            words[k : k + 2] = ["cat", "dog"]
            start = len(" ".join(words[:k])) + (1 if k else 0)
            answers = [{"text": "cat dog", "answer_start": start}, {"text": "cat", "answer_start": start}]
            paragraphs.append({"context": " ".join(words),
                               "qas": [{"id": f"{name}{i}", "question": "which animals ?", "answers": answers}]})
        (folder / name).write_text(json.dumps({"version": "1.1", "data": [{"title": "tiny", "paragraphs": paragraphs}]}))
    return folder
