"""Files exchanged between sites: atomic writes, safetensors with JSON metadata (loading never runs code: a
pickle, a truncated or malformed file is refused in one line), and :func:`file_lock` for shared homes.
Files get the umask's mode (readable by the other users of a shared ``MEDLIB_HOME``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from medlib.errors import WeightsFileError

__all__ = ["atomic_path", "atomic_write_text", "save_weights", "load_weights", "read_metadata", "tensor_shapes",
           "file_lock", "first_line"]

_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
# a temporary file untouched this long belongs to a killed write (a live one grows as it writes)
STALE_TMP_S = 600.0


def _remove_stale_temporaries(path: Path) -> None:
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):  # another process may remove it first
            if time.time() - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``, renamed over it on success: a crash leaves the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        # mkstemp creates 0600 and a writer may replace the file (safetensors does): the mode is set last
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_weights(path: str | os.PathLike, state: dict[str, torch.Tensor], metadata: dict) -> None:
    """Write ``state`` as safetensors with ``metadata`` (JSON-serialisable) in the header."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {"medlib": json.dumps(metadata, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def first_line(exc: BaseException) -> str:
    """An exception's message in one line (its type when it has none)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _unreadable(path: Path, exc: Exception) -> WeightsFileError:
    return WeightsFileError(f"{path} is not a readable safetensors file ({first_line(exc)}): truncated or corrupt; "
                            "write or send it again")


def _header(path: Path) -> tuple[dict, dict[str, tuple[int, ...]]]:
    """(metadata, {key: shape}) from the header; safetensors checks it against the file's size."""
    if not path.is_file():
        raise WeightsFileError(f"no weights file at {path}: check the path")
    with path.open("rb") as fh:
        if any(fh.read(8).startswith(m) for m in _PICKLE_MAGIC):
            raise WeightsFileError(f"{path} looks like a pickle/torch.save file. medlib only loads safetensors, "
                                   "because unpickling a file from another site can run arbitrary code. Ask the "
                                   "sender to export it with `medlib` (or safetensors.torch.save_file).")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return fh.metadata() or {}, {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from exc


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of a safetensors file, read from its header (nothing allocated)."""
    return _header(Path(path))[1]


def read_metadata(path: str | os.PathLike) -> dict:
    path = Path(path)
    meta = _header(path)[0]
    if "medlib" not in meta:
        raise WeightsFileError(f"{path} is a safetensors file without medlib metadata (architecture, classes, "
                               "profile); write it with medlib.io.save_weights")
    try:
        parsed = json.loads(meta["medlib"])
    except json.JSONDecodeError as exc:
        raise WeightsFileError(f"{path} has broken medlib metadata (not JSON: {exc})") from exc
    if not isinstance(parsed, dict):
        raise WeightsFileError(f"{path} has medlib metadata that is a {type(parsed).__name__}, not a JSON object")
    return parsed


def load_weights(path: str | os.PathLike, *, require_metadata: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, metadata)``; refuses pickles, truncated files and (unless told not to) files without metadata."""
    meta = read_metadata(path) if require_metadata else _header(Path(path))[0]
    try:
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(Path(path), exc) from exc


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the block; a waiter says ``waiting`` once. The kernel releases
    it when its holder dies: a killed process leaves no stale lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
