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
