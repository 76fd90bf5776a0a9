"""Which weight matrices are pruned: selection by *role*, never by module object.

A target is a parameter name (the fully qualified name in ``model.named_parameters()``) with a
role and a layer index. Roles of an encoder layer:

============  =============================================  ==========================
role          BERT / RoBERTa / ELECTRA (``encoder.layer.i``)  DistilBERT (``transformer.layer.i``)
============  =============================================  ==========================
``query``     ``attention.self.query.weight``                ``attention.q_lin.weight``
``key``       ``attention.self.key.weight``                  ``attention.k_lin.weight``
``value``     ``attention.self.value.weight``                ``attention.v_lin.weight``
``attn_out``  ``attention.output.dense.weight``              ``attention.out_lin.weight``
``ffn_in``    ``intermediate.dense.weight``                  ``ffn.lin1.weight``
``ffn_out``   ``output.dense.weight``                        ``ffn.lin2.weight``
============  =============================================  ==========================

Other architectures are described by ``patterns``: a regular expression per role, matched with
``re.search`` against parameter names, with a named group ``layer`` for the layer index.
Embeddings, LayerNorm, biases, pooler and task heads are never matched by the role patterns; a user
who wants them pruned lists name patterns under ``extra`` (role ``extra``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from .errors import BertpruneError

ROLES = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")

_BERT_LIKE = {
    "query": r"encoder\.layer\.(?P<layer>\d+)\.attention\.self\.query\.weight$",
    "key": r"encoder\.layer\.(?P<layer>\d+)\.attention\.self\.key\.weight$",
    "value": r"encoder\.layer\.(?P<layer>\d+)\.attention\.self\.value\.weight$",
    "attn_out": r"encoder\.layer\.(?P<layer>\d+)\.attention\.output\.dense\.weight$",
    "ffn_in": r"encoder\.layer\.(?P<layer>\d+)\.intermediate\.dense\.weight$",
    "ffn_out": r"encoder\.layer\.(?P<layer>\d+)\.output\.dense\.weight$",
}
_DISTILBERT = {
    "query": r"transformer\.layer\.(?P<layer>\d+)\.attention\.q_lin\.weight$",
    "key": r"transformer\.layer\.(?P<layer>\d+)\.attention\.k_lin\.weight$",
    "value": r"transformer\.layer\.(?P<layer>\d+)\.attention\.v_lin\.weight$",
    "attn_out": r"transformer\.layer\.(?P<layer>\d+)\.attention\.out_lin\.weight$",
    "ffn_in": r"transformer\.layer\.(?P<layer>\d+)\.ffn\.lin1\.weight$",
    "ffn_out": r"transformer\.layer\.(?P<layer>\d+)\.ffn\.lin2\.weight$",
}

#: Role patterns by Hugging Face ``config.model_type``.
ROLE_PATTERNS: dict[str, dict[str, str]] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "camembert": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "distilbert": _DISTILBERT,
}


@dataclass(frozen=True)
class Target:
    """One prunable matrix: parameter name, role, encoder layer (None for ``extra``), shape."""

    name: str
    role: str
    layer: int | None
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def role_patterns(model_type: str | None, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The role → regex table for a model type, with user ``overrides`` on top."""
    base = dict(ROLE_PATTERNS.get(model_type or "", {}))
    base.update(overrides or {})
    return base


def classify(name: str, patterns: Mapping[str, str]) -> tuple[str, int | None] | None:
    """(role, layer) of a parameter name, or None when no role pattern matches."""
    for role, pattern in patterns.items():
        m = re.search(pattern, name)
        if m:
            layer = m.groupdict().get("layer")
            return role, int(layer) if layer is not None else None
    return None


def select_targets(
    named_shapes: Iterable[tuple[str, tuple[int, ...]]],
    model_type: str | None,
    roles: Iterable[str] = ROLES,
    patterns: Mapping[str, str] | None = None,
    extra: Iterable[str] = (),
) -> list[Target]:
    """Pick the matrices to prune from ``(name, shape)`` pairs.

    ``roles`` limits the roles pruned; ``patterns`` adds or overrides role regexes (needed for
    model types not in :data:`ROLE_PATTERNS`); ``extra`` are regexes of further tensors to prune
    (e.g. ``"embeddings\\.word_embeddings\\.weight$"``).
    """
    table = role_patterns(model_type, patterns)
    roles = list(roles)
    unknown = [r for r in roles if r not in table]
    if unknown:
        known = ", ".join(sorted(table)) or "none"
        raise BertpruneError(
            f"no name pattern for role(s) {unknown} in model type {model_type!r} (known roles: {known}). "
            f"Give one with targets.patterns.<role>='<regex with (?P<layer>\\d+)>', "
            f"or drop the role from targets.roles."
        )
    wanted = {r: table[r] for r in roles}
    extra = list(extra)
    targets = []
    for name, shape in named_shapes:
        hit = classify(name, wanted)
        if hit is not None:
            targets.append(Target(name, hit[0], hit[1], tuple(shape)))
        elif any(re.search(p, name) for p in extra):
            targets.append(Target(name, "extra", None, tuple(shape)))
    return targets


def model_targets(model, targets_cfg) -> list[Target]:
    """Targets of a live model under a :class:`~bertprune.config.TargetConfig`; errors if none."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    shapes = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    found = select_targets(shapes, model_type, targets_cfg.roles, targets_cfg.patterns, targets_cfg.extra)
    if not found:
        supported = ", ".join(sorted(ROLE_PATTERNS))
        raise BertpruneError(
            f"the model (type {model_type!r}, {type(model).__name__}) has no prunable matrices for roles "
            f"{list(targets_cfg.roles)}. Supported model types: {supported}. For another architecture, "
            f"name its matrices with targets.patterns.<role>='<regex>' (e.g. "
            f"targets.patterns.query='layers\\.(?P<layer>\\d+)\\.attn\\.q_proj\\.weight$')."
        )
    return found
