"""The book's one planner: the runs a selection needs, their state on disk, and the time the rest will take.

Time left, best first: the run's own measured epochs; the measured epochs of its family (Paper A:
same dataset; Paper B: same configuration), then of its paper, per training item; the run's prior
estimate (its FLOPs at a T4's assumed rate in ``full``, the CPU's measured rate in smoke:
:mod:`medlib.estimates`); else ``None`` — never an invented number.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import pandas as pd

from medlib.errors import MedlibError
from medlib.profiles import Profile
from medlib.runs import beyond, paper_a, paper_b
from medlib.runs.spec import DONE, Run, RunState, read_state

__all__ = ["Selection", "PlannedRun", "select_runs", "plan", "estimate", "plan_json", "plan_frame", "format_plan",
           "format_duration", "summary", "adaptor"]

ADAPTORS = {paper_a.PAPER: paper_a, paper_b.PAPER: paper_b, beyond.PAPER: beyond}
PAPERS = {"a": "Paper A (data vectors)", "b": "Paper B (AMMFM)", "beyond": "Beyond the paper"}


def adaptor(run: Run):
    """The module that enumerates and executes ``run``'s chapter."""
    return ADAPTORS[run.paper]


@dataclass(frozen=True)
class Selection:
    """Which runs: a paper (None = the whole book), its table(s), datasets/seeds/split (A), configurations (B).

    ``download=False`` plans without fetching a real dataset: its runs are listed without sizes or keys.
    """

    paper: str | None = None
    table: str | tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    configs: tuple[str, ...] | None = None
    n_runs: int | None = None
    split: str = "paper"
    test_seed: int | None = None
    download: bool = True

    def __post_init__(self):
        if self.paper not in (None, *PAPERS):
            raise MedlibError(f"paper {self.paper!r}: expected 'a' (data vectors), 'b' (AMMFM) or 'beyond'")
        if self.table is not None and self.paper not in ("a", "b"):
            raise MedlibError("--table needs --paper a or b: Paper A has Tables 1–3, Paper B Tables 2–10")
        known = paper_a.TABLES if self.paper == "a" else paper_b.TABLES
        for table in self.tables:
            if table not in known:
                name = "Paper A has no Table" if self.paper == "a" else "Paper B has no trained Table"
                raise MedlibError(f"{name} {table}; expected one of {list(known)}")

    @property
    def tables(self) -> tuple[str, ...]:
        if self.table is None:
            return ()
        return (str(self.table),) if isinstance(self.table, (str, int)) else tuple(str(t) for t in self.table)


def select_runs(profile: Profile, selection: Selection = Selection()) -> list[Run]:
    """The runs ``selection`` needs, dependencies first, each once."""
    P, s = profile, selection
    out: list[Run] = []
    if s.paper in (None, "a"):
        datasets = tuple(paper_a.TABLES[t] for t in s.tables) or s.datasets
        with _paper_context("a", s):
            out += paper_a.runs(P, datasets=datasets, seeds=s.seeds, split=s.split, test_seed=s.test_seed,
                                download=s.download)
    if s.paper in (None, "b"):
        with _paper_context("b", s):
            seed = s.seeds[0] if s.seeds and s.paper == "b" else None
            out += paper_b.runs(P, tables=s.tables, configs=s.configs, n_runs=s.n_runs, seed=seed)
    if s.paper in (None, "beyond"):
        with _paper_context("beyond", s):
            out += beyond.runs(P, datasets=s.datasets, seeds=s.seeds, download=s.download)
    return list({r.id: r for r in out}.values())


@contextlib.contextmanager
def _paper_context(paper: str, selection: Selection):
    """Say whose runs could not be listed (e.g. derm7pt not registered yet) and how to plan the others."""
    try:
        yield
    except MedlibError as exc:
        others = " or ".join(f"--paper {p}" for p in PAPERS if p != paper)
        hint = f" (to plan the others alone: {others})" if selection.paper is None else ""
        raise MedlibError(f"cannot list {PAPERS[paper].split(' (')[0]}'s runs: {exc}{hint}") from exc


@dataclass(frozen=True)
class PlannedRun:
    run: Run
    state: RunState
    estimate_s: float | None  # seconds still to train (0 when done), None when nothing says
    basis: str = ""  # where estimate_s comes from

    def to_json(self) -> dict:
        return {**self.run.to_json(), "status": self.state.status, "epochs_done": self.state.epochs_done,
                "epoch_seconds": self.state.epoch_seconds, "estimate_s": self.estimate_s, "basis": self.basis}


def _rates(pairs) -> tuple[dict, dict]:
    """Mean measured seconds per (epoch × training item), by family and by paper."""
    by_family, by_paper = {}, {}
    for run, state in pairs:
        if state.epoch_seconds is not None and run.n_train > 0:
            rate = state.epoch_seconds / run.n_train
            by_family.setdefault(run.family, []).append(rate)
            by_paper.setdefault(run.paper, []).append(rate)
    return ({k: sum(v) / len(v) for k, v in d.items()} for d in (by_family, by_paper))


