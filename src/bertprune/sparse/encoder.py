"""A fast encoder forward for BERT-family models on CPU, with sparse linear layers.

:func:`accelerate` keeps the Hugging Face model (embeddings, pooler and task head run as before)
and binds a new ``forward`` to its base model that runs the encoder layers in the *transposed*
layout [features, tokens]: that is the layout the sparse kernels read and write, so the whole
stack of layers runs without transposing activations between them:

    hᵀ ─ QKV (one fused sparse matrix) ─ attention (one fused kernel) ─ attn_out ─ +hᵀ, LayerNorm
       ─ ffn_in ─ GELU ─ ffn_out ─ +, LayerNorm ─ next layer

Each of the four matrices of a layer is a :class:`~bertprune.sparse.engine.SparseLinear` that runs
the path measured fastest for the token count (dense MKL below the crossover). Residual add and
LayerNorm are one fused kernel in the transposed layout. Works for BERT, RoBERTa, ELECTRA and
DistilBERT (post-LayerNorm encoders); inference only (``torch.no_grad``, eval mode).
"""

from __future__ import annotations

import inspect
import math
import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

from ..errors import BertpruneError
from . import kernels
from .engine import EngineReport, SparseLinear

_LAYOUT = {  # per model type: layer list, then module paths inside a layer
    "bert": ("encoder.layer", "attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"),
    "distilbert": ("transformer.layer", "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
                   "sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm"),
}
_LAYOUT["roberta"] = _LAYOUT["xlm-roberta"] = _LAYOUT["electra"] = _LAYOUT["camembert"] = _LAYOUT["bert"]


@dataclass
class _Layer:
    qkv: SparseLinear
    attn_out: SparseLinear
    ln1: tuple[torch.Tensor, torch.Tensor, float]
    ffn_in: SparseLinear
    ffn_out: SparseLinear
    ln2: tuple[torch.Tensor, torch.Tensor, float]


def _add_layernorm_t(xt, rt, ln):
    w, b, eps = ln
    if kernels.available():
        return kernels.load().add_layernorm_t(xt, rt, w, b, eps, False)
    return F.layer_norm((xt + rt).t(), (xt.shape[0],), w, b, eps).t().contiguous()


