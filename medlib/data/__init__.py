"""Datasets of both papers, read from their official on-disk layouts: ``load_dataset(name, root)``.

Paper A uses ``retina``, ``bladder-tissue`` and ``pad-ufes-20``; Paper B ``derm7pt``. Synthetic stand-ins
(:mod:`~medlib.data.synth`), downloads, the image cache and site partitions are imported on use.
"""

from __future__ import annotations

import os

from medlib.data.base import ImageDataset, how_to_get
from medlib.data.bladder import BladderTissue
from medlib.data.derm7pt import Derm7pt
from medlib.data.pad_ufes import PadUfes20
from medlib.data.retina import Retina
from medlib.errors import DataError

__all__ = ["DATASETS", "DATASET_NAMES", "load_dataset", "ImageDataset", "Retina", "PadUfes20", "BladderTissue",
           "Derm7pt", "how_to_get"]

DATASETS: dict[str, type[ImageDataset]] = {"retina": Retina, "pad-ufes-20": PadUfes20, "bladder-tissue": BladderTissue,
                                           "derm7pt": Derm7pt}
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)


def load_dataset(name: str, root: str | os.PathLike) -> ImageDataset:
    """Read dataset ``name`` from ``root`` (its folder or any above), validating all but the pixels up front."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {list(DATASET_NAMES)}.")
    return DATASETS[name](root)
