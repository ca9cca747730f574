"""Freely licensed sound effects from Debian packages: fetch them, caption them from their file names.

Layout ``debian_sfx``: ``root/<package>/`` holds the sound folders of each Debian package in
:data:`PACKAGES` (the paths they install to, e.g. ``usr/share/games/wesnoth/1.16/data/core/sounds``),
its ``copyright`` file and ``package.json`` (name, version, licence, upstream).  Missing packages are
fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` (Debian and Ubuntu; no root and no
install needed); only the sound folders and the copyright file are kept.

Captions come from the file names (:func:`caption_from_name`): prefixes dropped, camelCase, ``_``,
``-`` and ``.`` split, take numbers and digits removed, lower case, a few abbreviations spelled out,
and a small per-package table where names are codes (Freeciv's ``MgBar1``, Minetest's ``dig_choppy``).
Clips longer than ``max_seconds``, silent or undecodable are skipped (counted in the log).

Splits are by caption and by source: every clip of a ``held_out`` package is ``"test"``, and so is
every clip sharing a caption with one; the others are split by :func:`hash_split` of the caption, so
that no caption is in both train and valid/test.  ``root/metadata.csv`` lists every file with its
package, version, licence, caption and split (or why it was skipped): the credit record.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import soundfile as sf

from ..checkpoint import atomic_write_bytes
from ..errors import ConfigError, DownloadError
from .manifest import ManifestItem, hash_split

log = logging.getLogger(__name__)

AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".ogg", ".oga", ".flac")
SILENT_PEAK = 10 ** (-60 / 20)  # a clip whose peak is below -60 dBFS is silent
#: generic abbreviations in file names (a token maps to words; "" drops it)
ABBREVIATIONS: dict[str, str] = {"sml": "small", "lrg": "large", "med": "medium", "expl": "explosion",
                                 "sfx": "", "snd": ""}


@dataclass(frozen=True)
class SoundPackage:
    """A Debian package of sound effects, pinned by name, with what its copyright file says of them.

    Attributes:
        name: the Debian package (``wesnoth-1.16-data``).
        version: the version whose ``copyright`` file the licences below were read from (bookworm).
        folders: globs, relative to the unpacked package, of the folders whose audio is used.
        licence: the licence of the sound files (the ``License:`` field of ``debian/copyright``).
        licence_by_path: ``(glob, licence)`` for files under other licences; the last match wins.
        upstream: the project and its address, for credit.
        prefixes: file-name prefixes that carry no meaning (``default_``).
        names: captions for names that are codes, keyed by :func:`name_key`.
        exclude: globs of file names left out (speech, test tones, files the copyright file omits).
    """

    name: str
    version: str
    folders: tuple[str, ...]
    licence: str
    upstream: str
    licence_by_path: tuple[tuple[str, str], ...] = ()
    prefixes: tuple[str, ...] = ()
    names: tuple[tuple[str, str], ...] = ()
    exclude: tuple[str, ...] = ()

    def licence_of(self, relative: str) -> str:
        """The licence of the file at ``relative`` (its path below the package folder)."""
        found = self.licence
        for pattern, licence in self.licence_by_path:
            if fnmatch(relative, pattern):
                found = licence
        return found

    def sound_folders(self, tree: Path) -> list[Path]:
        """The folders of ``tree`` (an unpacked package) that match :attr:`folders`, in order."""
        return [f for pattern in self.folders for f in sorted(tree.glob(pattern)) if f.is_dir()]


PACKAGES: dict[str, SoundPackage] = {p.name: p for p in (
    SoundPackage(
        "wesnoth-1.16-data", "1:1.16.9-1",
        ("usr/share/games/wesnoth/1.16/data/core/sounds", "usr/share/games/wesnoth/1.16/sounds"),
        "GPL-2+", "The Battle for Wesnoth, https://www.wesnoth.org",
        names=(("magicmissile", "magic missile"), ("gamestart", "game start"))),
    SoundPackage(
        "minetest-data", "5.6.1+dfsg+~1.9.0mt8+dfsg-2",
        ("usr/share/games/minetest/games/minetest_game/mods/*/sounds",),
        "CC-BY-SA-3.0", "Minetest Game, https://www.minetest.net",
        licence_by_path=(("*/doors/sounds/*", "CC-BY-3.0"), ("*/doors/sounds/doors_glass_door_*", "CC0-1.0"),
                         ("*/tnt/sounds/*", "CC0-1.0")),
        prefixes=("default_", "doors_", "env_sounds_", "carts_", "xpanes_", "fire_"),
        names=(("default_dig_choppy", "chopping wood"), ("default_dig_cracky", "digging stone"),
               ("default_dig_crumbly", "digging dirt"), ("default_dig_snappy", "cutting plants"),
               ("default_dig_oddly_breakable_by_hand", "breaking a block by hand"),
               ("default_dig_dig_immediate", "picking up a block"), ("default_dug_node", "block dug out"),
               ("default_place_node", "placing a block"), ("default_place_node_hard", "placing a hard block"),
               ("default_place_node_metal", "placing a metal block"), ("default_item_smoke", "item burning up"),
               ("fire_fire", "fire crackling"), ("env_sounds_water", "flowing water"),
               ("env_sounds_lava", "bubbling lava"))),
    SoundPackage(
        "lincity-ng-data", "2.9~git20150314-5", ("usr/share/games/lincity-ng/sounds",),
        "GPL-2+", "LinCity-NG, https://github.com/lincity-ng/lincity-ng",
        names=(("trafichigh", "heavy traffic"), ("traficlow", "light traffic"), ("sportscroud", "sports crowd"),
               ("residentiallowlow", "quiet residential street"), ("residentiallow", "residential street"),
               ("residentialmed", "busy residential street"), ("residentialhigh", "crowded residential street"),
               ("tip", "rubbish tip"), ("raze", "demolition"), ("green", "park with birds"),
               ("industryhigh", "heavy industry"), ("industrylight", "light industry"),
               ("windmillhtech", "wind turbine"))),
    SoundPackage(
        "freeciv-data", "3.0.6-1+deb12u1", ("usr/share/games/freeciv/stdsounds",),
        "GPL-2+", "Freeciv, https://www.freeciv.org",
        names=(("medcan", "medium cannon shot"), ("lrgcan", "large cannon shot"), ("mgheavy", "heavy machine gun"),
               ("mgbar", "machine gun burst"), ("metbrk", "metal breaking"), ("woodbrk", "wood breaking"),
               ("inh2o", "ship moving through water"), ("thover", "helicopter hovering"), ("foot", "footsteps"),
               ("tread", "tank treads"), ("wall", "catapult hitting a wall"), ("mortar", "mortar shot"),
               ("illegal", "error sound"), ("wakeup", "wake up sound"))),  # meanings from stdsounds.soundspec
    SoundPackage(
        "sound-theme-freedesktop", "0.8-2", ("usr/share/sounds/freedesktop/stereo",),
        "CC-BY-SA-3.0", "freedesktop.org sound theme, https://freedesktop.org/wiki/Specifications/sound-theme-spec/",
        licence_by_path=(("*/bell.oga", "CC-BY-3.0"), ("*/complete.oga", "CC-BY-3.0"),
                         ("*/trash-empty.oga", "CC-BY-3.0"), ("*/message-new-instant.oga", "GPL-2+"),
                         ("*/phone-*", "GPL-2+"), ("*/service-log*", "GPL-2")),
        names=(("alarm-clock-elapsed", "alarm clock ringing"), ("message-new-instant", "instant message chime"),
               ("phone-outgoing-busy", "phone busy tone"), ("phone-outgoing-calling", "phone ringing tone"),
               ("trash-empty", "emptying the trash")),
        exclude=("audio-channel-*", "audio-test-signal*",  # spoken channel names, a test tone
                 "dialog-error*", "dialog-warning*", "window-*")),  # not named in the copyright file
)}
#: test-only by default: two whole sources, and so every CC BY-SA 3.0 and GPL-2-only clip; what is trained on is
#: then GPL-2+ (Wesnoth, LinCity-NG, Freeciv), which a model can be shared under with the Berklee CC BY 3.0 credit
HELD_OUT: tuple[str, ...] = ("minetest-data", "sound-theme-freedesktop")


# ---------------------------------------------------------------------------------------------
# captions


def name_key(file_name: str) -> str:
    """``"MgBar1.ogg" -> "mgbar"``, ``"default_dig_choppy.2.ogg" -> "default_dig_choppy"``: the key of
    :attr:`SoundPackage.names` (lower case, no extension, no trailing take number)."""
    stem = _stem(file_name)
    return re.sub(r"[\s_.-]*\d+$", "", stem).lower() or stem.lower()


def _stem(file_name: str) -> str:
    """``file_name`` without its audio extension (``.wav``, ``.ogg``, ``.oga``, ``.flac``, ``.mp3``)."""
    return re.sub(r"\.(wav|ogg|oga|flac|mp3)$", "", file_name, flags=re.IGNORECASE)


def caption_from_name(file_name: str, prefixes: Sequence[str] = (), names: dict[str, str] | None = None) -> str:
    """A caption from a sound's file name: ``"bow-puny-fire-miss.ogg" -> "bow puny fire miss"``,
    ``"CoalMine2.wav" -> "coal mine"``, ``"SmlExpl.ogg" -> "small explosion"``.

    ``names`` (keyed by :func:`name_key`) wins; otherwise the first matching prefix is dropped,
    camelCase, ``_``, ``-``, ``.`` and spaces split words, digits are removed, :data:`ABBREVIATIONS`
    spelled out, and the words lower-cased.
    """
    key = name_key(file_name)
    if names and key in names:
        return names[key]
    stem = _stem(file_name)
    prefix = next((p for p in prefixes if stem.lower().startswith(p.lower()) and len(stem) > len(p)), "")
    stem = stem[len(prefix):]
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", stem))
    tokens = (re.sub(r"\d+", "", token).lower() for token in re.split(r"[\s_.\-]+", spaced))
    words = [ABBREVIATIONS.get(token, token) for token in tokens]
    return " ".join(w for w in words if w) or key


# ---------------------------------------------------------------------------------------------
# fetching


def fetch(root: str | os.PathLike, packages: Sequence[str] | None = None) -> list[str]:
    """Fetch the ``packages`` (default: all of :data:`PACKAGES`) that ``root`` lacks; return those fetched.

    Raises:
        DownloadError: no ``apt-get`` / ``dpkg-deb`` here, or a fetch failed (one line, with what to do).
    """
    root = Path(root).expanduser().absolute()
    missing = [name for name in _package_names(packages) if not (root / name).is_dir()]
    if not missing:
        return []
    tools = {tool: shutil.which(tool) for tool in ("apt-get", "dpkg-deb")}
    if not all(tools.values()):
        absent = ", ".join(t for t, path in tools.items() if not path)
        raise DownloadError(f"debian_sfx: {absent} not found (not Debian/Ubuntu?); unpack the packages "
                            f"{', '.join(missing)} into {root}/<package>/ by hand (dpkg-deb -x)")
    root.mkdir(parents=True, exist_ok=True)
    for name in missing:
        fetch_package(PACKAGES[name], root, tools["apt-get"], tools["dpkg-deb"])
    return missing


def fetch_package(package: SoundPackage, root: Path, apt_get: str, dpkg_deb: str) -> Path:
    """``apt-get download`` the package into a temporary folder, unpack it, keep its sound folders and
    copyright file in ``root/<name>`` (atomically), and record its version in ``package.json``."""
    work = Path(tempfile.mkdtemp(prefix=f".{package.name}.", dir=root))
    try:
        _run([apt_get, "download", package.name], work, package.name)
        debs = sorted(work.glob("*.deb"))
        if not debs:
            raise DownloadError(f"debian_sfx: apt-get download {package.name} left no .deb file in {work}")
        version = _run([dpkg_deb, "-f", str(debs[0]), "Version"], work, package.name).strip()
        _run([dpkg_deb, "-x", str(debs[0]), str(work / "tree")], work, package.name)
        kept = _keep_sounds(package, work / "tree", work / package.name)
        if version != package.version:
            log.warning("debian_sfx: %s is version %s; its licences were read from %s (check %s/copyright)",
                        package.name, version, package.version, kept)
        record = {"name": package.name, "version": version, "licence": package.licence, "upstream": package.upstream}
        (kept / "package.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        os.replace(kept, root / package.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("debian_sfx: fetched %s %s into %s", package.name, version, root / package.name)
    return root / package.name


def _run(command: list[str], cwd: Path, package: str) -> str:
    """Run ``command`` in ``cwd``; its stdout, or :class:`DownloadError` with the last line it printed."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(f"debian_sfx: {Path(command[0]).name} failed for {package}: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        why = next((line for line in reversed(lines) if line.startswith("E:")), lines[-1] if lines else "no output")
        hint = " (offline? or run apt-get update)" if "apt-get" in command[0] else ""
        raise DownloadError(f"debian_sfx: {Path(command[0]).name} {command[1]} {package} failed{hint}: {why.strip()}")
    return done.stdout


