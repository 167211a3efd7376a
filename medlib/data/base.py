"""What every dataset loader shares: the dataset object, file search, CSV reading, errors.

Loaders validate eagerly (every file present, every label parsed) and decode images lazily. Every
error is a :class:`medlib.errors.DataError` naming the path / row / value, what was expected and how
to get the data (:func:`how_to_get`). Images resolving outside the data folder and decompression
bombs are refused.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from medlib.errors import DataError

__all__ = ["ImageDataset", "how_to_get", "require_root", "walk_dirs", "walk_files", "read_csv_strings", "load_rgb",
           "IMAGE_SUFFIXES", "find_unique_dir", "zipped_hint"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# Where each dataset comes from, written as the fix for "data not found".
_HOW_TO_GET = {
    "retina": "Get it with `medlib data download retina --root DIR` (the GitHub archive of yiweichen04/retina_dataset, "
              "unpacked to DIR/retina_dataset-master/dataset/<class>/*.png), then pass the same DIR as root.",
    "pad-ufes-20": "Get it with `medlib data download pad-ufes-20 --root DIR` (Mendeley Data 10.17632/zr7vgbcyr2.1: "
                   "metadata.csv plus images/imgs_part_1..3.zip, unpacked too), then pass the same DIR as root.",
    "bladder-tissue": "Get it with `medlib data download bladder-tissue --root DIR` (Zenodo record 7741476: the "
                      "annotation CSV and the PNG frames), then pass the same DIR as root.",
    "derm7pt": "derm7pt cannot be downloaded anonymously: register (free) at https://derm.cs.sfu.ca and download "
               "release_v0.zip. Unzip it into a folder F so that F/release_v0/meta/meta.csv and F/release_v0/images/ "
               "exist, then point medlib at F: set MEDLIB_DATA_DERM7PT=F (on Colab with Google Drive mounted "
               "`os.environ[\"MEDLIB_DATA_DERM7PT\"] = \"/content/drive/MyDrive/derm7pt\"`, or "
               "`medlib.paths.set_data_root(\"derm7pt\", F)`) before loading; on the command line pass --root F.",
}


def how_to_get(name: str) -> str:
    """One paragraph telling the user how to obtain dataset ``name`` (or a synthetic stand-in)."""
    from medlib.paths import data_env_var

    text = _HOW_TO_GET.get(name, f"Unknown dataset {name!r}.")
    if name != "derm7pt" and name in _HOW_TO_GET:
        text += f" Notebooks download it on first use, or read it from ${data_env_var(name)} when set."
    return f"{text} For a synthetic stand-in in the same on-disk layout run `medlib data synth {name} --out DIR`."


def require_root(root: str | os.PathLike, name: str) -> Path:
    """``root`` as a resolved existing directory, else a :class:`DataError` saying how to get the data."""
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"{name}: the data folder {path} does not exist. {how_to_get(name)}")
    if not path.is_dir():
        raise DataError(f"{name}: {path} is a file; expected the folder the dataset was unpacked into. "
                        f"{how_to_get(name)}")
    return path.resolve()


def _skip(name: str) -> bool:
    # macOS zip debris and hidden folders (our own caches and temp folders among them).
    return name.startswith(".") or name == "__MACOSX"


def walk_dirs(root: Path, max_depth: int = 5) -> Iterator[tuple[Path, int]]:
    """Breadth-first ``(folder, depth)`` under ``root`` (depth 0), sorted by name: the shallowest match wins,
    and the bound keeps a root high above the data (a home folder) from crawling the whole disk."""
    queue: deque[tuple[Path, int]] = deque([(root, 0)])
    while queue:
        folder, depth = queue.popleft()
        yield folder, depth
        if depth >= max_depth:
            continue
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not _skip(p.name))
        except OSError:
            continue
        queue.extend((child, depth + 1) for child in children)


def walk_files(root: Path, suffixes: Sequence[str], max_depth: int = 6) -> list[Path]:
    """All files below ``root`` whose suffix (case-insensitive) is in ``suffixes``, sorted."""
    wanted = tuple(s.lower() for s in suffixes)
    found: list[Path] = []
    for folder, _ in walk_dirs(root, max_depth):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_file() and not _skip(entry.name) and entry.name.lower().endswith(wanted):
                found.append(Path(entry.path))
    return sorted(found)


def read_csv_strings(path: Path, name: str, columns: Iterable[str] = (), need_rows: bool = False) -> pd.DataFrame:
    """Read a CSV keeping every cell the raw string (loaders parse labels; pandas must not guess ``"NA"`` -> NaN),
    with all of ``columns`` and, if ``need_rows``, at least one row."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{name}: cannot read {path} as CSV ({exc}). The file is damaged or not a CSV; "
                        f"re-download it. {how_to_get(name)}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{name}: {path} lacks the column(s) {missing}. Expected columns: {list(columns)}; "
                        f"found: {list(frame.columns)}. The file is not the official one (or a newer release "
                        f"renamed columns). {how_to_get(name)}")
    if need_rows and frame.empty:
        raise DataError(f"{name}: {path} has a header but no rows. {how_to_get(name)}")
    return frame.reset_index(drop=True)


