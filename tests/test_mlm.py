"""The masked-LM stage: text reading, packing, NSP pairs, masking, the masked-only forward, the head."""

import json
from collections import Counter

import pytest
import torch

from bertprune.cli import run
from bertprune.data.text import mix_pairs, nsp_pairs, pack_blocks, read_documents, segment_pairs, split_documents
from bertprune.errors import BertpruneError
from bertprune.tasks.mlm import use_masked_only_forward

from bertprune.testing import KINDS, tiny_config


def test_read_documents_and_errors(tmp_path, tiny_text):
    docs = read_documents(str(tiny_text))
    assert len(docs) == 120 and all(d.strip() == d and d for d in docs)
    with pytest.raises(BertpruneError, match="text folder not found"):
        read_documents(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BertpruneError, match="no .txt files"):
        read_documents(str(tmp_path / "empty"))
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(BertpruneError, match="not UTF-8"):
        read_documents(files=[str(tmp_path / "bad.txt")])
    with pytest.raises(BertpruneError, match="no text given"):
        read_documents()


def test_split_is_seeded_and_disjoint():
    docs = [f"doc {i}" for i in range(100)]
    train, val = split_documents(docs, 0.05, seed=1)
    assert len(val) == 5 and len(train) == 95 and not set(train) & set(val)
    assert split_documents(docs, 0.05, seed=1) == (train, val)
    assert split_documents(docs, 0.05, seed=2)[1] != val


def test_pack_blocks_covers_the_stream_in_order():
    docs = [[10, 11, 12], [20, 21], [30, 31, 32, 33, 34]]
    blocks = pack_blocks(docs, block_size=6, cls_id=1, sep_id=2)
    assert all(b[0] == 1 and b[-1] == 2 and len(b) <= 6 for b in blocks)
    body = [t for b in blocks for t in b[1:-1]]
    assert body == [10, 11, 12, 2, 20, 21, 2, 30, 31, 32, 33, 34, 2]


def test_nsp_pairs():
    docs = [list(range(100 * d, 100 * d + 40)) for d in range(1, 30)]
    pairs = nsp_pairs(docs, block_size=16, cls_id=1, sep_id=2, seed=0)
    labels = pairs["next_sentence_label"]
    assert 0.35 < sum(labels) / len(labels) < 0.65
    for ids, types, label in zip(pairs["input_ids"], pairs["token_type_ids"], labels):
        assert len(ids) <= 16 and ids[0] == 1 and ids[-1] == 2 and len(types) == len(ids)
        sep = ids.index(2)
        a, b = ids[1:sep], ids[sep + 1 : -1]
        assert types == [0] * (sep + 1) + [1] * (len(b) + 1)
        same_doc = a[0] // 100 == b[0] // 100
        if label == 0:  # B continues A in the same document
            assert same_doc and b[0] == a[-1] + 1
        else:
            assert not same_doc


def _split_pair(ids, types):
    sep = ids.index(2)
    assert ids[0] == 1 and ids[-1] == 2 and types == [0] * (sep + 1) + [1] * (len(ids) - sep - 1)
    return ids[1:sep], ids[sep + 1 : -1]


