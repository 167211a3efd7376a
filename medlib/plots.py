"""Figures the book draws more than once (matplotlib; every function returns the Figure)."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

__all__ = ["sample_grid", "class_balance", "learning_curves", "cosine_heatmap", "layer_cosines_plot", "lambda_sweep_plot",
           "paper_vs_ours"]


def sample_grid(images: torch.Tensor, labels: np.ndarray, classes: Sequence[str], rows: Mapping[str, np.ndarray],
                per_row: int = 6, seed: int = 0, shuffle: bool = True):
    """A grid of uint8 ``(N, 3, H, W)`` images: one row per entry of ``rows`` (e.g. per site).

    With ``shuffle`` each row shows a seeded random sample of its indices, else the first ones
    in order (to align rows, e.g. the two images of a pair).
    """
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(rows), per_row, figsize=(1.4 * per_row, 1.5 * len(rows)), squeeze=False)
    for r, (name, indices) in enumerate(rows.items()):
        indices = np.asarray(indices)
        pick = rng.choice(indices, size=min(per_row, len(indices)), replace=False) if shuffle else indices[:per_row]
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(pick):
                ax.imshow(images[pick[c]].permute(1, 2, 0).numpy())
                ax.set_title(classes[int(np.asarray(labels)[pick[c]])], fontsize=7)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves(histories: Mapping[str, pd.DataFrame], metrics=("train_loss", "val_accuracy")):
    """One panel per metric, one line per run (e.g. per site); x = epoch."""
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


def class_balance(counts: Mapping[str, Mapping[str, int]], title: str = ""):
    """Horizontal bars of ``{task: {class: count}}`` — one panel per task (derm7pt has eight)."""
    n = len(counts)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1, 1.2 + 1.1 * rows * max(map(len, counts.values())) / 3),
                             squeeze=False)
    for ax, (task, per_class) in zip(axes.flat, counts.items()):
        names, values = list(per_class), list(per_class.values())
        ax.barh(names, values, color="tab:blue")
        ax.invert_yaxis()
        ax.set_title(task, fontsize=9)
        ax.tick_params(labelsize=7)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v}", va="center", fontsize=7)
        ax.set_xlim(0, max(values) * 1.25 if values else 1)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def paper_vs_ours(panels: Mapping[str, pd.DataFrame], xlabel: str = "%", title: str | None = None):
    """One panel per entry: per row (a table's row or column), the paper's value beside ours.

    Each frame is indexed by row label with columns ``paper`` (and optionally ``paper_std``),
    ``ours_mean``, ``ours_std`` and optionally ``ours_values`` (a list per row: every run,
    drawn as small dots so the runs' spread is visible). NaN = not reported.
    """
    panels = {k: v for k, v in panels.items() if len(v)}
    if not panels:
        raise ValueError("paper_vs_ours needs at least one non-empty panel")
    heights = [0.42 * len(f) + 1.0 for f in panels.values()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.5, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (name, frame) in zip(axes[:, 0], panels.items()):
        y = np.arange(len(frame))
        paper_err = frame["paper_std"].fillna(0).to_numpy(float) if "paper_std" in frame else None
        ax.errorbar(frame["paper"].to_numpy(float), y - 0.12, xerr=paper_err, fmt="D", color="black",
                    label="paper (quoted)", zorder=3, capsize=2)
        ax.errorbar(frame["ours_mean"].to_numpy(float), y + 0.12, xerr=frame["ours_std"].fillna(0).to_numpy(float),
                    fmt="o", color="tab:orange", label="ours (mean ± sd over runs)", zorder=3, capsize=2)
        if "ours_values" in frame:
            for yi, values in zip(y, frame["ours_values"]):
                values = np.asarray(values if values is not None else [], dtype=float)
                ax.scatter(values, np.full(len(values), yi + 0.12), s=9, color="tab:orange", alpha=0.35, zorder=2)
        ax.set_yticks(y, frame.index, fontsize=9)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=11)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].legend(loc="lower left", fontsize=8, frameon=False, bbox_to_anchor=(0, 1.08), ncol=2)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig
