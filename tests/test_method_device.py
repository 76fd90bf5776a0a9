"""A method's tensors are made beside the weights it was prepared on, whatever their device.

This machine has no GPU; the ``meta`` device stands in for one (no data, but every tensor made there
says so). On a GPU the loop moves the model first (``train.train``), then ``prepare`` makes masks,
criterion statistics, RPP's factors, the teacher and the projection on that device, and no hook moves
anything afterwards.
"""

from __future__ import annotations

import pytest
import torch

from bertprune.config import DistillConfig, ScheduleConfig
from bertprune.criteria import CRITERIA
from bertprune.methods import Dense, Pruner
from bertprune.methods.distill import Distillation
from bertprune.methods.rpp import ReweightedProximal
from bertprune.testing import tiny_config

META = torch.device("meta")


def _classifier(seed=0, **kw):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(tiny_config("bert", **kw))


def _tensors(tree):
    if torch.is_tensor(tree):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from _tensors(v)


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_pruner_state_is_made_on_the_weights_device(criterion):
    model = _classifier().to(META)
    method = Pruner(0.9, criterion=criterion, scope="global", schedule=ScheduleConfig(start=0.1, end=0.7, every=10))
    method.prepare(model, 100)
    tensors = list(_tensors(method.state_dict()))
    assert len(tensors) >= len(method.targets)  # the masks at least, and the criterion's statistics
    assert {t.device for t in tensors} == {META}
    if method.criterion.derive is not None:  # what a mask update makes from the statistics stays there too
        derived = [method.criterion.derive(s) for s in method.stats.values()]
        assert {t.device for t in _tensors({str(i): d for i, d in enumerate(derived)})} == {META}


def test_rpp_factors_are_made_on_the_weights_device():
    model = _classifier().to(META)
    method = ReweightedProximal(0.9)
    method.prepare(model, 100)
    assert method.alpha and {a.device for a in method.alpha.values()} == {META}
    assert {m.device for m in method.masks.masks.values()} == {META}


def test_distillation_moves_its_teacher_and_projection_beside_the_student():
    student = _classifier(hidden=32).to(META)
    teacher = _classifier(seed=1, hidden=64)  # wider: a hidden-state term needs a learned projection
    method = Distillation(Dense(), lambda: teacher, DistillConfig(teacher="t", hidden_weight=1.0))
    method.prepare(student, 10)
    assert {p.device for p in method.teacher.parameters()} == {META}
    assert method.projection is not None and {p.device for p in method.extra_parameters()} == {META}
