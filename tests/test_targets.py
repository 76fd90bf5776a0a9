import pytest
import torch

from bertprune import ROLES, TargetConfig
from bertprune.errors import BertpruneError
from bertprune.targets import model_targets, select_targets

from bertprune.testing import KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_every_role_of_every_layer_is_found(tiny_classifier, kind):
    model = tiny_classifier(kind)
    targets = model_targets(model, TargetConfig())
    assert len(targets) == 6 * 2
    assert {(t.role, t.layer) for t in targets} == {(r, i) for r in ROLES for i in range(2)}
    params = dict(model.named_parameters())
    for t in targets:
        assert params[t.name].dim() == 2 and t.name.endswith(".weight")
        assert tuple(params[t.name].shape) == t.shape


@pytest.mark.parametrize("kind", KINDS)
def test_embeddings_layernorm_biases_pooler_and_heads_are_not_targets(tiny_classifier, kind):
    names = {t.name for t in model_targets(tiny_classifier(kind), TargetConfig())}
    for name in names:
        for word in ("embeddings", "LayerNorm", "layer_norm", "bias", "pooler", "classifier"):
            assert word not in name, name


def test_roles_subset_and_extra_patterns(tiny_classifier):
    model = tiny_classifier("bert")
    attn_only = model_targets(model, TargetConfig(roles=["query", "key"]))
    assert {t.role for t in attn_only} == {"query", "key"} and len(attn_only) == 4
    with_emb = model_targets(model, TargetConfig(extra=[r"word_embeddings\.weight$"]))
    extra = [t for t in with_emb if t.role == "extra"]
    assert [t.name for t in extra] == ["bert.embeddings.word_embeddings.weight"]


def test_other_architectures_through_patterns():
    shapes = [("model.layers.0.attn.q_proj.weight", (8, 8)), ("model.layers.0.attn.q_proj.bias", (8,)),
              ("model.layers.1.mlp.up.weight", (16, 8)), ("model.embed.weight", (50, 8))]
    targets = select_targets(shapes, "mystery", roles=["query", "ffn_in"], patterns={
        "query": r"layers\.(?P<layer>\d+)\.attn\.q_proj\.weight$", "ffn_in": r"layers\.(?P<layer>\d+)\.mlp\.up\.weight$"})
    assert [(t.name, t.role, t.layer) for t in targets] == [
        ("model.layers.0.attn.q_proj.weight", "query", 0), ("model.layers.1.mlp.up.weight", "ffn_in", 1)]


def test_unknown_model_type_needs_patterns():
    with pytest.raises(BertpruneError, match="targets.patterns"):
        select_targets([("w", (2, 2))], "mystery")


def test_model_without_prunable_matrices_is_an_error():
    from transformers import GPT2Config, GPT2Model

    model = GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16))
    with pytest.raises(BertpruneError, match="no prunable matrices|no name pattern"):
        model_targets(model, TargetConfig())
    module = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(BertpruneError):
        model_targets(module, TargetConfig())
