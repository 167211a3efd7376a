"""Run profiles, every hyperparameter in one frozen place. ``smoke``: CPU, minutes, synthetic stand-ins in the real
formats, tiny models. ``full``: GPU, hours, the real data and the papers' settings (Paper A Table 4; Paper B §4.1).
A :func:`dry_run` keeps a profile's code paths and caps its work: ``full`` cannot rot unnoticed on a CPU.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from medlib.errors import ProfileError


@dataclass(frozen=True)
class PaperA:
    """Paper A (data vectors): fine-tuning and merging settings."""

    arch: str  # timm model name of the shared architecture
    image_size: int
    lr: float
    epochs: int
    batch_size: int
    seed: int  # the paper's seed (Table 4)
    # timm pretrained tag of theta_pre: torchvision's IMAGENET1K_V1 ResNet50 (see book/part_a.md);
    # "" = no download (smoke pretrains its own theta_pre; a dry run uses random weights)
    weights: str = ""
    n_sites: int = 4
    lam: float = 0.5
    partition: str = "equal"  # the paper splits each dataset into four equal random parts
    test_fraction: float = 0.2
    # smoke only: theta_pre is a short pretraining on a synthetic task, never a random initialisation
    pretrain_epochs: int = 0
    pretrain_images: int = 0
    lam_grid: tuple[float, ...] = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    datasets: tuple[str, ...] = ("retina", "bladder-tissue", "pad-ufes-20")
    # (dataset, synth size) pairs overriding Profile.synth_size for Paper A's stand-ins
    synth_sizes: tuple[tuple[str, str], ...] = ()
    eval_every: int = 1  # test-set evaluation inside a training every this many epochs (and after the last)

    def synth_size_of(self, dataset: str, default: str) -> str:
        return dict(self.synth_sizes).get(dataset, default)


@dataclass(frozen=True)
class PaperB:
    """Paper B (AMMFM): training settings for derm7pt."""

    image_size: int
    lr: float
    epochs: int
    swa_epochs: int  # SWA over the last ``swa_epochs`` epochs
    n_runs: int  # repetitions for mean ± std
    weight_grid: int  # N of linspace(0.05, 1, N) for the weight search
    clinical: str = "mobilenet_v3_small"  # backbone registry names (medlib.ammfm)
    dermoscopy: str = "swin_v2_t"
    batch_size: int = 24
    tta_views: int = 6
    seed: int = 0
    backbone_size: str = "full"  # "full" = the real torchvision architectures, "tiny" = stand-ins
    pretrained: bool = True  # ImageNet weights for the backbones (False in smoke and dry runs)
    eval_every: int = 1  # validation every this many epochs (and after the last)


@dataclass(frozen=True)
class Profile:
    name: str
    data_source: str  # "synthetic" or "real"
    synth_size: str  # size preset for ``medlib data synth`` ("small" | "medium")
    seeds: tuple[int, ...]
    paper_a: PaperA
    paper_b: PaperB
    dry_run: bool = False
    max_steps: int | None = None  # a dry run's cap of batches per epoch and per evaluated split

    @property
    def first_seed(self) -> int:
        """The seed a notebook uses by default."""
        return self.seeds[0]

    @property
    def label(self) -> str:
        """``full``, ``smoke`` or ``full (dry run)``: what a page says made its numbers."""
        return f"{self.name} (dry run)" if self.dry_run else self.name

    @property
    def result_tag(self) -> str:
        """Names this profile's result files (``full-dry-run``: a dry run never writes where real results are)."""
        return f"{self.name}-dry-run" if self.dry_run else self.name

    def describe(self) -> str:
        """One line saying what made a number: profile, data source, seeds."""
        return f"profile={self.label}, data={self.data_source}, seeds={list(self.seeds)}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SMOKE = Profile(
    name="smoke", data_source="synthetic", synth_size="small", seeds=(0, 1),
    paper_a=PaperA(
        arch="test_resnet", lr=1e-3, batch_size=32, seed=3315,
        # 48 px: the stand-ins' textures stay separable, and Part A's training (compute-bound on two
        # CPU cores: the restoring epochs, 30 fine-tunings, the federations) costs ~0.56x of 64 px
        image_size=48,
        epochs=4,  # splits into the Beyond chapter's rounds R ∈ {1, 4}
        # Retina's medium stand-in has the real dataset's 601 images: the small one's test set (48 images) cannot
        # separate the methods in the tables. The other two stay small so the smoke book keeps to minutes.
        synth_sizes=(("retina", "medium"),),
        pretrain_epochs=5, pretrain_images=960,
    ),
    paper_b=PaperB(image_size=64, lr=1e-3, epochs=4, swa_epochs=2, n_runs=2, weight_grid=8, backbone_size="tiny",
                   pretrained=False),
)

