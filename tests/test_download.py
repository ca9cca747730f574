"""The dataset downloader against a local HTTP server (127.0.0.1): good archive, wrong checksum, a cut
download resumed with Range, a 404, and no server at all."""

from __future__ import annotations

import io
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from audiodiff.data.download import Source, download, ensure, sha256_file, tree_digest
from audiodiff.errors import AudiodiffError, DownloadError


def _archive() -> bytes:
    """A GitHub-like zip: a top folder, the kept files under ``sounds/``, and a file that is not kept."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for i in range(3):
            z.writestr(f"pkg-abc123/sounds/clip_{i}.wav", bytes([i]) * 5000)
        z.writestr("pkg-abc123/README.md", "not audio")
    return buffer.getvalue()


ARCHIVE = _archive()


class Handler(BaseHTTPRequestHandler):
    """Serves ``/data.zip`` with Range support; ``/cut.zip`` announces the whole file but sends half
    (the first time); anything else is a 404."""

    cut_once = {"done": False}
    ranges: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        if self.path not in ("/data.zip", "/cut.zip"):
            self.send_error(404)
            return
        start = 0
        if "Range" in self.headers:
            self.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        body = ARCHIVE[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/cut.zip" and not self.cut_once["done"]:
            self.cut_once["done"] = True
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.cut_once["done"] = False
    Handler.ranges.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _source(url: str, **kw) -> Source:
    return Source("sounds", url, "sounds/", suffixes=(".wav",), **kw)


def _pins(tmp_path) -> dict[str, str]:
    expected = tmp_path / "expected"
    expected.mkdir()
    for i in range(3):
        (expected / f"clip_{i}.wav").write_bytes(bytes([i]) * 5000)
    archive = tmp_path / "a.zip"
    archive.write_bytes(ARCHIVE)
    return {"files_sha256": tree_digest(expected, (".wav",)), "archive_sha256": sha256_file(archive)}


@pytest.fixture(autouse=True)
def no_shared_data(monkeypatch, tmp_path):
    monkeypatch.delenv("AUDIODIFF_DATA", raising=False)
    monkeypatch.setattr("audiodiff.data.download.SHARED_DATA", tmp_path / "no-shared")


def test_good_archive_is_unpacked_and_checked(server, tmp_path):
    target = tmp_path / "data" / "sounds"
    got = ensure("sounds", target, _source(f"{server}/data.zip", **_pins(tmp_path)), progress=False)
    assert got == target and sorted(p.name for p in target.iterdir()) == ["clip_0.wav", "clip_1.wav", "clip_2.wav"]
    assert not (tmp_path / "data" / ".downloads" / "data.zip").exists()
    assert ensure("sounds", target, _source(f"{server}/nothing-here.zip"), progress=False) == target  # present: no fetch


def test_shared_folder_or_env_is_used_first(server, tmp_path, monkeypatch):
    env = tmp_path / "env"
    (env / "sounds").mkdir(parents=True)
    (env / "sounds" / "x.wav").write_bytes(b"x")
    monkeypatch.setenv("AUDIODIFF_DATA", str(env))
    assert ensure("sounds", tmp_path / "elsewhere", _source(f"{server}/missing.zip")) == env / "sounds"


def test_wrong_checksum_is_an_error_and_keeps_nothing(server, tmp_path):
    target = tmp_path / "data" / "sounds"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        ensure("sounds", target, _source(f"{server}/data.zip", archive_sha256="sha256:" + "0" * 64), progress=False)
    with pytest.raises(DownloadError, match="do not match the pinned checksum"):
        ensure("sounds", target, _source(f"{server}/data.zip", files_sha256="sha256:" + "0" * 64), progress=False)
    assert not target.exists()
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".sounds")]


def test_cut_download_resumes_with_range(server, tmp_path):
    dest = tmp_path / "dl" / "cut.zip"
    with pytest.raises(DownloadError, match="run again to resume"):
        download(f"{server}/cut.zip", dest, progress=False)
    part = dest.with_name("cut.zip.part")
    assert 0 < part.stat().st_size < len(ARCHIVE)
    download(f"{server}/cut.zip", dest, _pins(tmp_path)["archive_sha256"], progress=False)
    assert dest.read_bytes() == ARCHIVE and not part.exists()
    assert Handler.ranges and Handler.ranges[-1].startswith("bytes=")


def test_404_is_one_line_naming_where_to_put_files(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        ensure("sounds", tmp_path / "data" / "sounds", _source(f"{server}/missing.zip"), progress=False)
    message = str(info.value)
    assert "HTTP 404" in message and "by hand" in message and "\n" not in message


def test_offline_is_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AudiodiffError) as info:
        ensure("sounds", tmp_path / "data" / "sounds", _source(f"http://127.0.0.1:{port}/data.zip"), progress=False)
    assert "offline?" in str(info.value) and "by hand" in str(info.value)


def test_pins_match_the_shared_copies(shared_data):
    from audiodiff.data.download import SOURCES

    source = SOURCES["salamander"]
    assert tree_digest(Path(shared_data) / "salamander", source.suffixes) == source.files_sha256


def test_recipes_use_the_downloader_for_public_layouts(tmp_path, monkeypatch):
    import sys

    from conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "recipes"))
    sys.modules.pop("_common", None)
    from _common import public_data

    env = tmp_path / "env"
    (env / "fsdd").mkdir(parents=True)
    (env / "fsdd" / "0_george_0.wav").write_bytes(b"x")
    monkeypatch.setenv("AUDIODIFF_DATA", str(env))
    assert public_data("fsdd", tmp_path / "missing") == env / "fsdd"
    assert public_data("folder_per_label", tmp_path / "mine") == tmp_path / "mine"
