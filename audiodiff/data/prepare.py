"""Build manifests from the folder layouts real audio datasets ship in.

Each ``prepare_<layout>(root, ...)`` walks one layout and returns ``list[ManifestItem]`` with
absolute paths, durations and sample rates read from the file headers with ``soundfile.info``
(no decoding; MP3 too).  Files that soundfile cannot open are left out with one summary warning;
:class:`audiodiff.data.AudioDataset` does the deeper checks (truncated, too short) when it scans.

Splits are deterministic: either the dataset's official split, or :func:`hash_split`, which
puts a key in a split by its SHA-1 hash (stable across machines and Python runs, unlike the
salted builtin ``hash``), as the Speech Commands README does (Warden, 2018, arXiv:1804.03209).

Layouts (:func:`prepare` dispatches by these names): ``folder_per_label`` (aliases
``speech_commands``, ``sc09``), ``fsdd``, ``caption_table``, ``ljspeech``, ``nsynth``, ``esc50``,
``berklee``, ``salamander``, ``gm_notes`` (:mod:`.render`), ``debian_sfx`` (:mod:`.debian_sfx`).
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import soundfile as sf

from ..errors import ConfigError
from .manifest import ManifestItem, check_split, hash_split
from .notes import midi_to_note_name, note_name_to_midi

log = logging.getLogger(__name__)

#: FSDD names its files by digit; its labels are the words Speech Commands names its folders by
_DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")
SPLIT_ALIASES: dict[str, str] = {
    "train": "train", "training": "train", "development": "train",
    "valid": "valid", "val": "valid", "validation": "valid",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}  # fmt: skip


class _Entry(NamedTuple):
    """A clip found by a layout walker, before its header is read."""

    path: Path
    caption: str | None
    label: str | None
    split: str


# ---------------------------------------------------------------------------------------------
# shared helpers


def _words(name: str) -> str:
    """``"synth_lead" -> "synth lead"``: underscores to spaces, runs of spaces squeezed."""
    return " ".join(name.replace("_", " ").split())


def _article(word: str) -> str:
    """``"a"`` or ``"an"`` for ``word`` (by its first letter)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def _require_dir(root: str | os.PathLike, layout: str) -> Path:
    """``root`` as an absolute ``Path``; :class:`ConfigError` if it is not a folder."""
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        raise ConfigError(f"{layout}: dataset folder not found: {path}")
    return path


def _require_file(path: Path, layout: str) -> Path:
    """``path`` if it is a file; :class:`ConfigError` naming ``layout`` otherwise."""
    if not path.is_file():
        raise ConfigError(f"{layout}: expected file not found: {path}")
    return path


def _read_csv(path: Path, layout: str, required: Iterable[str] = (), delimiter: str = ",") -> list[dict[str, str]]:
    """Rows of a CSV with a header (BOM tolerated); :class:`ConfigError` if a column is missing."""
    with _require_file(path, layout).open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in columns]
        if missing:
            raise ConfigError(f"{layout}: {path} lacks column(s) {', '.join(missing)} (has {', '.join(columns)})")
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def _items(entries: Iterable[_Entry], layout: str) -> list[ManifestItem]:
    """Read each file's header once with ``soundfile.info``; unreadable files are left out and warned about once."""
    headers: dict[Path, tuple[float, int] | None] = {}
    items, bad = [], []
    for entry in entries:
        if entry.path not in headers:
            headers[entry.path] = _header(entry.path)
            if headers[entry.path] is None:
                bad.append(entry.path)
        if headers[entry.path] is not None:
            duration, sample_rate = headers[entry.path]
            items.append(ManifestItem(str(entry.path), duration, sample_rate, entry.caption, entry.label, entry.split))
    if bad:
        log.warning("%s: left out %d file(s) soundfile cannot open (first: %s)", layout, len(bad), bad[0])
    if not items:
        raise ConfigError(f"{layout}: found no readable audio" + (f" ({len(bad)} unreadable)" if bad else ""))
    return items


def _header(path: Path) -> tuple[float, int] | None:
    """``(duration seconds, sample rate)`` from the file header, or ``None`` if soundfile cannot open it."""
    try:
        info = sf.info(str(path))
    except Exception:  # LibsndfileError, RuntimeError, OSError (missing file)
        return None
    return float(info.frames) / info.samplerate, int(info.samplerate)


def _audio_files(folder: Path, extensions: Iterable[str]) -> list[Path]:
    """Files directly in ``folder`` whose suffix (lowercase) is in ``extensions``, sorted by name."""
    suffixes = {e.lower() for e in extensions}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


