"""Download the public datasets of Paper A; explain how to obtain derm7pt (Paper B).

What ``download_dataset`` does, per dataset (URLs are the official ones, see ``SOURCES``):

* ``retina`` — the GitHub archive of ``yiweichen04/retina_dataset`` (one zip), unpacked
  to ``<root>/retina_dataset-master/dataset/<class>/*.png``.
* ``pad-ufes-20`` — the Mendeley Data zip, unpacked to ``<root>/pad-ufes-20/``; the three
  nested ``images/imgs_part_k.zip`` are then unpacked beside themselves.
* ``bladder-tissue`` — every file of Zenodo record 7741476, listed by the Zenodo REST API
  (``files``: ``key``, ``size``, ``checksum`` = ``md5:<hex>``, ``links.self``), into
  ``<root>/bladder-tissue/``; zips are unpacked there.
* ``derm7pt`` — needs a registration at derm.cs.sfu.ca, so it cannot be downloaded:
  a :class:`~medlib.errors.MedlibError` says what to do (or the path, when it is already there).

How the transfer behaves (why: the archives are 1.7–3.6 GB and Colab connections drop):

* streamed in chunks to ``<file>.part`` with printed text progress (bytes, %, MB/s);
* a later call resumes a ``.part`` with an HTTP ``Range`` request; a server that ignores
  ``Range`` (answers 200) makes us start that file again from byte 0;
* fewer bytes than ``Content-Length`` (or than the size Zenodo lists) is an error and the
  ``.part`` is kept for the next resume;
* only a complete file whose checksum matches is renamed (atomically) to its final name;
  an expected-checksum mismatch deletes the ``.part`` and raises;
* the sha256 of every archive is recorded in ``<root>/.medlib-downloads.json`` and checked
  again on later runs; unpacking goes to a temporary folder renamed into place when done;
* a second call with everything present downloads and unpacks nothing.

``base_url`` (or the environment variable ``MEDLIB_DOWNLOAD_BASE``) replaces the scheme and
host of every official URL and keeps its path: ``https://zenodo.org/api/records/7741476``
becomes ``<base_url>/api/records/7741476``. Tests serve fixture archives this way from
127.0.0.1; a mirror can be used the same way.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medlib.errors import MedlibError
from medlib.io import atomic_write_text

__all__ = [
    "DownloadError",
    "SOURCES",
    "MANIFEST_NAME",
    "download_dataset",
    "fetch_file",
    "extract_archive",
    "rewrite_url",
    "DERM7PT_INSTRUCTIONS",
]

MANIFEST_NAME = ".medlib-downloads.json"
BASE_URL_ENV = "MEDLIB_DOWNLOAD_BASE"
CHUNK_BYTES = 1 << 20
USER_AGENT = "medlib-downloader (python urllib)"

ZENODO_RECORD_API = "https://zenodo.org/api/records/7741476"

DERM7PT_INSTRUCTIONS = """\
derm7pt (the seven-point checklist dataset) cannot be downloaded automatically: its
authors require a (free) registration.
  1. Register and download "release_v0.zip" at https://derm.cs.sfu.ca
  2. Unpack it under {root}, so that this file exists:
       {root}/release_v0/meta/meta.csv
  3. Run the same command again (or pass that folder as --root)."""


class DownloadError(MedlibError):
    """A download or an unpack failed; the message says whether a rerun resumes it."""


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and the folder its files end up in (relative to root)."""

    name: str
    url: str
    data_dir: str


SOURCES: dict[str, Source] = {
    "retina": Source(
        "retina",
        "https://github.com/yiweichen04/retina_dataset/archive/master.zip",
        "retina_dataset-master",
    ),
    "pad-ufes-20": Source(
        "pad-ufes-20",
        "https://prod-dcd-datasets-cache-zipfiles.s3.eu-west-1.amazonaws.com/zr7vgbcyr2-1.zip",
        "pad-ufes-20",
    ),
    "bladder-tissue": Source("bladder-tissue", ZENODO_RECORD_API, "bladder-tissue"),
    "derm7pt": Source("derm7pt", "https://derm.cs.sfu.ca", "release_v0"),
}


# ----------------------------------------------------------------------------- URLs


