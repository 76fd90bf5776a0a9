"""Atomic, pickle-free checkpoints that resume a run exactly.

A training-state checkpoint is a folder ``checkpoints/step-00000120/`` with

- ``model.safetensors``           the (unwrapped) model's weights,
- ``optimizer.safetensors/.json`` optimizer state tensors / everything else,
- ``method.safetensors/.json``    the pruning method's state (masks, schedule position...),
- ``scheduler.json``              the learning-rate scheduler's state,
- ``rng-rank<r>.safetensors/.json`` every RNG of every process (torch, numpy, python),
- ``progress.json``               step, epoch, position in the epoch, best metric so far.

- ``complete.json``               written last: every file's size, so a loader can tell a whole
  checkpoint from a torn one.

Tensors go to safetensors and the rest to JSON, so resuming never unpickles anything. A folder is
written under a temporary name, its files flushed to disk (fsync), sealed with ``complete.json`` and
renamed into place (atomic on POSIX); ``checkpoints/latest`` (itself replaced atomically) names it
for people, while a resumed run takes the newest *complete* folder, whatever ``latest`` says. The
two newest checkpoints are kept. A crash at any moment (see :mod:`bertprune.faultpoints`) leaves a
complete checkpoint to resume from, and :func:`recover_run_dir` tidies what a crash left half-done.
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

from . import faultpoints

LATEST = "latest"
MANIFEST = "complete.json"
KEEP = 2  # checkpoints kept: the newest and the one before it


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
def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk, so a rename never publishes empty files."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders; the data files were still flushed
        pass
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically and durably (temporary file, fsync, rename, fsync the folder)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    write_text(path, json.dumps(obj, indent=1, sort_keys=True))


def flush_folder(folder: Path) -> list[Path]:
    """fsync every file of ``folder`` (before a rename publishes it); returns the files."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != MANIFEST)
    for f in files:
        fsync_path(f)
    return files


def seal(folder: Path) -> None:
    """Flush every file of ``folder`` and write the manifest last: from then on the folder is complete."""
    folder = Path(folder)
    files = flush_folder(folder)
    write_json(folder / MANIFEST, {str(f.relative_to(folder)): f.stat().st_size for f in files})


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` was sealed and still holds every file at its recorded size."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
        return all((Path(folder) / name).stat().st_size == size for name, size in manifest.items())
    except (OSError, ValueError, AttributeError):
        return False


def _remove(folder: Path) -> None:
    """Delete a folder, manifest first: a deletion cut short leaves an incomplete folder, never a
    complete-looking one with files missing."""
    (Path(folder) / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def atomic_dir(final: Path, write: Callable[[Path], None]) -> None:
    """Build a folder with ``write(tmp)`` and move it to ``final`` in one rename.

    An existing ``final`` is moved aside first and removed after, so at every moment either the old
    or the new complete folder exists (:func:`recover_run_dir` puts the old one back if a crash
    falls between the two renames).
    """
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    flush_folder(tmp)
    faultpoints.reach("hf.written")
    old = final.with_name(f".{final.name}.old{os.getpid()}")
    if final.exists():
        os.replace(final, old)
        faultpoints.reach("hf.moved_aside")
    os.replace(tmp, final)
    fsync_path(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_run_dir(out: Path, folders: tuple[str, ...]) -> list[str]:
    """Undo what a crash left half-done in a run folder; returns what it did (for the log).

    - ``.<name>.old*`` (``name`` in ``folders``, e.g. best/final): put back if ``name`` is missing,
      else removed;
    - ``.<name>.tmp*`` and other temporary files of this module: removed (never published);
    - ``checkpoints/``: temporary and incomplete step folders removed.
    Only paths inside ``out`` that this module names are touched.
    """
    out, done = Path(out), []
    for name in folders:
        for old in sorted(out.glob(f".{name}.old*")):
            if not (out / name).exists():  # moved aside whole by one rename: complete
                os.replace(old, out / name)
                done.append(f"restored {name}/ from {old.name}")
            else:
                shutil.rmtree(old, ignore_errors=True)
                done.append(f"removed {old.name}")
        for tmp in out.glob(f".{name}.tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)
            done.append(f"removed {tmp.name}")
    for tmp in out.glob(".*.tmp*"):  # write_text's temporary files (config, results...)
        if tmp.is_file():
            tmp.unlink()
            done.append(f"removed {tmp.name}")
    return done


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
    """The newest complete checkpoint folder under ``root`` (``latest`` may lag behind it after a
    crash between the rename and the pointer update; a torn folder is never returned)."""
    steps = sorted((p for p in Path(root).glob("step-*") if p.is_dir()), reverse=True)
    return next((p for p in steps if is_complete(p)), None)


def clean_checkpoints(root: Path) -> list[str]:
    """Remove temporary and incomplete checkpoint folders (what a crash leaves behind)."""
    done = []
    for p in sorted(Path(root).glob(".*")):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        done.append(f"removed {root.name}/{p.name}")
    for p in sorted(Path(root).glob("step-*")):
        if p.is_dir() and not is_complete(p):
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed incomplete {root.name}/{p.name}")
    return done


def install(tmp: Path, root: Path, name: str) -> None:
    """Seal ``tmp`` and rename it to ``root/name``; publish it and keep the :data:`KEEP` newest."""
    seal(tmp)
    faultpoints.reach("checkpoint.written")
    target = Path(root) / name
    if target.exists():  # left by a crash before `latest` moved, or an earlier try of this step
        aside = target.with_name(f".{name}.old{os.getpid()}")
        os.replace(target, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(tmp, target)
    fsync_path(Path(root))
    faultpoints.reach("checkpoint.renamed")
    publish(root, name)


def publish(root: Path, folder_name: str, keep: int = KEEP) -> None:
    """Point ``latest`` at ``folder_name`` and remove older checkpoint folders beyond ``keep``."""
    write_text(Path(root) / LATEST, folder_name)
    faultpoints.reach("checkpoint.published")
    steps = sorted(p for p in Path(root).glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        if old.name != folder_name:
            _remove(old)


def remove_checkpoints(root: Path) -> None:
    """The end of a run: checkpoints/ goes, newest last (a crash midway leaves it resumable-or-finished)."""
    root = Path(root)
    if not root.exists():
        return
    (root / LATEST).unlink(missing_ok=True)
    for i, p in enumerate(sorted(root.glob("step-*"))):
        _remove(p)
        if i == 0:
            faultpoints.reach("end.cleanup")
    shutil.rmtree(root, ignore_errors=True)
