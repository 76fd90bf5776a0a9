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
