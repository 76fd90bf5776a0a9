"""The pruner: criterion × schedule × pattern × scope.

* **criterion** (:mod:`bertprune.criteria`) — ranks the weights; pure functions, its accumulated
  statistics kept here and saved in :meth:`Pruner.state_dict`;
* **schedule** (:mod:`bertprune.schedules`) — the target sparsity as a pure function of the step:
  dense warm-up until ``schedule.start``, updates every Δt, the mask fixed from ``schedule.end``;
* **pattern** (:mod:`bertprune.methods.granularity`) — unstructured, RxC blocks or N:M;
* **scope** — per matrix (``local``) or over all targeted matrices (``global``, with a per-matrix cap).

One class serves every combination; one-shot and gradual magnitude pruning are two configurations of
it (:func:`OneShotMagnitude`, :func:`GradualMagnitude`). Pruned weights never come back: their
scores are −inf at every later update.
"""

from __future__ import annotations

import math

import torch

from ..config import ScheduleConfig, TargetConfig
from ..criteria import get_criterion, magnitude_score
from ..schedules import sparsity_at, steps_from_fraction, update_steps
from .base import PruningMethod
from .granularity import parse_granularity
from .selection import masked_scores, select_masks


def schedule_steps(schedule: ScheduleConfig, total_steps: int, steps_per_epoch: int | None = None) -> tuple[int, int, int]:
    """(start, end, every) in optimizer steps; ``*_epoch`` fields, when set, win over fractions."""
    def at(fraction: float, epoch: float | None) -> int:
        if epoch is not None and steps_per_epoch:
            return min(total_steps, int(math.floor(epoch * steps_per_epoch + 1e-9)))
        return steps_from_fraction(fraction, total_steps)

    start = at(schedule.start, schedule.start_epoch)
    end = max(start + 1, at(schedule.end, schedule.end_epoch))
    every = schedule.every
    if schedule.every_epochs is not None and steps_per_epoch:
        every = max(1, int(round(schedule.every_epochs * steps_per_epoch)))
    return start, end, every


