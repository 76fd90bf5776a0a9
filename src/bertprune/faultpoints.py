"""Named points of the checkpoint protocol where the fault-injection tests kill the process.

``BERTPRUNE_FAULT=<point>`` (or ``<point>@<n>``: the n-th time it is reached) makes the process
SIGKILL itself there, so a test can check that ``--resume`` recovers from a crash at exactly that
moment. Unset (always, outside the tests), :func:`reach` is one dictionary lookup.

Points: ``checkpoint.written`` (a training-state folder complete under its temporary name),
``checkpoint.renamed`` (in place, ``latest`` not yet updated), ``checkpoint.published`` (``latest``
updated, older folders not yet removed), ``hf.written`` / ``hf.moved_aside`` (a best/final folder
built; the old one moved aside, the new one not yet in place), ``metrics.midline`` (half a line of
``metrics.jsonl`` written), ``end.final`` (final/ written, results.json not yet), ``end.cleanup``
(part of checkpoints/ removed after results.json).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = ("checkpoint.written", "checkpoint.renamed", "checkpoint.published", "hf.written", "hf.moved_aside",
          "metrics.midline", "end.final", "end.cleanup")
_seen: Counter = Counter()


def _spec() -> tuple[str, int] | None:
    spec = os.environ.get("BERTPRUNE_FAULT")
    if not spec:
        return None
    name, _, nth = spec.partition("@")
    return name, int(nth or 1)


def hit(point: str) -> bool:
    """Count a visit of ``point``; True when this visit is the one ``BERTPRUNE_FAULT`` names."""
    spec = _spec()
    if spec is None or spec[0] != point:
        return False
    _seen[point] += 1
    return _seen[point] == spec[1]


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def reach(point: str) -> None:
    """Die here if this visit of ``point`` is the one named."""
    if hit(point):
        kill()
