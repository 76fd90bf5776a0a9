"""Pruning criteria: what ranks the weights of a matrix. Pure functions, one registry.

A criterion is three pure functions over one weight matrix ``w`` ([out, in]):

* ``init(w) -> state``: what it accumulates, a dict of tensors of ``w``'s shape (empty for magnitude);
* ``accumulate(w, grad, state) -> state``: called after every backward pass that ends in an
  optimizer step, before the step (``grad`` = ∂L/∂w of that step, synced across processes and clipped);
* ``score(w, state) -> scores``: higher = more important; the pruner removes the lowest.

A :class:`~bertprune.methods.pruner.Pruner` keeps the state (and saves it in ``state_dict``, so a
resumed run continues bit-exactly); the functions never mutate their inputs. Adding a criterion is
one :class:`Criterion` and one line in :data:`CRITERIA`; the training loop does not change.

The criteria (``prune.criterion``):

* ``magnitude`` — |w| (Han et al. 2015; the "NIP"/gmp baseline).
* ``movement`` — S = −Σ_t w_t · g_t over training (Sanh, Wolf, Rush 2020, "Movement Pruning",
  hard movement): the first-order change of the loss when a weight moves away from zero; weights
  moving towards zero score low, whatever their size.
* ``soft_movement`` — the same accumulated movement scores S. In the paper soft movement keeps
  σ(S) > τ with an L1 penalty on σ(S) that decides the sparsity; bertprune keeps the exact target of
  the schedule instead (the top-k of S), so it differs from ``movement`` only by the scope it is
  meant for: a single threshold over all matrices (use it with ``prune.scope=global``, as the paper's τ).
* ``snip_momentum`` — S ← β·S + |w · g| with β = 0.9 (Intel Neural Compressor's default criterion):
  a running first-order Taylor estimate of the loss change from removing each weight.
* ``fisher`` — oBERT's diagonal second-order saliency (Kurtic et al. 2022, "The Optimal BERT
  Surgeon", eq. 4 with a diagonal empirical Fisher): ρ = w² / (2 [F⁻¹]_ii) = w² · (λ + mean g²) / 2,
  F = λI + (1/m) Σ g gᵀ over the m gradients since the last mask update (λ = 1e-7, oBERT's dampening).
  Before any gradient is seen it ranks by magnitude (ρ ∝ w²).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Criterion:
    name: str
    init: Callable[[torch.Tensor], State]
    accumulate: Callable[[torch.Tensor, torch.Tensor, State], State]
    score: Callable[[torch.Tensor, State], torch.Tensor]
    #: start the accumulation afresh after each mask update (statistics of the current weights only)
    reset_after_update: bool = False

    @property
    def needs_grad(self) -> bool:
        return self.accumulate is not _no_accumulation


# --- the pure functions -------------------------------------------------------------------------
def _no_state(w: torch.Tensor) -> State:
    return {}


def _no_accumulation(w: torch.Tensor, grad: torch.Tensor, state: State) -> State:
    return state


def magnitude_score(w: torch.Tensor, state: State | None = None) -> torch.Tensor:
    """|w|."""
    return w.detach().abs().float()


def _zeros(w: torch.Tensor) -> State:
    return {"s": torch.zeros_like(w, dtype=torch.float32)}


def movement_accumulate(w: torch.Tensor, grad: torch.Tensor, state: State) -> State:
    """S ← S − w · g (Sanh et al. 2020: the straight-through gradient of the scores, summed)."""
    return {"s": state["s"] - w.detach().float() * grad.detach().float()}


def accumulated_score(w: torch.Tensor, state: State) -> torch.Tensor:
    return state["s"].clone()


def snip_momentum_accumulate(w: torch.Tensor, grad: torch.Tensor, state: State, beta: float = 0.9) -> State:
    """S ← β·S + |w · g| (Intel Neural Compressor's snip-momentum, β = 0.9)."""
    return {"s": beta * state["s"] + (w.detach().float() * grad.detach().float()).abs()}


def fisher_init(w: torch.Tensor) -> State:
    return {"sq": torch.zeros_like(w, dtype=torch.float32), "n": torch.zeros((), dtype=torch.float32)}


def fisher_accumulate(w: torch.Tensor, grad: torch.Tensor, state: State) -> State:
    """Running sums for the empirical Fisher diagonal: Σ g² and the number of gradients m."""
    return {"sq": state["sq"] + grad.detach().float().square(), "n": state["n"] + 1}


def fisher_score(w: torch.Tensor, state: State, damp: float = 1e-7) -> torch.Tensor:
    """oBERT's diagonal saliency ρ = w² (λ + Σg²/m) / 2 (ρ = w²/(2[F⁻¹]_ii) for a diagonal F)."""
    mean_sq = state["sq"] / state["n"].clamp(min=1)
    return w.detach().float().square() * (damp + mean_sq) / 2


CRITERIA: dict[str, Criterion] = {
    "magnitude": Criterion("magnitude", _no_state, _no_accumulation, magnitude_score),
    "movement": Criterion("movement", _zeros, movement_accumulate, accumulated_score),
    "soft_movement": Criterion("soft_movement", _zeros, movement_accumulate, accumulated_score),
    "snip_momentum": Criterion("snip_momentum", _zeros, snip_momentum_accumulate, accumulated_score),
    "fisher": Criterion("fisher", fisher_init, fisher_accumulate, fisher_score, reset_after_update=True),
}


def get_criterion(name: str) -> Criterion:
    if name not in CRITERIA:
        raise ValueError(f"unknown pruning criterion {name!r}; choose one of {', '.join(CRITERIA)}")
    return CRITERIA[name]
