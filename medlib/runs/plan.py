"""Which runs a selection of the book needs, their state on disk and what the rest will cost.

The cost of a run that has not started is estimated from runs that have: the mean measured
seconds per epoch of the runs of the same family (Paper A: same dataset; Paper B: same
configuration), scaled by the run's number of training items; failing that, the same paper's.
A run without any measurement anywhere has no estimate (``None``), never an invented one.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from medlib.errors import MedlibError
from medlib.profiles import Profile
from medlib.runs import paper_a, paper_b
from medlib.runs.spec import DONE, Run, RunState, read_state

__all__ = ["Selection", "PlannedRun", "select_runs", "plan", "estimate", "plan_json", "format_plan",
           "format_seconds", "adaptor"]

ADAPTORS = {paper_a.PAPER: paper_a, paper_b.PAPER: paper_b}


def adaptor(run: Run):
    """The module that enumerates and executes ``run``'s paper."""
    return ADAPTORS[run.paper]


@dataclass(frozen=True)
class Selection:
    """Which runs: a paper (``None`` = both), a table of it, datasets/seeds (A), configurations/runs (B)."""

    paper: str | None = None
    table: str | None = None
    datasets: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    configs: tuple[str, ...] | None = None
    n_runs: int | None = None

    def __post_init__(self):
        if self.paper not in (None, "a", "b"):
            raise MedlibError(f"paper {self.paper!r}: expected 'a' (data vectors) or 'b' (AMMFM)")
        if self.table is not None and self.paper is None:
            raise MedlibError("--table needs --paper: Paper A has Tables 1–3, Paper B Tables 2–10")
        if self.paper == "a" and self.table is not None and str(self.table) not in paper_a.TABLES:
            raise MedlibError(f"Paper A has no Table {self.table}; expected one of {list(paper_a.TABLES)}")
        if self.paper == "b" and self.table is not None and str(self.table) not in paper_b.TABLES:
            raise MedlibError(f"Paper B has no trained Table {self.table}; expected one of {list(paper_b.TABLES)}")


def select_runs(profile: Profile, selection: Selection = Selection()) -> list[Run]:
    """The runs ``selection`` needs, dependencies first, each once."""
    P = profile
    out: list[Run] = []
    if selection.paper in (None, "a"):
        datasets = selection.datasets
        if selection.table is not None:
            datasets = (paper_a.TABLES[str(selection.table)],)
        with _paper_context("A", selection):
            out += paper_a.runs(P, datasets=datasets, seeds=selection.seeds)
    if selection.paper in (None, "b"):
        with _paper_context("B", selection):
            out += paper_b.runs(P, table=selection.table, configs=selection.configs, n_runs=selection.n_runs)
    unique = {r.id: r for r in out}
    return list(unique.values())


@contextlib.contextmanager
def _paper_context(paper: str, selection: Selection):
    """Say which paper's runs could not be listed (e.g. derm7pt not registered yet)."""
    try:
        yield
    except MedlibError as exc:
        hint = (f" (to plan the other paper alone: --paper {'b' if paper == 'A' else 'a'})"
                if selection.paper is None else "")
        raise MedlibError(f"cannot list Paper {paper}'s runs: {exc}{hint}") from exc


@dataclass(frozen=True)
class PlannedRun:
    run: Run
    state: RunState
    estimate_s: float | None  # seconds still to train (0 when done), None when nothing was measured

    def to_json(self) -> dict:
        return {**self.run.to_json(), "status": self.state.status, "epochs_done": self.state.epochs_done,
                "epoch_seconds": self.state.epoch_seconds, "estimate_s": self.estimate_s}


def _rates(pairs) -> tuple[dict, dict]:
    """Mean measured seconds per (epoch × training item), by family and by paper."""
    by_family, by_paper = {}, {}
    for run, state in pairs:
        if state.epoch_seconds is None or run.n_train <= 0:
            continue
        rate = state.epoch_seconds / run.n_train
        by_family.setdefault(run.family, []).append(rate)
        by_paper.setdefault(run.paper, []).append(rate)
    mean = lambda d: {k: sum(v) / len(v) for k, v in d.items()}  # noqa: E731
    return mean(by_family), mean(by_paper)


def estimate(pairs) -> list[PlannedRun]:
    """Attach the seconds left to each ``(run, state)``."""
    pairs = list(pairs)
    family_rate, paper_rate = _rates(pairs)
    out = []
    for run, state in pairs:
        left = max(run.epochs - state.epochs_done, 0)
        if state.done or left == 0:
            seconds = 0.0
        elif state.epoch_seconds is not None:
            seconds = left * state.epoch_seconds
        else:
            rate = family_rate.get(run.family, paper_rate.get(run.paper))
            seconds = left * run.n_train * rate if rate is not None else None
        out.append(PlannedRun(run, state, seconds))
    return out


def plan(profile: Profile, selection: Selection = Selection()) -> list[PlannedRun]:
    """Every run of ``selection`` with its state on disk and an estimated cost."""
    runs = select_runs(profile, selection)
    return estimate((r, read_state(r)) for r in runs)


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def summary(planned: list[PlannedRun]) -> dict:
    counts = {"done": 0, "partial": 0, "missing": 0}
    for p in planned:
        counts[p.state.status] += 1
    todo = [p for p in planned if not p.state.done]
    known = [p.estimate_s for p in todo if p.estimate_s is not None]
    return {**counts, "runs": len(planned), "estimate_s": sum(known) if known else (0.0 if not todo else None),
            "unestimated": sum(p.estimate_s is None for p in todo)}


def plan_json(planned: list[PlannedRun], profile: Profile) -> dict:
    P = profile
    from medlib.paths import medlib_home

    return {"profile": P.label, "medlib_home": str(medlib_home()), "summary": summary(planned),
            "runs": [p.to_json() for p in planned]}


def format_plan(planned: list[PlannedRun]) -> str:
    """One line per run, then the totals."""
    lines = [f"{'run':<40} {'key':<16} {'state':<18} {'left':>8}"]
    for p in planned:
        state = p.state.status
        if state == "partial":
            state = f"partial {p.state.epochs_done}/{p.run.epochs}"
        lines.append(f"{p.run.id:<40} {p.run.key:<16} {state:<18} {format_seconds(p.estimate_s):>8}")
    s = summary(planned)
    total = format_seconds(s["estimate_s"])
    extra = f" (+{s['unestimated']} runs without a measured epoch yet)" if s["unestimated"] else ""
    lines.append(f"{s['runs']} runs: {s['done']} done, {s['partial']} partial, {s['missing']} missing; "
                 f"about {total} of training left on one device{extra}")
    return "\n".join(lines)


def todo(planned: list[PlannedRun]) -> list[PlannedRun]:
    """The runs an executor must still do, in plan order (dependencies first)."""
    return [p for p in planned if p.state.status != DONE]
