"""Run profiles: every hyperparameter a notebook or command uses, in one frozen place.

Two profiles exist:

``smoke``
    CPU, minutes. Synthetic stand-ins written in the real datasets' on-disk formats
    (``medlib data synth``), tiny models that exercise the same code paths, few epochs.
``full``
    GPU, hours. The real datasets and the papers' own hyperparameters
    (Paper A Table 4; Paper B Section 4.1).

``auto`` resolves to ``$MEDLIB_PROFILE`` when set, else ``full`` on CUDA, else ``smoke``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

__all__ = ["PaperA", "PaperB", "Profile", "SMOKE", "FULL", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class PaperA:
    """Paper A (data vectors): fine-tuning and merging settings."""

    arch: str  # timm model name of the shared architecture
    image_size: int
    lr: float
    epochs: int
    batch_size: int
    seed: int  # the paper's seed (Table 4)
    n_sites: int = 4
    lam: float = 0.5
    partition: str = "equal"  # the paper splits each dataset into four equal random parts
    test_fraction: float = 0.2
    # smoke only: theta_pre is made by a short pretraining on a synthetic source task,
    # so the "pretrained" model is never a random initialisation.
    pretrain_epochs: int = 0
    pretrain_images: int = 0
    lam_grid: tuple[float, ...] = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    datasets: tuple[str, ...] = ("retina", "bladder-tissue", "pad-ufes-20")
    # (dataset, synth size) pairs overriding Profile.synth_size for Paper A's stand-ins
    synth_sizes: tuple[tuple[str, str], ...] = ()

    def synth_size_of(self, dataset: str, default: str) -> str:
        return dict(self.synth_sizes).get(dataset, default)


@dataclass(frozen=True)
class PaperB:
    """Paper B (AMMFM): training settings for derm7pt."""

    clinical: str  # backbone registry names (medlib.ammfm)
    dermoscopy: str
    image_size: int
    lr: float
    epochs: int
    swa_epochs: int  # SWA over the last ``swa_epochs`` epochs
    batch_size: int
    tta_views: int
    n_runs: int  # repetitions for mean ± std
    weight_grid: int  # N of linspace(0.05, 1, N) for the weight search
    seed: int = 0
    backbone_size: str = "full"  # "full" = the real torchvision architectures, "tiny" = stand-ins


@dataclass(frozen=True)
class Profile:
    name: str
    data_source: str  # "synthetic" or "real"
    synth_size: str  # size preset for ``medlib data synth`` ("small" | "medium")
    seeds: tuple[int, ...]
    num_workers: int
    paper_a: PaperA
    paper_b: PaperB
    data_dir: str = "data"  # relative to the working directory unless absolute
    cache_dir: str = ".cache/medlib"

    def describe(self) -> str:
        """One line saying what made a number: profile, data source, seeds."""
        return f"profile={self.name}, data={self.data_source}, seeds={list(self.seeds)}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SMOKE = Profile(
    name="smoke",
    data_source="synthetic",
    synth_size="small",
    seeds=(0, 1),
    num_workers=0,
    paper_a=PaperA(
        arch="test_resnet",
        image_size=64,
        lr=1e-3,
        epochs=8,
        batch_size=32,
        seed=3315,
        # Retina's medium stand-in has the real dataset's 601 images: with the small one the
        # test set (48 images) is too small for the tables to separate the methods. The other
        # two stay small so the smoke book keeps to minutes.
        synth_sizes=(("retina", "medium"),),
        pretrain_epochs=5,
        pretrain_images=960,
    ),
    paper_b=PaperB(
        clinical="mobilenet_v3_small",
        dermoscopy="swin_v2_t",
        image_size=64,
        lr=1e-3,
        epochs=6,
        swa_epochs=2,
        batch_size=24,
        tta_views=6,
        n_runs=2,
        weight_grid=8,
        backbone_size="tiny",
    ),
)

FULL = Profile(
    name="full",
    data_source="real",
    synth_size="medium",
    seeds=(3315, 3316, 3317),
    num_workers=4,
    paper_a=PaperA(
        arch="resnet50",
        image_size=224,
        lr=1e-5,
        epochs=64,
        batch_size=32,
        seed=3315,
    ),
    paper_b=PaperB(
        clinical="mobilenet_v3_small",
        dermoscopy="swin_v2_t",
        image_size=224,
        lr=3e-5,
        epochs=250,
        swa_epochs=50,
        batch_size=24,
        tta_views=6,
        n_runs=5,
        weight_grid=20,
        backbone_size="full",
    ),
)

PROFILES = {p.name: p for p in (SMOKE, FULL)}


def get_profile(name: str | Profile = "auto") -> Profile:
    """Return the profile called ``name``; ``"auto"`` follows ``$MEDLIB_PROFILE``, then the hardware."""
    if isinstance(name, Profile):
        return name
    if name in (None, "", "auto"):
        env = os.environ.get("MEDLIB_PROFILE", "").strip()
        if env and env != "auto":
            name = env
        else:
            import torch

            name = "full" if torch.cuda.is_available() else "smoke"
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}: expected one of {sorted(PROFILES)} or 'auto' "
            "(set MEDLIB_PROFILE=smoke or MEDLIB_PROFILE=full)"
        )
    return PROFILES[name]
