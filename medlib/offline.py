"""Offline viewing: vendor MathJax 3, RequireJS and the ipywidgets HTML manager into the built book.

By default a Jupyter Book page loads MathJax and the ipywidgets embedder from CDNs when it is
opened, so a book read from disk or on a machine without internet shows raw TeX and no widgets.
``vendor_assets`` makes the build self-contained instead:

1. the npm tarballs pinned in ``js-vendor.lock.json`` (repository root) are downloaded once from
   the npm registry and cached under ``$MEDLIB_HOME/npm``;
2. every tarball is checked against the registry's ``dist.integrity`` (sha512) recorded in the
   lock file — before it is cached and again each time it is used;
3. the files a browser needs are unpacked into ``<staging>/_offline/_vendor/<dest>/``.

``_config.yml`` lists ``_offline`` in ``html_extra_path`` (Sphinx copies it next to the pages) and
points ``mathjax_path`` and ``nb_ipywidgets_js`` at ``../_vendor/...`` (Sphinx prefixes asset paths
with ``_static/``; the vendored tree must stay out of ``_static/`` because Jupyter Book injects
every .js/.css found there into every page). ``check_config`` verifies that each of those paths is
provided by the lock, so the two files cannot drift apart silently.

The module is also a tiny Sphinx extension (``extra_extensions`` in ``_config.yml``): Sphinx 7.4
registers inline scripts added after builder start-up twice (once as filename ``None``, once as
``''``), so sphinx-thebe's ``const THEBE_JS_URL = …`` ran twice and every page logged
"Identifier 'THEBE_JS_URL' has already been declared". ``setup`` drops such duplicates per page.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from medlib.errors import MedlibError
from medlib.paths import medlib_home

__all__ = [
    "fetch_assets",
    "LOCK_FILE",
    "OFFLINE_DIR",
    "VENDOR_URL_PREFIX",
    "WIDGETS_SETUP_JS",
    "VendoredPackage",
    "read_lock",
    "integrity_matches",
    "fetch_tarball",
    "unpack",
    "check_config",
    "vendor_assets",
    "setup",
]

LOCK_FILE = "js-vendor.lock.json"
OFFLINE_DIR = "_offline"  # staged folder named in html_extra_path; holds _vendor/
VENDOR_URL_PREFIX = "../_vendor/"  # how _config.yml reaches _vendor/ from Sphinx's _static/
REGISTRY_ENV = "MEDLIB_NPM_REGISTRY"  # a mirror of https://registry.npmjs.org, if the public one is unreachable


# Loaded between require.js and embed-amd.js (see nb_ipywidgets_js in _config.yml); written into
# _vendor/ by vendor_assets. Two fixes for the ipywidgets 8 bundle of @jupyter-widgets/html-manager:
WIDGETS_SETUP_JS = "widgets-setup.js"
_WIDGETS_SETUP_SOURCE = r"""/* Written by medlib/offline.py for the offline book; see js-vendor.lock.json. */
(function () {
  // 1. The bundle finds its icon fonts next to the URL RequireJS gives its AMD modules, by default
  //    the page's own folder. Map the modules into the vendored dist/ folder (absolute URL, so it
  //    works at any page depth, served or opened as file://).
  var dist = document.currentScript.src.replace(/[^\/]*$/, "") + "html-manager/dist/";
  require.config({paths: {
    "@jupyter-widgets/base": dist + "base",
    "@jupyter-widgets/controls": dist + "controls",
    "@jupyter-widgets/html-manager": dist + "html-manager",
    "@jupyter-widgets/html-manager/dist/libembed-amd": dist + "libembed-amd"
  }});
  // 2. Widget labels are typeset with the MathJax 2 call MathJax.Hub.Queue(["Typeset", Hub, el]);
  //    the book loads MathJax 3, which has no Hub. Forward such calls to MathJax 3 once it is up
  //    (widgets render on window "load"; this listener is registered first).
  window.addEventListener("load", function () {
    var mj = window.MathJax;
    if (mj && !mj.Hub && mj.startup) {
      mj.Hub = {Queue: function (job) {
        var el = job && job[2];
        if (el) mj.startup.promise.then(function () { return mj.typesetPromise([el]); });
      }};
    }
  });
})();
"""


@dataclass(frozen=True)
class VendoredPackage:
    name: str
    version: str
    tarball: str  # download address on the registry named in the lock
    integrity: str  # "sha512-<base64>", npm's dist.integrity
    dest: str  # folder under _vendor/
    files: tuple[str, ...]  # glob patterns, relative to the tarball's package/ folder

    @property
    def cache_name(self) -> str:
        return f"{self.name.replace('/', '+').lstrip('@')}-{self.version}.tgz"


def read_lock(book_root: Path) -> tuple[str, list[VendoredPackage]]:
    """The registry and packages pinned in ``<book_root>/js-vendor.lock.json``."""
    path = Path(book_root) / LOCK_FILE
    if not path.is_file():
        raise MedlibError(f"{path} is missing: it pins the JavaScript the offline book needs; restore it from git")
    lock = json.loads(path.read_text())
    packages = []
    for i, entry in enumerate(lock.get("packages", [])):
        missing = {"name", "version", "tarball", "integrity", "dest", "files"} - set(entry)
        if missing:
            raise MedlibError(f"{path}: package #{i} lacks {sorted(missing)}; each entry needs name, version, "
                              "tarball, integrity (sha512 from `npm view NAME@VERSION dist.integrity`), dest, files")
        if not entry["integrity"].startswith("sha512-"):
            raise MedlibError(f"{path}: {entry['name']} integrity {entry['integrity'][:20]!r}… is not sha512-…; "
                              f"copy it from `npm view {entry['name']}@{entry['version']} dist.integrity`")
        packages.append(VendoredPackage(**{k: entry[k] for k in ("name", "version", "tarball", "integrity", "dest")},
                                        files=tuple(entry["files"])))
    return lock.get("registry", "https://registry.npmjs.org").rstrip("/"), packages


def integrity_matches(data: bytes, integrity: str) -> bool:
    """Subresource-integrity check: ``integrity`` is ``sha512-<base64 digest>`` (npm's ``dist.integrity``)."""
    algo, _, expected = integrity.partition("-")
    if algo != "sha512":
        raise ValueError(f"only sha512 integrity is accepted, got {integrity[:20]!r}")
    return base64.b64encode(hashlib.sha512(data).digest()).decode() == expected


def _download_url(pkg: VendoredPackage, lock_registry: str) -> str:
    mirror = os.environ.get(REGISTRY_ENV, "").rstrip("/")
    if mirror and pkg.tarball.startswith(lock_registry + "/"):
        return mirror + pkg.tarball[len(lock_registry):]
    return pkg.tarball


def fetch_tarball(pkg: VendoredPackage, cache_dir: Path, *, lock_registry: str = "https://registry.npmjs.org",
                  timeout: float = 60) -> Path:
    """Path of ``pkg``'s verified tarball in ``cache_dir``, downloading it on first use."""
    cache_dir = Path(cache_dir)
    target = cache_dir / pkg.cache_name
    if target.is_file():
        if integrity_matches(target.read_bytes(), pkg.integrity):
            return target
        print(f"offline assets: cached {target.name} fails its sha512 check; downloading it again", flush=True)
        target.unlink()
    url = _download_url(pkg, lock_registry)
    print(f"offline assets: downloading {pkg.name}@{pkg.version} from {url}", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MedlibError(
            f"cannot download {pkg.name}@{pkg.version} from {url} ({reason}).\n"
            f"The book vendors MathJax and the widget JavaScript so that it works offline; they are fetched "
            f"once from the npm registry and cached in {cache_dir}. Fix: build once with the registry "
            f"reachable, or set {REGISTRY_ENV} to a reachable mirror, or put the tarball ({pkg.tarball}) "
            f"at {target}."
        ) from None
    if not integrity_matches(data, pkg.integrity):
        got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        raise MedlibError(
            f"{url} does not match {LOCK_FILE}: expected {pkg.integrity}, got {got}. The download is corrupt "
            f"or the registry serves different bytes; nothing was cached. If the pin was changed on purpose, "
            f"copy the integrity from `npm view {pkg.name}@{pkg.version} dist.integrity`."
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)  # atomic: a concurrent or interrupted build never sees half a tarball
    return target


def unpack(tarball: Path, pkg: VendoredPackage, vendor_dir: Path) -> list[Path]:
    """Copy the members of ``tarball`` matching ``pkg.files`` into ``vendor_dir/pkg.dest``."""
    dest = Path(vendor_dir) / pkg.dest
    written = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            rel = PurePosixPath(member.name)
            if not member.isfile() or rel.parts[:1] != ("package",) or ".." in rel.parts:
                continue
            inner = PurePosixPath(*rel.parts[1:]).as_posix()
            if not any(fnmatch.fnmatchcase(inner, pattern) for pattern in pkg.files):
                continue
            out = dest / inner
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            written.append(out)
    unmatched = [p for p in pkg.files if not any(fnmatch.fnmatchcase(w.relative_to(dest).as_posix(), p) for w in written)]
    if unmatched:
        raise MedlibError(f"{tarball.name} has no file matching {unmatched} ({LOCK_FILE}, package {pkg.name}); "
                          "fix the 'files' patterns of that package")
    return written


def _config_asset_paths(config_yml: Path) -> list[str]:
    config = (yaml.safe_load(Path(config_yml).read_text()) or {}).get("sphinx", {}).get("config", {}) or {}
    paths = [config.get("mathjax_path") or ""] + list((config.get("nb_ipywidgets_js") or {}).keys())
    return [p for p in paths if p]


def check_config(config_yml: Path, offline_dir: Path) -> None:
    """Every ``mathjax_path`` / ``nb_ipywidgets_js`` entry of ``config_yml`` must be a vendored file."""
    paths = _config_asset_paths(config_yml)
    if not paths:
        raise MedlibError(f"{config_yml} sets neither mathjax_path nor nb_ipywidgets_js under sphinx.config; "
                          f"pages would load MathJax from a CDN. Set them to {VENDOR_URL_PREFIX}<dest>/<file>")
    for path in paths:
        if "://" in path or not path.startswith(VENDOR_URL_PREFIX):
            raise MedlibError(f"{config_yml}: {path!r} is not a vendored asset; offline pages need "
                              f"{VENDOR_URL_PREFIX}<dest>/<file> with <dest> from {LOCK_FILE}")
        local = Path(offline_dir) / "_vendor" / path[len(VENDOR_URL_PREFIX):]
        if not local.is_file():
            raise MedlibError(f"{config_yml} points at {path!r} but {LOCK_FILE} provides no such file; "
                              "fix the path or the package's 'files' patterns")


def fetch_assets(book_root: Path, cache_dir: Path | None = None) -> list[tuple[VendoredPackage, Path]]:
    """Download (once) and verify every package of the lock file into ``cache_dir`` (default
    ``$MEDLIB_HOME/npm``); returns each package with its cached tarball.

    ``make assets`` runs it (``medlib book --fetch-assets``), so building the book — and ``make test``,
    which builds it — needs no network afterwards.
    """
    registry, packages = read_lock(Path(book_root))
    cache_dir = Path(cache_dir) if cache_dir else medlib_home() / "npm"
    return [(pkg, fetch_tarball(pkg, cache_dir, lock_registry=registry)) for pkg in packages]


def vendor_assets(book_root: Path, staging: Path, cache_dir: Path | None = None) -> Path:
    """Unpack the pinned, verified JavaScript into ``<staging>/_offline/_vendor``; returns ``_offline``."""
    offline = Path(staging) / OFFLINE_DIR
    if offline.exists():
        shutil.rmtree(offline)
    for pkg, tarball in fetch_assets(book_root, cache_dir):
        files = unpack(tarball, pkg, offline / "_vendor")
        print(f"offline assets: {pkg.name}@{pkg.version} ({len(files)} files) → _vendor/{pkg.dest}", flush=True)
    (offline / "_vendor" / WIDGETS_SETUP_JS).write_text(_WIDGETS_SETUP_SOURCE)
    check_config(Path(staging) / "_config.yml", offline)
    return offline


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        key = (getattr(js, "filename", None) or "", getattr(js, "priority", 500),
               tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique  # in place: the template reads this very list


def setup(app) -> dict:
    """Sphinx extension entry point: de-duplicate each page's script tags (see module docstring)."""
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
