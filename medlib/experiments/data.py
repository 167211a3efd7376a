"""The data a profile asks for: a synthetic stand-in (smoke, dry runs) or the real dataset (full).

Each dataset loads on its own: a missing derm7pt (registration needed) stops only what needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medlib.data import load_dataset
from medlib.data.base import ImageDataset
from medlib.data.partition import SitePartition
from medlib.errors import DataError, MedlibError
from medlib.paths import data_env_var, data_root
from medlib.profiles import Profile

__all__ = ["ensure_dataset", "load_available", "synthetic_root", "SiteData"]

SYNTH_SEED = 0  # the stand-in data is one fixed dataset; experiment seeds vary the splits and training


def synthetic_root(name: str, size: str) -> Path:
    """Where the ``size`` stand-in of ``name`` lives (one folder per size: smoke and dry runs never clash)."""
    return data_root(name, "synthetic") / size


def ensure_dataset(name: str, profile: Profile, *, size: str | None = None) -> ImageDataset:
    """Load ``name`` for ``profile``, writing the synthetic stand-in (of ``size``, default the profile's) or
    downloading the real data once: into an empty folder, or resuming an interrupted download; a folder
    with other content is never touched (the loader's error says what is wrong with it).
    """
    P = profile
    if P.data_source == "synthetic":
        from medlib.data.synth import synthesize

        size = size or P.paper_a.synth_size_of(name, P.synth_size)
        # a no-op when the folder already holds this stand-in (same seed, size, generator version)
        root = synthesize(name, synthetic_root(name, size), seed=SYNTH_SEED, size=size)
        return load_dataset(name, root)
    root = data_root(name, "real")
    try:
        return load_dataset(name, root)
    except DataError as exc:
        if name == "derm7pt":  # registration only: the message says where to put it and how to say where
            raise DataError(f"derm7pt is not at {root} (set ${data_env_var(name)} to its folder). {exc}") from None
        from medlib.data.download import download_dataset, has_partial_download

        if root.exists() and any(root.iterdir()) and not has_partial_download(root):
            raise  # someone else's files: the user's to inspect
    download_dataset(name, root)  # resumes .part files, finishes unpacking
    return load_dataset(name, root)


def load_available(names, profile: Profile) -> tuple[dict[str, ImageDataset], dict[str, str]]:
    """``(loaded, missing)``: each dataset of ``names`` that loads, else the message saying how to get it."""
    loaded: dict[str, ImageDataset] = {}
    missing: dict[str, str] = {}
    for name in names:
        try:
            loaded[name] = ensure_dataset(name, profile)
        except MedlibError as exc:
            missing[name] = str(exc)
    return loaded, missing


@dataclass
class SiteData:
    """One dataset split into hospitals: decoded images, labels and the partition."""

    dataset: ImageDataset
    images: torch.Tensor  # uint8 (N, 3, S, S), memory-mapped cache
    labels: np.ndarray
    partition: SitePartition

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes
