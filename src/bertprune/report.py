"""Sparsity, parameter and compute report of saved weights.

Everything is counted from the tensors in the saved ``*.safetensors`` files: exact zeros, never a
number from a config or a log. The report has

- per matrix: role, layer, shape, non-zeros, sparsity, for the six encoder roles (and any tensor a
  mask names);
- per layer: sparsity of each role and of the layer;
- totals: all parameters, non-zero parameters, the encoder's linear matrices (dense and non-zero),
  the targeted ("prunable") matrices, and the encoder compression ratio = dense / non-zero weights of
  the encoder's linear matrices;
- multiply-accumulates (MACs) of one sequence of ``seq_len`` tokens, dense and with zeros skipped:
  linear layers cost (non-zero) weights × tokens, except the pooler and classification head which run
  on one token; attention costs 2·s²·d per layer (QKᵀ and the weighted sum of values), which weight
  sparsity does not reduce; embedding look-ups, biases, LayerNorm and softmax are not counted.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from .errors import BertpruneError
from .masks import MASK_FILE, Masks
from .models import check_safetensors_file
from .targets import ROLE_PATTERNS, ROLES, classify

_PER_SEQUENCE = re.compile(r"(^|\.)(pooler|classifier|pre_classifier)\.")
_EMBEDDING = re.compile(r"(^|\.)embeddings?\.|(^|\.)(word|position|token_type)_embeddings\.|shared\.weight$")


def find_checkpoint(path: str | Path) -> Path:
    """The folder with the weights for a run folder (its ``final/``, else ``best/``) or a checkpoint."""
    from .models import resolve_model_path

    p = Path(resolve_model_path(str(path))) if not Path(path).exists() else Path(path)
    if p.is_file():
        return p
    for sub in ("final", "best"):
        if (p / sub / "config.json").is_file():
            return p / sub
    if not p.is_dir():
        raise BertpruneError(f"{path} is not a run folder, a checkpoint folder or a .safetensors file")
    return p


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint (a folder of ``*.safetensors`` shards, or one file)."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.glob("*.safetensors") if f.name != MASK_FILE)
    if not files:
        raise BertpruneError(f"no .safetensors weights in {p}; bertprune reads safetensors only (no pickle files)")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        check_safetensors_file(f)  # a text file or a truncated download: one message naming it
        with safe_open(str(f), framework="pt") as fh:
            for k in fh.keys():
                out[k] = fh.get_tensor(k)
    return out


def _model_type(folder: Path, names: list[str]) -> str | None:
    cfg = folder / "config.json"
    if cfg.is_file():
        try:
            config = json.loads(cfg.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BertpruneError(f"{cfg} is not valid JSON ({e}); restore the checkpoint's config.json") from None
        mt = config.get("model_type") if isinstance(config, dict) else None
        if mt in ROLE_PATTERNS:
            return mt
    # no or unknown config: the pattern set that matches the most names
    best, hits = None, 0
    for mt, pats in ROLE_PATTERNS.items():
        n = sum(classify(name, pats) is not None for name in names)
        if n > hits:
            best, hits = mt, n
    return best


def sparsity_report(path: str | Path, seq_len: int = 128, patterns: dict[str, str] | None = None,
                    universal_mask: str | Path | None = None) -> dict[str, Any]:
    """The report of a run folder, checkpoint folder or weights file (see the module docstring).

    ``universal_mask``: a mask file to compare with (by default, for a run folder, the fixed mask its
    config names in ``prune.mask``): the report then states whether the model's mask equals it and
    which share of its zeros are still zeros in the weights, per matrix.
    """
    folder = find_checkpoint(path)
    if universal_mask is None:
        universal_mask = _run_fixed_mask(folder)
    weights = read_weights(folder)
    root = folder if folder.is_dir() else folder.parent
    model_type = _model_type(root, list(weights))
    table = dict(ROLE_PATTERNS.get(model_type or "", {}))
    table.update(patterns or {})
    mask_path = root / MASK_FILE
    masks = None  # names the weights lack are reported below (missing_tensors), other shapes are refused
    if mask_path.is_file():
        masks = Masks.load(mask_path).check_against(weights, mask_path, every_name=False)

    matrices, layers = [], defaultdict(dict)
    enc_params = enc_nonzero = 0
    macs_dense = macs_sparse = 0
    hidden, num_layers = None, set()
    for name, w in weights.items():
        hit = classify(name, table)
        nnz = int(torch.count_nonzero(w))
        if hit is not None:
            role, layer = hit
            enc_params += w.numel()
            enc_nonzero += nnz
            num_layers.add(layer)
            if role == "query":
                hidden = w.shape[0]
            layers[layer][role] = 1.0 - nnz / w.numel()
            matrices.append(_row(name, role, layer, w, nnz))
        elif masks is not None and name in masks:
            matrices.append(_row(name, "extra", None, w, nnz))
        if w.dim() == 2 and not _EMBEDDING.search(name):
            tokens = 1 if _PER_SEQUENCE.search(name) else seq_len
            macs_dense += w.numel() * tokens
            macs_sparse += nnz * tokens
    attention = 2 * seq_len * seq_len * (hidden or 0) * len(num_layers)

    total = sum(w.numel() for w in weights.values())
    nonzero = sum(int(torch.count_nonzero(w)) for w in weights.values())
    if masks is not None:
        names = [n for n in masks.names() if n in weights]
    else:
        names = [m["name"] for m in matrices if m["role"] in ROLES]
    tgt_params = sum(weights[n].numel() for n in names)
    tgt_nonzero = sum(int(torch.count_nonzero(weights[n])) for n in names)

    report: dict[str, Any] = {
        "source": str(folder),
        "model_type": model_type,
        "seq_len": seq_len,
        "params": {
            "total": total,
            "nonzero": nonzero,
            "encoder_linear": enc_params,
            "encoder_linear_nonzero": enc_nonzero,
            "targeted": tgt_params,
            "targeted_nonzero": tgt_nonzero,
        },
        "sparsity": {
            "targeted": 1.0 - tgt_nonzero / tgt_params if tgt_params else 0.0,
            "encoder_linear": 1.0 - enc_nonzero / enc_params if enc_params else 0.0,
            "overall": 1.0 - nonzero / total if total else 0.0,
        },
        "encoder_compression": enc_params / enc_nonzero if enc_nonzero else float("inf"),
        "macs": {
            "dense": macs_dense + attention,
            "sparse": macs_sparse + attention,
            "linear_dense": macs_dense,
            "linear_sparse": macs_sparse,
            "attention": attention,
        },
        "layers": [{"layer": k, **{r: v[r] for r in ROLES if r in v}} for k, v in sorted(layers.items())],
        "matrices": matrices,
    }
    report["macs"]["reduction"] = report["macs"]["dense"] / report["macs"]["sparse"] if report["macs"]["sparse"] else None
    if masks is not None:
        report["mask"] = _mask_check(masks, weights, mask_path)
    if universal_mask is not None:
        universal = Masks.load(universal_mask).aligned(weights).check_against(weights, universal_mask, every_name=False)
        report["universal_mask"] = _universal_check(universal, masks, weights, table, universal_mask)
    return report


def _run_fixed_mask(folder: Path) -> str | None:
    """``prune.mask`` of the run a checkpoint folder belongs to, if any."""
    import yaml

    for cfg in (folder.parent / "config.yaml", folder / "config.yaml"):
        if cfg.is_file():
            try:
                saved = yaml.safe_load(cfg.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError):
                return None  # not a run's config: no fixed mask to compare with
            prune = saved.get("prune") if isinstance(saved, dict) else None
            mask = prune.get("mask") if isinstance(prune, dict) else None
            return mask if isinstance(mask, str) and mask and Path(mask).is_file() else None
    return None


def _universal_check(universal: Masks, masks: Masks | None, weights, table, path) -> dict[str, Any]:
    rows, kept_total, zeros_total = [], 0, 0
    for name in universal.names():
        if name not in weights:
            continue
        pruned = ~universal[name]
        still_zero = int((weights[name][pruned] == 0).sum())
        n = int(pruned.sum())
        kept_total, zeros_total = kept_total + still_zero, zeros_total + n
        role, layer = classify(name, table) or ("extra", None)
        rows.append({"name": name, "layer": layer, "role": role, "universal_zeros": n,
                     "still_zero": still_zero, "share_kept": still_zero / n if n else 1.0})
    return {
        "file": str(path),
        "sparsity": universal.sparsity(),
        "mask_equal": masks is not None and masks.equal(universal),
        "universal_zeros_still_zero": kept_total / zeros_total if zeros_total else 1.0,
        "matrices": rows,
    }


def _row(name, role, layer, w, nnz) -> dict[str, Any]:
    return {"name": name, "role": role, "layer": layer, "shape": list(w.shape), "params": w.numel(),
            "nonzero": nnz, "sparsity": 1.0 - nnz / w.numel()}


def _mask_check(masks: Masks, weights: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    missing = [n for n in masks.names() if n not in weights]
    violations = sum(int(((weights[n] != 0) & ~masks[n]).sum()) for n in masks.names() if n in weights)
    return {
        "file": str(path),
        "tensors": len(masks),
        "sparsity": masks.sparsity(),
        "pruned_weights_nonzero": violations,  # entries the mask prunes that are not zero in the weights
        "missing_tensors": missing,
        "weights_respect_mask": violations == 0 and not missing,
    }


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def to_markdown(report: dict[str, Any], matrices: bool = False) -> str:
    p, s, m = report["params"], report["sparsity"], report["macs"]
    lines = [
        f"### Sparsity report: `{report['source']}`",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| parameters (all) | {_fmt_int(p['total'])} |",
        f"| non-zero parameters (all) | {_fmt_int(p['nonzero'])} |",
        f"| targeted matrices: parameters | {_fmt_int(p['targeted'])} |",
        f"| targeted matrices: non-zero | {_fmt_int(p['targeted_nonzero'])} |",
        f"| targeted sparsity | {s['targeted']:.4f} |",
        f"| encoder linear weights: dense / non-zero | {_fmt_int(p['encoder_linear'])} / {_fmt_int(p['encoder_linear_nonzero'])} |",
        f"| encoder compression ratio | {report['encoder_compression']:.2f}x |",
        f"| MACs per sequence of {report['seq_len']} tokens: dense | {_fmt_int(m['dense'])} |",
        f"| MACs per sequence, zeros skipped | {_fmt_int(m['sparse'])} ({m['reduction']:.2f}x fewer) |" if m["reduction"] else "",
    ]
    if "mask" in report:
        mk = report["mask"]
        lines.append(f"| mask file | {mk['tensors']} tensors, sparsity {mk['sparsity']:.4f}, weights respect it: {mk['weights_respect_mask']} |")
    if "universal_mask" in report:
        um = report["universal_mask"]
        lines.append(f"| universal mask `{um['file']}` | mask equals it: {um['mask_equal']}; "
                     f"its zeros still zero: {um['universal_zeros_still_zero']:.4f} |")
    lines = [x for x in lines if x]
    if report["layers"]:
        roles = [r for r in ROLES if any(r in row for row in report["layers"])]
        lines += ["", "Sparsity per layer and role:", "", "| layer | " + " | ".join(roles) + " |", "|---" * (len(roles) + 1) + "|"]
        for row in report["layers"]:
            lines.append(f"| {row['layer']} | " + " | ".join(f"{row[r]:.3f}" if r in row else "-" for r in roles) + " |")
    if matrices:
        lines += ["", "| matrix | role | shape | non-zero | sparsity |", "|---|---|---|---|---|"]
        for r in report["matrices"]:
            lines.append(f"| `{r['name']}` | {r['role']} | {'x'.join(map(str, r['shape']))} | {_fmt_int(r['nonzero'])} | {r['sparsity']:.4f} |")
    return "\n".join(lines) + "\n"


def write_report(path: str | Path, out_dir: str | Path, seq_len: int = 128) -> dict[str, Any]:
    """Write report.json and report.md of ``path`` into ``out_dir``."""
    report = sparsity_report(path, seq_len)
    out = Path(out_dir)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(to_markdown(report, matrices=True))
    return report
