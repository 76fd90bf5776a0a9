"""Compact files, the sparse kernels and engine, ONNX: exactness against the masked dense model."""

import copy
import itertools
import json
import math

import pytest
import torch

from bertprune.cli import run
from bertprune.methods import OneShotMagnitude, magnitude_masks
from bertprune.sparse import kernels
from bertprune.sparse.engine import SparseLinear, is_4x1
from bertprune.sparse.format import export_sparse, load_sparse, pack, unpack

needs_kernels = pytest.mark.skipif(not kernels.available(), reason="the C++ kernels could not be built here")


def _pruned(n, k, sparsity, pattern="unstructured", seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * 0.05
    if sparsity > 0:
        w = w * magnitude_masks({"w": w.abs()}, sparsity, granularity=pattern)["w"]
    return w, torch.randn(n, generator=g)


# --- compact files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.93, 1.0])
def test_pack_unpack_is_bit_exact(sparsity):
    w, _ = _pruned(37, 53, sparsity)
    assert torch.equal(unpack(pack(w), w.shape, w.dtype), w)
    approx = unpack(pack(w, int8=True), w.shape, w.dtype)
    assert (approx[w == 0] == 0).all()  # pruned weights stay zero (tiny kept ones may round to 0)
    assert (approx - w).abs().max() <= w.abs().amax(1, keepdim=True).max() / 127 / 2 + 1e-7


def _export_pruned(model, tmp_path):
    """``model`` pruned to 90% (one shot), saved with its mask, exported compact and loaded back: the
    export's sizes and the restored model, whose every tensor equals the original's."""
    method = OneShotMagnitude(0.9)
    method.prepare(model, 1)
    model.save_pretrained(tmp_path / "ckpt")
    method.finalize().save(tmp_path / "ckpt" / "mask.safetensors")
    sizes = export_sparse(tmp_path / "ckpt", tmp_path / "sparse")
    assert sizes["sparse_matrices"] == 12 and sizes["sparse_bytes"] < sizes["dense_bytes"]
    restored = load_sparse(tmp_path / "sparse")
    original = dict(model.state_dict())
    for name, t in restored.state_dict().items():
        assert torch.equal(t, original[name]), name
    return sizes, restored


@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert"])
def test_export_then_load_restores_the_exact_model(tiny_classifier, tmp_path, kind):
    model = tiny_classifier(kind)
    sizes, _ = _export_pruned(model, tmp_path)
    assert sizes["sparse_matrix_bytes"] < 0.2 * sizes["sparse_matrix_bytes_dense"]  # 0.1·4 + 1/8 bytes per weight
    small = export_sparse(tmp_path / "ckpt", tmp_path / "sparse8", int8=True)
    assert small["sparse_matrix_bytes"] < sizes["sparse_matrix_bytes"]


def test_export_of_a_bare_encoder_restores_the_exact_encoder(tmp_path):
    """A universal model is a bare encoder (BertModel, no task head): its compact file restores it exactly."""
    from transformers import AutoModel

    from bertprune.testing import tiny_config

    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config("bert")).eval()
    _, restored = _export_pruned(model, tmp_path)
    assert type(restored).__name__ == "BertModel"
    x = torch.randint(5, 60, (2, 8))
    torch.testing.assert_close(restored(input_ids=x).last_hidden_state, model(input_ids=x).last_hidden_state)


# --- kernels and paths -------------------------------------------------------------------------------
@needs_kernels
@pytest.mark.parametrize("n, k", [(32, 32), (64, 48), (128, 64)])
@pytest.mark.parametrize("pattern, sparsity", [(p, s) for p in ("unstructured", "4x1", "1x4", "4x4") for s in (0.0, 0.5, 0.9, 0.99)]
                         + [("2:4", 0.5)])
