"""Everything a training needs to continue after a kill: :class:`TrainingState` and its checkpoint, the site's
own file (``torch.save`` atomically, read with ``weights_only=True``; exchanged weights are safetensors). Exact
resume rests on one rule: epoch ``e``'s randomness is a function of ``(seed, e)`` (:func:`seed_epoch`). A
checkpoint of another run (``binding``, config) or an unreadable one is refused in one line. Written every
10 minutes (:class:`CheckpointCadence`) and after the last epoch: a ResNet50 with Adam state is ~0.3 GB.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel

from medlib.errors import MedlibError
from medlib.io import atomic_path, first_line
from medlib.train.config import History, TrainConfig
from medlib.train.precision import Precision

__all__ = ["TrainingState", "CheckpointCadence", "seed_epoch", "DEFAULT_CHECKPOINT_EVERY_S"]

CHECKPOINT_FORMAT = "medlib-train-checkpoint/1"
DEFAULT_CHECKPOINT_EVERY_S = 600.0


class CheckpointCadence:
    """Is a checkpoint due? Every ``every_s`` seconds of training (0: every epoch) and after the last epoch."""

    def __init__(self, every_s: float = DEFAULT_CHECKPOINT_EVERY_S, clock: Callable[[], float] = time.monotonic):
        if every_s < 0 or math.isnan(every_s):
            raise MedlibError(f"checkpoint_every_s={every_s}: expected seconds >= 0 (0: after every epoch)")
        self.every_s, self.clock = every_s, clock
        self.last = clock()

    def due(self, epochs_done: int, epochs: int) -> bool:
        return epochs_done >= epochs or self.clock() - self.last >= self.every_s

    def written(self) -> None:
        self.last = self.clock()


def seed_epoch(seed: int, epoch: int, loader) -> None:
    """Make epoch ``epoch``'s randomness a function of ``(seed, epoch)`` only."""
    s = (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)  # also seeds every CUDA device
    for g in _loader_generators(loader):
        g.manual_seed(s)