def _keep_sounds(package: SoundPackage, tree: Path, kept: Path) -> Path:
    """Move the package's sound folders and ``copyright`` from the unpacked ``tree`` into ``kept``."""
    folders = package.sound_folders(tree)
    if not folders:
        raise DownloadError(f"debian_sfx: {package.name} has none of its sound folders ({', '.join(package.folders)})")
    for folder in folders:
        target = kept / folder.relative_to(tree)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(target))
    copyright_file = tree / "usr/share/doc" / package.name / "copyright"
    if copyright_file.is_file():
        shutil.copyfile(copyright_file, kept / "copyright")
    return kept


def _package_names(packages: Sequence[str] | None) -> list[str]:
    names = list(PACKAGES) if packages is None else list(packages)
    unknown = [n for n in names if n not in PACKAGES]
    if unknown:
        raise ConfigError(f"debian_sfx: unknown package(s) {', '.join(unknown)}; known: {', '.join(PACKAGES)}")
    return names


# ---------------------------------------------------------------------------------------------
# the layout


@dataclass(frozen=True)
class _Clip:
    """One sound file of a package, with what :func:`prepare_debian_sfx` found out about it."""

    path: Path
    package: str
    caption: str
    licence: str
    duration: float = 0.0
    sample_rate: int = 0
    skipped: str = ""  # why it is not used ("" when it is)


