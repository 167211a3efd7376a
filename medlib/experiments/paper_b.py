"""Paper B's experiments (Tang & Lasser 2024, §4): Tables 1–10, SWA/TTA checks and the figures of Part B.

One function trains one *configuration* — a clinical backbone (or none), a dermoscopic
backbone (or none) and a fusion block (``concat``, ``aab``, ``bab``) — for one run:
:func:`train_config`. It follows §4.1 with the profile's ``paper_b`` settings: Adam, a
cosine schedule, stochastic weight averaging (SWA) over the last ``swa_epochs`` epochs
with BatchNorm statistics recomputed (:func:`medlib.train.fit`), the same random geometry
on both images of a pair and a brightness change on the clinical image only
(:func:`medlib.data.augment.gpu_augment_pair`), on derm7pt's official train split. It then
predicts the valid and test splits with ``tta_views``-view test-time augmentation.

Everything is cached under ``$MEDLIB_HOME/artifacts/paper_b`` by a hash of what made it
(configuration, settings, seed, data), as two safetensors files: the SWA weights and the
predictions. The tables read the predictions, so the same configuration, trained once,
serves every table that lists it (AMMFM appears in Tables 2–10).

Evaluation (§3.3, §4.2). For a multi-modal model the branch weights (W_D, W_C, W_FU) of
Eq. 4 are searched on the VALID split and the fused prediction is scored on TEST. The
tables use **probability weighting** (the paper's text: Eq. 4 weighs predictions); logit
weighting (FusionM4Net's code) is computed beside it for comparison. A single-modal model
has one branch and no search. Metrics: one-vs-rest AUC of the 17 categories of Table 2 and
their mean (AVG AUC), the 8 task accuracies and their mean (AVG ACC), and precision /
sensitivity / specificity of the melanoma-related categories (Table 4), all from
:mod:`medlib.ammfm.metrics`. ``n_runs`` runs with seeds ``seed, seed + 1, ...`` give mean ± std.

The paper's numbers are quoted below as constants (``PAPER_*``), labelled as quoted; every
table builder puts them beside this run's numbers and writes
``$MEDLIB_HOME/results/paper_b/<table>-<profile>.json`` with configuration and provenance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medlib.ammfm.loss import ammfm_loss
from medlib.ammfm.metrics import evaluate, summarize_runs
from medlib.ammfm.model import DEFAULT_STAGES, create_model
from medlib.ammfm.params import count_config, count_parameters
from medlib.ammfm.tasks import AUC_CATEGORIES, MELANOMA_CATEGORIES, TASKS
from medlib.ammfm.tta import TTA_VIEWS, apply_view, predict
from medlib.ammfm.weight_search import fused_probabilities, search_weights
from medlib.data.augment import PairedTensorDataset, gpu_augment_pair, normalize, to_float
from medlib.errors import MedlibError
from medlib.experiments.data import ensure_dataset
from medlib.io import atomic_write_text, load_weights, save_weights
from medlib.paths import artifacts_dir, cache_dir, results_dir
from medlib.profiles import PaperB, Profile, get_profile
from medlib.runtime import provenance, seed_everything, select_device
from medlib.train import TrainConfig, fit, make_loader

__all__ = [
    "Config", "PairData", "RunResult", "ConfigResult", "load_pairs", "train_config", "run_config", "load_model",
    "run_metrics", "branch_metrics", "table_configs",
    "PAPER_TABLE1", "PAPER_TABLE2", "PAPER_TABLE3", "PAPER_TABLE4", "PAPER_TABLE5", "PAPER_ROWS_AVG",
    "PAPER_TABLE8",
    "table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8", "table9", "table10",
    "variants_table", "claims", "block_costs", "weight_surface", "attention_example", "clinic_is_derm_cases",
    "settings_table", "branch_table", "tradeoff", "example_cases", "PAPER_SETTINGS", "all_configs",
    "compare", "claims_table", "CLAIMS", "CLOSE_TOLERANCE",
    "plot_pairs", "plot_params", "plot_attention", "plot_weight_surface", "plot_history", "plot_claims",
    "plot_tradeoff",
]

EXPERIMENT_VERSION = 1  # bump when training or prediction changes, so cached runs are redone
SWA_LR_FRACTION = 0.5  # the paper gives no SWA learning rate: constant lr/2 over the SWA epochs
CLOSE_TOLERANCE = 1.0  # points: "about the same" in a paper claim means |Δ| ≤ this
HEADLINE = ("swa/tta", "probability")
DISPLAY_SIZE = 256  # pixels of the images drawn in figures  # the variant and weighting mode every table reports

ABBREVIATIONS = {"mobilenet_v3_small": "MN", "swin_v2_t": "ST", "resnet50": "ResNet", "convnext_tiny": "ConvNeXt"}

# ============================================================================ configurations


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
            return f"{'clinical' if self.dermoscopy is None else 'dermoscopy'} only, {_abbr(self.clinical or self.dermoscopy)}"
        return f"clinical {_abbr(self.clinical)} + dermoscopy {_abbr(self.dermoscopy)}, {self.fusion.upper()}"

    def build(self, size: str, pretrained: bool = False) -> torch.nn.Module:
        return create_model(self.clinical, self.dermoscopy, self.fusion, size=size, pretrained=pretrained)

    def full_size_parameters(self) -> int:
        """Parameters of the real (full-size) architecture, the paper's "Params" column."""
        return count_config(self.clinical, self.dermoscopy, self.fusion, DEFAULT_STAGES)


def _abbr(name: str | None) -> str:
    return ABBREVIATIONS.get(name, name) if name else "none"


def table_configs(profile: Profile | str = "auto") -> dict[str, list[tuple[str, Config]]]:
    """Every table's rows as (row label, Config), with the profile's light/heavy backbones.

    ``light`` = ``paper_b.clinical`` (MobileNetV3-S, "MN"), ``heavy`` = ``paper_b.dermoscopy``
    (Swin V2-T, "ST"); Table 10 swaps the heavy one for ResNet-50 and ConvNeXt-T.
    """
    B = get_profile(profile).paper_b
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


def all_configs(profile: Profile | str = "auto") -> list[Config]:
    """The distinct configurations Tables 2–10 need (20 with the default backbones)."""
    seen: dict[str, Config] = {}
    for rows in table_configs(profile).values():
        for _, cfg in rows:
            seen.setdefault(cfg.name, cfg)
    return list(seen.values())


# ============================================================================ quoted from the paper
# Every PAPER_* constant below is QUOTED from Tang & Lasser (2024) as printed (percent;
# parameters in millions). Nothing here is computed. Obvious inconsistencies of the paper are
# kept as printed (e.g. Table 1's VS counts sum to 1021, not 1011; Table 4 repeats Table 2's
# AUCs with small differences).

_CATEGORY_COLUMNS = [f"{t} {c}" for t, c in AUC_CATEGORIES]
_MEL_COLUMNS = [f"{t} {c}" for t, c in MELANOMA_CATEGORIES]

# Table 1: class counts over all 1011 cases.
PAPER_TABLE1: dict[str, dict[str, int]] = {
    "DIAG": {"BCC": 42, "NEV": 575, "MEL": 252, "MISC": 97, "SK": 45},
    "PN": {"ABS": 400, "TYP": 381, "ATP": 230},
    "STR": {"ABS": 653, "REG": 107, "IR": 251},
    "PIG": {"ABS": 588, "REG": 118, "IR": 305},
    "RS": {"ABS": 758, "PRS": 253},
    "DaG": {"ABS": 229, "REG": 334, "IR": 448},
    "BWV": {"ABS": 816, "PRS": 195},
    "VS": {"ABS": 833, "REG": 117, "IR": 71},
}

# Table 2: AUC per category (columns = AUC_CATEGORIES order) and AVG.
PAPER_TABLE2: dict[str, list[float]] = {
    "Incep-com": [92.9, 89.7, 86.3, 88.3, 91, 84.2, 79.9, 87, 78.9, 74.9, 79, 82.9, 76.5, 79.9, 89.2, 85.5, 76.1, 83.7],
    "HcCNN": [94.4, 87.7, 85.6, 88.3, 80.4, 85.9, 78.3, 87.8, 77.6, 83.6, 81.3, 81.9, 77.7, 82.6, 89.8, 87, 82.7, 84.3],
    "FM-FS": [95.3, 92.6, 89, 94, 89.2, 85.9, 83.9, 87.9, 81.4, 80.9, 83.5, 81.7, 79.1, 80.1, 90.6, 87.8, 78, 86],
    "GIIN": [92.8, 86.8, 87.6, 88.8, 79.8, 80.1, 87.5, 84.9, 81.2, 81.1, 83.6, 79, 78.6, 83.1, 90.8, 80.7, 75.4, 83.6],
    "CAFNet": [97.1, 92.7, 92.2, 92.5, 91, 81.9, 75.3, 87.4, 85.4, 76.1, 85, 85.4, 75.2, 78.7, 94.7, 84.8, 83.5, 85.8],
    "AMMFM": [95.8, 92.4, 89.3, 93.7, 91.7, 87.1, 86.7, 91.5, 85.2, 82.5, 86.2, 83.6, 79.8, 86.0, 94.1, 90.2, 82.4, 88.1],
}