def _loader_generators(loader) -> list[torch.Generator]:
    """Every torch.Generator that decides ``loader``'s order (DataLoader, sampler, chained loaders)."""
    found = []
    batch_sampler = getattr(loader, "batch_sampler", None)
    for obj in (loader, getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)):
        g = getattr(obj, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    for sub in getattr(loader, "loaders", ()) or ():
        found += [g for g in _loader_generators(sub) if all(g is not h for h in found)]
    return found


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _changed(expected: dict, saved) -> str:
    """The keys of ``expected`` whose value ``saved`` (a dict, or anything) does not share, comma-separated."""
    saved = saved if isinstance(saved, dict) else {}
    return ", ".join(sorted(k for k in expected if saved.get(k) != expected[k]))


@dataclass
class TrainingState:
    """The model and everything that moves with it from one epoch to the next."""

    cfg: TrainConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    swa_scheduler: SWALR | None
    scaler: torch.amp.GradScaler
    swa_model: AveragedModel | None
    history: History
    epoch: int = 0  # epochs done
    skipped_in_a_row: int = 0  # steps skipped in a row (not checkpointed: a resume starts a new count)
    binding: dict | None = None  # what the checkpoint belongs to besides cfg (JSON-able: data, site, θ_pre)

    @classmethod
    def create(cls, model: nn.Module, cfg: TrainConfig, precision: Precision,
               binding: dict | None = None) -> "TrainingState":
        """A fresh state: Adam over the trainable parameters, the schedules and SWA of ``cfg``."""
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise MedlibError("the model has no trainable parameters")
        # fused on CUDA: the step and GradScaler's inf check stay on the device (no host sync per step)
        optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     fused=all(p.is_cuda for p in params) or None)
        swa = cfg.swa_start is not None
        # with swa_lr, SWALR takes over at swa_start: the cosine schedule spans the epochs before it
        main_epochs = cfg.swa_start if (swa and cfg.swa_lr is not None) else cfg.epochs
        scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(main_epochs, 1))
                     if cfg.scheduler == "cosine" else None)
        swa_scheduler = SWALR(optimizer, swa_lr=cfg.swa_lr, anneal_epochs=1) if swa and cfg.swa_lr is not None else None
        return cls(cfg, model, optimizer, scheduler, swa_scheduler, precision.grad_scaler(),
                   AveragedModel(model) if swa else None, History(), binding=dict(binding) if binding else None)

    def step_schedules(self) -> None:
        """After an epoch: set the next one's lr (SWALR's from ``swa_start`` on)."""
        if self.swa_scheduler is not None and self.epoch >= self.cfg.swa_start:
            self.swa_scheduler.step()
        elif self.scheduler is not None:
            self.scheduler.step()

    def save(self, path: str | Path) -> int:
        """Write the state to ``path`` atomically, counted in the history; return the bytes written."""
        state = {
            "format": CHECKPOINT_FORMAT, "epoch": self.epoch, "config": self.cfg.fingerprint(),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            # SWALR keeps its annealing *function* in its state; the constructor recreates it
            "swa_scheduler": ({k: v for k, v in self.swa_scheduler.state_dict().items() if k != "anneal_func"}
                              if self.swa_scheduler is not None else None),
            "scaler": self.scaler.state_dict(),
            "swa_model": self.swa_model.state_dict() if self.swa_model is not None else None,
            "rng": _rng_state(), "history": self.history.records, "binding": self.binding,
            "num_threads": torch.get_num_threads(),
        }
        with atomic_path(Path(path)) as tmp:
            torch.save(state, tmp)
            size = tmp.stat().st_size
        self.history.checkpoints_written += 1
        self.history.checkpoint_bytes += size
        return size

    def resume(self, path: Path) -> None:
        """Continue from ``path`` if it exists, saying so: a resumed run must never pass for a fresh one."""
        epochs = self.cfg.epochs
        if not path.exists():
            if self.cfg.log_every:
                print(f"no checkpoint at {path}: training from scratch", flush=True)
            return
        self.load(path)
        left = f"{epochs - self.epoch} left" if self.epoch < epochs else "nothing left to train"
        print(f"resuming from checkpoint {path} after epoch {self.epoch}/{epochs} ({left})", flush=True)

    def load(self, path: str | Path) -> None:
        """Continue from the checkpoint at ``path``, written with the same :class:`TrainConfig`."""
        path = Path(path)
        start_over = "delete it (or run without resume) to start over"
        # on the CPU: RNG states must stay CPU byte tensors; load_state_dict copies the rest where it lives
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, empty, random bytes, deleted: torch raises many types
            # torch's own message can run to a paragraph and suggests weights_only=False: the type is enough
            raise MedlibError(f"{path} is not a readable training checkpoint (truncated, empty or corrupt: "
                              f"{type(exc).__name__}); {start_over}") from exc
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise MedlibError(f"{path} is not a medlib training checkpoint; {start_over}")
        if self.binding is not None and state.get("binding") != self.binding:
            changed = _changed(self.binding, state.get("binding")) or "binding"
            raise MedlibError(f"{path} belongs to another run (its {changed} differ); {start_over}")
        threads = state.get("num_threads")
        if threads is not None and threads != torch.get_num_threads():
            print(f"{path} was written with {threads} threads, this process has {torch.get_num_threads()}: "
                  "the resumed weights will not be bitwise those of an uninterrupted run", flush=True)
        if state.get("config") != self.cfg.fingerprint():
            raise MedlibError(f"{path} was written with different settings "
                              f"({_changed(self.cfg.fingerprint(), state.get('config'))}); resume with the same "
                              f"settings, or {start_over}")
        try:
            self._restore(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a part missing or misshapen
            raise MedlibError(f"{path} does not fit this model and optimizer ({first_line(exc)}); "
                              f"{start_over}") from exc
        self.history.checkpoint = path

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.swa_scheduler is not None:
            self.swa_scheduler.load_state_dict(state["swa_scheduler"])
        if state["scaler"]:  # empty when written without float16 (e.g. on a GPU with bfloat16)
            self.scaler.load_state_dict(state["scaler"])
        if self.swa_model is not None and state["swa_model"] is not None:
            self.swa_model.load_state_dict(state["swa_model"])
        _set_rng_state(state["rng"])
        self.history.records = list(state["history"])
        self.epoch = self.history.resumed_from = int(state["epoch"])
