"""Result files: where experiments write them and where the book reads them.

Experiments write ``$MEDLIB_HOME/results/<paper>/<name>-<profile>.json`` (with configuration and
provenance). A full-profile run can be *committed* to the repository as
``results/full/<paper>/<name>-full.json``; the results page then shows it in place of this
build's smoke numbers, and says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medlib.paths import results_dir
from medlib.profiles import Profile

__all__ = ["ResultFile", "find_result", "committed_results_dir", "parse_mean_std", "columns_as_points"]


@dataclass(frozen=True)
class ResultFile:
    path: Path
    data: dict
    committed: bool  # True: a full-profile run committed to the repository

    @property
    def provenance(self) -> dict:
        return self.data.get("provenance", {})

    def describe(self) -> str:
        p = self.provenance
        where = "committed full-profile run" if self.committed else "this build"
        return (f"{where} · profile {p.get('profile', '?')} · data {p.get('data_source', '?')} · "
                f"seeds {p.get('seed', '?')} · device {p.get('device', '?')} · {p.get('date', '?')}")


def committed_results_dir(start: Path | None = None) -> Path | None:
    """``results/full`` of the book repository containing ``start`` (default: cwd), if any."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "_toc.yml").is_file():
            return folder / "results" / "full"
    return None


def find_result(paper: str, name: str, profile: Profile) -> ResultFile | None:
    """The committed full-profile result if there is one, else this build's, else ``None``.

    A dry run reads only its own results (``<name>-full-dry-run.json``), never the committed ones.
    """
    tag = profile.result_tag
    committed = None if profile.dry_run else committed_results_dir()
    if committed is not None:
        path = committed / paper / f"{name}-full.json"
        if path.is_file():
            return ResultFile(path, json.loads(path.read_text()), True)
    path = results_dir() / paper / f"{name}-{tag}.json"
    if path.is_file():
        return ResultFile(path, json.loads(path.read_text()), False)
    return None


def parse_mean_std(text) -> tuple[float, float]:
    """``"87.6 ± 0.4"`` / ``"87.6±0.4"`` / ``"87.6"`` -> (87.6, 0.4 or NaN); empty or "–" -> (NaN, NaN)."""
    text = str(text).strip()
    if not text or text in ("–", "-", "n/a", "nan"):
        return math.nan, math.nan
    mean, _, std = text.partition("±")
    return float(mean), (float(std) if std.strip() else math.nan)


def columns_as_points(table: pd.DataFrame, paper: str = "paper", ours: str = "ours") -> pd.DataFrame:
    """A side-by-side table (columns ``(name, paper)``, ``(name, ours)`` of ``"mean ± std"`` texts, one row
    per part) as one point per column for :func:`medlib.plots.paper_vs_ours`.

    Per column, over the rows the paper reports (ours on the same rows): the paper's mean
    (``paper_std``: its spread over those rows), ours likewise, with ``ours_std`` the mean of our runs' standard deviations and ``ours_values``
    our value in each row.
    """
    rows = {}
    for name in dict.fromkeys(c[0] for c in table.columns):
        if (name, paper) not in table.columns or (name, ours) not in table.columns:
            continue
        theirs = np.array([parse_mean_std(v)[0] for v in table[(name, paper)]])
        reported = np.isfinite(theirs)  # like for like: only the rows the paper reports
        mine = [parse_mean_std(v) for v, keep in zip(table[(name, ours)], reported) if keep]
        theirs = theirs[reported]
        means = np.array([m for m, _ in mine], dtype=float)
        stds = np.array([s for _, s in mine], dtype=float)
        if not np.isfinite(theirs).any() or not np.isfinite(means).any():
            continue
        rows[name] = {"paper": np.nanmean(theirs), "paper_std": np.nanstd(theirs) if np.isfinite(theirs).sum() > 1 else np.nan,
                      "ours_mean": np.nanmean(means),
                      "ours_std": np.nanmean(stds) if np.isfinite(stds).any() else np.nan,
                      "ours_values": [float(v) for v in means[np.isfinite(means)]]}
    return pd.DataFrame.from_dict(rows, orient="index")
