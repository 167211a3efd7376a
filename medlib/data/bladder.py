"""Endoscopic Bladder Tissue dataset (Paper A, Appendix A.1). Zenodo 10.5281/zenodo.7741476.

1,754 cystoscopy frames (300 or 350 px squares) of 23 TURBT patients, classes HGC, LGC, NST, NTL, imaging
WLI or NBI; the release unpacks to ``baldder_tissue_classification/`` (sic) with ``{HGC,LGC,NST,NTL}/
case_002_pt_003_frame_0009.png`` and ``annotations.csv`` (HLY, imaging type, tissue type, sub_dataset).
The annotation CSV is found by its columns (identical copies are one); split, imaging and tissue values
are checked row by row; frames are joined by name (the row's tissue folder decides between duplicates).
``groups`` is the case (``case number``, else ``case_<n>`` in the name): frames of a case come from one
video, so :meth:`BladderTissue.case_split` holds out whole cases; ``splits`` is the official split.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from medlib.data.base import ImageDataset, how_to_get, read_csv_strings, require_root, walk_files, zipped_hint
from medlib.errors import DataError

__all__ = ["BladderTissue", "BLADDER_CLASSES", "IMAGE_NAME_COLUMNS", "SPLIT_COLUMNS", "SPLIT_VALUES",
           "IMAGING_TYPES", "ANNOTATION_COLUMNS", "RELEASE_DIR"]

BLADDER_CLASSES = ["HGC", "LGC", "NST", "NTL"]
RELEASE_DIR = "baldder_tissue_classification"  # the released folder name, misspelling included
ANNOTATION_COLUMNS = ["HLY", "imaging type", "tissue type", "sub_dataset"]  # the release's order
LABEL_COLUMN = "tissue type"
IMAGING_COLUMN = "imaging type"
IMAGING_TYPES = ("WLI", "NBI")
CASE_COLUMN = "case number"
IMAGE_NAME_COLUMNS = ("HLY", "image_name")
SPLIT_COLUMNS = ("sub_dataset", "split", "subset")
SPLIT_VALUES = ("train", "val", "test")
_CASE_IN_NAME = re.compile(r"case_(\d+)", re.IGNORECASE)
_MAX_LISTED = 30  # missing frames named in an error; the count is always complete


def _header(path: Path) -> list[str]:
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]
    except Exception:  # unreadable CSVs are simply not candidates; reported if nothing matches
        return []


def _first_present(columns: list[str], names) -> str | None:
    return next((c for c in names if c in columns), None)


def _is_annotation(columns: list[str]) -> bool:
    return LABEL_COLUMN in columns and IMAGING_COLUMN in columns and _first_present(columns, IMAGE_NAME_COLUMNS)


def _row_error(csv_path: Path, i: int, image_col: str, name: str, column: str, value: str, expected) -> DataError:
    # i + 2: the header is line 1, so the CSV line a user opens in an editor
    return DataError(f"bladder-tissue: {csv_path} row {i + 2} ({image_col} {name!r}) has {column} {value!r}; "
                     f"expected one of {list(expected)}. Fix that row (or re-download the release).")


class BladderTissue(ImageDataset):
    """Endoscopic Bladder Tissue; ``root`` is the folder with the annotation CSV or any folder above.

    Also ``imaging_type`` (``"WLI"``/``"NBI"`` per frame), ``annotations`` (the CSV as raw strings),
    ``csv_path``, ``split_column`` (None without a split). ``splits`` is the official split.
    """

    name = "bladder-tissue"

    def __init__(self, root: str | os.PathLike) -> None:
        base = require_root(root, self.name)
        csv_path = self._find_csv(base)
        frame = read_csv_strings(csv_path, self.name, need_rows=True)
        image_col = _first_present(list(frame.columns), IMAGE_NAME_COLUMNS)
        names = frame[image_col].str.strip()

        lookup = {c: k for k, c in enumerate(BLADDER_CLASSES)}
        tissue = frame[LABEL_COLUMN].str.strip()
        imaging = frame[IMAGING_COLUMN].str.strip().str.upper()  # "wli" is WLI, as the split's values are normalised
        labels = np.empty(len(frame), dtype=np.int64)
        for i, (value, kind) in enumerate(zip(tissue, imaging)):
            if value not in lookup:
                raise _row_error(csv_path, i, image_col, names.iloc[i], LABEL_COLUMN, frame[LABEL_COLUMN].iloc[i],
                                 BLADDER_CLASSES)
            if kind not in IMAGING_TYPES:
                raise _row_error(csv_path, i, image_col, names.iloc[i], IMAGING_COLUMN,
                                 frame[IMAGING_COLUMN].iloc[i], IMAGING_TYPES)
            labels[i] = lookup[value]

        split_col = _first_present(list(frame.columns), SPLIT_COLUMNS)
        splits: dict[str, np.ndarray] = {}
        if split_col is not None:
            values = frame[split_col].str.strip().str.lower()
            for i, value in enumerate(values):
                if value not in SPLIT_VALUES:
                    raise _row_error(csv_path, i, image_col, names.iloc[i], split_col, frame[split_col].iloc[i],
                                     SPLIT_VALUES)
            values = values.to_numpy()
            splits = {s: np.flatnonzero(values == s) for s in SPLIT_VALUES if (values == s).any()}

        paths = self._find_images(csv_path.parent, list(names), list(tissue), image_col)
        self.csv_path = csv_path
        self.annotations: pd.DataFrame = frame
        self.split_column = split_col
        self.imaging_type = imaging.to_numpy(dtype=str)
        super().__init__(root=csv_path.parent, tasks={"label": list(BLADDER_CLASSES)}, labels=labels,
                         image_paths=paths, groups=self._groups(frame, names), splits=splits)

    def case_split(self, n_test: int | float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
        """``{"train", "test"}`` with whole cases held out: about ``n_test`` frames (a count or a fraction),
        the cases chosen to match the classes' proportions."""
        from medlib.data.partition import grouped_holdout

        if self.groups is None:
            raise DataError("bladder-tissue: no case ids (no 'case number' column and frame names without "
                            "'case_<n>'), so a split by case is impossible; use the official `splits`.")
        test = grouped_holdout(self.groups, n_test, seed, labels=self.labels)
        return {"train": np.setdiff1d(np.arange(len(self)), test), "test": test}

    def _find_csv(self, base: Path) -> Path:
        csvs = walk_files(base, (".csv",), max_depth=5)
        matches = [p for p in csvs if _is_annotation(_header(p))]
        by_content: dict[str, list[Path]] = {}
        for path in matches:
            # the same table saved with CRLF line endings (Windows, a zip tool) is the same file
            text = path.read_bytes().replace(b"\r\n", b"\n")
            by_content.setdefault(hashlib.sha256(text).hexdigest(), []).append(path)
        if len(by_content) == 1:
            # identical copies are one file: the shallowest, whose folder holds the others' frames too
            return min(matches, key=lambda p: (len(p.parts), str(p)))
        expected = (f"columns {LABEL_COLUMN!r}, {IMAGING_COLUMN!r} and one of {list(IMAGE_NAME_COLUMNS)} "
                    f"(the release: {ANNOTATION_COLUMNS})")
        if len(by_content) > 1:
            raise DataError(f"bladder-tissue: {len(by_content)} different annotation CSVs under {base}: "
                            f"{[str(m) for m in matches]}. Keep one, or pass the folder of the one to use as root.")
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
            listed = ", ".join(missing[:_MAX_LISTED]) + (f", ... ({len(missing) - _MAX_LISTED} more)"
                                                          if len(missing) > _MAX_LISTED else "")
            raise DataError(
                f"bladder-tissue: {len(missing)} of {len(names)} frames named in the {image_col!r} column of the "
                f"annotation CSV were not found as .png under {data_dir}: {listed}.{zipped_hint(data_dir)} Expected "
                f"<folder>/{{HGC,LGC,NST,NTL}}/<frame>.png beside the CSV, as in the release. {how_to_get(self.name)}"
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
