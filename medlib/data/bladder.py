"""Endoscopic Bladder Tissue dataset (Paper A, Appendix A.1). Zenodo 10.5281/zenodo.7741476.

1,754 cystoscopy frames (PNG, ~300-350 px wide) of 23 TURBT patients, four tissue classes
HGC, LGC, NST, NTL; imaging type WLI or NBI; the annotation CSV also names the subset
(train/val/test) the dataset authors used.

What is known about the file, and how this loader copes with what is not (unverified):

* The annotation CSV is found anywhere under ``root`` as the ``*.csv`` that has the columns
  ``tissue type`` and ``imaging type`` (spaces in the names) plus an image-name column:
  ``image_name`` (used by the dataset author's loader) or ``HLY`` (the header public scripts
  read from the Zenodo ``annotations.csv``). Anything else fails with the columns found.
* Images: a recursive ``*.png`` search joined on the image name, with or without its
  extension; if two class folders hold the same file name, the copy inside the folder named
  after the row's tissue type is used.
* The split column is detected by its *values*: the column whose every cell is one of
  train / val / test (``sub_dataset`` in the Zenodo file) becomes ``splits``; none → ``{}``.
* ``groups`` (the case, i.e. patient): the ``case number`` column when present, else the
  ``case_<n>`` that frame names carry (``case_001_pt_001_frame_0001.png``). Frames of a case
  come from one video, so a random frame-level split leaks; split by ``groups``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from medlib.data.base import (
    ImageDataset,
    how_to_get,
    read_csv_strings,
    require_root,
    walk_files,
)
from medlib.errors import DataError

__all__ = ["BladderTissue", "BLADDER_CLASSES", "IMAGE_NAME_COLUMNS", "SPLIT_VALUES"]

BLADDER_CLASSES = ["HGC", "LGC", "NST", "NTL"]
LABEL_COLUMN = "tissue type"
IMAGING_COLUMN = "imaging type"
CASE_COLUMN = "case number"
IMAGE_NAME_COLUMNS = ("image_name", "HLY")
SPLIT_VALUES = ("train", "val", "test")
_CASE_IN_NAME = re.compile(r"case_?(\d+)", re.IGNORECASE)


def _header(path: Path) -> list[str]:
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]
    except Exception:  # unreadable CSVs are simply not candidates; reported if nothing matches
        return []


def _image_column(columns: list[str]) -> str | None:
    return next((c for c in IMAGE_NAME_COLUMNS if c in columns), None)


def _is_annotation(columns: list[str]) -> bool:
    return LABEL_COLUMN in columns and IMAGING_COLUMN in columns and _image_column(columns) is not None


def _split_column(frame: pd.DataFrame, skip: set[str]) -> str | None:
    """The first column whose every (stripped, lower-cased) value is train/val/test."""
    for column in frame.columns:
        if column in skip:
            continue
        values = set(frame[column].str.strip().str.lower())
        if values and values <= set(SPLIT_VALUES):
            return column
    return None


class BladderTissue(ImageDataset):
    """Endoscopic Bladder Tissue; ``root`` is the folder with the annotation CSV or any folder above.

    Extra attributes: ``imaging_type`` (str array, ``"WLI"``/``"NBI"``), ``annotations``
    (the CSV as raw strings), ``csv_path``, ``split_column`` (``None`` without a split).
    """

    name = "bladder-tissue"

    def __init__(self, root: str | os.PathLike) -> None:
        base = require_root(root, self.name)
        csv_path = self._find_csv(base)
        frame = read_csv_strings(csv_path, self.name).reset_index(drop=True)
        if frame.empty:
            raise DataError(f"bladder-tissue: {csv_path} has a header but no rows. {how_to_get(self.name)}")
        image_col = _image_column(list(frame.columns))
        names = frame[image_col].str.strip()

        lookup = {c: k for k, c in enumerate(BLADDER_CLASSES)}
        tissue = frame[LABEL_COLUMN].str.strip()
        labels = np.empty(len(frame), dtype=np.int64)
        for i, value in enumerate(tissue):
            if value not in lookup:
                raise DataError(
                    f"bladder-tissue: {csv_path} row {i + 2} ({image_col} {names.iloc[i]!r}) has "
                    f"{LABEL_COLUMN} {frame[LABEL_COLUMN].iloc[i]!r}; expected one of {BLADDER_CLASSES}. "
                    f"{how_to_get(self.name)}"
                )
            labels[i] = lookup[value]

        split_col = _split_column(frame, {image_col, LABEL_COLUMN, IMAGING_COLUMN, CASE_COLUMN})
        splits: dict[str, np.ndarray] = {}
        if split_col is not None:
            values = frame[split_col].str.strip().str.lower().to_numpy()
            splits = {s: np.flatnonzero(values == s) for s in SPLIT_VALUES if (values == s).any()}

        paths = self._find_images(csv_path.parent, list(names), list(tissue), image_col)
        self.csv_path = csv_path
        self.annotations: pd.DataFrame = frame
        self.split_column = split_col
        self.imaging_type = frame[IMAGING_COLUMN].str.strip().to_numpy(dtype=str)
        super().__init__(
            root=csv_path.parent,
            tasks={"label": list(BLADDER_CLASSES)},
            labels=labels,
            image_paths=paths,
            groups=self._groups(frame, names),
            splits=splits,
        )

    # --- helpers --------------------------------------------------------------------------
    def _find_csv(self, base: Path) -> Path:
        csvs = walk_files(base, (".csv",), max_depth=5)
        matches = [p for p in csvs if _is_annotation(_header(p))]
        if len(matches) == 1:
            return matches[0]
        expected = (f"columns {LABEL_COLUMN!r}, {IMAGING_COLUMN!r} and one of {list(IMAGE_NAME_COLUMNS)} "
                    f"(optional: {CASE_COLUMN!r}, a train/val/test split column)")
        if len(matches) > 1:
            raise DataError(f"bladder-tissue: several annotation CSVs under {base}: "
                            f"{[str(m) for m in matches]}. Pass the folder of the one to use as root.")
        if csvs:
            found = "; ".join(f"{p.name}: {_header(p)}" for p in csvs[:5])
            raise DataError(f"bladder-tissue: no CSV under {base} has the annotation columns. Expected {expected}; "
                            f"found {found}. If the Zenodo file changed its header, please report it. "
                            f"{how_to_get(self.name)}")
        raise DataError(f"bladder-tissue: no annotation CSV under {base}; expected a *.csv with {expected}. "
                        f"{how_to_get(self.name)}")

    def _find_images(self, data_dir: Path, names: list[str], tissue: list[str], image_col: str) -> list[Path]:
        by_name: dict[str, list[Path]] = {}
        by_stem: dict[str, list[Path]] = {}
        for path in walk_files(data_dir, (".png",)):
            by_name.setdefault(path.name, []).append(path)
            by_stem.setdefault(path.stem, []).append(path)
        paths: list[Path] = []
        missing: list[str] = []
        for name, cls in zip(names, tissue):
            key = name.replace("\\", "/")
            base = key.rsplit("/", 1)[-1]
            candidates = by_name.get(base) if base.lower().endswith(".png") else by_stem.get(base)
            if candidates and "/" in key:  # the CSV names a relative path: keep the files that end with it
                suffix = key if key.lower().endswith(".png") else key + ".png"
                candidates = [p for p in candidates if p.as_posix().endswith("/" + suffix)] or candidates
            if not candidates:
                missing.append(name)
                continue
            if len(candidates) > 1:
                # the same frame name in two class folders: the row's tissue type decides
                in_class = [p for p in candidates if cls in p.parts[len(data_dir.parts):]]
                if len(in_class) != 1:
                    raise DataError(f"bladder-tissue: {image_col} {name!r} matches {len(candidates)} files "
                                    f"({[str(c) for c in candidates]}) and none is uniquely inside a folder "
                                    f"named {cls!r}; remove the duplicates.")
                candidates = in_class
            paths.append(candidates[0])
        if missing:
            zips = walk_files(data_dir, (".zip",), max_depth=3)
            hint = f" Archives {[z.name for z in zips]} are still zipped: unzip them." if zips else ""
            raise DataError(
                f"bladder-tissue: {len(missing)} of {len(names)} frames named in the {image_col!r} column were "
                f"not found as .png under {data_dir} (first: {missing[:5]}).{hint} {how_to_get(self.name)}"
            )
        return paths

    def _groups(self, frame: pd.DataFrame, names: pd.Series) -> np.ndarray | None:
        if CASE_COLUMN in frame.columns:
            cases = frame[CASE_COLUMN].str.strip()
            if (cases == "").any():
                row = int(np.flatnonzero((cases == "").to_numpy())[0])
                raise DataError(f"bladder-tissue: row {row + 2} of the annotation CSV has an empty "
                                f"{CASE_COLUMN!r}; expected the patient's case number on every row.")
            return cases.to_numpy(dtype=str)
        found = [_CASE_IN_NAME.search(n) for n in names]
        if all(found):
            return np.asarray([f"case_{int(m.group(1)):03d}" for m in found], dtype=str)
        bad = [n for n, m in zip(names, found) if m is None]
        warnings.warn(
            f"bladder-tissue: no {CASE_COLUMN!r} column and {len(bad)} frame names without 'case_<n>' "
            f"(e.g. {bad[:3]}); groups=None, so case-grouped splits are unavailable.",
            stacklevel=3,
        )
        return None
