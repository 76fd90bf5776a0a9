"""bertprune: sparse pruning of pre-trained BERT-family models.

Python API (works with any training loop)::

    from bertprune import GradualMagnitude, TargetConfig
    method = GradualMagnitude(sparsity=0.9)
    method.prepare(model, total_steps)   # the model already on its device (masks and statistics are made there)
    ...  # your loop: call method.loss(...) and method.after_step(step, optimizer)
    masks = method.finalize()
    model.save_pretrained(out); masks.save(f"{out}/mask.safetensors")
"""

from .config import RunConfig, load_config
from .errors import BertpruneError
from .masks import Masks
from .methods import Dense, GradualMagnitude, OneShotMagnitude, PruningMethod, build_method, magnitude_masks
from .schedules import cubic_sparsity
from .targets import ROLES, Target, select_targets
from .config import ScheduleConfig, TargetConfig

__version__ = "0.1.0"

_LAZY = {  # heavier parts, imported on first use (transformers, the kernel builder)
    "load_sparse": ".sparse.format", "export_sparse": ".sparse.format", "accelerate": ".sparse.encoder",
    "ReweightedProximal": ".methods.rpp", "Distillation": ".methods.distill", "FixedMask": ".methods.fixed",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'bertprune' has no attribute {name!r}")


__all__ = [
    "BertpruneError",
    "Dense",
    "Distillation",
    "FixedMask",
    "GradualMagnitude",
    "Masks",
    "OneShotMagnitude",
    "PruningMethod",
    "ROLES",
    "ReweightedProximal",
    "RunConfig",
    "ScheduleConfig",
    "Target",
    "TargetConfig",
    "accelerate",
    "build_method",
    "cubic_sparsity",
    "export_sparse",
    "load_config",
    "load_sparse",
    "magnitude_masks",
    "select_targets",
]
