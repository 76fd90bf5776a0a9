"""bertprune inside a Hugging Face Trainer: the callback reaches the target sparsity, and a run
interrupted and resumed with ``resume_from_checkpoint`` ends with the same weights and masks."""

import pytest
import torch
from safetensors.torch import load_file

from bertprune.config import PruneConfig, ScheduleConfig
from bertprune.errors import BertpruneError
from bertprune.hf_trainer import PruningTrainer, method_from_config
from bertprune.masks import MASK_FILE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sst2(tiny_models, tiny_glue):
    """Tiny SST-2, tokenized, and a factory of identical classifiers."""
    import csv

    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    with open(tiny_glue / "SST-2" / "train.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    data = Dataset.from_dict({"sentence": [r["sentence"] for r in rows], "label": [int(r["label"]) for r in rows]})
    data = data.map(lambda b: tok(b["sentence"], truncation=True, max_length=32), batched=True, remove_columns=["sentence"])

    def model():
        torch.manual_seed(0)  # the same fresh head every time
        return AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=2)

    return data, tok, model


def _trainer(sst2, out, method, callbacks=()):
    from transformers import DataCollatorWithPadding, TrainingArguments

    data, tok, model = sst2
    args = TrainingArguments(output_dir=str(out), max_steps=12, per_device_train_batch_size=16, learning_rate=1e-3,
                             save_strategy="steps", save_steps=6, logging_steps=2, report_to=[], use_cpu=True, seed=0,
                             disable_tqdm=True, eval_strategy="no")
    return PruningTrainer(model=model(), args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok),
                          method=method, callbacks=list(callbacks))


def _method(criterion="magnitude"):
    return method_from_config(PruneConfig(method="gradual", criterion=criterion, sparsity=0.8, scope="global",
                                          schedule=ScheduleConfig(every=1, end=0.5)))


@pytest.mark.parametrize("criterion", ["magnitude", "fisher"])
def test_trainer_callback_reaches_the_target_and_resumes_exactly(sst2, tmp_path, criterion):
    from transformers import TrainerCallback

    straight = _trainer(sst2, tmp_path / "straight", _method(criterion))
    straight.train()
    mask = load_file(str(tmp_path / "straight" / MASK_FILE))
    zeros = sum(int((~m.bool()).sum()) for m in mask.values())
    assert zeros == round(0.8 * sum(m.numel() for m in mask.values()))  # exact, global
    weights = dict(straight.model.named_parameters())
    for name, m in mask.items():
        assert torch.all(weights[name][~m.bool()] == 0), name
    assert any("sparsity" in r for r in straight.state.log_history)

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 8:  # after checkpoint-6 was written
                raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        _trainer(sst2, tmp_path / "resumed", _method(criterion), [Crash()]).train()
    resumed = _trainer(sst2, tmp_path / "resumed", _method(criterion))
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-6"))
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_file(str(tmp_path / "resumed" / MASK_FILE)).keys() == mask.keys()


def test_resume_from_a_checkpoint_without_method_state_is_refused(sst2, tmp_path):
    from transformers import Trainer, TrainingArguments

    data, tok, model = sst2
    plain = Trainer(model=model(), args=TrainingArguments(output_dir=str(tmp_path), max_steps=2, save_steps=2,
                                                          report_to=[], use_cpu=True, per_device_train_batch_size=16),
                    train_dataset=data, data_collator=__import__("transformers").DataCollatorWithPadding(tok))
    plain.train()
    with pytest.raises(BertpruneError, match="no bertprune method state"):
        _trainer(sst2, tmp_path, _method()).train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))


def test_method_from_config_checks_like_a_recipe():
    with pytest.raises(BertpruneError, match="prune.sparsity"):
        method_from_config(PruneConfig(method="gradual", sparsity=1.5))


def _kd_method(teacher):
    from bertprune.config import DistillConfig

    return method_from_config(PruneConfig(method="gradual", criterion="fisher", sparsity=0.8, scope="global",
                                          schedule=ScheduleConfig(every=3, end=0.5, initial_sparsity=0.3)),
                              distill=DistillConfig(attn_weight=0.0, hidden_weight=0.0, hardness=1.0, temperature=2.0),
                              teacher=teacher)


