"""Loaders, batches on a device, and class weights: what the training loop is fed."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from medlib.errors import MedlibError

__all__ = ["class_weights_from_labels", "make_loader", "default_batch_to_device", "forward", "batch_size",
           "capped", "as_device"]


def as_device(device) -> torch.device:
    """``device`` as a :class:`torch.device`; ``"auto"`` (or None) picks cuda → mps → cpu."""
    from medlib.runtime import select_device

    if isinstance(device, torch.device):
        return device
    return select_device("auto" if device is None else str(device))


def class_weights_from_labels(labels, n_classes: int) -> Tensor:
    """Paper A's "Weighted Cross Entropy" weights (Table 4): ``w_c = N / (K · n_c)``, scikit-learn's "balanced".

    ``n_c`` counts class c among the N labels, K the classes present (an absent class gets 0), so every
    present class carries the same total weight N / K.
    """
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
    if y.numel() == 0:
        raise MedlibError("class_weights_from_labels needs at least one label")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise MedlibError(f"labels must lie in [0, {n_classes}); found {int(y.min())}..{int(y.max())}")
    counts = torch.bincount(y, minlength=n_classes).double()
    present = int((counts > 0).sum())
    weights = torch.where(counts > 0, y.numel() / (present * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()


def make_loader(dataset, batch_size: int, *, shuffle: bool, seed: int = 0, num_workers: int = 0,
                device: str | torch.device = "cpu", drop_last: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader with its own seeded generator (re-seeded per epoch by ``fit``), pinned on CUDA."""
    device = torch.device(device) if not isinstance(device, torch.device) else device
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda",
    )


def capped(loader: Iterable, max_steps: int | None) -> Iterator:
    """The first ``max_steps`` batches of ``loader`` (all of them when ``max_steps`` is None)."""
    return iter(loader) if max_steps is None else itertools.islice(loader, max_steps)


def _to(obj, device, channels_last: bool = False, non_blocking: bool = False):
    if isinstance(obj, Tensor):
        obj = obj.to(device, non_blocking=non_blocking)
        if channels_last and obj.ndim == 4 and obj.is_floating_point():
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(o, device, channels_last, non_blocking) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device, channels_last, non_blocking) for k, v in obj.items()}
    return obj


def default_batch_to_device(batch, device, channels_last: bool = False):
    """``(inputs, targets)`` on ``device`` from a batch ``(x, y)`` or ``x`` (targets None); nested tuples/dicts too."""
    if isinstance(batch, (list, tuple)):
        if len(batch) != 2:
            raise MedlibError(f"expected batches (inputs, targets); got a {type(batch).__name__} of {len(batch)}")
        x, y = batch
    else:
        x, y = batch, None
    nb = torch.device(device).type == "cuda"
    return _to(x, device, channels_last, nb), _to(y, device, False, nb)


def forward(model: nn.Module, x):
    """``model(*x)`` for a tuple of inputs, ``model(x)`` otherwise."""
    return model(*x) if isinstance(x, (list, tuple)) else model(x)


def batch_size(y, x) -> int:
    """Number of samples in a batch: the leading size of its targets, else of its inputs."""
    for t in (y, x):
        while isinstance(t, (list, tuple)) and t:
            t = t[0]
        if isinstance(t, dict) and t:
            t = next(iter(t.values()))
        if isinstance(t, Tensor) and t.ndim > 0:
            return int(t.shape[0])
    return 1
