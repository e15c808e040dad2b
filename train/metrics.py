"""Image and study metrics, with the engine's own aggregation (the competition metric)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from sklearn.metrics import roc_auc_score

from mammo_batch.engine.results.aggregate import aggregate_studies


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC; NaN when only one class is present (no ranking to judge)."""
    labels = np.asarray(labels)
    if labels.min(initial=0) == labels.max(initial=0):
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(scores)))


def study_scores(study_keys: Sequence[str], lateralities: Sequence[str], probs: Sequence[float],
                 breast: str = "mean", study: str = "max") -> dict[str, float]:
    """study_key -> score, aggregated exactly as `mammo-batch score` does."""
    views = pa.table({"study_key": pa.array(study_keys, pa.string()),
                      "laterality": pa.array(lateralities, pa.string()),
                      "prob": pa.array(np.asarray(probs, dtype=np.float64))})
    table = aggregate_studies(views, breast, study)
    return dict(zip(table["study_key"].to_pylist(), table["score"].to_pylist(), strict=True))


def study_auc(study_keys, lateralities, probs, targets: dict[str, int]) -> float:
    scores = study_scores(study_keys, lateralities, probs)
    keys = sorted(scores)
    return auc([targets[k] for k in keys], [scores[k] for k in keys])


def threshold_at(targets: Sequence[int], scores: Sequence[float], rule: str = "specificity=0.9") -> float:
    """The operating threshold: the lowest score threshold meeting `rule`.

    specificity=S: the lowest threshold whose specificity (true negatives / negatives) is >= S.
    sensitivity=S: the highest threshold whose sensitivity is >= S.
    """
    kind, _, value = rule.partition("=")
    target = float(value)
    y, s = np.asarray(targets), np.asarray(scores, dtype=np.float64)
    candidates = np.unique(np.concatenate([s, [np.inf]]))
    if kind == "specificity":
        negatives = s[y == 0]
        for t in candidates:  # ascending: the first that meets it is the lowest
            if negatives.size == 0 or (negatives < t).mean() >= target:
                return min(float(t), 1.0)  # probabilities: 1.0 already recalls nobody
    elif kind == "sensitivity":
        positives = s[y == 1]
        for t in candidates[::-1]:
            if positives.size and (positives >= t).mean() >= target:
                return float(t)
        return float(candidates[0])
    raise ValueError(f"threshold rule must be specificity=S or sensitivity=S, got {rule!r}")


def constant_warning(values: Sequence[float], what: str = "out-of-fold predictions") -> str | None:
    """A warning when every value is the same (the model learnt nothing that ranks), else None."""
    array = np.asarray(values, dtype=np.float64)
    if array.size and np.ptp(array) == 0:
        return (f"all {array.size} {what} are equal ({array[0]:.4g}): the model does not rank them "
                "(train longer, check the labels or the learning rate)")
    return None


def oof_warning(scores: Sequence[float], threshold: float) -> str | None:
    """A warning when out-of-fold study scores cannot support the operating `threshold`, else None:
    all equal, or a threshold above every score (it would never recall a study)."""
    constant = constant_warning(scores, "out-of-fold study scores")
    if constant:
        return f"{constant}; threshold {threshold:.4g} is meaningless"
    if len(scores) and threshold > max(scores):
        return (f"threshold {threshold:.4g} is above every out-of-fold study score (max {max(scores):.4g}): "
                "it would never recall a study")
    return None
