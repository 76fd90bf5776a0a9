"""Pruning while distilling: the loss terms, layer map, projection, attention scores, the CLI."""

import copy
import json
import time

import pytest
import torch

from bertprune.cli import run
from bertprune.config import DistillConfig
from bertprune.methods import Dense, GradualMagnitude
from bertprune.methods.distill import (AttentionScores, Distillation, attention_score_loss, layer_map,
                                       prediction_loss, soft_cross_entropy)

from bertprune.testing import tiny_config


def _classifier(kind="bert", seed=0, num_labels=2, **kw):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    config = tiny_config(kind, **kw)
    config.num_labels = num_labels
    return AutoModelForSequenceClassification.from_config(config)


def _batch(seed=0, pad=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(5, 40, (4, 10), generator=g)
    mask = torch.ones_like(x)
    if pad:
        mask[0, 7:] = 0
        mask[2, 5:] = 0
        x[mask == 0] = 0
    return {"input_ids": x, "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}


def _terms(student, teacher, cfg=None, regression=False):
    method = Distillation(Dense(), lambda: teacher, cfg or DistillConfig(teacher="t"), regression=regression)
    method.prepare(student, 10)
    batch = _batch()
    out = student(**batch, **method.forward_kwargs())
    loss = method.loss(out.loss, out, batch)
    return method, loss, dict(method.last)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_every_term_is_zero_for_an_identical_student_and_positive_otherwise(kind):
    teacher = _classifier(kind).eval()
    student = copy.deepcopy(teacher).eval()
    every = DistillConfig(teacher="t", last_hidden_weight=1.0, embedding_weight=1.0, relation_weight=1.0)
    _, loss, terms = _terms(student, teacher, every)
    assert set(terms) == {"attn", "hidden", "last_hidden", "embedding", "relation", "pred"}
    assert all(v == pytest.approx(0, abs=1e-6) for v in terms.values()), terms
    other = _classifier(kind, seed=1).eval()
    _, _, diff = _terms(other, teacher, every)
    assert all(v > 1e-6 for v in diff.values()), diff


def test_soft_label_loss_has_the_gradient_of_the_soft_cross_entropy():
    t = torch.randn(5, 3)
    s = torch.randn(5, 3, requires_grad=True)
    assert float(soft_cross_entropy(t, t)) == pytest.approx(0, abs=1e-6)
    for tau in (1.0, 2.0):
        soft_cross_entropy(s, t, tau).backward()
        kl_grad, s.grad = s.grad.clone(), None
        p_t = torch.softmax(t / tau, -1)
        (-(p_t * torch.log_softmax(s / tau, -1)).sum(-1).mean()).backward()
        torch.testing.assert_close(kl_grad, s.grad)
        s.grad = None


def test_regression_uses_mse_to_the_teacher():
    class Out:
        def __init__(self, logits):
            self.logits = logits

    s, t = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.5], [2.0]])
    assert float(prediction_loss(Out(s), Out(t), 1.0, regression=True)) == pytest.approx(0.125)
    teacher = _classifier(num_labels=1).eval()
    _, _, terms = _terms(copy.deepcopy(teacher), teacher, regression=True)
    assert terms["pred"] == pytest.approx(0, abs=1e-12)


def test_layer_map_and_projection_for_unequal_depth_and_width():
    assert layer_map(2, 4) == [2, 4] and layer_map(3, 6) == [2, 4, 6] and layer_map(6, 6) == list(range(1, 7))
    assert layer_map(3, 12) == [4, 8, 12]
    teacher = _classifier(layers=4, hidden=48, heads=4, ffn=96).eval()
    student = _classifier(seed=1)
    method, loss, terms = _terms(student, teacher)
    assert method.layer_pairs == [(1, 2), (2, 4)]
    assert method.projection.in_features == 32 and method.projection.out_features == 48
    loss.backward()
    assert method.projection.weight.grad is not None and method.projection.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())  # the teacher runs without gradients


def test_a_teacher_with_another_vocabulary_is_refused():
    from bertprune.errors import BertpruneError

    teacher = _classifier().eval()
    teacher.resize_token_embeddings(teacher.config.vocab_size + 8)  # another tokenizer's ids
    with pytest.raises(BertpruneError, match="vocabulary has .* tokens, the student's"):
        Distillation(Dense(), lambda: teacher, DistillConfig(teacher="t")).prepare(_classifier(seed=1), 10)


def test_unequal_head_counts_compare_head_averages():
    teacher = _classifier(heads=8).eval()
    student = _classifier(seed=1, heads=4)
    _, _, terms = _terms(student, teacher)
    assert terms["attn"] > 0


