"""Knowledge-aware sparse pruning while distilling (SparseBERT).

Xu, Hu, Xu, Yang, Zhang, Li (2021), "Rethinking Network Pruning — under the Pre-train and Fine-tune
Paradigm", NAACL. A *pre-trained* student is pruned while it learns from a *fine-tuned* dense
teacher, so that pruning keeps both the general knowledge of pre-training (the student's starting
weights) and the task knowledge of fine-tuning (the teacher's outputs). The loss replaces the task
loss with three terms, each weighted and switchable (TinyBERT's, Jiao et al. 2020):

* ``L_attn``  = mean over mapped layers of the MSE(student scores, teacher scores), with the
  attention *scores* QKᵀ/√d before the softmax, over real (non-padded) query/key pairs only;
* ``L_hidden`` = mean over mapped layers of the MSE(student hidden · W, teacher hidden) over real
  tokens, embedding output included; W is a learned projection when the widths differ (else the identity);
* ``L_last``  = the same MSE on the last hidden state only (Intel Neural Compressor's loss);
* ``L_pred``  = τ² · KL(teacher ‖ student) of the logits at temperature τ (Hinton et al.'s scaling,
  so the gradient's size does not shrink with τ; the soft cross-entropy up to a constant, 0 at a
  perfect match); MSE to the teacher's score for regression (STS-B); start and end logits averaged
  for extractive QA;
* ``L_task``  = the ordinary loss on the gold labels (``distill.hardness`` h sets pred = h, task = 1 − h).

Means, not sums, over layers and over real tokens: the terms keep their size whatever the depth
and the padding, so the weights say what matters (summed, the attention term of MiniLM-L6 on MRPC was
~27x the prediction term).

Student layer i (1..L_s) maps to teacher layer round(i · L_t / L_s), uniformly; hidden state 0 (the
embeddings) to 0. When head counts differ, the head-averaged scores are compared. Pruning is done
by an inner method (gradual magnitude by default), called at the same hooks; the teacher runs under
``torch.no_grad`` and in eval mode.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..config import DistillConfig
from ..errors import BertpruneError
from ..targets import classify, role_patterns
from .base import PruningMethod


# --- pure functions ------------------------------------------------------------------------------
def layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher layer (1-based) for each student layer 1..L_s, spread uniformly."""
    if student_layers > teacher_layers:
        raise BertpruneError(f"the student has more layers ({student_layers}) than the teacher ({teacher_layers})")
    return [round(i * teacher_layers / student_layers) for i in range(1, student_layers + 1)]


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The soft-label loss, as KL(p_t ‖ p_s) with p = softmax(logits/τ), averaged over the batch.

    It equals TinyBERT's soft cross-entropy −Σ p_t · log p_s (no τ² factor) minus the teacher's
    entropy, a constant for the student: the same gradients, and 0 exactly when the student's
    distribution matches the teacher's.
    """
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean()


def attention_score_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over layer pairs of the MSE of [batch, heads, T, T] scores over real query/key pairs."""
    total = student[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student, teacher):
        if s.shape[1] != t.shape[1]:  # different head counts: compare the head averages
            s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
        sq = (s.float() - t.float()).square()
        if attention_mask is not None:
            m = attention_mask.float()
            keep = m[:, None, :, None] * m[:, None, None, :]  # [batch, 1, T, T]
            total = total + (sq * keep).sum() / (keep.sum() * sq.shape[1]).clamp(min=1)
        else:
            total = total + sq.mean()
    return total / max(1, len(student))


def attention_kl_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], attention_mask: torch.Tensor | None) -> torch.Tensor:
    """MiniLM's self-attention distribution transfer: mean over layer pairs of KL(teacher ‖ student) of the
    attention distributions softmax(QKᵀ/√d) over the keys, averaged over heads and real query rows; padded
    keys get no probability and padded queries no weight. Different head counts: head-averaged distributions."""
    total = student[0].new_zeros((), dtype=torch.float32)
    keys = attention_mask[:, None, None, :].bool() if attention_mask is not None else None  # [batch, 1, 1, T]
    for s, t in zip(student, teacher):
        s, t = s.float(), t.float()
        if keys is not None:  # the lowest float, not -inf: logsumexp over heads of all -inf has a NaN gradient
            low = torch.finfo(s.dtype).min
            s, t = s.masked_fill(~keys, low), t.masked_fill(~keys, low)
        log_s, log_t = F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1)
        if s.shape[1] != t.shape[1]:  # mix the heads' distributions, then compare
            log_s = torch.logsumexp(log_s, dim=1, keepdim=True) - math.log(log_s.shape[1])
            log_t = torch.logsumexp(log_t, dim=1, keepdim=True) - math.log(log_t.shape[1])
        p_t = log_t.exp()
        row = torch.where(p_t > 0, p_t * (log_t - log_s), torch.zeros_like(p_t)).sum(-1)  # [batch, heads, T]
        if attention_mask is not None:
            q = attention_mask.float()[:, None, :]  # [batch, 1, T]
            total = total + (row * q).sum() / (q.sum() * row.shape[1]).clamp(min=1)
        else:
            total = total + row.mean()
    return total / max(1, len(student))


