"""Unpack a received zip or tar archive (hostile until checked) without letting any member escape its folder.

Every member is checked before anything is written, on every Python pyproject allows (tarfile's
``filter="data"`` exists only from 3.12, pooch's ``Untar`` uses it only there): absolute paths,
``..``, symbolic and hard links, devices and FIFOs, members resolving outside the target are refused
by name; files get ordinary permissions. Standard library only, so tests run it on the oldest Python.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["UnsafeArchiveError", "check_member_name", "extract_tar", "extract_zip"]


class UnsafeArchiveError(ValueError):
    """An archive member that would be written outside its folder, or is not a plain file/folder."""


def check_member_name(name: str, archive: Path, target: Path) -> Path:
    """Where member ``name`` of ``archive`` would be written inside ``target``; refuse anything outside."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith(("/", "\\")) or (posix.parts and ":" in posix.parts[0]):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path; refusing to unpack")
    if ".." in posix.parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} would unpack outside {target}; refusing")
    root = target.resolve()
    out = (target / Path(*posix.parts)) if posix.parts else target
    resolved = out.resolve()
    if resolved != root and root not in resolved.parents:  # e.g. through a symlink already in target
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} would unpack outside {target}; refusing")
    return out


def extract_zip(archive: Path, target: Path) -> list[Path]:
    """Unpack the zip ``archive`` into the existing folder ``target`` after checking every member."""
    archive, target = Path(archive), Path(target)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            check_member_name(info.filename, archive, target)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchiveError(
                    f"{archive.name}: member {info.filename!r} is not a plain file or folder; refusing to unpack")
        return _write_members(archive, target, [(i.filename, i.is_dir(), lambda i=i: zf.open(i), 0o644) for i in infos])


def extract_tar(archive: Path, target: Path) -> list[Path]:
    """Unpack the tar ``archive`` (any compression) into the existing folder ``target`` after checking every member."""
    archive, target = Path(archive), Path(target)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            check_member_name(m.name, archive, target)
            if not (m.isfile() or m.isdir()):
                kind = "a symbolic link" if m.issym() else "a hard link" if m.islnk() else "a device node or FIFO"
                raise UnsafeArchiveError(f"{archive.name}: member {m.name!r} is {kind}; refusing to unpack")
        return _write_members(
            archive, target, [(m.name, m.isdir(), lambda m=m: tar.extractfile(m), m.mode) for m in members])


def _write_members(archive: Path, target: Path, members) -> list[Path]:
    written = []
    for name, is_dir, opener, mode in members:
        out = check_member_name(name, archive, target)  # again: earlier members may have made folders
        if is_dir:
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_symlink() or out.is_dir():
            raise UnsafeArchiveError(f"{archive.name}: member {name!r} collides with {out}; refusing to unpack")
        with opener() as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(out, (mode & 0o755) | 0o644)  # no setuid/setgid/sticky, no group/other write
        written.append(out)
    return written
