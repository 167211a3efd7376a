"""Training loss of AMMFM (paper B, Sec. 3.3, Eq. 2-3).

.. math::

    L_{total} = L_{derm} + L_{clic} + L_{fusion}, \\qquad
    L_K = \\sum_j^X \\sum_i^Y CE(\\ldots)

Eq. 3 *sums* the cross-entropy over the batch (X) and the Y = 8 tasks. The predecessor
code (FusionM4Net) *averages* over the batch and over the 8 tasks instead. The two differ
by the constant factor X·Y, which Adam (the paper's optimiser) all but ignores; averaging
keeps the loss readable (≈ ln(n_k) at initialisation) and independent of the batch size,
so ``reduction="mean"`` is the default. ``reduction="sum"`` is Eq. 3 literally.

Branches are weighted equally, as in Eq. 2. Whatever branches the model returns are
summed, so the same function trains single-modal models (one branch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .tasks import NUM_CLASSES, TASKS

__all__ = ["ammfm_loss", "branch_loss"]

_REDUCTIONS = ("mean", "sum")


def _check_targets(targets: torch.Tensor) -> None:
    if targets.dim() != 2 or targets.shape[1] != len(TASKS):
        raise ConfigError(
            f"targets must be (batch, {len(TASKS)}) class indices in task order {TASKS}, "
            f"got shape {tuple(targets.shape)}"
        )
    if targets.dtype != torch.long:
        raise ConfigError(f"targets must be int64 class indices, got dtype {targets.dtype}; use targets.long()")


def branch_loss(logits: list[torch.Tensor], targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """L_K of Eq. 3 for one branch: cross-entropy of its 8 task outputs.

    ``reduction="mean"``: mean over the batch, then over the 8 tasks (FusionM4Net);
    ``"sum"``: sum over both (Eq. 3).
    """
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
    """L_total of Eq. 2: the sum of :func:`branch_loss` over the model's branches.

    Args:
        output: ``{"clinical": [8 logits], "dermoscopy": [...], "fusion": [...]}`` (any subset;
            a non-list entry such as ``"attention"`` is skipped).
        targets: (B, 8) int64 class indices in the order of :data:`medlib.ammfm.tasks.TASKS`.
    """
    _check_targets(targets)
    branches = [v for v in output.values() if isinstance(v, (list, tuple))]
    if not branches:
        raise ConfigError(f"model output has no branch logits (keys: {sorted(output)})")
    return sum(branch_loss(logits, targets, reduction) for logits in branches)
