import pytest
import torch

from bertprune import GradualMagnitude, OneShotMagnitude, ScheduleConfig
from bertprune.methods import lowest_k, magnitude_masks, masked_magnitude


def test_lowest_k_is_exact_with_ties():
    scores = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 2.0])
    for k in range(7):
        picked = lowest_k(scores, k)
        assert int(picked.sum()) == k
    assert lowest_k(scores, 2).tolist() == [True, True, False, False, False, False]


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.9, 0.95, 0.999])
def test_local_scope_is_exact_per_matrix(sparsity):
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.randn(37, 53, generator=g).abs(), "b": torch.randn(128, 32, generator=g).abs()}
    masks = magnitude_masks(scores, sparsity, "local")
    for name, s in scores.items():
        zeros = int((~masks[name]).sum())
        assert abs(zeros - sparsity * s.numel()) <= 1  # "to within one weight per matrix"
        if 0 < zeros < s.numel():  # the pruned ones are the smallest
            assert s[~masks[name]].max() <= s[masks[name]].min()


@pytest.mark.parametrize("sparsity", [0.3, 0.9])
def test_global_scope_is_exact_in_total_and_ranks_across_matrices(sparsity):
    g = torch.Generator().manual_seed(1)
    scores = {"small": 0.1 * torch.randn(64, 64, generator=g).abs(), "large": torch.randn(64, 64, generator=g).abs()}
    masks = magnitude_masks(scores, sparsity, "global")
    total = sum(s.numel() for s in scores.values())
    zeros = sum(int((~m).sum()) for m in masks.values())
    assert abs(zeros - sparsity * total) <= 1
    assert (~masks["small"]).float().mean() > (~masks["large"]).float().mean()
    kept = torch.cat([scores[n][masks[n]] for n in scores])
    pruned = torch.cat([scores[n][~masks[n]] for n in scores])
    assert pruned.max() <= kept.min()


def test_no_regrowth_with_masked_scores():
    w = {"w": torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])}
    first = {"w": torch.tensor([[False, True, True, True, True]])}  # the largest weight was pruned earlier
    new = magnitude_masks(masked_magnitude(w, first), 0.4, "local")
    assert new["w"].tolist() == [[False, True, True, True, False]]


def test_bad_arguments():
    with pytest.raises(ValueError):
        magnitude_masks({"a": torch.ones(2, 2)}, 1.5)
    with pytest.raises(ValueError):
        magnitude_masks({"a": torch.ones(2, 2)}, 0.5, scope="layer")


@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert"])
@pytest.mark.parametrize("scope", ["local", "global"])
def test_oneshot_on_models_reaches_exact_sparsity(tiny_classifier, kind, scope):
    model = tiny_classifier(kind)
    method = OneShotMagnitude(0.9, scope)
    method.prepare(model, total_steps=10)
    params = dict(model.named_parameters())
    zeros = {t.name: int((params[t.name] == 0).sum()) for t in method.targets}
    if scope == "local":
        for t in method.targets:
            assert abs(zeros[t.name] - 0.9 * t.numel) <= 1
    total = sum(t.numel for t in method.targets)
    assert abs(sum(zeros.values()) - 0.9 * total) <= (1 if scope == "global" else len(method.targets))
    assert abs(method.masks.sparsity() - 0.9) < 1e-3


def test_gradual_follows_the_schedule_and_never_regrows(tiny_classifier):
    model = tiny_classifier("bert")
    method = GradualMagnitude(0.8, schedule=ScheduleConfig(start=0.1, end=0.6, every=5))
    method.prepare(model, total_steps=100)
    assert (method.start_step, method.end_step) == (10, 60)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    pruned_before = {n: torch.zeros_like(m) for n, m in method.masks.masks.items()}
    x = torch.randint(5, 40, (4, 12))
    for step in range(1, 101):
        model(input_ids=x, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
        opt.step()
        method.after_step(step, opt)
        opt.zero_grad()
        assert abs(method.masks.sparsity() - method.target_sparsity(step)) < 1e-3
        for n, m in method.masks.masks.items():
            assert not (pruned_before[n] & m).any(), "a pruned weight came back"
            pruned_before[n] = ~m
    assert method.reached_target(60) and not method.reached_target(59)
    assert abs(method.masks.sparsity() - 0.8) < 1e-3
