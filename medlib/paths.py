"""Where medlib keeps data, caches and trained artifacts.

Everything lives under one folder, ``$MEDLIB_HOME`` (default ``~/.cache/medlib``; ``make``
sets it to ``.cache/medlib`` inside the checkout so builds reuse their own artifacts):

* ``data/synthetic/<dataset>`` — stand-ins written by ``medlib data synth`` (smoke profile)
* ``data/real/<dataset>`` — downloads (full profile); ``$MEDLIB_DATA_<NAME>`` overrides one dataset,
  e.g. ``MEDLIB_DATA_DERM7PT=/content/drive/derm7pt`` for the registration-only derm7pt
* ``tensors/`` — decoded, resized image caches; ``artifacts/`` — trained models by config hash
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["medlib_home", "data_root", "cache_dir", "artifacts_dir", "results_dir"]


def medlib_home() -> Path:
    home = os.environ.get("MEDLIB_HOME")
    path = Path(home).expanduser() if home else Path.home() / ".cache" / "medlib"
    return path.resolve()


def data_root(dataset: str, source: str) -> Path:
    """Folder holding ``dataset`` for a data ``source`` (``"synthetic"`` or ``"real"``)."""
    env = os.environ.get("MEDLIB_DATA_" + dataset.upper().replace("-", "_"))
    if env and source == "real":
        return Path(env).expanduser().resolve()
    return medlib_home() / "data" / source / dataset


def cache_dir() -> Path:
    return medlib_home() / "tensors"


def artifacts_dir() -> Path:
    return medlib_home() / "artifacts"


def results_dir() -> Path:
    return medlib_home() / "results"
