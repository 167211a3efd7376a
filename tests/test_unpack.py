"""Hostile archives: no member lands outside its folder, on every Python that pyproject allows.

Each case builds a real tar/zip with the standard library, the way an attacker would, and
unpacks it with the project's own extraction (``extract_archive``, and end to end through
``download_dataset`` from a 127.0.0.1 mirror). The last test runs the extraction under the
oldest Python that ``requires-python`` admits, where tarfile offers no safe default.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
import uuid
from pathlib import Path

import pytest

from medlib.data.download import DownloadError, download_dataset, extract_archive
from medlib.data.unpack import UnsafeArchiveError, extract_tar

ROOT = Path(__file__).resolve().parents[1]


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode="w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"payload", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


# an absolute member name no other run uses: the test checks that it never appears
ABSOLUTE_TARGET = f"/tmp/medlib-escaped-{uuid.uuid4().hex}.txt"

HOSTILE_TARS = {
    "dot-dot": [_file("data/ok.png"), _file("../escaped.txt")],
    "nested-dot-dot": [_file("data/../../escaped.txt")],
    "absolute": [_file(ABSOLUTE_TARGET)],
    "symlink-then-write-through": [_special("data/link", tarfile.SYMTYPE, "../.."), _file("data/link/escaped.txt")],
    "symlink-absolute": [_special("data/etc", tarfile.SYMTYPE, "/etc")],
    "hard-link": [_special("data/passwd", tarfile.LNKTYPE, "/etc/passwd")],
    "device-node": [_special("data/null", tarfile.CHRTYPE)],
    "fifo": [_special("data/pipe", tarfile.FIFOTYPE)],
}


def _everything_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
def test_hostile_tar_is_refused_and_nothing_is_written(tmp_path, case):
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    archive = _tar(inner / "frames.tar.gz", HOSTILE_TARS[case])
    before = _everything_under(tmp_path)

    with pytest.raises(DownloadError) as info:
        extract_archive(archive, inner / "frames")

    message = str(info.value)
    assert "\n" not in message and archive.name in message and "refusing" in message
    assert _everything_under(tmp_path) == before  # not even the good member, no temporary folder
    assert not Path(ABSOLUTE_TARGET).exists()


def test_setuid_and_world_writable_bits_are_dropped(tmp_path):
    archive = _tar(tmp_path / "a.tar", [_file("bin/tool", b"#!/bin/sh\n", 0o6777), _file("notes.txt", b"x", 0o666)],
                   mode="w")
    dest = extract_archive(archive, tmp_path / "a")
    tool, notes = stat.S_IMODE((dest / "bin/tool").stat().st_mode), stat.S_IMODE((dest / "notes.txt").stat().st_mode)
    assert tool == 0o755 and notes == 0o644
    assert (dest / "bin/tool").read_bytes() == b"#!/bin/sh\n"


def test_plain_tar_unpacks_with_its_folders(tmp_path):
    folder = tarfile.TarInfo("frames/HGC")
    folder.type = tarfile.DIRTYPE
    folder.mode = 0o755
    archive = _tar(tmp_path / "frames.tar.gz", [(folder, None), _file("frames/HGC/case_002_pt_003_frame_0009.png",
                                                                     b"\x89PNG-bytes")])
    dest = extract_archive(archive, tmp_path / "frames")
    # the archive's single top folder named like dest is dropped (as for zips)
    assert (dest / "HGC" / "case_002_pt_003_frame_0009.png").read_bytes() == b"\x89PNG-bytes"


def _zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "../../etc")
    return path


@pytest.mark.parametrize("members,symlink", [({"/abs.txt": b"x"}, None), ({"a/../../x.txt": b"x"}, None),
                                             ({"ok.txt": b"x"}, "a/link")])
def test_hostile_zip_is_refused(tmp_path, members, symlink):
    archive = _zip(tmp_path / "z.zip", members, symlink)
    with pytest.raises(DownloadError, match=re.escape(archive.name)):
        extract_archive(archive, tmp_path / "z")
    assert _everything_under(tmp_path) == {"z.zip"}


def test_hostile_tar_from_a_mirror_is_refused_end_to_end(tmp_path, monkeypatch):
    """download_dataset('bladder-tissue') from a 127.0.0.1 mirror whose record lists a hostile tar."""
    from test_download import FixtureServer, _zenodo_record

    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = FixtureServer()
    try:
        hostile = _tar(tmp_path / "build.tar.gz", HOSTILE_TARS["symlink-then-write-through"])
        _zenodo_record(server, {"frames.tar.gz": hostile.read_bytes(), "annotations.csv": b"HLY\n"})
        root = tmp_path / "deep" / "er" / "data"
        with pytest.raises(DownloadError, match="frames.tar.gz.*symbolic link"):
            download_dataset("bladder-tissue", root, base_url=server.base, echo=None)
    finally:
        server.close()
    assert not (tmp_path / "deep" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert not (root / "bladder-tissue" / "frames").exists()


def test_cli_download_refuses_in_one_line(tmp_path, monkeypatch):
    """Through the command users type: one line, exit 2, no traceback."""
    from test_download import FixtureServer, _zenodo_record

    server = FixtureServer()
    try:
        hostile = _tar(tmp_path / "build.tar.gz", HOSTILE_TARS["dot-dot"])
        _zenodo_record(server, {"frames.tar.gz": hostile.read_bytes()})
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["MEDLIB_DOWNLOAD_BASE"] = server.base
        proc = subprocess.run([sys.executable, "-m", "medlib", "data", "download", "bladder-tissue",
                               "--root", str(tmp_path / "data")], capture_output=True, text=True, env=env, timeout=120)
    finally:
        server.close()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if "refusing" in line]
    assert len(error_lines) == 1 and "frames.tar.gz" in error_lines[0]
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "data" / "escaped.txt").exists()


def _oldest_python() -> tuple[str, str | None]:
    """pyproject's oldest Python and an interpreter of it here (PATH, then pyenv's versions)."""
    text = (ROOT / "pyproject.toml").read_text()
    major, minor = re.search(r'requires-python\s*=\s*">=(\d+)\.(\d+)"', text).groups()
    exe = f"python{major}.{minor}"
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(exe)] + sorted(str(p) for p in pyenv.glob(f"{major}.{minor}.*/bin/{exe}"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:  # pyenv shims may refuse
            return f"{major}.{minor}", candidate
    return f"{major}.{minor}", None


def test_extraction_on_the_oldest_python_pyproject_allows(tmp_path):
    version, python = _oldest_python()
    if python is None:
        pytest.skip(f"Python {version} (pyproject's oldest) is not installed on this machine")
    cases = tmp_path / "cases"
    cases.mkdir()
    for name, members in HOSTILE_TARS.items():
        _tar(cases / f"{name}.tar.gz", members)
    # The module is stdlib-only: load it by path, without medlib's dependencies on that Python.
    script = f"""
import importlib.util, pathlib, sys
spec = importlib.util.spec_from_file_location("unpack", {str(ROOT / "medlib/data/unpack.py")!r})
unpack = importlib.util.module_from_spec(spec); spec.loader.exec_module(unpack)
assert sys.version_info[:2] == {tuple(int(p) for p in version.split("."))!r}, sys.version
refused = 0
for archive in sorted(pathlib.Path({str(cases)!r}).glob("*.tar.gz")):
    target = pathlib.Path({str(tmp_path)!r}) / "out" / archive.name
    target.mkdir(parents=True)
    try:
        unpack.extract_tar(archive, target)
    except unpack.UnsafeArchiveError:
        refused += 1
print(refused)
"""
    proc = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) == len(HOSTILE_TARS)
    assert not any((tmp_path / "out").rglob("escaped.txt"))
    assert not (tmp_path / "escaped.txt").exists()


def test_unpack_module_needs_only_the_standard_library():
    source = (ROOT / "medlib/data/unpack.py").read_text()
    imports = set(re.findall(r"^(?:from|import) (\w+)", source, flags=re.M))
    assert imports <= {"__future__", "os", "shutil", "stat", "tarfile", "zipfile", "pathlib"}, imports
