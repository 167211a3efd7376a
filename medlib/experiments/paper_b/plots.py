"""Part B's figures (matplotlib; every function returns the Figure)."""

from __future__ import annotations

import ast
import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import cm
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

from .metrics import mean_sd
from .paper import PAPER_ROWS_AVG

__all__ = ["plot_pairs", "plot_params", "plot_attention", "plot_weight_surface", "plot_history", "plot_claims",
           "plot_tradeoff", "plot_framework", "plot_attention_block", "plot_saturation",
           "GLANCE_TABLES", "glance_frame", "glance_points"]


def plot_pairs(data, indices, per_row: int = 3):
    """Each case in ``indices`` as a clinical image above its dermoscopic image, ``per_row`` cases a row."""
    indices = list(indices)
    rows = math.ceil(len(indices) / per_row)
    fig, axes = plt.subplots(2 * rows, per_row, figsize=(2.6 * per_row, 3.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, i in enumerate(indices):
        r, c = 2 * (j // per_row), j % per_row
        clinical, derm = data.dataset.load_pair(int(i))
        axes[r, c].imshow(clinical)
        axes[r + 1, c].imshow(derm)
        note = " (clinic = derm)" if data.dataset.clinic_is_derm[i] else ""
        axes[r, c].set_title(f"{data.tasks['DIAG'][int(data.labels[i, 0])]}{note}\nclinical", fontsize=11)
        axes[r + 1, c].set_title("dermoscopic", fontsize=11)
    fig.tight_layout()
    return fig


def plot_params(frame: pd.DataFrame):
    """Horizontal bars: our full-size parameter count beside the paper's, per configuration."""
    frame = frame.drop_duplicates(["clinical", "dermoscopy", "fusion"]).set_index("label").rename_axis(None)
    bars = frame[["ours_m", "paper_m"]].astype(float).set_axis(["ours (computed)", "paper (quoted)"], axis=1)
    ax = bars.plot.barh(figsize=(8, 0.36 * len(frame) + 1.2), width=0.8, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("parameters (millions)")
    ax.legend(loc="lower right")
    ax.figure.tight_layout()
    return ax.figure


def plot_attention(example: dict, stage: str | None = None, queries=((0.5, 0.5), (0.2, 0.2))):
    """Clinical and dermoscopic image, then where dermoscopic query positions read from (rows of M_c), each row's
    opacity stretched from its minimum (transparent) to its maximum: this hides how flat a row is
    (:func:`attention_example` reports that)."""
    stage = stage or sorted(example["maps"])[0]
    m = example["maps"][stage]
    side, size = m.shape[0], example["dermoscopy"].shape[0]
    cell = size / side
    fig, axes = plt.subplots(1, 2 + len(queries), figsize=(2.6 * (2 + len(queries)), 3.1))
    axes[0].imshow(example["clinical"]), axes[0].set_title("clinical", fontsize=12)
    axes[1].imshow(example["dermoscopy"]), axes[1].set_title("dermoscopic", fontsize=12)
    for ax, (fy, fx) in zip(axes[2:], queries):
        qi, qj = min(int(fy * side), side - 1), min(int(fx * side), side - 1)
        w = m[qi, qj]
        row = (w - w.min()) / max(float(w.max() - w.min()), 1e-12)
        overlay = cm.inferno(row)
        overlay[..., 3] = 0.85 * row
        ax.imshow(example["dermoscopy"])
        ax.imshow(overlay, extent=(0, size, size, 0), interpolation="nearest")
        ax.add_patch(plt.Rectangle((qj * cell, qi * cell), cell, cell, fill=False, edgecolor="cyan", lw=2))
        ax.set_title(f"query ({qi}, {qj}), {stage}", fontsize=12)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_weight_surface(surfaces: dict[str, pd.DataFrame]):
    """Mean valid accuracy over renormalised (W_D, W_C) (W_FU = 1 − W_D − W_C), one panel per mode."""
    fig, axes = plt.subplots(1, len(surfaces), figsize=(5.2 * len(surfaces), 4.4), squeeze=False)
    lo = min(float(s.score.min()) for s in surfaces.values())
    hi = max(float(s.score.max()) for s in surfaces.values())
    for ax, (mode, s) in zip(axes[0], surfaces.items()):
        sc = ax.scatter(s.wn_D, s.wn_C, c=100 * s.score, cmap="viridis", vmin=100 * lo, vmax=100 * hi, s=60, marker="s")
        best = s.iloc[int(s.score.to_numpy().argmax())]
        ax.plot(best.wn_D, best.wn_C, marker="*", color="red", markersize=16, label="best (first in grid order)")
        ax.plot([0, 1], [1, 0], color="grey", lw=0.8)
        ax.set_xlabel("$W_D$ (dermoscopy)"), ax.set_ylabel("$W_C$ (clinical)")
        ax.set_title(f"{mode}-weighted"), ax.set_aspect("equal"), ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(sc, ax=axes[0].tolist(), label="mean task accuracy on valid (%)")
    return fig


def plot_history(result):
    """Learning curves of one run: loss per epoch (train, valid) and the learning rate, SWA epochs shaded."""
    h = result.history
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.4))
    ax.plot(h["epoch"], h["train_loss"], marker="o" if len(h) < 30 else None, label="train loss (augmented)")
    if "val_loss" in h:  # validated every eval_every epochs and after the last: plot only those epochs
        v = h.dropna(subset=["val_loss"])
        ax.plot(v["epoch"], v["val_loss"], marker="s" if len(v) < 30 else None, label="valid loss (current weights)")
    ax_lr.plot(h["epoch"], h["lr"], color="tab:green")
    ax_lr.set_yscale("log")
    start = result.meta.get("swa_start")
    for a in (ax, ax_lr):
        if start is not None:
            a.axvspan(start + 0.5, h["epoch"].max() + 0.5, color="grey", alpha=0.15, label="SWA averaging")
        a.set_xlabel("epoch")
    ax.set_ylabel("L_total (Eq. 3)"), ax_lr.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_claims(frame: pd.DataFrame, metric: str = "AVG AUC"):
    """The paper's Δ vs this run's Δ per claim (points; bars = ± sd over runs)."""
    f = frame[frame.metric == metric].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(f) + 1.4))
    y = np.arange(len(f))
    ax.scatter(f["paper Δ"], y, marker="D", color="black", label="paper (quoted)", zorder=3)
    ax.errorbar(f["this run Δ"], y, xerr=f["this run Δ sd"].fillna(0), fmt="o", color="tab:orange",
                label="this run (mean ± sd over runs)", zorder=2)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, [textwrap.fill(c, 34) for c in f["claim"]], fontsize=10)
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {metric} (points)", fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def plot_tradeoff(frame: pd.DataFrame):
    """Parameters (full size) vs AVG AUC, the paper's (left) and this run's; colour = framework, marker = block."""
    colours = dict(zip(sorted(frame["kind"].unique()), plt.cm.tab10.colors))
    markers = {"CAT": "o", "AAB": "^", "BAB": "s"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True)
    for ax, col, title in ((axes[0], "paper AVG AUC", "paper (quoted)"), (axes[1], "this run AVG AUC", "this run")):
        for _, row in frame.iterrows():
            ax.scatter(row["params (M)"], row[col], color=colours[row["kind"]], marker=markers[row["fusion"]],
                       s=70, edgecolor="black", linewidth=0.5)
        ax.set_xlabel("parameters, full size (M)", fontsize=11), ax.set_ylabel("AVG AUC (%)", fontsize=11)
        ax.set_title(title, fontsize=12), ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, marker="o", linestyle="", label=k) for k, c in colours.items()]
    handles += [Line2D([], [], color="grey", marker=m, linestyle="", label=f) for f, m in markers.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=10, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


# ============================================================================ results at a glance

# The Paper B tables the results page shows (their AVG AUC / AVG ACC rows).
GLANCE_TABLES = {
    "table7": "Table 7 — single-modal, symmetric baseline and AMMFM",
    "table9": "Table 9 — fusion frameworks (SFF/AFF) × fusion blocks (CAT/BAB/AAB)",
}


def glance_frame(data: dict) -> pd.DataFrame:
    """A table's AVG AUC / AVG ACC columns (paper beside this run) rebuilt from its result file."""
    records = data["rows"]
    columns = [ast.literal_eval(k) for k in records[0]]
    frame = pd.DataFrame([list(r.values()) for r in records], columns=pd.MultiIndex.from_tuples(columns))
    frame = frame.set_index(columns[0]).rename_axis(None)
    return frame[["AVG AUC", "AVG ACC"]]


def glance_points(data: dict) -> pd.DataFrame:
    """A Table 6/7/9/10 result file as points for :func:`medlib.plots.paper_vs_ours` (AVG AUC)."""
    number = data["table"].removeprefix("table")
    rows = {}
    for label, run in data["runs"].items():
        values = [100 * m["avg_auc"] for m in run["per_run"]]
        auc, auc_sd, *_ = PAPER_ROWS_AVG[number][label]
        mean, sd = mean_sd(values)
        rows[label] = {"paper": auc, "paper_std": auc_sd, "ours_mean": mean, "ours_std": sd, "ours_values": values}
    return pd.DataFrame.from_dict(rows, orient="index")


# ============================================================================ the architecture, drawn


def _box(ax, x, y, w, h, text, color, fontsize=8):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", facecolor=color,
                                edgecolor="black", linewidth=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, x0, y0, x1, y1, color="black"):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "color": color, "lw": 1.0})


