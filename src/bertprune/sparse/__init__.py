"""Real size and speed from sparsity: compact files and a CPU inference engine."""

from .format import export_sparse, load_sparse

__all__ = ["export_sparse", "load_sparse"]
