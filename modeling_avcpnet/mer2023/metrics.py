"""The MER 2023 challenge metric: `weighted_F1(discrete emotion) - 0.25 * MSE(valence)`.

Plain numpy with scikit-learn's definitions (`f1_score(average="weighted", zero_division=0)` and
`mean_squared_error`); the training task's `compute_metrics` and the decision fusion use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

VALENCE_MSE_WEIGHT = 0.25


def _as_1d(name: str, values: Any, dtype=None) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def weighted_f1_score(labels: Any, predictions: Any) -> float:
    """F1 of each class present in `labels` or `predictions`, averaged with weights equal to the class support
    in `labels` (scikit-learn's `average="weighted"`; a class with no true or predicted positives scores 0)."""
    labels = _as_1d("labels", labels)
    predictions = _as_1d("predictions", predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in length")
    if labels.size == 0:
        raise ValueError("weighted_f1_score needs at least one example")
    classes = np.union1d(labels, predictions)
    scores, supports = [], []
    for cls in classes:
        true_positive = np.sum((predictions == cls) & (labels == cls))
        false_positive = np.sum((predictions == cls) & (labels != cls))
        false_negative = np.sum((predictions != cls) & (labels == cls))
        denominator = 2 * true_positive + false_positive + false_negative
        scores.append(2 * true_positive / denominator if denominator else 0.0)
        supports.append(np.sum(labels == cls))
    return float(np.average(scores, weights=supports))


def mean_squared_error(targets: Any, predictions: Any) -> float:
    targets = _as_1d("valence targets", targets, np.float64)
    predictions = _as_1d("valence predictions", predictions, np.float64)
    if targets.shape != predictions.shape:
        raise ValueError(f"valence targets {targets.shape} and predictions {predictions.shape} differ in length")
    return float(np.mean((targets - predictions) ** 2))


def mer2023_metrics(labels: Any, predictions: Any, valence_targets: Any, valence_predictions: Any) -> dict[str, float]:
    """`{"weighted_f1", "accuracy", "valence_mse", "combined"}`, combined = weighted_f1 - 0.25 * valence_mse.

    `predictions` are class ids `(N,)`, or scores/posteriors `(N, C)` reduced by argmax.
    """
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:
        predictions = predictions.argmax(-1)
    labels = _as_1d("labels", labels)
    f1 = weighted_f1_score(labels, predictions)
    mse = mean_squared_error(valence_targets, valence_predictions)
    return {
        "weighted_f1": f1,
        "accuracy": float(np.mean(labels == predictions)),
        "valence_mse": mse,
        "combined": f1 - VALENCE_MSE_WEIGHT * mse,
    }


def compute_mer2023_metrics(eval_prediction) -> dict[str, float]:
    """`compute_metrics` for a `transformers.Trainer` running `MER2023ForEmotionValence`: predictions are
    `(logits, valence)` and label_ids `(labels, valence_labels)`."""
    predictions, label_ids = eval_prediction.predictions, eval_prediction.label_ids
    if not (isinstance(predictions, (tuple, list)) and len(predictions) >= 2):
        raise ValueError("compute_mer2023_metrics expects predictions (logits, valence) from MER2023ForEmotionValence")
    if not (isinstance(label_ids, (tuple, list)) and len(label_ids) == 2):
        raise ValueError("compute_mer2023_metrics expects label_ids (labels, valence_labels); "
                         "give the eval dataset both columns")
    logits, valence = predictions[0], predictions[1]
    labels, valence_labels = label_ids
    return mer2023_metrics(labels, logits, valence_labels, valence)


__all__ = ["compute_mer2023_metrics", "mean_squared_error", "mer2023_metrics", "weighted_f1_score"]
