"""Numbers QUOTED from Tang & Lasser (2024) as printed (percent; parameters in M), inconsistencies included.

E.g. Table 1's VS counts sum to 1021, not 1011; Table 4 repeats Table 2's AUCs with small differences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medlib.ammfm.tasks import AUC_CATEGORIES, MELANOMA_CATEGORIES

__all__ = ["PAPER_TABLE1", "PAPER_TABLE2", "PAPER_TABLE3", "PAPER_TABLE3_COLUMNS", "PAPER_TABLE4", "PAPER_TABLE5",
           "PAPER_ROWS_AVG", "PAPER_TABLE8", "PAPER_SETTINGS", "PAPER_BEST", "PAPER_MEAN", "CATEGORY_COLUMNS",
           "MELANOMA_COLUMNS", "paper_avg_auc_check"]

CATEGORY_COLUMNS = [f"{t} {c}" for t, c in AUC_CATEGORIES]
MELANOMA_COLUMNS = [f"{t} {c}" for t, c in MELANOMA_CATEGORIES]

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
    "AMMFM": [95.8, 92.4, 89.3, 93.7, 91.7, 87.1, 86.7, 91.5, 85.2, 82.5, 86.2, 83.6, 79.8, 86.0, 94.1, 90.2, 82.4,
              88.1],
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
    "7": {"Single-modal: Derm ST": (86.6, 0.3, 76.2, 0.6, 28.82),
          "Single-modal: Clin ST": (77.3, 0.5, 68.7, 0.7, 28.82),
          "Single-modal: Derm MN": (83.1, 0.4, 72.6, 0.3, 2.91), "Single-modal: Clin MN": (75.7, 0.4, 67.6, 0.5, 2.91),
          "Baseline: ST + ST": (87.2, 0.4, 76.6, 0.5, 58.49), "Baseline: MN + MN": (84.5, 0.3, 73.4, 0.2, 6.48),
          "AMMMF: Clin ST, Derm MN": (84.7, 0.3, 73.8, 0.3, 32.62),
          "AMMMF: Clin MN, Derm ST": (87.6, 0.4, 76.7, 0.4, 33.06)},
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
    "test-time augmentation": "yes, views not stated (FusionM4Net: 4 by default, 6 possible)",
    "runs for mean ± std": "10 (§4.4)",
    "backbones": "not stated (ImageNet-pretrained, presumably)",
    "input scaling": "not stated (FusionM4Net: pixels in [0, 1], BGR as cv2 reads them, no mean/std)",
    "weight decay": "not stated",
    "weight-search grid": "not stated (FusionM4Net: linspace(0.05, 1, 25))",
    "resize method": "not stated (FusionM4Net: cv2.resize, bilinear)",
    "geometric warp": "not stated (FusionM4Net: albumentations, BORDER_REFLECT_101 borders)",
}


# §4.3: Tables 2–5 compare "the highest value" of AMMFM's ten runs with other methods; its
# mean ± std over the ten runs is Table 6's. Like-for-like gaps use the matching pair.
PAPER_BEST = {"avg_auc": PAPER_TABLE5["AMMFM"][0], "avg_acc": PAPER_TABLE5["AMMFM"][1]}
PAPER_MEAN = {"avg_auc": PAPER_ROWS_AVG["6"]["AFF + AAB"][:2], "avg_acc": PAPER_ROWS_AVG["6"]["AFF + AAB"][2:4]}


def paper_avg_auc_check() -> pd.DataFrame:
    """Table 2's printed AVG beside the mean of its 17 category AUCs: agreement makes AVG AUC their plain mean."""
    rows = {}
    for method, values in PAPER_TABLE2.items():
        categories, printed = np.asarray(values[:-1], dtype=float), float(values[-1])
        mean = float(categories.mean())
        rows[method] = {"printed AVG": printed, "mean of the 17 categories": round(mean, 2),
                        "difference": round(mean - printed, 2),
                        # 17 values each rounded to 0.1 and a rounded AVG: within 0.1 is agreement
                        "agrees within rounding": abs(mean - printed) < 0.1}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "method (Table 2)"
    return frame
