"""The training-recipe options of the high-sparsity work: KD terms (normalised, last hidden state,
temperature, hardness), learning-rate rewinding, a student that starts from the teacher, shipped
recipes, and the one train_step every loop calls."""

import ast
import copy
import json
from pathlib import Path

import pytest
import torch

import bertprune.train as train_mod
from bertprune.cli import run
from bertprune.config import DistillConfig, DistillRunConfig, load_config
from bertprune.errors import BertpruneError
from bertprune.methods import Dense
from bertprune.methods.distill import Distillation, attention_score_loss, hidden_state_loss, prediction_loss

from bertprune.testing import tiny_config

REPO = Path(__file__).resolve().parents[1]


def _classifier(seed=0, num_labels=2):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    config = tiny_config("bert")
    config.num_labels = num_labels
    return AutoModelForSequenceClassification.from_config(config).eval()


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(5, 40, (4, 10), generator=g)
    mask = torch.ones_like(x)
    mask[0, 6:] = 0
    x[mask == 0] = 0
    return {"input_ids": x, "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}


def _terms(student, teacher, **cfg):
    method = Distillation(Dense(), lambda: teacher, DistillConfig(teacher="t", **cfg))
    method.prepare(student, 10)
    batch = _batch()
    out = student(**batch, **method.forward_kwargs())
    method.loss(out.loss, out, batch)
    return dict(method.last)


def test_every_kd_term_is_zero_when_the_student_is_the_teacher():
    teacher = _classifier()
    terms = _terms(copy.deepcopy(teacher), teacher, last_hidden_weight=1.0, temperature=2.0)
    assert set(terms) == {"attn", "hidden", "last_hidden", "pred"}
    assert all(v == pytest.approx(0, abs=1e-10) for v in terms.values()), terms
    other = _terms(_classifier(seed=1).train(), teacher, last_hidden_weight=1.0, temperature=2.0)
    assert all(v > 1e-6 for v in other.values()), other


def test_kd_on_logits_scales_with_temperature_squared():
    class Out:
        def __init__(self, logits):
            self.logits = logits

    s, t = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    p_t, p_s = torch.softmax(t / 2, -1), torch.softmax(s / 2, -1)
    kl = float((p_t * (p_t.log() - p_s.log())).sum())
    assert float(prediction_loss(Out(s), Out(t), 2.0, regression=False)) == pytest.approx(4 * kl, rel=1e-5)


def test_terms_are_means_over_layers_and_real_tokens():
    mask = torch.tensor([[1, 1, 0]])
    a, b = torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)
    b[0, 0] = 2.0  # one real token differs by 2 in every feature
    b[0, 2] = 100.0  # the padded one does not count
    one = float(hidden_state_loss([a], [b], None, mask))
    assert one == pytest.approx(4.0 / 2)  # squared error 4 on 1 of the 2 real tokens
    assert float(hidden_state_loss([a, a], [b, b], None, mask)) == pytest.approx(one)  # mean over layers, not sum
    s, t = torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)
    t[..., 0, 0] = 3.0  # real pair (0, 0) differs by 3 in both heads
    t[..., 2, :] = 50.0  # padded query row does not count
    assert float(attention_score_loss([s], [t], mask)) == pytest.approx(9.0 / 4)  # 4 real pairs per head
    assert float(attention_score_loss([s, s, s], [t, t, t], mask)) == pytest.approx(9.0 / 4)


def test_hardness_sets_the_kd_and_gold_label_weights():
    cfg = load_config(None, ["distill.teacher=t", "distill.hardness=0.7"], schema=DistillRunConfig)
    assert (cfg.distill.pred_weight, cfg.distill.task_weight) == (0.7, pytest.approx(0.3))
    with pytest.raises(BertpruneError, match="hardness"):
        load_config(None, ["distill.teacher=t", "distill.hardness=1.5"], schema=DistillRunConfig)


@pytest.mark.parametrize("bad,match", [
    (["prune.method=gmp", "prune.sparsity=0.5", "prune.criterion=movement"], "gradual"),
    (["prune.method=gradual", "prune.sparsity=0.5", "prune.criterion=random"], "criterion"),
    (["prune.method=gradual", "prune.sparsity=0.5", "prune.schedule.kind=quadratic"], "schedule.kind"),
    (["prune.method=gradual", "prune.sparsity=0.9", "prune.scope=global", "prune.max_layer_sparsity=0.8"], "max_layer"),
    (["train.lr_schedule=cosine"], "lr_schedule"),
])
def test_bad_recipe_options_are_refused_with_one_message(bad, match):
    with pytest.raises(BertpruneError, match=match):
        load_config(None, bad)


def test_the_loop_runs_through_train_step(run_args, tmp_path, monkeypatch):
    calls = []
    original = train_mod.train_step

    def counting(*a, **kw):
        calls.append(a[5])  # next_step
        return original(*a, **kw)

    monkeypatch.setattr(train_mod, "train_step", counting)
    assert run(run_args("ts", "bert", "sst2", "--method", "gradual", "--sparsity", "0.5", "prune.criterion=movement")) == 0
    assert calls == list(range(1, 13))  # 2 epochs of 96 examples in batches of 16


def test_benchmarks_do_not_copy_the_hook_order():
    """Benchmarks call train_step (or bertprune's commands); none calls the hooks by hand."""
    for path in (REPO / "benchmarks").glob("*.py"):
        tree = ast.parse(path.read_text())
        hooks = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and n.func.attr in ("after_step", "before_optimizer_step")]
        assert not hooks, f"{path.name} calls {hooks} directly; use bertprune.train.train_step"