FULL = Profile(
    name="full", data_source="real", synth_size="medium", seeds=(3315, 3316, 3317),
    paper_a=PaperA(
        arch="resnet50", image_size=224, lr=1e-5, epochs=64, batch_size=32, seed=3315, weights="resnet50.tv_in1k",
        # 4 points per curve; a site's test split is as large as its training data, so evaluating
        # every epoch cost a quarter of Part A's compute, every 16th costs 2 % (tests/test_train_eval_cadence.py)
        eval_every=16,
    ),
    paper_b=PaperB(
        image_size=224, lr=3e-5, epochs=250, swa_epochs=50, weight_grid=20,
        n_runs=10,  # "all the models are trained and tested ten times" (§4.1)
        # 25 points per curve; 203 validation forwards against 413 × 3 for training: 14 % of the
        # compute every epoch, 1.6 % every 10th (tests/test_train_eval_cadence.py)
        eval_every=10,
    ),
)

PROFILES = {p.name: p for p in (SMOKE, FULL)}


def dry_run(P: Profile) -> Profile:
    """``P`` with its code paths kept and its work capped (see the module docstring)."""
    if P.dry_run:
        return P
    return dataclasses.replace(
        P, dry_run=True, max_steps=1, seeds=P.seeds[:1],
        data_source="synthetic",  # the real layouts at the real image sizes, written locally
        synth_size="real-size",  # a few images per class at the real datasets' image sizes
        # batch 2: the real architectures at the real image size (BatchNorm still sees a batch), and
        # a 2-core CPU runs the whole book's steps in minutes
        paper_a=dataclasses.replace(P.paper_a, epochs=1, batch_size=2, weights="", synth_sizes=(),
                                    pretrain_epochs=min(P.paper_a.pretrain_epochs, 1),
                                    lam_grid=(0.0, 1 / P.paper_a.n_sites, P.paper_a.lam)),
        # two TTA views: the same loop over views as six, a third of the forward passes
        paper_b=dataclasses.replace(P.paper_b, epochs=2, swa_epochs=1, batch_size=2, n_runs=1, weight_grid=4,
                                    tta_views=2, pretrained=False),
    )


def is_dry_run() -> bool:
    """True when ``$MEDLIB_DRY_RUN`` asks for a dry run; read by the entry points only (start(), the CLI)."""
    return os.environ.get("MEDLIB_DRY_RUN", "").strip().lower() in ("1", "true", "yes")


def get_profile(name: str | Profile = "auto", *, dry: bool = False) -> Profile:
    """The profile ``name`` (its :func:`dry_run` if ``dry``); ``"auto"``: ``$MEDLIB_PROFILE``, else full on CUDA.
    Called by the entry points only: the library takes a Profile."""
    if isinstance(name, Profile):
        return dry_run(name) if dry else name
    if name in (None, "", "auto"):
        env = os.environ.get("MEDLIB_PROFILE", "").strip()
        if env and env != "auto":
            name = env
        else:
            import torch

            name = "full" if torch.cuda.is_available() else "smoke"
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}: expected one of {sorted(PROFILES)} or 'auto' "
                           "(set MEDLIB_PROFILE=smoke or MEDLIB_PROFILE=full)")
    return dry_run(PROFILES[name]) if dry else PROFILES[name]
