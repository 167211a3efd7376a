"""Datasets of both papers, read from their official on-disk layouts.

>>> from medlib.data import load_dataset, DATASET_NAMES
>>> ds = load_dataset("retina", "data/retina")          # doctest: +SKIP
>>> ds.tasks, ds.labels.shape, ds.counts()               # doctest: +SKIP

Paper A (data vectors) uses ``retina``, ``bladder-tissue`` and ``pad-ufes-20``; Paper B
(AMMFM) uses ``derm7pt``. :mod:`medlib.data.synth` writes synthetic stand-ins in exactly the
same layouts, read by the very same loaders. Downloading (:mod:`medlib.data.download`),
image caching (:mod:`medlib.data.cache`) and site partitions (:mod:`medlib.data.partition`)
are imported on use, not here.
"""

from __future__ import annotations

import os

from medlib.data.base import ImageDataset, how_to_get
from medlib.data.bladder import BladderTissue
from medlib.data.derm7pt import Derm7pt
from medlib.data.pad_ufes import PadUfes20
from medlib.data.retina import Retina
from medlib.errors import DataError

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "load_dataset",
    "ImageDataset",
    "Retina",
    "PadUfes20",
    "BladderTissue",
    "Derm7pt",
    "how_to_get",
]

DATASETS: dict[str, type[ImageDataset]] = {
    "retina": Retina,
    "pad-ufes-20": PadUfes20,
    "bladder-tissue": BladderTissue,
    "derm7pt": Derm7pt,
}
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)


def load_dataset(name: str, root: str | os.PathLike) -> ImageDataset:
    """Read dataset ``name`` from ``root`` (the folder it was unpacked to, or any folder above).

    Validates everything but the pixels up front; raises :class:`medlib.errors.DataError`.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {list(DATASET_NAMES)}.")
    return DATASETS[name](root)
