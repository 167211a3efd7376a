"""Paper A's batches: the site's images held on the training device, augmented there per batch.

Paper A's datasets are small (PAD-UFES-20, the largest, is 2,298 images: 346 MB as uint8 at
224 px), so the decoded uint8 tensor is copied to the device once and a batch is an index into
it. Augmentation and normalisation are batch operations on that device
(:func:`medlib.data.augment.gpu_augment`): no worker processes, no per-image transforms in the
main process — which on Colab's 2 vCPUs, not the GPU, was what bounded a ResNet50 at 224 px.

The order of an epoch and its augmentation draws are a function of ``generator`` alone (on the
CPU, re-seeded every epoch by :func:`medlib.train.fit`), so a killed-and-resumed training stays
bitwise identical on the CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from medlib.data.augment import BRIGHTNESS, DEGREES, SCALE, TRANSLATE, gpu_augment, normalize, to_float

__all__ = ["AUGMENTATION", "AUGMENTATION_ID", "DeviceBatches"]

# The magnitudes of the per-image pipeline Paper A used before (augment.train_transform:
# flips, RandomAffine(15°, 10 %, ×0.9–1.1), ColorJitter(brightness=0.2)); the paper names none.
AUGMENTATION = {"hflip": 0.5, "vflip": 0.5, "degrees": DEGREES, "translate": TRANSLATE, "scale": tuple(SCALE),
                "brightness": BRIGHTNESS}
# enters every fine-tuned model's cache key: another augmentation gives other weights
AUGMENTATION_ID = "medlib.data.augment.gpu_augment/1 " + json.dumps(AUGMENTATION, sort_keys=True)


def _device_generator(device: torch.device, seed: int) -> torch.Generator | None:
    """A generator on ``device`` seeded with ``seed``; None where the device has none (``meta``)."""
    try:
        return torch.Generator(device=device).manual_seed(seed)
    except RuntimeError:  # "meta" (a test's stand-in device) has no generator; its draws are shapes only
        return None


class DeviceBatches:
    """Batches ``(x, y)`` of ``images[indices]``: float32 normalised ``x`` and int64 ``y`` on ``device``.

    ``images`` (uint8 ``(N, 3, S, S)``) and ``labels`` are moved to ``device`` unless already
    there — pass them already moved to share one copy among a dataset's loaders. ``train=True``
    shuffles (``generator``) and augments each batch (:data:`AUGMENTATION`); ``train=False``
    gives the images in ``indices`` order, un-augmented (evaluation and BatchNorm statistics).
    ``max_steps`` caps the batches per pass (a dry run).
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
        n = len(self.indices)
        if not self.train:
            return self.indices
        return self.indices[torch.randperm(n, generator=self.generator).to(self.device)]

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
