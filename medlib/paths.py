"""Where medlib keeps data, caches and trained artifacts.

Everything lives under one folder, ``$MEDLIB_HOME`` (default ``~/.cache/medlib``; ``make``
sets it to ``.cache/medlib`` inside the checkout so builds reuse their own artifacts):

* ``data/synthetic/<dataset>/<size>`` — stand-ins written by ``medlib data synth`` (smoke profile,
  dry runs), one folder per size preset so the smoke and dry-run stand-ins never collide
* ``data/real/<dataset>`` — downloads (full profile); ``$MEDLIB_DATA_<NAME>`` overrides one dataset,
  e.g. ``MEDLIB_DATA_DERM7PT=/content/drive/MyDrive/derm7pt`` for the registration-only derm7pt
  (or, in a notebook, ``medlib.paths.set_data_root("derm7pt", "/content/drive/MyDrive/derm7pt")``)
* ``tensors/`` — decoded, resized image caches; ``artifacts/`` — trained models by config hash,
  with their checkpoints; ``results/`` — the tables' result files

``$MEDLIB_DATA_HOME`` moves ``data/`` and ``tensors/`` elsewhere: on Colab
(:func:`medlib.colab.setup`) trained models, checkpoints and results persist on Google Drive
(``$MEDLIB_HOME``) while datasets and decode caches — large, re-creatable, read often — stay on
the VM's local disk.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["medlib_home", "data_home", "data_root", "data_env_var", "set_data_root", "cache_dir", "artifacts_dir",
           "results_dir"]


def medlib_home() -> Path:
    home = os.environ.get("MEDLIB_HOME")
    path = Path(home).expanduser() if home else Path.home() / ".cache" / "medlib"
    return path.resolve()


def data_home() -> Path:
    """Datasets and decoded-image caches: ``$MEDLIB_DATA_HOME``, else :func:`medlib_home`."""
    home = os.environ.get("MEDLIB_DATA_HOME")
    return Path(home).expanduser().resolve() if home else medlib_home()


def data_env_var(dataset: str) -> str:
    """The environment variable that points medlib at a real dataset: ``MEDLIB_DATA_PAD_UFES_20``."""
    return "MEDLIB_DATA_" + dataset.upper().replace("-", "_")


def set_data_root(dataset: str, path: str | os.PathLike) -> Path:
    """Use ``path`` for the real ``dataset`` from now on in this process (sets :func:`data_env_var`)."""
    resolved = Path(path).expanduser().resolve()
    os.environ[data_env_var(dataset)] = str(resolved)
    return resolved


def data_root(dataset: str, source: str) -> Path:
    """Folder holding ``dataset`` for a data ``source`` (``"synthetic"`` or ``"real"``)."""
    env = os.environ.get(data_env_var(dataset))
    if env and source == "real":
        return Path(env).expanduser().resolve()
    return data_home() / "data" / source / dataset


def cache_dir() -> Path:
    return data_home() / "tensors"


def artifacts_dir() -> Path:
    return medlib_home() / "artifacts"


def results_dir() -> Path:
    return medlib_home() / "results"
