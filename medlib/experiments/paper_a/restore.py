"""Restoring BatchNorm state on a hospital's own data (§3.5), as the tables do it.

Row *i* of Tables 1–3 restores the merged model on part *i*: hospital *i* holds only its own
images and labels, so everything the restoration uses — batches *and* the class weights of
the loss — comes from part *i* alone. Statistics are recomputed from deterministic
(un-augmented) inputs; only the paper's ``finetune_epoch``, which trains, sees augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import math

import numpy as np
import torch

from medlib.bn import batchnorm_layers, restore_batchnorm
from medlib.experiments.paper_a.runs import Trained
from medlib.train import class_weights_from_labels

__all__ = ["restore_on_parts", "averaged_stats_kept"]


def restore_on_parts(tr: Trained, model, parts: Sequence[int], method: str = "finetune_epoch", *,
                     cumulative_stats: bool = False):
    """``model`` restored with ``method`` on the data of ``parts`` (0-based part indices) only.

    ``cumulative_stats`` (``finetune_epoch`` only): the BN layers average the epoch's batches
    equally (momentum ``None``) instead of the default exponential average at momentum 0.1.
    """
    indices = [tr.data.partition.sites[p] for p in parts]
    training = method == "finetune_epoch"
    loaders = [tr.part_loader(p, train=training) for p in parts]
    labels = tr.data.labels[np.concatenate(indices)]
    return restore_batchnorm(model, loaders, method, device=tr.device, lr=tr.profile.paper_a.lr, seed=tr.seed,
                             class_weights=class_weights_from_labels(labels, tr.n_classes),
                             cumulative_stats=cumulative_stats)


def averaged_stats_kept(before, restored, fresh) -> float:
    """The share of ``before``'s BN running statistics still in ``restored``, measured.

    ``fresh`` is the same restoring epoch with the old statistics dropped (``cumulative_stats``):
    same seed, same batches, same weight updates, only the running averages differ. Every
    running mean and variance is modelled as restored = k · before + (1 − k) · fresh, and k
    is the least-squares fit over all channels. (Momentum m over n batches predicts (1 − m)ⁿ,
    but the statistics are of a network whose weights move during the epoch.)
    """
    def stats(model):
        return torch.cat([torch.cat([bn.running_mean.flatten(), bn.running_var.flatten()]).double().cpu()
                          for bn in batchnorm_layers(model).values()])

    b, r, f = stats(before), stats(restored), stats(fresh)
    spread = float((b - f) @ (b - f))
    return float((r - f) @ (b - f)) / spread if spread > 0 else math.nan  # nothing to tell apart: undefined