def _shape(t: tuple) -> str:
    return "×".join(str(x) for x in t[1:])  # without the batch dimension


def _diagram(fig, ax):
    ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.axis("off")
    fig.tight_layout()
    return fig


def plot_framework(shapes: pd.DataFrame):
    """Fig. 2 drawn from :func:`framework_shapes`: two branches, AABs, three heads, Eq. 4; each box with its C×H×W."""
    stages = [s for s in shapes.stage.unique() if s.startswith("stage")]
    fig, ax = plt.subplots(figsize=(9, 1.15 * (len(stages) + 4)))
    xc, xa, xd = 0.18, 0.5, 0.82
    sides = ((xc, "clinical", "clinical", "#dbe9f6"), (xd, "dermoscopy", "dermoscopic", "#fde0c5"))
    y = lambda r: 1 - (r + 0.5) / (len(stages) + 3.6)  # noqa: E731
    at = lambda stage, branch: shapes[(shapes.stage == stage) & (shapes.branch == branch)]  # noqa: E731
    get = lambda stage, branch, what="": _shape(  # noqa: E731
        at(stage, branch).pipe(lambda f: f[f.what.str.startswith(what)]).iloc[-1]["shape"])
    for x, branch, name, colour in sides:
        _box(ax, x, y(0), 0.26, 0.055, f"{name} image\n{get('input', branch)}", colour)
    for r, stage in enumerate(stages, start=1):
        for x, branch, _, colour in sides:
            row = at(stage, branch).iloc[0]
            _box(ax, x, y(r), 0.26, 0.055, f"{row['what']}\n{_shape(row['shape'])}", colour)
            _arrow(ax, x, y(r - 1) - 0.03, x, y(r) + 0.03)
        if len(at(stage, "AAB")):
            text = f"AAB\nC → {get(stage, 'AAB', 'C projected')}\nM_c {get(stage, 'AAB', 'M_c')}"
            _box(ax, xa, y(r), 0.22, 0.07, text, "#e5f5e0")
            _arrow(ax, xc + 0.13, y(r), xa - 0.11, y(r), "tab:blue")
            _arrow(ax, xa + 0.11, y(r), xd - 0.13, y(r), "tab:green")
    r = len(stages) + 1
    for x, branch, _, _ in sides:
        _box(ax, x, y(r), 0.26, 0.05, f"pool → {get('pool', branch)}", "#eeeeee")
        _arrow(ax, x, y(r - 1) - 0.03, x, y(r) + 0.025)
    _box(ax, xa, y(r), 0.22, 0.05, f"concat → {get('pool', 'fusion')}", "#eeeeee")
    _arrow(ax, xc + 0.13, y(r), xa - 0.11, y(r)), _arrow(ax, xd - 0.13, y(r), xa + 0.11, y(r))
    r += 1
    for x, branch, name in ((xc, "clinical", "W_C"), (xa, "fusion", "W_FU"), (xd, "dermoscopy", "W_D")):
        text = f"{branch} head → 8 tasks\n(DIAG: {get('heads', branch)}) × ${name[0]}_{{{name[2:]}}}$"
        _box(ax, x, y(r), 0.24, 0.05, text, "#f2f0f7")
        _arrow(ax, x, y(r - 1) - 0.025, x, y(r) + 0.025)
    ax.text(0.5, y(r) - 0.085, "Eq. 4: P = W_D P_D + W_C P_C + W_FU P_FU (weights searched on valid)",
            ha="center", fontsize=9)
    return _diagram(fig, ax)


