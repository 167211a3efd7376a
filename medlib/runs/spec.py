"""A run: one training the book needs, named by the key of the artifacts it leaves.

Artifacts are paths relative to ``$MEDLIB_HOME`` (a node mounting it elsewhere still finds them).
A run's state is read from disk only: ``done`` when every artifact is complete (a copy cut short is
not), ``partial`` when a readable checkpoint exists, else ``missing``; epoch times come from the
history :func:`medlib.train.fit` records.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from medlib.paths import medlib_home

__all__ = ["Run", "RunState", "read_state", "history_seconds", "complete", "lock_path", "relative"]

DONE, PARTIAL, MISSING = "done", "partial", "missing"


@dataclass(frozen=True)
class Run:
    """One training: ``paper`` ("a" | "b" | "beyond"), ``subject`` (dataset or configuration name), ``role``."""

    paper: str
    subject: str
    role: str  # A: "pretrain", "site1".."siteN", "full"; B: "run0".."run9"; beyond: a partition's site, a federation
    seed: int
    key: str  # the paper's cache key: what determines the result
    profile: str  # the profile's label ("smoke", "full", "full (dry run)")
    epochs: int
    n_train: int  # training items per epoch (scales the cost estimate between runs)
    artifacts: tuple[str, ...]  # relative to $MEDLIB_HOME; all exist when the run is done
    checkpoint: str | None = None  # relative to $MEDLIB_HOME; exists while a run is partial
    needs: tuple[str, ...] = ()  # ids of runs that must be done first (Paper A's θ_pre)
    family: str = field(default="", compare=False)  # runs whose epoch times predict each other
    prior_s: float | None = field(default=None, compare=False)  # the whole run's time before any is measured
    prior_basis: str = field(default="", compare=False)  # where prior_s comes from

    @property
    def id(self) -> str:
        return f"{self.paper}:{self.subject}:{self.role}:s{self.seed}"

    def paths(self, home: Path | None = None) -> list[Path]:
        home = medlib_home() if home is None else home
        return [home / a for a in self.artifacts]

    def checkpoint_path(self, home: Path | None = None) -> Path | None:
        home = medlib_home() if home is None else home
        return home / self.checkpoint if self.checkpoint else None

    def to_json(self) -> dict:
        return {"id": self.id, "paper": self.paper, "subject": self.subject, "role": self.role, "seed": self.seed,
                "key": self.key, "profile": self.profile, "epochs": self.epochs, "n_train": self.n_train,
                "artifacts": list(self.artifacts), "checkpoint": self.checkpoint, "needs": list(self.needs)}


@dataclass(frozen=True)
class RunState:
    status: str  # "done" | "partial" | "missing"
    epochs_done: int = 0
    epoch_seconds: float | None = None  # mean measured seconds per epoch of this run, if any

    @property
    def done(self) -> bool:
        return self.status == DONE


def relative(path: Path) -> str:
    """``path`` relative to ``$MEDLIB_HOME``: how a run names its files."""
    return os.path.relpath(path, medlib_home())


def history_seconds(history) -> float | None:
    """Mean ``seconds`` per epoch of a history (list of per-epoch records), or None."""
    values = [float(r["seconds"]) for r in history or () if isinstance(r, dict)
              and isinstance(r.get("seconds"), (int, float)) and math.isfinite(r["seconds"])]
    return sum(values) / len(values) if values else None


def _weights_history(path: Path) -> list:
    from medlib.io import read_metadata

    try:
        meta = read_metadata(path)
    except Exception:  # an unreadable header only costs the estimate, not the state
        return []
    history = meta.get("history") if isinstance(meta, dict) else None
    if isinstance(history, str):
        history = json.loads(history)
    return history if isinstance(history, list) else []


def lock_path(run: Run, home: Path | None = None) -> Path:
    """The lock file that lets one process at a time execute ``run`` on a shared home."""
    home = medlib_home() if home is None else home
    return home / "locks" / f"{run.id.replace(':', '-')}-{run.key or 'unkeyed'}.lock"


def complete(path: Path) -> bool:
    """Is the artifact at ``path`` whole? A safetensors file's header must cover its size exactly."""
    from medlib.errors import MedlibError
    from medlib.io import tensor_shapes

    if not path.is_file():
        return False
    if path.suffix != ".safetensors":
        return path.stat().st_size > 0
    try:
        tensor_shapes(path)
    except MedlibError:
        return False
    return True


def _checkpoint_progress(path: Path) -> tuple[int, list] | None:
    """(epochs done, history) of a training checkpoint, memory-mapped: nothing big is read; None if unreadable."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        history = state.get("history") or []
        return int(state.get("epoch", len(history))), list(history)
    except Exception:  # truncated, empty, random bytes: a checkpoint nothing can resume from
        return None


def read_state(run: Run, home: Path | None = None) -> RunState:
    """Done / partial (with epochs done) / missing, from the files under ``home``."""
    paths = run.paths(home)
    if paths and all(complete(p) for p in paths):
        return RunState(DONE, run.epochs, history_seconds(_weights_history(paths[0])))
    ckpt = run.checkpoint_path(home)
    progress = _checkpoint_progress(ckpt) if ckpt is not None and ckpt.is_file() else None
    if progress is not None:
        return RunState(PARTIAL, progress[0], history_seconds(progress[1]))
    return RunState(MISSING)