@pytest.mark.parametrize("tokens", [1, 17, 128, 200])
def test_every_path_matches_the_masked_dense_layer(n, k, sparsity, pattern, tokens):
    w, b = _pruned(n, k, sparsity, pattern)
    layer = SparseLinear(w, b, int8=True)
    assert ("b4" in layer.paths) == is_4x1(w)
    if pattern in ("4x1", "4x4"):
        assert "b4" in layer.paths
    x = torch.randn(tokens, k, generator=torch.Generator().manual_seed(1))
    ref = torch.nn.functional.linear(x, w, b)
    xt = x.t().contiguous()
    for path in layer.paths:
        got = layer.run_t(path, xt).t()
        if path.startswith("int8"):  # dynamic quantisation: close, not equal
            scale = (x.abs().amax(1, keepdim=True) * w.abs().amax(1)[None, :]).clamp(min=1e-6)
            assert ((got - ref).abs() / scale).max() < 0.05 * k ** 0.5, path
            # GELU (fused or not) of the same int8 result: exact up to the GELU's own rounding
            torch.testing.assert_close(layer.run_t(path, xt, gelu=True).t(), torch.nn.functional.gelu(got), rtol=1e-5, atol=2e-6)
        else:
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5, msg=path)
            # the FFN's exact GELU, fused into the kernel's store
            torch.testing.assert_close(layer.run_t(path, xt, gelu=True).t(), torch.nn.functional.gelu(ref), rtol=1e-5, atol=1e-5, msg=path)
    fp32_layer = SparseLinear(w, b)  # the nn.Linear drop-in runs whichever fp32 path it measures fastest
    torch.testing.assert_close(fp32_layer(x.view(1, tokens, k)), ref.view(1, tokens, n), rtol=1e-5, atol=1e-5)


@needs_kernels
def test_portable_kernels_agree_with_the_vectorised_ones():
    k = kernels.load()
    w, b = _pruned(64, 64, 0.8, "4x1")
    layer = SparseLinear(w, b, int8=True)
    c, bl, q = layer.formats["csr"], layer.formats["b4"], layer.formats["int8"]
    for tokens in (300, 77):  # several token tiles (packed slabs, a partial last tile) and one
        xt = torch.randn(64, tokens)
        for nv, gelu in itertools.product((2, 4, 8), (False, True)):
            torch.testing.assert_close(k.csr_f32(xt, c["rowptr"], c["cols"], c["vals"], b, nv, False, gelu),
                                       k.csr_f32(xt, c["rowptr"], c["cols"], c["vals"], b, nv, True, gelu), rtol=1e-5, atol=1e-5)
        for nv, gelu in itertools.product((2, 4), (False, True)):
            torch.testing.assert_close(k.b4_f32(xt, bl["browptr"], bl["bcols"], bl["bvals"], b, nv, False, gelu),
                                       k.b4_f32(xt, bl["browptr"], bl["bcols"], bl["bvals"], b, nv, True, gelu), rtol=1e-5, atol=1e-5)
    xq, sx = k.quantize_tokens_t(xt)
    args = (xq, sx, q["growptr"], q["gcols"], q["gvals"], q["wscale"], q["wsum"], b)
    for gelu in (False, True):
        torch.testing.assert_close(k.csr_i8(*args, 4, False, gelu), k.csr_i8(*args, 4, True, gelu), rtol=1e-5, atol=1e-4)
    # the quantisation, written out: per-token scale max|x|/127, round half to even, +128, [K/4, T, 4]
    amax = xt.abs().amax(0)
    scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
    ref = (torch.round(xt * (1 / scale)).clamp(-127, 127) + 128).to(torch.uint8)  # [K, T]
    assert torch.equal(sx, scale) and torch.equal(xq, ref.view(-1, 4, xt.shape[1]).permute(0, 2, 1))


@needs_kernels
def test_fused_gelu_at_extreme_inputs_matches_pytorch():
    k = kernels.load()
    x = torch.randn(64, 40, generator=torch.Generator().manual_seed(0)) * 4
    x[0, :6] = torch.tensor([0.0, -0.0, 1e-30, -60.0, 60.0, -5.5])
    eye = torch.eye(64)  # identity weight: the kernel's output is GELU(x) itself
    c = SparseLinear(eye, None).formats["csr"]
    for portable in (False, True):
        got = k.csr_f32(x, c["rowptr"], c["cols"], c["vals"], None, 4, portable, True)
        torch.testing.assert_close(got, torch.nn.functional.gelu(x), rtol=1e-5, atol=2e-6)


