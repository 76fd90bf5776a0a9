"""One JSON line of metrics per log step, in ``<run>/metrics.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from . import faultpoints


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else round(x, 6)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    return x


def _parse(line: str) -> dict[str, Any] | None:
    """A record, or None for a line a crash tore in half (only the last line can be)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class MetricsLog:
    """Append-only JSON-lines log; ``enabled=False`` on non-main processes."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps(_clean(record)) + "\n"
        with open(self.path, "a") as f:
            if faultpoints.hit("metrics.midline"):  # the fault tests' torn line
                f.write(line[: len(line) // 2])
                f.flush()
                faultpoints.kill()
            f.write(line)

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run re-does those steps and logs them again) and
        any line a crash tore; the file is replaced atomically."""
        if not self.enabled or not self.path.exists():
            return
        from .checkpoint import write_text

        keep = [line for line in self.path.read_text(errors="replace").splitlines()
                if (r := _parse(line)) is not None and r.get("step", 0) <= step]
        write_text(self.path, "".join(line + "\n" for line in keep))

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = (_parse(line) for line in self.path.read_text(errors="replace").splitlines() if line.strip())
        return [r for r in records if r is not None]
