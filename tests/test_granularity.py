"""Block and N:M patterns: exact pattern, exact sparsity, through the methods."""

import pytest
import torch

from bertprune import GradualMagnitude, OneShotMagnitude, ScheduleConfig
from bertprune.config import load_config
from bertprune.errors import BertpruneError
from bertprune.methods import magnitude_masks
from bertprune.methods.granularity import parse_granularity


def _is_block_pattern(mask, r, c):
    blocks = mask.reshape(mask.shape[0] // r, r, mask.shape[1] // c, c)
    return bool(((blocks.all((1, 3))) | (~blocks.any((1, 3)))).all())


@pytest.mark.parametrize("pattern", ["4x1", "1x4", "4x4", "16x16"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
@pytest.mark.parametrize("scope", ["local", "global"])
def test_block_masks_have_the_exact_pattern_and_sparsity(pattern, sparsity, scope):
    r, c = map(int, pattern.split("x"))
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(64, 128, generator=g), "b": 0.5 * torch.rand(128, 64, generator=g)}
    masks = magnitude_masks(scores, sparsity, scope, pattern)
    blocks = {n: s.numel() // (r * c) for n, s in scores.items()}
    for n, m in masks.items():
        assert _is_block_pattern(m, r, c)
        if scope == "local":
            assert int((~m).sum()) // (r * c) == round(sparsity * blocks[n])
    total_pruned_blocks = sum(int((~m).sum()) // (r * c) for m in masks.values())
    assert total_pruned_blocks == round(sparsity * sum(blocks.values())) or scope == "local"
    # the blocks kept have the larger mean scores
    for n, m in masks.items():
        means = scores[n].reshape(m.shape[0] // r, r, m.shape[1] // c, c).mean((1, 3))
        kept = m.reshape(m.shape[0] // r, r, m.shape[1] // c, c).all((1, 3))
        if scope == "local" and kept.any() and (~kept).any():
            assert means[~kept].max() <= means[kept].min()


def test_two_four_pattern():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(32, 64, generator=g)
    m = magnitude_masks({"w": w.abs()}, 0.5, granularity="2:4")["w"]
    groups = m.reshape(32, 16, 4)
    assert (groups.sum(-1) == 2).all()  # exactly 2 of every 4 consecutive inputs kept
    kept_min = torch.where(groups, w.abs().reshape(32, 16, 4), torch.inf).min(-1).values
    pruned_max = torch.where(~groups, w.abs().reshape(32, 16, 4), -torch.inf).max(-1).values
    assert (pruned_max <= kept_min).all()
    # intermediate targets of a schedule prune round(s·M) per group: 0.25 → 3:4
    assert (magnitude_masks({"w": w.abs()}, 0.25, granularity="2:4")["w"].reshape(32, 16, 4).sum(-1) == 3).all()


def test_parse_and_shape_errors():
    assert str(parse_granularity("block:16x16")) == "16x16" and str(parse_granularity("2:4")) == "2:4"
    for bad in ("3:2", "0x4", "diagonal"):
        with pytest.raises(ValueError):
            parse_granularity(bad)
    with pytest.raises(ValueError, match="do not tile"):
        magnitude_masks({"w": torch.rand(30, 30)}, 0.5, granularity="4x4")
    with pytest.raises(BertpruneError, match="steps of 1/4"):
        load_config(None, ["prune.method=oneshot", "prune.sparsity=0.6", "prune.granularity=2:4"])
    with pytest.raises(BertpruneError, match="unknown granularity"):
        load_config(None, ["prune.method=gmp", "prune.sparsity=0.6", "prune.granularity=hexagonal"])


@pytest.mark.parametrize("pattern", ["4x1", "1x4", "2:4"])
def test_methods_prune_with_patterns(tiny_classifier, pattern):
    model = tiny_classifier("bert")
    sparsity = 0.5 if pattern == "2:4" else 0.75
    method = GradualMagnitude(sparsity, schedule=ScheduleConfig(start=0.0, end=0.5, every=2), granularity=pattern)
    method.prepare(model, 20)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 21):
        x = torch.randint(5, 40, (4, 8), generator=g)
        model(input_ids=x, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
        opt.step()
        method.after_step(step, opt)
        opt.zero_grad()
    assert method.masks.sparsity() == pytest.approx(sparsity, abs=1e-6)
    params = dict(model.named_parameters())
    for n, m in method.masks.masks.items():
        assert (params[n][~m] == 0).all()
        if pattern == "2:4":
            assert (m.reshape(m.shape[0], -1, 4).sum(-1) == 2).all()
        else:
            assert _is_block_pattern(m, *map(int, pattern.split("x")))


def test_pattern_that_does_not_tile_the_model_fails_before_training(tiny_classifier):
    method = OneShotMagnitude(0.5, granularity="5x5")
    with pytest.raises(BertpruneError, match="do not tile"):
        method.prepare(tiny_classifier("bert"), 1)
