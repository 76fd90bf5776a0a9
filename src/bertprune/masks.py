"""Masks by tensor name.

A mask is a boolean tensor of a parameter's shape, ``True`` where the weight is kept. Masks never
replace parameters (no re-parametrisation, no ``weight_orig``): the parameter stays an ordinary
``nn.Parameter``, so optimizer references stay valid, ``copy.deepcopy(model)`` works and
``save_pretrained`` writes plain weights. Pruning is enforced by multiplying in place after every
optimizer step, and the optimizer's per-weight state (Adam's moments, SGD momentum) is zeroed at
pruned positions so that no stale momentum can push a pruned weight away from zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch
from safetensors.torch import load_file, save_file

from .errors import BertpruneError, first_line

MASK_FILE = "mask.safetensors"
_FORMAT = "bertprune-mask/1"


class Masks:
    """Keep-masks (``True`` = kept) by parameter name, bound to the parameters they prune."""

    def __init__(self, masks: Mapping[str, torch.Tensor] | None = None):
        self.masks: dict[str, torch.Tensor] = {k: v.bool() for k, v in (masks or {}).items()}
        self._params: dict[str, torch.nn.Parameter] = {}
        self._float: dict[str, torch.Tensor] = {}  # float copies, so the per-step multiply is one fused op

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def dense(cls, params: Mapping[str, torch.Tensor]) -> "Masks":
        """All-kept masks for these tensors."""
        return cls({n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()})

    @classmethod
    def from_weights(cls, params: Mapping[str, torch.Tensor]) -> "Masks":
        """Masks read off the exact zeros of weights (a pruned checkpoint's baked-in zeros)."""
        return cls({n: p.detach() != 0 for n, p in params.items()})

    def bind(self, model: torch.nn.Module) -> "Masks":
        """Attach to ``model``'s parameters by name (checking names and shapes) and move there."""
        params = dict(model.named_parameters())
        self.check_against(params, "the mask")
        for name, mask in self.masks.items():
            self.masks[name] = mask.to(params[name].device)
        self._params = {n: params[n] for n in self.masks}
        self._float = {}
        return self

    def update(self, new: Mapping[str, torch.Tensor]) -> None:
        """Replace some masks (same names and shapes), keeping the binding."""
        for name, mask in new.items():
            device = self.masks[name].device if name in self.masks else mask.device
            self.masks[name] = mask.bool().to(device)
            self._float.pop(name, None)

    # --- enforcement --------------------------------------------------------------------------
    def _float_masks(self) -> list[torch.Tensor]:
        out = []
        for name, p in self._params.items():
            f = self._float.get(name)
            if f is None or f.dtype != p.dtype or f.device != p.device:
                f = self._float[name] = self.masks[name].to(device=p.device, dtype=p.dtype)
            out.append(f)
        return out

    @torch.no_grad()
    def apply(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zero pruned weights in place, and the optimizer's per-weight state at those positions."""
        if not self._params:
            raise RuntimeError("Masks.apply() before bind(model)")
        params = list(self._params.values())
        fmasks = self._float_masks()
        torch._foreach_mul_(params, fmasks)
        if optimizer is None:
            return
        state_tensors, state_masks = [], []
        for p, m in zip(params, fmasks):
            for value in optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    state_tensors.append(value)
                    state_masks.append(m.to(value.dtype))
        if state_tensors:
            torch._foreach_mul_(state_tensors, state_masks)

    # --- distributed --------------------------------------------------------------------------
    def broadcast_(self, src: int = 0) -> None:
        """Make every rank hold rank ``src``'s masks (no-op outside torch.distributed)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        names = sorted(self.masks)
        flat = torch.cat([self.masks[n].flatten().to(torch.uint8).cpu() for n in names])
        if dist.get_backend() == "nccl":
            flat = flat.cuda()
        dist.broadcast(flat, src)
        flat = flat.cpu()
        offset = 0
        for n in names:
            m = self.masks[n]
            k = m.numel()
            self.masks[n] = flat[offset : offset + k].view(m.shape).bool().to(m.device)
            offset += k
        self._float = {}

    def fingerprint(self) -> torch.Tensor:
        """A cheap checksum of all masks (int64), to compare masks across processes."""
        total = torch.zeros((), dtype=torch.int64)
        for i, name in enumerate(sorted(self.masks)):
            flat = self.masks[name].flatten().cpu().to(torch.int64)
            positions = torch.arange(1, flat.numel() + 1, dtype=torch.int64)
            total += (i + 1) * int((flat * positions).sum() % 1_000_000_007)
        return total

    # --- numbers ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.masks)

    def __contains__(self, name: str) -> bool:
        return name in self.masks

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.masks[name]

    def names(self) -> list[str]:
        return list(self.masks)

    def numel(self) -> int:
        return sum(m.numel() for m in self.masks.values())

    def zeros(self) -> int:
        return sum(int((~m).sum()) for m in self.masks.values())

    def sparsity(self) -> float:
        """Fraction of pruned entries over all masked tensors (0.0 for no masks)."""
        n = self.numel()
        return self.zeros() / n if n else 0.0

    def per_tensor_sparsity(self) -> dict[str, float]:
        return {n: float((~m).sum()) / m.numel() for n, m in self.masks.items()}

    def equal(self, other: "Masks") -> bool:
        return set(self.masks) == set(other.masks) and all(
            torch.equal(self.masks[n].cpu(), other.masks[n].cpu()) for n in self.masks
        )

    # --- files --------------------------------------------------------------------------------
    def save(self, path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
        meta = {"format": _FORMAT, "sparsity": f"{self.sparsity():.6f}"}
        meta.update({k: str(v) for k, v in (metadata or {}).items()})
        tensors = {n: m.detach().cpu().contiguous() for n, m in self.masks.items()}
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> "Masks":
        path = Path(path)
        if not path.is_file():
            raise BertpruneError(f"mask file not found: {path}. Pass the mask.safetensors a bertprune run wrote.")
        try:
            tensors = load_file(str(path))
        except Exception as e:  # safetensors raises its own types for truncated or foreign files
            raise BertpruneError(
                f"{path} is not a readable safetensors mask file ({first_line(e)}). "
                f"Pass the mask.safetensors a bertprune run wrote."
            ) from None
        if not tensors:
            raise BertpruneError(f"{path} holds no masks; pass the mask.safetensors of a pruned bertprune run.")
        return cls({name: _as_mask(t, name, path) for name, t in tensors.items()})

    def aligned(self, params: Mapping[str, torch.Tensor]) -> "Masks":
        """These masks under the names of ``params`` where the two differ only by the base model's prefix:
        a universal mask of a bare encoder (``encoder.layer.0...``) fits the task models built on it
        (``bert.encoder.layer.0...``), and a task model's mask fits its bare encoder. Names that match
        already, or match nothing either way, are left as they are (``check_against`` judges them)."""
        names = list(self.masks)
        if all(n in params for n in names):
            return self
        # one prefix for every name, in one direction: added (encoder mask → task model) ...
        for prefix in sorted({p.split(".", 1)[0] for p in params if "." in p}):
            if all(f"{prefix}.{n}" in params for n in names):
                return Masks({f"{prefix}.{n}": m for n, m in self.masks.items()})
        # ... or removed (task model's mask → its bare encoder)
        heads = {n.split(".", 1)[0] for n in names}
        if len(heads) == 1 and all("." in n and n.split(".", 1)[1] in params for n in names):
            return Masks({n.split(".", 1)[1]: m for n, m in self.masks.items()})
        return self

    def check_against(self, params: Mapping[str, torch.Tensor], path: str | Path = "the mask", every_name: bool = True) -> "Masks":
        """Refuse a mask whose tensors have other shapes than the weights of the same name, or (with
        ``every_name``) that names tensors the weights lack; with ``every_name=False`` at least one
        name must match. Returns ``self``."""
        unknown = [n for n in self.masks if n not in params]
        if unknown and (every_name or len(unknown) == len(self.masks)):
            raise BertpruneError(
                f"{path} names {len(unknown)} tensor(s) the model does not have, e.g. {unknown[0]!r}. "
                f"Use the mask with the model it was made for (same architecture and head type)."
            )
        for name, mask in self.masks.items():
            if name in params and tuple(mask.shape) != tuple(params[name].shape):
                raise BertpruneError(
                    f"{path}: the mask of {name!r} has shape {tuple(mask.shape)} but the weights have "
                    f"{tuple(params[name].shape)}: the mask was made for another model size."
                )
        return self


def _as_mask(t: torch.Tensor, name: str, path: Path) -> torch.Tensor:
    """A stored tensor as a keep-mask: booleans, or numbers that are all 0 or 1. A bool tensor's bytes
    are checked too: a corrupted file can hold a byte 2, which torch would keep as a third value."""
    values = t.view(torch.uint8) if t.dtype == torch.bool else t
    if t.dtype.is_complex or not bool(((values == 0) | (values == 1)).all()):
        raise BertpruneError(
            f"{path}: tensor {name!r} ({t.dtype}) holds values other than 0 and 1, so it is not a mask "
            f"(True/1 = kept, False/0 = pruned). Pass the mask.safetensors a bertprune run wrote."
        )
    return t.bool()


def vote(masks: Sequence[Masks], sparsity: float, tie_break: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """One mask from several masks of the same tensors (e.g. the masks of several tasks' pruned runs).

    Each entry scores the number of masks that keep it; the entries are ranked over all tensors together
    (global scope, so each tensor's sparsity follows the votes) and exactly ``round(sparsity · n)`` of the
    ``n`` entries are pruned, the fewest votes first. Within a vote count, higher ``tie_break`` scores
    (e.g. |w| of the weights the mask will start from; NaN counts as lowest) are kept first, then earlier positions.
    """
    if len(masks) < 2:
        raise BertpruneError(f"a vote needs at least two masks, got {len(masks)}")
    if not 0.0 <= sparsity <= 1.0:
        raise BertpruneError(f"sparsity must be in [0, 1], got {sparsity}")
    names = list(masks[0].masks)
    for i, m in enumerate(masks[1:], 2):
        if sorted(m.masks) != sorted(names) or any(m[n].shape != masks[0][n].shape for n in names):
            raise BertpruneError(f"mask {i} of the vote prunes other tensors (or other shapes) than mask 1; "
                                 "vote only masks of the same model")
    if tie_break is not None:
        bad = [n for n in names if n not in tie_break or tuple(tie_break[n].shape) != tuple(masks[0][n].shape)]
        if bad:
            raise BertpruneError(f"the vote's tie-break scores lack {bad[0]!r} or have another shape than its mask")
    votes = torch.cat([sum(m[n].flatten().cpu().long() for m in masks) for n in names])  # [n]
    ties = (torch.cat([tie_break[n].detach().flatten().cpu().double() for n in names]).nan_to_num(nan=float("-inf"))
            if tie_break is not None else torch.zeros(votes.numel(), dtype=torch.float64))
    order = torch.argsort(ties, descending=True, stable=True)  # best tie-break first ...
    order = order[torch.argsort(votes[order], descending=True, stable=True)]  # ... within the most votes first
    keep = torch.zeros(votes.numel(), dtype=torch.bool)
    keep[order[: votes.numel() - round(sparsity * votes.numel())]] = True
    parts = keep.split([masks[0][n].numel() for n in names])
    return Masks({n: part.view(masks[0][n].shape) for n, part in zip(names, parts)})
