"""Retina fundus dataset (Paper A, Appendix A.3): github.com/yiweichen04/retina_dataset.

``retina_dataset-master/dataset/{1_normal,2_cataract,2_glaucoma,3_retina_disease}/*.png`` (300, 100,
101, 100 images). Two folders share the ``2_`` prefix, so classes are mapped by full folder name. No
patient ids, no official split.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medlib.data.base import IMAGE_SUFFIXES, ImageDataset, find_unique_dir, how_to_get, require_root
from medlib.errors import DataError

__all__ = ["Retina", "RETINA_FOLDERS"]

# folder name -> class name, in class order
RETINA_FOLDERS = {
    "1_normal": "normal",
    "2_cataract": "cataract",
    "2_glaucoma": "glaucoma",
    "3_retina_disease": "retina_disease",
}


def _has_class_folders(folder: Path, need_all: bool = True) -> bool:
    present = [(folder / f).is_dir() for f in RETINA_FOLDERS]
    return all(present) if need_all else any(present)


class Retina(ImageDataset):
    """The 601-image, 4-class Retina dataset; ``root`` is the archive folder or any folder above it."""

    name = "retina"

    def __init__(self, root: str | os.PathLike) -> None:
        base = require_root(root, self.name)
        class_dir = find_unique_dir(base, self.name, _has_class_folders, "the retina `dataset` folder")
        if class_dir is None:
            partial = find_unique_dir(base, self.name, lambda f: _has_class_folders(f, False), "retina class folders")
            if partial is not None:
                missing = [f for f in RETINA_FOLDERS if not (partial / f).is_dir()]
                raise DataError(
                    f"retina: {partial} has only some class folders; missing {missing}. Expected all of "
                    f"{list(RETINA_FOLDERS)} (the archive was not unpacked completely). {how_to_get(self.name)}"
                )
            raise DataError(
                f"retina: no folder under {base} contains the class folders {list(RETINA_FOLDERS)} "
                f"(expected <root>/retina_dataset-master/dataset/1_normal/NL_001.png ...). {how_to_get(self.name)}"
            )
        paths: list[Path] = []
        labels: list[int] = []
        for k, folder in enumerate(RETINA_FOLDERS):
            files = sorted(p for p in (class_dir / folder).iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
            if not files:
                raise DataError(f"retina: class folder {class_dir / folder} holds no .png images; expected "
                                f"e.g. {folder}/NL_001.png. {how_to_get(self.name)}")
            paths.extend(files)
            labels.extend([k] * len(files))
        self.class_dir = class_dir
        super().__init__(root=class_dir.parent if class_dir.name == "dataset" else class_dir,
                         tasks={"label": list(RETINA_FOLDERS.values())}, labels=np.asarray(labels, dtype=np.int64),
                         image_paths=paths, groups=None, splits={})
