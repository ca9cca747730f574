"""Fetching the public datasets the recipes train on, when they are not on disk yet.

:func:`ensure` returns the folder of a dataset (``fsdd``, ``salamander``, ``berklee``): the folder the
caller names if it holds files, else ``$AUDIODIFF_DATA/<name>``, else ``../shared/data/<name>`` beside
the repository; only if none holds it is the archive downloaded (into the folder named).  Downloads resume (HTTP ``Range``) from
the ``.part`` file a cut connection leaves, show a tqdm progress bar, and are checked against pinned
SHA-256 sums before anything is unpacked into place (atomically: a temporary folder renamed).  Offline,
or on any HTTP error, the error is one line saying where to put the files by hand.

Pins.  GitHub makes its archives on request and does not promise their bytes stay the same, so a
GitHub source pins the *content*: :func:`tree_digest` of the files kept (sorted relative paths and
their SHA-256 sums), computed from the copies in ``../shared/data`` (the files are the originals,
unchanged; ``metadata.csv`` there was added and is not part of the digest).  A source that serves a
fixed archive may also pin the archive's own SHA-256 (``archive_sha256``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import DownloadError, first_line

log = logging.getLogger(__name__)

DATA_ENV = "AUDIODIFF_DATA"
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    """A public dataset: where its archive is and what of it to keep.

    Attributes:
        name: the folder it lives in (``fsdd``).
        url: the archive (zip or tar).
        members: the folder inside the archive whose files are kept (after the top folder that GitHub
            archives have); ``""`` keeps everything.
        strip: the kept files go into the target without the ``members`` folder (else with it).
        suffixes: the file types kept.
        files_sha256: :func:`tree_digest` of the kept files (``None``: not checked).
        archive_sha256: SHA-256 of the archive itself (``None``: not checked).
        max_seconds: keep only audio of at most this length.
        licence: the licence and who to credit.
    """

    name: str
    url: str
    members: str = ""
    strip: bool = True
    suffixes: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")
    files_sha256: str | None = None
    archive_sha256: str | None = None
    max_seconds: float | None = None
    licence: str = ""


SOURCES: dict[str, Source] = {
    "fsdd": Source(
        "fsdd", "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/26eb9aaf.zip", "recordings/",
        strip=False, suffixes=(".wav",),
        files_sha256="sha256:41573f8091b2243d6a1da18bf17512821f62babab2ebddd4b26c4443bb9af76d",
        licence="CC BY-SA 4.0, Free Spoken Digit Dataset (Jakobovski et al.)"),
    "salamander": Source(
        "salamander", "https://github.com/Tonejs/audio/archive/efd82963.zip", "salamander/", suffixes=(".ogg",),
        files_sha256="sha256:e4c2e1ed4760e3b5538c120faee7163c4dedd369b4d7ee12f71580a447779a02",
        licence="CC BY 3.0, Salamander Grand Piano V2 (Alexander Holm), via Tone.js audio"),
    "berklee": Source(
        "berklee", "https://github.com/Tonejs/audio/archive/efd82963.zip", "berklee/", suffixes=(".mp3",),
        files_sha256="sha256:1708fdf62720f9ca93b12d7cb65fcd698dc5a07c80697c80c5dabbe7fa4ea378", max_seconds=6.0,
        licence="CC BY 3.0, OLPC Berklee Sound Library, via Tone.js audio"),
}


def sha256_file(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def tree_digest(folder: str | os.PathLike, suffixes: Iterable[str]) -> str:
    """``sha256:<hex>`` over the sorted ``relative/path sha256`` lines of the files under ``folder`` with these suffixes."""
    folder, suffixes = Path(folder), {s.lower() for s in suffixes}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    lines = "".join(f"{p.relative_to(folder).as_posix()} {sha256_file(p)}\n" for p in files)
    return f"sha256:{hashlib.sha256(lines.encode()).hexdigest()}"


def find(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The first folder holding dataset ``name``: ``root`` (the one asked for), ``$AUDIODIFF_DATA/name``, then
    ``../shared/data/name``."""
    candidates = [Path(root)] if root is not None else []
    candidates += ([Path(os.environ[DATA_ENV]) / name] if os.environ.get(DATA_ENV) else []) + [SHARED_DATA / name]
    return next((c for c in candidates if c.is_dir() and any(c.iterdir())), None)


