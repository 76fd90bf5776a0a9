"""Atomic, pickle-free checkpoints that resume a run exactly.

A training-state checkpoint is a folder ``checkpoints/step-00000120/`` with

- ``model.safetensors``           the (unwrapped) model's weights,
- ``optimizer.safetensors/.json`` optimizer state tensors / everything else,
- ``method.safetensors/.json``    the pruning method's state (masks, schedule position...),
- ``scheduler.json``              the learning-rate scheduler's state,
- ``rng-rank<r>.safetensors/.json`` every RNG of every process (torch, numpy, python),
- ``progress.json``               step, epoch, position in the epoch, best metric so far.

Tensors go to safetensors and the rest to JSON, so resuming never unpickles anything. A folder is
written under a temporary name and renamed into place (atomic on POSIX); ``checkpoints/latest``
(itself replaced atomically) names the newest complete folder. A crash at any moment leaves the
previous checkpoint intact and named.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LATEST = "latest"


# --- tree <-> (tensors, json) -------------------------------------------------------------------
def split_tree(tree: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested dict/list of tensors and JSON values into flat tensors + a JSON skeleton.

    A tensor is replaced by ``{"__tensor__": key}`` in the skeleton. Dict keys become strings;
    ``{"__intkeys__": ...}`` remembers int-keyed dicts (optimizer state is keyed by int).
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(x, path):
        if torch.is_tensor(x):
            tensors[path] = x.detach().cpu().contiguous()
            return {"__tensor__": path}
        if isinstance(x, dict):
            intkeys = bool(x) and all(isinstance(k, int) for k in x)
            body = {str(k): walk(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
            return {"__intkeys__": body} if intkeys else body
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(x)]
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        return x

    return tensors, walk(tree, prefix)


def join_tree(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    def walk(x):
        if isinstance(x, dict):
            if set(x) == {"__tensor__"}:
                return tensors[x["__tensor__"]]
            if set(x) == {"__intkeys__"}:
                return {int(k): walk(v) for k, v in x["__intkeys__"].items()}
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(skeleton)


def save_tree(tree: Any, folder: Path, stem: str) -> None:
    tensors, skeleton = split_tree(tree)
    if tensors:
        save_file(tensors, str(folder / f"{stem}.safetensors"))
    write_json(folder / f"{stem}.json", skeleton)


def load_tree(folder: Path, stem: str) -> Any:
    tensor_file = folder / f"{stem}.safetensors"
    tensors = load_file(str(tensor_file)) if tensor_file.exists() else {}
    return join_tree(tensors, json.loads((folder / f"{stem}.json").read_text()))


# --- atomic files -------------------------------------------------------------------------------
def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def atomic_dir(final: Path, write: Callable[[Path], None]) -> None:
    """Build a folder with ``write(tmp)`` and move it to ``final`` in one rename.

    An existing ``final`` is moved aside first and removed after, so at every moment either the old
    or the new complete folder exists.
    """
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    old = final.with_name(f".{final.name}.old{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


# --- RNG ----------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    internal, version, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- training state -----------------------------------------------------------------------------
def latest_checkpoint(root: Path) -> Path | None:
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    folder = Path(root) / pointer.read_text().strip()
    return folder if folder.is_dir() else None


def publish(root: Path, folder_name: str, keep: int = 1) -> None:
    """Point ``latest`` at ``folder_name`` and remove older checkpoint folders beyond ``keep``."""
    pointer = Path(root) / LATEST
    tmp = pointer.with_name(f".{LATEST}.tmp{os.getpid()}")
    tmp.write_text(folder_name)
    os.replace(tmp, pointer)
    steps = sorted(p for p in Path(root).glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        if old.name != folder_name:
            shutil.rmtree(old, ignore_errors=True)