def prepare_debian_sfx(
    root: str | os.PathLike,
    packages: Sequence[str] | None = None,
    held_out: Sequence[str] = HELD_OUT,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.1,
    max_seconds: float = 6.0,
    fetch_missing: bool = True,
) -> list[ManifestItem]:
    """Sound effects of Debian packages (see the module docstring): ``root/<package>/...``.

    Args:
        root: the folder holding one folder per package (fetched into when missing, ``fetch_missing``).
        packages: the packages to use (default all of :data:`PACKAGES`).
        held_out: packages whose clips (and every clip sharing a caption with them) are all ``"test"``.
        valid_fraction, test_fraction: of the other captions, by :func:`hash_split` of the caption.
        max_seconds: longer clips are skipped.

    Label is the caption.  Also writes ``root/metadata.csv`` (path, package, version, licence, caption,
    duration, split or why skipped).
    """
    names = _package_names(packages)
    root = Path(root).expanduser().absolute()
    if fetch_missing:
        fetch(root, names)
    absent = [n for n in names if not (root / n).is_dir()]
    if absent:
        raise ConfigError(f"debian_sfx: {root} lacks the package folder(s) {', '.join(absent)}")
    clips = [_checked(clip, max_seconds) for name in names for clip in _package_clips(PACKAGES[name], root / name)]
    splits = _splits(clips, set(held_out), valid_fraction, test_fraction)
    _write_metadata(root, clips, splits)
    skipped = Counter(c.skipped for c in clips if c.skipped)
    if skipped:
        log.info("debian_sfx: skipped %s", ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())))
    items = [ManifestItem(str(c.path), c.duration, c.sample_rate, c.caption, c.caption, splits[c.path])
             for c in clips if not c.skipped]
    if not items:
        raise ConfigError(f"debian_sfx: found no usable clips in {root}")
    return items