def test_captured_scores_are_the_pre_softmax_attention():
    model = _classifier()
    model.config._attn_implementation = "eager"
    model.eval()
    capture = AttentionScores(model, 4)
    batch = _batch()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
    scores = capture.take()
    assert len(scores) == 2 and scores[0].shape == (4, 4, 10, 10)
    additive = (1.0 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    for s, probs in zip(scores, out.attentions):
        torch.testing.assert_close(torch.softmax(s + additive, dim=-1), probs, rtol=1e-4, atol=1e-5)


def test_padded_positions_do_not_count():
    mask = torch.tensor([[1, 1, 0]])
    a = torch.zeros(1, 2, 3, 3)
    b = a.clone()
    b[..., 2, :] = 5.0
    b[..., :, 2] = -3.0  # only padded rows and columns differ
    assert float(attention_score_loss([a], [b], mask)) == 0.0
    assert float(attention_score_loss([a], [b], None)) > 0.0


def test_pruned_student_keeps_its_zeros_while_distilling():
    teacher = _classifier().eval()
    student = _classifier(seed=1)
    inner = GradualMagnitude(0.75)
    method = Distillation(inner, lambda: teacher, DistillConfig(teacher="t"))
    method.prepare(student, 20)
    opt = torch.optim.AdamW(list(student.parameters()) + method.extra_parameters(), lr=1e-2)
    for step in range(1, 21):
        batch = _batch(step)
        out = student(**batch, **method.forward_kwargs())
        method.loss(out.loss, out, batch).backward()
        opt.step()
        method.after_step(step, opt)
        opt.zero_grad()
    masks = method.finalize()
    assert masks.sparsity() == pytest.approx(0.75, abs=1e-3)
    params = dict(student.named_parameters())
    assert all((params[n][~m] == 0).all() for n, m in masks.masks.items())


def test_distill_cli_end_to_end(run_args, tiny_models, tiny_glue, tmp_path):
    start = time.time()
    assert run(run_args("teacher", "bert", "stsb", "--epochs", "4", "--lr", "3e-3")) == 0
    args = ["distill", "--task", "stsb", "--teacher", str(tmp_path / "teacher"), "--student", str(tiny_models["bert"]),
            "--glue-dir", str(tiny_glue), "-o", str(tmp_path / "d"), "--sparsity", "0.9", "--epochs", "4",
            "--batch-size", "16", "--lr", "3e-3", "--quiet", "data.max_length=32", "train.log_every=2"]
    assert run(args) == 0
    results = json.loads((tmp_path / "d" / "results.json").read_text())
    assert results["method"] == "distill" and results["method_summary"]["pruning"] == "gmp"
    assert results["achieved_sparsity"] == pytest.approx(0.9, abs=2e-3)
    assert set(results["final"]["dev"]) == {"pearson", "spearman"}
    assert set(results["teacher_agreement"]["dev"]) == {"pearson", "spearman"}  # STS-B: against the teacher's scores
    log = [json.loads(x) for x in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert all({"loss_attn", "loss_hidden", "loss_pred"} <= set(r) for r in log if "loss" in r)
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(tmp_path / "d" / "final")  # a plain HF checkpoint
    assert (tmp_path / "d" / "final" / "mask.safetensors").is_file() and (tmp_path / "d" / "report.md").is_file()
    assert time.time() - start < 60


def test_teacher_for_another_task_is_refused(run_args, tiny_models, tiny_glue, tmp_path, capsys):
    from bertprune.cli import main

    assert run(run_args("t", "bert", "stsb", "--max-steps", "1")) == 0  # 1 label
    args = ["distill", "--task", "sst2", "--teacher", str(tmp_path / "t"), "--student", str(tiny_models["bert"]),
            "--glue-dir", str(tiny_glue), "-o", str(tmp_path / "d"), "--quiet"]
    with pytest.raises(SystemExit):
        main(args)
    assert "same task" in capsys.readouterr().err
    args[args.index("--teacher") + 1] = str(tiny_models["bert"])  # pre-trained only: no trained head
    with pytest.raises(SystemExit):
        main(args)
    assert "no trained classification head" in capsys.readouterr().err


def test_teacher_agreement_is_the_task_metric_against_the_teachers_predictions(tiny_classifier):
    from accelerate import Accelerator

    from bertprune.config import RunConfig
    from bertprune.fidelity import teacher_agreement
    from bertprune.tasks.glue import GlueTask

    cfg = RunConfig()
    cfg.data.task = "sst2"
    task = GlueTask(cfg)
    g = torch.Generator().manual_seed(0)
    loader = [{"input_ids": torch.randint(5, 20, (8, 10), generator=g), "attention_mask": torch.ones(8, 10, dtype=torch.long),
               "labels": torch.randint(0, 2, (8,), generator=g)} for _ in range(4)]  # 32 random "sentences"
    teacher, student = tiny_classifier("bert", 2, seed=0), tiny_classifier("bert", 2, seed=1)
    student.train()
    accelerator = Accelerator(cpu=True)
    assert teacher_agreement(task, teacher, teacher, {"dev": loader}, accelerator)["dev"]["accuracy"] == 1.0
    got = teacher_agreement(task, student, teacher, {"dev": loader}, accelerator)["dev"]
    assert student.training  # its mode is restored
    with torch.no_grad():
        s = torch.cat([student.eval()(**b).logits.argmax(-1) for b in loader])
        t = torch.cat([teacher.eval()(**b).logits.argmax(-1) for b in loader])
    assert got["accuracy"] == pytest.approx((s == t).float().mean().item())  # the share of equal predictions
    assert teacher_agreement(object(), student, teacher, {"dev": loader}, accelerator) is None  # e.g. SQuAD
