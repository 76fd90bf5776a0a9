"""Compact sparse checkpoints: ``bertprune export PATH --format sparse``.

A pruned matrix W [N, K] is stored as a bitmask of its non-zeros (1 bit per weight, ``numpy``
``packbits`` order) and the non-zero values in row-major order: at 90% sparsity 0.1·4 + 1/8 =
0.525 bytes per weight instead of 4. With ``int8=True`` the values are int8 with one fp32 scale
per row (0.225 bytes per weight at 90%); that form is lossy (the values come back dequantised).
Every other tensor is stored as it is. One safetensors file, ``model.sparse.safetensors``, holds
it all, beside the checkpoint's ``config.json`` and tokenizer files; :func:`load_sparse` rebuilds
the model (bit-exact for fp32 values) without pickles.

Which matrices are stored sparse: those the checkpoint's ``mask.safetensors`` names, else every
2-D weight at least ``min_sparsity`` zero.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import BertpruneError
from ..masks import MASK_FILE, Masks
from ..paths import make_output_dir
from ..report import find_checkpoint, read_weights

SPARSE_FILE = "model.sparse.safetensors"
FORMAT = "bertprune-sparse/1"
_SEP = "::"


def pack(weight: torch.Tensor, int8: bool = False) -> dict[str, torch.Tensor]:
    """The stored tensors of one sparse matrix (suffixes ``bitmask``, ``values``, ``scale``)."""
    w = weight.detach().contiguous()
    nz = (w != 0).cpu().numpy()
    out = {"bitmask": torch.from_numpy(np.packbits(nz.reshape(-1)))}
    values = w[torch.from_numpy(nz)]
    if int8:
        scale = (w.abs().amax(1).float() / 127.0).clamp(min=1e-12)
        rows = torch.from_numpy(nz).nonzero(as_tuple=True)[0]
        out["values"] = torch.round(values.float() / scale[rows]).clamp(-127, 127).to(torch.int8)
        out["scale"] = scale
    else:
        out["values"] = values
    return out


def unpack(parts: dict[str, torch.Tensor], shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    n = int(np.prod(shape))
    nz = torch.from_numpy(np.unpackbits(parts["bitmask"].numpy(), count=n).astype(bool)).view(shape)
    w = torch.zeros(shape, dtype=dtype)
    values = parts["values"]
    if "scale" in parts:
        rows = nz.nonzero(as_tuple=True)[0]
        values = values.float() * parts["scale"][rows]
    w[nz] = values.to(dtype)
    return w


def export_sparse(path: str | Path, out: str | Path, int8: bool = False, min_sparsity: float = 0.3) -> dict:
    """Write the compact form of a checkpoint (or run folder) to ``out``; returns sizes in bytes."""
    folder = find_checkpoint(path)
    if not folder.is_dir():
        raise BertpruneError(f"export needs a checkpoint folder (config.json + weights), got {folder}")
    weights = read_weights(folder)
    if (folder / MASK_FILE).is_file():
        masks = Masks.load(folder / MASK_FILE).check_against(weights, folder / MASK_FILE, every_name=False)
        sparse_names = [n for n in masks.names() if n in weights]
    else:
        sparse_names = [n for n, w in weights.items() if w.dim() == 2 and float((w == 0).float().mean()) >= min_sparsity]
    out = make_output_dir(out, "--out")
    tensors, meta = {}, {}
    for name, w in weights.items():
        if name in sparse_names:
            for suffix, t in pack(w, int8).items():
                tensors[f"{name}{_SEP}{suffix}"] = t
            meta[name] = {"shape": list(w.shape), "dtype": str(w.dtype).removeprefix("torch.")}
        else:
            tensors[name] = w.contiguous()
    save_file(tensors, str(out / SPARSE_FILE), metadata={"format": FORMAT, "sparse": json.dumps(meta), "int8": str(int8)})
    for f in folder.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors") and f.suffix in (".json", ".txt", ".model"):
            shutil.copy(f, out / f.name)
    dense_bytes = sum(f.stat().st_size for f in folder.glob("*.safetensors") if f.name != MASK_FILE)
    sparse_bytes = (out / SPARSE_FILE).stat().st_size
    matrices = {n: int(np.prod(m["shape"])) for n, m in meta.items()}
    return {"dense_bytes": dense_bytes, "sparse_bytes": sparse_bytes, "ratio": dense_bytes / sparse_bytes,
            "sparse_matrices": len(meta), "int8": int8,
            "sparse_matrix_bytes_dense": 4 * sum(matrices.values()),
            "sparse_matrix_bytes": sum(tensors[k].numel() * tensors[k].element_size() for k in tensors if _SEP in k)}


def read_sparse_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The full (dense) state dict of a compact checkpoint."""
    file = Path(path) / SPARSE_FILE if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise BertpruneError(f"no {SPARSE_FILE} in {path}; write one with `bertprune export PATH --format sparse`")
    with safe_open(str(file), framework="pt") as fh:
        meta_all = fh.metadata() or {}
        if meta_all.get("format") != FORMAT:
            raise BertpruneError(f"{file} is not a {FORMAT} file")
        meta = json.loads(meta_all["sparse"])
        raw = {k: fh.get_tensor(k) for k in fh.keys()}
    state = {k: v for k, v in raw.items() if _SEP not in k}
    for name, m in meta.items():
        parts = {k.split(_SEP, 1)[1]: v for k, v in raw.items() if k.startswith(name + _SEP)}
        state[name] = unpack(parts, tuple(m["shape"]), getattr(torch, m["dtype"]))
    return state


def load_sparse(path: str | Path):
    """The model a compact checkpoint holds (architecture from its config.json)."""
    import tempfile

    import transformers

    folder = Path(path)
    config = transformers.AutoConfig.from_pretrained(folder)
    arch = (config.architectures or ["AutoModel"])[0]
    cls = getattr(transformers, arch, None)
    if cls is None:
        raise BertpruneError(f"unknown architecture {arch!r} in {folder}/config.json")
    state = read_sparse_state(folder)
    with tempfile.TemporaryDirectory() as tmp:  # from a plain safetensors file: tied weights handled as usual
        save_file({k: v.contiguous() for k, v in state.items()}, str(Path(tmp) / "model.safetensors"), metadata={"format": "pt"})
        for f in folder.glob("*.json"):
            shutil.copy(f, Path(tmp) / f.name)
        model = cls.from_pretrained(tmp, use_safetensors=True)
    return model.eval()
