"""Evaluation metrics of `train_hf.py`: accuracy, weighted F1 (the paper's WA-F1), macro F1 and UAR of the fused
logits plus each branch's accuracy, and the results table printed at the end of a run."""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from ..configuration_avcpnet import BRANCHES

logger = logging.getLogger(__name__)

_EVALUATE_METRICS: Optional[dict] = None


def _load_evaluate_metrics() -> Optional[dict]:
    """The `evaluate` metrics, or None when their scripts cannot be loaded (offline, no local cache).

    `evaluate.load("accuracy")` fetches the metric script from the Hub the first time; with no Hub reachable we
    compute the very same quantities with scikit-learn (which those scripts wrap) under the same names.
    """
    global _EVALUATE_METRICS
    if _EVALUATE_METRICS is None:
        try:
            import evaluate

            _EVALUATE_METRICS = {name: evaluate.load(name) for name in ("accuracy", "f1", "recall")}
        except Exception as error:  # noqa: BLE001 - any failure means "not available here"
            logger.info("evaluate metrics unavailable (%s); computing them with scikit-learn", type(error).__name__)
            _EVALUATE_METRICS = {}
    return _EVALUATE_METRICS or None


def classification_metrics(predictions: np.ndarray, references: np.ndarray, num_labels: int) -> dict[str, float]:
    """accuracy, wa_f1 (weighted F1), macro_f1 and uar (macro recall) of label predictions."""
    labels = list(range(num_labels))
    metrics = _load_evaluate_metrics()
    if metrics is not None:
        return {
            "accuracy": metrics["accuracy"].compute(predictions=predictions, references=references)["accuracy"],
            "wa_f1": metrics["f1"].compute(predictions=predictions, references=references, average="weighted",
                                           labels=labels)["f1"],
            "macro_f1": metrics["f1"].compute(predictions=predictions, references=references, average="macro",
                                              labels=labels)["f1"],
            "uar": metrics["recall"].compute(predictions=predictions, references=references, average="macro",
                                             labels=labels, zero_division=0)["recall"],
        }
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "wa_f1": float(f1_score(references, predictions, average="weighted", labels=labels, zero_division=0)),
        "macro_f1": float(f1_score(references, predictions, average="macro", labels=labels, zero_division=0)),
        "uar": float(recall_score(references, predictions, average="macro", labels=labels, zero_division=0)),
    }


def branch_logits(predictions) -> np.ndarray:
    """(N, 3, L) logits of fusion/visual/audio (NaN rows for a branch the model does not have)."""
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:  # a plain classifier: only the final logits
        predictions = np.stack([predictions] + [np.full_like(predictions, np.nan)] * 2, axis=1)
    return predictions


def final_predictions(logits: np.ndarray) -> np.ndarray:
    """The model's prediction: the fused logits, or the only branch a single-modality model has."""
    for index in range(logits.shape[1]):
        if not np.isnan(logits[:, index]).any():
            return logits[:, index].argmax(-1)
    raise ValueError("the evaluation produced no logits")


def compute_metrics_fn(num_labels: int):
    """A `compute_metrics` for the Trainer: overall metrics of the final logits plus each branch's accuracy."""

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = branch_logits(eval_prediction.predictions)
        references = np.asarray(eval_prediction.label_ids).reshape(-1)
        metrics = classification_metrics(final_predictions(logits), references, num_labels)
        for index, branch in enumerate(BRANCHES):
            if not np.isnan(logits[:, index]).any():
                metrics[f"{branch}_accuracy"] = float((logits[:, index].argmax(-1) == references).mean())
        return metrics

    return compute_metrics


RESULTS_COLUMNS = {
    "avcpnet": [("accuracy", "fused acc"), ("visual_accuracy", "visual acc"), ("audio_accuracy", "audio acc"),
                ("wa_f1", "WA-F1"), ("macro_f1", "macro F1"), ("uar", "UAR")],
    "mer2023": [("accuracy", "emotion acc"), ("weighted_f1", "weighted F1"), ("valence_mse", "valence MSE"),
                ("combined", "WF1 - 0.25 MSE")],
}


def format_results_table(results: dict[str, dict[str, float]], model_type: str = "avcpnet") -> str:
    columns = RESULTS_COLUMNS[model_type]
    lines = ["| split | " + " | ".join(title for _, title in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for split, metrics in results.items():
        lines.append(f"| {split} | " + " | ".join(
            f"{metrics[key]:.4f}" if key in metrics else "-" for key, _ in columns) + " |")
    return "\n".join(lines)


def strip_prefix(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {key[len(prefix) + 1:]: value for key, value in metrics.items() if key.startswith(prefix + "_")}
