import copy

import pytest
import torch
from safetensors.torch import load_file

from bertprune import GradualMagnitude, Masks, OneShotMagnitude, ScheduleConfig
from bertprune.errors import BertpruneError

from bertprune.testing import KINDS


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, 40, (8, 10), generator=g), torch.randint(0, 2, (8,), generator=g)


def _train(model, method, opt, steps, start=1):
    for step in range(start, start + steps):
        x, y = _batch(step)
        method.loss(model(input_ids=x, labels=y).loss, None, None).backward()
        opt.step()
        method.after_step(step, opt)
        opt.zero_grad()


@pytest.mark.parametrize("kind", KINDS)
def test_zeros_survive_many_adamw_steps(tiny_classifier, kind):
    model = tiny_classifier(kind)
    method = OneShotMagnitude(0.7)
    method.prepare(model, 200)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-2, weight_decay=0.1)
    pruned = {n: ~m.clone() for n, m in method.masks.masks.items()}
    params = dict(model.named_parameters())
    for step in range(1, 61):
        _train(model, method, opt, 1, start=step)
        for n, p in pruned.items():
            assert (params[n][p] == 0).all()
    assert sum(int(p.sum()) for p in pruned.values()) > 0


def test_momentum_cannot_revive_a_pruned_weight(tiny_classifier):
    """Prune mid-training, when Adam's moments are large everywhere; then take optimizer steps with
    zero gradients and *without* re-applying the mask: only optimizer state could move a weight, and
    the pruned ones must not move. (A mask applied to the weights alone fails this test.)"""
    model = tiny_classifier("bert")
    method = GradualMagnitude(0.6, schedule=ScheduleConfig(start=0.5, end=0.5 + 1e-9, every=1))
    method.prepare(model, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.999))
    _train(model, method, opt, 5)  # steps 1-5, dense: state builds up
    assert method.masks.sparsity() == 0
    _train(model, method, opt, 1, start=6)  # step 6: pruned to 60% at once
    assert method.masks.sparsity() == pytest.approx(0.6, abs=1e-3)
    params = dict(model.named_parameters())
    for n, m in method.masks.masks.items():
        state = opt.state[params[n]]
        assert (state["exp_avg"][~m] == 0).all() and (state["exp_avg_sq"][~m] == 0).all()
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()  # no after_step: nothing re-zeroes the weights
        for n, m in method.masks.masks.items():
            assert (params[n][~m] == 0).all(), f"momentum revived pruned weights of {n}"


def test_parameters_are_never_replaced_and_deepcopy_works(tiny_classifier):
    model = tiny_classifier("bert")
    before = {n: p for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    method = GradualMagnitude(0.5, schedule=ScheduleConfig(start=0.0, end=0.5, every=1))
    method.prepare(model, 8)
    _train(model, method, opt, 8)
    after = dict(model.named_parameters())
    assert all(after[n] is p and type(p) is torch.nn.Parameter for n, p in before.items())
    in_optimizer = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in after.values()}
    clone = copy.deepcopy(model)
    x, _ = _batch()
    torch.testing.assert_close(clone(input_ids=x).logits, model(input_ids=x).logits, rtol=0, atol=0)
    for n, m in method.masks.masks.items():
        assert (clone.get_parameter(n)[~m] == 0).all()
    assert not any(hasattr(m, "weight_orig") for m in clone.modules())


@pytest.mark.parametrize("kind", KINDS)
def test_finalized_checkpoint_loads_with_plain_transformers(tiny_classifier, tmp_path, kind):
    from transformers import AutoModelForSequenceClassification

    model = tiny_classifier(kind)
    method = OneShotMagnitude(0.8)
    method.prepare(model, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    _train(model, method, opt, 4)
    masks = method.finalize()
    model.save_pretrained(tmp_path)
    masks.save(tmp_path / "mask.safetensors")

    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path)  # no bertprune code involved
    model.eval(), plain.eval()
    x, _ = _batch(3)
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=x).logits, model(input_ids=x).logits, rtol=0, atol=0)
    saved = load_file(str(tmp_path / "mask.safetensors"))
    assert set(saved) == set(masks.names()) and all(t.dtype == torch.bool for t in saved.values())
    for n, m in saved.items():
        w = plain.get_parameter(n)
        assert (w[~m] == 0).all()
    assert Masks.load(tmp_path / "mask.safetensors").equal(masks)


