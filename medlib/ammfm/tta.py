"""Six-view test-time augmentation and prediction over a loader (paper B, Sec. 4.1, after FusionM4Net).

Views (the same on both images): identity, vertical flip, horizontal flip, both, rotate 90° cw,
ccw; ``views=k`` uses the first k. Per branch and task the views are averaged as probabilities
(returned as their log, so every output is a "logit" whose softmax is the average) or as logits
(what the logit-weighted search of :mod:`medlib.ammfm.weight_search` needs).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .errors import ConfigError

__all__ = ["TTA_VIEWS", "apply_view", "tta_predict", "predict"]

TTA_VIEWS = ("identity", "vflip", "hflip", "vhflip", "rot90_cw", "rot90_ccw")
AVERAGES = ("probability", "logit")


def apply_view(x: torch.Tensor, view: str) -> torch.Tensor:
    """Apply one named view to an NCHW batch."""
    flips = {"identity": (), "vflip": (-2,), "hflip": (-1,), "vhflip": (-2, -1)}
    if view in flips:
        return x.flip(flips[view]) if flips[view] else x
    if view in ("rot90_cw", "rot90_ccw"):
        return torch.rot90(x, k=-1 if view == "rot90_cw" else 1, dims=(-2, -1))
    raise ConfigError(f"unknown TTA view {view!r}; expected one of {TTA_VIEWS}")


@torch.no_grad()
def tta_predict(model: torch.nn.Module, clinical: torch.Tensor | None, dermoscopy: torch.Tensor | None,
                views: int = 6, average: str = "probability") -> dict[str, list[torch.Tensor]]:
    """Branch -> 8 (B, n_k) tensors: log of the mean probability, or the mean logit, over the first ``views``.

    The model runs in eval mode (its previous mode is restored).
    """
    if not 1 <= views <= len(TTA_VIEWS):
        raise ConfigError(f"views={views}: expected 1..{len(TTA_VIEWS)} ({', '.join(TTA_VIEWS)})")
    if average not in AVERAGES:
        raise ConfigError(f"average={average!r} is not one of {AVERAGES}")
    was_training = model.training
    model.eval()
    try:
        sums: dict[str, list[torch.Tensor]] = {}
        for view in TTA_VIEWS[:views]:
            out = model(None if clinical is None else apply_view(clinical, view),
                        None if dermoscopy is None else apply_view(dermoscopy, view))
            for branch, logits in out.items():
                if not isinstance(logits, (list, tuple)):
                    continue
                terms = [torch.softmax(z.float(), 1) if average == "probability" else z.float() for z in logits]
                sums[branch] = [s + t for s, t in zip(sums[branch], terms)] if branch in sums else terms
        means = {b: [s / views for s in v] for b, v in sums.items()}
        if average == "probability":
            means = {b: [torch.log(m.clamp_min(1e-12)) for m in v] for b, v in means.items()}
        return means
    finally:
        model.train(was_training)


def _default_unpack(batch):
    if isinstance(batch, dict):
        return batch["clinical"], batch["dermoscopy"], batch["labels"]
    if isinstance(batch, (list, tuple)) and len(batch) == 3:
        return batch[0], batch[1], batch[2]
    raise ConfigError("cannot read a batch: expected (clinical, dermoscopy, labels) or a dict with those keys; "
                      "pass unpack=callable(batch) -> (clinical, dermoscopy, labels)")


def predict(model: torch.nn.Module, loader, device: torch.device | str = "cpu", views: int = 6,
            average: str = "probability", unpack: Callable | None = None):
    """:func:`tta_predict` over a loader on ``device``: (branch -> 8 numpy arrays, targets (N, 8))."""
    unpack = unpack or _default_unpack
    model.to(device)  # the batches go to ``device``: the model must be there too
    chunks: dict[str, list[list[np.ndarray]]] = {}
    targets = []
    for batch in loader:
        clinical, dermoscopy, labels = unpack(batch)
        clinical = None if clinical is None else clinical.to(device)
        dermoscopy = None if dermoscopy is None else dermoscopy.to(device)
        out = tta_predict(model, clinical, dermoscopy, views=views, average=average)
        for branch, logits in out.items():
            chunks.setdefault(branch, [[] for _ in logits])
            for k, z in enumerate(logits):
                chunks[branch][k].append(z.cpu().numpy())
        targets.append(np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels))
    if not targets:
        raise ConfigError("predict got an empty loader")
    outputs = {b: [np.concatenate(parts) for parts in per_task] for b, per_task in chunks.items()}
    return outputs, np.concatenate(targets).astype(np.int64)
