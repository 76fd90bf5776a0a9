"""``bertprune pretrain``: the masked-LM stage with any pruning method.

Writes ``<output_dir>/final/`` (a plain Hugging Face masked-LM checkpoint, zeros baked in, with the
pre-trained pooler carried over) and ``final/mask.safetensors``, the universal mask to keep fixed
while fine-tuning any task: ``bertprune finetune --model <output_dir>/final --mask
<output_dir>/final/mask.safetensors``.
"""

from __future__ import annotations

from typing import Any

from .tasks.mlm import MlmTask
from .train import train


def pretrain(cfg, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    return train(cfg, MlmTask(cfg), resume=resume, overwrite=overwrite, quiet=quiet)
