"""Analyses around the tables: Figure 2's cosines, the λ sweep, the BN ablation, the 2-D sketch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medlib.bn import running_variances
from medlib.experiments.paper_a.restore import averaged_stats_kept, restore_on_parts
from medlib.experiments.paper_a.runs import Trained
from medlib.vectors import DataVector, merge

__all__ = ["data_vectors", "pairwise_cosines", "layer_cosines", "lambda_sweep", "BN_VARIANTS", "bn_ablation",
           "sketch_coordinates"]


def data_vectors(tr: Trained) -> dict[str, DataVector]:
    """τ_i = θ_i − θ_pre for every site (Eq. 1)."""
    return {f"site {k}": DataVector.between(tr.pretrained, m) for k, m in enumerate(tr.sites, 1)}


def pairwise_cosines(vectors: dict[str, DataVector]) -> pd.DataFrame:
    names = list(vectors)
    return pd.DataFrame([[vectors[a].cosine(vectors[b]) for b in names] for a in names], index=names, columns=names)


def layer_cosines(tr: Trained, conv_only: bool = True) -> pd.DataFrame:
    """Figure 2: per-layer cosine of each model's data vector to full training's (conv weights if ``conv_only``).

    Columns ``site 1..N`` and ``merged``: λ Σ τ_i before any restoration (the paper does not say which).
    """
    def vector(model) -> DataVector:
        v = DataVector.between(tr.pretrained, model)
        return v.only(lambda k, t: t.ndim == 4) if conv_only else v

    full = vector(tr.full)
    merged_model = merge(tr.pretrained, tr.sites, "data_vector", lam=tr.profile.paper_a.lam)
    columns = {f"site {k}": vector(m).cosine(full, per_layer=True) for k, m in enumerate(tr.sites, 1)}
    columns["merged"] = vector(merged_model).cosine(full, per_layer=True)
    df = pd.DataFrame(columns)
    df.index.name = "layer"
    return df


def lambda_sweep(tr: Trained, lams=None, restore: str = "recompute_stats") -> pd.DataFrame:
    """Test accuracy of θ_pre + λ Σ τ_i over ``lams``; BN statistics recomputed on all sites."""
    lams = tr.profile.paper_a.lam_grid if lams is None else lams
    parts = list(range(len(tr.sites)))
    rows = []
    for lam in lams:
        model = merge(tr.pretrained, tr.sites, "data_vector", lam=float(lam))
        rows.append({"lambda": float(lam), "accuracy": tr.accuracy(restore_on_parts(tr, model, parts, restore))})
    return pd.DataFrame(rows)


# key → what the row shows; notebooks pick rows by key, never by position
BN_VARIANTS = {
    "through": "buffers through the vector arithmetic, no restoration",
    "mean_buffers": "sites' mean buffers, no restoration",
    "epoch_all": "finetune_epoch on all sites (§4.1's text)",
    "epoch_part1": "finetune_epoch on part 1 (the tables' row 1)",
    "epoch_part1_cumulative": "finetune_epoch on part 1, cumulative BN average (momentum=None)",
    "recompute_part1": "recompute_stats on part 1 (forward passes, no labels)",
    "recompute_all": "recompute_stats on all sites",
    "site_stats": "site_stats on all sites (only statistics leave a site)",
}


def bn_ablation(tr: Trained) -> pd.DataFrame:
    """§3.5 in numbers: the data-vector model under each :data:`BN_VARIANTS` handling of BatchNorm state.

    ``attrs["kept_part1"]``: the share of averaged statistics the epoch on part 1 keeps (:func:`averaged_stats_kept`).
    """
    lam = tr.profile.paper_a.lam
    parts = list(range(len(tr.sites)))
    plain = merge(tr.pretrained, tr.sites, "data_vector", lam=lam)
    models = {
        "through": merge(tr.pretrained, tr.sites, "data_vector", lam=lam, include_buffers=True),
        "mean_buffers": plain,
        "epoch_all": restore_on_parts(tr, plain, parts, "finetune_epoch"),
        "epoch_part1": restore_on_parts(tr, plain, [0], "finetune_epoch"),
        "epoch_part1_cumulative": restore_on_parts(tr, plain, [0], "finetune_epoch", cumulative_stats=True),
        "recompute_part1": restore_on_parts(tr, plain, [0], "recompute_stats"),
        "recompute_all": restore_on_parts(tr, plain, parts, "recompute_stats"),
        "site_stats": restore_on_parts(tr, plain, parts, "site_stats"),
    }
    rows = {key: {"BatchNorm state": BN_VARIANTS[key],
                  "negative running variances": int((running_variances(m) < 0).sum()),
                  "test accuracy (%)": tr.accuracy(m)} for key, m in models.items()}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "variant"
    df.attrs["kept_part1"] = averaged_stats_kept(plain, models["epoch_part1"], models["epoch_part1_cumulative"])
    return df


def sketch_coordinates(vectors: dict[str, DataVector], full: DataVector | None = None,
                       lam: float = 0.5) -> pd.DataFrame:
    """The method in two dimensions from the run's vectors, by inner products only (θ_pre at the origin).

    x: along the mean data vector; y: where the sites differ most once x is removed (top principal axis of
    the residuals). Rows: θ_pre, each site, the mean (λ = 1/N), λ Σ τ_i and full training's projection.
    """
    names = list(vectors)
    taus = [vectors[n] for n in names]
    n = len(taus)
    G = np.array([[a.dot(b) for b in taus] for a in taus])
    ones = np.ones(n)
    Gm = G @ ones / n  # ⟨τ_j, m⟩ with m the mean vector
    mm = ones @ G @ ones / n**2  # ‖m‖²
    R = G - np.outer(Gm, Gm) / mm  # inner products of the residuals r_i = τ_i − (⟨τ_i,m⟩/‖m‖²) m
    w, V = np.linalg.eigh(R)
    v = V[:, -1]
    norm2 = float(np.sqrt(max(v @ R @ v, 1e-300)))
    x, y = Gm / np.sqrt(mm), (R @ v) / norm2
    if y[0] < 0:
        y, v = -y, -v
    points = {"θ_pre": (0.0, 0.0), **{name: (x[i], y[i]) for i, name in enumerate(names)},
              "mean (λ = 1/N)": (x.mean(), y.mean()), f"λ = {lam:g}": (lam * x.sum(), lam * y.sum())}
    if full is not None:
        gf = np.array([full.dot(t) for t in taus])
        fm = gf @ ones / n
        points["full training"] = (fm / np.sqrt(mm), float(v @ (gf - Gm * fm / mm)) / norm2)
    return pd.DataFrame.from_dict(points, orient="index", columns=["x", "y"])