class EncoderEngine:
    def __init__(self, base: torch.nn.Module, model_type: str, int8: bool, tokens: tuple[int, ...], group_tokens: int = 128):
        if model_type not in _LAYOUT:
            raise BertpruneError(f"the fast encoder supports {sorted(_LAYOUT)}, not {model_type!r}; use sparsify() per layer")
        cfg = base.config
        self.group_tokens = group_tokens
        self.heads = getattr(cfg, "num_attention_heads", None) or cfg.n_heads
        self.hidden = getattr(cfg, "hidden_size", None) or cfg.dim
        self.head_dim = self.hidden // self.heads
        act = getattr(cfg, "hidden_act", None) or cfg.activation
        self.act = ACT2FN[act]
        self.fused_gelu = act == "gelu"  # the exact (erf) GELU, which the sparse kernels apply in place of a pass
        self.fused_attention = kernels.available() and kernels.load().cpu_features()[0]  # the one-kernel attention needs AVX-512
        layers_path, *paths = _LAYOUT[model_type]
        layers = base.get_submodule(layers_path)
        self.layers = []
        for i, layer in enumerate(layers):
            q, k, v, ao, ln1, fi, fo, ln2 = (layer.get_submodule(p) for p in paths)
            fused_w = torch.cat([q.weight, k.weight, v.weight])
            fused_b = torch.cat([q.bias, k.bias, v.bias]) if q.bias is not None else None
            mk = lambda w, b, n: SparseLinear(w, b, int8=int8, name=f"{layers_path}.{i}.{n}")  # noqa: E731
            self.layers.append(_Layer(
                qkv=mk(fused_w, fused_b, "qkv"), attn_out=mk(ao.weight, ao.bias, "attn_out"),
                ln1=(ln1.weight.detach().float().contiguous(), ln1.bias.detach().float().contiguous(), ln1.eps),
                ffn_in=mk(fi.weight, fi.bias, "ffn_in"), ffn_out=mk(fo.weight, fo.bias, "ffn_out"),
                ln2=(ln2.weight.detach().float().contiguous(), ln2.bias.detach().float().contiguous(), ln2.eps)))
        for t in sorted({min(t, group_tokens) for t in tokens}):
            for layer in self.layers:
                for lin in (layer.qkv, layer.attn_out, layer.ffn_in, layer.ffn_out):
                    lin.path_for(t)

    def linears(self):
        for layer in self.layers:
            yield from (layer.qkv, layer.attn_out, layer.ffn_in, layer.ffn_out)

    def layer(self, L: _Layer, ht: torch.Tensor, mask: torch.Tensor | None, B: int, S: int) -> torch.Tensor:
        qkv_t = L.qkv.forward_t(ht)  # [3*hidden, batch*seq]
        ctx_t = _attention(qkv_t, mask, B, self.heads, self.fused_attention)  # [hidden, batch*seq]
        h1 = _add_layernorm_t(L.attn_out.forward_t(ctx_t), ht, L.ln1)
        inner = L.ffn_in.forward_t(h1, gelu=True) if self.fused_gelu else self.act(L.ffn_in.forward_t(h1))
        return _add_layernorm_t(L.ffn_out.forward_t(inner), h1, L.ln2)

    def run(self, embeddings: torch.Tensor, attention_mask: torch.Tensor | None, keep_all: bool):
        # Sequences are independent, so run them in groups of about `group_tokens` tokens through all
        # layers: a group's activations ([1536, 256] floats = 1.5 MB at most) stay in L2 from one
        # matrix to the next, where a whole batch would stream from L3 in every kernel.
        B, S, _ = embeddings.shape
        per = max(1, self.group_tokens // S)
        if B <= per:
            return self._run(embeddings, attention_mask, keep_all)
        parts = [self._run(embeddings[i:i + per], None if attention_mask is None else attention_mask[i:i + per], keep_all)
                 for i in range(0, B, per)]
        last = torch.cat([p[0] for p in parts])
        states = [torch.cat(s) for s in zip(*(p[1] for p in parts))] if keep_all else None
        return last, states

    def _run(self, embeddings: torch.Tensor, attention_mask: torch.Tensor | None, keep_all: bool):
        B, S, H = embeddings.shape
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = torch.zeros(B, S, dtype=embeddings.dtype)  # additive: 0 where attended, the dtype's minimum at padding
            mask.masked_fill_(attention_mask == 0, torch.finfo(embeddings.dtype).min)
        ht = embeddings.reshape(B * S, H).t().contiguous()
        states = [embeddings] if keep_all else None
        for L in self.layers:
            ht = self.layer(L, ht, mask, B, S)
            if keep_all:
                states.append(ht.t().reshape(B, S, H))
        return ht.t().reshape(B, S, H), states


def _attention(qkv_t: torch.Tensor, mask: torch.Tensor | None, B: int, heads: int, fused: bool) -> torch.Tensor:
    """Context [hidden, batch*seq] from the fused QKV output [3*hidden, batch*seq]. With ``fused``
    (kernels built, AVX-512) one kernel does scores, softmax and context per (sequence, head, 64 queries) without leaving cache,
    where the batched matmuls below are GEMMs of 128x32x128 per head, too small for MKL to reach its
    peak. Without AVX-512 the portable kernel would lose to MKL, so the matmuls run."""
    H, T = qkv_t.shape[0] // 3, qkv_t.shape[1]
    d = H // heads
    if fused:
        return kernels.load().attention_t(qkv_t, B, heads, mask, 1.0 / math.sqrt(d), False)
    q, k, v = qkv_t.view(3, heads, d, B, T // B).unbind(0)  # each [heads, head_dim, batch, seq]
    return _attention_t(q, k, v, mask, d).reshape(H, T)


def _attention_t(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, d: int) -> torch.Tensor:
    """Softmax attention in the feature-major layout: q, k, v [heads, head_dim, batch, seq] →
    context [heads, head_dim, batch, seq]. With one sequence (the engine's groups at seq 128) the
    batched matmuls read the layout as it is (BLAS transposes for free), where SDPA would need two
    transposing copies per layer. ``mask``: additive, [batch, seq], or None."""
    h, _, B, S = q.shape
    if B == 1:
        q3, k3, v3 = q[:, :, 0], k[:, :, 0], v[:, :, 0]  # [heads, head_dim, seq]
        scores = torch.bmm(q3.transpose(1, 2), k3)  # [heads, seq, seq]
        probs = _softmax_(scores.view(1, h * S, S), 1.0 / math.sqrt(d), mask).view(h, S, S)
        return torch.bmm(v3, probs.transpose(1, 2)).unsqueeze(2)  # [heads, head_dim, 1, seq]
    scores = torch.matmul(q.permute(2, 0, 3, 1), k.permute(2, 0, 1, 3))  # [batch, heads, seq, seq]
    probs = _softmax_(scores.view(B, h * S, S), 1.0 / math.sqrt(d), mask).view(B, h, S, S)
    ctx = torch.matmul(v.permute(2, 0, 1, 3), probs.transpose(-1, -2))  # [batch, heads, head_dim, seq]
    return ctx.permute(1, 2, 0, 3)


def _softmax_(scores: torch.Tensor, scale: float, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(scale · scores + mask) over the last dim. scores [batch, rows, seq] contiguous (scaled
    and masked in place); mask [batch, seq] additive or None. Runs only where attention is not fused
    (no AVX-512, or no kernels), so PyTorch's softmax serves."""
    scores.mul_(scale)  # the scale first, so masked scores stay at the dtype's minimum
    if mask is not None:
        scores.add_(mask[:, None, :])
    return torch.softmax(scores, -1)


def _engine_forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                    inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
    if output_attentions:
        raise BertpruneError("the sparse engine does not return attention maps; run the plain model for them")
    engine: EncoderEngine = self._bertprune_engine
    args = {"input_ids": input_ids, "token_type_ids": token_type_ids, "position_ids": position_ids, "inputs_embeds": inputs_embeds}
    accepted = inspect.signature(self.embeddings.forward).parameters
    with torch.no_grad():
        emb = self.embeddings(**{k: v for k, v in args.items() if v is not None and k in accepted})
        if attention_mask is None and input_ids is not None:
            attention_mask = torch.ones(input_ids.shape, dtype=torch.long)
        last, states = engine.run(emb, attention_mask, bool(output_hidden_states))
        pooler = getattr(self, "pooler", None)
        if pooler is not None:
            return BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=pooler(last),
                                              hidden_states=tuple(states) if states else None)
        return BaseModelOutput(last_hidden_state=last, hidden_states=tuple(states) if states else None)


@torch.no_grad()
def accelerate(model: torch.nn.Module, int8: bool = False, tokens: tuple[int, ...] = (128, 1024),
               force: bool = False) -> EngineReport:
    """Bind the fast sparse encoder to ``model`` (in place; eval mode) and measure each layer's paths
    for the expected token counts (batch × sequence length). Returns the choices made. Where every
    matrix measures fastest dense, the model is left as it is (``report.bound`` False) unless ``force``."""
    model.eval()
    base = model.base_model
    engine = EncoderEngine(base, model.config.model_type, int8, tokens)
    report = EngineReport()
    for lin in engine.linears():
        report.add(lin.name, lin)
    if set(report.summary()) == {"dense"} and not force:  # nothing to gain: the model's own (batched) forward is the fast dense path
        report.bound = False
        return report
    base._bertprune_engine = engine
    base.forward = types.MethodType(_engine_forward, base)
    return report