# ---------------------------------------------------------------------------------------------
# Speech Commands / SC09: root/<label>/*.wav


def prepare_folder_per_label(
    root: str | os.PathLike,
    extensions: tuple[str, ...] = (".wav",),
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> list[ManifestItem]:
    """One folder per label (Speech Commands, SC09): ``root/<label>/*.wav``.

    Folders whose name starts with ``_`` or ``.`` (``_background_noise_``) are skipped.  Label is the
    folder name; caption is the label with underscores as spaces.  Split: when ``root`` has Speech
    Commands' ``validation_list.txt`` / ``testing_list.txt`` (paths like ``yes/abc_nohash_0.wav``),
    those decide; otherwise :func:`hash_split` (80/10/10 by default) of the relative path, or, for
    Speech Commands names ``<speaker>_nohash_<n>.wav``, of the speaker so that one speaker's clips
    share a split.
    """
    root = _require_dir(root, "folder_per_label")
    lists = _speech_commands_lists(root)
    entries = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name[:1] not in "_."):
        for path in _audio_files(folder, extensions):
            relative = path.relative_to(root).as_posix()
            split = lists.get(relative, "train") if lists else _folder_split(relative, valid_fraction, test_fraction)
            entries.append(_Entry(path, _words(folder.name), folder.name, split))
    return _items(entries, "folder_per_label")


def _speech_commands_lists(root: Path) -> dict[str, str]:
    """``{relative path: split}`` from ``validation_list.txt`` / ``testing_list.txt`` (empty if absent)."""
    splits = {}
    for name, split in (("validation_list.txt", "valid"), ("testing_list.txt", "test")):
        listing = root / name
        if listing.is_file():
            lines = listing.read_text(encoding="utf-8").splitlines()
            splits.update({line.strip(): split for line in lines if line.strip()})
    return splits


def _folder_split(relative: str, valid_fraction: float, test_fraction: float) -> str:
    """Hash split keyed by the speaker for ``*_nohash_*`` names, else by the relative path."""
    name = relative.rsplit("/", 1)[-1]
    key = name.split("_nohash_")[0] if "_nohash_" in name else relative
    return hash_split(key, valid_fraction, test_fraction)


# ---------------------------------------------------------------------------------------------
# Free Spoken Digit Dataset

_FSDD_NAME = re.compile(r"^(\d)_(.+)_(\d+)\.wav$", re.IGNORECASE)


def prepare_fsdd(root: str | os.PathLike, valid_from_train: bool = False) -> list[ManifestItem]:
    """Free Spoken Digit Dataset: ``root/recordings/{digit}_{speaker}_{take}.wav`` (or the files in ``root``).

    Label and caption are the digit as a word (``"zero"`` .. ``"nine"``).  Official split: takes 0-4
    are ``"test"``, takes 5-49 ``"train"``.  With ``valid_from_train``, takes 5-9 become ``"valid"``
    (takes 10-49 stay ``"train"``).  Files not named by the pattern are skipped with a warning.
    """
    root = _require_dir(root, "fsdd")
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    entries, odd = [], []
    for path in _audio_files(folder, (".wav",)):
        match = _FSDD_NAME.match(path.name)
        if match is None:
            odd.append(path.name)
            continue
        word = _DIGIT_WORDS[int(match.group(1))]
        entries.append(_Entry(path, word, word, _fsdd_split(int(match.group(3)), valid_from_train)))
    if odd:
        log.warning("fsdd: skipped %d file(s) not named {digit}_{speaker}_{take}.wav (first: %s)", len(odd), odd[0])
    return _items(entries, "fsdd")


def _fsdd_split(take: int, valid_from_train: bool) -> str:
    """Takes 0-4 test; 5-9 valid if ``valid_from_train``; the rest train."""
    if take < 5:
        return "test"
    return "valid" if valid_from_train and take < 10 else "train"


# ---------------------------------------------------------------------------------------------
# caption tables (AudioCaps / Clotho style)

_FILE_COLUMNS: tuple[str, ...] = ("path", "file_name", "filename")
_NUMBERED_CAPTION = re.compile(r"^caption_(\d+)$")