def ensure(name: str, root: str | os.PathLike | None = None, source: Source | None = None,
           progress: bool = True) -> Path:
    """The folder of dataset ``name`` (see :func:`find`), downloading it into ``root`` (default
    ``$AUDIODIFF_DATA/name``, else ``data/name``) when no folder holds it."""
    source = source or SOURCES.get(name)
    if source is None:
        raise DownloadError(f"no public source known for dataset {name!r}; known: {', '.join(SOURCES)}")
    found = find(name, root)
    if found is not None:
        return found
    target = Path(root) if root is not None else Path(os.environ.get(DATA_ENV, "data")) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = target.parent / ".downloads" / Path(source.url).name
    log.info("downloading %s (%s) from %s", name, source.licence, source.url)
    try:
        download(source.url, archive, source.archive_sha256, progress)
    except DownloadError as exc:
        raise DownloadError(f"{exc}; or put the files of {name} in {target} (or ${DATA_ENV}/{name}) by hand") from None
    unpack(archive, source, target)
    archive.unlink()
    return target


def download(url: str, dest: Path, sha256: str | None = None, progress: bool = True, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part`` with an HTTP ``Range`` request; check ``sha256``.

    Raises:
        DownloadError: offline, an HTTP error, a cut connection (the ``.part`` file stays for the next
            call to resume), or a checksum that does not match (the file is removed).
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:  # the server ignored the range: start over
                have = 0
            total = _total(response, have)
            _stream(response, part, have, total, progress, url)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the part file is whole
            pass
        else:
            raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"cannot download {url} (offline? {first_line(reason)})") from None
    if sha256 is not None and sha256_file(part) != sha256:
        part.unlink()
        raise DownloadError(f"{url}: checksum mismatch (expected {sha256[:23]}...); the download was removed, try again")
    os.replace(part, dest)
    return dest


def _total(response, have: int) -> int | None:
    length = response.headers.get("Content-Length")
    return have + int(length) if length is not None else None


def _stream(response, part: Path, have: int, total: int | None, progress: bool, url: str) -> None:
    """Append the body to ``part`` (from ``have`` bytes); a body shorter than announced is a resumable error."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=Path(url).name, leave=False)
    written = have
    try:
        with open(part, "r+b" if have else "wb") as f:
            f.seek(have)
            f.truncate()
            while True:
                try:
                    block = response.read(CHUNK)
                except Exception as exc:  # IncompleteRead, reset connection
                    raise DownloadError(f"download of {url} stopped at {written} bytes ({type(exc).__name__}); "
                                        "run again to resume") from None
                if not block:
                    break
                f.write(block)
                written += len(block)
                if bar is not None:
                    bar.update(len(block))
            f.flush()
            os.fsync(f.fileno())
    finally:
        if bar is not None:
            bar.close()
    if total is not None and written < total:
        raise DownloadError(f"download of {url} stopped at {written} of {total} bytes; run again to resume")


def unpack(archive: Path, source: Source, target: Path) -> Path:
    """Unpack the kept files of ``archive`` into ``target`` via a temporary folder; check ``files_sha256``."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, read in _members(archive):
            relative = _kept(name, source)
            if relative is not None:
                path = tmp / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(read())
        if source.max_seconds is not None:
            _drop_long(tmp, source.max_seconds)
        if source.files_sha256 is not None:
            got = tree_digest(tmp, source.suffixes)
            if got != source.files_sha256:
                raise DownloadError(f"{source.name}: the unpacked files do not match the pinned checksum "
                                    f"({got[:23]}... vs {source.files_sha256[:23]}...)")
        if not any(tmp.rglob("*")):
            raise DownloadError(f"{source.name}: {archive.name} holds no {'/'.join(source.suffixes)} files under {source.members!r}")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _members(archive: Path):
    """``(name, read bytes)`` for each file in a zip or tar archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, lambda info=info: z.read(info)
        return
    try:
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                if member.isfile():
                    yield member.name, lambda member=member: t.extractfile(member).read()
    except tarfile.TarError as exc:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive: {exc}") from None


def _kept(name: str, source: Source) -> Path | None:
    """The path under the target of archive member ``name``, or ``None`` if it is not kept (or unsafe)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) < 2 or ".." in parts or name.startswith("/"):
        return None
    relative = "/".join(parts[1:])  # below the archive's top folder (GitHub: <repo>-<commit>/)
    if not relative.startswith(source.members) or Path(relative).suffix.lower() not in source.suffixes:
        return None
    return Path(relative[len(source.members):] if source.strip else relative)


def _drop_long(folder: Path, max_seconds: float) -> None:
    import soundfile as sf

    for path in folder.rglob("*"):
        if path.is_file():
            info = sf.info(str(path))
            if info.frames / info.samplerate > max_seconds:
                path.unlink()
