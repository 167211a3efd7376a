"""Evaluation metrics of paper B (Sec. 4.2; Tables 2, 3, 4, 8), as a flat ``{name: float}`` per run.

* AUC per category, one-vs-rest, for the 17 categories of Table 2; AVG AUC = their plain mean
  (the paper does not say; :func:`~medlib.experiments.paper_b.paper_avg_auc_check` shows its
  Table 2 agrees). A category with one side absent has no AUC (NaN), left out; ``n_auc`` counts.
* ACC per task (argmax) and AVG ACC = mean of the 8 (Table 3).
* Precision, sensitivity, specificity of each task's melanoma-related category (Table 4),
  one-vs-rest on the argmax. A never-predicted category has precision 0 (scikit-learn's
  ``zero_division=0``), kept in the average (dropping it would flatter it); ``n_predicted/...`` counts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_auc_score

from .errors import ConfigError
from .tasks import AUC_CATEGORIES, MELANOMA_CATEGORIES, TASK_CLASSES, TASKS

__all__ = ["evaluate", "category_auc", "binary_rates", "summarize_runs", "auc_table", "melanoma_table", "pm",
           "mean_sd", "TABLE4_KEYS"]

# Table 4's rows: per-category metric key and the key of its average over the 8 melanoma-related categories
TABLE4_KEYS = {"AUC": ("auc", "avg_mel_auc"), "PRE": ("precision", "avg_precision"),
               "SEN": ("sensitivity", "avg_sensitivity"), "SPE": ("specificity", "avg_specificity")}


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def category_auc(y_true_task: np.ndarray, prob_category: np.ndarray, class_index: int) -> float:
    """One-vs-rest ROC AUC of one category; NaN when only one of the two sides occurs."""
    positive = np.asarray(y_true_task) == class_index
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, prob_category))


def binary_rates(y_true_task: np.ndarray, y_pred_task: np.ndarray, class_index: int) -> dict[str, float]:
    """Precision (0 if never predicted), sensitivity and specificity (NaN if undefined) of one category."""
    tn, fp, fn, tp = confusion_matrix(np.asarray(y_true_task) == class_index,
                                      np.asarray(y_pred_task) == class_index, labels=[False, True]).ravel()

    def ratio(a, b, empty=float("nan")):
        return float(a / b) if b else empty

    return {"precision": ratio(tp, tp + fp, empty=0.0), "sensitivity": ratio(tp, tp + fn),
            "specificity": ratio(tn, tn + fp)}


def _nanmean(values) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def evaluate(probabilities: list, targets, tasks: dict[str, list[str]] | None = None) -> dict[str, float]:
    """All metrics of one run on one split.

    ``probabilities``: 8 (N, n_k) score arrays in :data:`TASKS` order; ``targets``: (N, 8) class
    indices; ``tasks``: task -> class names as the dataset orders them (default :data:`TASK_CLASSES`).
    Keys: ``auc/DIAG/MEL``…, ``avg_auc``, ``n_auc``, ``acc/DIAG``…, ``avg_acc``, ``precision|sensitivity|
    specificity/DIAG/MEL``…, ``avg_mel_auc``, ``avg_precision``…, ``n_predicted/DIAG/MEL``….
    """
    tasks = {t: list(c) for t, c in (tasks or TASK_CLASSES).items()}
    y = _np(targets)
    if y.ndim != 2 or y.shape[1] != len(TASKS):
        raise ConfigError(f"targets must be (N, {len(TASKS)}) in task order {TASKS}, got shape {y.shape}")
    if len(probabilities) != len(TASKS):
        raise ConfigError(f"expected {len(TASKS)} probability arrays ({TASKS}), got {len(probabilities)}")
    probs = [_np(p).astype(np.float64) for p in probabilities]
    for k, task in enumerate(TASKS):
        if task not in tasks:
            raise ConfigError(f"tasks mapping lacks task {task!r}; it has {sorted(tasks)}")
        if probs[k].shape != (len(y), len(tasks[task])):
            raise ConfigError(f"task {task}: scores must be (N={len(y)}, {len(tasks[task])} classes "
                              f"{tasks[task]}), got {probs[k].shape}")

    def index(task, category):
        if category not in tasks[task]:
            raise ConfigError(f"task {task} has no class {category!r}; its classes are {tasks[task]}")
        return tasks[task].index(category)

    result: dict[str, float] = {}
    for task, category in AUC_CATEGORIES:
        k = TASKS.index(task)
        c = index(task, category)
        result[f"auc/{task}/{category}"] = category_auc(y[:, k], probs[k][:, c], c)
    aucs = [result[f"auc/{t}/{c}"] for t, c in AUC_CATEGORIES]
    result["avg_auc"] = _nanmean(aucs)
    result["n_auc"] = float(np.isfinite(aucs).sum())

    preds = [p.argmax(axis=1) for p in probs]
    for k, task in enumerate(TASKS):
        result[f"acc/{task}"] = float((preds[k] == y[:, k]).mean())
    result["avg_acc"] = float(np.mean([result[f"acc/{task}"] for task in TASKS]))

    for task, category in MELANOMA_CATEGORIES:
        k = TASKS.index(task)
        c = index(task, category)
        for name, value in binary_rates(y[:, k], preds[k], c).items():
            result[f"{name}/{task}/{category}"] = value
        result[f"n_predicted/{task}/{category}"] = float((preds[k] == c).sum())
    for key, avg in TABLE4_KEYS.values():
        result[avg] = _nanmean([result[f"{key}/{t}/{c}"] for t, c in MELANOMA_CATEGORIES])
    return result


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of the finite values; std NaN for one value."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else math.nan)


def pm(mean: float, std: float) -> str:
    """The paper's ``"87.6±0.4"``; the mean alone when there is no std (one run)."""
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.1f}" if not np.isfinite(std) else f"{mean:.1f}±{std:.1f}"


def summarize_runs(runs: list[dict[str, float]]) -> pd.DataFrame:
    """Per metric over runs: ``mean``, ``std`` (ddof=1), ``n`` (finite values), ``text`` (:func:`pm`, percent)."""
    if not runs:
        raise ConfigError("summarize_runs needs at least one run's metrics")
    frame = pd.DataFrame(runs)
    summary = pd.DataFrame({"mean": frame.mean(), "std": frame.std(ddof=1), "n": frame.count()})
    is_count = summary.index.str.startswith("n_")
    summary["text"] = [f"{m:.1f}" if cnt else pm(100 * m, 100 * s)
                       for m, s, cnt in zip(summary["mean"], summary["std"], is_count)]
    return summary


def auc_table(metrics: dict[str, float]) -> pd.DataFrame:
    """Table 2/8 layout: one row per (task, category) AUC plus the AVG row, in percent."""
    rows = [(t, c, 100 * metrics[f"auc/{t}/{c}"]) for t, c in AUC_CATEGORIES]
    rows.append(("AVG", "", 100 * metrics["avg_auc"]))
    return pd.DataFrame(rows, columns=["task", "category", "AUC (%)"])


def melanoma_table(metrics: dict[str, float]) -> pd.DataFrame:
    """Table 4 layout: rows AUC/PRE/SEN/SPE, one column per melanoma-related category + AVG, in percent."""
    data = {label: [100 * metrics[f"{key}/{t}/{c}"] for t, c in MELANOMA_CATEGORIES] + [100 * metrics[avg]]
            for label, (key, avg) in TABLE4_KEYS.items()}
    return pd.DataFrame.from_dict(data, orient="index", columns=[f"{t} {c}" for t, c in MELANOMA_CATEGORIES] + ["AVG"])
