"""Seven-point checklist dataset, derm7pt (Paper B, Section 4.1). derm.cs.sfu.ca, registration required.

``release_v0/``: ``meta/meta.csv`` (1011 rows, 19 columns), ``meta/{train,valid,test}_indexes.csv``
(0-based rows, unsorted) and ``images/<clinic>``, ``images/<derm>`` (``.jpg`` and ``.JPG``). 8 labels per
case, the diagnosis and the seven criteria, grouped as in Kawahara et al. (2019), FusionM4Net and AMMFM
(:data:`TASK_GROUPS`); an unknown raw string is an error naming case, column and value. Nine cases lack
the clinical image (``clinic`` equals ``derm``): they stay, marked by :attr:`Derm7pt.clinic_is_derm`.
"""

from __future__ import annotations

import itertools
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medlib.data.base import ImageDataset, find_unique_dir, how_to_get, load_rgb, read_csv_strings, require_root
from medlib.errors import DataError

__all__ = ["Derm7pt", "META_COLUMNS", "TASK_COLUMNS", "TASK_GROUPS", "DERM7PT_TASKS", "SPLIT_FILES"]

META_COLUMNS = [
    "case_num", "diagnosis", "seven_point_score", "pigment_network", "streaks", "pigmentation",
    "regression_structures", "dots_and_globules", "blue_whitish_veil", "vascular_structures",
    "level_of_diagnostic_difficulty", "elevation", "location", "sex", "management", "clinic", "derm",
    "case_id", "notes",
]

# task -> meta.csv column, in the task order used everywhere (labels[:, k])
TASK_COLUMNS = {
    "DIAG": "diagnosis",
    "PN": "pigment_network",
    "STR": "streaks",
    "PIG": "pigmentation",
    "RS": "regression_structures",
    "DaG": "dots_and_globules",
    "BWV": "blue_whitish_veil",
    "VS": "vascular_structures",
}

_ABS_REG_IR = {"absent": "ABS", "regular": "REG", "irregular": "IR"}

# task -> {class: [raw strings]} ; class order = label index order. The raw strings are those of
# meta.csv; the few extra aliases ("nevus", "DF/LT/MLS/MISC", "dotted/irregular", ...) are the
# group names the official derm7pt loader also accepts.
TASK_GROUPS: dict[str, dict[str, list[str]]] = {
    "DIAG": {
        "BCC": ["basal cell carcinoma"],
        "NEV": ["blue nevus", "clark nevus", "combined nevus", "congenital nevus", "dermal nevus",
                "recurrent nevus", "reed or spitz nevus", "nevus"],
        "MEL": ["melanoma", "melanoma (in situ)", "melanoma (less than 0.76 mm)", "melanoma (0.76 to 1.5 mm)",
                "melanoma (more than 1.5 mm)", "melanoma metastasis"],
        "MISC": ["dermatofibroma", "lentigo", "melanosis", "miscellaneous", "vascular lesion", "DF/LT/MLS/MISC"],
        "SK": ["seborrheic keratosis"],
    },
    "PN": {"ABS": ["absent"], "TYP": ["typical"], "ATP": ["atypical"]},
    "STR": {v: [k] for k, v in _ABS_REG_IR.items()},
    "PIG": {
        "ABS": ["absent"],
        "REG": ["diffuse regular", "localized regular", "regular"],
        "IR": ["diffuse irregular", "localized irregular", "irregular"],
    },
    "RS": {"ABS": ["absent"], "PRS": ["blue areas", "white areas", "combinations", "present"]},
    "DaG": {v: [k] for k, v in _ABS_REG_IR.items()},
    "BWV": {"ABS": ["absent"], "PRS": ["present"]},
    "VS": {
        "ABS": ["absent"],
        "REG": ["arborizing", "comma", "hairpin", "within regression", "wreath", "regular"],
        "IR": ["dotted", "linear irregular", "dotted/irregular"],
    },
}
DERM7PT_TASKS = {task: list(groups) for task, groups in TASK_GROUPS.items()}
SPLIT_FILES = {"train": "train_indexes.csv", "valid": "valid_indexes.csv", "test": "test_indexes.csv"}


def _is_release(folder: Path) -> bool:
    return (folder / "meta" / "meta.csv").is_file()