# Table 3: accuracy per task, in the paper's column order.
PAPER_TABLE3_COLUMNS = ("PN", "BWV", "VS", "PIG", "STR", "DaG", "RS", "DIAG", "AVG")
PAPER_TABLE3: dict[str, list[float]] = {
    "Incep-com": [70.9, 87.1, 79.7, 66.1, 74.2, 60, 77.2, 74.2, 73.7],
    "HcCNN": [70.6, 87.1, 84.8, 68.6, 71.6, 65.6, 80.8, 69.9, 74.9],
    "FM4-FS": [70.9, 86.8, 81.8, 72.4, 74.4, 61, 83, 74.9, 75.7],
    "CAFNet": [70.1, 87.8, 84.3, 73.4, 77, 61.5, 81.8, 78.2, 76.8],
    "TFormer": [70.9, 86.4, 83.5, 68.8, 74, 64.9, 81.3, 73, 75.3],
    "AMMFM": [72.7, 89.1, 82.3, 72.4, 78.7, 65.8, 81, 75.2, 77.2],
}

# Table 4: melanoma-related categories (columns = MELANOMA_CATEGORIES order) and AVG.
PAPER_TABLE4: dict[str, dict[str, list[float]]] = {
    "AUC": {
        "Incep-com": [86.3, 79.9, 78.9, 79, 82.9, 79.9, 89.2, 76.1, 81.5],
        "HcCNN": [85.6, 78.3, 77.6, 81.3, 81.9, 82.6, 89.8, 82.7, 82.5],
        "FM-FS": [89, 83.9, 81.4, 83.5, 81.7, 80.1, 90.6, 78.9, 83.7],
        "GIIN": [87.6, 87.5, 81.2, 83.6, 79, 83.1, 90.8, 75.4, 83.5],
        "CAFNet": [92.2, 75.3, 85.4, 85, 85.4, 78.7, 94.6, 83.4, 85],
        "AMMFM": [89.3, 86.7, 85.2, 86.2, 83.6, 86.0, 94.1, 82.4, 86.7],
    },
    "PRE": {
        "Incep-com": [65.3, 61.6, 52.7, 57.8, 56.5, 70.5, 63, 30.8, 57.3],
        "HcCNN": [62.8, 62.3, 52.4, 65.1, 81.6, 69.6, 91.9, 50, 67],
        "FM-FS": [65.7, 82.2, 56.2, 67.6, 82, 67.2, 64.9, 42.9, 68.5],
        "GIIN": [65.6, 48.4, 50.4, 82.3, 73.5, 74.9, 67.4, 100, 70.3],
        "CAFNet": [77.9, 50.8, 54.8, 70.1, 76.7, 67.8, 75.4, 58.3, 66.5],
        "AMMFM": [59.4, 57.0, 56.4, 63.7, 51.9, 77.4, 66.7, 16.7, 56.1],
    },
    "SEN": {
        "Incep-com": [61.4, 48.4, 51.1, 59.7, 66, 62.1, 77.3, 13.3, 54.9],
        "HcCNN": [58.4, 40.9, 35.1, 55.7, 95.2, 80.2, 92.2, 20, 59.7],
        "FM-FS": [62.4, 49.5, 47.9, 58.9, 47.1, 68.4, 66.7, 20, 52.6],
        "GIIN": [59, 77.5, 67, 39.2, 21.9, 70.1, 69.9, 3.6, 51],
        "CAFNet": [75.3, 65.9, 67.1, 60.3, 42.7, 74.1, 68.8, 45, 62.4],
        "AMMFM": [71.4, 63.1, 64.6, 71.8, 69.6, 74.9, 73.5, 31.3, 65],
    },
    "SPE": {
        "Incep-com": [88.8, 90.7, 85.7, 80.1, 81.3, 78.9, 89.4, 97.5, 86.6],
        "HcCNN": [88.1, 92.4, 90, 86.3, 41.5, 71.6, 65.3, 98.4, 79.2],
        "FM-FS": [88.8, 90.1, 88.4, 88.1, 96.2, 72.9, 91.6, 97.8, 89.2],
        "GIIN": [89.5, 79, 80.3, 95.8, 96.8, 78.8, 91, 100, 88.9],
        "CAFNet": [93.6, 90.2, 91.2, 89.1, 96.5, 74, 95.1, 98.7, 91.1],
        "AMMFM": [86.8, 87.1, 86.9, 84.2, 83.9, 81.1, 92.4, 93.4, 87.0],
    },
}

# Table 5: (AVG AUC, AVG ACC, parameters as printed; None = "-").
PAPER_TABLE5: dict[str, tuple[float | None, float | None, str]] = {
    "Incep-com": (83.7, 73.7, "> 57.4"),
    "HcCNN": (84.3, 74.9, ">> 51.2"),
    "FM-FS": (86, 75.7, "54.45"),
    "GIIN": (83.6, None, "> 51.2"),
    "CAFNet": (85.8, 76.8, ">> 51.2"),
    "TFormer": (None, 75.3, "77.76"),
    "AMMFM": (88.1, 77.2, "33.06"),
}

# Tables 6, 7, 9, 10: per row (AVG AUC mean, std, AVG ACC mean, std, params M or None).
PAPER_ROWS_AVG: dict[str, dict[str, tuple]] = {
    "6": {"Baseline (SFF, CAT)": (87.2, 0.4, 76.6, 0.5, 58.49), "AFF": (87.2, 0.4, 76.5, 0.4, 32.48),
          "AFF + AAB": (87.6, 0.4, 76.7, 0.4, 33.06)},
    "7": {"Single-modal: Derm ST": (86.6, 0.3, 76.2, 0.6, 28.82), "Single-modal: Clin ST": (77.3, 0.5, 68.7, 0.7, 28.82),
          "Single-modal: Derm MN": (83.1, 0.4, 72.6, 0.3, 2.91), "Single-modal: Clin MN": (75.7, 0.4, 67.6, 0.5, 2.91),
          "Baseline: ST + ST": (87.2, 0.4, 76.6, 0.5, 58.49), "Baseline: MN + MN": (84.5, 0.3, 73.4, 0.2, 6.48),
          "AMMMF: Clin ST, Derm MN": (84.7, 0.3, 73.8, 0.3, 32.62), "AMMMF: Clin MN, Derm ST": (87.6, 0.4, 76.7, 0.4, 33.06)},
    "9": {"SFF + CAT": (87.2, 0.4, 76.6, 0.5, 58.49), "SFF + BAB": (87.2, 0.3, 76.6, 0.4, 60.45),
          "SFF + AAB": (87.5, 0.4, 77.1, 0.4, 59.09), "AFF + CAT": (87.2, 0.4, 76.5, 0.4, 32.48),
          "AFF + BAB": (87.5, 0.3, 76.6, 0.3, 33.88), "AFF + AAB": (87.6, 0.4, 76.7, 0.4, 33.06)},
    "10": {"ResNet: Derm": (84.0, 0.5, 74.0, 0.4, 26.68), "ResNet: Clin": (76.6, 0.5, 67.5, 0.4, None),
           "ResNet: Baseline": (85.4, 0.2, 74.6, 0.4, None), "ResNet: AMMMF": (85.7, 0.2, 74.9, 0.3, None),
           "ConvNext: Derm": (86.5, 0.4, 75.9, 0.3, 29.05), "ConvNext: Clin": (77.5, 0.3, 69.0, 0.3, None),
           "ConvNext: Baseline": (87.1, 0.3, 76.5, 0.3, None), "ConvNext: AMMMF": (87.3, 0.5, 76.7, 0.4, None),
           "ST: Derm": (86.6, 0.3, 76.2, 0.6, 28.82), "ST: Clin": (77.3, 0.5, 68.7, 0.7, None),
           "ST: Baseline": (87.2, 0.4, 76.6, 0.5, None), "ST: AMMMF": (87.6, 0.4, 76.7, 0.4, None)},
}

