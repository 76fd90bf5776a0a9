"""SQuAD v1.1: n-best answer search over windows, and the official exact-match and F1.

The metrics reproduce the official ``evaluate-v1.1.py``: answers are normalised (lower case,
punctuation removed, the articles a/an/the removed, whitespace collapsed); exact match and
token-overlap F1 take the maximum over the gold answers, then average over questions.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Mapping, Sequence

import numpy as np

_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match_score(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``exact_match`` and ``f1`` as fractions (×100 for the official percentages); every gold
    question must have a prediction (a missing one scores 0, as in the official script)."""
    em = f1 = 0.0
    for qid, answers in golds.items():
        pred = predictions.get(qid)
        if pred is None:
            continue
        em += max(exact_match_score(pred, a) for a in answers)
        f1 += max(f1_score(pred, a) for a in answers)
    n = max(len(golds), 1)
    return {"exact_match": em / n, "f1": f1 / n}


def best_answers(example_ids: Iterable[str], contexts: Mapping[str, str], feature_example_ids: Sequence[str],
                 offsets: Sequence[Sequence], start_logits: np.ndarray, end_logits: np.ndarray,
                 n_best: int = 20, max_answer_length: int = 30) -> dict[str, str]:
    """The best-scoring span of each example over all its windows.

    For every window, the ``n_best`` highest start and end logits are paired; a pair is valid when
    both tokens lie in the context (offset not None), ``start <= end`` and the span has at most
    ``max_answer_length`` tokens. Its score is start + end logit; the best valid span over all the
    example's windows wins, its text cut from the context by character offsets ("" if none is valid).
    """
    by_example = collections.defaultdict(list)
    for f, eid in enumerate(feature_example_ids):
        by_example[eid].append(f)
    out = {}
    for eid in example_ids:
        best_score, best_text = -np.inf, ""
        context = contexts[eid]
        for f in by_example.get(eid, []):
            off = offsets[f]
            s_log, e_log = start_logits[f], end_logits[f]
            n = min(len(off), len(s_log))
            starts = np.argsort(s_log[:n])[::-1][:n_best]
            ends = np.argsort(e_log[:n])[::-1][:n_best]
            for s in starts:
                if off[s] is None:
                    continue
                for e in ends:
                    if off[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = s_log[s] + e_log[e]
                    if score > best_score:
                        best_score, best_text = score, context[off[s][0] : off[e][1]]
        out[eid] = best_text
    return out
