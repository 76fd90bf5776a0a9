"""A fixed mask for the whole run: the universal mask of a pre-training-stage method, or the zeros
of a pruned checkpoint. The zeros stay zeros; nothing else is pruned."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import TargetConfig
from ..errors import BertpruneError
from ..masks import Masks
from ..targets import Target, classify, model_targets, role_patterns
from .base import PruningMethod


class FixedMask(PruningMethod):
    name = "mask"

    def __init__(self, mask_file: str | None = None, keep_zeros: bool = False, targets: TargetConfig | None = None):
        super().__init__(targets)
        if (mask_file is None) == (not keep_zeros):
            raise ValueError("give exactly one of mask_file and keep_zeros")
        self.mask_file = mask_file
        self.keep_zeros = keep_zeros

    def prepare(self, model: torch.nn.Module, total_steps: int, steps_per_epoch: int | None = None) -> None:
        self.total_steps = total_steps
        params = dict(model.named_parameters())
        if self.mask_file is not None:
            masks = Masks.load(self.mask_file).aligned(params)  # a bare encoder's universal mask fits its task models
            if not len(masks):
                raise BertpruneError(f"{self.mask_file} holds no masks")
        else:
            found = model_targets(model, self.targets_cfg)
            masks = Masks.from_weights({t.name: params[t.name] for t in found})
        self.masks = masks.bind(model)
        patterns = role_patterns(getattr(model.config, "model_type", None), self.targets_cfg.patterns)
        self.targets = []
        for name in self.masks.names():
            role, layer = classify(name, patterns) or ("extra", None)
            self.targets.append(Target(name, role, layer, tuple(params[name].shape)))
        self.masks.apply()

    def target_sparsity(self, step: int) -> float:
        return self.masks.sparsity()

    def summary(self):
        source = str(Path(self.mask_file).resolve()) if self.mask_file else "zeros of the starting checkpoint"
        return {**super().summary(), "fixed_mask": source}