def prepare_caption_table(
    path: str | os.PathLike,
    audio_dir: str | os.PathLike | None = None,
    default_split: str = "train",
) -> list[ManifestItem]:
    """A caption table (CSV, TSV or JSONL), AudioCaps / Clotho style.

    Columns: a file column (``path``, ``file_name`` or ``filename``), a caption column
    (``caption``, and/or ``caption_1`` .. ``caption_N`` as in Clotho, giving one item per non-empty
    caption), optional ``label`` and optional ``split`` (``train``/``valid``/``test`` and the aliases
    ``training``, ``development`` (Clotho) -> train, ``val``, ``validation`` -> valid, ``testing``,
    ``eval``, ``evaluation`` -> test).  Audio paths are relative to ``audio_dir`` (default: the
    table's folder) unless absolute.  Rows without a split get ``default_split``.
    """
    table = _require_file(Path(path).expanduser().absolute(), "caption_table")
    folder = Path(audio_dir).expanduser().absolute() if audio_dir is not None else table.parent
    check_split(default_split)
    rows = _read_table(table)
    file_column, caption_columns = _caption_table_columns(table, rows)
    entries = []
    for number, row in enumerate(rows, start=1):
        split = _row_split(row, default_split, f"{table} row {number}")
        audio = folder / str(row[file_column]).strip()
        label = _blank_to_none(row.get("label"))
        for column in caption_columns:
            caption = _blank_to_none(row.get(column))
            if caption is not None:
                entries.append(_Entry(audio, caption, label, split))
    return _items(entries, "caption_table")


