"""Reweighted proximal pruning: the proximal step, the reweighting, both modes, state."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from bertprune import ScheduleConfig
from bertprune.config import RppConfig
from bertprune.methods import ReweightedProximal, prox_reweighted_l1, reweight


@pytest.mark.parametrize("seed", range(3))
def test_prox_is_the_minimiser_of_the_penalised_quadratic(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, 200)
    eta, gamma = 0.05, rng.uniform(0.1, 3.0)
    alpha = 1.0 / (np.abs(rng.normal(0, 1, 200)) + 1e-2)  # reweighted: some thresholds are large
    got = prox_reweighted_l1(torch.tensor(a), torch.tensor(eta * gamma * alpha)).numpy()
    for i in range(len(a)):
        f = lambda w: 0.5 * (w - a[i]) ** 2 + eta * gamma * alpha[i] * abs(w)  # noqa: E731
        best = minimize_scalar(f, bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}).x
        assert got[i] == pytest.approx(best, abs=1e-6)
        assert f(got[i]) <= f(best) + 1e-12
    assert (got == 0).any() and (got != 0).any()


def test_reweighting_follows_the_formula():
    w = torch.tensor([-2.0, -0.5, 0.0, 0.1, 3.0])
    torch.testing.assert_close(reweight(w, 0.01), 1.0 / (w.abs() + 0.01))
    assert reweight(torch.zeros(1), 1e-3).item() == pytest.approx(1000.0)


def _loop(model, method, steps, lr=1e-2, seed=0):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        x = torch.randint(5, 40, (8, 10), generator=g)
        model(input_ids=x, labels=torch.randint(0, 2, (8,), generator=g)).loss.backward()
        opt.step()
        method.after_step(step, opt)
        opt.zero_grad()
    return opt


def test_fixed_gamma_mode_alpha_and_proximal_step(tiny_classifier):
    model = tiny_classifier("bert")
    method = ReweightedProximal(0.0, rpp=RppConfig(gamma=0.5, eps=1e-3, reweight_every=3))
    method.prepare(model, 6)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    params = dict(model.named_parameters())
    name = method.targets[0].name
    g = torch.Generator().manual_seed(0)
    for step in range(1, 7):
        x = torch.randint(5, 40, (8, 10), generator=g)
        model(input_ids=x, labels=torch.randint(0, 2, (8,), generator=g)).loss.backward()
        opt.step()
        after_adam = params[name].detach().clone()
        alpha_before = method.alpha[name].clone()
        method.after_step(step, opt)
        opt.zero_grad()
        if step < 3:
            assert torch.equal(method.alpha[name], torch.ones_like(alpha_before))  # α = 1 before reweighting
        if step % 3 == 0:
            torch.testing.assert_close(method.alpha[name], 1.0 / (after_adam.abs() + 1e-3))
        expected = prox_reweighted_l1(after_adam, 1e-2 * 0.5 * method.alpha[name])
        assert torch.equal(params[name].detach(), expected)
    assert method.log_metrics()["sparsity"] > 0.0
    assert method.masks.sparsity() == pytest.approx(method.log_metrics()["sparsity"])  # exact zeros = the mask


@pytest.mark.parametrize("scope", ["local", "global"])
def test_target_mode_lands_exactly_on_the_target(tiny_classifier, scope):
    model = tiny_classifier("bert")
    method = ReweightedProximal(0.7, scope, RppConfig(gamma=1e-3, eps=1e-2, reweight_every=5, gamma_rate=1.1),
                                ScheduleConfig(start=0.0, end=0.6, every=1))
    method.prepare(model, 50)
    _loop(model, method, 50)
    params = dict(model.named_parameters())
    zeros = {t.name: int((params[t.name] == 0).sum()) for t in method.targets}
    total = sum(t.numel for t in method.targets)
    assert abs(sum(zeros.values()) - 0.7 * total) <= len(method.targets)
    if scope == "local":
        assert all(abs(zeros[t.name] - 0.7 * t.numel) <= 1 for t in method.targets)
    s = method.summary()
    assert s["cut_step"] == 30 and s["mode"] == "target"
    assert s["sparsity_from_proximal_steps"] > 0.3  # the proximal steps did real work before the cut
    assert s["sparsity_from_proximal_steps"] + s["sparsity_added_by_cut"] - s["proximal_zeros_reopened_by_cut"] == pytest.approx(0.7, abs=1e-3)


def test_after_the_cut_the_mask_is_fixed(tiny_classifier):
    model = tiny_classifier("bert")
    method = ReweightedProximal(0.5, rpp=RppConfig(gamma=1e-3, gamma_rate=1.1), schedule=ScheduleConfig(start=0.0, end=0.3))
    method.prepare(model, 40)
    _loop(model, method, 12)
    assert method.cut_step == 12
    cut_masks = {n: m.clone() for n, m in method.masks.masks.items()}
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(13, 41):
        x = torch.randint(5, 40, (8, 10), generator=g)
        model(input_ids=x, labels=torch.randint(0, 2, (8,), generator=g)).loss.backward()
        opt.step()
        method.after_step(step, opt)
        opt.zero_grad()
        for n, m in cut_masks.items():
            assert torch.equal(method.masks[n], m)
            assert (params[n][~m] == 0).all()


def test_state_round_trip(tiny_classifier):
    model = tiny_classifier("bert")
    method = ReweightedProximal(0.6, rpp=RppConfig(gamma=1e-3, reweight_every=2), schedule=ScheduleConfig(end=0.5))
    method.prepare(model, 20)
    _loop(model, method, 7)
    state = method.state_dict()
    other = ReweightedProximal(0.6, rpp=RppConfig(gamma=1e-3, reweight_every=2), schedule=ScheduleConfig(end=0.5))
    other.prepare(tiny_classifier("bert"), 20)
    other.load_state_dict(state)
    assert other.gamma == method.gamma and all(torch.equal(other.alpha[n], method.alpha[n]) for n in method.alpha)
    assert other.masks.equal(method.masks)


def test_the_schedule_shape_and_epoch_fields_steer_rpp(tiny_classifier):
    """RPP follows schedule.kind (γ is steered toward that curve) and the *_epoch fields, as Pruner does."""
    from bertprune.schedules import sparsity_at

    model = tiny_classifier("bert")
    linear = ReweightedProximal(0.8, schedule=ScheduleConfig(kind="linear", start=0.0, end=0.5))
    linear.prepare(model, 40)
    assert linear.target_sparsity(10) == pytest.approx(sparsity_at("linear", 10, 0.8, 0, 20)) == pytest.approx(0.4)
    cubic = ReweightedProximal(0.8, schedule=ScheduleConfig(kind="cubic", start=0.0, end=0.5))
    cubic.prepare(model, 40)
    assert cubic.target_sparsity(10) == pytest.approx(0.8 * (1 - 0.5**3))
    by_epoch = ReweightedProximal(0.8, schedule=ScheduleConfig(start_epoch=1, end_epoch=3, start=0.0, end=0.5))
    by_epoch.prepare(model, 40, steps_per_epoch=10)
    assert (by_epoch.start_step, by_epoch.end_step) == (10, 30)


def test_the_global_cut_respects_the_per_matrix_cap(tiny_classifier):
    model = tiny_classifier("bert")
    with torch.no_grad():  # one matrix far smaller than the rest: a global cut alone would empty it
        model.bert.encoder.layer[0].attention.self.query.weight.mul_(1e-4)
    method = ReweightedProximal(0.6, "global", RppConfig(gamma=1e-4, eps=1e-2, reweight_every=5),
                                ScheduleConfig(start=0.0, end=0.5, every=1), max_layer_sparsity=0.9)
    method.prepare(model, 10)
    _loop(model, method, 10, lr=1e-6)  # small steps: the shrunken matrix stays the smallest
    per_matrix = {n: float((~m).float().mean()) for n, m in method.masks.masks.items()}
    assert max(per_matrix.values()) <= 0.9 + 1e-6
    assert method.masks.sparsity() == pytest.approx(0.6, abs=2e-3)
