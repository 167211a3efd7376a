"""Paper A's own figure: the method sketched in two dimensions (the other plots: medlib.plots)."""

from __future__ import annotations

import pandas as pd

__all__ = ["method_sketch"]


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
