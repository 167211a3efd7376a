"""The data a profile asks for: a synthetic stand-in (smoke) or the real dataset (full)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medlib.data import load_dataset
from medlib.data.base import ImageDataset
from medlib.errors import DataError
from medlib.paths import cache_dir, data_root
from medlib.profiles import Profile, get_profile

__all__ = ["ensure_dataset", "SiteData", "prepare_sites"]

SYNTH_SEED = 0  # the stand-in data is one fixed dataset; experiment seeds vary the splits and training


def ensure_dataset(name: str, profile: Profile | str = "auto", *, size: str | None = None) -> ImageDataset:
    """Load ``name`` for ``profile``, writing the synthetic stand-in or downloading the real data once.

    ``size`` picks the synthetic stand-in's size (default: the profile's, per dataset).
    """
    P = get_profile(profile)
    if P.data_source == "synthetic":
        from medlib.data.synth import synthesize

        size = size or P.paper_a.synth_size_of(name, P.synth_size)
        # a no-op when the folder already holds this stand-in (same seed, size, generator version)
        root = synthesize(name, data_root(name, f"synthetic-{size}"), seed=SYNTH_SEED, size=size)
        return load_dataset(name, root)
    root = data_root(name, "real")
    try:
        return load_dataset(name, root)
    except DataError:
        if name == "derm7pt" or root.exists() and any(root.iterdir()):
            raise  # derm7pt needs a registration; a partial folder is the user's to inspect
    from medlib.data.download import download_dataset

    download_dataset(name, root)
    return load_dataset(name, root)


@dataclass
class SiteData:
    """One dataset split into hospitals: decoded images, labels and the partition."""

    dataset: ImageDataset
    images: torch.Tensor  # uint8 (N, 3, S, S), memory-mapped cache
    labels: np.ndarray
    partition: "object"  # medlib.data.partition.SitePartition

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes


def prepare_sites(name: str, profile: Profile | str = "auto", seed: int = 0, *, method: str | None = None) -> SiteData:
    """Dataset ``name`` split into ``n_sites`` hospitals plus a held-out test set (Paper A §4.1)."""
    from medlib.data.cache import cached_images
    from medlib.data.partition import partition_sites

    P = get_profile(profile)
    ds = ensure_dataset(name, P)
    images = cached_images(ds.image_paths, P.paper_a.image_size, cache_dir(), progress=False)
    part = partition_sites(
        ds.labels,
        P.paper_a.n_sites,
        method=method or P.paper_a.partition,
        groups=ds.groups,
        seed=seed,
        test_fraction=P.paper_a.test_fraction,
    )
    return SiteData(ds, images, np.asarray(ds.labels), part)