def _read_table(table: Path) -> list[dict]:
    """Rows of a ``.jsonl`` (one object a line) or ``.csv`` / ``.tsv`` table."""
    if table.suffix.lower() != ".jsonl":
        return _read_csv(table, "caption_table", delimiter="\t" if table.suffix.lower() == ".tsv" else ",")
    rows = []
    for number, line in enumerate(table.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{table}:{number}: bad JSON ({exc.msg})") from None
            if not isinstance(rows[-1], dict):
                raise ConfigError(f"{table}:{number}: expected a JSON object per line")
    return rows


def _caption_table_columns(table: Path, rows: list[dict]) -> tuple[str, list[str]]:
    """The file column and the caption columns (``caption`` first, then ``caption_1`` .. by number)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    file_columns = [c for c in _FILE_COLUMNS if c in columns]
    if not file_columns:
        expected = ", ".join(_FILE_COLUMNS)
        raise ConfigError(f"caption_table: {table} has no file column ({expected}); has {', '.join(columns)}")
    numbered = sorted((c for c in columns if _NUMBERED_CAPTION.match(c)), key=lambda c: int(c.split("_")[1]))
    captions = (["caption"] if "caption" in columns else []) + numbered
    if not captions:
        found = ", ".join(columns)
        raise ConfigError(f"caption_table: {table} has no caption column (caption, caption_1, ...); has {found}")
    return file_columns[0], captions


def _row_split(row: dict, default: str, where: str) -> str:
    """The row's split (aliases mapped), ``default`` when the row has none."""
    value = _blank_to_none(row.get("split"))
    if value is None:
        return default
    split = SPLIT_ALIASES.get(value.lower())
    if split is None:
        raise ConfigError(f"{where}: unknown split {value!r}; valid: {', '.join(sorted(SPLIT_ALIASES))}")
    return split


def _blank_to_none(value: object) -> str | None:
    """``None`` and blank strings become ``None``; other values their stripped ``str``."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# ---------------------------------------------------------------------------------------------
# LJSpeech


def prepare_ljspeech(
    root: str | os.PathLike,
    valid_fraction: float = 0.01,
    test_fraction: float = 0.01,
) -> list[ManifestItem]:
    """LJSpeech: ``root/metadata.csv`` (``id|text|normalized_text``, no header), audio ``root/wavs/<id>.wav``.

    Caption is the normalized text (the raw text where that is empty); no label.  LJSpeech has no
    official split: :func:`hash_split` of the id, 98/1/1 by default.
    """
    root = _require_dir(root, "ljspeech")
    metadata = _require_file(root / "metadata.csv", "ljspeech")
    entries = []
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2:
            raise ConfigError(f"{metadata}:{number}: expected id|text|normalized_text, got {line[:60]!r}")
        clip_id = fields[0].strip()
        caption = (fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]).strip()
        split = hash_split(clip_id, valid_fraction, test_fraction)
        entries.append(_Entry(root / "wavs" / f"{clip_id}.wav", caption, None, split))
    return _items(entries, "ljspeech")


# ---------------------------------------------------------------------------------------------
# NSynth

_NSYNTH_FOLDERS = {"nsynth-train": "train", "nsynth-valid": "valid", "nsynth-test": "test"}


def prepare_nsynth(
    root: str | os.PathLike,
    split: str | None = None,
    describe_velocity: bool = False,
) -> list[ManifestItem]:
    """NSynth: ``root/examples.json`` and audio ``root/audio/<note_str>.wav``.

    ``examples.json`` maps note_str -> {pitch, velocity, instrument_family_str, ...}.  Label is
    ``instrument_family_str``; caption e.g. ``"a bass playing C3"`` (note name from the MIDI pitch,
    :func:`midi_to_note_name`), with ``describe_velocity`` ``"... softly"`` for velocity <= 50 and
    ``"... loudly"`` for >= 100.  Split: ``split`` if given, else from the folder name
    (``nsynth-train`` / ``nsynth-valid`` / ``nsynth-test``).
    """
    root = _require_dir(root, "nsynth")
    split = check_split(split) if split is not None else _NSYNTH_FOLDERS.get(root.name)
    if split is None:
        raise ConfigError(f"nsynth: cannot tell the split of {root}; name it nsynth-train/valid/test or pass split=")
    examples_path = _require_file(root / "examples.json", "nsynth")
    try:
        examples = json.loads(examples_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"nsynth: bad JSON in {examples_path} ({exc.msg} at line {exc.lineno})") from None
    entries = [_nsynth_entry(root, note, meta, split, describe_velocity) for note, meta in sorted(examples.items())]
    return _items(entries, "nsynth")


def _nsynth_entry(root: Path, note: str, meta: dict, split: str, describe_velocity: bool) -> _Entry:
    """One NSynth example as an entry with its caption."""
    try:
        family, pitch, velocity = meta["instrument_family_str"], int(meta["pitch"]), int(meta["velocity"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"nsynth: example {note!r} lacks or has a bad {exc}") from None
    instrument = _words(family)
    caption = f"{_article(instrument)} {instrument} playing {midi_to_note_name(pitch)}"
    if describe_velocity and velocity <= 50:
        caption += " softly"
    elif describe_velocity and velocity >= 100:
        caption += " loudly"
    return _Entry(root / "audio" / f"{note}.wav", caption, family, split)


# ---------------------------------------------------------------------------------------------
# ESC-50


def prepare_esc50(root: str | os.PathLike, valid_fold: int = 4, test_fold: int = 5) -> list[ManifestItem]:
    """ESC-50: ``root/meta/esc50.csv`` (filename, fold, target, category, ...), audio in ``root/audio/``.

    Label is ``category``; caption the category with underscores as spaces (``"crying baby"``).
    Split by fold: fold 5 test, fold 4 valid, folds 1-3 train (the folds are the dataset's own
    cross-validation folds, so clips from one source recording never straddle splits).
    """
    root = _require_dir(root, "esc50")
    rows = _read_csv(root / "meta" / "esc50.csv", "esc50", required=("filename", "fold", "category"))
    entries = []
    for row in rows:
        fold = int(row["fold"])
        split = "test" if fold == test_fold else "valid" if fold == valid_fold else "train"
        entries.append(_Entry(root / "audio" / row["filename"], _words(row["category"]), row["category"], split))
    return _items(entries, "esc50")


# ---------------------------------------------------------------------------------------------
# the folders in shared/data: OLPC Berklee sound library and Salamander grand piano


def prepare_berklee(
    root: str | os.PathLike,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    stratify: bool = False,
) -> list[ManifestItem]:
    """OLPC Berklee clips: ``root/metadata.csv`` (columns ``path``, ``name``), MP3 files in ``root``.

    Label is ``name`` (the file name without its take number); caption the name with underscores
    as spaces.  Without ``metadata.csv`` the audio files in ``root`` are used and the name is the
    lowercased stem with a trailing take number removed.  Split: :func:`hash_split` of the file's
    path relative to ``root``, 90/5/5 by default.  With ``stratify``, every name with at least 3
    clips puts one of them in ``"test"`` and, with 4 or more, another in ``"valid"`` (the clips
    with the lowest hashes), keeping the rest in ``"train"``; names with fewer clips are split by
    hash as before.  Then every common caption is both trained on and held out (what a judge of
    captions and caption retrieval need).
    """
    root = _require_dir(root, "berklee")
    pairs = _berklee_names(root)
    held_out = _held_out_per_name(pairs) if stratify else {}
    entries = []
    for relative, name in pairs:
        split = held_out.get(relative) or hash_split(relative, valid_fraction, test_fraction)
        entries.append(_Entry(root / relative, _words(name), name, split))
    return _items(entries, "berklee")


def _held_out_per_name(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """``{relative path: split}`` for names with >= 3 clips: lowest hash test, next valid (>= 4 clips), rest train."""
    by_name: dict[str, list[str]] = {}
    for relative, name in pairs:
        by_name.setdefault(name, []).append(relative)
    splits = {}
    for paths in by_name.values():
        if len(paths) < 3:
            continue
        ranked = sorted(paths, key=lambda rel: hashlib.sha1(rel.encode("utf-8")).hexdigest())
        order = ["test", "valid"] if len(paths) >= 4 else ["test"]
        for rank, relative in enumerate(ranked):
            splits[relative] = order[rank] if rank < len(order) else "train"
    return splits


def _berklee_names(root: Path) -> list[tuple[str, str]]:
    """``(relative path, name)`` pairs from ``metadata.csv``, or from the file names."""
    metadata = root / "metadata.csv"
    if metadata.is_file():
        return [(row["path"], row["name"]) for row in _read_csv(metadata, "berklee", required=("path", "name"))]
    files = _audio_files(root, AUDIO_EXTENSIONS)
    return [(p.name, re.sub(r"[_\s-]*\d+$", "", p.stem).lower() or p.stem.lower()) for p in files]


def prepare_salamander(root: str | os.PathLike) -> list[ManifestItem]:
    """Salamander Grand Piano notes: ``root/metadata.csv`` (``path``, ``midi_pitch``) or files named like ``Ds4.ogg``.

    Label is the note name with sharps (``"D#4"``, :func:`midi_to_note_name`); caption
    ``"a piano playing D#4"``.  Split, deterministic by pitch: notes sorted by pitch, every tenth
    from the fifth (ranks 4, 14, 24, ...) is ``"valid"`` and every tenth from the tenth (ranks
    9, 19, 29, ...) ``"test"``; the rest ``"train"`` (24/3/3 for the 30 notes here).
    """
    root = _require_dir(root, "salamander")
    notes = sorted(_salamander_pitches(root), key=lambda pair: (pair[1], pair[0]))
    entries = []
    for rank, (relative, pitch) in enumerate(notes):
        name = midi_to_note_name(pitch)
        split = "valid" if rank % 10 == 4 else "test" if rank % 10 == 9 else "train"
        entries.append(_Entry(root / relative, f"a piano playing {name}", name, split))
    return _items(entries, "salamander")


def _salamander_pitches(root: Path) -> list[tuple[str, int]]:
    """``(relative path, MIDI pitch)`` from ``metadata.csv``, or parsed from names like ``Ds4``."""
    metadata = root / "metadata.csv"
    if metadata.is_file():
        rows = _read_csv(metadata, "salamander", required=("path", "midi_pitch"))
        return [(row["path"], int(row["midi_pitch"])) for row in rows]
    pairs = []
    for path in _audio_files(root, AUDIO_EXTENSIONS):
        pitch = note_name_to_midi(path.stem)
        if pitch is None:
            log.warning("salamander: skipped %s (not named like a note, e.g. C4, Ds4)", path.name)
        else:
            pairs.append((path.name, pitch))
    return pairs


# ---------------------------------------------------------------------------------------------
# dispatch

LAYOUTS: dict[str, Callable[..., list[ManifestItem]]] = {
    "folder_per_label": prepare_folder_per_label,
    "speech_commands": prepare_folder_per_label,
    "sc09": prepare_folder_per_label,
    "fsdd": prepare_fsdd,
    "caption_table": prepare_caption_table,
    "ljspeech": prepare_ljspeech,
    "nsynth": prepare_nsynth,
    "esc50": prepare_esc50,
    "berklee": prepare_berklee,
    "salamander": prepare_salamander,
}


def prepare(layout: str, root: str | os.PathLike, **kwargs: object) -> list[ManifestItem]:
    """Run ``prepare_<layout>(root, **kwargs)``; ``layout`` is a key of :data:`LAYOUTS` (``-`` works for ``_``).

    Raises:
        ConfigError: unknown layout (the message lists the valid ones) or keyword.
    """
    name = layout.strip().lower().replace("-", "_")
    if name not in LAYOUTS:
        raise ConfigError(f"unknown dataset layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    function = LAYOUTS[name]
    try:
        inspect.signature(function).bind(root, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"prepare {name}: {exc}") from None
    return function(root, **kwargs)


# rendered notes live in their own module (FluidSynth is imported only when rendering)
from .render import prepare_gm_notes  # noqa: E402

LAYOUTS["gm_notes"] = prepare_gm_notes

# sound effects of Debian packages live in their own module (it fetches them with apt-get)
from .debian_sfx import prepare_debian_sfx  # noqa: E402

LAYOUTS["debian_sfx"] = prepare_debian_sfx
