"""bertprune: sparse pruning of pre-trained BERT-family models.

Python API (works with any training loop)::

    from bertprune import GradualMagnitude, TargetConfig
    method = GradualMagnitude(sparsity=0.9)
    method.prepare(model, total_steps)
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

__all__ = [
    "BertpruneError",
    "Dense",
    "GradualMagnitude",
    "Masks",
    "OneShotMagnitude",
    "PruningMethod",
    "ROLES",
    "RunConfig",
    "ScheduleConfig",
    "Target",
    "TargetConfig",
    "build_method",
    "cubic_sparsity",
    "load_config",
    "magnitude_masks",
    "select_targets",
]
