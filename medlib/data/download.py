"""Download Paper A's datasets with pooch (official URLs in ``SOURCES``, retries), resuming a dropped transfer
with HTTP ``Range``; Zenodo's md5 is checked, retina's and PAD's sha256 recorded in a manifest at the first
download. ``base_url`` (or ``$MEDLIB_DOWNLOAD_BASE``) swaps scheme and host: a mirror, or tests on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.parse
import zipfile
from pathlib import Path
from typing import Callable

import pooch
from pooch.hashes import hash_matches
import requests

from medlib.data.base import how_to_get
from medlib.errors import MedlibError
from medlib.data.unpack import UnsafeArchiveError, extract_tar, extract_zip
from medlib.io import atomic_write_text

__all__ = ["DownloadError", "SOURCES", "MANIFEST_NAME", "ResumableDownloader", "download_dataset", "fetch_file",
           "extract_archive", "rewrite_url"]

MANIFEST_NAME = ".medlib-downloads.json"
BASE_URL_ENV = "MEDLIB_DOWNLOAD_BASE"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
_ARCHIVE_SUFFIX = re.compile(r"\.(tar\.gz|tar\.bz2|tar\.xz|tgz|tar|zip)$", re.IGNORECASE)


class DownloadError(MedlibError):
    """A download or an unpack failed; the message says whether a rerun resumes it."""


# name -> (official URL, the folder under root its files end up in)
SOURCES: dict[str, tuple[str, str]] = {
    "retina": ("https://github.com/yiweichen04/retina_dataset/archive/master.zip", "retina_dataset-master"),
    "pad-ufes-20": ("https://prod-dcd-datasets-cache-zipfiles.s3.eu-west-1.amazonaws.com/zr7vgbcyr2-1.zip",
                    "pad-ufes-20"),
    "bladder-tissue": ("https://zenodo.org/api/records/7741476", "bladder-tissue"),
    "derm7pt": ("https://derm.cs.sfu.ca", "release_v0"),
}


def rewrite_url(url: str, base_url: str | None) -> str:
    """Swap the scheme and host of ``url`` for ``base_url`` (whose own path is kept as a prefix).

    >>> rewrite_url("https://zenodo.org/api/records/1?x=1", "http://127.0.0.1:8000/mirror")
    'http://127.0.0.1:8000/mirror/api/records/1?x=1'
    """
    if not base_url:
        return url
    base = urllib.parse.urlsplit(base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise DownloadError(f"base URL {base_url!r} is not an http(s) URL with a host; expected e.g. "
                            f"'http://127.0.0.1:8000'. Fix --base-url or the {BASE_URL_ENV} variable.")
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def _quiet(line: str) -> None:
    """``echo=None``."""


class IncompleteTransfer(requests.exceptions.RequestException):
    """Fewer bytes than announced. A ``RequestException``, so pooch's ``retry_if_failed`` resumes it."""


def _progress_line(label: str, done: int, total: int | None, start: int, t0: float) -> str:
    rate = (done - start) / max(time.monotonic() - t0, 1e-9) / 1e6
    if total:
        return f"  {label}: {done / 1e6:,.1f}/{total / 1e6:,.1f} MB {100.0 * done / total:5.1f}% {rate:6.1f} MB/s"
    return f"  {label}: {done / 1e6:,.1f} MB    ?  {rate:6.1f} MB/s"


