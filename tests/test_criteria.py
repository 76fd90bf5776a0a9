"""Criteria on hand-computed cases, and the pruner (criterion × schedule × pattern × scope) on tiny models."""

import copy

import pytest
import torch

from bertprune import checkpoint as ckpt
from bertprune.config import ScheduleConfig
from bertprune.criteria import (CRITERIA, fisher_accumulate, fisher_init, fisher_score, get_criterion, obs_accumulate,
                                obs_compensate, obs_init, obs_score)
from bertprune.methods.granularity import parse_granularity
from bertprune.methods.pruner import Pruner, schedule_steps
from bertprune.methods.selection import global_lowest_with_cap, select_masks


def test_magnitude_is_absolute_value():
    c = get_criterion("magnitude")
    w = torch.tensor([[1.5, -2.0, 0.0]])
    assert not c.needs_grad
    assert c.score(w, c.accumulate(w, torch.ones_like(w), c.init(w))).tolist() == [[1.5, 2.0, 0.0]]


def test_movement_sign_rewards_weights_moving_away_from_zero():
    c = get_criterion("movement")
    w = torch.tensor([[1.0, -1.0, 2.0, -3.0]])
    g = torch.tensor([[-0.5, -0.5, 0.1, -0.1]])
    # SGD moves w by -g: w=1 grows (away from 0) → +0.5; w=-1 grows towards 0 → -0.5;
    # w=2 shrinks → -0.2; w=-3 grows towards 0 → -0.3
    state = c.accumulate(w, g, c.init(w))
    assert torch.allclose(c.score(w, state), torch.tensor([[0.5, -0.5, -0.2, -0.3]]))
    state = c.accumulate(w, g, state)  # accumulated, not replaced
    assert torch.allclose(c.score(w, state), torch.tensor([[1.0, -1.0, -0.4, -0.6]]))
    # a large weight moving towards zero ranks below a small one moving away: not magnitude
    masks = select_masks({"w": c.score(w, state)}, 0.5)
    assert masks["w"].tolist() == [[True, False, True, False]]


def test_snip_momentum_is_a_running_average_of_taylor_scores():
    c = get_criterion("snip_momentum")
    w = torch.tensor([2.0, -1.0])
    g1, g2 = torch.tensor([0.5, 1.0]), torch.tensor([-1.0, 0.0])
    s = c.accumulate(w, g1, c.init(w))
    assert torch.allclose(c.score(w, s), torch.tensor([1.0, 1.0]))  # |w·g|
    s = c.accumulate(w, g2, s)
    assert torch.allclose(c.score(w, s), torch.tensor([0.9 * 1.0 + 2.0, 0.9 * 1.0 + 0.0]))


def test_fisher_score_against_a_known_diagonal():
    w = torch.tensor([1.0, 2.0, -3.0])
    s = fisher_init(w)
    for g in ([1.0, 2.0, 0.0], [3.0, 0.0, 0.0]):
        s = fisher_accumulate(w, torch.tensor(g), s)
    # F_ii = mean of g² = [5, 2, 0]; rho = w² (λ + F_ii) / 2
    assert torch.allclose(fisher_score(w, s, damp=0.0), torch.tensor([2.5, 4.0, 0.0]))
    assert torch.allclose(fisher_score(w, s, damp=1.0), torch.tensor([3.0, 6.0, 4.5]))
    assert get_criterion("fisher").reset_after_update  # statistics of the current weights only


def test_obs_with_blocks_of_one_is_the_diagonal_fisher():
    w = torch.tensor([[1.0, 2.0], [-3.0, 0.5]])
    a, b = obs_init(w, block=1), fisher_init(w)
    for g in ([[1.0, 2.0], [0.0, 1.0]], [[3.0, 0.0], [0.0, -2.0]]):
        a, b = obs_accumulate(w, torch.tensor(g), a), fisher_accumulate(w, torch.tensor(g), b)
    assert torch.allclose(obs_score(w, a, damp=0.5), fisher_score(w, b, damp=0.5))


