"""download_dataset against a local HTTP server (127.0.0.1 only) serving fixture archives.

The fixtures copy the official layouts (REFERENCE §1): the retina GitHub archive, the PAD
Mendeley zip with nested imgs_part_k.zip, and a Zenodo record API answer with its files.
The server supports Range, can drop a connection mid-file once, and can ignore Range.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from medlib.data.download import (
    MANIFEST_NAME,
    DownloadError,
    download_dataset,
    extract_archive,
    rewrite_url,
)
from medlib.errors import MedlibError

RETINA_PATH = "/yiweichen04/retina_dataset/archive/master.zip"
PAD_PATH = "/zr7vgbcyr2-1.zip"
ZENODO_API_PATH = "/api/records/7741476"


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _fake_png(tag: str, n_bytes: int = 3000) -> bytes:
    # Not decodable as an image: download code never decodes, it must copy bytes exactly.
    body = (tag.encode() * (n_bytes // max(len(tag), 1) + 1))[:n_bytes]
    return b"\x89PNG\r\n\x1a\n" + body


RETINA_MEMBERS = {
    "retina_dataset-master/README.md": b"retina\n",
    "retina_dataset-master/dataset/1_normal/NL_001.png": _fake_png("NL_001"),
    "retina_dataset-master/dataset/2_cataract/cataract_001.png": _fake_png("cataract_001"),
    "retina_dataset-master/dataset/2_glaucoma/Glaucoma_001.png": _fake_png("Glaucoma_001"),
    "retina_dataset-master/dataset/3_retina_disease/Retina_001.png": _fake_png("Retina_001"),
}


class FixtureServer:
    """Serves ``routes`` (path -> bytes) with Range support and scripted failures."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.drop_once: dict[str, int] = {}  # path -> bytes to send before closing, first request only
        self.ignore_range = False
        self.log: list[tuple[str, str | None, int]] = []  # (path, Range header, status)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                path = self.path
                data = server.routes.get(path)
                range_header = self.headers.get("Range")
                if data is None:
                    server.log.append((path, range_header, 404))
                    self.send_error(404)
                    return
                start = 0
                if range_header and not server.ignore_range:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        server.log.append((path, range_header, 416))
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                status = 206 if start else 200
                server.log.append((path, range_header, status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if path in server.drop_once:
                    cut = server.drop_once.pop(path)
                    self.wfile.write(data[start:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def requests_for(self, path: str) -> list[tuple[str, str | None, int]]:
        return [entry for entry in self.log if entry[0] == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("MEDLIB_DOWNLOAD_BASE", raising=False)
    srv = FixtureServer()
    yield srv
    srv.close()


def _no_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".part", ".unpacking", ".tmp"))]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- retina


def test_retina_download_unpacks_official_layout_and_records_sha256(server, tmp_path):
    archive = _zip_bytes(RETINA_MEMBERS)
    server.routes[RETINA_PATH] = archive
    root = tmp_path / "data"

    lines: list[str] = []
    path = download_dataset("retina", root, base_url=server.base, echo=lines.append)

    assert path == root / "retina_dataset-master"
    for member, data in RETINA_MEMBERS.items():
        relative = member.removeprefix("retina_dataset-master/")
        assert (path / relative).read_bytes() == data
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    record = manifest["files"]["retina_dataset-master.zip"]
    assert record["sha256"] == _sha256(archive)
    assert record["size"] == len(archive)
    assert record["url"] == server.base + RETINA_PATH
    assert _no_leftovers(root) == []
    # Text progress: one line at least reports the full size in MB and a 100% figure.
    assert any("100.0%" in line and "MB/s" in line for line in lines)


def test_second_run_requests_nothing(server, tmp_path):
    server.routes[RETINA_PATH] = _zip_bytes(RETINA_MEMBERS)
    root = tmp_path / "data"
    download_dataset("retina", root, base_url=server.base, echo=None)
    n_requests = len(server.log)
    mtime = (root / "retina_dataset-master" / "dataset" / "1_normal" / "NL_001.png").stat().st_mtime_ns

    download_dataset("retina", root, base_url=server.base, echo=None)

    assert len(server.log) == n_requests == 1
    assert (root / "retina_dataset-master" / "dataset" / "1_normal" / "NL_001.png").stat().st_mtime_ns == mtime


def test_rerun_detects_archive_damaged_on_disk(server, tmp_path):
    server.routes[RETINA_PATH] = _zip_bytes(RETINA_MEMBERS)
    root = tmp_path / "data"
    download_dataset("retina", root, base_url=server.base, echo=None)
    archive = root / "retina_dataset-master.zip"
    damaged = bytearray(archive.read_bytes())
    damaged[100] ^= 0xFF  # same size, different content
    archive.write_bytes(bytes(damaged))

    with pytest.raises(DownloadError, match="sha256"):
        download_dataset("retina", root, base_url=server.base, echo=None)
    # Skipping the check is possible on purpose:
    download_dataset("retina", root, base_url=server.base, echo=None, verify=False)


def test_resume_after_truncated_transfer_uses_range(server, tmp_path):
    archive = _zip_bytes(RETINA_MEMBERS)
    cut = len(archive) // 3
    server.routes[RETINA_PATH] = archive
    server.drop_once[RETINA_PATH] = cut
    root = tmp_path / "data"

    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download_dataset("retina", root, base_url=server.base, echo=None, retries=0)
    part = root / "retina_dataset-master.zip.part"
    assert part.stat().st_size == cut
    assert not (root / "retina_dataset-master.zip").exists()
    assert not (root / "retina_dataset-master").exists()

    download_dataset("retina", root, base_url=server.base, echo=None, retries=0)

    requests = server.requests_for(RETINA_PATH)
    assert requests == [(RETINA_PATH, None, 200), (RETINA_PATH, f"bytes={cut}-", 206)]
    assert (root / "retina_dataset-master.zip").read_bytes() == archive
    assert not part.exists()
    assert (root / "retina_dataset-master" / "dataset" / "2_glaucoma" / "Glaucoma_001.png").is_file()


def test_automatic_retry_resumes_within_one_call(server, tmp_path):
    archive = _zip_bytes(RETINA_MEMBERS)
    server.routes[RETINA_PATH] = archive
    server.drop_once[RETINA_PATH] = 1000
    root = tmp_path / "data"

    download_dataset("retina", root, base_url=server.base, echo=None, retries=1)

    assert [r[1:] for r in server.requests_for(RETINA_PATH)] == [(None, 200), ("bytes=1000-", 206)]
    assert (root / "retina_dataset-master.zip").read_bytes() == archive


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    archive = _zip_bytes(RETINA_MEMBERS)
    cut = len(archive) // 2
    server.routes[RETINA_PATH] = archive
    server.drop_once[RETINA_PATH] = cut
    server.ignore_range = True
    root = tmp_path / "data"
    with pytest.raises(DownloadError):
        download_dataset("retina", root, base_url=server.base, echo=None, retries=0)

    lines: list[str] = []
    download_dataset("retina", root, base_url=server.base, echo=lines.append, retries=0)

    # The Range request was answered 200 with the whole file: it must replace, not append.
    assert server.requests_for(RETINA_PATH)[-1] == (RETINA_PATH, f"bytes={cut}-", 200)
    assert (root / "retina_dataset-master.zip").read_bytes() == archive
    assert any("ignored the Range" in line for line in lines)


# ----------------------------------------------------------------------------- PAD-UFES-20


def test_pad_unpacks_outer_and_nested_zips(server, tmp_path):
    metadata = b"patient_id,lesion_id,img_id,diagnostic\nPAT_1,1,PAT_1_1_1.png,NEV\nPAT_2,2,PAT_2_2_9.png,BCC\n"
    inner_1 = _zip_bytes({"imgs_part_1/PAT_1_1_1.png": _fake_png("PAT_1_1_1")})
    inner_2 = _zip_bytes({"imgs_part_2/PAT_2_2_9.png": _fake_png("PAT_2_2_9")})
    server.routes[PAD_PATH] = _zip_bytes(
        {"metadata.csv": metadata, "images/imgs_part_1.zip": inner_1, "images/imgs_part_2.zip": inner_2}
    )
    root = tmp_path / "data"

    path = download_dataset("pad-ufes-20", root, base_url=server.base, echo=None)

    assert path == root / "pad-ufes-20"
    assert (path / "metadata.csv").read_bytes() == metadata
    assert (path / "images" / "imgs_part_1" / "PAT_1_1_1.png").read_bytes() == _fake_png("PAT_1_1_1")
    assert (path / "images" / "imgs_part_2" / "PAT_2_2_9.png").read_bytes() == _fake_png("PAT_2_2_9")
    assert sorted(p.name for p in (path / "images").iterdir()) == ["imgs_part_1", "imgs_part_2"]
    assert _no_leftovers(root) == []

    n_requests = len(server.log)
    download_dataset("pad-ufes-20", root, base_url=server.base, echo=None)
    assert len(server.log) == n_requests


def test_keep_archives_false_removes_outer_archive(server, tmp_path):
    server.routes[PAD_PATH] = _zip_bytes(
        {"metadata.csv": b"img_id\n", "images/imgs_part_1.zip": _zip_bytes({"imgs_part_1/a.png": b"x"})}
    )
    root = tmp_path / "data"
    download_dataset("pad-ufes-20", root, base_url=server.base, echo=None, keep_archives=False)
    assert not (root / "pad-ufes-20.zip").exists()
    assert (root / "pad-ufes-20" / "images" / "imgs_part_1" / "a.png").read_bytes() == b"x"
    # Still idempotent without the archive:
    download_dataset("pad-ufes-20", root, base_url=server.base, echo=None, keep_archives=False)
    assert len(server.log) == 1


# ----------------------------------------------------------------------------- Zenodo


def _zenodo_record(server: FixtureServer, files: dict[str, bytes], md5_override: dict[str, str] | None = None):
    entries = []
    for key, data in files.items():
        file_path = f"{ZENODO_API_PATH}/files/{key}/content"
        server.routes[file_path] = data
        md5 = (md5_override or {}).get(key, hashlib.md5(data).hexdigest())
        entries.append(
            {
                "key": key,
                "size": len(data),
                "checksum": f"md5:{md5}",
                # Zenodo answers with absolute links to its own host: rewritten to base_url.
                "links": {"self": f"https://zenodo.org{file_path}"},
            }
        )
    server.routes[ZENODO_API_PATH] = json.dumps({"id": 7741476, "files": entries}).encode()


def test_bladder_downloads_every_zenodo_file_and_unpacks_zips(server, tmp_path):
    frames = _zip_bytes({"EndoscopicBladderTissue/HGC/case_01_0001.png": _fake_png("frame1"),
                         "EndoscopicBladderTissue/NST/case_02_0001.png": _fake_png("frame2")})
    annotations = b"image_name,tissue type,imaging type,case number\ncase_01_0001,HGC,WLI,1\n"
    _zenodo_record(server, {"EndoscopicBladderTissue.zip": frames, "annotations.csv": annotations})
    root = tmp_path / "data"

    path = download_dataset("bladder-tissue", root, base_url=server.base, echo=None)

    assert path == root / "bladder-tissue"
    assert (path / "annotations.csv").read_bytes() == annotations
    assert (path / "EndoscopicBladderTissue" / "HGC" / "case_01_0001.png").read_bytes() == _fake_png("frame1")
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["files"]["bladder-tissue/annotations.csv"]["md5"] == hashlib.md5(annotations).hexdigest()
    assert _no_leftovers(root) == []

    n_requests = len(server.log)
    download_dataset("bladder-tissue", root, base_url=server.base, echo=None)
    assert len(server.log) == n_requests  # not even the API is asked again


def test_md5_mismatch_is_an_error_and_leaves_no_file(server, tmp_path):
    annotations = b"image_name,tissue type\n"
    _zenodo_record(server, {"annotations.csv": annotations}, md5_override={"annotations.csv": "0" * 32})
    root = tmp_path / "data"

    with pytest.raises(DownloadError, match="md5"):
        download_dataset("bladder-tissue", root, base_url=server.base, echo=None)

    assert not (root / "bladder-tissue" / "annotations.csv").exists()
    assert _no_leftovers(root) == []


def test_short_file_against_listed_size_keeps_partial(server, tmp_path):
    data = b"0123456789" * 500
    _zenodo_record(server, {"annotations.csv": data})
    record = json.loads(server.routes[ZENODO_API_PATH])
    record["files"][0]["size"] = len(data) + 10  # the host lists more than it sends
    server.routes[ZENODO_API_PATH] = json.dumps(record).encode()
    root = tmp_path / "data"

    with pytest.raises(DownloadError, match=f"got {len(data):,} bytes, expected {len(data) + 10:,}"):
        download_dataset("bladder-tissue", root, base_url=server.base, echo=None)
    assert (root / "bladder-tissue" / "annotations.csv.part").stat().st_size == len(data)


# ----------------------------------------------------------------------------- misc


def test_http_error_names_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404.*SOURCES|master.zip answered HTTP 404"):
        download_dataset("retina", tmp_path, base_url=server.base, echo=None, retries=0)


def test_base_url_from_environment(server, tmp_path, monkeypatch):
    server.routes[RETINA_PATH] = _zip_bytes(RETINA_MEMBERS)
    monkeypatch.setenv("MEDLIB_DOWNLOAD_BASE", server.base)
    download_dataset("retina", tmp_path, echo=None)
    assert server.requests_for(RETINA_PATH)[0][2] == 200


def test_rewrite_url_keeps_path_and_query():
    assert rewrite_url("https://zenodo.org/api/records/1?a=b", "http://127.0.0.1:9/mirror/") == (
        "http://127.0.0.1:9/mirror/api/records/1?a=b"
    )
    assert rewrite_url("https://x.org/f.zip", None) == "https://x.org/f.zip"
    with pytest.raises(DownloadError, match="not an http"):
        rewrite_url("https://x.org/f.zip", "127.0.0.1:9")


def test_derm7pt_explains_manual_steps_or_finds_the_data(tmp_path):
    with pytest.raises(MedlibError, match="derm.cs.sfu.ca") as info:
        download_dataset("derm7pt", tmp_path)
    assert "release_v0/meta/meta.csv" in str(info.value)

    meta = tmp_path / "release_v0" / "meta" / "meta.csv"
    meta.parent.mkdir(parents=True)
    meta.write_text("case_num\n")
    assert download_dataset("derm7pt", tmp_path) == tmp_path / "release_v0"


def test_unknown_dataset(tmp_path):
    with pytest.raises(MedlibError, match="unknown dataset 'mnist'"):
        download_dataset("mnist", tmp_path)


def test_extract_refuses_members_outside_target(tmp_path):
    evil = tmp_path / "evil.zip"
    evil.write_bytes(_zip_bytes({"../outside.txt": b"x"}))
    with pytest.raises(DownloadError, match="outside"):
        extract_archive(evil, tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "dest").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["evil.zip"]


def test_complete_partial_file_is_finished_after_416(server, tmp_path):
    # A run killed between the last byte and the rename leaves a complete .part behind.
    archive = _zip_bytes(RETINA_MEMBERS)
    server.routes[RETINA_PATH] = archive
    root = tmp_path / "data"
    root.mkdir()
    (root / "retina_dataset-master.zip.part").write_bytes(archive)

    download_dataset("retina", root, base_url=server.base, echo=None)

    assert server.requests_for(RETINA_PATH) == [(RETINA_PATH, f"bytes={len(archive)}-", 416)]
    assert (root / "retina_dataset-master" / "dataset" / "1_normal" / "NL_001.png").is_file()


def test_failed_unpack_leaves_no_data_folder(server, tmp_path):
    server.routes[RETINA_PATH] = b"<html>rate limited</html>"
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        download_dataset("retina", root, base_url=server.base, echo=None)
    assert not (root / "retina_dataset-master").exists()
    assert _no_leftovers(root) == []


# ----------------------------------------------------------------------------- ensure_dataset (issue 9)


def test_ensure_dataset_resumes_a_partial_download(server, tmp_path, monkeypatch):
    from medlib.experiments.data import ensure_dataset
    from medlib.profiles import FULL

    archive = _zip_bytes(RETINA_MEMBERS)
    cut = len(archive) // 2
    server.routes[RETINA_PATH] = archive
    server.drop_once[RETINA_PATH] = cut
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDLIB_DOWNLOAD_BASE", server.base)
    root = tmp_path / "home" / "data" / "real" / "retina"
    with pytest.raises(DownloadError, match="resume"):
        download_dataset("retina", root, echo=None, retries=0)  # a session that died mid-transfer
    assert (root / "retina_dataset-master.zip.part").stat().st_size == cut

    ds = ensure_dataset("retina", FULL)

    assert server.requests_for(RETINA_PATH)[-1] == (RETINA_PATH, f"bytes={cut}-", 206)
    assert len(ds) == 4 and ds.root == (root / "retina_dataset-master").resolve()


def test_ensure_dataset_leaves_a_foreign_folder_alone(tmp_path, monkeypatch):
    from medlib.errors import DataError
    from medlib.experiments.data import ensure_dataset
    from medlib.profiles import FULL

    monkeypatch.setenv("MEDLIB_DATA_RETINA", str(tmp_path / "mine"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my own files\n")
    with pytest.raises(DataError, match="retina"):
        ensure_dataset("retina", FULL)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_missing_derm7pt_names_the_variable_and_breaks_nothing_else(tmp_path, monkeypatch):
    from medlib.errors import DataError
    from medlib.experiments.data import ensure_dataset, load_available
    from medlib.profiles import FULL

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDLIB_DATA_DERM7PT", raising=False)
    with pytest.raises(DataError) as err:
        ensure_dataset("derm7pt", FULL)
    msg = str(err.value)
    assert "MEDLIB_DATA_DERM7PT" in msg and "/content/drive/MyDrive/derm7pt" in msg
    assert "release_v0/meta/meta.csv" in msg and "https://derm.cs.sfu.ca" in msg
    assert "pass DIR" not in msg and "as root" not in msg

    retina = tmp_path / "retina"
    for member, data in RETINA_MEMBERS.items():
        (retina / member).parent.mkdir(parents=True, exist_ok=True)
        (retina / member).write_bytes(data)
    monkeypatch.setenv("MEDLIB_DATA_RETINA", str(retina))
    loaded, missing = load_available(["retina", "derm7pt"], FULL)
    assert list(loaded) == ["retina"] and len(loaded["retina"]) == 4
    assert list(missing) == ["derm7pt"] and "MEDLIB_DATA_DERM7PT" in missing["derm7pt"]


def test_stand_ins_are_kept_per_size_preset(tmp_path, monkeypatch):
    from medlib.experiments.data import ensure_dataset, synthetic_root
    from medlib.profiles import FULL, dry_run

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path / "home"))
    ds = ensure_dataset("bladder-tissue", dry_run(FULL))
    assert synthetic_root("bladder-tissue", "real-size") == tmp_path / "home" / "data" / "synthetic" / "bladder-tissue" / "real-size"
    assert str(ds.root).startswith(str(synthetic_root("bladder-tissue", "real-size")))
    assert ds.load_image(0).size in {(300, 300), (350, 350)}
    assert synthetic_root("bladder-tissue", "small") != synthetic_root("bladder-tissue", "real-size")
