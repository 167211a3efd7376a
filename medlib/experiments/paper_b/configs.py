"""The models of Paper B's tables: which backbone sees which image (or none), and the fusion block."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from medlib.ammfm.backbones import weights_tag
from medlib.ammfm.model import DEFAULT_STAGES, create_model
from medlib.ammfm.params import count_config
from medlib.errors import MedlibError
from medlib.profiles import Profile

__all__ = ["Config", "ABBREVIATIONS", "table_configs", "all_configs", "with_runs"]

ABBREVIATIONS = {"mobilenet_v3_small": "MN", "swin_v2_t": "ST", "resnet50": "ResNet", "convnext_tiny": "ConvNeXt"}


@dataclass(frozen=True)
class Config:
    """One model of the paper's tables: backbones per modality (None = that image unused) and fusion."""

    clinical: str | None
    dermoscopy: str | None
    fusion: str = "concat"

    def __post_init__(self):
        if self.clinical is None and self.dermoscopy is None:
            raise MedlibError("a Config needs a clinical or a dermoscopy backbone; both were None")
        if self.single_modal and self.fusion != "concat":
            raise MedlibError(f"single-modal Config {self} cannot use fusion={self.fusion!r}; use 'concat'")

    @property
    def single_modal(self) -> bool:
        return self.clinical is None or self.dermoscopy is None

    @property
    def name(self) -> str:
        """File-safe name, e.g. ``MN-ST-aab``, ``ST-derm`` (single-modal on dermoscopy)."""
        if self.single_modal:
            return f"{_abbr(self.clinical or self.dermoscopy)}-{'clin' if self.dermoscopy is None else 'derm'}"
        return f"{_abbr(self.clinical)}-{_abbr(self.dermoscopy)}-{self.fusion}"

    @property
    def label(self) -> str:
        """Reader-facing, e.g. ``clinical MN + dermoscopy ST, AAB``."""
        if self.single_modal:
            modality = "clinical" if self.dermoscopy is None else "dermoscopy"
            return f"{modality} only, {_abbr(self.clinical or self.dermoscopy)}"
        return f"clinical {_abbr(self.clinical)} + dermoscopy {_abbr(self.dermoscopy)}, {self.fusion.upper()}"

    def build(self, size: str, pretrained: bool = False) -> torch.nn.Module:
        return create_model(self.clinical, self.dermoscopy, self.fusion, size=size, pretrained=pretrained)

    def weights(self, pretrained: bool) -> dict[str, str]:
        """The backbones' initial weights by modality (:func:`medlib.ammfm.backbones.weights_tag`)."""
        return {modality: weights_tag(name, pretrained)
                for modality, name in (("clinical", self.clinical), ("dermoscopy", self.dermoscopy)) if name}

    def full_size_parameters(self) -> int:
        """Parameters of the real (full-size) architecture, the paper's "Params" column."""
        return count_config(self.clinical, self.dermoscopy, self.fusion, DEFAULT_STAGES)


def _abbr(name: str | None) -> str:
    return ABBREVIATIONS.get(name, name) if name else "none"


def table_configs(profile: Profile) -> dict[str, list[tuple[str, Config]]]:
    """Every table's rows as (row label, Config) with the profile's light (``paper_b.clinical``, MN) and heavy
    (``paper_b.dermoscopy``, ST) backbones; Table 10 swaps the heavy one for ResNet-50 and ConvNeXt-T."""
    B = profile.paper_b
    light, heavy = B.clinical, B.dermoscopy
    ammfm = Config(light, heavy, "aab")
    t10 = []
    for name, bb in (("ResNet", "resnet50"), ("ConvNext", "convnext_tiny"), ("ST", heavy)):
        t10 += [(f"{name}: Derm", Config(None, bb)), (f"{name}: Clin", Config(bb, None)),
                (f"{name}: Baseline", Config(bb, bb)), (f"{name}: AMMMF", Config(light, bb, "aab"))]
    return {
        "2": [("AMMFM", ammfm)],
        "6": [("Baseline (SFF, CAT)", Config(heavy, heavy)), ("AFF", Config(light, heavy)), ("AFF + AAB", ammfm)],
        "7": [
            ("Single-modal: Derm ST", Config(None, heavy)), ("Single-modal: Clin ST", Config(heavy, None)),
            ("Single-modal: Derm MN", Config(None, light)), ("Single-modal: Clin MN", Config(light, None)),
            ("Baseline: ST + ST", Config(heavy, heavy)), ("Baseline: MN + MN", Config(light, light)),
            ("AMMMF: Clin ST, Derm MN", Config(heavy, light, "aab")), ("AMMMF: Clin MN, Derm ST", ammfm),
        ],
        "8": [("Clin (ST)", Config(heavy, None)), ("Derm (ST)", Config(None, heavy)),
              ("Baseline (two STs)", Config(heavy, heavy)), ("AMMFM (Clin: MN, Derm: ST)", ammfm)],
        "9": [("SFF + CAT", Config(heavy, heavy)), ("SFF + BAB", Config(heavy, heavy, "bab")),
              ("SFF + AAB", Config(heavy, heavy, "aab")), ("AFF + CAT", Config(light, heavy)),
              ("AFF + BAB", Config(light, heavy, "bab")), ("AFF + AAB", ammfm)],
        "10": t10,
    }


def all_configs(profile: Profile) -> list[Config]:
    """The distinct configurations Tables 2–10 need (20 with the default backbones)."""
    seen: dict[str, Config] = {}
    for rows in table_configs(profile).values():
        for _, cfg in rows:
            seen.setdefault(cfg.name, cfg)
    return list(seen.values())


def with_runs(profile: Profile, runs: int | None = None) -> Profile:
    """``profile`` with ``paper_b.n_runs = runs`` (None keeps the profile's); trained runs are reused (not keyed)."""
    P = profile
    if runs is None:
        return P
    if int(runs) < 1:
        raise MedlibError(f"runs must be a positive number of training runs (or None for the profile's "
                          f"{P.paper_b.n_runs}); got {runs!r}")
    return dataclasses.replace(P, paper_b=dataclasses.replace(P.paper_b, n_runs=int(runs)))