def test_obs_sums_every_gradient_whether_flushed_or_pending():
    from bertprune.criteria import OBS_FLUSH, obs_inverse

    torch.manual_seed(0)
    w = torch.randn(40, 8)  # 320 weights = 20 blocks of 16
    s, gram = obs_init(w), torch.zeros(20, 16, 16, dtype=torch.float64)
    for _ in range(2 * OBS_FLUSH + 5):  # two flushes and five pending
        g = torch.randn_like(w)
        s = obs_accumulate(w, g, s)
        gb = g.double().flatten().view(20, 16)
        gram += gb[:, :, None] * gb[:, None, :]
    assert float(s["n"]) == 2 * OBS_FLUSH + 5 and len([k for k in s if k.startswith("g") and k != "gg"]) == 5
    expected = torch.linalg.inv(gram / float(s["n"]) + 1e-3 * torch.eye(16, dtype=torch.float64))
    assert torch.allclose(obs_inverse(s, damp=1e-3), expected, rtol=1e-4, atol=1e-6)


def test_obs_score_and_update_against_a_known_block():
    # two gradients in one block of 2: F = λI + (g1 g1ᵀ + g2 g2ᵀ)/2 = [[2, 1], [1, 1]] + 0.5·I (λ = 0.5)
    w = torch.tensor([1.0, -2.0])
    s = obs_init(w, block=2)
    for g in ([2.0, 1.0], [0.0, 1.0]):
        s = obs_accumulate(w, torch.tensor(g), s)
    f = torch.tensor([[2.5, 1.0], [1.0, 1.5]], dtype=torch.float64)
    finv = torch.linalg.inv(f)
    expected = (w.double() ** 2 / (2 * finv.diagonal())).float()
    assert torch.allclose(obs_score(w, s, damp=0.5), expected)
    # pruning w0: the OBS update minimises ½ δᵀFδ subject to w0 + δ0 = 0, so δ1 = −F11⁻¹ F10 δ0 = F10 w0 / F11
    delta = obs_compensate(w, s, torch.tensor([True, False]), damp=0.5)
    assert torch.allclose(delta, torch.tensor([-1.0, 1.0 * 1.0 / 1.5]))
    assert torch.equal(obs_compensate(w, s, torch.tensor([False, False]), damp=0.5), torch.zeros(2))


@pytest.mark.parametrize("gradients, damp", [(20, 1e-3), (5, 1e-7)])  # the second: rank-deficient, default damp
def test_obs_derived_state_gives_the_same_scores_and_update(gradients, damp):
    from bertprune.criteria import Criterion, obs_derive

    torch.manual_seed(1)
    w = torch.randn(6, 8)  # 48 weights = 3 blocks of 16
    s = obs_init(w)
    for _ in range(gradients):
        s = obs_accumulate(w, 1e-3 * torch.randn_like(w), s)
    d = obs_derive(s, damp=damp)
    assert set(d) == {"finv", "n", "damp"} and d["finv"].shape == (3, 16, 16) and d["finv"].dtype == torch.float32
    pruned = torch.rand(6, 8) < 0.4
    assert torch.allclose(obs_score(w, d, damp=damp), obs_score(w, s, damp=damp), rtol=1e-6)
    exact = obs_compensate(w, s, pruned, damp=damp)
    assert (obs_compensate(w, d, pruned, damp=damp) - exact).abs().max() <= 1e-6 * exact.abs().max()
    with pytest.raises(ValueError, match="damp"):  # a derived state answers only for the damp it used
        obs_score(w, d, damp=0.5)
    with pytest.raises(ValueError, match="reset_after_update"):
        Criterion("bad", obs_init, obs_accumulate, obs_score, derive=obs_derive)


