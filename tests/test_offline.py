"""medlib.offline: pinned, verified, cached JavaScript for the offline book (no network: 127.0.0.1 only)."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import tarfile

import pytest
import yaml

from browser_checks import serve
from conftest import REPO
from medlib.errors import MedlibError
from medlib.offline import (
    LOCK_FILE,
    VENDOR_URL_PREFIX,
    WIDGETS_SETUP_JS,
    VendoredPackage,
    check_config,
    fetch_tarball,
    integrity_matches,
    read_lock,
    unpack,
    vendor_assets,
)


def _sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _npm_tarball(files: dict[str, bytes]) -> bytes:
    """A tarball laid out like npm's: every file under package/."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def registry(tmp_path):
    """A fake npm registry on 127.0.0.1 serving one package tarball: (base url, package, tarball bytes)."""
    root = tmp_path / "registry"
    data = _npm_tarball({"es5/tex.js": b"// tex", "es5/output/font.woff": b"woff", "README.md": b"# readme"})
    (root / "fake" / "-").mkdir(parents=True)
    (root / "fake" / "-" / "fake-1.0.0.tgz").write_bytes(data)
    with serve(root) as base:
        base = base.rstrip("/")
        pkg = VendoredPackage("fake", "1.0.0", f"{base}/fake/-/fake-1.0.0.tgz", _sri(data), "fake", ("es5/*",))
        yield base, pkg, data


def test_integrity_is_npm_sha512_base64():
    # sha512("abc") from FIPS 180-2, appendix C.1
    digest = bytes.fromhex(
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
    assert integrity_matches(b"abc", "sha512-" + base64.b64encode(digest).decode())
    assert not integrity_matches(b"abd", "sha512-" + base64.b64encode(digest).decode())
    with pytest.raises(ValueError, match="sha512"):
        integrity_matches(b"abc", "sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0=")


def test_download_is_verified_cached_and_reused_offline(registry, tmp_path):
    base, pkg, data = registry
    cache = tmp_path / "cache"
    path = fetch_tarball(pkg, cache, lock_registry=base)
    assert path == cache / "fake-1.0.0.tgz" and path.read_bytes() == data
    # the registry is gone: the cached, still-verified copy is used
    gone = VendoredPackage(pkg.name, pkg.version, "http://127.0.0.1:9/fake-1.0.0.tgz", pkg.integrity, "fake", ("es5/*",))
    assert fetch_tarball(gone, cache, lock_registry=base) == path


def test_corrupt_cache_is_downloaded_again(registry, tmp_path, capsys):
    base, pkg, data = registry
    (tmp_path / "fake-1.0.0.tgz").write_bytes(b"truncated")
    assert fetch_tarball(pkg, tmp_path, lock_registry=base).read_bytes() == data
    assert "fails its sha512 check" in capsys.readouterr().out


def test_tampered_download_is_refused_and_not_cached(registry, tmp_path):
    base, pkg, _ = registry
    wrong = _sri(b"something else")
    bad = VendoredPackage(pkg.name, pkg.version, pkg.tarball, wrong, "fake", ("es5/*",))
    with pytest.raises(MedlibError) as info:
        fetch_tarball(bad, tmp_path / "cache", lock_registry=base)
    message = str(info.value)
    assert pkg.tarball in message and wrong in message and "npm view fake@1.0.0 dist.integrity" in message
    assert not (tmp_path / "cache").exists()


def test_unreachable_registry_without_cache_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDLIB_NPM_REGISTRY", raising=False)
    pkg = VendoredPackage("fake", "1.0.0", "http://127.0.0.1:9/fake/-/fake-1.0.0.tgz", _sri(b"x"), "fake", ("*",))
    with pytest.raises(MedlibError) as info:
        fetch_tarball(pkg, tmp_path / "cache", lock_registry="http://127.0.0.1:9", timeout=5)
    message = str(info.value)
    assert "cannot download fake@1.0.0 from http://127.0.0.1:9/fake/-/fake-1.0.0.tgz" in message
    assert "MEDLIB_NPM_REGISTRY" in message and str(tmp_path / "cache" / "fake-1.0.0.tgz") in message


def test_mirror_replaces_the_registry_prefix(registry, tmp_path, monkeypatch):
    base, pkg, data = registry
    # the lock names the public registry; the mirror (our local server) is used instead
    public = VendoredPackage(pkg.name, pkg.version, "https://registry.npmjs.org/fake/-/fake-1.0.0.tgz",
                             pkg.integrity, "fake", ("es5/*",))
    monkeypatch.setenv("MEDLIB_NPM_REGISTRY", base + "/")
    assert fetch_tarball(public, tmp_path).read_bytes() == data


def test_unpack_copies_only_the_listed_files(registry, tmp_path):
    base, pkg, _ = registry
    written = unpack(fetch_tarball(pkg, tmp_path / "cache", lock_registry=base), pkg, tmp_path / "_vendor")
    assert sorted(p.relative_to(tmp_path / "_vendor").as_posix() for p in written) == [
        "fake/es5/output/font.woff", "fake/es5/tex.js"]
    assert (tmp_path / "_vendor" / "fake" / "es5" / "tex.js").read_bytes() == b"// tex"
    wrong = VendoredPackage(pkg.name, pkg.version, pkg.tarball, pkg.integrity, "fake", ("es5/*", "dist/*.js"))
    with pytest.raises(MedlibError, match=r"no file matching \['dist/\*.js'\]"):
        unpack(tmp_path / "cache" / "fake-1.0.0.tgz", wrong, tmp_path / "other")


def test_vendor_assets_end_to_end_with_a_local_registry(registry, tmp_path):
    base, pkg, _ = registry
    book = tmp_path / "book"
    book.mkdir()
    lock = {"registry": base, "packages": [{
        "name": "fake", "version": "1.0.0", "tarball": pkg.tarball, "integrity": pkg.integrity,
        "dest": "fake", "files": ["es5/*"]}]}
    (book / LOCK_FILE).write_text(json.dumps(lock))
    staging = tmp_path / "staging"
    staging.mkdir()
    config = {"sphinx": {"config": {"mathjax_path": "../_vendor/fake/es5/tex.js",
                                    "nb_ipywidgets_js": {f"../_vendor/{WIDGETS_SETUP_JS}": {}}}}}
    (staging / "_config.yml").write_text(yaml.safe_dump(config))
    offline = vendor_assets(book, staging, cache_dir=tmp_path / "cache")
    assert offline == staging / "_offline"
    assert (offline / "_vendor" / "fake" / "es5" / "tex.js").is_file()
    assert "require.config" in (offline / "_vendor" / WIDGETS_SETUP_JS).read_text()
    # a config path the lock does not provide stops the build, naming the path
    config["sphinx"]["config"]["mathjax_path"] = "../_vendor/fake/es5/tex-chtml.js"
    (staging / "_config.yml").write_text(yaml.safe_dump(config))
    with pytest.raises(MedlibError, match="tex-chtml.js"):
        vendor_assets(book, staging, cache_dir=tmp_path / "cache")


def test_check_config_refuses_cdn_urls(tmp_path):
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(
        {"sphinx": {"config": {"mathjax_path": "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"}}}))
    with pytest.raises(MedlibError, match="not a vendored asset"):
        check_config(tmp_path / "_config.yml", tmp_path / "_offline")


