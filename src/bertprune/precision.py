"""Which autocast precision a machine runs fast: ``train.mixed_precision=auto``.

bf16 autocast pays only where the hardware multiplies bf16 natively. On a CPU without AVX-512 BF16 or AMX
(e.g. an AVX2-only AMD EPYC) oneDNN emulates it: a training step of all-MiniLM-L6-v2 (batch 32 x 128 tokens)
took 79.2 s in bf16 against 3.55 s in fp32 on such a VM (benchmarks/results/precision_step.md). Where bf16 is native the same step is ~1.7x faster
than fp32. So the recipes say ``auto`` and :func:`resolve` picks, once, before the config is saved beside the run:
the saved config, the records and a resume all see the concrete value.
"""

from __future__ import annotations

import torch

CHOICES = ("no", "fp16", "bf16", "auto")


def native_bf16() -> bool:
    """True where bf16 matmuls are native: a CUDA GPU that supports bf16, or a CPU with AVX-512 BF16 or AMX."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu  # the probes are private in torch 2.x; a build without them counts as not native
    return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve(mixed_precision: str, native: bool | None = None) -> str:
    """``auto`` → ``bf16`` where :func:`native_bf16` (or ``native``), else ``no`` (fp32); other values unchanged."""
    if mixed_precision != "auto":
        return mixed_precision
    return "bf16" if (native_bf16() if native is None else native) else "no"


def slow_bf16_warning(mixed_precision: str, native: bool | None = None) -> str | None:
    """The warning for an explicit ``bf16`` on hardware that only emulates it (None when there is nothing to say)."""
    if mixed_precision != "bf16" or (native_bf16() if native is None else native):
        return None
    return ("train.mixed_precision=bf16 on hardware without native bf16 (no AVX-512 BF16 or AMX on this CPU): autocast "
            "is emulated and a step can be ~20x slower than fp32; set train.mixed_precision=auto (or no) unless you "
            "need bf16 numerics")
