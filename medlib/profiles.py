"""Run profiles: every hyperparameter a notebook or command uses, in one frozen place.

Two profiles exist:

``smoke``
    CPU, minutes. Synthetic stand-ins written in the real datasets' on-disk formats
    (``medlib data synth``), tiny models that exercise the same code paths, few epochs.
``full``
    GPU, hours. The real datasets and the papers' own hyperparameters
    (Paper A Table 4; Paper B Section 4.1).

``auto`` resolves to ``$MEDLIB_PROFILE`` when set, else ``full`` on CUDA, else ``smoke``.

A **dry run** of a profile (:func:`dry_run`; ``MEDLIB_DRY_RUN=1`` asks the entry points for one) keeps
every code path of that profile — the real architectures at the real image size — but caps the
work: ``max_steps`` batches per epoch and per evaluated split, one epoch, one seed, one run per
configuration, random weights instead of downloaded ones, and synthetic data written in the real
layouts at the real image sizes. ``medlib book --profile full --dry-run`` runs the whole book
that way on a CPU, so the ``full`` profile cannot rot unnoticed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from medlib.errors import ProfileError

__all__ = ["PaperA", "PaperB", "Profile", "SMOKE", "FULL", "PROFILES", "get_profile", "dry_run", "is_dry_run"]


@dataclass(frozen=True)
class PaperA:
    """Paper A (data vectors): fine-tuning and merging settings."""

    arch: str  # timm model name of the shared architecture
    # timm pretrained tag of theta_pre: torchvision's IMAGENET1K_V1 ResNet50 (see book/part_a.md);
    # "" = no download (smoke pretrains its own theta_pre; a dry run uses random weights)
    image_size: int
    lr: float
    epochs: int
    batch_size: int
    seed: int  # the paper's seed (Table 4)
    weights: str = ""
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
    eval_every: int = 1  # test-set evaluation inside a training every this many epochs (and after the last)

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
    pretrained: bool = True  # ImageNet weights for the backbones (False in smoke and dry runs)
    eval_every: int = 1  # validation every this many epochs (and after the last)


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
    # Dry run (see the module docstring): at most ``max_steps`` batches per epoch and per
    # evaluated split; None = no cap.
    dry_run: bool = False
    max_steps: int | None = None

    @property
    def first_seed(self) -> int:
        """The seed a notebook uses by default: the profile's first."""
        return self.seeds[0]

    @property
    def label(self) -> str:
        """``full``, ``smoke`` or ``full (dry run)``: what a page says made its numbers."""
        return f"{self.name} (dry run)" if self.dry_run else self.name

    @property
    def result_tag(self) -> str:
        """What names this profile's result files: ``full``, ``smoke`` or ``full-dry-run``.

        A dry run never writes where a real run's results are read from.
        """
        return f"{self.name}-dry-run" if self.dry_run else self.name

    def describe(self) -> str:
        """One line saying what made a number: profile, data source, seeds."""
        return f"profile={self.label}, data={self.data_source}, seeds={list(self.seeds)}"

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
        # 48 px: the stand-ins' textures stay separable, and Part A's training (compute-bound on two
        # CPU cores: the restoring epochs, 30 fine-tunings, the federations) costs ~0.56x of 64 px
        image_size=48,
        lr=1e-3,
        epochs=4,  # splits into the Beyond chapter's rounds R ∈ {1, 4}
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
        epochs=4,
        swa_epochs=2,
        batch_size=24,
        tta_views=6,
        n_runs=2,
        weight_grid=8,
        backbone_size="tiny",
        pretrained=False,
    ),
)

FULL = Profile(
    name="full",
    data_source="real",
    synth_size="medium",
    seeds=(3315, 3316, 3317),
    # The datasets are small enough to sit in memory (on the GPU in training): worker processes
    # re-spawned every epoch to index tensors only add overhead, worst on Colab's 2 vCPUs.
    num_workers=0,
    paper_a=PaperA(
        arch="resnet50",
        image_size=224,
        lr=1e-5,
        epochs=64,
        batch_size=32,
        seed=3315,
        weights="resnet50.tv_in1k",
        # 4 points per curve; a site's test split is as large as its training data, so evaluating
        # every epoch cost a quarter of Part A's compute, every 16th costs 2 % (tests/test_train_eval_cadence.py)
        eval_every=16,
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
        n_runs=10,  # "all the models are trained and tested ten times" (§4.1)
        weight_grid=20,
        backbone_size="full",
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
        P,
        dry_run=True,
        max_steps=1,
        data_source="synthetic",  # the real layouts at the real image sizes, written locally
        synth_size="real-size",  # a few images per class at the real datasets' image sizes
        seeds=P.seeds[:1],
        num_workers=0,
        # batch 2: the real architectures at the real image size (BatchNorm still sees a batch), and
        # a 2-core CPU runs the whole book's steps in minutes
        paper_a=dataclasses.replace(P.paper_a, epochs=1, batch_size=2, weights="", pretrain_epochs=min(P.paper_a.pretrain_epochs, 1),
                                    lam_grid=(0.0, 1 / P.paper_a.n_sites, P.paper_a.lam), synth_sizes=()),
        # two TTA views: the same loop over views as six, a third of the forward passes
        paper_b=dataclasses.replace(P.paper_b, epochs=2, swa_epochs=1, batch_size=2, n_runs=1, weight_grid=4,
                                    tta_views=2, pretrained=False),
    )


def is_dry_run() -> bool:
    """True when ``$MEDLIB_DRY_RUN`` asks for a dry run (``medlib book --dry-run`` sets it).

    Read by the entry points only (``medlib.notebook.start``, the CLI), which pass it to :func:`get_profile`.
    """
    return os.environ.get("MEDLIB_DRY_RUN", "").strip().lower() in ("1", "true", "yes")


def get_profile(name: str | Profile = "auto", *, dry: bool = False) -> Profile:
    """Return the profile called ``name``; ``"auto"`` follows ``$MEDLIB_PROFILE``, then the hardware.

    ``dry=True`` returns its :func:`dry_run`. Called by the entry points only: the library takes a Profile.
    """
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
        raise ProfileError(
            f"unknown profile {name!r}: expected one of {sorted(PROFILES)} or 'auto' "
            "(set MEDLIB_PROFILE=smoke or MEDLIB_PROFILE=full)"
        )
    return dry_run(PROFILES[name]) if dry else PROFILES[name]