# Table 8: (mean, std) AUC per category (AUC_CATEGORIES order) + AVG, per column.
PAPER_TABLE8: dict[str, list[tuple[float, float]]] = {
    "Clin (ST)": [(85.5, 3.8), (85.8, 0.7), (79.5, 1.1), (86.5, 1.8), (74.5, 4.2), (80.4, 1.1), (73.4, 1.6),
                  (79.9, 2.2), (71.0, 1.6), (68.3, 2.1), (73.6, 1.7), (72.9, 1.3), (72.6, 1.4), (73.8, 0.9),
                  (83.9, 1.2), (81.7, 2.0), (77.0, 2.2), (77.3, 0.5)],
    "Derm (ST)": [(94.5, 1.3), (91.8, 0.5), (89.1, 0.6), (93.7, 0.8), (87.5, 3.2), (87.5, 0.6), (85.1, 0.7),
                  (89.3, 1.1), (83.9, 1.0), (82.2, 1.5), (85.5, 1.3), (82.5, 0.9), (79.3, 1.0), (84.1, 0.8),
                  (92.7, 0.7), (86.2, 1.1), (80.4, 1.7), (86.6, 0.3)],
    "Baseline (two STs)": [(95.0, 0.9), (92.4, 0.4), (89.3, 0.8), (93.9, 0.9), (88.3, 2.0), (88.1, 0.7), (85.7, 0.7),
                           (88.6, 1.3), (84.2, 0.9), (81.4, 1.4), (85.5, 0.9), (83.5, 0.9), (80.2, 0.9), (84.1, 0.9),
                           (93.8, 0.5), (88.3, 0.8), (82.2, 1.5), (87.2, 0.4)],
    "AMMFM (Clin: MN, Derm: ST)": [(95.0, 0.8), (92.4, 0.4), (89.5, 0.7), (94.7, 0.7), (90.4, 1.4), (87.7, 0.8),
                                   (86.2, 0.8), (89.4, 1.8), (84.6, 1.1), (83.5, 1.1), (85.4, 1.1), (83.4, 0.8),
                                   (80.3, 0.6), (84.4, 0.7), (93.8, 0.8), (87.9, 1.3), (81.3, 2.3), (87.6, 0.4)],
}

# §4.1 (quoted): the training recipe as the paper states it. "not stated" = the paper is silent;
# the FusionM4Net entries are that predecessor's public code, which §4.1 defers to.
PAPER_SETTINGS: dict[str, str] = {
    "optimizer": "Adam",
    "learning rate": "not stated (FusionM4Net: 3e-5, cosine)",
    "batch size": "24",
    "epochs": "250",
    "SWA": "last 50 epochs",
    "image size": "224 × 224",
    "augmentation": "flip, shift, scale, rotate, brighten",
    "test-time augmentation": "yes (FusionM4Net: 6 views)",
    "runs for mean ± std": "10 (§4.4)",
    "backbones": "not stated (ImageNet-pretrained, presumably)",
}


# ============================================================================ data


@dataclass
class PairData:
    """derm7pt decoded once: uint8 image pairs at ``image_size``, labels, official splits."""

    dataset: object  # medlib.data.derm7pt.Derm7pt
    clinical: torch.Tensor  # (N, 3, S, S) uint8, memory-mapped cache
    dermoscopy: torch.Tensor
    labels: np.ndarray  # (N, 8) int64
    splits: dict[str, np.ndarray]
    source: str  # "synthetic" or "real"
    fingerprint: str  # identifies files + labels + splits; part of every cache key

    @property
    def tasks(self) -> dict[str, list[str]]:
        return self.dataset.tasks


def load_pairs(profile: Profile | str = "auto", dataset=None, image_size: int | None = None) -> PairData:
    """derm7pt for ``profile`` (synthetic stand-in in smoke, the real download in full), decoded
    and resized once into the image cache. ``dataset`` overrides which derm7pt is read."""
    from medlib.data.cache import cache_key, cached_images

    P = get_profile(profile)
    ds = dataset if dataset is not None else ensure_dataset("derm7pt", P)
    size = int(image_size or P.paper_b.image_size)
    missing = [s for s in ("train", "valid", "test") if s not in ds.splits]
    if missing:
        raise MedlibError(f"derm7pt at {ds.root} lacks the official split(s) {missing}; expected "
                          "meta/{train,valid,test}_indexes.csv beside meta.csv")
    clinical = cached_images(ds.clinical_paths, size, cache_dir(), progress=False)
    dermoscopy = cached_images(ds.derm_paths, size, cache_dir(), progress=False)
    labels = np.asarray(ds.labels, dtype=np.int64)
    h = hashlib.sha256()
    h.update(cache_key(ds.clinical_paths, size).encode() + cache_key(ds.derm_paths, size).encode())
    h.update(labels.tobytes())
    for name in ("train", "valid", "test"):
        h.update(name.encode() + np.asarray(ds.splits[name], dtype=np.int64).tobytes())
    source = P.data_source if dataset is None else "given"
    return PairData(ds, clinical, dermoscopy, labels, {k: np.asarray(v) for k, v in ds.splits.items()},
                    source, h.hexdigest()[:16])


class _Limited:
    """At most ``n`` batches of ``loader`` (the dry-run knob). ``loaders`` lets the trainer find
    and re-seed the wrapped loader's generator, so limited runs stay reproducible."""

    def __init__(self, loader, n: int):
        self.loader, self.n, self.loaders = loader, int(n), (loader,)

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)

    def __len__(self) -> int:
        return min(len(self.loader), self.n)


def _loader(data: PairData, split: str, B: PaperB, *, train: bool, seed: int, num_workers: int,
            device: torch.device, max_steps: int | None):
    indices = np.array(data.splits[split], dtype=np.int64)  # a writable copy (torch warns on read-only arrays)
    ds = PairedTensorDataset(data.clinical, data.dermoscopy, data.labels, transform=None, indices=indices)
    # drop_last in training: the heads' BatchNorm1d cannot normalise a last batch of one case
    loader = make_loader(ds, B.batch_size, shuffle=train, seed=seed, num_workers=num_workers,
                         device=device, drop_last=train)
    if train and len(loader) == 0:
        raise MedlibError(f"the {split} split has {len(ds)} cases, fewer than one batch of {B.batch_size}; "
                          "lower paper_b.batch_size")
    return _Limited(loader, max_steps) if max_steps else loader


def _train_batch(batch, device):
    """Training batch on ``device``: paired augmentation (same geometry, clinical brightness), normalised."""
    (clinical, dermoscopy), labels = batch
    nb = device.type == "cuda"
    c, d = gpu_augment_pair(clinical.to(device, non_blocking=nb), dermoscopy.to(device, non_blocking=nb))
    return (normalize(c), normalize(d)), labels.to(device, non_blocking=nb)


def _eval_batch(batch, device):
    (clinical, dermoscopy), labels = batch
    c = normalize(to_float(clinical.to(device)))
    d = normalize(to_float(dermoscopy.to(device)))
    return (c, d), labels.to(device)


# ============================================================================ training one run


@dataclass
class RunResult:
    """One trained run of one configuration: its predictions (read from the cache) and metadata.

    ``predictions[variant][split][branch]`` = 8 arrays (N, n_k) of log-probabilities, for the
    variants ``"swa/tta"`` (SWA weights, ``tta_views`` views), ``"swa/1"`` (SWA weights, the
    identity view only) and ``"last/1"`` (last-epoch weights, identity view); ``targets[split]``
    = (N, 8).
    """

    config: Config
    seed: int
    key: str
    weights_path: Path
    predictions: dict
    targets: dict
    meta: dict
    tasks: dict
    _metrics: dict = field(default_factory=dict, repr=False)

    @property
    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.meta["history"])

    @property
    def train_seconds(self) -> float:
        return float(self.meta["train_seconds"])


def _settings(B: PaperB, overrides: dict | None) -> PaperB:
    if not overrides:
        return B
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(PaperB)})
    if unknown:
        raise MedlibError(f"unknown paper_b setting(s) {unknown}; known: {[f.name for f in dataclasses.fields(PaperB)]}")
    return dataclasses.replace(B, **overrides)


