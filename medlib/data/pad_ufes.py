"""PAD-UFES-20 smartphone skin-lesion dataset (Paper A, Appendix A.2). Mendeley Data 10.17632/zr7vgbcyr2.1.

``metadata.csv`` (one row per image, 26 columns) and ``imgs_part_k/PAT_<patient>_<lesion>_<n>.png``,
joined on ``img_id``; six diagnoses, 2,298 images of 1,373 patients; ``groups`` is ``patient_id``.
Never use ``biopsed`` as a feature: every BCC, SCC and MEL was biopsied, so it leaks the label
(:data:`LEAKY_COLUMNS`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from medlib.data.base import (ImageDataset, find_unique_dir, how_to_get, read_csv_strings, require_root, walk_files,
                              zipped_hint)
from medlib.errors import DataError

__all__ = ["PadUfes20", "PAD_COLUMNS", "PAD_CLASSES", "LEAKY_COLUMNS"]

# The file's own column names and order, misspellings included (``fitspatrick``).
PAD_COLUMNS = [
    "patient_id", "lesion_id", "smoke", "drink", "background_father", "background_mother", "age",
    "pesticide", "gender", "skin_cancer_history", "cancer_history", "has_piped_water",
    "has_sewage_system", "fitspatrick", "region", "diameter_1", "diameter_2", "diagnostic", "itch",
    "grew", "hurt", "changed", "bleed", "elevation", "img_id", "biopsed",
]
PAD_CLASSES = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK"]
# Columns that must never be model inputs: the label, and ``biopsed`` which reveals it.
LEAKY_COLUMNS = ("diagnostic", "biopsed")


class PadUfes20(ImageDataset):
    """PAD-UFES-20; ``root`` holds ``metadata.csv`` or is above it. ``metadata``: the CSV as raw strings, row = item."""

    name = "pad-ufes-20"

    def __init__(self, root: str | os.PathLike) -> None:
        base = require_root(root, self.name)
        data_dir = find_unique_dir(base, self.name, lambda f: (f / "metadata.csv").is_file(), "metadata.csv")
        if data_dir is None:
            raise DataError(f"pad-ufes-20: no metadata.csv under {base} (expected "
                            f"<root>/.../metadata.csv beside images/). {how_to_get(self.name)}")
        csv_path = data_dir / "metadata.csv"
        meta = read_csv_strings(csv_path, self.name, PAD_COLUMNS, need_rows=True)

        img_ids = meta["img_id"].str.strip()
        dup = img_ids[img_ids.duplicated()]
        if len(dup):
            raise DataError(f"pad-ufes-20: {csv_path} lists img_id {dup.iloc[0]!r} more than once; expected "
                            f"one row per image. {how_to_get(self.name)}")

        labels = np.empty(len(meta), dtype=np.int64)
        lookup = {c: k for k, c in enumerate(PAD_CLASSES)}
        for i, raw in enumerate(meta["diagnostic"]):
            value = raw.strip()
            if value not in lookup:
                raise DataError(f"pad-ufes-20: {csv_path} row {i + 2} (img_id {img_ids.iloc[i]!r}) has diagnostic "
                                f"{raw!r}; expected one of {PAD_CLASSES}. The file is damaged or not the official "
                                f"release. {how_to_get(self.name)}")
            labels[i] = lookup[value]

        paths = self._find_images(data_dir, list(img_ids))
        self.metadata: pd.DataFrame = meta
        self.csv_path = csv_path
        super().__init__(root=data_dir, tasks={"label": list(PAD_CLASSES)}, labels=labels, image_paths=paths,
                         groups=meta["patient_id"].str.strip().to_numpy(dtype=str), splits={})

    def _find_images(self, data_dir: Path, img_ids: list[str]) -> list[Path]:
        by_name: dict[str, Path] = {}
        for path in walk_files(data_dir, (".png",)):
            if path.name in by_name:
                raise DataError(f"pad-ufes-20: two images share the name {path.name}: {by_name[path.name]} and "
                                f"{path}. Expected each img_id once; remove the duplicate copy.")
            by_name[path.name] = path
        missing = [i for i in img_ids if i not in by_name]
        if missing:
            raise DataError(f"pad-ufes-20: {len(missing)} of {len(img_ids)} images listed in metadata.csv were not "
                            f"found under {data_dir} (first: {missing[:5]}); expected files like imgs_part_1/"
                            f"{missing[0]}.{zipped_hint(data_dir)} {how_to_get(self.name)}")
        return [by_name[i] for i in img_ids]