def test_distillation_with_rewinding_lr_in_a_trainer_resumes_exactly(sst2, tmp_path):
    """Pruning while distilling through PruningTrainer, with bertprune's cyclic learning rate: the rate
    is rewound at each pruning step, and a crashed run resumed from its checkpoint ends bit-equal."""
    from transformers import DataCollatorWithPadding, TrainerCallback, TrainingArguments

    from bertprune.schedules import lr_factor

    data, tok, model = sst2
    teacher = model()
    with torch.no_grad():  # a teacher that differs from the student's start
        teacher.classifier.weight.mul_(-3.0)

    def trainer(out, callbacks=()):
        args = TrainingArguments(output_dir=str(out), max_steps=12, per_device_train_batch_size=16, learning_rate=1e-3,
                                 save_strategy="steps", save_steps=6, logging_steps=1, report_to=[], use_cpu=True,
                                 seed=0, disable_tqdm=True, eval_strategy="no", warmup_steps=0)
        return PruningTrainer(model=model(), args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok),
                              method=_kd_method(teacher), callbacks=list(callbacks), lr_schedule="rewind",
                              lr_min_ratio=0.1)

    class Seen(TrainerCallback):  # a printer or reporter: it sees the logs after PruningCallback
        logs = []

        def on_log(self, args, state, control, logs=None, **kw):
            self.logs.append(dict(logs))

    straight = trainer(tmp_path / "straight", [Seen()])
    straight.train()
    step_logs = [r for r in Seen.logs if "loss" in r]
    assert len(step_logs) == 12 and all("sparsity" in r for r in step_logs) and step_logs[-1]["sparsity"] > 0.79
    restarts = straight.method.prune_steps()
    assert restarts == [3, 6]  # every 3 steps until half of the 12
    logged = {r["step"]: r["learning_rate"] for r in straight.state.log_history if "learning_rate" in r}
    # the Trainer logs the rate step s used, set after step s - 1
    want = {s: 1e-3 * lr_factor("rewind", s - 1, 12, 0, restarts=restarts, min_ratio=0.1) for s in logged}
    assert logged == pytest.approx(want, rel=1e-6)
    assert logged[4] == logged[7] == 1e-3 > logged[3]  # rewound after each pruning step
    weights = dict(straight.model.named_parameters())
    mask = load_file(str(tmp_path / "straight" / MASK_FILE))
    zeros = sum(int((~m.bool()).sum()) for m in mask.values())
    assert zeros == round(0.8 * sum(m.numel() for m in mask.values()))
    assert all(torch.all(weights[n][~m.bool()] == 0) for n, m in mask.items())
    assert straight.method.last["pred"] > 0  # the distillation term was the loss

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 8:
                raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "resumed", [Crash()]).train()
    resumed = trainer(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-6"))
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_distillation_needs_its_teacher_and_a_teacher_needs_distillation():
    from bertprune.config import DistillConfig

    prune = PruneConfig(method="gradual", sparsity=0.5)
    with pytest.raises(BertpruneError, match="needs teacher"):
        method_from_config(prune, distill=DistillConfig())
    with pytest.raises(BertpruneError, match="without distill"):
        method_from_config(prune, teacher="runs/x")


def test_unknown_lr_schedule_is_refused(sst2, tmp_path):
    with pytest.raises(BertpruneError, match="unknown lr_schedule"):
        PruningTrainer(model=sst2[2](), method=_method(), lr_schedule="cosine")


def test_the_own_trainer_example_prunes_while_distilling_on_csv_files(tiny_models, tiny_glue, tmp_path):
    """examples/own_trainer.py, as the README runs it, on tiny CSV files and a tiny teacher."""
    import csv
    import importlib.util
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    for split in ("train", "dev"):
        with open(tiny_glue / "SST-2" / f"{split}.tsv") as f, open(tmp_path / f"{split}.csv", "w", newline="") as g:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
            w = csv.DictWriter(g, fieldnames=["sentence", "label"])
            w.writeheader()
            w.writerows({"sentence": r["sentence"], "label": r["label"]} for r in rows)
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=2,
                                                                 id2label={0: "0", 1: "1"}, label2id={"0": 0, "1": 1})
    teacher.save_pretrained(tmp_path / "teacher")
    AutoTokenizer.from_pretrained(tiny_models["bert"]).save_pretrained(tmp_path / "teacher")

    path = Path(__file__).resolve().parents[1] / "examples" / "own_trainer.py"
    spec = importlib.util.spec_from_file_location("own_trainer", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "run"
    result = example.main(["--teacher", str(tmp_path / "teacher"), "--train-file", str(tmp_path / "train.csv"),
                           "--validation-file", str(tmp_path / "dev.csv"), "--text-columns", "sentence",
                           "--label-column", "label", "-o", str(out), "--max-steps", "12",
                           "--set", "prune.sparsity=0.8", "train.batch_size=16", "data.max_length=32"])
    params = result["params"]  # counted in the saved weights: the recipe's global target, exactly
    assert params["targeted"] - params["targeted_nonzero"] == round(0.8 * params["targeted"])
    assert {"eval_accuracy", "eval_f1_macro"} <= set(result["dev"])
    reloaded = AutoModelForSequenceClassification.from_pretrained(out / "final")
    assert reloaded.config.label2id == {"0": 0, "1": 1}
    assert (out / "final" / MASK_FILE).is_file()
