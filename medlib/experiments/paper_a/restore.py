"""Restoring BatchNorm state on a hospital's own data (§3.5), as the tables do: row *i* restores on part *i*
alone, batches and class weights both; statistics from un-augmented inputs (only ``finetune_epoch`` augments).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from medlib.bn import batchnorm_layers, restore_batchnorm
from medlib.experiments.paper_a.runs import Trained
from medlib.train import class_weights_from_labels

__all__ = ["restore_on_parts", "averaged_stats_kept"]


def restore_on_parts(tr: Trained, model, parts: Sequence[int], method: str = "finetune_epoch", *,
                     cumulative_stats: bool = False):
    """``model`` restored with ``method`` on the data of ``parts`` (0-based) only; ``cumulative_stats`` as in
    :func:`~medlib.bn.restore_batchnorm`."""
    indices = [tr.data.partition.sites[p] for p in parts]
    training = method == "finetune_epoch"
    loaders = [tr.part_loader(p, train=training) for p in parts]
    labels = tr.data.labels[np.concatenate(indices)]
    return restore_batchnorm(model, loaders, method, device=tr.device, lr=tr.profile.paper_a.lr, seed=tr.seed,
                             class_weights=class_weights_from_labels(labels, tr.n_classes),
                             cumulative_stats=cumulative_stats)


def averaged_stats_kept(before, restored, fresh) -> float:
    """The share k of ``before``'s BN statistics still in ``restored``: the least-squares fit over all channels
    of restored = k · before + (1 − k) · fresh, ``fresh`` being the same epoch with ``cumulative_stats``
    (momentum m over n batches predicts (1 − m)ⁿ, but the weights move during the epoch)."""
    def stats(model):
        return torch.cat([torch.cat([bn.running_mean.flatten(), bn.running_var.flatten()]).double().cpu()
                          for bn in batchnorm_layers(model).values()])

    b, r, f = stats(before), stats(restored), stats(fresh)
    spread = float((b - f) @ (b - f))
    return float((r - f) @ (b - f)) / spread if spread > 0 else math.nan  # nothing to tell apart: undefined
