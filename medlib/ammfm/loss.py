"""Training loss of AMMFM (paper B, Sec. 3.3, Eq. 2-3): L_total = L_derm + L_clic + L_fusion, L_K = Σ_j^X Σ_i^Y CE.

Eq. 3 sums the cross-entropy over the batch (X) and the Y = 8 tasks; FusionM4Net's code averages
both. They differ by the constant X·Y, which Adam all but ignores; the mean keeps the loss
readable (≈ ln n_k at init) and batch-size independent, so ``reduction="mean"`` is the default
and ``"sum"`` is Eq. 3 literally. Branches weigh equally (Eq. 2); single-modal models have one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .tasks import NUM_CLASSES, TASKS

__all__ = ["ammfm_loss", "branch_loss"]

_REDUCTIONS = ("mean", "sum")


def branch_loss(logits: list[torch.Tensor], targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """L_K of Eq. 3 for one branch: cross-entropy of its 8 task outputs (mean or sum over batch and tasks)."""
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction={reduction!r} is not one of {_REDUCTIONS}")
    if len(logits) != len(TASKS):
        raise ConfigError(f"a branch must output {len(TASKS)} logit tensors ({TASKS}), got {len(logits)}")
    losses = []
    for k, (task, out) in enumerate(zip(TASKS, logits)):
        if out.dim() != 2 or out.shape[1] != NUM_CLASSES[k]:
            raise ConfigError(f"task {task}: logits must be (batch, {NUM_CLASSES[k]}), got {tuple(out.shape)}")
        losses.append(F.cross_entropy(out, targets[:, k], reduction=reduction))
    stacked = torch.stack(losses)
    return stacked.mean() if reduction == "mean" else stacked.sum()


def ammfm_loss(output: dict, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """L_total of Eq. 2: :func:`branch_loss` summed over the model's branches (non-list entries skipped).

    ``targets``: (B, 8) int64 class indices in :data:`medlib.ammfm.tasks.TASKS` order.
    """
    if targets.dim() != 2 or targets.shape[1] != len(TASKS):
        raise ConfigError(f"targets must be (batch, {len(TASKS)}) class indices in task order {TASKS}, "
                          f"got shape {tuple(targets.shape)}")
    if targets.dtype != torch.long:
        raise ConfigError(f"targets must be int64 class indices, got dtype {targets.dtype}; use targets.long()")
    branches = [v for v in output.values() if isinstance(v, (list, tuple))]
    if not branches:
        raise ConfigError(f"model output has no branch logits (keys: {sorted(output)})")
    return sum(branch_loss(logits, targets, reduction) for logits in branches)