def plot_attention_block(shapes: pd.DataFrame, stage: str | None = None):
    """Fig. 3b drawn from :func:`framework_shapes`: the asymmetric attention block of one stage, with shapes."""
    stage = stage or shapes[shapes.branch == "AAB"].stage.iloc[0]
    at = shapes[shapes.stage == stage]
    get = lambda branch, what="": _shape(  # noqa: E731
        at[(at.branch == branch) & at.what.str.startswith(what)].iloc[0]["shape"])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for x, yb, w, text, colour in (
            (0.1, 0.75, 0.16, f"clinical C\n{get('clinical')}", "#dbe9f6"),
            (0.33, 0.75, 0.2, f"1×1 conv + resize\n{get('AAB', 'C projected')}", "#dbe9f6"),
            (0.58, 0.75, 0.2, f"Q = C_q, K = C_k\n(1×1 convs) {get('AAB', 'Q =')}", "#dbe9f6"),
            (0.85, 0.75, 0.24, f"M_c = softmax(QKᵀ/√C)\n{get('AAB', 'M_c')} (rows sum to 1)", "#e5f5e0"),
            (0.1, 0.25, 0.16, f"dermoscopic D\n{get('dermoscopy')}", "#fde0c5"),
            (0.45, 0.25, 0.2, f"D_v (1×1 conv)\n{get('AAB', 'D_v')}", "#fde0c5"),
            (0.82, 0.25, 0.3, "D' = M_c · D_v + D\n" + get("AAB", "D' ="), "#fde0c5")):
        _box(ax, x, yb, w, 0.12, text, colour)
    for (x0, y0, x1, y1) in ((0.18, 0.75, 0.23, 0.75), (0.43, 0.75, 0.48, 0.75), (0.68, 0.75, 0.73, 0.75),
                             (0.18, 0.25, 0.35, 0.25), (0.55, 0.25, 0.67, 0.25), (0.85, 0.69, 0.85, 0.31)):
        _arrow(ax, x0, y0, x1, y1)
    ax.annotate("", xy=(0.75, 0.19), xytext=(0.1, 0.19),
                arrowprops={"arrowstyle": "->", "lw": 0.8, "connectionstyle": "arc3,rad=0.25", "linestyle": "--"})
    ax.text(0.42, 0.04, "residual: + D", fontsize=8, ha="center")
    ax.set_title(f"asymmetric attention block, {stage}: the clinical map decides where the dermoscopic map reads",
                 fontsize=10)
    return _diagram(fig, ax)


def plot_saturation(maxima: dict):
    """Histogram of each row's largest attention weight at initialisation, with and without 1/√C."""
    n = maxima["n"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.logspace(np.log10(1 / n) - 0.1, 0.01, 50)
    ax.hist(maxima["scaled"], bins=bins, alpha=0.7, label=f"scaled by 1/√C ({maxima['scale']:.3f})")
    ax.hist(maxima["unscaled"], bins=bins, alpha=0.7, label="unscaled (the paper's Eq. 1)")
    ax.axvline(1 / n, color="grey", ls="--", lw=0.8)
    ax.text(1 / n, ax.get_ylim()[1] * 0.9, " uniform row (1/N)", fontsize=8)
    ax.axvline(1.0, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"largest weight in a row of M_c (N = {n} positions)"), ax.set_ylabel("rows")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig
