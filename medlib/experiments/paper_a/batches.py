"""Paper A's batches: a site's decoded uint8 images held on the training device (the largest dataset is
346 MB at 224 px), a batch an index into them, augmented and normalised there (no worker processes: on
Colab's 2 vCPUs per-image transforms bounded a ResNet50). An epoch's order and augmentation draws follow
from one CPU generator, re-seeded per epoch by :func:`medlib.train.fit`: a resume stays bitwise on the CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from medlib.data.augment import BRIGHTNESS, DEGREES, SCALE, TRANSLATE, gpu_augment, normalize, to_float

__all__ = ["AUGMENTATION", "AUGMENTATION_ID", "DeviceBatches"]

# flips, RandomAffine(15°, 10 %, ×0.9–1.1), ColorJitter(brightness=0.2): the paper names none
AUGMENTATION = {"hflip": 0.5, "vflip": 0.5, "degrees": DEGREES, "translate": TRANSLATE, "scale": tuple(SCALE),
                "brightness": BRIGHTNESS}
# enters every fine-tuned model's cache key: another augmentation gives other weights
AUGMENTATION_ID = "medlib.data.augment.gpu_augment/1 " + json.dumps(AUGMENTATION, sort_keys=True)


def _device_generator(device: torch.device, seed: int) -> torch.Generator | None:
    try:
        return torch.Generator(device=device).manual_seed(seed)
    except RuntimeError:  # "meta" (a test's stand-in device) has no generator; its draws are shapes only
        return None


class DeviceBatches:
    """Batches ``(x, y)`` of ``images[indices]`` on ``device``: normalised float32 ``x``, int64 ``y``.

    ``images`` (uint8 ``(N, 3, S, S)``) and ``labels`` are moved unless already there (share one copy).
    ``train=True`` shuffles and augments (:data:`AUGMENTATION`); else ``indices`` order, un-augmented.
    """

    def __init__(self, images: torch.Tensor, labels, indices, batch_size: int, *, train: bool, seed: int,
                 device: torch.device | str, max_steps: int | None = None):
        self.device = torch.device(device)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W); got shape {tuple(images.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images = images.to(self.device)
        self.labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels,
                                      dtype=torch.int64).to(self.device)
        self.indices = torch.as_tensor(np.array(indices, dtype=np.int64)).to(self.device)  # a writable copy
        self.batch_size, self.train, self.max_steps = int(batch_size), bool(train), max_steps
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        batches = math.ceil(len(self.indices) / self.batch_size)
        return batches if self.max_steps is None else min(batches, self.max_steps)

    def order(self) -> torch.Tensor:
        """The dataset indices of this pass, in batch order (advances ``generator`` when training)."""
        if not self.train:
            return self.indices
        return self.indices[torch.randperm(len(self.indices), generator=self.generator).to(self.device)]

    def __iter__(self):
        order = self.order()
        augment = None
        if self.train:  # the pass's augmentation draws follow from the same CPU generator
            augment = _device_generator(self.device, int(torch.randint(0, 2**62, (1,), generator=self.generator)))
        for b in range(len(self)):
            i = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[i]
            x = gpu_augment(x, generator=augment, **AUGMENTATION) if self.train else to_float(x)
            yield normalize(x), self.labels[i]