def rewrite_url(url: str, base_url: str | None) -> str:
    """Swap the scheme and host of ``url`` for ``base_url`` (whose own path is kept as a prefix).

    >>> rewrite_url("https://zenodo.org/api/records/1?x=1", "http://127.0.0.1:8000/mirror")
    'http://127.0.0.1:8000/mirror/api/records/1?x=1'
    """
    if not base_url:
        return url
    base = urllib.parse.urlsplit(base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise DownloadError(
            f"base URL {base_url!r} is not an http(s) URL with a host; expected e.g. "
            f"'http://127.0.0.1:8000'. Fix --base-url or the {BASE_URL_ENV} variable."
        )
    parts = urllib.parse.urlsplit(url)
    path = base.path.rstrip("/") + parts.path
    return urllib.parse.urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = 60.0):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise  # the caller decides (416 is meaningful for a resume)
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        raise DownloadError(
            f"could not reach {url}: {exc}. Check the network connection; a mirror can be "
            f"set with base_url= or the {BASE_URL_ENV} environment variable."
        ) from exc


def _http_error(url: str, exc: urllib.error.HTTPError) -> DownloadError:
    return DownloadError(
        f"{url} answered HTTP {exc.code} {exc.reason}; expected the file. The dataset may have "
        "moved: check the address in medlib.data.download.SOURCES against the dataset's page."
    )


# ----------------------------------------------------------------------------- one file


class _Progress:
    """Prints at most one line every ``every_s`` seconds (and one at the end)."""

    def __init__(self, label: str, total: int | None, start: int, echo: Callable[[str], None] | None,
                 every_s: float = 2.0):
        self.label, self.total, self.start, self.echo, self.every_s = label, total, start, echo, every_s
        self.t0 = self.t_last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.echo is None or (not final and now - self.t_last < self.every_s):
            return
        self.t_last = now
        rate = (done - self.start) / max(now - self.t0, 1e-9) / 1e6
        if self.total:
            pct = f"{100.0 * done / self.total:5.1f}%"
            size = f"{done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB"
        else:
            pct, size = "  ?  ", f"{done / 1e6:,.1f} MB"
        self.echo(f"  {self.label}: {size} {pct} {rate:6.1f} MB/s")