class ResumableDownloader:
    """A pooch downloader that resumes ``part`` with HTTP ``Range``, checks ``expected_size`` and ``known_hash``
    (a complete but wrong file is deleted, no retry spent on it), then renames it to pooch's ``output_file``."""

    def __init__(self, part: Path, *, expected_size: int | None = None, known_hash: str | None = None,
                 echo: Callable[[str], None] | None = print, every_s: float = 2.0):
        self.part, self.expected_size, self.known_hash = Path(part), expected_size, known_hash
        self.echo, self.every_s = echo or _quiet, every_s

    def _transfer(self, url: str) -> None:
        label = self.part.name.removesuffix(".part")
        offset = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT_S) as response:
            if response.status_code == 416 and offset:
                return  # the .part is already whole (killed before the rename): size/hash decide
            response.raise_for_status()
            length = response.headers.get("Content-Length")
            length = int(length) if length is not None else None
            if offset and response.status_code == 206:
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {offset}-"):
                    raise DownloadError(f"{url} answered a resume from byte {offset} with Content-Range "
                                        f"{content_range!r}; delete {self.part} and rerun.")
                mode, total = "ab", None if length is None else offset + length
                self.echo(f"  {label}: resuming at {offset / 1e6:,.1f} MB")
            else:
                if offset:
                    self.echo(f"  {label}: server ignored the Range request; starting again from 0")
                offset, mode, total = 0, "wb", length
            # urllib3 would raise on a short body and drop the bytes it buffered; we keep them in the
            # .part and compare the length ourselves below
            response.raw.enforce_content_length = False
            done, t0 = offset, time.monotonic()
            t_last = t0
            with self.part.open(mode) as out:
                # a dropped connection raises requests' ChunkedEncodingError/ConnectionError here
                for chunk in response.iter_content(CHUNK_BYTES):
                    out.write(chunk)
                    done += len(chunk)
                    if time.monotonic() - t_last >= self.every_s:
                        t_last = time.monotonic()
                        self.echo(_progress_line(label, done, total, offset, t0))
            self.echo(_progress_line(label, done, total, offset, t0))
        if total is not None and done < total:
            raise IncompleteTransfer(f"got {done:,} of {total:,} bytes")

    def __call__(self, url: str, output_file: str, pooch_instance=None) -> None:
        self._transfer(url)
        size = self.part.stat().st_size
        if self.expected_size is not None and size != self.expected_size:
            if size > self.expected_size:
                self.part.unlink()  # longer than the file can be: no use resuming it
            raise DownloadError(
                f"{url}: got {size:,} bytes, expected {self.expected_size:,}. "
                + ("The partial file is kept: run again to resume." if self.part.exists()
                   else "The oversized file was deleted: run again to download it afresh.")
            )
        if self.known_hash and not hash_matches(str(self.part), self.known_hash):
            algorithm, expected = self.known_hash.split(":", 1)
            got = pooch.file_hash(str(self.part), alg=algorithm)
            self.part.unlink()
            raise DownloadError(
                f"{url}: {algorithm} {got} does not match the published {algorithm} {expected}; the corrupt "
                "download was deleted. Run again; if it persists the upstream file changed."
            )
        os.replace(self.part, output_file)


def fetch_file(url: str, dest: Path, *, expected_size: int | None = None, known_hash: str | None = None,
               retries: int = 3, echo: Callable[[str], None] | None = print) -> dict[str, str | int]:
    """Download ``url`` to ``dest`` (resumable, checked against pooch's ``"md5:<hex>"`` ``known_hash``, atomic);
    return ``{url, size, sha256, md5}``. The ``.part`` stays after the last of ``retries`` for a later call."""
    dest, echo = Path(dest), echo or _quiet
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    registry = pooch.create(path=dest.parent, base_url="", registry={dest.name: None},
                            urls={dest.name: url}, retry_if_failed=retries)
    downloader = ResumableDownloader(part, expected_size=expected_size, known_hash=known_hash, echo=echo)
    echo(f"downloading {url} -> {dest}")
    logger = pooch.get_logger()  # pooch logs every fetch at INFO; medlib prints its own lines (or none)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        registry.fetch(dest.name, downloader=downloader)
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(f"{url} answered HTTP {status}; expected the file. The dataset may have moved: check the "
                            "address in medlib.data.download.SOURCES against the dataset's page.") from exc
    except requests.exceptions.RequestException as exc:
        raise DownloadError(
            f"the transfer of {url} broke ({exc.__class__.__name__}: {exc}); the partial file {part} is "
            f"kept: run the same command again to resume. (A mirror: base_url= or ${BASE_URL_ENV}.)"
        ) from exc
    finally:
        logger.setLevel(level)
    return _record(url, dest)


def _record(url: str, path: Path) -> dict[str, str | int]:
    digests = {alg: pooch.file_hash(str(path), alg=alg) for alg in ("sha256", "md5")}
    return {"url": url, "size": path.stat().st_size, **digests}


