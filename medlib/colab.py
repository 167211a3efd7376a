"""Google Colab: the notebooks' install cell, and :func:`setup`, which makes a session's work persist.

Each Colab notebook gets a fresh VM: ``setup`` keeps what is small and costly to remake on Google Drive
(``$MEDLIB_HOME``: models, results, checkpoints), what is large and re-creatable on the VM (``$MEDLIB_DATA_HOME``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from medlib import __version__
from medlib.errors import MedlibError


def on_colab() -> bool:
    """True in a Colab kernel (it imports ``google.colab`` before any cell runs), as the install cell decides."""
    return "google.colab" in sys.modules


@dataclass(frozen=True)
class ColabSetup:
    """What :func:`setup` did: ``$MEDLIB_HOME``, ``$MEDLIB_DATA_HOME``, Drive mounted, ``$MEDLIB_DATA_DERM7PT``."""

    on_colab: bool
    home: Path | None
    data_home: Path | None
    drive: bool
    derm7pt: Path | None


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def _done(colab: bool, drive: bool) -> ColabSetup:
    return ColabSetup(colab, _env_path("MEDLIB_HOME"), _env_path("MEDLIB_DATA_HOME"), drive,
                      _env_path("MEDLIB_DATA_DERM7PT"))


def setup(drive: bool = True, *, mount_point: str | os.PathLike = "/content/drive", folder: str = "MyDrive/medlib",
          local: str | os.PathLike = "/content/medlib-local", verbose: bool = True) -> ColabSetup:
    """Mount Google Drive and point medlib at it (artifacts) and at the local disk (data). Outside Colab nothing
    happens; a ``$MEDLIB_HOME`` set before is kept; ``drive=False`` (or a declined mount) keeps all on the VM."""
    say = print if verbose else (lambda *a, **k: None)
    if not on_colab():
        say("Not running on Colab: nothing to set up (medlib keeps everything under $MEDLIB_HOME, "
            "default ~/.cache/medlib).")
        return _done(False, False)
    if os.environ.get("MEDLIB_HOME"):
        say(f"MEDLIB_HOME is already set ({os.environ['MEDLIB_HOME']}): keeping it; Google Drive not mounted.")
        return _done(True, False)
    local, mount = Path(local), Path(mount_point)
    persistent = False
    if drive:
        try:
            if not (mount / "MyDrive").is_dir():  # else mounted earlier in this session
                from google.colab import drive as google_drive

                google_drive.mount(str(mount))
            persistent = (mount / "MyDrive").is_dir()
        except Exception as exc:  # declined authorisation, no Drive: the session still works, locally
            say(f"Google Drive could not be mounted ({type(exc).__name__}: {exc}); trained models stay on this VM "
                "and are lost when the session ends. Run medlib.colab.setup() again to retry.")
    home = mount / folder if persistent else local / "home"
    home.mkdir(parents=True, exist_ok=True)
    local.mkdir(parents=True, exist_ok=True)
    os.environ["MEDLIB_HOME"] = str(home)
    os.environ.setdefault("MEDLIB_DATA_HOME", str(local))
    derm = home / "derm7pt"  # derm7pt needs a registration: a reader unpacks it there once
    if persistent and not os.environ.get("MEDLIB_DATA_DERM7PT") and derm.is_dir():
        os.environ["MEDLIB_DATA_DERM7PT"] = str(derm)
    where = ("Google Drive: kept across sessions and notebooks" if persistent
             else "this VM only: lost when the session ends")
    say(f"Trained models, predictions, results and checkpoints: {home} ({where}).")
    say(f"Datasets and decoded-image caches: {os.environ['MEDLIB_DATA_HOME']} (this VM's disk: fast, re-created "
        "per session).")
    if os.environ.get("MEDLIB_DATA_DERM7PT"):
        say(f"derm7pt: {os.environ['MEDLIB_DATA_DERM7PT']}")
    elif persistent:
        say(f"derm7pt (Paper B) needs a free registration at https://derm.cs.sfu.ca; unpack it once to {derm} "
            "and it is found in every later session.")
    return _done(True, persistent)


# The first code cell of every notebook. It installs the book's *release*, so a page and the code it runs agree.
# To cut a release: raise ``version`` in pyproject.toml and ``medlib.__version__`` together, run
# ``python -m medlib.colab --apply-install-cell notebooks/*.ipynb``, commit, and push the tag ``v<version>``.
# ``%pip`` shows pip's errors in the cell; the cell never names Colab's torch, which pip keeps because medlib's
# ranges accept it (tests/test_packaging.py). If pip fails, ``%pip install -e`` a copy of the repository instead.
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
        raise MedlibError(f"repository url {repo_url!r} is not a plain http(s) URL, or release {release!r} not a "
                          "plain tag; set repository.url in _config.yml")
    return INSTALL_CELL.format(url=url, release=release).rstrip("\n")


def repository_url(config_yml: str | os.PathLike = "_config.yml") -> str:
    """``repository.url`` of the book's ``_config.yml``: the one place the repository is named."""
    import yaml

    url = ((yaml.safe_load(Path(config_yml).read_text()) or {}).get("repository") or {}).get("url")
    if not url:
        raise MedlibError(f"{config_yml} has no repository.url; "
                          "add `repository: {url: https://github.com/OWNER/REPO}`")
    return str(url)


def apply_install_cell(notebooks, repo_url: str) -> list[Path]:
    """Replace the first code cell's source of each notebook by the install cell; return those that changed.
    Only that source changes (plain JSON in nbformat's layout): the cell's metadata and the other cells stay."""
    import json

    from medlib.io import atomic_write_text

    source = install_cell_source(repo_url).splitlines(keepends=True)
    changed = []
    for path in map(Path, notebooks):
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"), None)
        if first is None:
            raise MedlibError(f"{path} has no code cell to hold the install cell")
        if "".join(first["source"]) != "".join(source):
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
    for path in apply_install_cell(args.apply_install_cell or [], url):
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
