"""Dataset manifests: one JSONL format for every dataset.

A manifest is a text file with one JSON object per line::

    {"path": "wavs/LJ001-0001.wav", "duration": 9.66, "sample_rate": 22050,
     "caption": "printing, in the only sense ...", "label": null, "split": "train"}

``path`` is absolute or relative to the manifest file's folder; :func:`read_manifest` resolves it
to an absolute path.  ``split`` is one of ``"train"``, ``"valid"``, ``"test"``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..checkpoint import atomic_write_bytes
from ..errors import ConfigError, first_line

SPLITS: tuple[str, ...] = ("train", "valid", "test")
REQUIRED_KEYS: tuple[str, ...] = ("path", "duration", "sample_rate", "caption", "label", "split")


@dataclass(frozen=True)
class ManifestItem:
    """One audio clip of a dataset.

    Attributes:
        path: the audio file (absolute after :func:`read_manifest` and the ``prepare_*`` functions).
        duration: length in seconds, as the file's header reports it.
        sample_rate: the file's own sample rate in Hz.
        caption: free text describing the clip, or ``None``.
        label: a class name, or ``None``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
    """

    path: str
    duration: float
    sample_rate: int
    caption: str | None = None
    label: str | None = None
    split: str = "train"

    def __post_init__(self) -> None:
        check_split(self.split)
        if not self.duration >= 0:  # also rejects NaN
            raise ConfigError(f"manifest item {self.path}: duration must be >= 0, got {self.duration}")
        if self.sample_rate <= 0:
            raise ConfigError(f"manifest item {self.path}: sample_rate must be > 0, got {self.sample_rate}")


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise :class:`ConfigError`."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split


def write_manifest(items: Iterable[ManifestItem], path: str | os.PathLike, relative: bool = True) -> Path:
    """Write ``items`` as JSONL to ``path`` atomically (temp file, fsync, ``os.replace``).

    Args:
        items: the clips to write.
        path: the manifest file; its folder is created if needed.
        relative: store paths of files under the manifest's folder relative to it, so the folder
            can be moved as a whole; other paths are stored absolute.

    Returns:
        The manifest path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.absolute()
    lines = [json.dumps(_item_to_record(item, folder if relative else None), ensure_ascii=False) for item in items]
    return atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))


def _item_to_record(item: ManifestItem, folder: Path | None) -> dict:
    """A JSON-ready dict of ``item``; its path is made relative to ``folder`` when inside it."""
    record = asdict(item)
    if folder is not None:
        file = Path(item.path).absolute()
        if file.is_relative_to(folder):
            record["path"] = file.relative_to(folder).as_posix()
    return record


def read_manifest(path: str | os.PathLike, split: str | None = None) -> list[ManifestItem]:
    """Read a JSONL manifest; relative paths are resolved against the manifest's folder.

    Args:
        path: the manifest file.
        split: keep only items of this split (``None``: all).

    Returns:
        The items in file order.

    Raises:
        ConfigError: the file is missing, a line is not valid JSON, or an item lacks a key or has a
            bad value; the message names the file and line.
    """
    path = Path(path)
    if split is not None:
        check_split(split)
    if not path.is_file():
        raise ConfigError(f"manifest not found: {path}")
    folder = path.parent.absolute()
    items = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                items.append(_parse_line(line, folder, f"{path}:{number}"))
    return [item for item in items if split is None or item.split == split]


def _parse_line(line: str, folder: Path, where: str) -> ManifestItem:
    """Parse one manifest line; ``where`` (``file:line``) prefixes every error."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: bad JSON in manifest ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: manifest line must be a JSON object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ConfigError(f"{where}: manifest item lacks key(s) {', '.join(missing)}")
    try:
        return ManifestItem(
            path=str(folder / record["path"]),  # an absolute record["path"] wins over folder
            duration=float(record["duration"]),
            sample_rate=int(record["sample_rate"]),
            caption=_optional_str(record["caption"]),
            label=_optional_str(record["label"]),
            split=str(record["split"]),
        )
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError too
        raise ConfigError(f"{where}: bad manifest item: {first_line(exc)}") from None


def _optional_str(value: object) -> str | None:
    """``None`` stays ``None``; anything else becomes ``str``."""
    return None if value is None else str(value)


def hash_split(key: str, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """Deterministic split of ``key`` by its SHA-1 hash.

    The first 32 bits of ``sha1(key)`` give a number ``u`` in [0, 1): ``u < valid_fraction`` is
    ``"valid"``, ``u < valid_fraction + test_fraction`` is ``"test"``, the rest ``"train"``.
    """
    if valid_fraction < 0 or test_fraction < 0 or valid_fraction + test_fraction > 1:
        raise ConfigError(f"bad split fractions valid={valid_fraction}, test={test_fraction}")
    u = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 2**32
    if u < valid_fraction:
        return "valid"
    if u < valid_fraction + test_fraction:
        return "test"
    return "train"
