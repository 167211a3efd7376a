"""Decode and resize every image once; later epochs read a memory-mapped uint8 ``(N, 3, size, size)`` array.

``fit="crop"``: shorter side to ``size``, centre square kept (bicubic); ``"squash"``: the whole image to
``size x size``, as Paper B and FusionM4Net do to derm7pt's 768×512 images. The key hashes the recipe and, per
file, its path relative to the files' common folder, size and content (moving the dataset keeps the cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from medlib.errors import DataError
from medlib.io import atomic_path, atomic_write_text

__all__ = ["RESIZE_METHOD", "FITS", "DIGESTS_NAME", "cache_key", "cache_path", "cached_images", "load_resized",
           "file_digests"]

RESIZE_METHOD = "pil-bicubic-v2"  # changing the recipe must change every key
FITS = ("crop", "squash")
DIGESTS_NAME = "file-digests.json"
_IDENTITIES = ("content", "stat")
_DIGEST_LOCK = threading.Lock()
_MEMO: dict[str, list] = {}  # this process's hashes, {absolute path: [size, mtime_ns, digest]}


def _check_fit(fit: str) -> None:
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS} ('crop': shorter side then centre square; 'squash': "
                         f"whole image to size x size), got {fit!r}")


def load_resized(path: str | os.PathLike, size: int, fit: str = "crop") -> np.ndarray:
    """Decode one image to RGB and bring it to ``(3, size, size)`` uint8 (``fit``: see the module docstring)."""
    _check_fit(fit)
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        resized = (ImageOps.fit(rgb, (size, size), method=Image.Resampling.BICUBIC) if fit == "crop"
                   else rgb.resize((size, size), Image.Resampling.BICUBIC))
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}. Expected a PNG/JPEG file; "
                        "re-download or remove it.") from exc
    return np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError as exc:
        raise DataError(f"image file {path} does not exist; check the dataset root.") from exc


def _blake2(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def file_digests(paths: Sequence[Path], store_dir: str | os.PathLike | None = None, *,
                 remember: bool = True) -> list[str]:
    """BLAKE2 content hash of each file, remembered in ``<store_dir>/file-digests.json`` (default
    :func:`medlib.paths.cache_dir`) by (path, size, mtime); ``remember=False`` keeps them in this process only."""
    if store_dir is None:
        from medlib.paths import cache_dir

        store_dir = cache_dir()
    store = Path(store_dir) / DIGESTS_NAME
    with _DIGEST_LOCK:
        try:
            known = json.loads(store.read_text())
        except (OSError, ValueError):
            known = {}  # missing or damaged: every file is hashed again, nothing else is lost
        out, changed = [], False
        for path in paths:
            stat = _stat(path)
            key = str(path.absolute())
            entry = known.get(key)
            if not (isinstance(entry, list) and entry[:2] == [stat.st_size, stat.st_mtime_ns]):
                entry = _MEMO.get(key)
                if not (entry and entry[:2] == [stat.st_size, stat.st_mtime_ns]):
                    entry = _MEMO[key] = [stat.st_size, stat.st_mtime_ns, _blake2(path)]
                known[key] = entry
                changed = True
            out.append(entry[2])
        if changed and remember:
            store.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(store, json.dumps(known, separators=(",", ":")))
    return out


def _relative_names(paths: Sequence[Path]) -> list[str]:
    absolute = [p.absolute() for p in paths]
    common = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    return [p.relative_to(common).as_posix() for p in absolute]


def cache_key(paths: Sequence[str | os.PathLike], size: int, *, fit: str = "crop", identity: str = "content",
              digests_dir: str | os.PathLike | None = None, remember: bool = True) -> str:
    """Hex digest of (files in order, sizes, contents or with ``identity="stat"`` mtimes, size, fit, recipe)."""
    _check_fit(fit)
    if identity not in _IDENTITIES:
        raise ValueError(f"identity must be one of {_IDENTITIES}, got {identity!r}")
    paths = [Path(p) for p in paths]
    if identity == "content":
        digests = file_digests(paths, digests_dir, remember=remember)
        fingerprints = [[_stat(p).st_size, d] for p, d in zip(paths, digests)]
    else:
        fingerprints = [[(st := _stat(p)).st_size, st.st_mtime_ns] for p in paths]
    record = {"method": RESIZE_METHOD, "size": int(size), "fit": fit, "identity": identity,
              "files": [[name, *fp] for name, fp in zip(_relative_names(paths), fingerprints)]}
    return hashlib.sha256(json.dumps(record, separators=(",", ":")).encode()).hexdigest()


def cache_path(paths: Sequence[str | os.PathLike], size: int, cache_dir: str | os.PathLike, *,
               fit: str = "crop", identity: str = "content", remember: bool = True) -> Path:
    """Where :func:`cached_images` keeps (or will keep) the array for these files."""
    key = cache_key(paths, size, fit=fit, identity=identity, digests_dir=cache_dir, remember=remember)
    return Path(cache_dir) / f"images-{len(paths)}x{size}px-{fit}-{key[:24]}.npy"


def _open_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    try:
        array = np.load(path, mmap_mode="c")  # copy-on-write: in-place ops never touch the file
    except (ValueError, OSError, EOFError):
        return None
    return array if array.shape == shape and array.dtype == np.uint8 else None


def _build(paths: list[Path], size: int, fit: str, target: Path, progress: bool, workers: int | None) -> None:
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
                for i, image in enumerate(pool.map(lambda p: load_resized(p, size, fit), paths)):
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
        json.dumps({"method": RESIZE_METHOD, "size": size, "fit": fit, "files": _relative_names(paths),
                    "seconds": round(time.monotonic() - t0, 2)}, indent=1) + "\n",
    )


def cached_images(paths: Iterable[str | os.PathLike], size: int, cache_dir: str | os.PathLike, *,
                  progress: bool = True, workers: int | None = None, fit: str = "crop",
                  identity: str = "content") -> torch.Tensor:
    """All images of ``paths`` as one uint8 tensor ``(N, 3, size, size)``, decoded once (in ``workers`` threads);
    later calls with unchanged files get a tensor backed by the memory-mapped cache (copy-on-write)."""
    paths = [Path(p) for p in paths]
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer (pixels), got {size!r}")
    if not paths:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    # the hash sidecar is written once the cache is, so a failed build leaves cache_dir as it was
    target = cache_path(paths, size, cache_dir, fit=fit, identity=identity, remember=False)
    shape = (len(paths), 3, size, size)
    array = _open_cached(target, shape)
    if array is None:
        _build(paths, size, fit, target, progress, workers)
        array = _open_cached(target, shape)
        if array is None:  # pragma: no cover - would mean the file system lost our write
            raise DataError(f"the image cache {target} could not be read back after writing it.")
    elif progress:
        print(f"image cache hit: {target.name} ({len(paths)} images, {array.nbytes / 1e6:.1f} MB)", flush=True)
    if identity == "content":
        file_digests(paths, cache_dir)  # remember the hashes (already in memory: no file is read)
    return torch.from_numpy(array)