def extract_archive(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` (zip or tar, every member checked first) into the new folder ``dest``, atomically;
    a single top folder named like ``dest`` (``imgs_part_1.zip`` -> ``imgs_part_1/``) is dropped."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DownloadError(f"cannot unpack {archive.name}: {dest} already exists but is not recorded as a "
                            f"finished unpack in {MANIFEST_NAME}. Delete {dest} (it may be incomplete) and rerun.")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".unpacking", dir=dest.parent))
    try:
        if zipfile.is_zipfile(archive):
            extract_zip(archive, tmp)
        elif tarfile.is_tarfile(archive):
            extract_tar(archive, tmp)
        else:
            raise DownloadError(f"{archive} is neither a zip nor a tar archive; delete it and rerun.")
        entries = [p for p in tmp.iterdir() if p.name != "__MACOSX"]
        source = entries[0] if len(entries) == 1 and entries[0].is_dir() and entries[0].name == dest.name else tmp
        if source == tmp:
            os.chmod(tmp, 0o755)  # mkdtemp made it private; the data folder is an ordinary one
        os.replace(source, dest)
    except UnsafeArchiveError as exc:
        raise DownloadError(f"{exc} (the archive {archive} is kept for inspection; nothing was unpacked)") from exc
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DownloadError(f"{archive} is damaged ({exc}); delete it and rerun to download it again.") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


class _Manifest:
    """``<root>/.medlib-downloads.json``: {"files": {relpath: digests}, "unpacked": {relpath: archive}}."""

    def __init__(self, root: Path, echo: Callable[[str], None], retries: int):
        self.path, self.root, self.echo, self.retries = root / MANIFEST_NAME, root, echo, retries
        self.data = {"files": {}, "unpacked": {}}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                for part in self.data:
                    self.data[part].update(loaded.get(part, {}))
            except (json.JSONDecodeError, AttributeError) as exc:
                raise DownloadError(f"{self.path} is not valid JSON ({exc}); delete it and rerun (files already "
                                    "present will be checked again).") from exc

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")

    def is_unpacked(self, dest: Path) -> bool:
        return self.rel(dest) in self.data["unpacked"] and dest.is_dir()

    def ensure_file(self, url: str, dest: Path, *, expected_size=None, known_hash=None) -> None:
        """Download ``dest`` unless it is present and matches what was recorded (size and sha256)."""
        key = self.rel(dest)
        recorded = self.data["files"].get(key)
        if dest.exists():
            if recorded is None:
                # Present but never recorded: trust it only if a published checksum confirms it.
                if known_hash and not hash_matches(str(dest), known_hash):
                    raise DownloadError(f"{dest} exists but does not match the published {known_hash}; "
                                        "delete it and rerun to download it again.")
                self.data["files"][key] = _record(url, dest)
                self.save()
                return
            self.echo(f"checking {dest.name} against {MANIFEST_NAME}")
            if dest.stat().st_size == recorded["size"] and hash_matches(str(dest), f"sha256:{recorded['sha256']}"):
                return
            raise DownloadError(f"{dest} no longer matches the sha256/size recorded when it was downloaded "
                                "(damaged on disk?). Delete it and rerun to download it again.")
        self.data["files"][key] = fetch_file(url, dest, expected_size=expected_size, known_hash=known_hash,
                                             echo=self.echo, retries=self.retries)
        self.save()

    def ensure_unpacked(self, archive: Path, dest: Path) -> bool:
        """Unpack ``archive`` into ``dest`` once; return True when it did unpack now."""
        if self.is_unpacked(dest):
            return False
        self.echo(f"unpacking {archive.name} -> {dest}")
        extract_archive(archive, dest)
        self.data["unpacked"][self.rel(dest)] = self.rel(archive)
        self.save()
        return True


def _download_single_zip(name: str, root: Path, manifest: _Manifest, base_url, keep_archives, verify) -> Path:
    url, data_dir = SOURCES[name]
    archive, dest = root / (data_dir + ".zip"), root / data_dir
    unpacked = manifest.is_unpacked(dest)
    if not unpacked or (verify and archive.exists()):
        manifest.ensure_file(rewrite_url(url, base_url), archive)
    if not unpacked:
        manifest.ensure_unpacked(archive, dest)
    if name == "pad-ufes-20":
        # The outer zip holds images/imgs_part_k.zip: unpack each beside itself, once.
        for inner in sorted(dest.rglob("imgs_part_*.zip")):
            if manifest.ensure_unpacked(inner, inner.with_suffix("")):
                inner.unlink()  # the outer archive still holds it; no need for a second copy
    for done in manifest.data["unpacked"]:
        if done.startswith(manifest.rel(dest) + "/") and not (root / done).is_dir():
            raise DownloadError(f"{root / done} was unpacked by an earlier run but is gone now; "
                                f"delete {dest} and rerun.")
    if not keep_archives and archive.exists():
        archive.unlink()
    return dest


def _zenodo_files(api_url: str) -> list[dict]:
    """The record's files as ``{"key", "url", "size", "known_hash"}`` (pooch's ``md5:<hex>``)."""
    try:
        response = requests.get(api_url, headers={"Accept": "application/json"}, timeout=TIMEOUT_S)
        response.raise_for_status()
        record = response.json()
    except requests.exceptions.HTTPError as exc:
        raise DownloadError(f"{api_url} answered HTTP {exc.response.status_code}; expected the Zenodo record. "
                            "Check the address in medlib.data.download.SOURCES.") from exc
    except requests.exceptions.RequestException as exc:
        raise DownloadError(f"could not reach {api_url}: {exc}. Check the network; a mirror can be set with "
                            f"base_url= or ${BASE_URL_ENV}.") from exc
    except ValueError as exc:
        raise DownloadError(f"{api_url} did not return JSON ({exc}); expected a Zenodo record.") from exc
    files = record.get("files") if isinstance(record, dict) else None
    if isinstance(files, dict):  # some Zenodo views answer {"entries": [...]}
        files = files.get("entries")
    if not isinstance(files, list) or not files:
        raise DownloadError(f"the Zenodo record {api_url} lists no files; expected a 'files' list with "
                            "'key', 'size', 'checksum' and 'links.self'.")
    entries = []
    for raw in files:
        entry = raw if isinstance(raw, dict) else {}
        key = entry.get("key") or entry.get("filename")
        links = entry.get("links") or {}
        link = links.get("self") or links.get("content")
        if not key or not link or "/" in key or key.startswith("."):
            raise DownloadError(f"refusing the Zenodo file entry {raw!r} from {api_url}: expected an object with a "
                                "plain 'key' and 'links.self'.")
        checksum = entry.get("checksum") or ""
        entries.append({"key": key, "url": link, "size": entry.get("size"),
                        "known_hash": checksum if checksum.startswith("md5:") else None})
    return entries


def _download_zenodo(name: str, root: Path, manifest: _Manifest, base_url, keep_archives, verify) -> Path:
    url, data_dir = SOURCES[name]
    dest = root / data_dir
    dest.mkdir(parents=True, exist_ok=True)
    record_copy = dest / "zenodo-record.json"
    finished = record_copy.is_file() and manifest.data["unpacked"].get(manifest.rel(dest)) == manifest.rel(record_copy)
    if finished and not verify:
        return dest
    if finished:  # check what is on disk against the file list saved by the earlier run
        entries = json.loads(record_copy.read_text())
    else:
        api_url = rewrite_url(url, base_url)
        manifest.echo(f"listing files of {api_url}")
        entries = _zenodo_files(api_url)
    for entry in entries:
        path = dest / entry["key"]
        stem = _ARCHIVE_SUFFIX.sub("", entry["key"])  # "frames.tar.gz" -> "frames"
        unpack_dest = dest / stem if stem != entry["key"] else None
        if unpack_dest is not None and manifest.is_unpacked(unpack_dest) and not path.exists():
            continue  # unpacked earlier, archive removed on purpose
        manifest.ensure_file(rewrite_url(entry["url"], base_url), path, expected_size=entry["size"],
                             known_hash=entry["known_hash"])
        if unpack_dest is not None:
            manifest.ensure_unpacked(path, unpack_dest)
            if not keep_archives:
                path.unlink()
    if not finished:
        atomic_write_text(record_copy, json.dumps(entries, indent=2) + "\n")
        manifest.data["unpacked"][manifest.rel(dest)] = manifest.rel(record_copy)
        manifest.save()
    return dest


def has_partial_download(root: str | os.PathLike) -> bool:
    """True when ``root`` holds what an interrupted :func:`download_dataset` leaves (``.part`` files, a manifest)."""
    root = Path(root)
    return (root / MANIFEST_NAME).is_file() or any(root.glob("*.part")) or any(root.glob("*/*.part"))


def download_dataset(name: str, root: str | os.PathLike, *, base_url: str | None = None, keep_archives: bool = True,
                     verify: bool = True, retries: int = 3, echo: Callable[[str], None] | None = print) -> Path:
    """Fetch dataset ``name`` into ``root`` (resuming an interrupted call); return the folder for ``load_dataset``.
    derm7pt raises :class:`MedlibError` with the manual steps unless already there. ``verify`` re-hashes the
    archives still present; ``echo=None`` is quiet."""
    if name not in SOURCES:
        raise MedlibError(f"unknown dataset {name!r}; expected one of {', '.join(SOURCES)}.")
    root = Path(root).expanduser().absolute()
    if name == "derm7pt":  # no download: it needs a registration
        for meta in [root / "release_v0" / "meta" / "meta.csv", *root.glob("*/release_v0/meta/meta.csv")]:
            if meta.is_file():
                return meta.parent.parent
        raise MedlibError(f"derm7pt is not under {root}. {how_to_get('derm7pt')}")
    root.mkdir(parents=True, exist_ok=True)
    base_url = os.environ.get(BASE_URL_ENV) if base_url is None else base_url
    echo = echo or _quiet
    fetch = _download_zenodo if name == "bladder-tissue" else _download_single_zip
    path = fetch(name, root, _Manifest(root, echo, retries), base_url, keep_archives, verify)
    echo(f"{name}: ready at {path}")
    return path
