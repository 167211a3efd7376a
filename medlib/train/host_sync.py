"""Counting host reads of tensors (``.item()``, ``bool(t)``, ``.cpu()``...): each makes a CUDA step wait for
the GPU. Counted on every tensor, so on a CPU too, for calls from outside the ``torch`` package (Adam's
CPU step counters and the float16 scaler's one check per step are torch's own); benches and tests."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections import Counter

import torch

__all__ = ["SYNC_METHODS", "count_host_syncs", "syncs_per_step"]

# every way Python code reads a tensor's value on the host
SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


@contextlib.contextmanager
def count_host_syncs():
    """Count calls of :data:`SYNC_METHODS` inside the block: yields a :class:`collections.Counter`."""
    counts: Counter = Counter()
    originals = {name: getattr(torch.Tensor, name) for name in SYNC_METHODS}

    def counting(name, method):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            caller = inspect.currentframe().f_back.f_globals.get("__name__", "")
            if caller != "torch" and not caller.startswith("torch."):
                counts[name] += 1
            return method(*args, **kwargs)
        return wrapper

    for name, method in originals.items():
        setattr(torch.Tensor, name, counting(name, method))
    try:
        yield counts
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)


def syncs_per_step(model, loader, loss_fn, *, to_device, cfg) -> float:
    """Host reads per step of :func:`~medlib.train.train_one_epoch` over one epoch, after one of warm-up."""
    from medlib.train.batches import as_device
    from medlib.train.loop import train_one_epoch
    from medlib.train.precision import choose_precision
    from medlib.train.state import TrainingState

    device = as_device(cfg.device)
    precision = choose_precision(device, cfg.amp, cfg.amp_dtype)
    state = TrainingState.create(model.to(device), cfg, precision)
    epoch = {"device": device, "precision": precision, "to_device": to_device}
    train_one_epoch(state, loader, loss_fn, **epoch)  # first-call costs (lazy optimizer state) aside
    with count_host_syncs() as counts:
        train_one_epoch(state, loader, loss_fn, **epoch)
    steps = len(loader) if cfg.max_steps is None else min(len(loader), cfg.max_steps)
    return sum(counts.values()) / steps
