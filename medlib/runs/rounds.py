"""Executing a selection in rounds: plan, execute (here or on Ray) the runs whose dependencies are done, plan again."""

from __future__ import annotations

from medlib.errors import MedlibError
from medlib.profiles import Profile
from medlib.runs import ray_executor
from medlib.runs.execute import Report, execute_local
from medlib.runs.plan import Selection, plan, todo

__all__ = ["execute"]


def _merge(into: Report, part: Report) -> None:
    into.trained += part.trained
    into.skipped += part.skipped
    into.resumed.update(part.resumed)
    into.failed.update(part.failed)
    into.outcomes += part.outcomes


def execute(profile: Profile, selection=None, *, executor: str = "local", out=None,
            **ray_options) -> Report:
    """Plan ``selection`` and execute every run not done, with ``executor`` ("local" or "ray").

    A run whose key hashes another's output (θ_pre) waits for a later round. ``ray_options`` go to
    :func:`medlib.runs.ray_executor.execute_ray` (address, gpus_per_run, ...).
    """
    P = profile
    selection = selection or Selection()
    if executor not in ("local", "ray"):
        raise MedlibError(f"unknown executor {executor!r}: expected 'local' (this process) or 'ray'")
    report, attempted = Report(), set()
    session = None
    if executor == "ray":
        session = ray_executor.session(ray_options.pop("address", None), ray_options.pop("num_cpus", None))
        session.__enter__()
    try:
        while True:
            planned = plan(P, selection)
            done = {p.run.id for p in planned if p.state.done}
            ready, blocked = [], []
            for p in todo(planned):
                if p.run.id in attempted:
                    continue
                if all(d in done for d in p.run.needs) and p.run.key:
                    ready.append(p)
                elif any(d in report.failed for d in p.run.needs):
                    blocked.append(p)
            for p in blocked:
                report.failed[p.run.id] = f"needs {[d for d in p.run.needs if d in report.failed]}, which failed"
                attempted.add(p.run.id)
            if not ready:
                return report
            attempted |= {p.run.id for p in ready}
            if executor == "ray":
                part = ray_executor.execute_ray(ready, P, out=out, **ray_options)
            else:
                part = execute_local(ready, P, out=out)
            _merge(report, part)
    finally:
        if session is not None:
            session.__exit__(None, None, None)
