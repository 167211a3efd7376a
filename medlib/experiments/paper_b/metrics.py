"""Metrics of a run and of all runs of a configuration (§4.2; :mod:`medlib.ammfm.metrics`): Eq. 4's weights searched
on VALID, scored on TEST; runs summarise as mean ± std (Tables 6–10) and best run (Tables 2–5, §4.3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medlib.ammfm.metrics import evaluate, mean_sd, pm
from medlib.ammfm.tasks import MELANOMA_CATEGORIES
from medlib.ammfm.weight_search import fused_probabilities, search_weights, softmax
from medlib.errors import MedlibError

__all__ = ["HEADLINE", "run_metrics", "branch_metrics", "ConfigResult", "pm", "mean_sd", "never_predicted"]

HEADLINE = ("swa/tta", "probability")  # the variant and weighting mode every table reports


def run_metrics(result, variant: str = HEADLINE[0], mode: str = HEADLINE[1], grid: int | None = None) -> dict:
    """Test metrics of one run, Eq. 4's weights searched on VALID in ``mode`` (probability: the paper's text; logit:
    FusionM4Net's code; on the TTA's log-averaged probabilities, exactly logit weighting for one view)."""
    grid = int(grid or result.meta["settings"]["weight_grid"])
    memo = (variant, mode, grid)
    if memo in result._metrics:
        return result._metrics[memo]
    preds = result.predictions[variant]
    if result.config.single_modal:
        (branch,) = preds["test"].keys()
        m = evaluate([softmax(z) for z in preds["test"][branch]], result.targets["test"], result.tasks)
    else:
        search = search_weights(preds["valid"], result.targets["valid"], n=grid, mode=mode)
        m = evaluate(fused_probabilities(preds["test"], search.weights, mode), result.targets["test"], result.tasks)
        m.update({"w_D": search.weights["dermoscopy"], "w_C": search.weights["clinical"],
                  "w_FU": search.weights["fusion"], "valid_avg_acc": search.score})
    result._metrics[memo] = m
    return m


def branch_metrics(result, branch: str, variant: str = HEADLINE[0]) -> dict:
    """Test metrics of one branch alone (clinical, dermoscopy or fusion head), no weighting."""
    preds = result.predictions[variant]["test"]
    if branch not in preds:
        raise MedlibError(f"{result.config.name} has no {branch!r} branch; it has {sorted(preds)}")
    return evaluate([softmax(z) for z in preds[branch]], result.targets["test"], result.tasks)


@dataclass
class ConfigResult:
    """All runs of one configuration: per-run metrics, mean ± std over runs, and the best run."""

    config: object  # Config
    runs: list

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
        return float(sum(r.meta["train_seconds"] for r in self.runs))


def never_predicted(result: ConfigResult, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> dict[str, int]:
    """Melanoma-related categories some run never predicted on test (precision 0 there), with the run count."""
    counts = {f"{t} {c}": sum(m[f"n_predicted/{t}/{c}"] == 0 for m in result.metrics(variant, mode))
              for t, c in MELANOMA_CATEGORIES}
    return {name: int(n) for name, n in counts.items() if n}
