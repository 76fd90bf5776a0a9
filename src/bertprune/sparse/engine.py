"""The sparse inference engine: pruned ``nn.Linear`` layers computed by sparse kernels.

:func:`sparsify` replaces each targeted linear layer of a model by a :class:`SparseLinear` that
holds the weight in the formats its candidate paths need and, for each token count it meets
(bucketed by powers of two), runs the path measured fastest on this machine:

* ``dense``        ``F.linear`` (MKL) on the dense weight — the path below the crossover;
* ``csr``          unstructured sparse kernel (AVX-512), token tiles of 64 or 128;
* ``b4``           4x1-block kernel, when every 4 consecutive output rows share their non-zero
                   columns (4x1, 4x4, 16x16... patterns): one activation load feeds 4 rows;
* ``int8-dense``   PyTorch's dynamic int8 linear (int8 engine only);
* ``int8-sparse``  int8 weights in groups of 4 inputs × per-token u8 activations, AVX-512 VNNI
                   (int8 engine only). One instruction does 4 multiply-adds per token, so the path
                   pays most with 1x4 blocks (every stored group full); unstructured weights fill
                   about a third of each group at 90% sparsity.

The exact GELU of the FFN is applied inside the sparse kernels (``gelu=True``) while each output
row is still in registers.

fp32 paths match the masked dense layer to fp32 rounding; int8 paths are approximate like any
dynamic quantisation (per-token activation and per-row weight scales). Measurements are cached per
(shape, density, 4x1 structure, occupied 1x4 groups, int8, token bucket) for the process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..config import TargetConfig
from ..targets import model_targets
from . import kernels

FP32_PATHS = ("dense", "csr4", "csr8", "b4")
INT8_PATHS = ("int8-dense", "int8-sparse")


# --- formats (pure functions) ---------------------------------------------------------------------
def to_csr(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """CSR over output rows: int32 row pointers, int32 column indices, fp32 values."""
    w = weight.detach().float().contiguous()
    nz = w != 0
    counts = nz.sum(1)
    rowptr = torch.zeros(w.shape[0] + 1, dtype=torch.int32)
    rowptr[1:] = counts.cumsum(0).to(torch.int32)
    rows, cols = nz.nonzero(as_tuple=True)
    return {"rowptr": rowptr, "cols": cols.to(torch.int32).contiguous(), "vals": w[rows, cols].contiguous()}


def is_4x1(weight: torch.Tensor) -> bool:
    """Whether every group of 4 consecutive output rows has the same non-zero columns."""
    n, k = weight.shape
    if n % 4:
        return False
    nz = (weight != 0).view(n // 4, 4, k)
    return bool((nz.all(1) | ~nz.any(1)).all())


def to_b4(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """4x1 blocks: per group of 4 rows, the columns any of them uses, with the 4 values each."""
    w = weight.detach().float().contiguous()
    n, k = w.shape
    groups = w.view(n // 4, 4, k)
    used = (groups != 0).any(1)  # [n/4, k]
    browptr = torch.zeros(n // 4 + 1, dtype=torch.int32)
    browptr[1:] = used.sum(1).cumsum(0).to(torch.int32)
    g, c = used.nonzero(as_tuple=True)
    return {"browptr": browptr, "bcols": c.to(torch.int32).contiguous(), "bvals": groups[g, :, c].contiguous()}  # [blocks, 4]


def to_int8_groups(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """int8 weights (symmetric, scale per output row) in groups of 4 consecutive inputs; a group is
    stored when any of its 4 weights is non-zero, as one int32 holding the 4 int8 values."""
    w = weight.detach().float()
    n, k = w.shape
    scale = (w.abs().amax(1) / 127.0).clamp(min=1e-12)
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    q = torch.where(w == 0, torch.zeros_like(q), q)
    groups = q.view(n, k // 4, 4)
    used = (groups != 0).any(-1)
    growptr = torch.zeros(n + 1, dtype=torch.int32)
    growptr[1:] = used.sum(1).cumsum(0).to(torch.int32)
    r, c = used.nonzero(as_tuple=True)
    packed = groups[r, c].contiguous().view(torch.int32).view(-1)  # 4 int8 → 1 int32 (little-endian)
    return {"growptr": growptr, "gcols": c.to(torch.int32).contiguous(), "gvals": packed.contiguous(),
            "wscale": scale.float().contiguous(), "wsum": q.to(torch.int32).sum(1).to(torch.int32).contiguous(),
            "dequant": (q.float() * scale[:, None])}


# --- the module -------------------------------------------------------------------------------------
_MEASURED: dict[tuple, tuple[str, dict[str, float]]] = {}
_EVICT = torch.empty(0)


def _evict_caches(xt: torch.Tensor) -> None:
    """Write a buffer larger than a core's L2 (then touch the activations again), so that a timed run
    finds the weights where a whole-model forward finds them: in L3, not hot from the previous run.
    Timing each matrix in a warm loop favours the formats with more bytes per weight (fp32 CSR)."""
    global _EVICT
    if _EVICT.numel() == 0:
        _EVICT = torch.empty(2 * 1024 * 1024)  # 8 MB
    _EVICT.fill_(1.0)
    float(xt.sum())


def _bucket(tokens: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(tokens, 1))))


class SparseLinear(torch.nn.Module):
    """``y = x Wᵀ + b`` for a pruned W, by the fastest measured path for the token count."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, int8: bool = False, name: str = ""):
        super().__init__()
        w = weight.detach().float().contiguous()
        self.name = name
        self.out_features, self.in_features = w.shape
        self.weight = torch.nn.Parameter(w, requires_grad=False)  # the dense path and a reference
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().float().contiguous(), requires_grad=False)
        self.density = float((w != 0).float().mean())
        self.structured_4x1 = is_4x1(w)
        # stored groups of 4 consecutive inputs (the int8 kernel's unit): tells 1x4 blocks from unstructured
        # weights of the same density, whose timings differ 3x, so the two never share a cached measurement
        self.groups_1x4 = int((w.view(w.shape[0], -1, 4) != 0).any(-1).sum()) if w.shape[1] % 4 == 0 else -1
        self.int8 = int8
        self.kernels_ok = kernels.available()
        self.paths = self._candidates()
        self.formats: dict[str, dict[str, torch.Tensor]] = {}
        if self.kernels_ok:
            self.formats["csr"] = to_csr(w)
            if self.structured_4x1:
                self.formats["b4"] = to_b4(w)
            if int8 and self.in_features % 4 == 0:
                self.formats["int8"] = to_int8_groups(w)
        if int8:
            self.qlinear = torch.ao.nn.quantized.dynamic.Linear(self.in_features, self.out_features, dtype=torch.qint8)
            self.qlinear.set_weight_bias(torch.quantize_per_channel(
                w, (w.abs().amax(1) / 127.0).clamp(min=1e-12).double(), torch.zeros(self.out_features, dtype=torch.long), 0,
                torch.qint8), self.bias)
        self.choice: dict[int, str] = {}  # token bucket → path
        self.timings: dict[int, dict[str, float]] = {}

    def _candidates(self) -> list[str]:
        paths = ["dense"]
        if self.kernels_ok:
            paths += ["csr4", "csr8"] + (["b4"] if self.structured_4x1 else [])
        if self.int8:
            paths += ["int8-dense"] + (["int8-sparse"] if self.kernels_ok and self.in_features % 4 == 0 else [])
        return paths

    # the paths, each on the transposed layout: xt [K, T] → yt [N, T]; ``gelu`` applies the exact
    # GELU to the output (inside the sparse kernels, while each row is still in registers)
    def run_t(self, path: str, xt: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        if path in ("csr4", "csr8"):
            f = self.formats["csr"]
            return kernels.load().csr_f32(xt, f["rowptr"], f["cols"], f["vals"], self.bias, 4 if path == "csr4" else 8, False, gelu)
        if path == "b4":
            f = self.formats["b4"]
            return kernels.load().b4_f32(xt, f["browptr"], f["bcols"], f["bvals"], self.bias, 4, False, gelu)
        if path == "int8-sparse":
            f, k = self.formats["int8"], kernels.load()
            xq, sx = k.quantize_tokens_t(xt)
            nv = 8 if xt.shape[1] >= 128 else 4  # 128-token tiles where there are enough tokens: fewer weight passes
            return k.csr_i8(xq, sx, f["growptr"], f["gcols"], f["gvals"], f["wscale"], f["wsum"], self.bias, nv, False, gelu)
        if path == "dense":
            y = torch.mm(self.weight, xt) if self.bias is None else torch.addmm(self.bias[:, None], self.weight, xt)
        elif path == "int8-dense":
            y = self.qlinear(xt.t()).t().contiguous()
        else:
            raise ValueError(path)
        return F.gelu(y) if gelu else y

    def measure(self, tokens: int, repeats: int = 7) -> dict[str, float]:
        """Median seconds of each candidate path on random activations of ``tokens`` rows."""
        key = (self.out_features, self.in_features, round(self.density, 3), self.structured_4x1, self.groups_1x4, self.int8,
               _bucket(tokens))
        if key in _MEASURED:
            return _MEASURED[key][1]
        xt = torch.randn(self.in_features, tokens)
        timings = {}
        for path in self.paths:
            self.run_t(path, xt)  # warm-up
            times = []
            for _ in range(repeats):
                _evict_caches(xt)
                start = time.perf_counter()
                self.run_t(path, xt)
                times.append(time.perf_counter() - start)
            timings[path] = sorted(times)[len(times) // 2]
        _MEASURED[key] = (min(timings, key=timings.get), timings)
        return timings

    def path_for(self, tokens: int) -> str:
        b = _bucket(tokens)
        if b not in self.choice:
            timings = self.measure(b)
            self.timings[b] = timings
            self.choice[b] = min(timings, key=timings.get)
        return self.choice[b]

    def forward_t(self, xt: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        """The transposed layout: [in_features, tokens] → [out_features, tokens] (then exact GELU if asked)."""
        return self.run_t(self.path_for(xt.shape[1]), xt.contiguous(), gelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A drop-in ``nn.Linear``: [..., in_features] → [..., out_features]."""
        lead = x.shape[:-1]
        xt = x.reshape(-1, self.in_features).t().contiguous()
        return self.forward_t(xt).t().reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, density={self.density:.3f}, 4x1={self.structured_4x1}, choice={self.choice}"


@dataclass
class EngineReport:
    layers: dict[str, dict] = field(default_factory=dict)
    bound: bool = True  # False: every matrix measured fastest dense, so the model was left as it was

    def add(self, name: str, lin: SparseLinear) -> None:
        """Record what was measured and chosen for one layer."""
        self.layers[name] = {"density": lin.density, "structured_4x1": lin.structured_4x1, "choice": dict(lin.choice),
                             "timings": {b: dict(v) for b, v in lin.timings.items()}}

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for info in self.layers.values():
            for path in info["choice"].values():
                out[path] = out.get(path, 0) + 1
        return out


@torch.no_grad()
def sparsify(model: torch.nn.Module, int8: bool = False, tokens: tuple[int, ...] = (128, 1024),
             targets: TargetConfig | None = None) -> EngineReport:
    """Replace the targeted linear layers of ``model`` (in place) by :class:`SparseLinear` and
    measure, for each expected token count, which path each one runs. Returns what was chosen."""
    report = EngineReport()
    names = {t.name.rsplit(".", 1)[0] for t in model_targets(model, targets or TargetConfig())}
    modules = dict(model.named_modules())
    for name in sorted(names):
        linear = modules[name]
        if not isinstance(linear, torch.nn.Linear):
            continue
        parent_name, _, attr = name.rpartition(".")
        sparse = SparseLinear(linear.weight, linear.bias, int8=int8, name=name)
        for t in tokens:
            sparse.path_for(t)
        setattr(modules[parent_name] if parent_name else model, attr, sparse)
        report.add(name, sparse)
    model.eval()
    return report
