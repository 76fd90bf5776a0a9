"""Recipes shipped with bertprune: YAML files in this folder, named by their stem.

``bertprune finetune|distill|pretrain --recipe NAME`` (or ``--config NAME``) loads ``NAME.yaml`` from
here; ``--config PATH`` loads any file. A recipe is one layer of the config: defaults → recipe →
flags → ``key.sub=value`` overrides.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BertpruneError

FOLDER = Path(__file__).parent
#: overrides that turn a pruning recipe into its dense twin: the same training (KD, schedule of the
#: learning rate, epochs) with nothing pruned, the like-for-like reference of a pruned run
DENSE_TWIN = ("prune.method=dense", "prune.sparsity=0", "prune.schedule.initial_sparsity=0", "prune.criterion=magnitude",
              "prune.granularity=unstructured")


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def recipe_file(name: str) -> Path:
    """The shipped recipe called ``name`` (with or without ``.yaml``)."""
    path = FOLDER / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        raise BertpruneError(f"no shipped recipe named {name!r}; shipped recipes: {', '.join(names())} "
                             f"(or pass a YAML file with --config PATH)")
    return path
