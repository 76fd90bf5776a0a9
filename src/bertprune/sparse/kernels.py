"""The compiled kernels (``csrc/kernels.cpp``), built on first use with PyTorch's C++ extension
machinery (a C++ compiler and ninja are needed; the build is cached by PyTorch, usually in
``~/.cache/torch_extensions``). :func:`available` says whether they could be built here."""

from __future__ import annotations

import functools
import os
from pathlib import Path

SOURCE = Path(__file__).parent / "csrc" / "kernels.cpp"


@functools.lru_cache(maxsize=1)
def load():
    """The compiled module; raises RuntimeError with the compiler's message when it cannot build."""
    from torch.utils.cpp_extension import load as build

    os.environ.setdefault("MAX_JOBS", "2")
    return build(
        name="bertprune_sparse_kernels",
        sources=[str(SOURCE)],
        # -fopenmp turns at::parallel_for on (its OpenMP backend is header code). The library it
        # needs, libgomp.so.1, is the one PyTorch already loaded (same soname), so the process keeps
        # one OpenMP runtime and one thread pool. No -ffast-math: it would flush denormals process-wide.
        extra_cflags=["-O3", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        verbose=False,
    )


@functools.lru_cache(maxsize=1)
def available() -> bool:
    try:
        load()
        return True
    except Exception:  # no compiler, no ninja, ...: the engine then keeps dense layers
        return False
