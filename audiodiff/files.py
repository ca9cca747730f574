"""Writing files so that nothing is lost: atomically, never through a symlink, never over an
existing file unless asked.

Every file the library writes (WAVs, JSON sidecars, PNGs, likelihood results, reports, manifests,
checkpoints, model folders) goes through :func:`atomic_write_bytes`: the bytes go to a temporary
file in the destination folder (created with ``O_EXCL``, so no planted link is followed), which is
``fsync``-ed and then renamed into place (``os.replace``), or, when replacing is not allowed, hard
linked into place, which fails if the name exists (no check-then-write race).  A crash or a full
disk leaves the old file whole and no partial file under the final name.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError, OutputError, OutputExistsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | os.PathLike) -> None:
    """``fsync`` a folder so a rename inside it is durable (best effort: not every OS allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_target(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path`` if a file may be written there: not a symlink, and new unless ``overwrite``."""
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"refusing to write {path}: it is a symbolic link")
    if path.exists() and (not overwrite or path.is_dir()):
        what = "a folder" if path.is_dir() else "an existing file"
        raise OutputExistsError(f"{path} is {what}; not replacing it (pass --overwrite / overwrite=True to replace files)")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename; then fsync the folder).

    Raises:
        OutputExistsError: ``path`` exists and not ``overwrite`` (or it is a folder).
        OutputError: ``path`` is a symlink, or the write failed (no space, no permission, ...);
            the old file, if any, is untouched and no temporary file is left.
    """
    path = check_target(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, path, overwrite)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def _commit(tmp: str, path: Path, overwrite: bool) -> None:
    """Move the finished temporary file to ``path`` (replacing only with ``overwrite``)."""
    if overwrite:
        os.replace(tmp, path)  # replaces a name, never writes through it
        return
    try:
        os.link(tmp, path)  # atomic create-if-absent
    except FileExistsError:
        raise OutputExistsError(f"{path} appeared while writing it; not replacing it") from None
    except OSError as exc:  # no hard links here (some network or FAT file systems)
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        check_target(path, overwrite=False)
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def describe_os_error(exc: OSError) -> str:
    """A short reason for a failed write (``no space left on device``, ``permission denied``, ...)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return (exc.strerror or str(exc) or type(exc).__name__).lower().splitlines()[0]


def finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or inf float (at any depth) replaced by ``None``, for JSON that must stay
    valid when a measurement is undefined (a log line, a report): ``null``, never ``NaN``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def json_line(record: Mapping[str, Any]) -> str:
    """One line of JSONL; undefined numbers as ``null`` (:func:`finite_or_null`)."""
    return json.dumps(finite_or_null(record), allow_nan=False) + "\n"


def json_bytes(value: Any) -> bytes:
    """Strict JSON (sorted keys, indented): NaN or inf is an error, never written as invalid JSON."""
    try:
        return (json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    except ValueError as exc:
        raise OutputError(f"refusing to write JSON with a non-finite number: {exc}") from None


def write_json(path: str | os.PathLike, value: Any, overwrite: bool = True) -> Path:
    """Atomically write ``value`` as strict JSON (see :func:`json_bytes`)."""
    return atomic_write_bytes(path, json_bytes(value), overwrite)


def check_out_dir(out: str | os.PathLike) -> Path:
    """Create ``out`` if needed and make sure files can be written there."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".audiodiff-write-test-", dir=out)  # O_EXCL: follows no planted link
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {out}: {exc.strerror or exc}") from None
    return out
