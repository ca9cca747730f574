"""One entry point for "your own sounds": a folder of audio, a caption table, or a manifest -> manifest items.

- a folder: audio files (WAV, FLAC, OGG, MP3) directly in it are unlabelled; each subfolder's files are
  labelled with the subfolder's name (caption: the name with ``_`` as spaces);
- a ``.csv`` / ``.tsv`` / ``.jsonl`` caption table (``path,caption[,label][,split]``; paths relative to
  the table): :func:`~audiodiff.data.prepare_caption_table`;
- a ``.jsonl`` manifest (every line has ``path, duration, sample_rate, caption, label, split``):
  :func:`~audiodiff.data.read_manifest`.

Splits of a folder are :func:`~audiodiff.data.hash_split` of each file's relative path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError
from .manifest import REQUIRED_KEYS, ManifestItem, read_manifest
from .prepare import AUDIO_EXTENSIONS, _items, _words, hash_split, _Entry, prepare_caption_table

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


def read_data(path: str | os.PathLike, valid_fraction: float = 0.0, test_fraction: float = 0.1) -> list[ManifestItem]:
    """The clips of a folder, caption table or manifest (see the module docstring); an empty source is an error."""
    path = Path(path).expanduser()
    if path.is_dir():
        items = read_folder(path, valid_fraction, test_fraction)
    elif path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        items = read_manifest(path) if _is_manifest(path) else prepare_caption_table(path)
    elif path.exists():
        raise ConfigError(f"--data {path}: expected a folder of audio, a .csv/.tsv/.jsonl caption table or a manifest")
    else:
        raise ConfigError(f"--data {path} does not exist")
    if not items:
        raise ConfigError(f"no audio files found in {path} (looked for {', '.join(AUDIO_EXTENSIONS)})")
    return items


def read_folder(root: Path, valid_fraction: float = 0.0, test_fraction: float = 0.1) -> list[ManifestItem]:
    """Audio directly in ``root`` (unlabelled) and in its subfolders (labelled by the subfolder), at any depth
    below it (the label is the first folder level); hidden and ``_``-prefixed folders are skipped."""
    entries = []
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root)
        if not file.is_file() or file.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        if any(part[:1] in "._" for part in relative.parts[:-1]):
            continue
        label = relative.parts[0] if len(relative.parts) > 1 else None
        split = hash_split(relative.as_posix(), valid_fraction, test_fraction)
        entries.append(_Entry(file.absolute(), _words(label) if label else None, label, split))
    return _items(entries, "folder")


def _is_manifest(path: Path) -> bool:
    """True when the first non-blank line of a ``.jsonl`` holds every manifest key."""
    if path.suffix.lower() != ".jsonl":
        return False
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(record, dict) and all(k in record for k in REQUIRED_KEYS)
    return False


def describe(items: list[ManifestItem]) -> str:
    """``"40 clips, 2 labels (dog, cat), 8000-44100 Hz, 0.4-3.1 s"`` for a message."""
    labels = sorted({i.label for i in items if i.label})
    captions = {i.caption for i in items if i.caption}
    rates = sorted({i.sample_rate for i in items})
    durations = sorted(i.duration for i in items)
    what = f"{len(labels)} labels ({', '.join(labels[:8])}{', ...' if len(labels) > 8 else ''})" if labels else \
        f"{len(captions)} captions" if captions else "no labels or captions"
    rate = f"{rates[0]} Hz" if len(rates) == 1 else f"{rates[0]}-{rates[-1]} Hz"
    return f"{len(items)} clips, {what}, {rate}, {durations[0]:.2f}-{durations[-1]:.2f} s"
