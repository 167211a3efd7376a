"""Offline viewing: MathJax 3, RequireJS and the ipywidgets HTML manager vendored into the book, not from CDNs.

The npm tarballs pinned in ``js-vendor.lock.json`` are cached once in ``$MEDLIB_HOME/npm``, sha512-verified at
every use, unpacked into ``<staging>/_offline/_vendor`` (``html_extra_path``: in ``_static/`` Jupyter Book would
inject every .js into every page). Also a Sphinx extension (:func:`setup`).
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

LOCK_FILE = "js-vendor.lock.json"
VENDOR_URL_PREFIX = "../_vendor/"  # how _config.yml reaches _vendor/ from Sphinx's _static/
REGISTRY_ENV = "MEDLIB_NPM_REGISTRY"  # a mirror of https://registry.npmjs.org, if the public one is unreachable

# Loaded between require.js and embed-amd.js (nb_ipywidgets_js in _config.yml): two fixes for the ipywidgets 8
# bundle of @jupyter-widgets/html-manager.
WIDGETS_SETUP_JS = "widgets-setup.js"
_WIDGETS_SETUP_SOURCE = r"""/* Written by medlib/offline.py for the offline book; see js-vendor.lock.json. */
(function () {
  // 1. The bundle finds its icon fonts next to its AMD modules' URL (by default the page's folder): map the
  //    modules into the vendored dist/ folder, absolute, so any page depth works, served or as file://.
  var dist = document.currentScript.src.replace(/[^\/]*$/, "") + "html-manager/dist/";
  require.config({paths: {
    "@jupyter-widgets/base": dist + "base",
    "@jupyter-widgets/controls": dist + "controls",
    "@jupyter-widgets/html-manager": dist + "html-manager",
    "@jupyter-widgets/html-manager/dist/libembed-amd": dist + "libembed-amd"
  }});
  // 2. Widget labels are typeset with MathJax 2's MathJax.Hub.Queue(["Typeset", Hub, el]); MathJax 3 has no
  //    Hub: forward such calls once it is up (widgets render on window "load"; this listener comes first).
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
        if missing := {"name", "version", "tarball", "integrity", "dest", "files"} - set(entry):
            raise MedlibError(f"{path}: package #{i} lacks {sorted(missing)}; each entry needs name, version, "
                              "tarball, integrity (sha512 from `npm view NAME@VERSION dist.integrity`), dest, files")
        if not entry["integrity"].startswith("sha512-"):
            raise MedlibError(f"{path}: {entry['name']} integrity {entry['integrity'][:20]!r}… is not sha512-…; "
                              f"copy it from `npm view {entry['name']}@{entry['version']} dist.integrity`")
        packages.append(VendoredPackage(**{k: entry[k] for k in ("name", "version", "tarball", "integrity", "dest")},
                                        files=tuple(entry["files"])))
    return lock.get("registry", "https://registry.npmjs.org").rstrip("/"), packages


def _sha512(data: bytes) -> str:
    return base64.b64encode(hashlib.sha512(data).digest()).decode()


def integrity_matches(data: bytes, integrity: str) -> bool:
    """Subresource-integrity check: ``integrity`` is ``sha512-<base64 digest>`` (npm's ``dist.integrity``)."""
    algo, _, expected = integrity.partition("-")
    if algo != "sha512":
        raise ValueError(f"only sha512 integrity is accepted, got {integrity[:20]!r}")
    return _sha512(data) == expected


def fetch_tarball(pkg: VendoredPackage, cache_dir: Path, *, lock_registry: str = "https://registry.npmjs.org",
                  timeout: float = 60) -> Path:
    """Path of ``pkg``'s verified tarball in ``cache_dir``, downloading it on first use."""
    target = Path(cache_dir) / pkg.cache_name
    if target.is_file():
        if integrity_matches(target.read_bytes(), pkg.integrity):
            return target
        print(f"offline assets: cached {target.name} fails its sha512 check; downloading it again", flush=True)
        target.unlink()
    url = pkg.tarball
    if (mirror := os.environ.get(REGISTRY_ENV, "").rstrip("/")) and url.startswith(lock_registry + "/"):
        url = mirror + url[len(lock_registry):]
    print(f"offline assets: downloading {pkg.name}@{pkg.version} from {url}", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise MedlibError(
            f"cannot download {pkg.name}@{pkg.version} from {url} ({getattr(exc, 'reason', exc)}).\nThe offline "
            f"book's JavaScript is fetched once from the npm registry into {cache_dir}. Fix: build once with the "
            f"registry reachable, or set {REGISTRY_ENV} to a reachable mirror, or put {pkg.tarball} at {target}."
        ) from None
    if not integrity_matches(data, pkg.integrity):
        raise MedlibError(
            f"{url} does not match {LOCK_FILE}: expected {pkg.integrity}, got sha512-{_sha512(data)}. The download "
            f"is corrupt or the registry serves different bytes; nothing was cached. If the pin was changed on "
            f"purpose, copy the integrity from `npm view {pkg.name}@{pkg.version} dist.integrity`."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
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
            inner = PurePosixPath(*rel.parts[1:]).as_posix()
            if (not member.isfile() or rel.parts[:1] != ("package",) or ".." in rel.parts
                    or not any(fnmatch.fnmatchcase(inner, pattern) for pattern in pkg.files)):
                continue
            out = dest / inner
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            written.append(out)
    found = [w.relative_to(dest).as_posix() for w in written]
    unmatched = [p for p in pkg.files if not any(fnmatch.fnmatchcase(f, p) for f in found)]
    if unmatched:
        raise MedlibError(f"{tarball.name} has no file matching {unmatched} ({LOCK_FILE}, package {pkg.name}); "
                          "fix the 'files' patterns of that package")
    return written


def check_config(config_yml: Path, offline_dir: Path) -> None:
    """Every ``mathjax_path`` / ``nb_ipywidgets_js`` entry of ``config_yml`` must be a vendored file."""
    config = (yaml.safe_load(Path(config_yml).read_text()) or {}).get("sphinx", {}).get("config", {}) or {}
    paths = [p for p in [config.get("mathjax_path"), *(config.get("nb_ipywidgets_js") or {})] if p]
    if not paths:
        raise MedlibError(f"{config_yml} sets neither mathjax_path nor nb_ipywidgets_js under sphinx.config; "
                          f"pages would load MathJax from a CDN. Set them to {VENDOR_URL_PREFIX}<dest>/<file>")
    for path in paths:
        if "://" in path or not path.startswith(VENDOR_URL_PREFIX):
            raise MedlibError(f"{config_yml}: {path!r} is not a vendored asset; offline pages need "
                              f"{VENDOR_URL_PREFIX}<dest>/<file> with <dest> from {LOCK_FILE}")
        if not (Path(offline_dir) / "_vendor" / path[len(VENDOR_URL_PREFIX):]).is_file():
            raise MedlibError(f"{config_yml} points at {path!r} but {LOCK_FILE} provides no such file; "
                              "fix the path or the package's 'files' patterns")


def fetch_assets(book_root: Path, cache_dir: Path | None = None) -> list[tuple[VendoredPackage, Path]]:
    """Download (once) and verify every locked package into ``cache_dir`` (default ``$MEDLIB_HOME/npm``);
    ``make assets`` runs it (``medlib book --fetch-assets``), so book builds need no network afterwards."""
    registry, packages = read_lock(Path(book_root))
    cache_dir = Path(cache_dir) if cache_dir else medlib_home() / "npm"
    return [(pkg, fetch_tarball(pkg, cache_dir, lock_registry=registry)) for pkg in packages]


def vendor_assets(book_root: Path, staging: Path, cache_dir: Path | None = None) -> Path:
    """Unpack the pinned, verified JavaScript into ``<staging>/_offline/_vendor``; returns ``_offline``."""
    offline = Path(staging) / "_offline"  # named in html_extra_path
    if offline.exists():
        shutil.rmtree(offline)
    for pkg, tarball in fetch_assets(book_root, cache_dir):
        files = unpack(tarball, pkg, offline / "_vendor")
        print(f"offline assets: {pkg.name}@{pkg.version} ({len(files)} files) → _vendor/{pkg.dest}", flush=True)
    (offline / "_vendor" / WIDGETS_SETUP_JS).write_text(_WIDGETS_SETUP_SOURCE)
    check_config(Path(staging) / "_config.yml", offline)
    return offline


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    # Sphinx 7.4 registers inline scripts added after builder start-up twice (filename None and ''), so
    # sphinx-thebe's `const THEBE_JS_URL = …` ran twice and every page logged "already been declared".
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
    """Sphinx extension entry point: de-duplicate each page's script tags."""
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