@needs_kernels
@pytest.mark.parametrize("batch,seq,heads,head_dim", [(1, 128, 12, 32), (3, 37, 4, 20), (2, 130, 2, 33), (1, 5, 3, 7)])
def test_fused_attention_kernel_matches_softmax_attention(batch, seq, heads, head_dim):
    # seq 37/130/5: partial query blocks and vectors; head_dim 33/7: feature and key tails.
    k = kernels.load()
    H = heads * head_dim
    qkv = torch.randn(3 * H, batch * seq, generator=torch.Generator().manual_seed(2)) * 2  # [3*hidden, batch*seq]
    q, key, v = qkv.view(3, heads, head_dim, batch, seq).unbind(0)
    mask = torch.zeros(batch, seq)
    mask[-1, seq // 2 + 1:] = torch.finfo(torch.float32).min  # the last sequence is padded, as the engine masks it
    for m, portable in itertools.product((None, mask), (False, True)):
        scores = torch.einsum("hdbi,hdbj->bhij", q, key) / math.sqrt(head_dim)
        probs = torch.softmax(scores + (0 if m is None else m[:, None, None, :]), -1)  # [batch, heads, seq, seq]
        expected = torch.einsum("bhij,hdbj->hdbi", probs, v).reshape(H, batch * seq)
        got = k.attention_t(qkv, batch, heads, m, 1 / math.sqrt(head_dim), portable)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="divisible by heads"):
        k.attention_t(qkv, batch, H + 1, None, 1.0, False)


@needs_kernels
@pytest.mark.parametrize("tokens", [1, 37, 128])
def test_add_layernorm_kernel_matches_pytorch(tokens):
    k = kernels.load()
    g = torch.Generator().manual_seed(0)
    x, r = torch.randn(384, tokens, generator=g), torch.randn(384, tokens, generator=g) + 20.0  # a large mean, as in outlier dims
    w, b = torch.randn(384, generator=g), torch.randn(384, generator=g)
    expected = torch.nn.functional.layer_norm((x + r).t(), (384,), w, b, 1e-12).t()
    for portable in (False, True):
        torch.testing.assert_close(k.add_layernorm_t(x, r, w, b, 1e-12, portable), expected, rtol=1e-5, atol=2e-5)


@needs_kernels
def test_dispatch_picks_the_fastest_measured_path(monkeypatch):
    # Real measurement: the choice is the argmin of what was timed. Which path wins is the
    # machine's business (a loaded CI runner can time a 0%-sparse block kernel under dense),
    # so the test asserts the rule, not a speed.
    w, b = _pruned(256, 256, 0.0)
    layer = SparseLinear(w, b)
    chosen = layer.path_for(512)
    timed = layer.timings[512]
    assert "dense" in timed and chosen == min(timed, key=timed.get), timed
    # the rule itself, on given timings
    import bertprune.sparse.engine as eng

    fake = SparseLinear(*_pruned(64, 64, 0.9))
    monkeypatch.setattr(fake, "measure", lambda tokens, repeats=7: {"dense": 2.0, "csr4": 1.0, "csr8": 3.0})
    assert fake.path_for(100) == "csr4" and fake.choice == {128: "csr4"}
    monkeypatch.setattr(fake, "measure", lambda tokens, repeats=7: {"dense": 1.0, "csr4": 2.0, "csr8": 3.0})
    assert fake.path_for(5) == "dense"
    assert eng._bucket(100) == 128 and eng._bucket(1) == 1


