"""Where medlib keeps data, caches and trained artifacts: all under ``$MEDLIB_HOME`` (default ``~/.cache/medlib``).

``data/synthetic/<dataset>/<size>`` stand-ins, ``data/real/<dataset>`` downloads (``$MEDLIB_DATA_<NAME>`` overrides
one), ``tensors/`` decode caches, ``artifacts/`` trained models, ``results/`` the tables' files.
``$MEDLIB_DATA_HOME`` moves ``data/`` and ``tensors/`` elsewhere (on Colab: the VM's disk, artifacts on Drive).
"""

from __future__ import annotations

import os
from pathlib import Path


def medlib_home() -> Path:
    home = os.environ.get("MEDLIB_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".cache" / "medlib").resolve()


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


def find_book_root(start: Path | None = None) -> Path | None:
    """The book repository (``_config.yml`` and ``_toc.yml``) holding ``start`` (default: cwd), if any."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "_toc.yml").is_file() and (folder / "_config.yml").is_file():
            return folder
    return None