def _run_key(config: Config, B: PaperB, seed: int, data: PairData, max_steps, pretrained: bool) -> str:
    training = {k: v for k, v in dataclasses.asdict(B).items() if k not in ("n_runs", "weight_grid", "seed")}
    blob = json.dumps({"config": dataclasses.asdict(config), "settings": training, "seed": seed,
                       "data": data.fingerprint, "max_steps": max_steps, "pretrained": pretrained,
                       "stages": list(DEFAULT_STAGES), "version": EXPERIMENT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _paths(config: Config, seed: int, key: str) -> tuple[Path, Path]:
    base = artifacts_dir() / "paper_b" / f"{config.name}-s{seed}-{key}"
    return base.with_suffix(".safetensors"), base.with_name(base.name + ".predictions.safetensors")


_RUN_CACHE: dict[str, RunResult] = {}


def train_config(config: Config, profile: Profile | str = "auto", run: int = 0, *, seed: int | None = None,
                 data: PairData | None = None, overrides: dict | None = None, max_steps: int | None = None,
                 pretrained: bool | None = None, verbose: bool = True) -> RunResult:
    """Train ``config`` for run ``run`` (seed ``seed + run``) and predict valid/test with TTA; cached.

    Args:
        config: the model (:class:`Config`).
        profile: settings (``profile.paper_b``) and data source.
        seed: base seed (default ``paper_b.seed``); the run uses ``seed + run``.
        data: a :class:`PairData` (default: :func:`load_pairs` for the profile).
        overrides: replace ``paper_b`` fields (e.g. ``{"epochs": 1}``); part of the cache key.
        max_steps: at most this many batches per epoch and per evaluated split — a dry run
            of the real code path (part of the cache key).
        pretrained: ImageNet weights for the backbones (default: yes for full-size models).
    A second call with the same arguments reads the cache and trains nothing.
    """
    P = get_profile(profile)
    B = _settings(P.paper_b, overrides)
    seed = (B.seed if seed is None else int(seed)) + int(run)
    pretrained = (B.backbone_size == "full") if pretrained is None else bool(pretrained)
    data = data if data is not None else load_pairs(P, image_size=B.image_size)
    if data.clinical.shape[-1] != B.image_size:
        raise MedlibError(f"data was decoded at {data.clinical.shape[-1]} px but the settings ask for "
                          f"{B.image_size} px; call load_pairs(profile, image_size={B.image_size})")
    key = _run_key(config, B, seed, data, max_steps, pretrained)
    weights_path, pred_path = _paths(config, seed, key)
    if str(pred_path) in _RUN_CACHE and pred_path.is_file():
        return _RUN_CACHE[str(pred_path)]
    if not (weights_path.is_file() and pred_path.is_file()):
        _train_and_predict(config, P, B, seed, data, max_steps, pretrained, key, weights_path, pred_path, verbose)
    result = _read_run(config, seed, key, weights_path, pred_path, data.tasks)
    _RUN_CACHE[str(pred_path)] = result
    return result


def _train_and_predict(config, P, B, seed, data, max_steps, pretrained, key, weights_path, pred_path, verbose):
    device = select_device()
    seed_everything(seed)
    model = config.build(B.backbone_size, pretrained)
    swa_start = B.epochs - B.swa_epochs if B.swa_epochs > 0 else None
    cfg = TrainConfig(lr=B.lr, epochs=B.epochs, batch_size=B.batch_size, seed=seed, device=device,
                      scheduler="cosine", swa_start=max(swa_start, 0) if swa_start is not None else None,
                      swa_lr=B.lr * SWA_LR_FRACTION if swa_start is not None else None,
                      log_every=max(B.epochs // 10, 1) if B.epochs >= 50 else 0)
    loaders = {split: _loader(data, split, B, train=split == "train", seed=seed, num_workers=P.num_workers,
                              device=device, max_steps=max_steps) for split in ("train", "valid", "test")}
    t0 = time.perf_counter()
    history = fit(model, loaders["train"], cfg, loss_fn=ammfm_loss, batch_to_device=_train_batch,
                  val_loader=loaders["valid"], checkpoint_path=weights_path.with_suffix(".ckpt"), resume=True)
    train_seconds = time.perf_counter() - t0
    swa = history.swa_model if history.swa_model is not None else model
    t1 = time.perf_counter()
    tensors: dict[str, torch.Tensor] = {}
    for split in ("valid", "test"):
        per_view, targets = _predict_views(swa, config, loaders[split], device, B.tta_views)
        last, _ = _predict_views(model, config, loaders[split], device, 1)
        variants = {"swa/tta": _average_views(per_view), "swa/1": per_view[0], "last/1": last[0]}
        for variant, outputs in variants.items():
            for branch, arrays in outputs.items():
                for k, a in enumerate(arrays):
                    tensors[f"{variant}/{split}/{branch}/{k}"] = torch.from_numpy(np.ascontiguousarray(a, np.float32))
        tensors[f"targets/{split}"] = torch.from_numpy(targets)
    meta = {
        "config": dataclasses.asdict(config), "name": config.name, "seed": seed, "key": key,
        "settings": dataclasses.asdict(B), "profile": P.name, "data_source": data.source,
        "data_fingerprint": data.fingerprint, "max_steps": max_steps, "pretrained": pretrained,
        "device": str(device), "train_seconds": train_seconds, "predict_seconds": time.perf_counter() - t1,
        "history": history.records, "trained_parameters": count_parameters(swa),
        "swa_lr": cfg.swa_lr, "swa_start": cfg.swa_start, "n_train": len(data.splits["train"]),
    }
    save_weights(weights_path, swa.state_dict(), meta)
    save_weights(pred_path, tensors, meta)
    weights_path.with_suffix(".ckpt").unlink(missing_ok=True)
    if verbose:
        last = history.records[-1]
        print(f"trained {config.name} (seed {seed}): {B.epochs} epochs in {train_seconds:.0f} s, "
              f"loss {last['train_loss']:.3f}, valid {last.get('val_loss', math.nan):.3f}", flush=True)


def _predict_views(model, config: Config, loader, device, views: int):
    """Log-probabilities of each TTA view separately (``medlib.ammfm.tta`` views, one pass each).

    One pass per view yields both the TTA average and the one-view (identity) prediction.
    """
    outs = []
    for view in TTA_VIEWS[:views]:
        def unpack(batch, view=view):
            (c, d), y = _eval_batch(batch, device)
            return (None if config.clinical is None else apply_view(c, view),
                    None if config.dermoscopy is None else apply_view(d, view), y)

        outputs, targets = predict(model, loader, device, views=1, unpack=unpack)
        outs.append(outputs)
    return outs, targets


def _average_views(per_view: list[dict]) -> dict:
    """TTA as in :func:`medlib.ammfm.tta.tta_predict`: the log of the views' mean probability."""
    return {b: [np.log(np.clip(np.mean([np.exp(v[b][k]) for v in per_view], axis=0), 1e-12, None))
                for k in range(len(TASKS))] for b in per_view[0]}


def _read_run(config, seed, key, weights_path, pred_path, tasks) -> RunResult:
    tensors, meta = load_weights(pred_path)
    predictions: dict = {}
    targets = {}
    for name, t in tensors.items():
        parts = name.split("/")
        if parts[0] == "targets":
            targets[parts[1]] = t.numpy()
            continue
        variant, split, branch, k = "/".join(parts[:2]), parts[2], parts[3], int(parts[4])
        slot = predictions.setdefault(variant, {}).setdefault(split, {}).setdefault(branch, [None] * len(TASKS))
        slot[k] = t.numpy()
    return RunResult(config, seed, key, weights_path, predictions, targets, meta, tasks)


def load_model(result: RunResult) -> torch.nn.Module:
    """The SWA model of a run, rebuilt from its safetensors file, in eval mode on the CPU."""
    state, meta = load_weights(result.weights_path)
    settings = meta["settings"]
    model = result.config.build(settings["backbone_size"], pretrained=False)
    model.load_state_dict(state)
    return model.eval()


# ============================================================================ metrics of a run


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _with_melanoma_auc(m: dict) -> dict:
    values = [m[f"auc/{t}/{c}"] for t, c in MELANOMA_CATEGORIES]
    finite = [v for v in values if np.isfinite(v)]
    m["avg_mel_auc"] = float(np.mean(finite)) if finite else math.nan
    return m


def run_metrics(result: RunResult, variant: str = HEADLINE[0], mode: str = HEADLINE[1],
                grid: int | None = None) -> dict:
    """Test metrics of one run (Eq. 4 weights searched on VALID for multi-modal models).

    ``mode``: ``"probability"`` (the paper's text; the tables) or ``"logit"`` (FusionM4Net's
    code). The TTA outputs are log-averaged probabilities; weighting those is weighting logits
    exactly for one view (a per-case constant per branch cancels in the softmax).
    """
    grid = int(grid or result.meta["settings"]["weight_grid"])
    memo = (variant, mode, grid)
    if memo in result._metrics:
        return result._metrics[memo]
    preds = result.predictions[variant]
    if result.config.single_modal:
        (branch,) = preds["test"].keys()
        m = evaluate([_softmax(z) for z in preds["test"][branch]], result.targets["test"], result.tasks)
    else:
        search = search_weights(preds["valid"], result.targets["valid"], n=grid, mode=mode)
        m = evaluate(fused_probabilities(preds["test"], search.weights, mode), result.targets["test"], result.tasks)
        m.update({"w_D": search.weights["dermoscopy"], "w_C": search.weights["clinical"],
                  "w_FU": search.weights["fusion"], "valid_avg_acc": search.score})
    result._metrics[memo] = _with_melanoma_auc(m)
    return result._metrics[memo]


def branch_metrics(result: RunResult, branch: str, variant: str = HEADLINE[0]) -> dict:
    """Test metrics of one branch alone (clinical, dermoscopy or fusion head), no weighting."""
    preds = result.predictions[variant]["test"]
    if branch not in preds:
        raise MedlibError(f"{result.config.name} has no {branch!r} branch; it has {sorted(preds)}")
    return _with_melanoma_auc(evaluate([_softmax(z) for z in preds[branch]], result.targets["test"], result.tasks))


@dataclass
class ConfigResult:
    """All runs of one configuration: per-run metrics, and mean ± std over runs (``text``, ``summary``)."""

    config: Config
    runs: list[RunResult]

    def summary(self, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> pd.DataFrame:
        """Every metric's mean, std (ddof=1), count and ``"mean±std"`` text in percent
        (:func:`medlib.ammfm.metrics.summarize_runs`)."""
        return summarize_runs(self.metrics(variant, mode))

    def metrics(self, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> list[dict]:
        return [run_metrics(r, variant, mode) for r in self.runs]

    def values(self, metric: str, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> np.ndarray:
        """One value per run, in percent for rates (AUC, ACC, ...)."""
        return np.array([100 * m[metric] for m in self.metrics(variant, mode)], dtype=float)

    def mean_std(self, metric: str, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> tuple[float, float]:
        v = self.values(metric, variant, mode)
        finite = v[np.isfinite(v)]
        if not len(finite):
            return math.nan, math.nan
        return float(finite.mean()), float(finite.std(ddof=1)) if len(finite) > 1 else math.nan

    def text(self, metric: str, variant: str = HEADLINE[0], mode: str = HEADLINE[1]) -> str:
        return _pm(*self.mean_std(metric, variant, mode))

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    @property
    def train_seconds(self) -> float:
        return float(sum(r.train_seconds for r in self.runs))


def run_config(config: Config, profile: Profile | str = "auto", seed: int | None = None,
               n_runs: int | None = None, **kwargs) -> ConfigResult:
    """``n_runs`` runs (default ``paper_b.n_runs``) of ``config``; see :func:`train_config`."""
    P = get_profile(profile)
    n = int(n_runs or _settings(P.paper_b, kwargs.get("overrides")).n_runs)
    if "data" not in kwargs:
        kwargs["data"] = _data_for(P, kwargs.get("overrides"))
    return ConfigResult(config, [train_config(config, P, run, seed=seed, **kwargs) for run in range(n)])


def _data_for(P: Profile, overrides: dict | None = None) -> PairData:
    B = _settings(P.paper_b, overrides)
    return _cached_pairs(P.name, B.image_size, str(artifacts_dir()))


@lru_cache(maxsize=4)
def _cached_pairs(profile_name: str, image_size: int, home: str) -> PairData:
    # ``home`` keys the memo by $MEDLIB_HOME too: a changed home means other files
    return load_pairs(profile_name, image_size=image_size)


def _results(rows: list[tuple[str, Config]], P: Profile, seed: int | None) -> dict[str, ConfigResult]:
    out: dict[str, ConfigResult] = {}
    by_name: dict[str, ConfigResult] = {}
    for label, cfg in rows:
        if cfg.name not in by_name:
            by_name[cfg.name] = run_config(cfg, P, seed)
        out[label] = by_name[cfg.name]
    return out


# ============================================================================ formatting and JSON


def _pm(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.1f}" if not np.isfinite(std) else f"{mean:.1f}±{std:.1f}"


def _num(x) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:g}"


def _ours_label(P: Profile) -> str:
    return f"this run ({P.name}, {P.data_source} data)"


def _write(name: str, P: Profile, seed: int | None, frame: pd.DataFrame, results: dict[str, ConfigResult],
           extra: dict | None = None) -> Path:
    """Write ``results/paper_b/<name>-<profile>.json`` atomically: table, per-run metrics, settings, provenance."""
    runs = {
        label: {"config": dataclasses.asdict(r.config), "name": r.config.name, "seeds": r.seeds,
                "keys": [x.key for x in r.runs], "per_run": r.metrics()}
        for label, r in results.items()
    }
    payload = {
        "table": name, "profile": P.name, "data_source": P.data_source,
        "weighting": {"variant": HEADLINE[0], "mode": HEADLINE[1], "searched_on": "valid", "scored_on": "test"},
        "settings": dataclasses.asdict(P.paper_b), "base_seed": P.paper_b.seed if seed is None else seed,
        "rows": json.loads(frame.astype(str).reset_index().to_json(orient="records")),
        "runs": runs, "provenance": provenance(P, P.paper_b.seed if seed is None else seed),
        **(extra or {}),
    }
    path = results_dir() / "paper_b" / f"{name}-{P.name}.json"
    atomic_write_text(path, json.dumps(payload, indent=1, default=str) + "\n")
    return path


# ============================================================================ Table 1


def table1(profile: Profile | str = "auto", data: PairData | None = None) -> pd.DataFrame:
    """Table 1 recomputed from the loaded derm7pt (all cases and per split) beside the paper's counts."""
    P = get_profile(profile)
    ds = (data.dataset if data is not None else ensure_dataset("derm7pt", P))
    rows = []
    splits = {name: ds.counts(ds.splits[name]) for name in ("train", "valid", "test")}
    total = ds.counts()
    n_all = len(ds)
    for task, classes in PAPER_TABLE1.items():
        paper_n = sum(classes.values())
        for cls, paper_count in classes.items():
            rows.append({"task": task, "class": cls, "paper (count)": paper_count,
                         "paper (%)": round(100 * paper_count / paper_n, 1),
                         "this data (count)": total[task][cls], "this data (%)": round(100 * total[task][cls] / n_all, 1),
                         **{f"{s} (count)": splits[s][task][cls] for s in splits}})
    frame = pd.DataFrame(rows).set_index(["task", "class"])
    _write("table1", P, None, frame, {}, {"n_cases": n_all, "paper_task_sums": {t: sum(c.values()) for t, c in PAPER_TABLE1.items()}})
    return frame


def clinic_is_derm_cases(profile: Profile | str = "auto", data: PairData | None = None) -> pd.DataFrame:
    """Cases whose clinical image is the dermoscopic one (derm7pt lists nine), with their split."""
    P = get_profile(profile)
    ds = (data.dataset if data is not None else ensure_dataset("derm7pt", P))
    split_of = {int(i): name for name, idx in ds.splits.items() for i in idx}
    rows = [{"case_num": ds.case_num[i], "split": split_of.get(int(i), "none"), "DIAG": ds.tasks["DIAG"][ds.labels[i, 0]],
             "notes": ds.metadata["notes"].iloc[i]} for i in np.flatnonzero(ds.clinic_is_derm)]
    return pd.DataFrame(rows, columns=["case_num", "split", "DIAG", "notes"]).set_index("case_num")


# ============================================================================ Tables 2–5


def _ammfm(P: Profile, seed: int | None) -> ConfigResult:
    return run_config(table_configs(P)["2"][0][1], P, seed)


def table2(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Table 2 (transposed: one row per category): AUC per category. Other methods' columns and
    AMMFM's are quoted; this run's AMMFM column is measured."""
    P = get_profile(profile)
    res = _ammfm(P, seed)
    cols = _CATEGORY_COLUMNS + ["AVG"]
    frame = pd.DataFrame({f"{m} (paper)": [_num(v) for v in vals] for m, vals in PAPER_TABLE2.items()}, index=cols)
    keys = [f"auc/{t}/{c}" for t, c in AUC_CATEGORIES] + ["avg_auc"]
    frame[f"AMMFM, {_ours_label(P)}"] = [res.text(k) for k in keys]
    frame.index.name = "category"
    _write("table2", P, seed, frame, {"AMMFM": res})
    return frame


def table3(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Table 3 (transposed: one row per task, in the paper's order): accuracy per task."""
    P = get_profile(profile)
    res = _ammfm(P, seed)
    frame = pd.DataFrame({f"{m} (paper)": [_num(v) for v in vals] for m, vals in PAPER_TABLE3.items()},
                         index=list(PAPER_TABLE3_COLUMNS))
    keys = [f"acc/{t}" if t != "AVG" else "avg_acc" for t in PAPER_TABLE3_COLUMNS]
    frame[f"AMMFM, {_ours_label(P)}"] = [res.text(k) for k in keys]
    frame.index.name = "task"
    _write("table3", P, seed, frame, {"AMMFM": res})
    return frame


def table4(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Table 4: AUC, precision, sensitivity, specificity of the melanoma-related categories."""
    P = get_profile(profile)
    res = _ammfm(P, seed)
    rows = {}
    for metric, methods in PAPER_TABLE4.items():
        for method, vals in methods.items():
            rows[(metric, f"{method} (paper)")] = [_num(v) for v in vals]
        key = {"AUC": "auc", "PRE": "precision", "SEN": "sensitivity", "SPE": "specificity"}[metric]
        avg = {"AUC": "avg_mel_auc", "PRE": "avg_precision", "SEN": "avg_sensitivity", "SPE": "avg_specificity"}[metric]
        rows[(metric, f"AMMFM, {_ours_label(P)}")] = [res.text(f"{key}/{t}/{c}") for t, c in MELANOMA_CATEGORIES] + [res.text(avg)]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=_MEL_COLUMNS + ["AVG"])
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["metric", "method"])
    _write("table4", P, seed, frame, {"AMMFM": res})
    return frame


def table5(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Table 5: AVG AUC, AVG ACC and parameters; ours = full-size count of the same architecture."""
    P = get_profile(profile)
    res = _ammfm(P, seed)
    rows = {f"{m} (paper)": {"AVG AUC": _num(a), "AVG ACC": _num(b), "Parameters (M)": p}
            for m, (a, b, p) in PAPER_TABLE5.items()}
    rows[f"AMMFM, {_ours_label(P)}"] = {
        "AVG AUC": res.text("avg_auc"), "AVG ACC": res.text("avg_acc"),
        "Parameters (M)": f"{res.config.full_size_parameters() / 1e6:.2f} (full size)",
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    _write("table5", P, seed, frame, {"AMMFM": res})
    return frame


# ============================================================================ Tables 6, 7, 9, 10 (AVG rows)


def _avg_table(number: str, P: Profile, seed: int | None) -> pd.DataFrame:
    rows = table_configs(P)[number]
    results = _results(rows, P, seed)
    paper = PAPER_ROWS_AVG[number]
    out = {}
    for label, cfg in rows:
        auc, auc_sd, acc, acc_sd, params = paper[label]
        r = results[label]
        out[label] = {
            ("AVG AUC", "paper"): _pm(auc, auc_sd), ("AVG AUC", "this run"): r.text("avg_auc"),
            ("AVG ACC", "paper"): _pm(acc, acc_sd), ("AVG ACC", "this run"): r.text("avg_acc"),
            ("Params (M)", "paper"): _num(params), ("Params (M)", "ours, full size"): f"{cfg.full_size_parameters() / 1e6:.2f}",
            ("Params (M)", "trained here"): f"{r.runs[0].meta['trained_parameters'] / 1e6:.2f}",
        }
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    _write(f"table{number}", P, seed, frame, results)
    return frame


def table6(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Table 6 (§4.4): baseline SFF vs AFF vs AFF + AAB."""
    return _avg_table("6", get_profile(profile), seed)


def table7(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Table 7 (§4.5): single-modal, baseline multi-modal and AMMFM (both ways round)."""
    return _avg_table("7", get_profile(profile), seed)


def table9(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Table 9 (§4.6): SFF/AFF × CAT/BAB/AAB."""
    return _avg_table("9", get_profile(profile), seed)


def table10(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Table 10 (§4.7): ResNet-50, ConvNeXt-T and ST as the dermoscopic backbone."""
    return _avg_table("10", get_profile(profile), seed)


def table8(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Table 8 (§4.5): per-category AUC of ST single-modal, the ST baseline and AMMFM."""
    P = get_profile(profile)
    rows = table_configs(P)["8"]
    results = _results(rows, P, seed)
    keys = [f"auc/{t}/{c}" for t, c in AUC_CATEGORIES] + ["avg_auc"]
    data = {}
    for label, _ in rows:
        data[(label, "paper")] = [_pm(m, s) for m, s in PAPER_TABLE8[label]]
        data[(label, "this run")] = [results[label].text(k) for k in keys]
    frame = pd.DataFrame(data, index=_CATEGORY_COLUMNS + ["AVG"])
    _write("table8", P, seed, frame, results)
    return frame


# ============================================================================ SWA / TTA / weighting


def variants_table(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """AMMFM under each evaluation variant: TTA vs one view (SWA weights), SWA vs last-epoch weights
    (one view each), probability vs logit weighting."""
    P = get_profile(profile)
    res = _ammfm(P, seed)
    views = P.paper_b.tta_views
    variants = [
        (f"SWA weights, {views}-view TTA, probability-weighted (the tables)", "swa/tta", "probability"),
        (f"SWA weights, {views}-view TTA, logit-weighted", "swa/tta", "logit"),
        ("SWA weights, one view (no TTA), probability-weighted", "swa/1", "probability"),
        ("last-epoch weights, one view (no TTA), probability-weighted", "last/1", "probability"),
    ]
    rows = {}
    for label, variant, mode in variants:
        rows[label] = {"AVG AUC": res.text("avg_auc", variant, mode), "AVG ACC": res.text("avg_acc", variant, mode),
                       "_auc": res.mean_std("avg_auc", variant, mode)[0], "_acc": res.mean_std("avg_acc", variant, mode)[0]}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    _write("variants", P, seed, frame.drop(columns=["_auc", "_acc"]), {"AMMFM": res})
    return frame


# ============================================================================ the paper's claims, checked


def _paper_avg(number: str, label: str, metric: str) -> float:
    auc, _, acc, _, _ = PAPER_ROWS_AVG[number][label]
    return auc if metric == "avg_auc" else acc


# (claim, table, row a, row b, kind): the paper says metric(a) - metric(b) is > 0 ("greater")
# or about zero ("close", |Δ| ≤ CLOSE_TOLERANCE points).
CLAIMS: tuple[tuple[str, str, str, str, str], ...] = (
    ("dermoscopy beats clinical images (ST alone)", "7", "Single-modal: Derm ST", "Single-modal: Clin ST", "greater"),
    ("dermoscopy beats clinical images (MN alone)", "7", "Single-modal: Derm MN", "Single-modal: Clin MN", "greater"),
    ("adding clinical images helps (ST + ST vs dermoscopy ST)", "7", "Baseline: ST + ST", "Single-modal: Derm ST", "greater"),
    ("a light clinical network costs little (AFF vs SFF, CAT)", "6", "AFF", "Baseline (SFF, CAT)", "close"),
    ("AAB improves AFF", "6", "AFF + AAB", "AFF", "greater"),
    ("the heavy network belongs on dermoscopy (MN/ST vs ST/MN)", "7", "AMMMF: Clin MN, Derm ST", "AMMMF: Clin ST, Derm MN", "greater"),
    ("AAB beats BAB in AFF", "9", "AFF + AAB", "AFF + BAB", "greater"),
    ("AAB beats BAB in SFF", "9", "SFF + AAB", "SFF + BAB", "greater"),
    ("BAB beats concatenation in AFF", "9", "AFF + BAB", "AFF + CAT", "greater"),
    ("AMMFM beats the baseline with ResNet-50", "10", "ResNet: AMMMF", "ResNet: Baseline", "greater"),
    ("AMMFM beats the baseline with ConvNeXt-T", "10", "ConvNext: AMMMF", "ConvNext: Baseline", "greater"),
    ("AMMFM beats the baseline with ST", "10", "ST: AMMMF", "ST: Baseline", "greater"),
)


def claims(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Each comparison the paper's §4.4–4.7 draws, with the paper's Δ and this run's Δ (paired by seed).

    ``agrees``: for a "greater" claim, this run's mean Δ > 0; for a "close" claim,
    |mean Δ| ≤ :data:`CLOSE_TOLERANCE` points.
    """
    P = get_profile(profile)
    tables = table_configs(P)
    rows = []
    for text, number, a, b, kind in CLAIMS:
        ca, cb = dict(tables[number])[a], dict(tables[number])[b]
        ra, rb = run_config(ca, P, seed), run_config(cb, P, seed)
        for metric, name in (("avg_auc", "AVG AUC"), ("avg_acc", "AVG ACC")):
            paper = _paper_avg(number, a, metric) - _paper_avg(number, b, metric)
            delta = ra.values(metric) - rb.values(metric)
            mean = float(np.nanmean(delta))
            sd = float(np.nanstd(delta, ddof=1)) if np.isfinite(delta).sum() > 1 else math.nan
            agrees = mean > 0 if kind == "greater" else abs(mean) <= CLOSE_TOLERANCE
            rows.append({"claim": text, "table": number, "metric": name, "kind": kind,
                         "paper Δ": round(paper, 1), "this run Δ": mean, "this run Δ sd": sd, "agrees": bool(agrees)})
    frame = pd.DataFrame(rows)
    _write("claims", P, seed, frame, {}, {"close_tolerance": CLOSE_TOLERANCE})
    return frame


def compare(number: str, a: str, b: str, profile: Profile | str = "auto", seed: int | None = None) -> dict:
    """Row ``a`` minus row ``b`` of Table ``number``: the paper's and this run's Δ (points), AUC and ACC."""
    P = get_profile(profile)
    rows = dict(table_configs(P)[number])
    ra, rb = run_config(rows[a], P, seed), run_config(rows[b], P, seed)
    out = {}
    for metric, short in (("avg_auc", "auc"), ("avg_acc", "acc")):
        out[f"paper_{short}"] = _paper_avg(number, a, metric) - _paper_avg(number, b, metric)
        out[f"ours_{short}"] = ra.mean_std(metric)[0] - rb.mean_std(metric)[0]
    return out


def claims_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`claims` one row per claim: paper Δ, this run's Δ ± sd and agreement, per metric."""
    out = {}
    for (claim, number), g in frame.groupby(["claim", "table"], sort=False):
        row = {("", "table"): number}
        for _, r in g.iterrows():
            row[(r.metric, "paper Δ")] = f"{r['paper Δ']:+.1f}"
            row[(r.metric, "this run Δ")] = _pm(r["this run Δ"], r["this run Δ sd"]).replace("±", " ± ")
            row[(r.metric, "agrees")] = "yes" if r.agrees else "no"
        out[claim] = row
    table = pd.DataFrame.from_dict(out, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


# ============================================================================ §3.2 cost, §3.3 surface, attention


def block_costs(image_size: int = 224) -> pd.DataFrame:
    """Parameters and forward FLOPs of AFF/SFF × CAT/AAB/BAB at full size, and of the blocks alone.

    Models are built on the ``meta`` device and traced by ``torch.utils.flop_counter`` (shapes
    only: no weights, no memory). FLOPs count a multiply-add as 2, for one image pair.
    """
    from torch.utils.flop_counter import FlopCounterMode

    rows = []
    for framework, clinical in (("AFF", "mobilenet_v3_small"), ("SFF", "swin_v2_t")):
        for fusion in ("concat", "aab", "bab"):
            with torch.device("meta"):
                model = create_model(clinical, "swin_v2_t", fusion, size="full").eval()
                x = torch.empty(1, 3, image_size, image_size)
            with FlopCounterMode(display=False) as counter:
                model(x, x)
            per_module = counter.get_flop_counts()
            block_flops = sum(sum(v.values()) for k, v in per_module.items() if k.count(".") == 2 and ".blocks." in k)
            block_params = sum(p.numel() for p in model.blocks.parameters())
            rows.append({"framework": framework, "fusion": fusion.upper().replace("CONCAT", "CAT"),
                         "params (M)": count_parameters(model) / 1e6, "block params (M)": block_params / 1e6,
                         "GFLOPs": counter.get_total_flops() / 1e9, "block GFLOPs": block_flops / 1e9})
    return pd.DataFrame(rows).set_index(["framework", "fusion"])


def weight_surface(profile: Profile | str = "auto", seed: int | None = None, run: int = 0) -> dict[str, pd.DataFrame]:
    """The valid-split search surface of Eq. 4's weights for AMMFM run ``run``, per weighting mode.

    One row per distinct renormalised triple (``wn_D, wn_C, wn_FU``) with its mean task accuracy.
    """
    P = get_profile(profile)
    r = train_config(table_configs(P)["2"][0][1], P, run, seed=seed, data=_data_for(P))
    preds = r.predictions[HEADLINE[0]]["valid"]
    out = {}
    for mode in ("probability", "logit"):
        s = search_weights(preds, r.targets["valid"], n=P.paper_b.weight_grid, mode=mode).surface
        rounded = s.assign(_k=list(zip(s.wn_D.round(6), s.wn_C.round(6))))
        out[mode] = rounded.drop_duplicates("_k").drop(columns="_k").reset_index(drop=True)
    return out


def attention_example(profile: Profile | str = "auto", seed: int | None = None, case: int = 0) -> dict:
    """AAB attention maps of the trained AMMFM (run 0) for test case number ``case``.

    Returns the two images (uint8 HWC), ``maps`` {stage: (H, W, H, W) M_c reshaped}, the case's
    diagnosis and ``peak`` {stage: mean over rows of max weight × N}, how far the rows are from
    uniform (1 = perfectly flat, N = one-hot). Row ``M_c[i]`` says where query position i of
    the dermoscopic map reads from.
    """
    P = get_profile(profile)
    data = _data_for(P)
    r = train_config(table_configs(P)["2"][0][1], P, 0, seed=seed, data=data)
    model = load_model(r)
    index = int(data.splits["test"][case])
    batch = (((data.clinical[index:index + 1]), data.dermoscopy[index:index + 1]), torch.zeros(1, 8, dtype=torch.long))
    (c, d), _ = _eval_batch(batch, torch.device("cpu"))
    with torch.no_grad():
        out = model(c, d, return_attention=True)
    maps, peak = {}, {}
    for stage, m in out["attention"].items():
        n = m.shape[-1]
        side = int(round(math.sqrt(n)))
        maps[stage] = m[0].reshape(side, side, side, side).numpy()
        peak[stage] = float(m[0].max(dim=-1).values.mean() * n)
    from medlib.data.cache import load_resized

    # for display: the same centre crop as the model's input, at a readable resolution
    ds = data.dataset
    views = {name: load_resized(path[index], DISPLAY_SIZE).transpose(1, 2, 0)
             for name, path in (("clinical", ds.clinical_paths), ("dermoscopy", ds.derm_paths))}
    return {**views,
            "maps": maps, "peak": peak, "diagnosis": data.tasks["DIAG"][int(data.labels[index, 0])],
            "index": index}


def settings_table(profile: Profile | str = "auto") -> pd.DataFrame:
    """§4.1's recipe (quoted) beside what this profile runs."""
    P = get_profile(profile)
    B = P.paper_b
    ours = {
        "optimizer": "Adam",
        "learning rate": f"{B.lr:g}, cosine, {B.epochs - B.swa_epochs} epochs",
        "batch size": str(B.batch_size),
        "epochs": str(B.epochs),
        "SWA": f"last {B.swa_epochs} epochs, lr {B.lr * SWA_LR_FRACTION:g}, BN recomputed",
        "image size": f"{B.image_size} × {B.image_size}",
        "augmentation": "paired geometry; brightness: clinical only",
        "test-time augmentation": f"{B.tta_views} views",
        "runs for mean ± std": str(B.n_runs),
        "backbones": ("ImageNet-pretrained torchvision" if B.backbone_size == "full"
                      else "tiny torchvision stand-ins, random init"),
    }
    frame = pd.DataFrame({"paper (§4.1)": PAPER_SETTINGS, f"this profile ({P.name})": ours})
    frame.index.name = "setting"
    return frame


def branch_table(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """AMMFM's three heads alone vs their weighted average (Eq. 4), mean ± std over runs (test split)."""
    P = get_profile(profile)
    res = _ammfm(P, seed)
    rows = {}
    for branch in ("clinical", "dermoscopy", "fusion"):
        ms = [branch_metrics(r, branch) for r in res.runs]
        rows[f"{branch} head alone"] = {k: _pm(*_mean_sd([100 * m[k] for m in ms])) for k in ("avg_auc", "avg_acc")}
    for mode in ("probability", "logit"):
        rows[f"weighted average ({mode}-weighted)"] = {k: res.text(k, mode=mode) for k in ("avg_auc", "avg_acc")}
    frame = pd.DataFrame.from_dict(rows, orient="index").rename(columns={"avg_auc": "AVG AUC", "avg_acc": "AVG ACC"})
    return frame


def _mean_sd(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else math.nan)


def tradeoff(profile: Profile | str = "auto", seed: int | None = None) -> pd.DataFrame:
    """Tables 7 and 9 as points: full-size parameters vs AVG AUC, the paper's and this run's."""
    P = get_profile(profile)
    rows, seen = [], set()
    for number in ("7", "9"):
        for label, cfg in table_configs(P)[number]:
            if cfg.name in seen:
                continue
            seen.add(cfg.name)
            r = run_config(cfg, P, seed)
            if cfg.single_modal:
                kind = "single-modal, " + ("clinical" if cfg.dermoscopy is None else "dermoscopic")
            else:
                kind = "symmetric (SFF)" if cfg.clinical == cfg.dermoscopy else "asymmetric (AFF)"
            rows.append({"configuration": cfg.label, "kind": kind, "fusion": cfg.fusion.upper().replace("CONCAT", "CAT"),
                         "params (M)": cfg.full_size_parameters() / 1e6,
                         "paper AVG AUC": PAPER_ROWS_AVG[number][label][0], "this run AVG AUC": r.mean_std("avg_auc")[0]})
    return pd.DataFrame(rows)


def example_cases(data: PairData, split: str = "train") -> list[int]:
    """One case per diagnosis from ``split`` (in class order), plus a clinic = derm case if any."""
    idx = np.asarray(data.splits[split])
    idx = idx[~data.dataset.clinic_is_derm[idx]]  # real pairs for the per-diagnosis examples
    cases = []
    for k, _ in enumerate(data.tasks["DIAG"]):
        hits = idx[data.labels[idx, 0] == k]
        if len(hits):
            cases.append(int(hits[0]))
    same = np.flatnonzero(data.dataset.clinic_is_derm)
    return cases + ([int(same[0])] if len(same) else [])


# ============================================================================ figures


def plot_pairs(data: PairData, indices, per_row: int = 3):
    """Each case in ``indices`` as a clinical image above its dermoscopic image, ``per_row`` cases a row."""
    import matplotlib.pyplot as plt

    indices = list(indices)
    rows = math.ceil(len(indices) / per_row)
    fig, axes = plt.subplots(2 * rows, per_row, figsize=(2.6 * per_row, 3.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, i in enumerate(indices):
        r, c = 2 * (j // per_row), j % per_row
        clinical, derm = data.dataset.load_pair(int(i))
        axes[r, c].imshow(clinical)
        axes[r + 1, c].imshow(derm)
        note = " (clinic = derm)" if data.dataset.clinic_is_derm[i] else ""
        axes[r, c].set_title(f"{data.tasks['DIAG'][int(data.labels[i, 0])]}{note}\nclinical", fontsize=11)
        axes[r + 1, c].set_title("dermoscopic", fontsize=11)
    fig.tight_layout()
    return fig


def plot_params(frame: pd.DataFrame):
    """Horizontal bars: our full-size parameter count beside the paper's, per configuration."""
    import matplotlib.pyplot as plt

    frame = frame.drop_duplicates(["clinical", "dermoscopy", "fusion"])
    fig, ax = plt.subplots(figsize=(8, 0.36 * len(frame) + 1.2))
    y = np.arange(len(frame))
    ax.barh(y - 0.2, frame["ours_m"], height=0.4, label="ours (computed)")
    ax.barh(y + 0.2, frame["paper_m"].astype(float), height=0.4, label="paper (quoted)")
    ax.set_yticks(y, frame["label"], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("parameters (millions)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_attention(example: dict, stage: str | None = None, queries=((0.5, 0.5), (0.2, 0.2))):
    """Clinical and dermoscopic image, then where dermoscopic query positions read from (rows of M_c).

    Each row of M_c is drawn as an overlay whose opacity follows the weight, stretched from the
    row's minimum (transparent) to its maximum, so the image stays visible where the block
    looks least. (The stretch hides how flat a row is; :func:`attention_example` reports that.)
    """
    import matplotlib.pyplot as plt
    from matplotlib import cm

    stage = stage or sorted(example["maps"])[0]
    m = example["maps"][stage]
    side, size = m.shape[0], example["dermoscopy"].shape[0]
    cell = size / side
    fig, axes = plt.subplots(1, 2 + len(queries), figsize=(2.6 * (2 + len(queries)), 3.1))
    axes[0].imshow(example["clinical"]), axes[0].set_title("clinical", fontsize=12)
    axes[1].imshow(example["dermoscopy"]), axes[1].set_title("dermoscopic", fontsize=12)
    for ax, (fy, fx) in zip(axes[2:], queries):
        qi, qj = min(int(fy * side), side - 1), min(int(fx * side), side - 1)
        w = m[qi, qj]
        row = (w - w.min()) / max(float(w.max() - w.min()), 1e-12)
        overlay = cm.inferno(row)
        overlay[..., 3] = 0.85 * row
        ax.imshow(example["dermoscopy"])
        ax.imshow(overlay, extent=(0, size, size, 0), interpolation="nearest")
        ax.add_patch(plt.Rectangle((qj * cell, qi * cell), cell, cell, fill=False, edgecolor="cyan", lw=2))
        ax.set_title(f"query ({qi}, {qj}), {stage}", fontsize=12)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_weight_surface(surfaces: dict[str, pd.DataFrame]):
    """Mean valid accuracy over renormalised (W_D, W_C) (W_FU = 1 − W_D − W_C), one panel per mode."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(surfaces), figsize=(5.2 * len(surfaces), 4.4), squeeze=False)
    lo = min(float(s.score.min()) for s in surfaces.values())
    hi = max(float(s.score.max()) for s in surfaces.values())
    for ax, (mode, s) in zip(axes[0], surfaces.items()):
        sc = ax.scatter(s.wn_D, s.wn_C, c=100 * s.score, cmap="viridis", vmin=100 * lo, vmax=100 * hi, s=60, marker="s")
        best = s.iloc[int(s.score.to_numpy().argmax())]
        ax.plot(best.wn_D, best.wn_C, marker="*", color="red", markersize=16, label="best (first in grid order)")
        ax.plot([0, 1], [1, 0], color="grey", lw=0.8)
        ax.set_xlabel("$W_D$ (dermoscopy)"), ax.set_ylabel("$W_C$ (clinical)")
        ax.set_title(f"{mode}-weighted"), ax.set_aspect("equal"), ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(sc, ax=axes[0].tolist(), label="mean task accuracy on valid (%)")
    return fig


def plot_history(result: RunResult):
    """Training and validation loss per epoch, with the SWA epochs shaded."""
    import matplotlib.pyplot as plt

    h = result.history
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(h["epoch"], h["train_loss"], marker="o", label="train loss (augmented)")
    if "val_loss" in h:
        ax.plot(h["epoch"], h["val_loss"], marker="s", label="valid loss (last-epoch weights)")
    start = result.meta.get("swa_start")
    if start is not None:
        ax.axvspan(start + 0.5, h["epoch"].max() + 0.5, color="grey", alpha=0.15, label="SWA averaging")
    ax.set_xlabel("epoch"), ax.set_ylabel("L_total (Eq. 2)")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_claims(frame: pd.DataFrame, metric: str = "AVG AUC"):
    """The paper's Δ vs this run's Δ per claim (points; bars = ± sd over runs)."""
    import textwrap

    import matplotlib.pyplot as plt

    f = frame[frame.metric == metric].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(f) + 1.4))
    y = np.arange(len(f))
    ax.scatter(f["paper Δ"], y, marker="D", color="black", label="paper (quoted)", zorder=3)
    ax.errorbar(f["this run Δ"], y, xerr=f["this run Δ sd"].fillna(0), fmt="o", color="tab:orange",
                label="this run (mean ± sd over runs)", zorder=2)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, [textwrap.fill(c, 34) for c in f["claim"]], fontsize=10)
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {metric} (points)", fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def plot_tradeoff(frame: pd.DataFrame):
    """Parameters (full size) vs AVG AUC: left the paper's numbers, right this run's.

    Colour = kind of framework, marker = fusion block (single-modal models have none: CAT).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = dict(zip(sorted(frame["kind"].unique()), plt.cm.tab10.colors))
    markers = {"CAT": "o", "AAB": "^", "BAB": "s"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True)
    for ax, col, title in ((axes[0], "paper AVG AUC", "paper (quoted)"), (axes[1], "this run AVG AUC", "this run")):
        for _, row in frame.iterrows():
            ax.scatter(row["params (M)"], row[col], color=colours[row["kind"]], marker=markers[row["fusion"]],
                       s=70, edgecolor="black", linewidth=0.5)
        ax.set_xlabel("parameters, full size (M)", fontsize=11), ax.set_ylabel("AVG AUC (%)", fontsize=11)
        ax.set_title(title, fontsize=12), ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, marker="o", linestyle="", label=k) for k, c in colours.items()]
    handles += [Line2D([], [], color="grey", marker=m, linestyle="", label=f) for f, m in markers.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=10, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


# ============================================================================ results at a glance

# The Paper B tables the results page shows (their AVG AUC / AVG ACC rows).
GLANCE_TABLES = {
    "table7": "Table 7 — single-modal, symmetric baseline and AMMFM",
    "table9": "Table 9 — fusion frameworks (SFF/AFF) × fusion blocks (CAT/BAB/AAB)",
}


def glance_frame(data: dict) -> pd.DataFrame:
    """A table's AVG AUC / AVG ACC columns (paper beside this run) rebuilt from its result file."""
    import ast

    records = data["rows"]
    columns = [ast.literal_eval(k) for k in records[0]]
    frame = pd.DataFrame([list(r.values()) for r in records], columns=pd.MultiIndex.from_tuples(columns))
    frame = frame.set_index(columns[0])
    frame.index.name = "configuration"
    keep = [c for c in frame.columns if c[0] in ("AVG AUC", "AVG ACC")]
    return frame[keep]