def _package_clips(package: SoundPackage, folder: Path) -> list[_Clip]:
    """The audio files in the package's sound folders (sorted), captioned, excluded ones marked."""
    names = dict(package.names)
    clips = []
    for sounds in package.sound_folders(folder):
        for path in sorted(p for p in sounds.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
            relative = path.relative_to(folder).as_posix()
            caption = caption_from_name(path.name, package.prefixes, names)
            excluded = any(fnmatch(path.name, pattern) for pattern in package.exclude)
            clips.append(_Clip(path, package.name, caption, package.licence_of(relative),
                               skipped="excluded" if excluded else ""))
    return clips


def _checked(clip: _Clip, max_seconds: float) -> _Clip:
    """``clip`` with its duration and rate, or marked skipped (``undecodable``, ``too long``, ``silent``)."""
    if clip.skipped:
        return clip
    try:
        info = sf.info(str(clip.path))
        duration = info.frames / info.samplerate
        audio = sf.read(str(clip.path), dtype="float32", always_2d=True)[0] if duration <= max_seconds else None
    except Exception:  # LibsndfileError, RuntimeError, OSError: a broken or unsupported file
        return replace(clip, skipped="undecodable")
    reason = "too long" if audio is None else "silent" if audio.size == 0 or np.abs(audio).max() < SILENT_PEAK else ""
    return replace(clip, duration=float(duration), sample_rate=int(info.samplerate), skipped=reason)


def _splits(clips: list[_Clip], held_out: set[str], valid_fraction: float, test_fraction: float) -> dict[Path, str]:
    """``{path: split}``: held-out packages and their captions test, the rest by the caption's hash."""
    held_captions = {c.caption for c in clips if c.package in held_out and not c.skipped}
    return {c.path: "test" if c.package in held_out or c.caption in held_captions
            else hash_split(c.caption, valid_fraction, test_fraction) for c in clips}


def _write_metadata(root: Path, clips: list[_Clip], splits: dict[Path, str]) -> Path:
    """``root/metadata.csv``: every file with its package, version, licence, caption and split or skip reason."""
    versions = {c.package: _version(root / c.package) for c in clips}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "package", "version", "licence", "caption", "duration", "split", "skipped"])
    for c in clips:
        writer.writerow([c.path.relative_to(root).as_posix(), c.package, versions[c.package], c.licence, c.caption,
                         f"{c.duration:.3f}", "" if c.skipped else splits[c.path], c.skipped])
    return atomic_write_bytes(root / "metadata.csv", out.getvalue().encode("utf-8"))


def _version(folder: Path) -> str:
    """The version recorded in ``folder/package.json`` when it was fetched (``""`` if unknown)."""
    try:
        return str(json.loads((folder / "package.json").read_text(encoding="utf-8")).get("version", ""))
    except (OSError, ValueError):
        return ""
