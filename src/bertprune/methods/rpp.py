"""Reweighted proximal pruning (RPP).

Guo, Liu, Wang, Lin, Xu (2019), "Reweighted Proximal Pruning for Large-Scale Language
Representation". Training minimises the loss plus a reweighted L1 penalty γ·Σᵢ αᵢ|wᵢ| over the
targeted matrices by proximal gradient: each optimizer step is an ordinary AdamW step on the loss
(decoupled weight decay), followed by the closed-form proximal step of the penalty,

    wᵢ ← sign(wᵢ) · max(|wᵢ| − η_t·γ·αᵢ, 0),                       (prox_reweighted_l1)

with η_t the step's learning rate. Every T steps the weights are re-weighted, αᵢ = 1/(|wᵢ| + ε)
(α = 1 before the first reweighting), so small weights are pushed harder and large ones are spared:
the penalty approaches an L0 count. Exact zeros define the mask.

Two modes:

* fixed γ (``prune.sparsity = 0``): the proximal step runs from ``schedule.start`` to the end;
  the sparsity is whatever the penalty produces.
* target sparsity s* (``prune.sparsity > 0``): between ``schedule.start`` and ``schedule.end`` γ
  is steered multiplicatively (``rpp.gamma_rate`` per step) so that the fraction of zeros follows
  the same cubic schedule as gradual magnitude pruning, per matrix (``scope: local``) or in total
  (``global``). At ``schedule.end`` a hard magnitude cut sets the mask to exactly s* (zeros go
  first); the mask then stays fixed while training recovers, as in gradual magnitude pruning. The
  summary separates the zeros the proximal steps made from those the cut added.
"""

from __future__ import annotations

import torch

from ..config import RppConfig, ScheduleConfig, TargetConfig
from ..schedules import sparsity_at
from .base import PruningMethod
from .granularity import parse_granularity
from .magnitude import magnitude_masks
from .pruner import schedule_steps