def _file_digests(path: Path) -> dict[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            sha.update(chunk)
            md5.update(chunk)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def _parse_content_range_start(value: str | None) -> int | None:
    # "bytes 100-999/1000" -> 100
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _transfer_once(url: str, part: Path, echo, label: str) -> int | None:
    """Append the rest of ``url`` to ``part``; return the total size announced by the server.

    Raises :class:`DownloadError` on a short transfer (the ``.part`` stays for a resume).
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = _open(url, headers)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range not satisfiable: the .part is already as long as the file (or longer).
            # Return None and let the caller's size/checksum checks decide.
            return None
        raise _http_error(url, exc) from exc
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None else None
        if offset and status == 206:
            start = _parse_content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                raise DownloadError(
                    f"{url} answered a resume from byte {offset} with Content-Range "
                    f"{response.headers.get('Content-Range')!r}; delete {part} and rerun."
                )
            mode, total = "ab", (offset + length if length is not None else None)
            if echo:
                echo(f"  {label}: resuming at {offset / 1e6:,.1f} MB")
        else:
            if offset and echo:
                echo(f"  {label}: server ignored the Range request; starting again from 0")
            offset, mode, total = 0, "wb", length
        progress = _Progress(label, total, offset, echo)
        done = offset
        try:
            with part.open(mode) as out:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    out.write(chunk)
                    done += len(chunk)
                    progress.update(done)
        except (http.client.IncompleteRead, ConnectionError, socket.timeout, OSError) as exc:
            raise DownloadError(
                f"the transfer of {url} broke after {done:,} bytes ({exc.__class__.__name__}); "
                f"the partial file {part} is kept: run the same command again to resume."
            ) from exc
        progress.update(done, final=True)
    if total is not None and done < total:
        raise DownloadError(
            f"the transfer of {url} stopped at {done:,} of {total:,} bytes; the partial file "
            f"{part} is kept: run the same command again to resume."
        )
    return total


def fetch_file(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    expected_md5: str | None = None,
    retries: int = 3,
    echo: Callable[[str], None] | None = print,
) -> dict[str, str | int]:
    """Download ``url`` to ``dest`` (resumable, verified, atomic) and return its digests.

    Returns ``{"size", "sha256", "md5", "url"}``. ``retries`` is the number of automatic
    resumes after a broken transfer within this call; after that the error is raised and
    the ``.part`` file stays for a later call.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if echo:
        echo(f"downloading {url} -> {dest}")
    for attempt in range(retries + 1):
        try:
            _transfer_once(url, part, echo, dest.name)
            break
        except DownloadError as exc:
            if attempt == retries or not part.exists():
                raise
            if echo:
                echo(f"  {dest.name}: {exc.args[0].split(';')[0]}; retrying ({attempt + 1}/{retries})")
            time.sleep(min(2.0 ** attempt, 10.0) if attempt else 0.0)
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        if size > expected_size:
            part.unlink()  # longer than the file can be: no use resuming it
        raise DownloadError(
            f"{url}: got {size:,} bytes, expected {expected_size:,}. "
            + ("The partial file is kept: run again to resume." if part.exists()
               else "The oversized file was deleted: run again to download it afresh.")
        )
    digests = _file_digests(part)
    if expected_md5 is not None and digests["md5"] != expected_md5.lower():
        part.unlink()
        raise DownloadError(
            f"{url}: md5 {digests['md5']} does not match the published md5 {expected_md5}; the "
            "corrupt download was deleted. Run again; if it persists the upstream file changed."
        )
    os.replace(part, dest)
    return {"url": url, "size": size, **digests}


# ----------------------------------------------------------------------------- unpacking


def _safe_members_zip(archive: zipfile.ZipFile, target: Path) -> None:
    root = target.resolve()
    for name in archive.namelist():
        resolved = (target / name).resolve()
        if resolved != root and root not in resolved.parents:
            raise DownloadError(f"archive member {name!r} would unpack outside {target}; refusing.")


def extract_archive(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` (zip or tar) into the new folder ``dest``, atomically.

    Everything is unpacked into a temporary folder beside ``dest`` that is renamed to
    ``dest`` at the end, so an interrupted unpack never leaves a half-filled ``dest``.
    When the archive holds a single top folder named like ``dest`` (``imgs_part_1.zip``
    → ``imgs_part_1/``) that level is dropped, so paths do not repeat it.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DownloadError(
            f"cannot unpack {archive.name}: {dest} already exists but is not recorded as a "
            f"finished unpack in {MANIFEST_NAME}. Delete {dest} (it may be incomplete) and rerun."
        )
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".unpacking", dir=dest.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _safe_members_zip(zf, tmp)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(tmp, filter="data")
                else:  # Python < 3.10.12: check names ourselves
                    for member in tf.getmembers():
                        resolved = (tmp / member.name).resolve()
                        if tmp.resolve() not in resolved.parents or member.issym() or member.islnk():
                            raise DownloadError(f"unsafe member {member.name!r} in {archive}; refusing.")
                    tf.extractall(tmp)
        else:
            raise DownloadError(f"{archive} is neither a zip nor a tar archive; delete it and rerun.")
        entries = [p for p in tmp.iterdir() if p.name != "__MACOSX"]
        source = entries[0] if len(entries) == 1 and entries[0].is_dir() and entries[0].name == dest.name else tmp
        if source == tmp:
            os.chmod(tmp, 0o755)  # mkdtemp made it private; the data folder is an ordinary one
        os.replace(source, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise DownloadError(f"{archive} is damaged ({exc}); delete it and rerun to download it again.") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


# ----------------------------------------------------------------------------- manifest


class _Manifest:
    """``<root>/.medlib-downloads.json``: {"files": {relpath: digests}, "unpacked": {relpath: archive}}."""

    def __init__(self, root: Path):
        self.path = root / MANIFEST_NAME
        self.root = root
        self.data = {"files": {}, "unpacked": {}}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                self.data["files"].update(loaded.get("files", {}))
                self.data["unpacked"].update(loaded.get("unpacked", {}))
            except (json.JSONDecodeError, AttributeError) as exc:
                raise DownloadError(
                    f"{self.path} is not valid JSON ({exc}); delete it and rerun (files already "
                    "present will be checked again)."
                ) from exc

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")

    def is_unpacked(self, dest: Path) -> bool:
        return self.rel(dest) in self.data["unpacked"] and dest.is_dir()

    def mark_unpacked(self, dest: Path, archive: Path) -> None:
        self.data["unpacked"][self.rel(dest)] = self.rel(archive)
        self.save()


def _ensure_file(
    manifest: _Manifest, url: str, dest: Path, *, expected_size=None, expected_md5=None, echo=print,
    retries: int = 3,
) -> None:
    """Download ``dest`` unless it is present and matches the manifest (size and sha256)."""
    key = manifest.rel(dest)
    recorded = manifest.data["files"].get(key)
    if dest.exists():
        if recorded is None:
            # Present but never recorded: someone put it there; trust it only if a published
            # checksum confirms it, otherwise record what is there.
            digests = _file_digests(dest)
            if expected_md5 and digests["md5"] != expected_md5.lower():
                raise DownloadError(
                    f"{dest} exists but its md5 {digests['md5']} differs from the published "
                    f"{expected_md5}; delete it and rerun to download it again."
                )
            manifest.data["files"][key] = {"url": url, "size": dest.stat().st_size, **digests}
            manifest.save()
            return
        if echo:
            echo(f"checking {dest.name} against {MANIFEST_NAME}")
        size = dest.stat().st_size
        if size == recorded["size"] and _file_digests(dest)["sha256"] == recorded["sha256"]:
            return
        raise DownloadError(
            f"{dest} no longer matches the sha256/size recorded when it was downloaded (damaged "
            "on disk?). Delete it and rerun to download it again."
        )
    manifest.data["files"][key] = fetch_file(
        url, dest, expected_size=expected_size, expected_md5=expected_md5, echo=echo, retries=retries
    )
    manifest.save()


def _ensure_unpacked(manifest: _Manifest, archive: Path, dest: Path, echo=print) -> bool:
    """Unpack ``archive`` into ``dest`` once; return True when it did unpack now."""
    if manifest.is_unpacked(dest):
        return False
    if echo:
        echo(f"unpacking {archive.name} -> {dest}")
    extract_archive(archive, dest)
    manifest.mark_unpacked(dest, archive)
    return True


# ----------------------------------------------------------------------------- datasets


def _download_single_zip(source: Source, root: Path, base_url, echo, keep_archives, retries, verify) -> Path:
    manifest = _Manifest(root)
    archive = root / (source.data_dir + ".zip")
    dest = root / source.data_dir
    unpacked = manifest.is_unpacked(dest)
    if not unpacked or (verify and archive.exists()):
        _ensure_file(manifest, rewrite_url(source.url, base_url), archive, echo=echo, retries=retries)
    if not unpacked:
        _ensure_unpacked(manifest, archive, dest, echo)
    if source.name == "pad-ufes-20":
        # The outer zip holds images/imgs_part_k.zip: unpack each beside itself, once.
        for inner in sorted(dest.rglob("imgs_part_*.zip")):
            if _ensure_unpacked(manifest, inner, inner.with_suffix(""), echo):
                inner.unlink()  # the outer archive still holds it; no need for a second copy
    for done in manifest.data["unpacked"]:
        if done.startswith(manifest.rel(dest) + "/") and not (root / done).is_dir():
            raise DownloadError(
                f"{root / done} was unpacked by an earlier run but is gone now; delete {dest} and rerun."
            )
    if not keep_archives and archive.exists():
        archive.unlink()
    return dest


def _zenodo_files(api_url: str) -> list[dict]:
    try:
        response = _open(api_url, {"Accept": "application/json"})
    except urllib.error.HTTPError as exc:
        raise _http_error(api_url, exc) from exc
    with response:
        try:
            record = json.loads(response.read().decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DownloadError(f"{api_url} did not return JSON ({exc}); expected a Zenodo record.") from exc
    files = record.get("files") if isinstance(record, dict) else None
    if isinstance(files, dict):  # newer Zenodo answers {"entries": [...]} in some views
        files = files.get("entries")
    if not isinstance(files, list) or not files:
        raise DownloadError(
            f"the Zenodo record {api_url} lists no files (keys present: "
            f"{sorted(record) if isinstance(record, dict) else type(record).__name__}); expected "
            "a 'files' list with 'key', 'size', 'checksum' and 'links.self'."
        )
    entries = []
    for entry in files:
        key = entry.get("key") or entry.get("filename")
        link = (entry.get("links") or {}).get("self") or (entry.get("links") or {}).get("content")
        if not key or not link:
            raise DownloadError(f"a file entry of {api_url} lacks 'key' or 'links.self': {entry!r}")
        if "/" in key or key.startswith("."):
            raise DownloadError(f"refusing the Zenodo file name {key!r} from {api_url}.")
        checksum = entry.get("checksum") or ""
        md5 = checksum.split(":", 1)[1] if checksum.startswith("md5:") else None
        entries.append({"key": key, "url": link, "size": entry.get("size"), "md5": md5})
    return entries


def _download_zenodo(source: Source, root: Path, base_url, echo, keep_archives, retries, verify) -> Path:
    manifest = _Manifest(root)
    dest = root / source.data_dir
    dest.mkdir(parents=True, exist_ok=True)
    record_copy = dest / "zenodo-record.json"
    finished = record_copy.is_file() and manifest.data["unpacked"].get(manifest.rel(dest)) == manifest.rel(record_copy)
    if finished and not verify:
        return dest
    if finished:  # check what is on disk against the file list saved by the earlier run
        entries = json.loads(record_copy.read_text())
    else:
        api_url = rewrite_url(source.url, base_url)
        if echo:
            echo(f"listing files of {api_url}")
        entries = _zenodo_files(api_url)
    for entry in entries:
        path = dest / entry["key"]
        stem = _strip_archive_suffix(entry["key"])
        unpack_dest = dest / stem if stem != entry["key"] else None
        if unpack_dest is not None and manifest.is_unpacked(unpack_dest) and not path.exists():
            continue  # unpacked earlier, archive removed on purpose
        _ensure_file(
            manifest, rewrite_url(entry["url"], base_url), path,
            expected_size=entry["size"], expected_md5=entry["md5"], echo=echo, retries=retries,
        )
        if unpack_dest is not None:
            _ensure_unpacked(manifest, path, unpack_dest, echo)
            if not keep_archives:
                path.unlink()
    if not finished:
        atomic_write_text(record_copy, json.dumps(entries, indent=2) + "\n")
        manifest.mark_unpacked(dest, record_copy)
    return dest


def _strip_archive_suffix(name: str) -> str:
    """``"frames.tar.gz"`` -> ``"frames"``; a name that is no archive comes back unchanged."""
    lower = name.lower()
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip"):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _derm7pt(root: Path) -> Path:
    for meta in [root / "release_v0" / "meta" / "meta.csv", *root.glob("*/release_v0/meta/meta.csv")]:
        if meta.is_file():
            return meta.parent.parent
    raise MedlibError(DERM7PT_INSTRUCTIONS.format(root=root))


def download_dataset(
    name: str,
    root: str | os.PathLike,
    *,
    base_url: str | None = None,
    keep_archives: bool = True,
    verify: bool = True,
    retries: int = 3,
    echo: Callable[[str], None] | None = print,
) -> Path:
    """Fetch dataset ``name`` into ``root`` and return the folder to pass to ``load_dataset``.

    Datasets of Paper A (retina, pad-ufes-20, bladder-tissue) are downloaded from their
    official hosts; derm7pt (Paper B) raises :class:`MedlibError` with the manual steps
    unless it is already unpacked under ``root``. ``base_url`` (default: the environment
    variable ``MEDLIB_DOWNLOAD_BASE``) replaces the scheme and host of every URL.
    ``keep_archives=False`` deletes each archive once it is unpacked; ``verify`` re-hashes
    archives still present against the sha256 recorded when they were downloaded.
    ``retries`` automatic resumes per file after a broken transfer. ``echo=None`` is quiet.
    """
    if name not in SOURCES:
        raise MedlibError(f"unknown dataset {name!r}; expected one of {', '.join(SOURCES)}.")
    root = Path(root).expanduser().absolute()
    if name == "derm7pt":
        return _derm7pt(root)
    root.mkdir(parents=True, exist_ok=True)
    if base_url is None:
        base_url = os.environ.get(BASE_URL_ENV) or None
    source = SOURCES[name]
    if name == "bladder-tissue":
        path = _download_zenodo(source, root, base_url, echo, keep_archives, retries, verify)
    else:
        path = _download_single_zip(source, root, base_url, echo, keep_archives, retries, verify)
    if echo:
        echo(f"{name}: ready at {path}")
    return path
