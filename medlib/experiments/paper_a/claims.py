"""Part A's interpretive sentences, each computed from the numbers it interprets (a page never types a
verdict). Accuracies in percent; "about the same" means within :data:`TOLERANCE` points (on a 181-image
test set one image is 0.55 points)."""

from __future__ import annotations

import math

__all__ = ["TOLERANCE", "ROUNDING", "relation", "pooling", "against_paper_restore", "agreement", "rounding",
           "merged_vs_sites", "full_vs_sites", "kept", "gap", "loss"]

TOLERANCE = 1.0  # accuracy points: "about the same" means |Δ| ≤ this
ROUNDING = 1e-5  # largest weight difference still called floating-point rounding (float32 eps ≈ 1.2e-7)


def _points(x: float, spec: str = "g") -> str:
    return f"{x:{spec}} point" + ("" if f"{x:{spec}}" == "1" else "s")


def relation(a: float, b: float, tol: float = TOLERANCE) -> str:
    """How ``a`` stands to ``b``: ``"above"``, ``"below"`` or ``"about the same as"`` (|a − b| ≤ ``tol``)."""
    if abs(a - b) <= tol:
        return "about the same as"
    return "above" if a > b else "below"


def pooling(best_site: float, full: float, tol: float = TOLERANCE) -> str:
    """The verdict on full training (all sites' images pooled) against the best single site."""
    rel = relation(full, best_site, tol)
    if rel == "above":
        return "pooling data helps, which is the gap that merging is meant to close without pooling images"
    if rel == "below":
        return ("pooling data does not help here (full training is below the best site), so there is "
                "no pooling gap for merging to close")
    return (f"pooling data makes no clear difference here (within {_points(tol)}), so there is "
            "little gap for merging to close")


def against_paper_restore(paper: float, alternatives: dict[str, float], tol: float = TOLERANCE) -> str:
    """How each alternative restoration ({description: accuracy}) stands to the paper's one-epoch restore."""
    parts = [f"{name} is {relation(acc, paper, tol).removesuffix(' as')}" for name, acc in alternatives.items()]
    verdicts = {relation(acc, paper, tol) for acc in alternatives.values()}
    if verdicts == {"above"}:
        tail = "replacing the averaged statistics pays on this run"
    elif verdicts == {"below"}:
        tail = "on this run keeping the averaged statistics is not what holds the restored model back"
    else:
        tail = "on this run replacing the averaged statistics is no clear gain"
    return " and ".join(parts) + f" the paper's one-epoch restore: {tail}"


def agreement(a: float, b: float, tol: float = TOLERANCE) -> str:
    """Whether two ways of computing the same statistics land together (|a − b| ≤ ``tol`` points)."""
    if abs(a - b) <= tol:
        return f"so they land close together (within {_points(tol)})"
    return f"yet on this run they are {_points(abs(a - b), '.1f')} apart (more than {tol:g})"


def rounding(difference: float, limit: float = ROUNDING) -> str:
    """A largest difference between two weight sets meant to be equal: rounding, or a real difference."""
    if difference <= limit:
        return "floating-point rounding, nothing more"
    return f"more than floating-point rounding (above {limit:.0e}): the two are not the same model"


def merged_vs_sites(closer: int, n_datasets: int) -> str:
    """Figure 2's verdict: on how many datasets the merged vector is closer to full training than every site."""
    if closer == n_datasets:
        return "as in the paper's Figure 2, where the red line lies above the blue ones"
    if closer == 0:
        return "unlike the paper's Figure 2, where the red line lies above the blue ones"
    return "only partly as in the paper's Figure 2, where the red line lies above the blue ones"


def full_vs_sites(full_beats_every_site: bool) -> str:
    """The benchmark's sanity check: full training should beat every model trained on one site."""
    if full_beats_every_site:
        return "beats every single site in this run, the sanity check that makes the benchmark fair"
    return ("does not beat every single site in this run: the sanity check fails, so Full Training is no "
            "upper bound here and the merged columns are better read against the best site")


def kept(share: float) -> str:
    """What a measured share of the averaged BN statistics left after the restoring epoch says."""
    if math.isnan(share):  # the averaged and the replaced statistics coincide
        return "the averaged statistics already equal what the epoch would put there, so nothing is replaced"
    if share >= 0.5:
        return "the paper's restoration mostly keeps the state it was meant to replace"
    return "the epoch replaces most of the averaged state, though not all of it"


def gap(a: float, b: float, tol: float = TOLERANCE) -> str:
    """``a`` against ``b``, before b's name: "3.1 points above", "2.0 points below" or "within 1 point of"."""
    rel = relation(a, b, tol)
    return f"within {_points(tol)} of" if rel == "about the same as" else f"{_points(abs(a - b), '.1f')} {rel}"


def loss(drop: float) -> str:
    """An accuracy drop (points; negative is a rise) as a verb phrase: "lost 3.1 points" or "gained 2.0 points"."""
    return f"{'lost' if drop >= 0 else 'gained'} {_points(abs(drop), '.1f')}"