@needs_kernels
@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert"])
def test_fast_encoder_gives_the_masked_dense_model_outputs(tiny_classifier, kind):
    from bertprune.sparse.encoder import accelerate

    model = tiny_classifier(kind).eval()
    method = OneShotMagnitude(0.8, granularity="4x1")
    method.prepare(model, 1)
    fast = copy.deepcopy(model)
    report = accelerate(fast, tokens=(24,), force=True)  # tiny matrices may all measure fastest dense
    assert len(report.layers) == 8 and all(v["structured_4x1"] for v in report.layers.values())
    ids = torch.randint(5, 60, (3, 8))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        got = fast(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(got.logits, ref.logits, rtol=1e-4, atol=1e-5)
    for a, b in zip(got.hidden_states, ref.hidden_states):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    engine = fast.base_model._bertprune_engine
    # groups of 2 sequences then 1; one sequence each (the padded one alone); both attention paths
    # (the one kernel where AVX-512 is, and the batched matmuls + softmax everywhere)
    for fused, group_tokens in itertools.product(sorted({engine.fused_attention, False}), (16, 8)):
        engine.fused_attention, engine.group_tokens = fused, group_tokens
        with torch.no_grad():
            grouped = fast(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        torch.testing.assert_close(grouped.logits, ref.logits, rtol=1e-4, atol=1e-5)
        for a, b in zip(grouped.hidden_states, ref.hidden_states, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_export_cli_sparse_and_onnx(run_args, tmp_path, capsys):
    assert run(run_args("r", "bert", "sst2", "--method", "oneshot", "--sparsity", "0.9", "--max-steps", "1")) == 0
    capsys.readouterr()
    assert run(["export", str(tmp_path / "r"), "--format", "sparse", "-o", str(tmp_path / "sp")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sparse_bytes"] < out["dense_bytes"]
    torch.testing.assert_close(load_sparse(tmp_path / "sp").classifier.weight,
                               load_sparse(tmp_path / "sp").classifier.weight)
    assert run(["export", str(tmp_path / "r"), "--format", "onnx", "--int8", "-o", str(tmp_path / "onnx"), "--seq-len", "16"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["max_abs_diff_fp32"] < 1e-4 and out["max_abs_diff_int8"] < 1.0
    assert (tmp_path / "onnx" / "model.onnx").is_file() and (tmp_path / "onnx" / "model.int8.onnx").is_file()


@needs_kernels
def test_sparsify_replaces_target_linears_in_any_model(tiny_classifier):
    from bertprune.sparse.engine import sparsify

    model = tiny_classifier("bert").eval()
    OneShotMagnitude(0.9).prepare(model, 1)
    reference = copy.deepcopy(model)
    report = sparsify(model, tokens=(16,))
    assert len(report.layers) == 12 and sum(report.summary().values()) == 12
    assert sum(isinstance(m, SparseLinear) for m in model.modules()) == 12
    ids = torch.randint(5, 60, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, reference(input_ids=ids).logits, rtol=1e-4, atol=1e-5)


def test_measurements_are_not_shared_between_patterns_of_equal_density(monkeypatch):
    # 1x4 blocks and unstructured weights of one shape and density run 3x apart on the int8 kernel:
    # the process-wide cache of measurements must keep them apart
    import bertprune.sparse.engine as eng

    calls = []
    monkeypatch.setattr(eng, "_MEASURED", {})
    monkeypatch.setattr(eng.SparseLinear, "run_t", lambda self, path, xt, gelu=False: calls.append(self.name))
    for pattern, name in (("unstructured", "u"), ("1x4", "b"), ("unstructured", "u2")):
        w, b = _pruned(64, 64, 0.75, pattern)
        layer = SparseLinear(w, b, name=name)
        layer.paths = ["dense"]
        layer.measure(128, repeats=1)
    assert {"u", "b"} <= set(calls) and "u2" not in calls  # same pattern: cached; other pattern: measured


@needs_kernels
def test_accelerate_leaves_the_model_alone_where_every_matrix_is_fastest_dense(tiny_classifier, monkeypatch):
    from bertprune.sparse import engine as eng
    from bertprune.sparse.encoder import accelerate

    monkeypatch.setattr(eng.SparseLinear, "measure", lambda self, tokens, repeats=7: {"dense": 1.0, "csr4": 2.0, "csr8": 3.0})
    model = tiny_classifier("bert").eval()
    report = accelerate(model, tokens=(16,))
    assert report.bound is False and set(report.summary()) == {"dense"}
    assert not hasattr(model.base_model, "_bertprune_engine") and "forward" not in vars(model.base_model)
