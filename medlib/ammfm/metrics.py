"""Evaluation metrics of paper B (Sec. 4.2; Tables 2, 3, 4, 8).

* **AUC** per category, one-vs-rest (``sklearn.metrics.roc_auc_score`` of the category's
  probability against "label == category"), for the 17 categories Table 2 lists
  (:data:`~medlib.ammfm.tasks.AUC_CATEGORIES`).
* **AVG AUC** — the paper does not say how it averages; here it is the plain mean of those
  17 per-category AUCs (Table 2's "AVG" column). A category with no positive or no
  negative case in the evaluated split has no AUC (NaN) and is left out of the mean;
  ``n_auc`` says how many entered it.
* **ACC** per task (argmax) and **AVG ACC** = mean of the 8 task accuracies (Table 3).
* **Precision, sensitivity, specificity** of the melanoma-related category of each task
  (Table 4, :data:`~medlib.ammfm.tasks.MELANOMA_CATEGORIES`), with the prediction =
  argmax over the task's classes, counted one-vs-rest. A category the model never predicts
  has precision 0 (scikit-learn's ``zero_division=0``), so it stays in Table 4's average
  (dropping it would flatter the average); ``n_predicted/<task>/<category>`` records how
  often each was predicted, so a table can say when that happened.

:func:`evaluate` returns a flat ``{metric name: float}`` dict so that runs can be
stacked; :func:`summarize_runs` turns several into mean ± std.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_auc_score

from .errors import ConfigError
from .tasks import AUC_CATEGORIES, MELANOMA_CATEGORIES, TASK_CLASSES, TASKS

__all__ = ["evaluate", "category_auc", "binary_rates", "summarize_runs", "auc_table", "melanoma_table"]


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
    """Precision, sensitivity (recall) and specificity of one category, one-vs-rest.

    Precision of a category that is never predicted is 0 (as scikit-learn's
    ``zero_division=0``): the model found none of its cases. Sensitivity without a positive
    case and specificity without a negative one are undefined (NaN).
    """
    tn, fp, fn, tp = confusion_matrix(np.asarray(y_true_task) == class_index,
                                      np.asarray(y_pred_task) == class_index, labels=[False, True]).ravel()

    def ratio(a, b, empty=float("nan")):
        return float(a / b) if b else empty

    return {"precision": ratio(tp, tp + fp, empty=0.0), "sensitivity": ratio(tp, tp + fn),
            "specificity": ratio(tn, tn + fp)}


def evaluate(probabilities: list, targets, tasks: dict[str, list[str]] | None = None) -> dict[str, float]:
    """All metrics of one run on one split.

    Args:
        probabilities: 8 arrays (N, n_k) of class scores per task, in :data:`TASKS` order
            (probabilities, e.g. the weighted average of Eq. 4; any monotone scores work
            for AUC, the argmax is used for the rest).
        targets: (N, 8) class indices.
        tasks: task -> class names as the dataset orders them (``ds.tasks``); default
            :data:`TASK_CLASSES`. Categories are looked up by name.
    Returns a flat dict: ``auc/DIAG/MEL``..., ``avg_auc``, ``n_auc``, ``acc/DIAG``...,
    ``avg_acc``, and ``precision|sensitivity|specificity/DIAG/MEL``... (Table 4),
    ``avg_precision`` etc. over the 8 melanoma-related categories, and
    ``n_predicted/DIAG/MEL``... (how many cases were predicted as that category).
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
            raise ConfigError(
                f"task {task}: scores must be (N={len(y)}, {len(tasks[task])} classes {tasks[task]}), "
                f"got {probs[k].shape}"
            )

    def index(task, category):
        if category not in tasks[task]:
            raise ConfigError(f"task {task} has no class {category!r}; its classes are {tasks[task]}")
        return tasks[task].index(category)

    result: dict[str, float] = {}
    aucs = []
    for task, category in AUC_CATEGORIES:
        k = TASKS.index(task)
        c = index(task, category)
        auc = category_auc(y[:, k], probs[k][:, c], c)
        result[f"auc/{task}/{category}"] = auc
        aucs.append(auc)
    finite = [a for a in aucs if np.isfinite(a)]
    result["avg_auc"] = float(np.mean(finite)) if finite else float("nan")
    result["n_auc"] = float(len(finite))

    preds = [p.argmax(axis=1) for p in probs]
    accs = []
    for k, task in enumerate(TASKS):
        acc = float((preds[k] == y[:, k]).mean())
        result[f"acc/{task}"] = acc
        accs.append(acc)
    result["avg_acc"] = float(np.mean(accs))

    per_metric: dict[str, list[float]] = {"precision": [], "sensitivity": [], "specificity": []}
    for task, category in MELANOMA_CATEGORIES:
        k = TASKS.index(task)
        c = index(task, category)
        for name, value in binary_rates(y[:, k], preds[k], c).items():
            result[f"{name}/{task}/{category}"] = value
            per_metric[name].append(value)
        result[f"n_predicted/{task}/{category}"] = float((preds[k] == c).sum())
    for name, values in per_metric.items():
        result[f"avg_{name}"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return result


def summarize_runs(runs: list[dict[str, float]]) -> pd.DataFrame:
    """Mean ± sample standard deviation (ddof=1) of each metric over runs (the paper's "x±y").

    Returns a DataFrame indexed by metric with columns ``mean``, ``std``, ``n`` (runs with a
    finite value) and ``text`` (e.g. ``"87.6±0.4"`` in percent). With one run std is NaN.
    """
    if not runs:
        raise ConfigError("summarize_runs needs at least one run's metrics")
    frame = pd.DataFrame(runs)
    summary = pd.DataFrame({"mean": frame.mean(), "std": frame.std(ddof=1), "n": frame.count()})
    is_count = summary.index.str.startswith("n_")
    summary["text"] = [
        f"{m:.1f}" if cnt else f"{100 * m:.1f}±{100 * s:.1f}" if np.isfinite(s) else f"{100 * m:.1f}"
        for m, s, cnt in zip(summary["mean"], summary["std"], is_count)
    ]
    return summary


def auc_table(metrics: dict[str, float]) -> pd.DataFrame:
    """Table 2/8 layout: one row per (task, category) AUC plus the AVG row, in percent."""
    rows = [(t, c, 100 * metrics[f"auc/{t}/{c}"]) for t, c in AUC_CATEGORIES]
    rows.append(("AVG", "", 100 * metrics["avg_auc"]))
    return pd.DataFrame(rows, columns=["task", "category", "AUC (%)"])


def melanoma_table(metrics: dict[str, float]) -> pd.DataFrame:
    """Table 4 layout: rows AUC/PRE/SEN/SPE, one column per melanoma-related category + AVG, in percent."""
    names = {"AUC": "auc", "PRE": "precision", "SEN": "sensitivity", "SPE": "specificity"}
    cols = [f"{t} {c}" for t, c in MELANOMA_CATEGORIES]
    data = {}
    for label, key in names.items():
        values = [100 * metrics[f"{key}/{t}/{c}"] for t, c in MELANOMA_CATEGORIES]
        finite = [v for v in values if np.isfinite(v)]
        data[label] = values + [float(np.mean(finite)) if finite else float("nan")]
    return pd.DataFrame.from_dict(data, orient="index", columns=cols + ["AVG"])
