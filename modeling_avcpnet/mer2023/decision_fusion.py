"""Decision-level fusion of several MER 2023 systems (eq. 10-11).

`e = sum_k w_k e_k` (emotion posteriors) and `v = sum_k w_k v_k` (valences) with `w_k >= 0`, `sum_k w_k = 1`.
The weights are chosen on validation data by exhaustive search over a regular grid on the simplex (step 0.05 by
default: 231 candidates for 3 systems), maximising the challenge metric `weighted_F1 - 0.25 * MSE`. A grid, not
gradient descent, because weighted F1 is piecewise constant in the weights; ties go to the candidate closest to
uniform weights, the least committal choice.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any, Sequence

import numpy as np

from .metrics import mer2023_metrics

MAX_GRID_POINTS = 2_000_000


def simplex_grid(num_systems: int, step: float = 0.05) -> np.ndarray:
    """All weight vectors with entries in multiples of `step` that sum to one: `(num_points, num_systems)`."""
    if num_systems < 1:
        raise ValueError(f"simplex_grid needs at least one system, got {num_systems}")
    divisions = round(1.0 / step)
    if divisions < 1 or not math.isclose(divisions * step, 1.0, rel_tol=1e-9, abs_tol=1e-9):
        raise ValueError(f"step must divide 1 into a whole number of parts (e.g. 0.05, 0.1), got {step}")
    count = math.comb(divisions + num_systems - 1, num_systems - 1)
    if count > MAX_GRID_POINTS:
        raise ValueError(f"a step of {step} for {num_systems} systems gives {count} grid points; use a larger step")
    # Stars and bars: choose the positions of num_systems - 1 bars among divisions + num_systems - 1 slots.
    points = []
    for bars in itertools.combinations(range(divisions + num_systems - 1), num_systems - 1):
        edges = (-1, *bars, divisions + num_systems - 1)
        points.append([edges[i + 1] - edges[i] - 1 for i in range(num_systems)])
    return np.asarray(points, dtype=np.float64) / divisions


def _check_systems(posteriors: Sequence[Any], valences: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    if len(posteriors) == 0 or len(posteriors) != len(valences):
        raise ValueError(f"give one posterior and one valence array per system, got {len(posteriors)} posteriors "
                         f"and {len(valences)} valence arrays")
    probs = np.stack([np.asarray(p, dtype=np.float64) for p in posteriors])  # (K, N, C)
    vals = np.stack([np.asarray(v, dtype=np.float64).reshape(-1) for v in valences])  # (K, N)
    if probs.ndim != 3 or vals.shape != probs.shape[:2]:
        raise ValueError(f"posteriors must be K arrays (N, C) and valences K arrays (N,), got {probs.shape} and "
                         f"{vals.shape}")
    if (probs < 0).any() or not np.allclose(probs.sum(-1), 1.0, atol=1e-4):
        raise ValueError("posteriors must be probabilities (rows summing to 1): apply a softmax to the logits first")
    return probs, vals


def fuse_predictions(posteriors: Sequence[Any], valences: Sequence[Any], weights: Any) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 10-11: the weighted sums `(N, C)` of the posteriors and `(N,)` of the valences."""
    probs, vals = _check_systems(posteriors, valences)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (probs.shape[0],) or (weights < 0).any() or not math.isclose(weights.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(f"weights must be {probs.shape[0]} non-negative numbers summing to 1, got {weights.tolist()}")
    return np.einsum("k,knc->nc", weights, probs), weights @ vals


class MER2023DecisionFusion:
    """Weights of eq. 10-11 fitted on validation predictions of several systems.

    Example:

    ```python
    >>> fusion = MER2023DecisionFusion().fit(val_posteriors, val_valences, val_labels, val_valence_targets)
    >>> posterior, valence = fusion(test_posteriors, test_valences)
    ```
    """

    def __init__(self, weights: Sequence[float] | None = None, step: float = 0.05):
        self.step = step
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.validation_metrics: dict[str, float] | None = None

    def fit(self, posteriors: Sequence[Any], valences: Sequence[Any], labels: Any, valence_targets: Any):
        """Grid search on the simplex for the weights maximising `weighted_F1 - 0.25 * MSE` on this data."""
        probs, vals = _check_systems(posteriors, valences)
        labels = np.asarray(labels)
        grid = simplex_grid(probs.shape[0], self.step)
        uniform = np.full(probs.shape[0], 1.0 / probs.shape[0])
        best_key, best = None, None
        for weights in grid:
            fused_probs = np.einsum("k,knc->nc", weights, probs)
            metrics = mer2023_metrics(labels, fused_probs, valence_targets, weights @ vals)
            key = (round(metrics["combined"], 12), -float(np.sum((weights - uniform) ** 2)))
            if best_key is None or key > best_key:
                best_key, best = key, (weights, metrics)
        self.weights, self.validation_metrics = best
        return self

    def __call__(self, posteriors: Sequence[Any], valences: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        if self.weights is None:
            raise ValueError("MER2023DecisionFusion has no weights: call fit() on validation predictions first")
        return fuse_predictions(posteriors, valences, self.weights)

    def to_json(self) -> str:
        return json.dumps({"weights": None if self.weights is None else self.weights.tolist(), "step": self.step,
                           "validation_metrics": self.validation_metrics})

    @classmethod
    def from_json(cls, text: str) -> "MER2023DecisionFusion":
        data = json.loads(text)
        fusion = cls(weights=data["weights"], step=data["step"])
        fusion.validation_metrics = data.get("validation_metrics")
        return fusion


__all__ = ["MER2023DecisionFusion", "fuse_predictions", "simplex_grid"]