def test_mask_binding_errors(tiny_classifier, tmp_path):
    model = tiny_classifier("bert")
    with pytest.raises(BertpruneError, match="does not have"):
        Masks({"nope.weight": torch.ones(2, 2, dtype=torch.bool)}).bind(model)
    name = "bert.encoder.layer.0.attention.self.query.weight"
    with pytest.raises(BertpruneError, match="shape"):
        Masks({name: torch.ones(3, 3, dtype=torch.bool)}).bind(model)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BertpruneError, match="safetensors"):
        Masks.load(tmp_path / "bad.safetensors")
    with pytest.raises(BertpruneError, match="not found"):
        Masks.load(tmp_path / "missing.safetensors")


def test_masks_from_weights_round_trip(tiny_classifier):
    model = tiny_classifier("bert")
    method = OneShotMagnitude(0.5)
    method.prepare(model, 1)
    params = dict(model.named_parameters())
    read = Masks.from_weights({n: params[n] for n in method.masks.names()})
    assert read.equal(method.masks)


def _masks(**rows):
    return Masks({n: torch.tensor(v, dtype=torch.bool) for n, v in rows.items()})


def test_vote_keeps_the_most_voted_entries_over_all_tensors():
    from bertprune.masks import vote

    # votes: a = [3, 2], b = [1, 1, 0]  (three masks, two tensors ranked together)
    ms = [_masks(a=[1, 1], b=[1, 0, 0]), _masks(a=[1, 0], b=[0, 1, 0]), _masks(a=[1, 1], b=[0, 0, 0])]
    v = vote(ms, 0.6)  # prune round(0.6 · 5) = 3: keep the two most voted, both in a
    assert v["a"].tolist() == [True, True] and v["b"].tolist() == [False, False, False]
    v = vote(ms, 0.4)  # keep 3: a's two, then the first of b's tie at one vote (position breaks it)
    assert v["a"].tolist() == [True, True] and v["b"].tolist() == [True, False, False]
    tie = {"a": torch.tensor([0.0, 0.0]), "b": torch.tensor([0.1, 0.5, 9.0])}
    v = vote(ms, 0.4, tie)  # the tie-break decides within one vote count, never across counts
    assert v["b"].tolist() == [False, True, False]
    assert vote(ms, 0.0).sparsity() == 0.0 and vote(ms, 1.0).sparsity() == 1.0


def test_vote_of_equal_masks_is_that_mask_and_bad_votes_are_refused():
    from bertprune.masks import vote

    g = torch.Generator().manual_seed(0)
    m = Masks({"w": torch.rand(8, 16, generator=g) > 0.75, "v": torch.rand(4, 4, generator=g) > 0.75})
    assert vote([m, m, m], m.sparsity()).equal(m)
    with pytest.raises(BertpruneError, match="at least two"):
        vote([m], 0.5)
    with pytest.raises(BertpruneError, match="other tensors"):
        vote([m, Masks({"w": m["w"]})], 0.5)
    with pytest.raises(BertpruneError, match="other tensors"):
        vote([m, Masks({"w": m["w"][:4], "v": m["v"]})], 0.5)
    with pytest.raises(BertpruneError, match="tie-break"):
        vote([m, m], 0.5, {"w": torch.ones(8, 16)})  # a tensor's scores missing
    with pytest.raises(BertpruneError, match="tie-break"):
        vote([m, m], 0.5, {"w": torch.ones(16, 8), "v": torch.ones(4, 4)})  # same count, other shape
    ones = Masks({"w": torch.ones(1, 3, dtype=torch.bool)})
    assert vote([ones, ones], 1 / 3, {"w": torch.tensor([[float("nan"), 1.0, 2.0]])})["w"].tolist() == [[False, True, True]]
