"""Metrics of a trained run and of all runs of a configuration (§4.2).

For a multi-modal model the branch weights (W_D, W_C, W_FU) of Eq. 4 are searched on the VALID
split and the fused prediction is scored on TEST. The tables use **probability weighting** (the
paper's text: Eq. 4 weighs predictions); logit weighting (FusionM4Net's code) is computed beside
it. A single-modal model has one branch and no search. The metric definitions live in
:mod:`medlib.ammfm.metrics`.

Runs of a configuration are summarised two ways, as the paper does: mean ± std over the runs
(Tables 6–10) and the best run (Tables 2–5, §4.3: "grounded on the highest value").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medlib.ammfm.metrics import evaluate, summarize_runs
from medlib.ammfm.tasks import MELANOMA_CATEGORIES
from medlib.ammfm.weight_search import fused_probabilities, search_weights
from medlib.errors import MedlibError

__all__ = ["HEADLINE", "run_metrics", "branch_metrics", "ConfigResult", "pm", "mean_sd", "never_predicted"]

HEADLINE = ("swa/tta", "probability")  # the variant and weighting mode every table reports


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _with_melanoma_auc(m: dict) -> dict:
    values = [m[f"auc/{t}/{c}"] for t, c in MELANOMA_CATEGORIES]
    finite = [v for v in values if np.isfinite(v)]
    m["avg_mel_auc"] = float(np.mean(finite)) if finite else math.nan
    return m
def run_metrics(result, variant: str = HEADLINE[0], mode: str = HEADLINE[1],
                grid: int | None = None) -> dict:
    """Test metrics of one run (Eq. 4 weights searched on VALID for multi-modal models).

    ``mode``: ``"probability"`` (the paper's text; the tables) or ``"logit"`` (FusionM4Net's
    code). The TTA outputs are log-averaged probabilities; weighting those is weighting logits
    exactly for one view (a per-case constant per branch cancels in the softmax).
    """
    grid = int(grid or result.meta["settings"]["weight_grid"])
    memo = (variant, mode, grid)
    if memo in result._metrics:
        return result._metrics[memo]
    preds = result.predictions[variant]
    if result.config.single_modal:
        (branch,) = preds["test"].keys()
        m = evaluate([_softmax(z) for z in preds["test"][branch]], result.targets["test"], result.tasks)
    else:
        search = search_weights(preds["valid"], result.targets["valid"], n=grid, mode=mode)
        m = evaluate(fused_probabilities(preds["test"], search.weights, mode), result.targets["test"], result.tasks)
        m.update({"w_D": search.weights["dermoscopy"], "w_C": search.weights["clinical"],
                  "w_FU": search.weights["fusion"], "valid_avg_acc": search.score})
    result._metrics[memo] = _with_melanoma_auc(m)
    return result._metrics[memo]


def branch_metrics(result, branch: str, variant: str = HEADLINE[0]) -> dict:
    """Test metrics of one branch alone (clinical, dermoscopy or fusion head), no weighting."""
    preds = result.predictions[variant]["test"]
    if branch not in preds:
        raise MedlibError(f"{result.config.name} has no {branch!r} branch; it has {sorted(preds)}")
    return _with_melanoma_auc(evaluate([_softmax(z) for z in preds[branch]], result.targets["test"], result.tasks))




def pm(mean: float, std: float) -> str:
    """``"87.6±0.4"``; the mean alone when there is no std (one run)."""
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.1f}" if not np.isfinite(std) else f"{mean:.1f}±{std:.1f}"


def mean_sd(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else math.nan)


@dataclass
class ConfigResult:
    """All runs of one configuration: per-run metrics, mean ± std over runs, and the best run."""

    config: object  # Config
    runs: list

    def summary(self, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> pd.DataFrame:
        """Every metric's mean, std (ddof=1), count and ``"mean±std"`` text in percent
        (:func:`medlib.ammfm.metrics.summarize_runs`)."""
        return summarize_runs(self.metrics(variant, mode))

    def metrics(self, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> list[dict]:
        return [run_metrics(r, variant, mode) for r in self.runs]

    def values(self, metric: str, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> np.ndarray:
        """One value per run, in percent for rates (AUC, ACC, ...)."""
        return np.array([100 * m[metric] for m in self.metrics(variant, mode)], dtype=float)

    def mean_std(self, metric: str, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> tuple[float, float]:
        return mean_sd(self.values(metric, variant, mode))

    def text(self, metric: str, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> str:
        return pm(*self.mean_std(metric, variant, mode))

    def best(self, by: str, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> int:
        """Index of the run with the highest ``by`` (e.g. ``"avg_auc"``): the paper's "highest value"."""
        v = self.values(by, variant, mode)
        if not np.isfinite(v).any():
            raise MedlibError(f"no run of {self.config.name} has a finite {by}; cannot pick the best run")
        return int(np.nanargmax(v))

    def best_text(self, metric: str, by: str, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> str:
        """``metric`` of the best run by ``by``, in percent (one decimal)."""
        value = self.values(metric, variant, mode)[self.best(by, variant, mode)]
        return f"{value:.1f}" if np.isfinite(value) else "n/a"

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    @property
    def train_seconds(self) -> float:
        return float(sum(r.train_seconds for r in self.runs))


def never_predicted(result: ConfigResult, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> dict[str, int]:
    """Melanoma-related categories some run never predicted on test (their precision counts as 0),
    with how many runs: ``{"VS IR": 3}``. Empty when every category was predicted in every run."""
    out = {}
    for t, c in MELANOMA_CATEGORIES:
        n = sum(m[f"n_predicted/{t}/{c}"] == 0 for m in result.metrics(variant, mode))
        if n:
            out[f"{t} {c}"] = int(n)
    return out
