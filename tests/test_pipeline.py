"""An accelerated model still works inside ``transformers.pipeline``, with the plain model's outputs."""

import copy

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline

from bertprune import accelerate
from bertprune.methods import OneShotMagnitude

TEXTS = ["good movie", "the film was bad and boring , not fun at all", "a"]


def _pruned(cls, folder, **kw):
    torch.manual_seed(0)
    model = cls.from_pretrained(folder, **kw).eval()
    method = OneShotMagnitude(0.9)
    method.prepare(model, 1)
    method.finalize()
    return model


@pytest.mark.parametrize("task,cls,kw", [("text-classification", AutoModelForSequenceClassification, {"num_labels": 3}),
                                         ("feature-extraction", AutoModel, {})])
def test_pipeline_on_an_accelerated_model_equals_the_plain_model(tiny_models, task, cls, kw):
    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    model = _pruned(cls, tiny_models["bert"], **kw)
    fast = copy.deepcopy(model)
    assert accelerate(fast, force=True).bound  # the sparse engine really runs
    extra = {"top_k": None} if task == "text-classification" else {}
    plain_out = pipeline(task, model=model, tokenizer=tok, **extra)(TEXTS)
    fast_out = pipeline(task, model=fast, tokenizer=tok, **extra)(TEXTS)
    if task == "text-classification":
        for p, f in zip(plain_out, fast_out):
            assert [x["label"] for x in p] == [x["label"] for x in f]
            assert [x["score"] for x in p] == pytest.approx([x["score"] for x in f], abs=1e-5)
    else:
        for p, f in zip(plain_out, fast_out):
            assert torch.allclose(torch.tensor(p), torch.tensor(f), atol=1e-5)
