"""Figures both papers' chapters draw (matplotlib; every function returns the Figure); Paper A's own
are in :mod:`medlib.experiments.paper_a.plots`."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

__all__ = ["sample_grid", "class_balance", "paper_vs_ours"]


def sample_grid(images: torch.Tensor, labels: np.ndarray, classes: Sequence[str], rows: Mapping[str, np.ndarray],
                per_row: int = 6, seed: int = 0, shuffle: bool = True):
    """uint8 ``(N, 3, H, W)`` images, one row per entry of ``rows``: a seeded sample, or (no ``shuffle``) the first."""
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


def class_balance(counts: Mapping[str, Mapping[str, int]], title: str = ""):
    """Horizontal bars of ``{task: {class: count}}`` — one panel per task (derm7pt has eight)."""
    n = len(counts)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    height = 1.2 + 1.1 * rows * max(map(len, counts.values())) / 3
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1, height), squeeze=False)
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
    """One panel per frame: per row, the paper's value beside ours (NaN: not reported).

    Columns ``paper`` [``paper_std``], ``ours_mean``, ``ours_std`` [``ours_values``: every run, drawn as dots].
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
