"""The comparisons the paper's §4.4–4.7 draw, checked on our runs (paired by seed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medlib.profiles import Profile

from .configs import table_configs
from .metrics import pm
from .paper import PAPER_ROWS_AVG
from .tables import write_result
from . import runs

__all__ = ["CLAIMS", "CLOSE_TOLERANCE", "MASS_SHARE", "claims", "compare", "claims_table", "attention_spread",
           "recipe_agreement"]

CLOSE_TOLERANCE = 1.0  # points: "about the same" in a paper claim means |Δ| ≤ this
MASS_SHARE = 0.9  # an attention row's spread: how many positions hold this share of its weight

# (claim, table, row a, row b, kind): the paper says metric(a) - metric(b) is > 0 ("greater")
# or about zero ("close", |Δ| ≤ CLOSE_TOLERANCE points).
CLAIMS: tuple[tuple[str, str, str, str, str], ...] = (
    ("dermoscopy beats clinical images (ST alone)", "7", "Single-modal: Derm ST", "Single-modal: Clin ST", "greater"),
    ("dermoscopy beats clinical images (MN alone)", "7", "Single-modal: Derm MN", "Single-modal: Clin MN", "greater"),
    ("adding clinical images helps (ST + ST vs dermoscopy ST)", "7", "Baseline: ST + ST", "Single-modal: Derm ST",
     "greater"),
    ("a light clinical network costs little (AFF vs SFF, CAT)", "6", "AFF", "Baseline (SFF, CAT)", "close"),
    ("AAB improves AFF", "6", "AFF + AAB", "AFF", "greater"),
    ("the heavy network belongs on dermoscopy (MN/ST vs ST/MN)", "7", "AMMMF: Clin MN, Derm ST",
     "AMMMF: Clin ST, Derm MN", "greater"),
    ("AAB beats BAB in AFF", "9", "AFF + AAB", "AFF + BAB", "greater"),
    ("AAB beats BAB in SFF", "9", "SFF + AAB", "SFF + BAB", "greater"),
    ("BAB beats concatenation in AFF", "9", "AFF + BAB", "AFF + CAT", "greater"),
    ("AMMFM beats the baseline with ResNet-50", "10", "ResNet: AMMMF", "ResNet: Baseline", "greater"),
    ("AMMFM beats the baseline with ConvNeXt-T", "10", "ConvNext: AMMMF", "ConvNext: Baseline", "greater"),
    ("AMMFM beats the baseline with ST", "10", "ST: AMMMF", "ST: Baseline", "greater"),
)


def _deltas(number: str, a: str, b: str, P: Profile, seed: int | None):
    """Per metric: the paper's Δ (row a − row b of Table ``number``) and this run's per-run Δ, paired by seed."""
    rows = dict(table_configs(P)[number])
    ra, rb = runs.run_config(rows[a], P, seed), runs.run_config(rows[b], P, seed)
    paper_a, paper_b = PAPER_ROWS_AVG[number][a], PAPER_ROWS_AVG[number][b]
    return {metric: (paper_a[i] - paper_b[i], ra.values(metric) - rb.values(metric))
            for metric, i in (("avg_auc", 0), ("avg_acc", 2))}


def claims(profile: Profile, seed: int | None = None) -> pd.DataFrame:
    """Each comparison of §4.4–4.7: the paper's Δ and this run's mean Δ ± sd (paired by seed), and ``agrees``.

    A "greater" claim agrees when the mean Δ > 0, a "close" one when |mean Δ| ≤ :data:`CLOSE_TOLERANCE`.
    """
    rows = []
    for text, number, a, b, kind in CLAIMS:
        for metric, (paper, delta) in _deltas(number, a, b, profile, seed).items():
            mean = float(np.nanmean(delta))
            sd = float(np.nanstd(delta, ddof=1)) if np.isfinite(delta).sum() > 1 else math.nan
            agrees = mean > 0 if kind == "greater" else abs(mean) <= CLOSE_TOLERANCE
            rows.append({"claim": text, "table": number, "metric": "AVG AUC" if metric == "avg_auc" else "AVG ACC",
                         "kind": kind, "paper Δ": round(paper, 1), "this run Δ": mean, "this run Δ sd": sd,
                         "agrees": bool(agrees)})
    frame = pd.DataFrame(rows)
    write_result("claims", profile, seed, frame, {}, {"close_tolerance": CLOSE_TOLERANCE})
    return frame


def compare(number: str, a: str, b: str, profile: Profile, seed: int | None = None) -> dict:
    """Row ``a`` minus row ``b`` of Table ``number``: the paper's and this run's mean Δ (points), AUC and ACC."""
    out = {}
    for metric, (paper, delta) in _deltas(number, a, b, profile, seed).items():
        out[f"paper_{metric[4:]}"] = paper
        out[f"ours_{metric[4:]}"] = float(np.nanmean(delta))
    return out


def claims_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`claims` one row per claim: paper Δ, this run's Δ ± sd and agreement, per metric."""
    out = {}
    for (claim, number), g in frame.groupby(["claim", "table"], sort=False):
        row = {("", "table"): number}
        for _, r in g.iterrows():
            row[(r.metric, "paper Δ")] = f"{r['paper Δ']:+.1f}"
            row[(r.metric, "this run Δ")] = pm(r["this run Δ"], r["this run Δ sd"]).replace("±", " ± ")
            row[(r.metric, "agrees")] = "yes" if r.agrees else "no"
        out[claim] = row
    table = pd.DataFrame.from_dict(out, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def attention_spread(max_weight: float, positions: float, n: int) -> str:
    """An attention row's verdict: near one-hot (≤ 2 positions or weight ≥ ½), concentrated (≤ n/10) or broad."""
    share = f"{positions:.0f} of {n} positions hold{'s' if positions == 1 else ''} {MASS_SHARE:.0%} of a row's weight"
    if positions <= 2 or max_weight >= 0.5:
        return f"near one-hot — {share}, so each position copies from one or two others"
    if positions <= n / 10:
        return f"concentrated — {share}, so each position copies from a few others"
    return f"broad — {share}, so each position averages over many others"


def recipe_agreement(weight_gap: float, pred_gap: float) -> str:
    """Notebook 24's step-by-step run vs the tables' first run, by their largest SWA-weight and TTA gaps."""
    if weight_gap == 0:
        return (f"are identical to the tables' first run's; its test predictions with TTA differ from that run's by "
                f"at most {pred_gap:.1g} in probability, because the tables average the views in another order")
    return (f"differ from the tables' first run's (largest difference {weight_gap:.1g}), so its test predictions "
            f"with TTA differ by up to {pred_gap:.1g} in probability: the tables' run was trained in another "
            "process, and with another thread count or device floating-point sums round differently and "
            "training drifts apart (in one process, as in the tests, the two are bitwise equal)")
