"""Executing runs: one run (:func:`execute_one`, what every executor calls), progress, the local executor.

:func:`execute_one` holds the run's lock on the shared home, looks at the disk again (a run finished
meanwhile is not trained twice), removes what cannot be resumed or read, saying which, and calls the
paper's own training code, which resumes from the run's checkpoint and writes its artifacts atomically.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass, field

from medlib.errors import MedlibError
from medlib.io import file_lock
from medlib.profiles import Profile
from medlib.runs.plan import PlannedRun, adaptor, estimate, format_duration, todo
from medlib.runs.spec import MISSING, Run, RunState, complete, lock_path, read_state

__all__ = ["Outcome", "Report", "Progress", "execute_one", "execute_local"]


@dataclass(frozen=True)
class Outcome:
    """What one execution of a run did."""

    run_id: str
    trained: bool  # False: the artifacts were already there
    resumed_from: int  # epochs in the checkpoint it started from (0: from scratch)
    seconds: float
    host: str
    state: RunState


def _remove_unusable(run: Run, state: RunState) -> None:
    """Delete what would make the paper's code fail on every rerun: truncated artifacts, an unreadable checkpoint."""
    ckpt = run.checkpoint_path()
    broken = [p for p in run.paths() if p.is_file() and not complete(p)]
    if state.status == MISSING and ckpt is not None and ckpt.is_file():  # a checkpoint read_state could not read
        broken.append(ckpt)
    for path in broken:
        print(f"[runs] {run.id}: {path} is truncated or unreadable; removed, training the run again", flush=True)
        path.unlink(missing_ok=True)


def execute_one(run: Run, profile: Profile) -> Outcome:
    """Bring ``run`` to done under its lock: nothing if its artifacts exist, else train (resuming a checkpoint)."""
    P = profile
    waiting = f"[runs] {run.id}: another process is executing it; waiting for it to finish"
    with file_lock(lock_path(run), waiting=waiting):
        return _execute_locked(run, P)


def _execute_locked(run: Run, P: Profile) -> Outcome:
    started = time.perf_counter()
    before = read_state(run)
    if before.done:
        print(f"[runs] {run.id}: already done (by another process or an earlier execute); skipped", flush=True)
        return Outcome(run.id, False, run.epochs, 0.0, socket.gethostname(), before)
    _remove_unusable(run, before)
    if before.status == "partial":
        print(f"[runs] {run.id}: resuming from its checkpoint ({before.epochs_done}/{run.epochs} epochs done)",
              flush=True)
    adaptor(run).execute(run, P)
    after = read_state(run)
    if not after.done:
        missing = [str(p) for p in run.paths() if not p.is_file()]
        raise MedlibError(f"run {run.id} finished without writing {missing}: its paper's code names its "
                          "artifacts differently than the plan; report this as a bug")
    return Outcome(run.id, True, before.epochs_done, time.perf_counter() - started, socket.gethostname(), after)


@dataclass
class Report:
    """What an execute did: trained, already done, failed (id → message)."""

    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    resumed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        (self.trained if outcome.trained else self.skipped).append(outcome.run_id)
        if outcome.trained and outcome.resumed_from:
            self.resumed[outcome.run_id] = outcome.resumed_from

    def to_json(self) -> dict:
        return {"trained": self.trained, "skipped": self.skipped, "resumed": self.resumed, "failed": self.failed}


class Progress:
    """done / running / failed counts and the time left, for a fixed set of runs and ``slots`` in parallel."""

    def __init__(self, planned: list[PlannedRun], slots: int = 1, out=None):
        self.planned = {p.run.id: p for p in planned}
        self.slots = max(int(slots), 1)
        self.out = out or (lambda line: print(line, flush=True))
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.running: dict[str, float] = {}  # id -> start time
        self.t0 = time.monotonic()

    def started(self, run_id: str, at: float | None = None) -> None:
        self.running.setdefault(run_id, time.monotonic() if at is None else at)

    def finished(self, run_id: str, ok: bool) -> None:
        self.running.pop(run_id, None)
        (self.done if ok else self.failed).add(run_id)
        if ok:  # a measured run sharpens the estimates of the runs still waiting
            fresh = [(p.run, read_state(p.run) if p.run.id == run_id else p.state) for p in self.planned.values()]
            self.planned = {p.run.id: p for p in estimate(fresh)}

    def seconds_left(self) -> float | None:
        now, total, unknown = time.monotonic(), 0.0, 0
        for rid, p in self.planned.items():
            if rid in self.done or rid in self.failed:
                continue
            if p.estimate_s is None:
                unknown += 1
                continue
            total += max(p.estimate_s - (now - self.running[rid] if rid in self.running else 0.0), 0.0)
        if unknown and not total:
            return None  # nothing measured yet: no number rather than an invented one
        remaining = len(self.planned) - len(self.done) - len(self.failed)
        return total / max(min(self.slots, remaining), 1)

    def line(self) -> str:
        n = len(self.planned)
        waiting = n - len(self.done) - len(self.failed) - len(self.running)
        elapsed = format_duration(time.monotonic() - self.t0)
        return (f"[runs] {len(self.done)}/{n} done, {len(self.running)} running, {waiting} waiting, "
                f"{len(self.failed)} failed; {elapsed} elapsed, ~{format_duration(self.seconds_left())} left")

    def show(self) -> None:
        self.out(self.line())


def execute_local(planned: list[PlannedRun], profile: Profile, *, out=None) -> Report:
    """Execute the runs still to do one after the other in this process (a single GPU or CPU)."""
    P = profile
    work = todo(planned)
    progress, report = Progress(work, 1, out), Report()
    for p in work:
        blocked = [d for d in p.run.needs if d in report.failed]
        if blocked:
            report.failed[p.run.id] = f"needs {blocked}, which failed"
            progress.finished(p.run.id, ok=False)
            continue
        progress.started(p.run.id)
        progress.out(f"[runs] {p.run.id} ({p.state.status}, ~{format_duration(p.estimate_s)})")
        try:
            report.add(execute_one(p.run, P))
            progress.finished(p.run.id, ok=True)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one failed run must not stop the others; its message is reported
            report.failed[p.run.id] = f"{type(exc).__name__}: {exc}"
            print(f"[runs] {p.run.id} failed: {exc}", file=sys.stderr, flush=True)
            progress.finished(p.run.id, ok=False)
        progress.show()
    return report