class Derm7pt(ImageDataset):
    """derm7pt with the 8 grouped tasks; ``root`` is ``release_v0`` or any folder above it.

    ``labels`` is ``(N, 8)`` in :data:`TASK_COLUMNS` order; ``image_paths`` are the dermoscopic images
    (so single-image code works), ``clinical_paths`` / ``derm_paths`` the pair (:meth:`load_pair`).
    Also ``metadata`` (meta.csv as raw strings), ``clinic_is_derm`` (bool mask), ``case_num``.
    """

    name = "derm7pt"

    def __init__(self, root: str | os.PathLike) -> None:
        base = require_root(root, self.name)
        release = find_unique_dir(base, self.name, _is_release, "meta/meta.csv")
        if release is None:
            raise DataError(f"derm7pt: no meta/meta.csv under {base}. {how_to_get(self.name)}")
        meta_path = release / "meta" / "meta.csv"
        images_dir = release / "images"
        if not images_dir.is_dir():
            raise DataError(f"derm7pt: {images_dir} is missing (found {meta_path} beside it); the zip was not "
                            f"unpacked completely. {how_to_get(self.name)}")
        meta = read_csv_strings(meta_path, self.name, META_COLUMNS, need_rows=True)
        case_num = meta["case_num"].str.strip().to_numpy(dtype=str)

        labels = np.empty((len(meta), len(TASK_GROUPS)), dtype=np.int64)
        for t, (task, groups) in enumerate(TASK_GROUPS.items()):
            column = TASK_COLUMNS[task]
            lookup = {raw: k for k, raws in enumerate(groups.values()) for raw in raws}
            for i, raw in enumerate(meta[column]):
                value = raw.strip()
                if value not in lookup:
                    known = sorted({r for raws in groups.values() for r in raws})
                    raise DataError(
                        f"derm7pt: {meta_path} row {i + 2} (case_num {case_num[i]}) has {column} = {raw!r}, "
                        f"which the official {task} grouping does not know; expected one of {known}. "
                        f"The file is damaged or from another release. {how_to_get(self.name)}"
                    )
                labels[i, t] = lookup[value]

        clinic = meta["clinic"].str.strip()
        derm = meta["derm"].str.strip()
        self.clinical_paths = self._resolve_images(images_dir, clinic, case_num, "clinic")
        self.derm_paths = self._resolve_images(images_dir, derm, case_num, "derm")
        self.clinic_is_derm = (clinic == derm).to_numpy()
        self.metadata: pd.DataFrame = meta
        self.meta_path = meta_path
        self.case_num = case_num
        super().__init__(root=release, tasks=DERM7PT_TASKS, labels=labels, image_paths=list(self.derm_paths),
                         groups=case_num, splits=self._read_splits(release / "meta", len(meta)))

    def load_pair(self, index: int) -> tuple[Image.Image, Image.Image]:
        """``(clinical, dermoscopic)`` RGB images of case ``index`` (the same picture twice
        for the nine cases whose clinical image is missing, see ``clinic_is_derm``)."""
        return load_rgb(self.clinical_paths[index], self.name), load_rgb(self.derm_paths[index], self.name)

    def load_clinical(self, index: int) -> Image.Image:
        return load_rgb(self.clinical_paths[index], self.name)

    def _resolve_images(self, images_dir: Path, rel: pd.Series, case_num: np.ndarray, column: str) -> list[Path]:
        escaping = [i for i, r in enumerate(rel) if Path(r).is_absolute() or ".." in Path(r).parts]
        if escaping:  # meta.csv from elsewhere must not name files outside images/
            i = escaping[0]
            raise DataError(f"derm7pt: meta.csv case_num {case_num[i]} has {column} = {rel.iloc[i]!r}, a path "
                            f"outside {images_dir}; expected a path relative to images/ without '..'.")
        paths = [images_dir / r for r in rel]
        missing = [(i, p) for i, p in enumerate(paths) if not rel.iloc[i] or not p.is_file()]
        if missing:
            i, path = missing[0]
            hint = ""
            if rel.iloc[i] and path.parent.is_dir():
                twins = [q.name for q in path.parent.iterdir() if q.name.lower() == path.name.lower()]
                if twins:
                    # paths are case-sensitive: .jpg vs .JPG matters on Linux
                    hint = (f" A file differing only in letter case exists ({twins[0]}): the copy renamed "
                            f"files; unpack the original zip again.")
            raise DataError(
                f"derm7pt: {len(missing)} {column} image(s) listed in meta.csv are missing; first: case_num "
                f"{case_num[i]}, {column} = {rel.iloc[i]!r}, expected file {path}.{hint} {how_to_get(self.name)}"
            )
        return paths

    def _read_splits(self, meta_dir: Path, n_rows: int) -> dict[str, np.ndarray]:
        splits: dict[str, np.ndarray] = {}
        for split, filename in SPLIT_FILES.items():
            path = meta_dir / filename
            if not path.is_file():
                raise DataError(f"derm7pt: split file {path} is missing; expected "
                                f"meta/{{train,valid,test}}_indexes.csv beside meta.csv. {how_to_get(self.name)}")
            raw = read_csv_strings(path, self.name, ["indexes"])["indexes"].str.strip()
            bad = [v for v in raw if not v.lstrip("-").isdigit() or len(v) > 18]
            if bad:  # a non-integer, or one far beyond any row (99999… would overflow int64)
                raise DataError(f"derm7pt: {path} holds the index {bad[0][:40]!r}, not a row number of meta.csv "
                                f"(0..{n_rows - 1}); the index files belong to a different meta.csv. "
                                f"{how_to_get(self.name)}")
            idx = raw.astype(np.int64).to_numpy()
            out = idx[(idx < 0) | (idx >= n_rows)]
            if len(out):
                raise DataError(f"derm7pt: {path} holds index {int(out[0])}, outside 0..{n_rows - 1} (meta.csv has "
                                f"{n_rows} rows); the index files belong to a different meta.csv. "
                                f"{how_to_get(self.name)}")
            uniq, freq = np.unique(idx, return_counts=True)
            if (freq > 1).any():
                raise DataError(f"derm7pt: {path} lists index {int(uniq[freq > 1][0])} more than once.")
            splits[split] = idx
        for a, b in itertools.combinations(splits, 2):
            both = np.intersect1d(splits[a], splits[b])
            if len(both):
                raise DataError(f"derm7pt: rows {both[:5].tolist()} are in both the {a} and the {b} split; "
                                "expected disjoint index files.")
        covered = sum(len(v) for v in splits.values())
        if covered != n_rows:
            warnings.warn(f"derm7pt: the index files cover {covered} of {n_rows} meta.csv rows.", stacklevel=3)
        return splits