def estimate(pairs) -> list[PlannedRun]:
    """Attach the seconds left, and where they come from, to each ``(run, state)``."""
    pairs = list(pairs)
    family_rate, paper_rate = _rates(pairs)
    out = []
    for run, state in pairs:
        left = max(run.epochs - state.epochs_done, 0)
        rate = family_rate.get(run.family, paper_rate.get(run.paper))
        if state.done or left == 0:
            seconds, basis = 0.0, "done"
        elif state.epoch_seconds is not None:
            seconds, basis = left * state.epoch_seconds, "measured"
        elif rate is not None and run.n_train > 0:
            seconds, basis = left * run.n_train * rate, "measured (similar runs)"
        elif run.prior_s is not None:
            seconds, basis = run.prior_s * left / run.epochs, run.prior_basis
        else:
            seconds, basis = None, run.prior_basis or "unknown yet"
        out.append(PlannedRun(run, state, seconds, basis))
    return out


def plan(profile: Profile, selection: Selection = Selection()) -> list[PlannedRun]:
    """Every run of ``selection`` with its state on disk and the time it still needs."""
    return estimate((r, read_state(r)) for r in select_runs(profile, selection))


def format_duration(seconds: float | None) -> str:
    """``'2 h 05 min'``, ``'12 min'``, ``'40 s'``; ``'?'`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def summary(planned: list[PlannedRun]) -> dict:
    counts = {"done": 0, "partial": 0, "missing": 0}
    for p in planned:
        counts[p.state.status] += 1
    todo_ = todo(planned)
    known = [p.estimate_s for p in todo_ if p.estimate_s is not None]
    return {**counts, "runs": len(planned), "estimate_s": sum(known) if known else (0.0 if not todo_ else None),
            "unestimated": len(todo_) - len(known)}


def plan_frame(planned: list[PlannedRun], *, per: str = "run") -> pd.DataFrame:
    """The plan as a page shows it: one row per run, or ``per="subject"`` (dataset or configuration).

    ``seconds`` is NaN where a run's time is unknown; ``time`` says it readably.
    """
    rows = [{"paper": p.run.paper, "subject": p.run.subject, "role": p.run.role, "seed": p.run.seed,
             "epochs": p.run.epochs, "images": p.run.n_train or math.nan, "state": p.state.status,
             "seconds": math.nan if p.estimate_s is None else p.estimate_s, "basis": p.basis} for p in planned]
    frame = pd.DataFrame(rows, columns=["paper", "subject", "role", "seed", "epochs", "images", "state", "seconds",
                                        "basis"])
    if per == "subject":
        groups = frame.groupby("subject", sort=False)
        frame = pd.DataFrame({"runs": groups.size(), "done": groups["state"].apply(lambda s: int((s == DONE).sum())),
                              "seconds": groups["seconds"].sum(min_count=1).where(~groups["seconds"].apply(
                                  lambda s: s.isna().any()))})
        frame.insert(2, "to train", frame["runs"] - frame["done"])
        frame["basis"] = groups.apply(lambda g: ", ".join(sorted(set(g.loc[g["state"] != DONE, "basis"]))) or "done",
                                      include_groups=False)
    elif per != "run":
        raise MedlibError(f"per={per!r}: expected 'run' or 'subject'")
    frame["time"] = frame["seconds"].map(format_duration)
    return frame


def plan_json(planned: list[PlannedRun], profile: Profile) -> dict:
    from medlib.paths import medlib_home

    return {"profile": profile.label, "medlib_home": str(medlib_home()), "summary": summary(planned),
            "runs": [p.to_json() for p in planned]}


def format_plan(planned: list[PlannedRun]) -> str:
    """One line per run, then the totals."""
    lines = [f"{'run':<40} {'key':<16} {'state':<18} {'left':>12}"]
    for p in planned:
        state = p.state.status
        if state == "partial":
            state = f"partial {p.state.epochs_done}/{p.run.epochs}"
        lines.append(f"{p.run.id:<40} {p.run.key:<16} {state:<18} {format_duration(p.estimate_s):>12}")
    s = summary(planned)
    extra = f" (+{s['unestimated']} runs without an estimate yet)" if s["unestimated"] else ""
    lines.append(f"{s['runs']} runs: {s['done']} done, {s['partial']} partial, {s['missing']} missing; "
                 f"about {format_duration(s['estimate_s'])} of training left on one device{extra}")
    return "\n".join(lines)


def todo(planned: list[PlannedRun]) -> list[PlannedRun]:
    """The runs an executor must still do, in plan order (dependencies first)."""
    return [p for p in planned if p.state.status != DONE]