def prox_reweighted_l1(w: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """argmin_x ½(x − w)² + threshold·|x|, elementwise: soft-thresholding (threshold = η·γ·α ≥ 0)."""
    return torch.sign(w) * torch.clamp(w.abs() - threshold, min=0.0)


def reweight(w: torch.Tensor, eps: float) -> torch.Tensor:
    """The reweighting of RPP: α = 1 / (|w| + ε)."""
    return 1.0 / (w.abs() + eps)


class ReweightedProximal(PruningMethod):
    name = "rpp"

    def __init__(
        self,
        sparsity: float = 0.0,
        scope: str = "local",
        rpp: RppConfig | None = None,
        schedule: ScheduleConfig | None = None,
        targets: TargetConfig | None = None,
        granularity: str = "unstructured",
        max_layer_sparsity: float = 1.0,
    ):
        super().__init__(targets)
        self.sparsity, self.scope = sparsity, scope
        self.max_layer_sparsity = max_layer_sparsity  # global scope: the cut leaves no matrix sparser than this
        self.granularity = parse_granularity(granularity)  # of the final cut; proximal zeros are unstructured
        self.rpp = rpp or RppConfig()
        self.schedule = schedule or ScheduleConfig()
        self.alpha: dict[str, torch.Tensor] = {}
        self.gamma: dict[str, float] = {}
        self.start_step = self.end_step = 0
        self.cut_step: int | None = None  # step of the hard cut (target mode), once done
        self.prox_sparsity_at_cut: float | None = None

    @property
    def target_mode(self) -> bool:
        return self.sparsity > 0

    def prepare(self, model, total_steps, steps_per_epoch=None):
        super().prepare(model, total_steps)
        if self.target_mode:
            self.check_granularity(self.granularity, self.sparsity)
        start, end, _ = schedule_steps(self.schedule, total_steps, steps_per_epoch)  # epoch fields win, as for Pruner
        self.start_step = start
        self.end_step = max(self.start_step + 1, end if self.target_mode else total_steps)
        if self.target_mode and self.end_step > max(total_steps, 1):
            from ..errors import BertpruneError

            raise BertpruneError(f"the pruning schedule ends at step {self.end_step} but the run has {total_steps} steps; "
                                 f"move prune.schedule.start/end (or *_epoch) inside training")
        self.alpha = {t.name: torch.ones_like(self.masks._params[t.name]) for t in self.targets}
        self.gamma = {t.name: self.rpp.gamma for t in self.targets}

    # --- schedule -----------------------------------------------------------------------------
    def target_sparsity(self, step: int) -> float:
        if not self.target_mode:
            return 0.0
        # γ is steered every step along the schedule's shape (cubic, exponential, linear...)
        return sparsity_at(self.schedule.kind, step, self.sparsity, self.start_step, self.end_step, 1,
                           self.schedule.initial_sparsity)

    def reached_target(self, step: int) -> bool:
        return step >= self.end_step

    # --- the step -----------------------------------------------------------------------------
    @torch.no_grad()
    def after_step(self, step, optimizer):
        if self.cut_step is not None:  # after the cut: a fixed mask
            return super().after_step(step, optimizer)
        if step < self.start_step:
            return
        lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
        weights = self.weights()
        if step % self.rpp.reweight_every == 0:
            self.alpha = {n: reweight(w, self.rpp.eps) for n, w in weights.items()}
        for name, w in weights.items():
            threshold = (lr_of[id(self.masks._params[name])] * self.gamma[name]) * self.alpha[name]
            w.copy_(prox_reweighted_l1(w, threshold))
        self.masks.update({n: w != 0 for n, w in weights.items()})  # exact zeros define the mask
        if not self.target_mode:
            return
        if step >= self.end_step:
            self._cut(optimizer)
            self.cut_step = step
        else:
            self._steer_gamma(step, weights)

    def _steer_gamma(self, step: int, weights: dict[str, torch.Tensor]) -> None:
        desired = self.target_sparsity(step)
        rate = self.rpp.gamma_rate
        if self.scope == "global":
            zeros = sum(int((w == 0).sum()) for w in weights.values())
            total = sum(w.numel() for w in weights.values())
            factor = rate if zeros / total < desired else 1.0 / rate
            self.gamma = {n: g * factor for n, g in self.gamma.items()}
        else:
            for n, w in weights.items():
                self.gamma[n] *= rate if float((w == 0).float().mean()) < desired else 1.0 / rate

    def _cut(self, optimizer) -> None:
        """Hard magnitude cut to exactly the target sparsity; zeros are pruned first."""
        weights = self.weights()
        self.prox_sparsity_at_cut = sum(int((w == 0).sum()) for w in weights.values()) / sum(
            w.numel() for w in weights.values()
        )
        self.set_masks(magnitude_masks({n: w.abs() for n, w in weights.items()}, self.sparsity, self.scope, self.granularity,
                                       self.max_layer_sparsity))
        self.masks.apply(optimizer)

    # --- reporting and state ------------------------------------------------------------------
    def log_metrics(self):
        out = super().log_metrics()
        if self.gamma:
            gammas = list(self.gamma.values())
            out["gamma_mean"] = sum(gammas) / len(gammas)
            out["phase"] = "fixed-mask" if self.cut_step is not None else "proximal"
        return out

    def summary(self):
        out = {
            "sparsity": self.masks.sparsity(),
            "mode": "target" if self.target_mode else "fixed-gamma",
            "gamma": self.rpp.gamma, "eps": self.rpp.eps, "reweight_every": self.rpp.reweight_every,
            "gamma_final_mean": sum(self.gamma.values()) / len(self.gamma) if self.gamma else None,
        }
        if self.prox_sparsity_at_cut is not None:
            out.update({
                "cut_step": self.cut_step,
                "sparsity_from_proximal_steps": self.prox_sparsity_at_cut,
                "sparsity_added_by_cut": max(0.0, self.sparsity - self.prox_sparsity_at_cut),
                # when the proximal steps overshoot s*, the cut gives this share of zeros back to training
                # so that exactly s* stay zero; which ones is the magnitude sort's tie order (all are |w| = 0)
                "proximal_zeros_reopened_by_cut": max(0.0, self.prox_sparsity_at_cut - self.sparsity),
            })
        return out

    def state_dict(self):
        return {**super().state_dict(), "alpha": dict(self.alpha), "gamma": dict(self.gamma),
                "cut_step": self.cut_step, "prox_sparsity_at_cut": self.prox_sparsity_at_cut}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.alpha = {n: a.to(self.masks._params[n].device) for n, a in state["alpha"].items()}
        self.gamma = {n: float(g) for n, g in state["gamma"].items()}
        self.cut_step = state["cut_step"]
        self.prox_sparsity_at_cut = state["prox_sparsity_at_cut"]
