"""Google Colab: the notebooks' install cell and a one-line setup that makes work persist.

Every notebook opened from its Colab button gets a fresh VM: nothing under ``/content`` survives
or is shared with the next notebook. :func:`setup` mounts Google Drive and splits medlib's
folders by what they hold:

* ``$MEDLIB_HOME`` = ``/content/drive/MyDrive/medlib`` — trained weights, predictions, result
  files and training checkpoints: small next to the data, expensive to remake, so they live on
  Drive and every later notebook (or session) finds them;
* ``$MEDLIB_DATA_HOME`` = ``/content/medlib-local`` — downloads and decoded-image caches: large,
  re-creatable, read at every step (Drive is slow and capped), so they stay on the VM's disk.

derm7pt needs a registration, so it cannot be downloaded: unpack it once on Drive at
``MyDrive/medlib/derm7pt`` and :func:`setup` points ``$MEDLIB_DATA_DERM7PT`` at it.

The first code cell of every notebook is :func:`install_cell_source` of the repository URL in
``_config.yml`` and this release's tag; ``python -m medlib.colab --apply-install-cell notebooks/*.ipynb``
writes it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from medlib import __version__

__all__ = ["on_colab", "setup", "ColabSetup", "INSTALL_CELL", "install_cell_source", "repository_url",
           "apply_install_cell", "DRIVE_MOUNT", "DRIVE_FOLDER", "LOCAL_HOME"]

DRIVE_MOUNT = "/content/drive"
DRIVE_FOLDER = "MyDrive/medlib"  # under the mount point: what persists
LOCAL_HOME = "/content/medlib-local"  # the VM's own disk: data and caches, gone with the session
DERM7PT_FOLDER = "derm7pt"  # under the Drive folder: where a registered user unpacks derm7pt

# Environment variables medlib.paths reads.
HOME_VAR = "MEDLIB_HOME"  # artifacts, results, checkpoints
DATA_HOME_VAR = "MEDLIB_DATA_HOME"  # data/ and tensors/ (defaults to $MEDLIB_HOME)
DERM7PT_VAR = "MEDLIB_DATA_DERM7PT"


def on_colab() -> bool:
    """True in a Colab kernel (it imports ``google.colab`` before any cell runs), as the install cell decides."""
    return "google.colab" in sys.modules


@dataclass(frozen=True)
class ColabSetup:
    """What :func:`setup` did: where artifacts and data go, and whether Drive is mounted."""

    on_colab: bool
    home: Path | None  # $MEDLIB_HOME after setup (None: left to medlib.paths' default)
    data_home: Path | None  # $MEDLIB_DATA_HOME after setup
    drive: bool  # artifacts persist on Google Drive
    derm7pt: Path | None  # $MEDLIB_DATA_DERM7PT after setup


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def setup(drive: bool = True, *, mount_point: str | os.PathLike = DRIVE_MOUNT, folder: str = DRIVE_FOLDER,
          local: str | os.PathLike = LOCAL_HOME, verbose: bool = True) -> ColabSetup:
    """Mount Google Drive and point medlib at it (artifacts) and at the local disk (data).

    Outside Colab nothing happens (and it says so). A ``$MEDLIB_HOME`` set before the call is
    kept: the reader chose it. ``drive=False`` keeps everything on the VM for this session only.
    If mounting fails (authorisation declined), artifacts stay local and the message says so.
    """
    say = print if verbose else (lambda *a, **k: None)
    if not on_colab():
        say("Not running on Colab: nothing to set up (medlib keeps everything under $MEDLIB_HOME, "
            "default ~/.cache/medlib).")
        return ColabSetup(False, _env_path(HOME_VAR), _env_path(DATA_HOME_VAR), False, _env_path(DERM7PT_VAR))
    local = Path(local)
    if os.environ.get(HOME_VAR):
        say(f"MEDLIB_HOME is already set ({os.environ[HOME_VAR]}): keeping it; Google Drive not mounted.")
        return ColabSetup(True, _env_path(HOME_VAR), _env_path(DATA_HOME_VAR), False, _env_path(DERM7PT_VAR))
    persistent = drive and _mount(Path(mount_point), say)
    home = Path(mount_point) / folder if persistent else local / "home"
    home.mkdir(parents=True, exist_ok=True)
    local.mkdir(parents=True, exist_ok=True)
    os.environ[HOME_VAR] = str(home)
    os.environ.setdefault(DATA_HOME_VAR, str(local))
    derm = home / DERM7PT_FOLDER
    if persistent and not os.environ.get(DERM7PT_VAR) and derm.is_dir():
        os.environ[DERM7PT_VAR] = str(derm)
    where = "Google Drive: kept across sessions and notebooks" if persistent else "this VM only: lost when the session ends"
    say(f"Trained models, predictions, results and checkpoints: {home} ({where}).")
    say(f"Datasets and decoded-image caches: {os.environ[DATA_HOME_VAR]} (this VM's disk: fast, re-created per session).")
    if os.environ.get(DERM7PT_VAR):
        say(f"derm7pt: {os.environ[DERM7PT_VAR]}")
    elif persistent:
        say(f"derm7pt (Paper B) needs a free registration at https://derm.cs.sfu.ca; unpack it once to {derm} "
            "and it is found in every later session.")
    return ColabSetup(True, home, _env_path(DATA_HOME_VAR), persistent, _env_path(DERM7PT_VAR))


def _mount(mount_point: Path, say) -> bool:
    if (mount_point / "MyDrive").is_dir():
        return True  # mounted earlier in this session
    try:
        from google.colab import drive

        drive.mount(str(mount_point))
    except Exception as exc:  # declined authorisation, no Drive: the session still works, locally
        say(f"Google Drive could not be mounted ({type(exc).__name__}: {exc}); trained models stay on this VM "
            "and are lost when the session ends. Run medlib.colab.setup() again to retry.")
        return False
    return (mount_point / "MyDrive").is_dir()


# ---------------------------------------------------------------------------- the install cell

# The first code cell of every notebook, the same in all of them. It installs the book's *release*
# (``git+URL@v<version>``), so a page and the code it runs agree. A release is cut by raising
# ``version`` in pyproject.toml and ``medlib.__version__`` together, running
# ``python -m medlib.colab --apply-install-cell notebooks/*.ipynb``, committing, and pushing the tag
# ``v<version>`` on that commit (``git tag v0.2.0 && git push origin v0.2.0``).
# ``%pip`` shows pip's errors in the cell (a captured subprocess would hide them); the cell never names
# Colab's deep-learning packages, which pip keeps because medlib's ranges accept them
# (tests/test_packaging.py checks those ranges); it does nothing where medlib is installed already.
# ``google.colab`` is imported by Colab's own kernel before any cell runs, so ``sys.modules`` says
# where we are without importing anything. If pip fails (no network, a private or renamed
# repository), clone or upload a copy of the repository and ``%pip install -e`` it instead.
INSTALL_CELL = """\
# Colab only: install this book's release of medlib (pip's errors show here), keep trained models on Drive.
import importlib.util, sys
if "google.colab" in sys.modules and importlib.util.find_spec("medlib") is None:
    %pip install -q "medlib @ git+{url}@{release}"
