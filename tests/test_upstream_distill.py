"""The pre-training stage by distillation (``bertprune pretrain --objective distill``): each term on
hand-computed cases, zero at student = teacher and blind to padding; a pruning run on plain text that
writes a universal mask, resumes exactly, and transfers with the mask fixed; zero-shot STS-B."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from bertprune.cli import run
from bertprune.crashtest import crash_and_resume, fingerprint, run_cli
from bertprune.sentence import mean_pairwise_cosine, stsb_zeroshot, zeroshot_scores
from bertprune.masks import Masks
from bertprune.methods.distill import (attention_kl_loss, embedding_loss, hidden_state_loss, relation_loss, token_cosines,
                                       sentence_embeddings)


def _scores(seed, batch=2, heads=2, t=5):
    return torch.randn(batch, heads, t, t, generator=torch.Generator().manual_seed(seed))


MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # the second row has two padded positions


# --- the terms ---------------------------------------------------------------------------------------
def test_attention_kl_by_hand():
    student = [torch.zeros(1, 1, 1, 2)]  # one query, two keys: uniform attention
    teacher = [torch.tensor([[[[math.log(3.0), 0.0]]]])]  # attention (3/4, 1/4)
    want = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert float(attention_kl_loss(student, teacher, None)) == pytest.approx(want, rel=1e-6)


def test_attention_kl_is_zero_at_equality_positive_otherwise_and_blind_to_padding():
    s, t = [_scores(0), _scores(1)], [_scores(2), _scores(3)]
    assert float(attention_kl_loss(s, s, MASK)) == pytest.approx(0.0, abs=1e-7)
    base = float(attention_kl_loss(s, t, MASK))
    assert base > 0
    # scores at padded keys, and whole padded query rows, change nothing
    s2 = [x.clone() for x in s]
    for x in s2:
        x[1, :, :, 3:] = 100.0
        x[1, :, 3:, :] = -7.0
    assert float(attention_kl_loss(s2, t, MASK)) == pytest.approx(base, rel=1e-6)
    # mean over layers: one layer pair alone gives its own value, the pair of two their average
    one = float(attention_kl_loss(s[:1], t[:1], MASK))
    two = float(attention_kl_loss(s[1:], t[1:], MASK))
    assert base == pytest.approx((one + two) / 2, rel=1e-6)


def test_attention_kl_with_different_head_counts_compares_the_mixed_distributions():
    s, t = [_scores(0, heads=2)], [_scores(1, heads=4)]
    value = float(attention_kl_loss(s, t, MASK))
    assert value > 0 and math.isfinite(value)
    same = [_scores(5, heads=1)]
    doubled = [same[0].repeat(1, 3, 1, 1)]  # three identical heads mix to the same distribution
    assert float(attention_kl_loss(same, doubled, MASK)) == pytest.approx(0.0, abs=1e-6)


def test_hidden_and_embedding_terms_zero_at_equality_and_blind_to_padding():
    g = torch.Generator().manual_seed(0)
    s = [torch.randn(2, 5, 8, generator=g) for _ in range(3)]
    t = [torch.randn(2, 5, 8, generator=g) for _ in range(3)]
    for loss in (lambda a, b: hidden_state_loss(a, b, None, MASK), lambda a, b: embedding_loss(a[-1], b[-1], MASK),
                 lambda a, b: relation_loss(a[-1], b[-1], MASK)):
        assert float(loss(s, s)) == pytest.approx(0.0, abs=1e-6)
        base = float(loss(s, t))
        assert base > 0
        padded = [x.clone() for x in s]
        for x in padded:
            x[1, 3:] = 50.0  # the padded positions of row 2
        assert float(loss(padded, t)) == pytest.approx(base, rel=1e-6)


def test_token_cosines_by_hand_per_layer_over_real_tokens():
    mask = torch.tensor([[1, 1, 0]])
    student = [torch.tensor([[[1.0, 0.0], [1.0, 1.0], [5.0, 5.0]]]),   # layer 0: cos 1 and 1/√2 (the pad ignored)
               torch.tensor([[[0.0, 3.0], [-1.0, 0.0], [1.0, 0.0]]])]  # layer 1: cos 0 and -1
    teacher = [torch.tensor([[[2.0, 0.0], [0.0, 1.0], [-5.0, -5.0]]]),
               torch.tensor([[[1.0, 0.0], [4.0, 0.0], [1.0, 0.0]]])]
    sums, tokens = token_cosines(student, teacher, mask)
    assert tokens == 2
    assert sums.tolist() == pytest.approx([1 + 1 / math.sqrt(2), -1.0], rel=1e-6)
    same, n = token_cosines(student, student, None)  # no mask: every position counts
    assert n == 3 and same.tolist() == pytest.approx([3.0, 3.0], rel=1e-6)


def test_embedding_term_by_hand():
    student = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # [CLS] (1, 0), mean (1, 0)
    teacher = torch.tensor([[[0.0, 1.0], [2.0, 1.0]]])  # [CLS] (0, 1): cos 0; mean (1, 1): cos 1/√2
    want = 0.5 * ((1 - 0.0) + (1 - 1 / math.sqrt(2)))
    assert float(embedding_loss(student, teacher, None)) == pytest.approx(want, rel=1e-6)
    cls, mean = sentence_embeddings(torch.tensor([[[1.0], [3.0], [100.0]]]), torch.tensor([[1, 1, 0]]))
    assert float(cls) == 1.0 and float(mean) == 2.0  # the padded 100 is left out


def test_relation_term_by_hand_and_it_sees_a_collapse_the_cosine_term_misses():
    # two sentences; [CLS] = mean (one token each): teacher at 90°, student at 0° (collapsed): off-diagonal cos 0 vs 1
    teacher = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # [batch 2, T 1, width 2]
    student = torch.tensor([[[1.0, 1.0]], [[1.0, 1.0]]])
    assert float(relation_loss(student, teacher, None)) == pytest.approx(1.0)  # (1 − 0)², both poolings
    assert float(embedding_loss(student, teacher, None)) == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-6)  # only 0.29
    wider = torch.cat([teacher, torch.zeros(2, 1, 3)], dim=-1)  # another width, the same geometry
    assert float(relation_loss(wider, teacher, None)) == pytest.approx(0.0, abs=1e-7)
    assert float(relation_loss(student[:1], teacher[:1], None)) == 0.0  # one sentence: no pair


def test_zeroshot_scores_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # cosines 1, 0.707, 0
    out = zeroshot_scores(a, b, [5.0, 3.0, 0.5])
    assert out["spearman"] == pytest.approx(1.0) and out["pearson"] > 0.98
    assert zeroshot_scores(a, b, [0.5, 3.0, 5.0])["spearman"] == pytest.approx(-1.0)


def test_stsb_zeroshot_equals_a_hand_computation(tiny_models, tiny_glue):
    from transformers import AutoModel, AutoTokenizer

    from bertprune.data.glue import get_task, read_tsv

    model = AutoModel.from_pretrained(tiny_models["bert"]).eval()
    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    out = stsb_zeroshot(model, tok, tiny_glue, batch_size=7)
    dev = read_tsv(tiny_glue / "STS-B" / "dev.tsv", get_task("stsb"))
    embeddings = []
    with torch.no_grad():
        for column in ("text_a", "text_b"):
            rows = []
            for text in dev[column]:  # one sentence at a time: no padding at all
                ids = tok(text, return_tensors="pt")
                rows.append(model(**ids).last_hidden_state[0].mean(0))
            embeddings.append(torch.stack(rows))
    from scipy.stats import spearmanr

    cos = torch.nn.functional.cosine_similarity(*embeddings, dim=-1).numpy()
    assert out["spearman"] == pytest.approx(spearmanr(cos, dev["label"])[0], abs=1e-6)
    assert out["pairs"] == len(dev) and 0 < out["cls_pairwise_cosine"] <= 1


def test_pair_features_encode_the_two_sentences_together(tiny_models):
    from transformers import AutoModel, AutoTokenizer

    from bertprune.sentence import encode_features

    model = AutoModel.from_pretrained(tiny_models["bert"]).eval()
    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    a, b = ["a cat sat", "the dog ran far away", "rain"], ["a cat sits", "no", "sun today"]
    feats = encode_features(model, tok, a, b, batch_size=2)
    assert set(feats) == {"cls", "mean", "pooler"} and all(v.shape == (3, model.config.hidden_size) for v in feats.values())
    with torch.no_grad():
        for i in range(3):  # one pair at a time: [CLS] a [SEP] b [SEP] with segment ids, no padding
            ids = tok(a[i], b[i], return_tensors="pt")
            assert (ids["token_type_ids"] == 1).any()
            out = model(**ids)
            assert torch.allclose(feats["cls"][i], out.last_hidden_state[0, 0], atol=1e-5)
            assert torch.allclose(feats["mean"][i], out.last_hidden_state[0].mean(0), atol=1e-5)
            assert torch.allclose(feats["pooler"][i], out.pooler_output[0], atol=1e-5)


def test_pair_probe_by_hand():
    from bertprune.sentence import pair_probe

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=gen)
    gold = (x[:, 0] * 2 - x[:, 1]).tolist()  # linear in the features: the probe ranks dev perfectly
    noise = torch.randn(200, 4, generator=gen)  # unrelated to the gold scores: about 0
    scores = pair_probe({"signal": x[:150], "noise": noise[:150]}, gold[:150],
                        {"signal": x[150:], "noise": noise[150:]}, gold[150:])
    assert scores["signal"] > 0.999 and abs(scores["noise"]) < 0.35


def test_mean_pairwise_cosine_needs_two_rows():
    with pytest.raises(ValueError):
        mean_pairwise_cosine(torch.ones(1, 3))


# --- the pre-training run ----------------------------------------------------------------------------
def _distill_args(pretrain_args, out, *extra):
    return pretrain_args(out, "bert", "--objective", "distill", "--method", "gradual", "--sparsity", "0.8",
                         "prune.criterion=magnitude", "prune.schedule.every=2", "prune.scope=global", *extra)


def test_distill_objective_prunes_a_bare_encoder_and_the_mask_transfers_fixed(pretrain_args, run_args, tmp_path,
                                                                             tiny_glue):
    assert run(_distill_args(pretrain_args, "pre", "--glue-dir", str(tiny_glue))) == 0
    results = json.loads((tmp_path / "pre" / "results.json").read_text())
    dev = results["final"]["dev"]
    assert results["achieved_sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert 0 < dev["embedding_cosine"] <= 1 and dev["hidden_mse"] > 0
    layers = [dev[f"token_cosine_layer{i}"] for i in range(3)]  # the tiny encoder: embeddings + 2 layers
    assert "token_cosine_layer3" not in dev and all(-1 <= c <= 1 for c in layers) and layers[-1] < 1 - 1e-4
    assert 0 < dev["cls_pairwise_cosine_teacher"] <= 1 and "mlm_accuracy" not in dev
    assert -1 <= dev["stsb_zeroshot_spearman"] <= 1  # every evaluation: zero-shot STS-B of the tiny GLUE folder
    logged = [json.loads(x) for x in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "loss_attn" in r]
    # before the first mask (step 2) the student is the teacher (no dropout in the tiny model): loss 0; after, > 0
    assert steps[0]["loss_attn"] == steps[0]["loss_hidden"] == 0.0
    assert len(steps) > 3 and all(r["loss_attn"] > 0 and r["loss_hidden"] > 0 for r in steps[1:])
    final = tmp_path / "pre" / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]  # a plain encoder, pooler included
    assert any(k.startswith("pooler.") for k in load_file(str(final / "model.safetensors")))

    universal = Masks.load(final / "mask.safetensors")
    assert run(run_args("ft", "bert", "sst2", "--model", str(final), "--mask", str(final / "mask.safetensors"))) == 0
    weights = load_file(str(tmp_path / "ft" / "final" / "model.safetensors"))
    kept = 0
    for name in universal.names():
        ft_name = name if name in weights else f"bert.{name}"
        assert (weights[ft_name][~universal[name]] == 0).all(), name  # zeros stayed zeros
        kept += 1
    assert kept == len(universal.names()) > 0
    from bertprune.report import sparsity_report

    report = sparsity_report(tmp_path / "ft")  # the encoder's mask, under the task model's names
    assert report["universal_mask"]["mask_equal"] is True
    assert report["universal_mask"]["universal_zeros_still_zero"] == 1.0


def test_distill_objective_on_segment_pairs_feeds_both_models_the_segment_ids(pretrain_args, tmp_path, monkeypatch):
    """data.pair_fraction: a share of the examples are [CLS] A [SEP] B [SEP] with segment ids; the student and
    the teacher both see the token_type_ids (else the teacher's features of segment B would not be distilled)."""
    from bertprune.methods.distill import Distillation

    seen = []
    loss = Distillation.loss

    def spy(self, task_loss, outputs, batch):
        seen.append(batch["token_type_ids"].clone())
        return loss(self, task_loss, outputs, batch)

    monkeypatch.setattr(Distillation, "loss", spy)
    assert run(_distill_args(pretrain_args, "pre", "data.pair_fraction=0.5")) == 0
    results = json.loads((tmp_path / "pre" / "results.json").read_text())
    assert results["achieved_sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert seen and any((t == 1).any() for t in seen)  # segment B reached the loss
    rows = torch.cat([t.any(dim=1) for t in seen])
    assert 0.2 < rows.float().mean() < 0.8  # about half the rows are pairs
    # the held-out set stays packed blocks (its metrics compare with a pair_fraction=0 run's): no segment B there
    from bertprune.config import PretrainConfig, load_config
    from bertprune.tasks.text_distill import TextDistillTask
    from bertprune.train import make_accelerator

    cfg = load_config(tmp_path / "pre" / "config.yaml", [], schema=PretrainConfig)
    built = TextDistillTask(cfg).build(make_accelerator(cfg))
    assert "token_type_ids" not in built.eval_sets["dev"].column_names
    assert any(1 in t for t in built.train_set["token_type_ids"])


def test_pair_fraction_needs_segment_ids(pretrain_args, tmp_path, capsys):
    from conftest import cli_fails
    from transformers import AutoModel

    from bertprune.testing import save_tiny_model

    one_segment = save_tiny_model(tmp_path / "one", "bert")
    model = AutoModel.from_pretrained(one_segment)
    model.config.type_vocab_size = 1
    model.embeddings.token_type_embeddings = torch.nn.Embedding(1, model.config.hidden_size)
    model.save_pretrained(one_segment)
    args = _distill_args(pretrain_args, "x", "data.pair_fraction=0.5", f"model.name={one_segment}")
    cli_fails(args, capsys, "type_vocab_size")


def test_pair_fraction_is_refused_where_it_has_no_meaning(pretrain_args, capsys):
    from conftest import cli_fails

    cli_fails(_distill_args(pretrain_args, "x", "data.pair_fraction=1.5"), capsys, "pair_fraction")
    cli_fails(pretrain_args("x", "bert", "data.pair_fraction=0.5"), capsys, "pair_fraction")  # objective=mlm
    cli_fails(_distill_args(pretrain_args, "x", "data.pair_fraction=0.5", "distill.task_weight=0.5"), capsys,
              "pair_fraction")


def test_distill_objective_with_the_masked_lm_term(pretrain_args, tmp_path):
    assert run(_distill_args(pretrain_args, "pre", "distill.task_weight=0.5", "distill.embedding_weight=1")) == 0
    dev = json.loads((tmp_path / "pre" / "results.json").read_text())["final"]["dev"]
    assert {"mlm_accuracy", "embedding_cosine", "cls_pairwise_cosine"} <= set(dev)
    logged = [json.loads(x) for x in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("loss_task", 0) > 0 and r.get("loss_embedding", 0) > 0 for r in logged)


def test_distill_objective_with_rpp(pretrain_args, tmp_path):
    args = pretrain_args("pre", "bert", "--objective", "distill", "--method", "rpp", "--sparsity", "0.8",
                         "prune.rpp.gamma_rate=1.2", "prune.rpp.reweight_every=3")
    assert run(args) == 0
    assert json.loads((tmp_path / "pre" / "results.json").read_text())["achieved_sparsity"] == pytest.approx(0.8, abs=1e-3)


@pytest.mark.slow
def test_distill_objective_resumes_exactly_mid_run(pretrain_args, tmp_path):
    """Killed after its second checkpoint (mid-run, criterion and schedule state inside), resumed: the same
    weights, mask, metrics and evaluation as an uninterrupted run."""
    extra = ("train.save_every=3", "train.eval_every=3", "prune.criterion=fisher")
    reference = run_cli(_distill_args(pretrain_args, "reference", *extra))
    assert reference.returncode == 0, reference.stderr_tail
    outcome = crash_and_resume(_distill_args(pretrain_args, "crashed", *extra), tmp_path / "crashed",
                               fingerprint(tmp_path / "reference"), faults=("checkpoint.published@2",))
    assert outcome.reached and outcome.tracebacks == 0
    assert not outcome.differences, outcome.differences


def test_bad_distill_objective_settings_are_refused(pretrain_args, capsys):
    from conftest import cli_fails

    cli_fails(pretrain_args("x", "bert", "--objective", "distill", "distill.pred_weight=1"), capsys, "pred_weight=0")
    cli_fails(pretrain_args("x", "bert", "--objective", "distill", "distill.attn_loss=cosine"), capsys, "attn_loss")


def test_attention_kl_gradient_is_finite_with_padding_and_different_head_counts():
    s = _scores(0, heads=4).requires_grad_(True)
    t = _scores(1, heads=2)
    attention_kl_loss([s], [t], MASK).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_method_from_config_applies_the_distill_checks():
    from bertprune.config import DistillConfig, PruneConfig
    from bertprune.errors import BertpruneError
    from bertprune.hf_trainer import method_from_config

    prune = PruneConfig(method="gradual", sparsity=0.5)
    method = method_from_config(prune, distill=DistillConfig(hardness=0.5, attn_weight=0, hidden_weight=0),
                                teacher="runs/teacher")
    assert (method.cfg.pred_weight, method.cfg.task_weight) == (0.5, 0.5)  # hardness → the two weights
    with pytest.raises(BertpruneError, match="attn_loss"):
        method_from_config(prune, distill=DistillConfig(attn_loss="KL"), teacher="runs/teacher")


def test_masks_align_through_one_prefix_in_one_direction():
    keep = torch.ones(2, 2, dtype=torch.bool)
    encoder = Masks({"encoder.a.weight": keep, "encoder.b.weight": keep})
    task = {"bert.encoder.a.weight": keep, "bert.encoder.b.weight": keep, "classifier.weight": keep}
    assert sorted(encoder.aligned(task).names()) == ["bert.encoder.a.weight", "bert.encoder.b.weight"]
    back = Masks({"bert.encoder.a.weight": keep}).aligned({"encoder.a.weight": keep})
    assert back.names() == ["encoder.a.weight"]
    mixed = Masks({"classifier.dense.weight": keep, "bert.x.weight": keep})  # two different heads: left as it is
    assert sorted(mixed.aligned({"dense.weight": keep, "x.weight": keep}).names()) == ["bert.x.weight", "classifier.dense.weight"]


def test_evaluate_distilled_refuses_a_run_it_cannot_evaluate():
    from bertprune.config import PretrainConfig, load_config
    from bertprune.errors import BertpruneError
    from bertprune.pretrain import evaluate_distilled

    for overrides in (["objective=mlm", "distill.teacher=t"], ["objective=distill"]):  # no teacher: nothing to compare with
        with pytest.raises(BertpruneError, match="distill.teacher"):
            evaluate_distilled(load_config(None, overrides, schema=PretrainConfig))