def test_lr_rewinds_at_every_pruning_step(run_args, tmp_path):
    assert run(run_args("rw", "bert", "sst2", "--method", "gmp", "--sparsity", "0.8", "--epochs", "4",
                        "train.lr_schedule=rewind", "train.warmup_ratio=0", "train.log_every=1",
                        "prune.schedule.every=6", "prune.schedule.end=0.5")) == 0
    log = [json.loads(x) for x in (tmp_path / "rw" / "metrics.jsonl").read_text().splitlines()]
    lr = {r["step"]: r["lr"] for r in log if "lr" in r}  # the rate of the *next* step, logged after the step
    # 24 steps, pruning at 6, 12 (end): cycles [0, 6), [6, 12), [12, 24); the rate falls within each, back to 1e-3 after each
    assert lr[6] == pytest.approx(1e-3) and lr[12] == pytest.approx(1e-3)
    assert lr[5] < lr[4] < lr[1] < 1e-3 and lr[11] < lr[7] < 1e-3 and lr[23] < lr[13]
    assert lr[23] == pytest.approx(1e-3 * (1 - 0.9 * 11 / 12), rel=1e-4)


def test_student_starts_from_the_teacher_and_recipes_ship(run_args, tiny_models, tiny_glue, tmp_path):
    assert run(run_args("teacher", "bert", "sst2", "--epochs", "8", "--lr", "3e-3")) == 0
    teacher_acc = json.loads((tmp_path / "teacher" / "results.json").read_text())["final"]["dev"]["accuracy"]
    args = ["distill", "--recipe", "sparse-kd", "--task", "sst2", "--teacher", str(tmp_path / "teacher"),
            "--glue-dir", str(tiny_glue), "-o", str(tmp_path / "d"), "--sparsity", "0.5", "--max-steps", "1",
            "--batch-size", "16", "--lr", "1e-9", "--quiet", "data.max_length=32", "train.mixed_precision=no"]
    assert run(args) == 0
    saved = (tmp_path / "d" / "config.yaml").read_text()
    assert str(tmp_path / "teacher" / "final") in saved  # model.name became the teacher's weights
    results = json.loads((tmp_path / "d" / "results.json").read_text())
    s = results["method_summary"]
    assert (s["criterion"], s["scope"], s["schedule"], s["pruning"]) == ("fisher", "global", "cubic", "gradual")
    # one step at lr 1e-9 after a 30% one-shot jump: still close to the teacher, far above chance (0.5)
    assert results["final"]["dev"]["accuracy"] >= teacher_acc - 0.15
    with pytest.raises(SystemExit):
        run(["distill", "--recipe", "no-such-recipe", "--task", "sst2"])


def test_cap_must_sit_above_the_target_and_dense_twin_config_loads():
    with pytest.raises(BertpruneError, match="max_layer"):
        load_config(None, ["prune.method=gradual", "prune.sparsity=0.9", "prune.scope=global", "prune.max_layer_sparsity=0.9"])
    from bertprune.recipes import recipe_file

    cfg = load_config(recipe_file("sparse-kd"), ["distill.teacher=t", "prune.method=dense", "prune.sparsity=0",
                                                 "prune.schedule.initial_sparsity=0", "prune.criterion=magnitude",
                                                 "prune.granularity=unstructured"], schema=DistillRunConfig)
    assert cfg.prune.method == "dense"


@pytest.mark.parametrize("kind", ["bert-dropout", "distilbert"])
def test_model_dropout_replaces_every_dropout_of_the_config(tiny_models, kind):
    from transformers import AutoModelForSequenceClassification

    from bertprune.config import ModelConfig
    from bertprune.models import load_model

    kept = load_model(ModelConfig(name=str(tiny_models[kind])), AutoModelForSequenceClassification)
    off = load_model(ModelConfig(name=str(tiny_models[kind]), dropout=0.0), AutoModelForSequenceClassification)
    fields = (("hidden_dropout_prob", "attention_probs_dropout_prob") if kind == "bert-dropout"
              else ("dropout", "attention_dropout", "seq_classif_dropout"))
    assert [getattr(kept.config, f) for f in fields] == ([0.1, 0.1] if kind == "bert-dropout" else [0.0, 0.0, 0.2])
    assert [getattr(off.config, f) for f in fields] == [0.0] * len(fields)
    assert off.config.to_dict().get("classifier_dropout") is None  # unset stays unset: the head follows hidden_dropout_prob
    # the modules themselves: with dropout 0 a training-mode forward is deterministic, with 0.1 it is not
    if kind == "bert-dropout":
        x = torch.randint(5, 40, (2, 8))
        kept.train(), off.train()
        assert not torch.equal(kept(input_ids=x).logits, kept(input_ids=x).logits)
        assert torch.equal(off(input_ids=x).logits, off(input_ids=x).logits)


def test_model_dropout_is_checked_and_saved_beside_the_run(run_args, tmp_path):
    with pytest.raises(BertpruneError, match="model.dropout"):
        load_config(None, ["model.dropout=1.0"])
    assert run(run_args("d0", "bert-dropout", "sst2", "--epochs", "1", "model.dropout=0.0")) == 0
    assert "dropout: 0.0" in (tmp_path / "d0" / "config.yaml").read_text()
    assert json.loads((tmp_path / "d0" / "final" / "config.json").read_text())["hidden_dropout_prob"] == 0.0