def sentence_embeddings(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """([CLS] state, mean of the real tokens' states) of [batch, T, width] hidden states: the two usual
    sentence embeddings (all-MiniLM-L6-v2 is trained for the mean-pooled one)."""
    hidden = hidden.float()
    if attention_mask is None:
        return hidden[:, 0], hidden.mean(1)
    m = attention_mask.float()[:, :, None]  # [batch, T, 1]
    return hidden[:, 0], (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def embedding_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor | None,
                   projection: torch.nn.Module | None = None) -> torch.Tensor:
    """1 − cosine between the student's and the teacher's sentence embeddings, averaged over the batch and
    over the two poolings ([CLS] and mean of real tokens) of the last hidden states [batch, T, width]."""
    s_cls, s_mean = sentence_embeddings(projection(student) if projection is not None else student, attention_mask)
    t_cls, t_mean = sentence_embeddings(teacher, attention_mask)
    return 0.5 * ((1 - F.cosine_similarity(s_cls, t_cls, dim=-1)).mean()
                  + (1 - F.cosine_similarity(s_mean, t_mean, dim=-1)).mean())


def pairwise_cosines(x: torch.Tensor) -> torch.Tensor:
    """x: [n, width] → the cosines of the n·(n−1) ordered pairs of distinct rows, [n·(n−1)]."""
    x = F.normalize(x.float(), dim=-1)
    return (x @ x.T)[~torch.eye(len(x), dtype=torch.bool, device=x.device)]


def relation_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """MSE between the student's and the teacher's [batch, batch] cosine-similarity matrices of sentence
    embeddings, off the diagonal, averaged over the two poolings ([CLS], mean of real tokens) of the last
    hidden states [batch, T, width]. 1 − cosine to the teacher stays small when every sentence maps to one
    vector near the teacher's mean; this term does not. Cosines need no projection: widths may differ."""
    if student.shape[0] < 2:  # no pair to compare
        return student.new_zeros((), dtype=torch.float32)
    total = student.new_zeros((), dtype=torch.float32)
    for s, t in zip(sentence_embeddings(student, attention_mask), sentence_embeddings(teacher, attention_mask)):
        total = total + (pairwise_cosines(s) - pairwise_cosines(t)).square().mean()
    return total / 2


def hidden_state_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], projection: torch.nn.Module | None,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over layer pairs of the MSE of [batch, T, width] hidden states over real tokens."""
    total = student[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student, teacher):
        sq = ((projection(s) if projection is not None else s).float() - t.float()).square()
        if attention_mask is not None:
            m = attention_mask.float()[:, :, None]  # [batch, T, 1]
            total = total + (sq * m).sum() / (m.sum() * sq.shape[-1]).clamp(min=1)
        else:
            total = total + sq.mean()
    return total / max(1, len(student))


def token_cosines(student: list[torch.Tensor], teacher: list[torch.Tensor], attention_mask: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, int]:
    """(sum over real tokens of cos(student token state, teacher token state) per layer pair [layers], number
    of real tokens): how faithful each layer's token states are, where the MSE mixes direction and scale.
    A metric, not a loss: the sums add across batches and processes, the caller divides."""
    sums = []
    for s, t in zip(student, teacher, strict=True):  # layer i with layer i: same depth, or the caller maps them
        cos = F.cosine_similarity(s.float(), t.float(), dim=-1)  # [batch, T]
        sums.append((cos * attention_mask.float()).sum() if attention_mask is not None else cos.sum())
    tokens = int(attention_mask.sum()) if attention_mask is not None else student[0].shape[0] * student[0].shape[1]
    return torch.stack(sums), tokens


def prediction_loss(student_out, teacher_out, temperature: float, regression: bool) -> torch.Tensor:
    t2 = temperature**2
    if getattr(student_out, "start_logits", None) is not None:  # extractive QA
        return 0.5 * t2 * (soft_cross_entropy(student_out.start_logits, teacher_out.start_logits, temperature)
                           + soft_cross_entropy(student_out.end_logits, teacher_out.end_logits, temperature))
    if regression:
        return F.mse_loss(student_out.logits.float(), teacher_out.logits.float())
    return t2 * soft_cross_entropy(student_out.logits, teacher_out.logits, temperature)


# --- capturing attention scores ------------------------------------------------------------------
class AttentionScores:
    """Forward hooks on a model's query and key projections; :meth:`take` returns QKᵀ/√d per layer.

    Scores are computed from the captured projections, so they do not depend on the attention
    implementation (eager, SDPA, flash) and exist even where the model never materialises them.
    """

    def __init__(self, model: torch.nn.Module, num_heads: int):
        self.num_heads = num_heads
        self.captured: dict[tuple[int, str], torch.Tensor] = {}
        self.handles = []
        patterns = role_patterns(getattr(model.config, "model_type", None))
        modules = dict(model.named_modules())
        for name, _ in model.named_parameters():
            hit = classify(name, {r: patterns[r] for r in ("query", "key") if r in patterns})
            if hit is None:
                continue
            role, layer = hit
            module = modules[name.rsplit(".", 1)[0]]
            self.handles.append(module.register_forward_hook(self._hook(layer, role)))
        if not self.handles:
            raise BertpruneError(f"cannot find query/key projections in {type(model).__name__} for the attention loss; "
                                 f"set distill.attn_weight=0")

    def _hook(self, layer: int, role: str) -> Callable:
        def hook(module, inputs, output):
            self.captured[(layer, role)] = output

        return hook

    def take(self) -> list[torch.Tensor]:
        """Scores of the last forward, layer by layer: [batch, heads, T, T]; clears the capture."""
        layers = sorted({layer for layer, _ in self.captured})
        out = []
        for layer in layers:
            q, k = self.captured[(layer, "query")], self.captured[(layer, "key")]
            b, t, width = q.shape
            d = width // self.num_heads
            q = q.view(b, t, self.num_heads, d).transpose(1, 2)
            k = k.view(b, t, self.num_heads, d).transpose(1, 2)
            out.append(q @ k.transpose(-1, -2) / math.sqrt(d))
        self.captured.clear()
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def _heads(config) -> int:
    return getattr(config, "num_attention_heads", None) or getattr(config, "n_heads")


def _layers(config) -> int:
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers")


def _width(config) -> int:
    return getattr(config, "hidden_size", None) or getattr(config, "dim")


# --- the method ----------------------------------------------------------------------------------
class Distillation(PruningMethod):
    """Replaces the task loss by the distillation loss; an inner method prunes."""

    name = "distill"

    def __init__(self, inner: PruningMethod, load_teacher: Callable[[], torch.nn.Module], cfg: DistillConfig | None = None,
                 regression: bool = False):
        super().__init__(inner.targets_cfg)
        self.inner = inner
        self.load_teacher = load_teacher
        self.cfg = cfg or DistillConfig()
        self.regression = regression
        self.teacher: torch.nn.Module | None = None
        self.projection: torch.nn.Linear | None = None
        self.last: dict[str, float] = {}

    # masks and targets are the inner method's
    @property
    def masks(self):
        return self.inner.masks

    @masks.setter
    def masks(self, value):  # the base __init__ assigns; the inner method owns them
        pass

    @property
    def targets(self):
        return self.inner.targets

    @targets.setter
    def targets(self, value):
        pass

    def prepare(self, model, total_steps, steps_per_epoch=None):
        self.total_steps = total_steps
        self.inner.prepare(model, total_steps, steps_per_epoch)
        teacher = self.load_teacher()
        teacher.eval().requires_grad_(False)
        s_cfg, t_cfg = model.config, teacher.config
        if getattr(s_cfg, "num_labels", None) != getattr(t_cfg, "num_labels", None) and not hasattr(model, "qa_outputs"):
            raise BertpruneError(
                f"the teacher predicts {t_cfg.num_labels} labels but the task has {s_cfg.num_labels}: "
                f"the teacher must be fine-tuned on the same task"
            )
        if getattr(s_cfg, "vocab_size", None) != getattr(t_cfg, "vocab_size", None):
            # the teacher reads the student's token ids: another vocabulary reads them as other words
            raise BertpruneError(
                f"the teacher's vocabulary has {t_cfg.vocab_size} tokens, the student's {s_cfg.vocab_size}: both read the same "
                f"token ids, so the teacher must share the student's tokenizer (distill a model of the same family)"
            )
        device = next(model.parameters()).device  # the teacher and the projection live beside the student
        self.teacher = teacher.to(device)
        self.layer_pairs = list(zip(range(1, _layers(s_cfg) + 1), layer_map(_layers(s_cfg), _layers(t_cfg))))
        if _width(s_cfg) != _width(t_cfg) and self._needs_hidden():
            torch.manual_seed(0)
            self.projection = torch.nn.Linear(_width(s_cfg), _width(t_cfg)).to(device)
        self.student_scores = AttentionScores(model, _heads(s_cfg)) if self.cfg.attn_weight > 0 else None
        self.teacher_scores = AttentionScores(teacher, _heads(t_cfg)) if self.cfg.attn_weight > 0 else None

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.projection.parameters()) if self.projection is not None else []

    def _needs_hidden(self) -> bool:
        c = self.cfg
        return c.hidden_weight > 0 or c.last_hidden_weight > 0 or c.embedding_weight > 0 or c.relation_weight > 0

    def forward_kwargs(self) -> dict[str, Any]:
        return {"output_hidden_states": True} if self._needs_hidden() else {}

    def loss(self, task_loss, outputs, batch):
        c = self.cfg
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "start_positions", "end_positions")}
        hidden = self._needs_hidden()
        with torch.no_grad():
            teacher_out = self.teacher(**inputs, output_hidden_states=hidden)
        mask = batch.get("attention_mask")
        terms = {}
        if c.attn_weight > 0:
            s_all, t_all = self.student_scores.take(), self.teacher_scores.take()
            s_sel = [s_all[i - 1] for i, _ in self.layer_pairs]
            t_sel = [t_all[j - 1] for _, j in self.layer_pairs]
            attn_loss = attention_kl_loss if c.attn_loss == "kl" else attention_score_loss
            terms["attn"] = c.attn_weight * attn_loss(s_sel, t_sel, mask)
        if c.hidden_weight > 0:
            pairs = [(0, 0)] + self.layer_pairs
            terms["hidden"] = c.hidden_weight * hidden_state_loss(
                [outputs.hidden_states[i] for i, _ in pairs], [teacher_out.hidden_states[j] for _, j in pairs], self.projection,
                mask)
        if c.last_hidden_weight > 0:
            terms["last_hidden"] = c.last_hidden_weight * hidden_state_loss(
                [outputs.hidden_states[-1]], [teacher_out.hidden_states[-1]], self.projection, mask)
        if c.embedding_weight > 0:
            terms["embedding"] = c.embedding_weight * embedding_loss(
                outputs.hidden_states[-1], teacher_out.hidden_states[-1], mask, self.projection)
        if c.relation_weight > 0:
            terms["relation"] = c.relation_weight * relation_loss(
                outputs.hidden_states[-1], teacher_out.hidden_states[-1], mask)
        if c.pred_weight > 0:
            terms["pred"] = c.pred_weight * prediction_loss(outputs, teacher_out, c.temperature, self.regression)
        if c.task_weight > 0:
            if task_loss is None:
                raise BertpruneError("distill.task_weight > 0 but the model computes no task loss (a bare encoder); "
                                     "set distill.task_weight=0")
            terms["task"] = c.task_weight * task_loss
        if not terms:
            raise BertpruneError("every distillation term has weight 0; set distill.*_weight")
        self.last = {k: float(v.detach()) for k, v in terms.items()}
        return sum(terms.values())

    def before_optimizer_step(self):
        self.inner.before_optimizer_step()

    def after_step(self, step, optimizer):
        self.inner.after_step(step, optimizer)

    def prune_steps(self):
        return self.inner.prune_steps()

    def finalize(self):
        for capture in (self.student_scores, self.teacher_scores):
            if capture is not None:
                capture.remove()
        return self.inner.finalize()

    def target_sparsity(self, step):
        return self.inner.target_sparsity(step)

    def reached_target(self, step):
        return self.inner.reached_target(step)

    def log_metrics(self):
        return {**self.inner.log_metrics(), **{f"loss_{k}": v for k, v in self.last.items()}}

    def summary(self):
        return {**self.inner.summary(), "pruning": self.inner.name, "teacher": self.cfg.teacher,
                "weights": {"attn": self.cfg.attn_weight, "hidden": self.cfg.hidden_weight,
                            "last_hidden": self.cfg.last_hidden_weight, "embedding": self.cfg.embedding_weight,
                            "relation": self.cfg.relation_weight, "pred": self.cfg.pred_weight, "task": self.cfg.task_weight},
                "attn_loss": self.cfg.attn_loss, "temperature": self.cfg.temperature,
                "layer_map": self.layer_pairs, "projection": self.projection is not None}

    def state_dict(self):
        state = {"inner": self.inner.state_dict()}
        if self.projection is not None:
            state["projection"] = dict(self.projection.state_dict())
        return state

    def load_state_dict(self, state):
        self.inner.load_state_dict(state["inner"])
        if self.projection is not None:
            self.projection.load_state_dict(state["projection"])
