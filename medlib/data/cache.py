"""Decode and resize every image once; later epochs read a memory-mapped uint8 array.

Decoding a PNG and resizing it costs far more than a training step of a small model at
64-224 px, and it is the same work every epoch. ``cached_images`` does it once per
(files, size) and stores the result as a raw ``.npy`` array of shape ``(N, 3, size, size)``
in ``cache_dir``. Later calls map that file (``np.load(mmap_mode="c")``): nothing is read
until a batch touches it, and the page cache shares it between DataLoader workers.

Resizing: the shorter side is scaled to ``size`` and the centre ``size x size`` square is
kept (``PIL.ImageOps.fit``, bicubic, which low-pass filters when shrinking). Aspect ratio
is preserved; the borders of the longer side are cut. Images are converted to RGB the way
``torchvision.datasets.folder.pil_loader`` does (no EXIF rotation).

The cache key hashes the resize recipe, ``size``, and for every file (in the given order):
its path relative to the files' common folder, its byte size and its modification time —
or its content hash with ``identity="content"``. Editing, replacing, adding or reordering
files therefore builds a new cache; moving the whole dataset folder does not. Cache files
are written under a temporary name and renamed when complete; ``cache_dir`` can be deleted
at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from medlib.errors import DataError
from medlib.io import atomic_path, atomic_write_text

__all__ = ["RESIZE_METHOD", "cache_key", "cache_path", "cached_images", "load_resized"]

RESIZE_METHOD = "pil-fit-bicubic-center-v1"  # changing the recipe must change every key
_IDENTITIES = ("stat", "content")


def load_resized(path: str | os.PathLike, size: int) -> np.ndarray:
    """Decode one image to RGB, resize the shorter side to ``size``, centre-crop; ``(3, size, size)`` uint8."""
    try:
        with Image.open(path) as img:
            fitted = ImageOps.fit(img.convert("RGB"), (size, size), method=Image.Resampling.BICUBIC)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(
            f"cannot decode image {path}: {exc}. Expected a PNG/JPEG file; re-download or remove it."
        ) from exc
    return np.asarray(fitted, dtype=np.uint8).transpose(2, 0, 1)


def _file_fingerprint(path: Path, identity: str) -> list:
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise DataError(f"image file {path} does not exist; check the dataset root.") from exc
    if identity == "stat":
        return [stat.st_size, stat.st_mtime_ns]
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return [stat.st_size, digest.hexdigest()]


def _relative_names(paths: Sequence[Path]) -> list[str]:
    absolute = [p.absolute() for p in paths]
    common = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    return [p.relative_to(common).as_posix() for p in absolute]


def cache_key(paths: Sequence[str | os.PathLike], size: int, *, identity: str = "stat") -> str:
    """Hex digest identifying (files in order, their fingerprints, size, resize recipe)."""
    if identity not in _IDENTITIES:
        raise ValueError(f"identity must be one of {_IDENTITIES}, got {identity!r}")
    paths = [Path(p) for p in paths]
    record = {
        "method": RESIZE_METHOD,
        "size": int(size),
        "identity": identity,
        "files": [[name, *_file_fingerprint(p, identity)] for name, p in zip(_relative_names(paths), paths)],
    }
    return hashlib.sha256(json.dumps(record, separators=(",", ":")).encode()).hexdigest()


def cache_path(paths: Sequence[str | os.PathLike], size: int, cache_dir: str | os.PathLike, *,
               identity: str = "stat") -> Path:
    """Where :func:`cached_images` keeps (or will keep) the array for these files."""
    return Path(cache_dir) / f"images-{len(paths)}x{size}px-{cache_key(paths, size, identity=identity)[:24]}.npy"


def _open_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    try:
        array = np.load(path, mmap_mode="c")  # copy-on-write: in-place ops never touch the file
    except (ValueError, OSError, EOFError):
        return None
    if array.shape != shape or array.dtype != np.uint8:
        return None
    return array


def _build(paths: list[Path], size: int, target: Path, progress: bool, workers: int | None) -> None:
    n = len(paths)
    workers = workers or min(8, os.cpu_count() or 1)
    t0 = t_last = time.monotonic()
    if progress:
        print(f"caching {n} images at {size}x{size} px into {target.name} ({workers} threads)", flush=True)
    with atomic_path(target) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
        try:
            # PIL releases the GIL while decoding and resizing, so threads run in parallel.
            pool = ThreadPoolExecutor(max_workers=workers)
            try:
                results = pool.map(lambda p: load_resized(p, size), paths)
                for i, image in enumerate(results):
                    array[i] = image
                    now = time.monotonic()
                    if progress and (now - t_last > 5.0 or i + 1 == n):
                        t_last = now
                        print(f"  {i + 1}/{n} images ({100 * (i + 1) / n:.0f}%), "
                              f"{(i + 1) / max(now - t0, 1e-9):.0f} img/s", flush=True)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # a bad file stops the rest at once
            array.flush()
        finally:
            del array  # unmap before the rename (or the removal on error)
    atomic_write_text(
        target.with_suffix(".json"),
        json.dumps({"method": RESIZE_METHOD, "size": size, "files": _relative_names(paths),
                    "seconds": round(time.monotonic() - t0, 2)}, indent=1) + "\n",
    )


def cached_images(
    paths: Iterable[str | os.PathLike],
    size: int,
    cache_dir: str | os.PathLike,
    *,
    progress: bool = True,
    workers: int | None = None,
    identity: str = "stat",
) -> torch.Tensor:
    """All images of ``paths`` as one uint8 tensor ``(N, 3, size, size)``, decoded once.

    The first call decodes in ``workers`` threads and writes the cache; later calls with
    unchanged files return a tensor backed by the memory-mapped cache file (writes to it
    stay in memory). ``identity="content"`` keys files by content hash instead of
    size + mtime (slower to check, robust to copies that reset mtimes).
    """
    paths = [Path(p) for p in paths]
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer (pixels), got {size!r}")
    if not paths:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    target = cache_path(paths, size, cache_dir, identity=identity)
    shape = (len(paths), 3, size, size)
    array = _open_cached(target, shape) if target.exists() else None
    if array is None:
        _build(paths, size, target, progress, workers)
        array = _open_cached(target, shape)
        if array is None:  # pragma: no cover - would mean the file system lost our write
            raise DataError(f"the image cache {target} could not be read back after writing it.")
    elif progress:
        print(f"image cache hit: {target.name} ({len(paths)} images, {array.nbytes / 1e6:.1f} MB)", flush=True)
    return torch.from_numpy(array)
