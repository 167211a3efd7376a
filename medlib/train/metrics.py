"""Predictions and the metrics the papers' tables report (scikit-learn)."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor, nn

from medlib.errors import MedlibError
from medlib.train.batches import as_device, capped, default_batch_to_device, forward
from medlib.train.precision import choose_precision

__all__ = ["predict", "evaluate", "classification_metrics", "device_of"]


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    return next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0, device="cpu")).device


def predict(model: nn.Module, loader: Iterable, device=None, *, batch_to_device=None,
            max_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``(N, C)`` and labels ``(N,)``; the model is moved to ``device`` (default: where
    it is), mixed precision on CUDA, at most ``max_steps`` batches."""
    device = device_of(model) if device is None else as_device(device)
    model.to(device)
    to_device = batch_to_device or default_batch_to_device
    was_training = model.training
    model.eval()
    probs, labels = [], []
    with torch.no_grad(), choose_precision(device).autocast():
        for batch in capped(loader, max_steps):
            x, y = to_device(batch, device)
            out = forward(model, x)
            if not isinstance(out, Tensor) or out.ndim != 2:
                raise MedlibError("predict expects a model returning (batch, classes) logits")
            probs.append(out.float().softmax(dim=1).cpu())
            if y is not None:
                labels.append(torch.as_tensor(y).reshape(-1).cpu())
    model.train(was_training)
    p = torch.cat(probs).numpy() if probs else np.zeros((0, 0), dtype=np.float32)
    y = torch.cat(labels).numpy().astype(np.int64) if labels else np.zeros(0, dtype=np.int64)
    return p, y


def classification_metrics(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    """Accuracy, balanced accuracy, macro-F1 and one-vs-rest macro AUROC (scikit-learn).

    Classes absent from ``labels`` are left out of each average; the AUROC is NaN with fewer than two
    classes that have positives and negatives.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    labels = np.asarray(labels).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0] or probs.shape[1] != n_classes:
        raise MedlibError(f"expected probabilities ({labels.shape[0]}, {n_classes}), got {probs.shape}")
    if labels.size == 0:
        return {"n": 0, "accuracy": math.nan, "balanced_accuracy": math.nan, "macro_f1": math.nan, "auroc": math.nan}
    pred = probs.argmax(axis=1)
    present = np.unique(labels)
    aucs = [roc_auc_score(labels == c, probs[:, c]) for c in range(n_classes)
            if c in present and (labels != c).any()]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        bacc = balanced_accuracy_score(labels, pred)
    return {
        "n": int(labels.size),
        "accuracy": float(accuracy_score(labels, pred)),
        "balanced_accuracy": float(bacc),
        "macro_f1": float(f1_score(labels, pred, average="macro", zero_division=0)),
        "auroc": float(np.mean(aucs)) if len(aucs) >= 2 or (n_classes == 2 and aucs) else math.nan,
    }


def evaluate(model: nn.Module, loader: Iterable, device=None, n_classes: int | None = None, *,
             batch_to_device=None, max_steps: int | None = None) -> dict:
    """:func:`classification_metrics` of ``model`` on ``loader``, predicted as :func:`predict` does."""
    probs, labels = predict(model, loader, device, batch_to_device=batch_to_device, max_steps=max_steps)
    n_classes = probs.shape[1] if n_classes is None else n_classes
    return classification_metrics(probs, labels, n_classes)