def test_segment_pairs_are_two_short_spans_with_segment_ids_half_unrelated():
    docs = [list(range(1000 * d, 1000 * d + 90)) for d in range(1, 40)]  # 90 tokens a document, ids tell where from
    pairs = segment_pairs(docs, block_size=32, cls_id=1, sep_id=2, seed=0)
    assert pairs == segment_pairs(docs, block_size=32, cls_id=1, sep_id=2, seed=0)  # seeded
    continued = 0
    seen = []
    for ids, types in zip(pairs["input_ids"], pairs["token_type_ids"]):
        a, b = _split_pair(ids, types)
        assert a != b and 1 <= len(a) <= 14 and 1 <= len(b) <= 14 and len(ids) <= 32  # (32 − 3) // 2 = 14 tokens a segment
        assert all(x + 1 == y for x, y in zip(a, a[1:])) and all(x + 1 == y for x, y in zip(b, b[1:]))  # spans
        continued += b[0] == a[-1] + 1 or (b[0] % 1000 == 0 and b[0] == a[-1] // 1000 * 1000 + 1000)
        seen += a
    assert 0.35 < continued / len(pairs["input_ids"]) < 0.65  # half the B spans follow A, half are random
    assert len(seen) > 0.4 * 39 * 90  # every second span is an A: about half the text
    with pytest.raises(BertpruneError, match="too little text"):
        segment_pairs([[5, 6]], block_size=32, cls_id=1, sep_id=2, seed=0)


def test_mix_pairs_replaces_a_share_of_the_blocks():
    docs = [list(range(1000 * d, 1000 * d + 90)) for d in range(1, 40)]
    blocks = pack_blocks(docs, 32, 1, 2)
    mixed = mix_pairs(docs, 32, 1, 2, seed=0, pair_fraction=0.25)
    assert len(mixed["input_ids"]) == len(blocks)
    is_pair = [1 in t for t in mixed["token_type_ids"]]
    assert sum(is_pair) == round(0.25 * len(blocks))
    for ids, types, pair in zip(mixed["input_ids"], mixed["token_type_ids"], is_pair):
        if pair:
            _split_pair(ids, types)
        else:
            assert ids in blocks and types == [0] * len(ids)
    only_blocks = mix_pairs(docs, 32, 1, 2, seed=0, pair_fraction=0.0)
    assert sorted(only_blocks["input_ids"]) == sorted(blocks)
    with pytest.raises(BertpruneError, match="pair_fraction"):
        mix_pairs(docs, 32, 1, 2, seed=0, pair_fraction=1.5)
    short = [[5, 6, 7, 8, 9, 10, 11, 12]]  # one block, too little text for three spans: the block stays
    assert mix_pairs(short, 32, 1, 2, seed=0, pair_fraction=1.0)["input_ids"] == pack_blocks(short, 32, 1, 2)


def test_collator_masks_15_percent_80_10_10(tiny_models):
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling

    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    collate = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    torch.manual_seed(0)
    ids = torch.randint(5, len(tok), (400, 64)).tolist()
    counts, n_tokens = Counter(), 0
    for i in range(0, 400, 50):
        batch = collate([{"input_ids": x} for x in ids[i : i + 50]])
        orig = torch.tensor(ids[i : i + 50])
        sel = batch["labels"] != -100
        assert torch.equal(batch["labels"][sel], orig[sel])
        counts["masked"] += int(sel.sum())
        counts["mask_token"] += int((batch["input_ids"][sel] == tok.mask_token_id).sum())
        counts["unchanged"] += int((batch["input_ids"][sel] == orig[sel]).sum())
        n_tokens += orig.numel()
    assert counts["masked"] / n_tokens == pytest.approx(0.15, abs=0.01)
    assert counts["mask_token"] / counts["masked"] == pytest.approx(0.8, abs=0.03)
    assert counts["unchanged"] / counts["masked"] == pytest.approx(0.1 + 0.1 / len(tok), abs=0.03)


@pytest.mark.parametrize("kind", KINDS)
def test_masked_only_forward_has_the_same_loss(kind):
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(tiny_config(kind)).eval()
    x = torch.randint(5, 60, (4, 12))
    labels = torch.full_like(x, -100)
    labels[:, [2, 5, 7]] = x[:, [2, 5, 7]]
    reference = model(input_ids=x, labels=labels)
    assert use_masked_only_forward(model)
    fast = model(input_ids=x, labels=labels)
    torch.testing.assert_close(fast.loss, reference.loss)
    torch.testing.assert_close(fast.logits, reference.logits[labels != -100])
    import copy

    clone = copy.deepcopy(model)  # the bound forward follows the copy
    clone.get_input_embeddings().weight.data.zero_()
    torch.testing.assert_close(model(input_ids=x, labels=labels).loss, fast.loss)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_inputs_keeps_what_the_forward_names(kind):
    from transformers import AutoModel

    from bertprune.models import forward_inputs

    model = AutoModel.from_config(tiny_config(kind)).eval()
    x = torch.randint(5, 60, (2, 6))
    batch = {"input_ids": x, "attention_mask": torch.ones_like(x), "token_type_ids": torch.zeros_like(x),
             "position_ids": None, "special_tokens_mask": torch.zeros_like(x)}
    kept = forward_inputs(model, batch)
    # every forward takes **kwargs in transformers 5; only named inputs pass, and None never does
    assert set(kept) == ({"input_ids", "attention_mask"} if kind == "distilbert"
                         else {"input_ids", "attention_mask", "token_type_ids"})
    model(**kept)  # and the model runs on them


def test_masked_only_forward_with_nsp():
    from transformers import BertForPreTraining

    torch.manual_seed(0)
    model = BertForPreTraining(tiny_config("bert")).eval()
    x = torch.randint(5, 60, (4, 12))
    labels = torch.full_like(x, -100)
    labels[:, 3] = x[:, 3]
    nsp = torch.tensor([0, 1, 1, 0])
    reference = model(input_ids=x, labels=labels, next_sentence_label=nsp)
    use_masked_only_forward(model)
    fast = model(input_ids=x, labels=labels, next_sentence_label=nsp)
    torch.testing.assert_close(fast.loss, reference.loss)
    torch.testing.assert_close(fast.seq_relationship_logits, reference.seq_relationship_logits)


def test_head_training_improves_mlm_accuracy(pretrain_args, tmp_path):
    assert run(pretrain_args("head", "bert", "--max-steps", "0", "--head-steps", "40")) == 0
    results = json.loads((tmp_path / "head" / "results.json").read_text())
    head = results["head_training"]
    assert head["done"] and head["steps"] == 40
    assert any(n.startswith("cls.predictions") for n in head["trained"])
    assert not any(n.startswith("bert.") for n in head["trained"])  # the encoder stayed frozen
    assert head["after"]["mlm_accuracy"] > head["before"]["mlm_accuracy"] + 0.05
    assert head["after"]["mlm_loss"] < head["before"]["mlm_loss"]
    # a checkpoint with a trained head needs no head training
    assert run(pretrain_args("again", "bert", "--max-steps", "0", "--model", str(tmp_path / "head" / "final"))) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["head_training"]["done"] is False


def test_nsp_run(pretrain_args, tmp_path):
    assert run(pretrain_args("nsp", "bert", "--nsp", "--max-steps", "4", "--head-steps", "4")) == 0
    results = json.loads((tmp_path / "nsp" / "results.json").read_text())
    assert "nsp_accuracy" in results["final"]["dev"]
    assert any("seq_relationship" in n for n in results["head_training"]["trained"])


def test_nsp_needs_a_bert_type_model(pretrain_args, capsys):
    from bertprune.cli import main

    with pytest.raises(SystemExit) as e:
        main(pretrain_args("x", "distilbert", "--nsp"))
    assert e.value.code == 2 and "next-sentence head" in capsys.readouterr().err
