"""The run folder: what it holds, and refusing to mix two runs in one folder.

Layout of ``<output_dir>/``::

    .bertprune-run      marker: bertprune created this folder (a run id); --overwrite deletes only
                        folders that carry it
    config.yaml         the resolved config (defaults + recipe + overrides)
    metrics.jsonl       one JSON line per log step and per evaluation
    checkpoints/        resumable training state (see bertprune.checkpoint); removed at the end
    best/               best evaluation once the target sparsity is reached (HF checkpoint + mask)
    final/              the model after the last step (HF checkpoint + mask.safetensors)
    results.json        final and best metrics, timings
    report.json/.md     sparsity, parameter and MAC report of final/
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .config import to_dict
from .errors import BertpruneError

CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.json"
CHECKPOINTS = "checkpoints"
FINAL = "final"
BEST = "best"
MARKER = ".bertprune-run"


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(old: dict, new: dict) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}" for k in keys if a.get(k) != b.get(k)]


def is_bertprune_run(out: Path) -> bool:
    """True when bertprune created ``out`` (it holds the marker with a run id)."""
    return (Path(out) / MARKER).is_file()


def mark_run_dir(out: Path) -> None:
    """Create ``out`` (if needed) and claim it with the marker, unless it already carries one."""
    from .checkpoint import write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not is_bertprune_run(out):
        write_json(out / MARKER, {"run_id": uuid.uuid4().hex, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def check_output_dir(cfg, resume: bool, overwrite: bool) -> str:
    """Decide what to do with ``cfg.output_dir`` before any work, touching nothing.

    Returns ``"new"`` (a new or empty folder), ``"resume"`` (this exact config with ``--resume``),
    ``"finished"`` (this exact config, already finished, with ``--resume``: nothing to do) or
    ``"replace"`` (``--overwrite`` on a folder bertprune created: the caller deletes it). Anything
    else stops with a message. A folder without bertprune's marker is never deleted, whatever its
    content (a ``config.yaml`` alone proves nothing).
    """
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise BertpruneError(f"output folder {out} is a file, not a folder; nothing was touched. Choose another --output-dir.")
    if any(p.exists() and not p.is_dir() for p in out.parents):
        raise BertpruneError(f"output folder {out} lies below a file; nothing was touched. Choose another --output-dir.")
    if not out.exists() or not any(out.iterdir()):
        if out.exists() and not os.access(out, os.W_OK):
            raise BertpruneError(f"output folder {out} is not writable; choose another --output-dir")
        return "new"
    ours = is_bertprune_run(out)
    saved = out / CONFIG_FILE
    if ours and not saved.is_file():  # bertprune was stopped while creating it: nothing to keep
        return "replace"
    if not saved.is_file() or (overwrite and not ours):
        why = f"{CONFIG_FILE} is missing" if not saved.is_file() else f"the {MARKER} marker bertprune leaves is missing"
        raise BertpruneError(
            f"output folder {out} already holds files that bertprune did not create ({why}); nothing was touched "
            f"and --overwrite never deletes such a folder. Choose a new or empty --output-dir."
        )
    if overwrite:
        return "replace"
    try:
        old = yaml.safe_load(saved.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BertpruneError(f"{saved} is not a readable bertprune config ({e}); nothing was touched. "
                             f"Choose another --output-dir.") from None
    if not isinstance(old, dict):
        raise BertpruneError(f"{saved} is not a bertprune config; nothing was touched. Choose another --output-dir.")
    diff = [d for d in config_differences(old, to_dict(cfg)) if not d.startswith("output_dir:")]
    if diff:
        shown = "; ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")
        raise BertpruneError(
            f"output folder {out} holds a different run ({shown}). Choose another --output-dir"
            + (", or pass --overwrite to replace that run." if ours else ".")
        )
    finished = (out / RESULTS_FILE).is_file()
    if resume:
        return "finished" if finished else "resume"
    if finished:
        raise BertpruneError(f"output folder {out} already holds this finished run (see {out / RESULTS_FILE}). "
                             f"Pass --overwrite to run it again.")
    raise BertpruneError(
        f"output folder {out} holds an unfinished run of this config. Pass --resume to continue it "
        f"from its last checkpoint, or --overwrite to start over."
    )


def remove_run_dir(out: Path) -> None:
    """Delete a run folder, checking again that bertprune created it."""
    import shutil

    if not is_bertprune_run(out):  # check_output_dir refuses earlier; never delete what is not ours
        raise BertpruneError(f"{out} was not created by bertprune; nothing was deleted")
    shutil.rmtree(out)
