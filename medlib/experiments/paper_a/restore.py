"""Restoring BatchNorm state on a hospital's own data (§3.5), as the tables do it.

Row *i* of Tables 1–3 restores the merged model on part *i*: hospital *i* holds only its own
images and labels, so everything the restoration uses — batches *and* the class weights of
the loss — comes from part *i* alone. Statistics are recomputed from deterministic
(un-augmented) inputs; only the paper's ``finetune_epoch``, which trains, sees augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlib.bn import restore_batchnorm
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


def averaged_stats_kept(tr: Trained, part: int = 0, momentum: float = 0.1) -> float:
    """The share of the merged (averaged) BN statistics left after one epoch on ``part``.

    At momentum m every training batch moves a running statistic by m towards its batch value,
    so after n batches a share (1 − m)ⁿ of the starting value remains.
    """
    return (1.0 - momentum) ** len(tr.part_loader(part, train=True))
