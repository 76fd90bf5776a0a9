"""The run folder: what it holds, and refusing to mix two runs in one folder.

Layout of ``<output_dir>/``::

    config.yaml         the resolved config (defaults + recipe + overrides)
    metrics.jsonl       one JSON line per log step and per evaluation
    checkpoints/        resumable training state (see bertprune.checkpoint); removed at the end
    best/               best evaluation once the target sparsity is reached (HF checkpoint + mask)
    final/              the model after the last step (HF checkpoint + mask.safetensors)
    results.json        final and best metrics, timings
    report.json/.md     sparsity, parameter and MAC report of final/
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .config import to_dict
from .errors import BertpruneError

CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.json"
CHECKPOINTS = "checkpoints"
FINAL = "final"
BEST = "best"


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


def check_output_dir(cfg, resume: bool, overwrite: bool) -> str:
    """Decide what to do with ``cfg.output_dir`` before any work, touching nothing.

    Returns ``"new"`` (a new or empty folder), ``"resume"`` (this exact config with ``--resume``)
    or ``"replace"`` (a bertprune run folder with ``--overwrite``: the caller deletes it). Anything
    else stops with a message.
    """
    out = Path(cfg.output_dir)
    if not out.exists() or not any(out.iterdir()):
        return "new"
    saved = out / CONFIG_FILE
    if not saved.is_file():
        raise BertpruneError(
            f"output folder {out} already holds files but no bertprune run ({CONFIG_FILE} is missing); "
            f"nothing was touched. Choose a new or empty --output-dir."
        )
    new = to_dict(cfg)
    old = yaml.safe_load(saved.read_text()) or {}
    diff = [d for d in config_differences(old, new) if not d.startswith("output_dir:")]
    if overwrite:
        return "replace"
    if diff:
        shown = "; ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")
        raise BertpruneError(
            f"output folder {out} holds a different run ({shown}). Choose another --output-dir, "
            f"or pass --overwrite to replace that run."
        )
    if resume:
        return "resume"
    if (out / RESULTS_FILE).is_file():
        raise BertpruneError(f"output folder {out} already holds this finished run. Pass --overwrite to run it again.")
    raise BertpruneError(
        f"output folder {out} holds an unfinished run of this config. Pass --resume to continue it "
        f"from its last checkpoint, or --overwrite to start over."
    )