if "google.colab" in sys.modules:
    import medlib.colab; medlib.colab.setup()  # medlib/colab.py: Drive setup, and how a release is cut
"""


def install_cell_source(repo_url: str, release: str = f"v{__version__}") -> str:
    """The install cell for the ``release`` tag of the repository at ``repo_url`` (``_config.yml``)."""
    url = repo_url.strip().rstrip("/")
    if not url.startswith(("https://", "http://")) or any(c in url + release for c in "\"' {}@"):
        from medlib.errors import MedlibError

        raise MedlibError(f"repository url {repo_url!r} is not a plain http(s) URL, or release {release!r} not a "
                          "plain tag; set repository.url in _config.yml")
    return INSTALL_CELL.format(url=url, release=release).rstrip("\n")


def repository_url(config_yml: str | os.PathLike = "_config.yml") -> str:
    """``repository.url`` of the book's ``_config.yml``: the one place the repository is named."""
    import yaml

    from medlib.errors import MedlibError

    config = yaml.safe_load(Path(config_yml).read_text()) or {}
    url = (config.get("repository") or {}).get("url")
    if not url:
        raise MedlibError(f"{config_yml} has no repository.url; add `repository: {{url: https://github.com/OWNER/REPO}}`")
    return str(url)


def apply_install_cell(notebooks, repo_url: str) -> list[Path]:
    """Replace the first code cell's source of each notebook by the install cell; return those that changed.

    Only that cell's source changes (read and written as plain JSON, in nbformat's layout): its
    metadata (the book hides it with the ``hide-cell`` tag) and every other cell stay as they are.
    """
    import json

    from medlib.errors import MedlibError
    from medlib.io import atomic_write_text

    source = install_cell_source(repo_url).splitlines(keepends=True)
    changed = []
    for path in map(Path, notebooks):
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"), None)
        if first is None:
            raise MedlibError(f"{path} has no code cell to hold the install cell")
        if "".join(first["source"]) == "".join(source):
            continue
        first["source"] = source
        atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        changed.append(path)
    return changed


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m medlib.colab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="_config.yml", help="the book's _config.yml (repository.url)")
    parser.add_argument("--apply-install-cell", nargs="+", metavar="NOTEBOOK",
                        help="write the install cell into these notebooks' first code cell")
    args = parser.parse_args(argv)
    url = repository_url(args.config)
    if not args.apply_install_cell:
        print(install_cell_source(url))
        return 0
    for path in apply_install_cell(args.apply_install_cell, url):
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
