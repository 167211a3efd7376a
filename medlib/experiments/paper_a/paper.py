"""What Tian et al. 2024 print: Tables 1–3 and Table 4's settings, quoted (never computed here).

Each table has a row per part 1–4: Base Model is fine-tuned on part *i*, and the merged columns differ
by row, which fits only if §3.5/§4.1's one-epoch restoration ran on part *i*. The test-set sizes are not
given, but every accuracy of a table is k/n for one n (:func:`implied_test_size`): 181 Retina, 189 Bladder
and 256 PAD-UFES-20 images, about 30%, 11% and 11% of the datasets.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medlib.experiments.paper_a.batches import AUGMENTATION
from medlib.profiles import Profile

__all__ = ["COLUMNS", "MERGED", "PAPER_TABLES", "PAPER_TEST_SIZES", "paper_table", "implied_test_size",
           "PAPER_SETTINGS", "OPEN_CHOICES", "settings_table", "theta_pre_source"]

COLUMNS = ("Params Mean", "Data Vector", "Random Vector", "Base Model", "Full Training")
MERGED = {"Params Mean": "params_mean", "Data Vector": "data_vector", "Random Vector": "random_vector"}

# Accuracy (%) as printed in Tian et al. 2024, Tables 1–3.
PAPER_TABLES = {
    "retina": {"table": 1, "full": 73.48, "rows": [
        (51.38, 70.71, 30.14, 57.45), (49.72, 69.61, 15.48, 60.77),
        (50.83, 72.37, 28.90, 65.19), (53.03, 71.82, 39.92, 64.64)]},
    "bladder-tissue": {"table": 2, "full": 63.49, "rows": [
        (62.43, 65.07, 20.10, 57.67), (60.31, 68.25, 13.22, 60.31),
        (60.84, 66.67, 28.04, 58.73), (61.37, 65.07, 27.51, 54.49)]},
    "pad-ufes-20": {"table": 3, "full": 68.36, "rows": [
        (58.59, 67.57, 31.25, 63.28), (60.93, 66.01, 5.85, 64.45),
        (57.42, 66.40, 10.54, 67.57), (60.93, 66.79, 21.48, 63.67)]},
}

# Test-set sizes implied by the tables (see implied_test_size); the full profile holds out these.
PAPER_TEST_SIZES = {"retina": 181, "bladder-tissue": 189, "pad-ufes-20": 256}


def paper_table(dataset: str) -> pd.DataFrame:
    """The paper's Table for ``dataset`` in our layout (accuracy, %)."""
    spec = PAPER_TABLES[dataset]
    df = pd.DataFrame(spec["rows"], columns=COLUMNS[:4], index=[str(i) for i in range(1, 5)])
    df["Full Training"] = [spec["full"]] + [np.nan] * 3
    df.index.name = "part"
    return df


def implied_test_size(dataset: str, columns=("Params Mean", "Data Vector", "Base Model", "Full Training"),
                      largest: int = 1000) -> int | None:
    """The smallest n ≤ ``largest`` (else None) for which every accuracy in ``columns`` is k/n, rounded or truncated
    to 2 decimals. Table 1's Random Vector fits no n with the others (an average of draws?): left out."""
    values = [v for v in paper_table(dataset)[list(columns)].to_numpy().ravel() if not math.isnan(v)]
    for n in range(2, largest + 1):
        if all(min(abs(100 * k / n - v) for k in (math.floor(v * n / 100), math.ceil(v * n / 100))) < 0.01
               for v in values):
            return n
    return None


# The paper's training settings, quoted: Table 4, and λ from §4.1's text.
PAPER_SETTINGS = {"optimizer": "Adam", "learning rate": "1e-5", "epochs": "64", "batch size": "32",
                  "loss": "weighted cross-entropy", "λ": "0.5"}
PAPER_SOURCE = {"λ": "the paper's §4.1 text (Table 4 does not list λ)"}  # else Table 4

