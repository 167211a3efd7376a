"""Paper B's runs: every configuration of Tables 2–10 × ``paper_b.n_runs`` (seed = first seed + run).

Keys and paths are :mod:`medlib.experiments.paper_b.runs`' own, so a run executed here is what a table reads.
"""

from __future__ import annotations

from pathlib import Path

from medlib.errors import MedlibError
from medlib.estimates import paper_b_seconds
from medlib.profiles import Profile
from medlib.runs.spec import Run, relative

__all__ = ["PAPER", "TABLES", "runs", "execute"]

PAPER = "b"


TABLES = ("2", "3", "4", "5", "6", "7", "8", "9", "10")  # Tang & Lasser 2024 tables with trained rows


def _configs(P: Profile, tables=(), names=None) -> list:
    from medlib.experiments.paper_b import all_configs, table_configs

    if not tables:
        configs = all_configs(P)
    else:
        by_table, rows = table_configs(P), []
        for table in tables:
            # Tables 3–5 report AMMFM's run of Table 2
            found = by_table.get(str(table)) or (by_table["2"] if str(table) in ("3", "4", "5") else None)
            if found is None:
                raise MedlibError(f"Paper B has no trained Table {table}; expected one of {list(TABLES)}")
            rows += found
        configs = list({cfg.name: cfg for _, cfg in rows}.values())
    if names:
        known = {c.name: c for c in all_configs(P)}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise MedlibError(f"Paper B has no configuration {unknown}; expected some of {sorted(known)}")
        configs = [c for c in configs if c.name in names]
    return configs


def _artifacts(P: Profile, config, run: int, data, first_seed: int | None = None) -> tuple[int, str, Path, Path]:
    from medlib.experiments.paper_b import runs as ex  # the run-level internals: key, paths, decoded data
    B = P.paper_b
    seed = (P.first_seed if first_seed is None else first_seed) + run
    key = ex.run_key(config, B, seed, data, P.max_steps, B.pretrained)
    weights, predictions = ex._paths(config, seed, key)
    return seed, key, weights, predictions


def runs(P: Profile, *, tables=(), configs=None, n_runs: int | None = None, seed: int | None = None) -> list[Run]:
    """Every Paper B run of ``tables`` (default: all), ``n_runs`` each, seeds from ``seed`` (default: the profile's
    first); derm7pt is decoded (keys hash its content)."""
    from medlib.experiments.paper_b import runs as ex
    data = ex._data_for(P)
    n = P.paper_b.n_runs if n_runs is None else int(n_runs)
    n_train = len(data.splits["train"])
    out = []
    for config in _configs(P, tables, configs):
        prior = paper_b_seconds(P, config)
        for run in range(n):
            run_seed, key, weights, predictions = _artifacts(P, config, run, data, seed)
            out.append(Run(PAPER, config.name, f"run{run}", run_seed, key, P.label, P.paper_b.epochs, n_train,
                           (relative(weights), relative(predictions)), relative(weights.with_suffix(".ckpt")),
                           family=f"b:{config.name}", prior_s=prior[0], prior_basis=prior[1]))
    return out


def execute(run: Run, P: Profile) -> None:
    """Train and predict ``run`` into its two artifacts (what the tables read)."""
    from medlib.experiments.paper_b import runs as ex
    known = {c.name: c for c in _configs(P)}
    if run.subject not in known:
        raise MedlibError(f"run {run.id}: no Paper B configuration {run.subject!r} in profile {P.label}")
    config, index = known[run.subject], int(run.role.removeprefix("run"))
    data = ex._data_for(P)
    _, key, _, _ = _artifacts(P, config, index, data, run.seed - index)
    if key != run.key:
        raise MedlibError(f"run {run.id} was planned with key {run.key} but the data and settings now give "
                          f"{key}: they changed between plan and execution; plan again")
    ex.train_config(config, P, index, seed=run.seed - index, data=data)