class Pruner(PruningMethod):
    """Prune to ``sparsity`` along ``schedule`` by ``criterion``, in ``granularity`` units, ``scope``-wide."""

    def __init__(self, sparsity: float, criterion: str = "magnitude", scope: str = "local",
                 schedule: ScheduleConfig | None = None, targets: TargetConfig | None = None,
                 granularity: str = "unstructured", max_layer_sparsity: float = 1.0, name: str = "gradual"):
        super().__init__(targets)
        self.sparsity, self.scope, self.name = sparsity, scope, name
        self.criterion = get_criterion(criterion)
        self.schedule = schedule or ScheduleConfig()
        self.granularity = parse_granularity(granularity)
        self.max_layer_sparsity = max_layer_sparsity
        self.start_step = self.end_step = 0
        self.every = self.schedule.every
        self.current = 0.0  # sparsity the masks were last computed for
        self.stats: dict[str, dict[str, torch.Tensor]] = {}  # criterion state by parameter name
        self.seen = 0  # gradients accumulated since the start

    def prepare(self, model, total_steps, steps_per_epoch=None):
        super().prepare(model, total_steps)
        self.check_granularity(self.granularity, self.sparsity)
        self.start_step, self.end_step, self.every = schedule_steps(self.schedule, total_steps, steps_per_epoch)
        if self.end_step > max(total_steps, 1):
            from ..errors import BertpruneError

            raise BertpruneError(f"the pruning schedule ends at step {self.end_step} but the run has {total_steps} steps; "
                                 f"move prune.schedule.start/end (or *_epoch) inside training")
        self.stats = {n: self.criterion.init(w) for n, w in self.weights().items()}
        self._update(0)

    # --- schedule -----------------------------------------------------------------------------
    def target_sparsity(self, step: int) -> float:
        return sparsity_at(self.schedule.kind, step, self.sparsity, self.start_step, self.end_step, self.every,
                           self.schedule.initial_sparsity)

    def reached_target(self, step: int) -> bool:
        return step >= self.end_step

    def prune_steps(self) -> list[int]:
        return [t for t in update_steps(self.start_step, self.end_step, self.every) if t > 0]

    # --- hooks --------------------------------------------------------------------------------
    @torch.no_grad()
    def before_optimizer_step(self) -> None:
        """Accumulate the criterion's statistics from this step's gradients (until the mask is final)."""
        if not self.criterion.needs_grad or self.current >= self.sparsity:
            return
        for name, w in self.weights().items():
            grad = self.masks._params[name].grad
            if grad is not None:
                self.stats[name] = self.criterion.accumulate(w, grad, self.stats[name])
        self.seen += 1

    def after_step(self, step, optimizer):
        self._update(step)
        super().after_step(step, optimizer)

    def _update(self, step: int) -> None:
        target = self.target_sparsity(step)
        if target <= self.current:
            return
        weights = self.weights()
        if self.criterion.needs_grad and self.seen == 0:  # nothing accumulated yet (a jump at step 0)
            scores = {n: magnitude_score(w) for n, w in weights.items()}
        else:
            if self.criterion.derive is not None:  # one matrix at a time: each accumulated state is freed as it goes
                for n in self.stats:
                    self.stats[n] = self.criterion.derive(self.stats[n])
            scores = {n: self.criterion.score(w, self.stats[n]) for n, w in weights.items()}
        compensate = self.criterion.compensate if self.seen > 0 else None
        before = {n: m.clone() for n, m in self.masks.masks.items()} if compensate else {}
        self.set_masks(select_masks(masked_scores(scores, self.masks.masks), target, self.scope, self.granularity,
                                    self.max_layer_sparsity))
        if compensate:  # the survivors move for the newly pruned (OBS), from the masks every rank shares
            with torch.no_grad():
                for n, w in weights.items():
                    self.masks._params[n].add_(compensate(w, self.stats[n], before[n] & ~self.masks.masks[n]))
        self.current = target
        if step == 0:
            self.masks.apply()
        if self.criterion.reset_after_update:
            self.stats = {n: self.criterion.init(w) for n, w in weights.items()}

    # --- reporting and state ------------------------------------------------------------------
    def summary(self):
        return {**super().summary(), "criterion": self.criterion.name, "schedule": self.schedule.kind,
                "granularity": str(self.granularity), "scope": self.scope,
                "start_step": self.start_step, "end_step": self.end_step, "every": self.every}

    def state_dict(self):
        return {**super().state_dict(), "current": self.current, "seen": self.seen, "stats": self.stats}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.current = float(state["current"])
        self.seen = int(state.get("seen", 0))
        if "stats" in state:
            self.stats = {n: {k: v.to(self.masks._params[n].device) for k, v in s.items()} for n, s in state["stats"].items()}


def OneShotMagnitude(sparsity: float, scope: str = "local", targets: TargetConfig | None = None,
                     granularity: str = "unstructured", max_layer_sparsity: float = 1.0) -> Pruner:
    """Prune to the target once, before training, by magnitude; the mask then stays fixed."""
    schedule = ScheduleConfig(kind="oneshot", start=0.0, end=0.0)
    return Pruner(sparsity, "magnitude", scope, schedule, targets, granularity, max_layer_sparsity, name="oneshot")


def GradualMagnitude(sparsity: float, scope: str = "local", schedule: ScheduleConfig | None = None,
                     targets: TargetConfig | None = None, granularity: str = "unstructured",
                     max_layer_sparsity: float = 1.0) -> Pruner:
    """Gradual magnitude pruning (Zhu & Gupta 2017, the "NIP" baseline): the cubic schedule by default;
    the masks are recomputed every Δt steps from the magnitudes of the already-masked weights."""
    return Pruner(sparsity, "magnitude", scope, schedule, targets, granularity, max_layer_sparsity, name="gmp")
