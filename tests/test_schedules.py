import pytest

from bertprune.schedules import cubic_sparsity, is_update_step, steps_from_fraction


def test_cubic_formula_at_update_steps():
    # s_t = s_f + (s_0 - s_f)(1 - (t - t0)/(n Δt))^3 with t0=10, Δt=10, n=8 (end 90), s_0=0.1, s_f=0.9
    for t in range(10, 91, 10):
        expected = 0.9 + (0.1 - 0.9) * (1 - (t - 10) / 80) ** 3
        assert cubic_sparsity(t, 0.9, 10, 90, every=10, initial_sparsity=0.1) == pytest.approx(expected, abs=1e-12)


def test_holds_between_updates_zero_before_and_final_after():
    args = dict(final_sparsity=0.8, start_step=10, end_step=90, every=10)
    assert cubic_sparsity(0, **args) == 0.0 and cubic_sparsity(9, **args) == 0.0
    assert cubic_sparsity(10, **args) == 0.0  # s_0 = 0 at t0
    assert cubic_sparsity(25, **args) == cubic_sparsity(20, **args) < cubic_sparsity(30, **args)
    assert cubic_sparsity(90, **args) == 0.8 and cubic_sparsity(10_000, **args) == 0.8
    # end not on the Δt grid: still exactly final at end_step
    assert cubic_sparsity(95, 0.8, 10, 95, every=10) == 0.8
    assert cubic_sparsity(94, 0.8, 10, 95, every=10) < 0.8


def test_monotone_and_front_loaded():
    values = [cubic_sparsity(t, 0.9, 0, 100, every=1) for t in range(101)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[50] > 0.9 * 0.8  # cubic: 7/8 of the way at half time


def test_update_steps_and_fractions():
    assert [t for t in range(0, 40) if is_update_step(t, 5, 33, 10)] == [5, 15, 25, 33]
    assert steps_from_fraction(0.7, 100) == 70 and steps_from_fraction(0.3, 10) == 3
    with pytest.raises(ValueError):
        cubic_sparsity(1, 0.5, 0, 10, every=0)


def test_shapes_hand_computed():
    from bertprune.schedules import sparsity_at

    # start 0, end 100, every 25: updates at p = 0, .25, .5, .75, then exactly s_f
    assert sparsity_at("linear", 50, 0.8, 0, 100, 25) == pytest.approx(0.4)
    assert sparsity_at("linear", 60, 0.8, 0, 100, 25) == pytest.approx(0.4)  # holds between updates
    # exponential: the density halves from 1 to 1/4 at p = 0.5 when s_f = 0.75 → 1 − 0.5
    assert sparsity_at("exponential", 50, 0.75, 0, 100, 25) == pytest.approx(0.5)
    assert sparsity_at("exponential", 25, 0.75, 0, 100, 25) == pytest.approx(1 - 0.25**0.25)
    assert sparsity_at("oneshot", 0, 0.9, 0, 1) == 0.9 and sparsity_at("oneshot", 5, 0.9, 10, 50) == 0.0
    # oBERT's stepwise: a one-shot jump to 0.3 at the start, then cubic steps
    assert sparsity_at("cubic", 20, 0.9, 20, 80, 20, initial_sparsity=0.3) == pytest.approx(0.3)
    assert sparsity_at("cubic", 40, 0.9, 20, 80, 20, initial_sparsity=0.3) == pytest.approx(0.9 - 0.6 * (2 / 3) ** 3)
    assert sparsity_at("cubic", 80, 0.9, 20, 80, 20, initial_sparsity=0.3) == 0.9
    with pytest.raises(ValueError):
        sparsity_at("quadratic", 1, 0.5, 0, 10)


def test_update_steps_list():
    from bertprune.schedules import update_steps

    assert update_steps(20, 80, 20) == [20, 40, 60, 80]
    assert update_steps(5, 33, 10) == [5, 15, 25, 33]


def test_lr_schedules_hand_computed():
    from bertprune.schedules import lr_factor

    # linear: warm-up 10 of 110, then decay to 0
    assert lr_factor("linear", 5, 110, 10) == 0.5 and lr_factor("linear", 60, 110, 10) == 0.5
    assert lr_factor("constant", 5, 110, 10) == 0.5 and lr_factor("constant", 100, 110, 10) == 1.0
    # rewind: restarts at 40 and 70, decay to 0.1 within each cycle; the first cycle runs from the warm-up's end
    f = lambda s: lr_factor("rewind", s, 100, 10, restarts=[40, 70], min_ratio=0.1)
    assert f(10) == 1.0 and f(25) == pytest.approx(0.55) and f(39) == pytest.approx(1 - 0.9 * 29 / 30)
    assert f(40) == 1.0 and f(55) == pytest.approx(0.55)
    assert f(70) == 1.0 and f(85) == pytest.approx(0.55) and f(100) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        lr_factor("cosine", 1, 10)


def test_linear_lr_equals_transformers():
    import torch
    from transformers import get_linear_schedule_with_warmup

    from bertprune.schedules import lr_factor

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = get_linear_schedule_with_warmup(opt, 7, 50)
    for step in range(50):
        assert lr_factor("linear", step, 50, 7) == pytest.approx(ref.lr_lambdas[0](step), abs=1e-12)
