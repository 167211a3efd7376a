"""Result files: experiments write ``$MEDLIB_HOME/results/<paper>/<name>-<profile>.json``; a full-profile run
committed as ``results/full/<paper>/<name>-full.json`` is shown on the results page instead, saying so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medlib.paths import find_book_root, results_dir
from medlib.profiles import Profile


@dataclass(frozen=True)
class ResultFile:
    path: Path
    data: dict
    committed: bool  # True: a full-profile run committed to the repository

    def describe(self) -> str:
        p = self.data.get("provenance", {})
        where = "committed full-profile run" if self.committed else "this build"
        return (f"{where} · profile {p.get('profile', '?')} · data {p.get('data_source', '?')} · "
                f"seeds {p.get('seed', '?')} · device {p.get('device', '?')} · {p.get('date', '?')}")


def find_result(paper: str, name: str, profile: Profile) -> ResultFile | None:
    """The committed full-profile result if there is one, else this build's, else ``None``; a dry run reads only
    its own results (``<name>-full-dry-run.json``), never the committed ones."""
    book = None if profile.dry_run else find_book_root()
    candidates = [(book / "results" / "full" / paper / f"{name}-full.json", True)] if book else []
    for path, committed in candidates + [(results_dir() / paper / f"{name}-{profile.result_tag}.json", False)]:
        if path.is_file():
            return ResultFile(path, json.loads(path.read_text()), committed)
    return None


def parse_mean_std(text) -> tuple[float, float]:
    """``"87.6 ± 0.4"`` / ``"87.6±0.4"`` / ``"87.6"`` -> (87.6, 0.4 or NaN); empty or "–" -> (NaN, NaN)."""
    text = str(text).strip()
    if not text or text in ("–", "-", "n/a", "nan"):
        return math.nan, math.nan
    mean, _, std = text.partition("±")
    return float(mean), (float(std) if std.strip() else math.nan)


def columns_as_points(table: pd.DataFrame, paper: str = "paper", ours: str = "ours") -> pd.DataFrame:
    """A side-by-side table (columns ``(name, paper)``, ``(name, ours)`` of ``"mean ± std"`` texts) as one point
    per column for :func:`medlib.plots.paper_vs_ours`, over the rows the paper reports: the paper's mean and spread
    (``paper_std``), our mean, ``ours_std`` (the mean of our runs' standard deviations) and ``ours_values``.
    """
    rows = {}
    for name in dict.fromkeys(c[0] for c in table.columns):
        if (name, paper) not in table.columns or (name, ours) not in table.columns:
            continue
        theirs = np.array([parse_mean_std(v)[0] for v in table[(name, paper)]])
        reported = np.isfinite(theirs)  # like for like: only the rows the paper reports
        mine = np.array([parse_mean_std(v) for v in table[(name, ours)]], dtype=float).reshape(-1, 2)[reported]
        theirs, means, stds = theirs[reported], mine[:, 0], mine[:, 1]
        if not len(theirs) or not np.isfinite(means).any():
            continue
        rows[name] = {"paper": theirs.mean(), "paper_std": theirs.std() if len(theirs) > 1 else np.nan,
                      "ours_mean": np.nanmean(means),
                      "ours_std": np.nanmean(stds) if np.isfinite(stds).any() else np.nan,
                      "ours_values": [float(v) for v in means[np.isfinite(means)]]}
    return pd.DataFrame.from_dict(rows, orient="index")
