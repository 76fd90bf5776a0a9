"""One JSON line of metrics per log step, in ``<run>/metrics.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else round(x, 6)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    return x


class MetricsLog:
    """Append-only JSON-lines log; ``enabled=False`` on non-main processes."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(_clean(record)) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run re-does those steps and logs them again)."""
        if not self.enabled or not self.path.exists():
            return
        keep = [line for line in self.path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in keep))

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