def test_the_pruner_inverts_the_obs_blocks_once_per_matrix_and_update(tiny_classifier, monkeypatch):
    import bertprune.criteria as criteria

    calls = []
    real = criteria.obs_inverse
    monkeypatch.setattr(criteria, "obs_inverse", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = tiny_classifier("bert")
    method = Pruner(0.5, "obs", "local", ScheduleConfig(start=0.0, end=0.5, every=3))
    method.prepare(model, total_steps=6)
    _train(model, method, 3)  # one mask update (step 3), after three gradients
    assert len(calls) == len(method.masks.masks) > 0  # score and update share one inverse per matrix
    assert all("gg" in s for s in method.stats.values())  # and the state restarts as sums


def test_obs_blocks_are_independent_and_the_padding_is_dropped():
    w = torch.arange(1.0, 6.0)  # 5 weights in blocks of 2: (w0, w1), (w2, w3), (w4, pad)
    s = obs_init(w, block=2)
    s = obs_accumulate(w, torch.ones(5), s)
    assert s["gg"].shape == (3, 2, 2) and s["g00"].tolist() == [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]  # zero-padded
    delta = obs_compensate(w, s, torch.tensor([False, False, True, False, False]), damp=0.1)
    assert delta[:2].tolist() == [0.0, 0.0] and delta[4] == 0.0  # other blocks do not move
    assert delta[2] == pytest.approx(-3.0) and delta[3] != 0.0


def test_the_pruner_applies_the_obs_update_to_the_survivors(tiny_classifier):
    model = tiny_classifier("bert")
    method = Pruner(0.5, "obs", "local", ScheduleConfig(start=0.0, end=0.5, every=3))
    method.prepare(model, total_steps=6)
    params = dict(model.named_parameters())
    before = {n: params[n].detach().clone() for n in method.masks.masks}
    _train(model, method, 3, opt=torch.optim.SGD(model.parameters(), lr=0.0))  # the weights move only by the OBS update
    moved = [n for n, m in method.masks.masks.items() if not torch.equal(params[n][m], before[n][m])]
    assert moved  # survivors were compensated
    assert all((params[n][~m] == 0).all() for n, m in method.masks.masks.items())


def test_global_scope_cap_holds_every_matrix_at_the_cap_and_the_total_exact():
    scores = {"tiny": torch.full((10, 10), 1e-3) + torch.arange(100.0).view(10, 10) * 1e-6,
              "big": torch.arange(1.0, 101.0).view(10, 10)}
    free = global_lowest_with_cap(scores, 120)
    assert int(free["tiny"].sum()) == 100  # without a cap, global empties the small matrix
    capped = global_lowest_with_cap(scores, 120, cap=0.9)
    assert int(capped["tiny"].sum()) == 90 and int(capped["big"].sum()) == 30
    assert capped["big"].view(-1)[:30].all()  # the lowest of the rest
    with pytest.raises(ValueError):
        global_lowest_with_cap(scores, 190, cap=0.9)


def test_schedule_in_epochs_wins_over_fractions():
    s = ScheduleConfig(start=0.1, end=0.9, every=7, start_epoch=2, end_epoch=8, every_epochs=2)
    assert schedule_steps(s, total_steps=100, steps_per_epoch=10) == (20, 80, 20)
    assert schedule_steps(ScheduleConfig(start=0.1, end=0.9, every=7), 100, 10) == (10, 90, 7)


def _train(model, method, steps, seed=0, opt=None):
    opt = opt or torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        x = torch.randint(5, 40, (4, 12), generator=g)
        model(input_ids=x, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
        method.before_optimizer_step()
        opt.step()
        method.after_step(step, opt)
        opt.zero_grad()
    return opt


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
@pytest.mark.parametrize("pattern", ["unstructured", "1x4", "4x1", "2:4"])
@pytest.mark.parametrize("scope", ["local", "global"])
def test_exact_sparsity_for_every_criterion_pattern_and_scope(tiny_classifier, criterion, pattern, scope):
    model = tiny_classifier("bert")
    sparsity = 0.5 if pattern == "2:4" else 0.75
    method = Pruner(sparsity, criterion, scope, ScheduleConfig(start=0.0, end=0.5, every=2, initial_sparsity=0.25 if pattern != "2:4" else 0.0),
                    granularity=pattern)
    method.prepare(model, total_steps=12)
    _train(model, method, 12)
    params = dict(model.named_parameters())
    g = parse_granularity(pattern)
    units = {t.name: (g.rows * g.cols if g.kind == "block" else 1) for t in method.targets}
    zeros = {t.name: int((params[t.name] == 0).sum()) for t in method.targets}
    pruned = {n: int((~m).sum()) for n, m in method.masks.masks.items()}
    for t in method.targets:
        assert zeros[t.name] >= pruned[t.name]  # the masks are enforced on the weights
        if scope == "local" or g.kind == "nm":
            n_units = t.numel // units[t.name]
            assert pruned[t.name] == round(sparsity * n_units) * units[t.name]
    total_units = sum(t.numel // units[t.name] for t in method.targets)
    unit = next(iter(units.values()))
    if scope == "global" and g.kind != "nm":
        assert sum(pruned.values()) == round(sparsity * total_units) * unit
    if g.kind == "nm":
        for name, m in method.masks.masks.items():
            assert (m.view(m.shape[0], -1, 4).sum(-1) == 2).all()
    if g.kind == "block":
        for name, m in method.masks.masks.items():
            blocks = m.reshape(m.shape[0] // g.rows, g.rows, m.shape[1] // g.cols, g.cols)
            assert (blocks.all((1, 3)) | ~blocks.any((1, 3))).all()  # whole blocks only


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_criterion_state_survives_resume_bit_exactly(tiny_classifier, tmp_path, criterion):
    schedule = ScheduleConfig(start=0.0, end=0.8, every=3)
    a_model = tiny_classifier("bert")
    b_model = copy.deepcopy(a_model)
    a = Pruner(0.8, criterion, "global", schedule)
    a.prepare(a_model, 20)
    opt_a = _train(a_model, a, 7)
    # checkpoint through the same pickle-free files a run writes, then a fresh pruner on a copy
    ckpt.save_tree(a.state_dict(), tmp_path, "method")
    b_model.load_state_dict(a_model.state_dict())
    b = Pruner(0.8, criterion, "global", schedule)
    b.prepare(b_model, 20)
    b.load_state_dict(ckpt.load_tree(tmp_path, "method"))
    opt_b = torch.optim.AdamW(b_model.parameters(), lr=1e-2)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # load_state_dict would share the moment tensors
    for name, st in a.stats.items():
        for k, v in st.items():
            assert torch.equal(v, b.stats[name][k]), (name, k)
    # continue both for the remaining steps with the same batches
    g = torch.Generator().manual_seed(99)
    for step in range(8, 21):
        x = torch.randint(5, 40, (4, 12), generator=g)
        for model, method, opt in ((a_model, a, opt_a), (b_model, b, opt_b)):
            model(input_ids=x, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
            method.before_optimizer_step()
            opt.step()
            method.after_step(step, opt)
            opt.zero_grad()
    assert a.masks.equal(b.masks)
    for (n, p), (_, q) in zip(a_model.named_parameters(), b_model.named_parameters()):
        assert torch.equal(p, q), n
    assert abs(a.masks.sparsity() - 0.8) < 1e-3


def test_gradient_criteria_rank_differently_from_magnitude(tiny_classifier):
    """The criteria are wired to the gradients: after the same training, movement's mask is not magnitude's."""
    masks = {}
    for criterion in ("magnitude", "movement", "fisher"):
        model = tiny_classifier("bert")
        method = Pruner(0.5, criterion, "local", ScheduleConfig(start=0.5, end=0.6, every=1))
        method.prepare(model, 10)
        _train(model, method, 10)
        masks[criterion] = method.masks
    assert not masks["movement"].equal(masks["magnitude"])
    assert not masks["fisher"].equal(masks["magnitude"])


def test_nan_scores_keep_the_count_exact():
    from bertprune.methods.selection import masked_scores

    s = {"w": torch.tensor([[float("nan"), 1.0, float("nan"), 2.0, 3.0, 4.0]])}
    keep = select_masks(masked_scores(s, {"w": torch.ones(1, 6, dtype=torch.bool)}), 0.5)
    assert keep["w"].tolist() == [[False, False, False, True, True, True]]


def test_a_schedule_past_the_end_of_training_is_refused(tiny_classifier):
    from bertprune.errors import BertpruneError

    method = Pruner(0.5, schedule=ScheduleConfig(start_epoch=5, end_epoch=6))
    with pytest.raises(BertpruneError, match="schedule ends"):
        method.prepare(tiny_classifier("bert"), total_steps=50, steps_per_epoch=10)