def zipped_hint(data_dir: Path) -> str:
    """A sentence naming the archives under ``data_dir`` still to unzip (why images are missing), else ``""``."""
    zips = walk_files(data_dir, (".zip",), max_depth=3)
    return f" The archives {[z.name for z in zips]} are still zipped: unzip each beside itself." if zips else ""


def load_rgb(path: Path, name: str) -> Image.Image:
    """Decode one image as RGB; an unreadable file is a :class:`DataError` naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"{name}: image {path} disappeared since the dataset was loaded. "
                        f"{how_to_get(name)}") from exc
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{name}: cannot decode image {path} ({exc}); expected a readable PNG/JPEG. "
                        f"The file is truncated or damaged: re-download the dataset. {how_to_get(name)}") from exc


class ImageDataset:
    """A labelled image dataset as read from its official on-disk layout (the API every chapter uses).

    ``name`` (registry name), ``root`` (the resolved data folder), ``tasks`` (``{task: [class, ...]}``,
    single-label: one task ``"label"``), ``classes`` (of the first task), ``labels`` (int64, ``(N,)`` or
    ``(N, n_tasks)``), ``groups`` (patient / case id per item, or None), ``splits`` (``{split: indices}``
    of the official split, ``{}`` without), ``image_paths`` (one per item).
    """

    name: str = ""

    def __init__(self, *, root: Path, tasks: dict[str, list[str]], labels: np.ndarray, image_paths: list[Path],
                 groups: np.ndarray | None = None, splits: dict[str, np.ndarray] | None = None) -> None:
        self.root = Path(root)
        self.tasks = {task: list(classes) for task, classes in tasks.items()}
        self.labels = np.asarray(labels, dtype=np.int64)
        self.image_paths = list(image_paths)
        self.groups = None if groups is None else np.asarray(groups, dtype=str)
        self.splits = {k: np.asarray(v, dtype=np.int64) for k, v in (splits or {}).items()}
        n = len(self.image_paths)
        if self.labels.shape[0] != n or (self.groups is not None and len(self.groups) != n):
            raise AssertionError("loader bug: labels/groups/images disagree in length")
        # a dataset folder from elsewhere may link (or ``../``) to any file of this machine: refuse
        root = self.root.resolve()
        for path in self.image_paths:
            if not path.resolve().is_relative_to(root):
                raise DataError(f"{self.name}: image {path} resolves to {path.resolve()}, outside the data folder "
                                f"{root} (a symlink or ../ path); copy the image into the folder instead.")

    @property
    def classes(self) -> list[str]:
        return next(iter(self.tasks.values()))

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def __len__(self) -> int:
        return len(self.image_paths)

    def __repr__(self) -> str:
        splits = {k: len(v) for k, v in self.splits.items()}
        return f"{type(self).__name__}(n={len(self)}, tasks={self.task_names}, splits={splits}, root={self.root})"

    def load_image(self, index: int) -> Image.Image:
        """Decode item ``index`` as an RGB :class:`PIL.Image.Image`."""
        return load_rgb(self.image_paths[index], self.name)

    def label_matrix(self) -> np.ndarray:
        """Labels as ``(N, n_tasks)`` whatever the dataset (single-label → one column)."""
        return self.labels.reshape(len(self), -1)

    def counts(self, indices: Sequence[int] | np.ndarray | None = None) -> dict[str, dict[str, int]]:
        """``{task: {class: count}}`` over ``indices`` (all items when ``None``), zeros included."""
        matrix = self.label_matrix()
        if indices is not None:
            matrix = matrix[np.asarray(indices, dtype=np.int64)]
        out: dict[str, dict[str, int]] = {}
        for column, (task, classes) in enumerate(self.tasks.items()):
            tally = np.bincount(matrix[:, column], minlength=len(classes))
            out[task] = {cls: int(tally[k]) for k, cls in enumerate(classes)}
        return out


def find_unique_dir(root: Path, name: str, predicate: Callable[[Path], bool], what: str,
                    max_depth: int = 5) -> Path | None:
    """The shallowest folder under ``root`` satisfying ``predicate``; two at that depth is an error."""
    best_depth = None
    hits: list[Path] = []
    for folder, depth in walk_dirs(root, max_depth):
        if best_depth is not None and depth > best_depth:
            break
        if predicate(folder):
            best_depth = depth
            hits.append(folder)
    if len(hits) > 1:
        listing = ", ".join(str(h) for h in hits)
        raise DataError(f"{name}: found {len(hits)} copies of {what} under {root}: {listing}. "
                        f"Pass the one to use as root.")
    return hits[0] if hits else None
