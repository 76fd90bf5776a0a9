"""Real size and speed from sparsity: compact files and a CPU inference engine."""

from .encoder import accelerate
from .engine import SparseLinear, sparsify
from .format import export_sparse, load_sparse

__all__ = ["SparseLinear", "accelerate", "export_sparse", "load_sparse", "sparsify"]
