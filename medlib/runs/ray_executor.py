"""The Ray executor: one Ray task per run, on any number of GPUs or nodes (``medlib[cluster]``; imported here only).

A run that needs another receives that task's result as an argument, so Ray starts it after its
dependency. Every node sees the same ``$MEDLIB_HOME``; a task that fails or whose worker dies is
retried by Ray and resumes from the run's checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time

from medlib.errors import MedlibError
from medlib.paths import medlib_home
from medlib.profiles import Profile
from medlib.runs.execute import Outcome, Progress, Report, execute_one
from medlib.runs.plan import PlannedRun, todo

__all__ = ["execute_ray", "session"]

# environment every worker needs to find the same files and settings as this driver
_FORWARDED_PREFIXES = ("MEDLIB_",)


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise MedlibError("the ray executor needs Ray: pip install 'medlib[cluster]' (or ray) on every node, "
                          "or use --executor local") from exc
    return ray


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)}
    env["MEDLIB_HOME"] = str(medlib_home())  # absolute: a worker's cwd is not the driver's
    return env


class _Board:
    """A tiny actor: which runs are running now, where, since when (the tasks report themselves)."""

    def __init__(self):
        self.running: dict[str, tuple[str, float]] = {}

    def started(self, run_id: str, host: str) -> None:
        self.running[run_id] = (host, time.time())

    def stopped(self, run_id: str) -> None:
        self.running.pop(run_id, None)

    def snapshot(self) -> dict[str, tuple[str, float]]:
        return dict(self.running)


def _task(run, profile: Profile, cpus: int, gpus: float, board, *needs) -> Outcome:
    """Body of one Ray task (in a worker process, possibly on another node)."""
    if not gpus:
        # a CPU run stays off the node's GPUs even where Ray leaves them visible to 0-GPU tasks
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    if not gpus:
        torch.set_num_threads(max(int(cpus), 1))  # the CPUs Ray granted this task, no more
    board.started.remote(run.id, socket.gethostname())
    try:
        return execute_one(run, profile)
    finally:
        board.stopped.remote(run.id)


def execute_ray(planned: list[PlannedRun], profile: Profile, *, address: str | None = None,
                gpus_per_run: float | None = None, cpus_per_run: int = 1, max_retries: int = 3,
                num_cpus: int | None = None,
                poll_s: float = 10.0, out=None) -> Report:
    """Execute the runs still to do as Ray tasks; returns when every one finished or failed.

    ``gpus_per_run`` None: 1 when the cluster has GPUs, else 0. ``address``: a running cluster (``"auto"``,
    ``"ray://host:10001"``); None starts a local Ray with ``num_cpus`` CPUs (default: all).
    """
    ray = _ray()
    P = profile
    work = todo(planned)
    report = Report()
    if not work:
        return report
    with session(address, num_cpus):
        resources = ray.cluster_resources()
        if gpus_per_run is None:  # one GPU per run wherever the cluster has GPUs
            gpus_per_run = 1 if resources.get("GPU", 0) else 0
        unit = "GPU" if gpus_per_run else "CPU"
        per_run = gpus_per_run or cpus_per_run
        slots = int(resources.get(unit, 0) // per_run)
        if slots < 1:
            raise MedlibError(f"the Ray cluster has {resources.get(unit, 0):g} {unit}s, fewer than one run's "
                              f"request of {per_run:g}; lower --gpus-per-run/--cpus-per-run or add nodes")
        progress = Progress(work, slots, out)
        progress.out(f"[runs] {len(work)} runs on Ray ({resources.get('GPU', 0):g} GPUs, "
                     f"{resources.get('CPU', 0):g} CPUs; {per_run:g} {unit} per run, {slots} at a time)")
        board = ray.remote(_Board).options(num_cpus=0).remote()
        remote = ray.remote(_task)
        env = {"env_vars": _worker_env()}
        refs, ids = {}, {}
        for p in work:
            needs = [refs[d] for d in p.run.needs if d in refs]
            ref = remote.options(num_gpus=gpus_per_run, num_cpus=cpus_per_run, max_retries=max_retries,
                                 retry_exceptions=True, name=p.run.id, runtime_env=env).remote(
                p.run, P, cpus_per_run, gpus_per_run, board, *needs)
            refs[p.run.id], ids[ref] = ref, p.run.id
        pending, last_line = list(refs.values()), 0.0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=min(poll_s, 1.0))
            for ref in ready:
                run_id = ids[ref]
                try:
                    report.add(ray.get(ref))
                    progress.finished(run_id, ok=True)
                except Exception as exc:  # the task's error after its retries; the others go on
                    report.failed[run_id] = _first_line(exc)
                    print(f"[runs] {run_id} failed: {report.failed[run_id]}", file=sys.stderr, flush=True)
                    progress.finished(run_id, ok=False)
            running = ray.get(board.snapshot.remote())
            for run_id, (_, since) in running.items():
                if run_id not in progress.done and run_id not in progress.failed:
                    progress.started(run_id, time.monotonic() - max(time.time() - since, 0.0))
            progress.running = {k: v for k, v in progress.running.items() if k in running}
            if ready or time.monotonic() - last_line >= poll_s:
                progress.show()
                last_line = time.monotonic()
        ray.kill(board)
        return report


@contextlib.contextmanager
def session(address: str | None = None, num_cpus: int | None = None):
    """Ray connected for the block (an open connection is reused; ``address`` None starts a local Ray)."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"address": address, "include_dashboard": False, "log_to_driver": True}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = int(num_cpus)
    ray.init(**kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def _first_line(exc: BaseException) -> str:
    # a RayTaskError's str() holds the remote traceback; its cause's message is what the user needs
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"
