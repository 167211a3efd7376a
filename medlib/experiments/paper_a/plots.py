"""Paper A's figures: learning curves, cosines (Figure 2), the λ sweep and the method's 2-D sketch."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["learning_curves", "cosine_heatmap", "layer_cosines_plot", "lambda_sweep_plot", "method_sketch"]


def learning_curves(histories: Mapping[str, pd.DataFrame], metrics=("train_loss", "val_accuracy")):
    """One panel per metric, one line per run (e.g. per site); x = epoch."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, frame in histories.items():
            if metric in frame:  # evaluated epochs only (every eval_every and the last)
                shown = frame.dropna(subset=[metric])
                ax.plot(shown["epoch"], shown[metric], marker="o", ms=3, label=name,
                        lw=2.2 if name == "full" else 1.2, color="k" if name == "full" else None)
        ax.set_xlabel("epoch"), ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def cosine_heatmap(matrix: pd.DataFrame, title: str = "cosine similarity"):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.8, 3.2))
    im = ax.imshow(matrix.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(matrix.index)), matrix.index, fontsize=8)
    for (i, j), v in np.ndenumerate(matrix.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def layer_cosines_plot(frames: Mapping[str, pd.DataFrame]):
    """Figure 2 of Paper A: per-layer cosine to the full-training vector; sites blue, merged red."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(frames), 1, figsize=(7.5, 2.4 * len(frames)), squeeze=False)
    for ax, (name, df) in zip(axes[:, 0], frames.items()):
        x = np.arange(len(df))
        for col in df.columns:
            merged = col == "merged"
            ax.plot(x, df[col], color="tab:red" if merged else "tab:blue", lw=2 if merged else 0.9,
                    alpha=1 if merged else 0.6, label="merged (data vector)" if merged else None)
        ax.plot([], [], color="tab:blue", alpha=0.6, label="single sites")
        ax.set_title(name, fontsize=9), ax.set_ylabel("cosine"), ax.grid(alpha=0.3)
        ax.set_xlim(0, max(len(df) - 1, 1))
    axes[-1, 0].set_xlabel("convolution layer (network order)")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def lambda_sweep_plot(frames: Mapping[str, pd.DataFrame], n_sites: int, paper_lam: float):
    """Accuracy of θ_pre + λ Σ τ_i against λ, marking 1/N (the sites' mean) and the paper's λ."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, df in frames.items():
        ax.plot(df["lambda"], df["accuracy"], marker="o", ms=3, label=name)
    ax.axvline(1 / n_sites, color="grey", ls="--", lw=1)
    ax.axvline(paper_lam, color="tab:red", ls=":", lw=1.2)
    ymax = ax.get_ylim()[1]
    ax.text(1 / n_sites, ymax, " λ = 1/N (mean)", fontsize=8, va="top")
    ax.text(paper_lam, ymax, " paper's λ", fontsize=8, va="top", color="tab:red")
    ax.set_xlabel("λ"), ax.set_ylabel("test accuracy (%)"), ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def method_sketch(coords: pd.DataFrame, title: str = "data vectors, projected on two directions"):
    """θ_pre, the τ_i, their mean (λ = 1/N) and the paper's extrapolation, from :func:`sketch_coordinates`."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    origin = coords.loc["θ_pre"]
    sites = [r for r in coords.index if r.startswith("site")]
    merged = [r for r in coords.index if r.startswith("λ") or r.startswith("mean")]
    for r in sites:
        ax.annotate("", xy=coords.loc[r], xytext=origin, arrowprops=dict(arrowstyle="->", color="tab:blue", lw=1.2))
        ax.annotate(f"θ_{r[5:]}  (τ_{r[5:]})", coords.loc[r], textcoords="offset points", xytext=(4, 4), fontsize=9)
    far = coords.loc[merged[-1]]
    ax.plot([origin.x, far.x], [origin.y, far.y], ls="--", color="tab:red", lw=1)
    for r, marker in zip(merged, ("o", "*")):
        ax.plot(*coords.loc[r], marker=marker, ms=10 if marker == "*" else 7, color="tab:red", ls="")
        ax.annotate(r, coords.loc[r], textcoords="offset points", xytext=(6, -12), fontsize=9, color="tab:red")
    if "full training" in coords.index:
        ax.plot(*coords.loc["full training"], marker="s", color="tab:green", ls="")
        ax.annotate("full training (projection)", coords.loc["full training"], textcoords="offset points",
                    xytext=(6, 4), fontsize=9, color="tab:green")
    ax.plot(origin.x, origin.y, "ko")
    ax.annotate("θ_pre", (origin.x, origin.y), textcoords="offset points", xytext=(-30, -12), fontsize=9)
    ax.set_xlabel("along the mean data vector")
    ax.set_ylabel("where the sites differ most")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
