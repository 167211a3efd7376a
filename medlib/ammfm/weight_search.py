"""Weighted averaging of the three branches and its weight search (paper B, Sec. 3.3, Eq. 4).

P_FI = W_D P_D + W_C P_C + W_FU P_FU. The weights are grid-searched on the validation split as in
FusionM4Net: each of (W_D, W_C, W_FU) runs over ``linspace(0.05, 1, N)``, triples summing above
1 are skipped, the rest renormalised to sum to one, the objective is the mean accuracy of the 8
tasks; ties go to the first triple in grid order (W_D slowest). ``mode="probability"`` weighs
softmax probabilities (the paper's text), ``"logit"`` raw logits (FusionM4Net's code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import ConfigError
from .tasks import TASKS

__all__ = ["WEIGHT_ORDER", "MODES", "fuse", "fused_probabilities", "mean_task_accuracy", "task_accuracies",
           "search_weights", "softmax", "WeightSearchResult"]

WEIGHT_ORDER = ("dermoscopy", "clinical", "fusion")  # (W_D, W_C, W_FU) of Eq. 4
MODES = ("probability", "logit")
_SUM_TOL = 1e-9  # linspace(0.05, 1, 20) makes sums like 1.0000000000000002


def _as_numpy(x, dtype=np.float64) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of an (N, n_k) array."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _prepare(outputs: dict, mode: str) -> dict[str, list[np.ndarray]]:
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not one of {MODES}")
    missing = [b for b in WEIGHT_ORDER if b not in outputs]
    if missing:
        raise ConfigError(f"outputs lack branch(es) {missing}; expected keys {WEIGHT_ORDER} with 8 arrays each")
    prepared = {}
    for b in WEIGHT_ORDER:
        arrays = [_as_numpy(a) for a in outputs[b]]
        if len(arrays) != len(TASKS):
            raise ConfigError(f"branch {b!r} has {len(arrays)} task outputs, expected {len(TASKS)} ({TASKS})")
        prepared[b] = [softmax(a) for a in arrays] if mode == "probability" else arrays
    return prepared


def _weighted(p: dict, w) -> list[np.ndarray]:
    return [w[0] * p["dermoscopy"][k] + w[1] * p["clinical"][k] + w[2] * p["fusion"][k] for k in range(len(TASKS))]


def fuse(outputs: dict, weights, mode: str = "probability") -> list[np.ndarray]:
    """Eq. 4 per task: branch -> 8 (N, n_k) logits weighted by (W_D, W_C, W_FU) (or a dict by branch)."""
    if isinstance(weights, dict):
        weights = [weights[b] for b in WEIGHT_ORDER]
    w = [float(x) for x in weights]
    if len(w) != 3:
        raise ConfigError(f"weights must be three numbers (W_D, W_C, W_FU), got {weights!r}")
    return _weighted(_prepare(outputs, mode), w)


def fused_probabilities(outputs: dict, weights, mode: str = "probability") -> list[np.ndarray]:
    """Eq. 4 as class probabilities for :func:`medlib.ammfm.metrics.evaluate`.

    Probability mode renormalises rows to one; logit mode takes the softmax of the fused logits,
    because a one-vs-rest AUC ranked by a raw logit is not the AUC of the prediction.
    """
    fused = fuse(outputs, weights, mode)
    if mode == "logit":
        return [softmax(z) for z in fused]
    return [p / p.sum(axis=1, keepdims=True) for p in fused]


def task_accuracies(predictions: list, targets) -> np.ndarray:
    """Accuracy of each of the 8 tasks (argmax of each (N, n_k) array vs ``targets[:, k]``)."""
    t = _as_numpy(targets, None)
    return np.array([(np.argmax(_as_numpy(p), axis=1) == t[:, k]).mean() for k, p in enumerate(predictions)])


def mean_task_accuracy(predictions: list, targets) -> float:
    """The search objective and the paper's AVG ACC: mean of the 8 task accuracies."""
    return float(task_accuracies(predictions, targets).mean())


@dataclass
class WeightSearchResult:
    """Best weights (renormalised), their objective, and the whole grid as a DataFrame."""

    weights: dict[str, float]
    score: float
    mode: str
    surface: pd.DataFrame

    def as_tuple(self) -> tuple[float, float, float]:
        return tuple(self.weights[b] for b in WEIGHT_ORDER)


def search_weights(outputs: dict, targets, n: int = 20, mode: str = "probability",
                   low: float = 0.05, high: float = 1.0) -> WeightSearchResult:
    """Grid-search (W_D, W_C, W_FU) of Eq. 4 on validation logits (branch -> 8 arrays) and (N, 8) targets.

    ``surface`` has one row per kept triple: raw ``w_D, w_C, w_FU``, renormalised ``wn_D, wn_C, wn_FU``,
    the 8 task accuracies and ``score`` (their mean).
    """
    if n < 1:
        raise ConfigError(f"n={n} grid points: need at least 1")
    p = _prepare(outputs, mode)
    t = _as_numpy(targets, None)
    if t.ndim != 2 or t.shape[1] != len(TASKS):
        raise ConfigError(f"targets must be (N, {len(TASKS)}), got shape {t.shape}")
    grid = np.linspace(low, high, n)
    rows = []
    for wd in grid:
        for wc in grid:
            for wf in grid:
                total = wd + wc + wf
                if total > 1.0 + _SUM_TOL:
                    continue
                w = (wd / total, wc / total, wf / total)
                accs = [float(a) for a in task_accuracies(_weighted(p, w), t)]
                rows.append((wd, wc, wf, *w, *accs, float(np.mean(accs))))
    if not rows:
        raise ConfigError(f"no grid triple sums to <= 1 with linspace({low}, {high}, {n}); lower `low`")
    columns = ["w_D", "w_C", "w_FU", "wn_D", "wn_C", "wn_FU", *(f"acc_{task}" for task in TASKS), "score"]
    surface = pd.DataFrame(rows, columns=columns)
    best = surface.iloc[int(surface["score"].to_numpy().argmax())]  # first maximum in grid order
    weights = {"dermoscopy": float(best.wn_D), "clinical": float(best.wn_C), "fusion": float(best.wn_FU)}
    return WeightSearchResult(weights=weights, score=float(best.score), mode=mode, surface=surface)
