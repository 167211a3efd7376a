"""Files exchanged between sites: atomic writes and safetensors with JSON metadata.

Weights that travel between hospitals are safetensors only: loading them never runs code.
A pickle (``torch.save``) is refused with an explanation.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from medlib.errors import WeightsFileError

__all__ = ["atomic_path", "atomic_write_text", "save_weights", "load_weights", "read_metadata"]

_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    A crash mid-write leaves the previous file intact, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the final file gets the usual mode
    try:
        yield tmp
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


def _refuse_non_safetensors(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(8)
    if any(head.startswith(m) for m in _PICKLE_MAGIC):
        raise WeightsFileError(
            f"{path} looks like a pickle/torch.save file. medlib only loads safetensors, "
            "because unpickling a file from another site can run arbitrary code. Ask the "
            "sender to export it with `medlib` (or safetensors.torch.save_file)."
        )


def read_metadata(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"no weights file at {path}: check the path")
    _refuse_non_safetensors(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise WeightsFileError(f"{path} is not a readable safetensors file: {exc}") from exc
    if "medlib" not in meta:
        raise WeightsFileError(
            f"{path} is a safetensors file without medlib metadata (architecture, classes, "
            "profile); write it with medlib.io.save_weights"
        )
    return json.loads(meta["medlib"])


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(state_dict, metadata)``; refuses pickles and files without metadata."""
    meta = read_metadata(path)
    return load_file(str(path)), meta
