"""Tables 1–3 (§4.2): row *i* restores each merged model on part *i* alone and shows the model fine-tuned on
part *i* as Base Model (see :mod:`~medlib.experiments.paper_a.paper`); row ``all sites`` restores on every
site's data, as §4.1's text describes. :func:`run_table` repeats it over the profile's seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medlib.experiments.paper_a.paper import COLUMNS, MERGED, paper_table, theta_pre_source
from medlib.experiments.paper_a.restore import restore_on_parts
from medlib.experiments.paper_a.runs import Trained, train_sites
from medlib.io import atomic_write_text
from medlib.paths import results_dir
from medlib.profiles import Profile
from medlib.runtime import provenance
from medlib.vectors import merge

__all__ = ["table", "TableResult", "run_table", "side_by_side", "paper_comparison"]


def table(tr: Trained, restore: str = "finetune_epoch") -> pd.DataFrame:
    """One seed of Table 1/2/3: rows = part index (restored on that part alone) + ``all sites``."""
    lam = tr.profile.paper_a.lam
    merged = {col: merge(tr.pretrained, tr.sites, method, lam=lam, seed=tr.seed) for col, method in MERGED.items()}
    parts = range(len(tr.sites))
    rows = {}
    for i in parts:
        row = {col: tr.accuracy(restore_on_parts(tr, m, [i], restore)) for col, m in merged.items()}
        row["Base Model"] = tr.accuracy(tr.sites[i])
        rows[str(i + 1)] = row
    rows["all sites"] = {col: tr.accuracy(restore_on_parts(tr, m, list(parts), restore)) for col, m in merged.items()}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df["Full Training"] = np.nan
    df.loc["1", "Full Training"] = tr.accuracy(tr.full)
    df.index.name = "part"
    return df[list(COLUMNS)]


def _cell(mean: float, std: float) -> str:
    return "" if pd.isna(mean) else (f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}")


@dataclass
class TableResult:
    """A table over several seeds: per-seed frames, mean, std and where the numbers came from."""

    dataset: str
    profile: str
    seeds: list[int]
    per_seed: dict[int, pd.DataFrame]
    provenance: dict

    @property
    def mean(self) -> pd.DataFrame:
        return pd.concat(self.per_seed.values()).groupby(level=0, sort=False).mean()

    @property
    def std(self) -> pd.DataFrame:
        frames = list(self.per_seed.values())
        if len(frames) < 2:
            return self.mean * np.nan
        return pd.concat(frames).groupby(level=0, sort=False).std(ddof=1)

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset, "profile": self.profile, "seeds": self.seeds, "columns": list(COLUMNS),
            "per_seed": {str(s): json.loads(df.to_json(orient="index")) for s, df in self.per_seed.items()},
            "mean": json.loads(self.mean.to_json(orient="index")),
            "std": json.loads(self.std.to_json(orient="index")),
            "paper": json.loads(paper_table(self.dataset).to_json(orient="index")),
            "provenance": self.provenance,
        }


def run_table(dataset: str, profile: Profile, seeds=None, restore: str = "finetune_epoch", *,
              split: str = "paper", test_seed: int | None = None) -> TableResult:
    """The whole Table over ``seeds``, written to ``results/paper_a/<dataset>-<profile>[-official][-test<N>].json``.

    Another split or ``test_seed`` (None: the profile's first seed, one test set for every seed) gets its own file.
    """
    P = profile
    seeds = list(P.seeds if seeds is None else seeds)
    per_seed = {s: table(train_sites(dataset, P, s, split=split, test_seed=test_seed), restore) for s in seeds}
    result = TableResult(dataset, P.name, seeds, per_seed,
                         {**provenance(P, seeds), "theta_pre": theta_pre_source(P), "dry_run": P.dry_run,
                          "split": split, "test_seed": P.first_seed if test_seed is None else test_seed})
    suffix = ("" if split == "paper" else f"-{split}") + ("" if test_seed is None else f"-test{test_seed}")
    path = results_dir() / "paper_a" / f"{dataset}-{P.result_tag}{suffix}.json"
    atomic_write_text(path, json.dumps(result.to_json(), indent=1, allow_nan=True) + "\n")
    print(f"[{dataset}] table written to {path.name}", flush=True)
    return result


def side_by_side(result: "TableResult | dict") -> pd.DataFrame:
    """This run's ``mean ± std`` beside the paper's numbers (Tables 1–3 layout); a :class:`TableResult` or its JSON."""
    data = result.to_json() if isinstance(result, TableResult) else result
    mean = pd.DataFrame(data["mean"]).T.reindex(columns=list(COLUMNS))
    std = pd.DataFrame(data["std"]).T.reindex(columns=list(COLUMNS))
    paper = paper_table(data["dataset"])
    out = pd.DataFrame(index=mean.index)
    for col in COLUMNS:
        out[(col, "paper")] = [f"{paper.loc[r, col]:.2f}" if r in paper.index and pd.notna(paper.loc[r, col]) else ""
                               for r in mean.index]
        out[(col, "ours")] = [_cell(m, s) for m, s in zip(mean[col], std[col])]
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index.name = "part"
    return out


def paper_comparison(result: TableResult) -> dict:
    """Claims of §4.2 checked on this run and on the paper's own table, as counts over the rows."""
    ours, paper = result.mean.loc[["1", "2", "3", "4"]], paper_table(result.dataset)
    full_ours, full_paper = result.mean.loc["1", "Full Training"], paper.loc["1", "Full Training"]

    def claims(t, full):
        return {
            "dv_beats_pm": int((t["Data Vector"] > t["Params Mean"]).sum()),
            "dv_beats_base": int((t["Data Vector"] > t["Base Model"]).sum()),
            "dv_beats_rv": int((t["Data Vector"] > t["Random Vector"]).sum()),
            "full_beats_every_base": bool(full > t["Base Model"].max()),
            "best_dv_minus_full": float(t["Data Vector"].max() - full),
        }

    return {"ours": claims(ours, full_ours), "paper": claims(paper, full_paper)}
