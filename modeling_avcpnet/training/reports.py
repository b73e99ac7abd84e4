"""Evaluation reports written next to the metrics: confusion matrix (PNG + JSON) and per-class report, plus the
MER 2023 challenge metrics."""

from __future__ import annotations

import json
import os

import numpy as np

from .metrics import branch_logits, final_predictions


def write_evaluation_report(output_dir: str, prefix: str, predictions, label_ids, id2label: dict) -> dict[str, str]:
    """Write `{prefix}_confusion_matrix.{png,json}` and `{prefix}_classification_report.{json,txt}`."""
    from sklearn.metrics import classification_report, confusion_matrix

    logits = branch_logits(predictions)
    references = np.asarray(label_ids).reshape(-1)
    predicted = final_predictions(logits)
    names = [id2label[i] for i in range(len(id2label))]
    matrix = confusion_matrix(references, predicted, labels=list(range(len(names))))
    os.makedirs(output_dir, exist_ok=True)
    paths = {key: os.path.join(output_dir, f"{prefix}_{key}") for key in
             ("confusion_matrix.json", "confusion_matrix.png", "classification_report.json",
              "classification_report.txt")}
    with open(paths["confusion_matrix.json"], "w") as handle:
        json.dump({"labels": names, "matrix": matrix.tolist(), "rows": "true label", "columns": "predicted label"},
                  handle, indent=2)
    report_kwargs = dict(labels=list(range(len(names))), target_names=names, zero_division=0)
    with open(paths["classification_report.json"], "w") as handle:
        json.dump(classification_report(references, predicted, output_dict=True, **report_kwargs), handle, indent=2)
    with open(paths["classification_report.txt"], "w") as handle:
        handle.write(classification_report(references, predicted, digits=4, **report_kwargs))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(1.0 + 0.8 * len(names), 1.0 + 0.7 * len(names)), dpi=100)
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{prefix} confusion matrix (accuracy {np.trace(matrix) / max(matrix.sum(), 1):.3f})")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > threshold else "black", fontsize=8)
    figure.tight_layout()
    figure.savefig(paths["confusion_matrix.png"])
    plt.close(figure)
    return paths


def write_mer2023_report(output_dir: str, prefix: str, predictions, label_ids, id2label: dict) -> dict[str, str]:
    """MER 2023: `{prefix}_mer2023_metrics.json` (emotion accuracy, weighted F1, valence MSE, the challenge metric)
    plus the confusion matrix and per-class report of the emotion logits."""
    from ..mer2023.metrics import mer2023_metrics

    (logits, valence), (labels, valence_labels) = predictions[:2], label_ids
    paths = write_evaluation_report(output_dir, prefix, logits, labels, id2label)
    paths["mer2023_metrics.json"] = os.path.join(output_dir, f"{prefix}_mer2023_metrics.json")
    with open(paths["mer2023_metrics.json"], "w") as handle:
        json.dump({**mer2023_metrics(labels, logits, valence_labels, valence),
                   "combined_definition": "weighted_f1 - 0.25 * valence_mse", "num_samples": int(len(labels))},
                  handle, indent=2)
    return paths
