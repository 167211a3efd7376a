"""The classification head of every AMMFM branch (the FCLs of Fig. 2; FusionM4Net's head).

Linear(F, 512) - BatchNorm1d - Swish - Dropout(0.3) - Linear(512, 128) - BatchNorm1d - Swish -
Dropout(0.3), then one Linear(128, n_k) per task (n = 5, 3, 3, 3, 2, 3, 2, 3). Paper B does not
spell the FCLs out; this is the head of its predecessor FusionM4Net (Tang et al., 2022), and it
is the reading that reproduces the paper's parameter counts exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from .tasks import NUM_CLASSES

__all__ = ["MultiTaskHead"]


class MultiTaskHead(nn.Module):
    """Shared trunk plus one linear classifier per task; ``forward(x) -> list`` of 8 logit tensors."""

    def __init__(self, in_features: int, num_classes: tuple[int, ...] = NUM_CLASSES,
                 hidden: tuple[int, int] = (512, 128), dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.SiLU(), nn.Dropout(dropout)]  # SiLU = Swish
            width = h
        self.trunk = nn.Sequential(*layers)
        self.classifiers = nn.ModuleList(nn.Linear(width, n) for n in num_classes)
        self.in_features = in_features

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        z = self.trunk(x)
        return [clf(z) for clf in self.classifiers]