# What the paper leaves open: (the paper says, ours, why). ``{…}`` is filled from the profile.
OPEN_CHOICES = {
    "augmentation": ("none named (\"flipping, shifting, scaling, rotating, brightening\" is Paper B's §4.1)",
                     "flips, ±{degrees:g}° rotation, ±{translate:.0%} shift, {scale_lo:g}–{scale_hi:g} scale, "
                     "brightness ±{brightness:g}",
                     "our choice: common moderate strengths (medlib.data.augment.gpu_augment)"),
    "image size": ("not given", "{image_size} px: shorter side scaled to it, then the centre square",
                   "our choice. full: ResNet50's ImageNet training size, the scale θ_pre learned at; smoke: small "
                   "for a CPU"),
    "class weights": ("\"weighted\" cross-entropy, weights not given",
                      "N / (K · n_c) from the site's own labels (scikit-learn's \"balanced\")",
                      "our choice: every class present carries the same total weight"),
    "test split": ("not given", "{test_split}",
                   "every accuracy of Tables 1–3 is k/n for these n. Our choice: whole patients/cases chosen to "
                   "match the class proportions, the same test images for every seed"),
    "weights": ("\"pretrained ResNet50\"", "{weights}",
                "torchvision's IMAGENET1K_V1 (timm resnet50.tv_in1k), the usual meaning in 2024; timm's default "
                "resnet50 is another training recipe"),
    "merged BatchNorm buffers": ("§4.1 averages the heads only; §3.5 suggests the statistics went through the "
                                 "vector arithmetic",
                                 "the sites' mean running statistics, then restored",
                                 "our choice: pushed through Eq. 1–3 they turn negative (the restoring page measures "
                                 "both)"),
    "Random Vector": ("a random vector, construction not given",
                      "θ_pre + r, each tensor of r a seeded Gaussian scaled to the norm of λΣτ_i's tensor; heads "
                      "averaged",
                      "our choice: a random direction of the data vector's length, the same restoration after it"),
    "restoring epoch": ("one epoch of training (§3.5, §4.1), settings not given",
                        "Adam with fresh state at lr {lr}, batch {batch_size}, augmented, class weights from the "
                        "part's labels, BN momentum 0.1, on part i's data (row i)",
                        "our choice: Table 4's training settings for one epoch"),
    "precision": ("not given", "autocast (bfloat16, float16 on a T4) and channels_last on CUDA; float32 on a CPU",
                  "our choice: speed on Colab GPUs"),
    "seeds": ("3315 (one run)", "{seeds}", "full: the paper's seed first, two more for a spread (mean ± std)"),
}


def theta_pre_source(P: Profile) -> str:
    """Where θ_pre comes from, for provenance lines and cache keys."""
    A = P.paper_a
    if A.weights:
        return f"timm {A.weights} (ImageNet)"
    if A.pretrain_epochs:
        return f"{A.arch} pretrained {A.pretrain_epochs} epochs on {A.pretrain_images} synthetic textures"
    return f"{A.arch} with random weights (dry run)"


def settings_table(profile: Profile) -> pd.DataFrame:
    """The paper's training settings and its open choices beside what ``profile`` uses, each with its reason."""
    A = profile.paper_a
    lr = f"{A.lr:.0e}".replace("e-0", "e-")
    ours = {"optimizer": "Adam", "learning rate": lr, "epochs": str(A.epochs),
            "batch size": str(A.batch_size), "loss": "weighted cross-entropy", "λ": f"{A.lam:g}"}
    column = f"ours ({profile.label})"
    rows = {k: {"paper": v, column: ours[k], "why": PAPER_SOURCE.get(k, "the paper's Table 4") if ours[k] == v else
                f"{profile.label}: a small model on synthetic data, minutes on a CPU"}
            for k, v in PAPER_SETTINGS.items()}
    test_split = (", ".join(f"{d} {n}" for d, n in PAPER_TEST_SIZES.items()) + " test images"
                  if profile.data_source == "real" else f"{A.test_fraction:.0%} of each synthetic stand-in")
    fill = {"image_size": A.image_size, "test_split": test_split, "weights": theta_pre_source(profile),
            "seeds": ", ".join(map(str, profile.seeds)), "lr": lr, "batch_size": A.batch_size,
            "degrees": AUGMENTATION["degrees"], "translate": AUGMENTATION["translate"],
            "scale_lo": AUGMENTATION["scale"][0], "scale_hi": AUGMENTATION["scale"][1],
            "brightness": AUGMENTATION["brightness"]}
    for k, (paper, ours_fmt, why) in OPEN_CHOICES.items():
        rows[k] = {"paper": paper, column: ours_fmt.format(**fill), "why": why}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "setting"
    return df
