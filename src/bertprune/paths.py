"""Output folders: made up front, so that a path the user cannot write to is one clear message
before any work, instead of a traceback after it."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import BertpruneError


def make_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create ``path`` (and its parents) if needed and check it can be written to."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BertpruneError(f"{flag} {out} is an existing file, not a folder; choose a folder path") from None
    except NotADirectoryError:
        raise BertpruneError(f"{flag} {out} lies below a file ({_file_above(out)}), so no folder can be made there; "
                             f"choose another path") from None
    except OSError as e:  # no permission, read-only file system, name too long...
        raise BertpruneError(f"cannot create {flag} {out}: {e.strerror or e}; choose a folder you can write to") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise BertpruneError(f"{flag} {out} is not writable; choose a folder you can write to")
    return out


def _file_above(path: Path) -> str:
    """The first existing non-folder among ``path``'s ancestors (for the message)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return str(parent)
    return "a file"


def output_stem(stem: str | Path, flag: str = "--out") -> Path:
    """A figure stem (``<stem>.png`` and ``<stem>.svg``): it needs a file name, and its folder is made now."""
    stem = Path(stem)
    if stem.name in ("", ".", ".."):
        raise BertpruneError(f"{flag} {str(stem)!r} names no file; give a path such as runs/curve (writes curve.png and curve.svg)")
    make_output_dir(stem.parent, flag)
    return stem