def test_repository_lock_provides_every_configured_asset():
    """The committed lock pins exact versions with sha512, and covers what _config.yml loads (no network)."""
    registry, packages = read_lock(REPO)
    assert registry == "https://registry.npmjs.org"
    assert {p.name: p.version for p in packages} == {
        "mathjax": "3.2.2", "requirejs": "2.3.7", "@jupyter-widgets/html-manager": "1.0.6"}
    for pkg in packages:
        assert pkg.tarball == f"{registry}/{pkg.name}/-/{pkg.name.split('/')[-1]}-{pkg.version}.tgz"
        assert len(base64.b64decode(pkg.integrity.removeprefix("sha512-"))) == 64
    config = yaml.safe_load((REPO / "_config.yml").read_text())["sphinx"]["config"]
    assert "_offline" in config["html_extra_path"]
    by_dest = {p.dest: p for p in packages}
    for path in [config["mathjax_path"], *config["nb_ipywidgets_js"]]:
        assert path.startswith(VENDOR_URL_PREFIX), path
        inner = path[len(VENDOR_URL_PREFIX):]
        if inner == WIDGETS_SETUP_JS:
            continue  # written by vendor_assets itself
        dest, _, rel = inner.partition("/")
        assert any(fnmatch.fnmatchcase(rel, pattern) for pattern in by_dest[dest].files), path


def test_fetch_assets_fills_the_cache_a_later_build_reads_offline(registry, tmp_path, monkeypatch):
    # `make venv` runs `medlib book --fetch-assets`: afterwards the book builds with no registry at all
    from medlib.cli import main

    base, pkg, data = registry
    book = tmp_path / "book"
    book.mkdir()
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (book / "_config.yml").write_text("title: t\n")
    lock = {"registry": base, "packages": [{
        "name": "fake", "version": "1.0.0", "tarball": pkg.tarball, "integrity": pkg.integrity,
        "dest": "fake", "files": ["es5/*"]}]}
    (book / LOCK_FILE).write_text(json.dumps(lock))
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path / "home"))
    assert main(["book", "--fetch-assets", "--book-root", str(book)]) == 0
    cached = tmp_path / "home" / "npm" / pkg.cache_name
    assert cached.read_bytes() == data
    # the registry is gone (port 9 refuses): the cached, verified tarball serves the build
    assert fetch_tarball(VendoredPackage("fake", "1.0.0", "http://127.0.0.1:9/fake/-/fake-1.0.0.tgz", pkg.integrity,
                                         "fake", ("es5/*",)), tmp_path / "home" / "npm") == cached
