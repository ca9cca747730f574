"""A map-style dataset of fixed-length waveform clips from manifest items, and its collate function.

Each item is decoded with :func:`audiodiff.audio.io.load_audio` (which resamples), optionally
trimmed of leading/trailing silence and loudness-normalised, then cropped or zero-padded to
``round(seconds * sample_rate)`` samples.  Random crops are drawn from a generator seeded by
``(seed, epoch, index)``, so a run is reproducible and :meth:`AudioDataset.set_epoch` gives each
epoch new crops.

Before use, every file is checked cheaply (:func:`check_audio`: header, a small decode of the
start and of the end); missing, empty, unreadable, truncated and too-short files are skipped with
one warning each and counted in :attr:`AudioDataset.skipped`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from ..audio.io import load_audio, log_says_truncated
from ..errors import ConfigError
from .manifest import ManifestItem, read_manifest

log = logging.getLogger(__name__)

CROPS: tuple[str, ...] = ("random", "start", "center")
SKIP_REASONS: tuple[str, ...] = ("missing", "empty", "unreadable", "truncated", "too short", "non-finite")
#: sample formats that can hold NaN or inf (integer PCM and lossy codecs cannot)
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")



def check_audio(path: str | os.PathLike, min_seconds: float = 0.0, probe_frames: int = 1024) -> str | None:
    """Cheaply check that an audio file is usable.

    Reads the header, decodes the first and the last ``probe_frames`` frames, and reads
    libsndfile's open log for signs of truncation.

    Returns:
        ``None`` for a good file, else the reason it is not usable, one of :data:`SKIP_REASONS`:
        ``"missing"``, ``"empty"`` (zero bytes or zero frames), ``"unreadable"`` (not audio or not
        decodable), ``"truncated"`` (the file ends before its header says), ``"too short"``
        (under ``min_seconds``), ``"non-finite"`` (a float file holding NaN or inf: read whole, as
        such a sample anywhere would turn the mel statistics and every loss into NaN).
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return "empty"
    except OSError:
        return "missing"
    try:
        with sf.SoundFile(str(path)) as f:
            return _check_open_file(f, min_seconds, probe_frames)
    except Exception:  # LibsndfileError, RuntimeError, ... from open or the head decode
        return "unreadable"


def _check_open_file(f: sf.SoundFile, min_seconds: float, probe_frames: int) -> str | None:
    """The checks of :func:`check_audio` after the file has opened."""
    if f.frames <= 0:
        return "empty"
    if f.frames / f.samplerate < min_seconds:
        return "too short"
    if log_says_truncated(f.extra_info):
        return "truncated"
    f.read(min(probe_frames, f.frames), dtype="float32")  # raises on an undecodable head
    tail = min(probe_frames, f.frames)
    try:
        f.seek(f.frames - tail)
        if len(f.read(tail, dtype="float32")) < tail:
            return "truncated"
    except Exception:
        return "truncated"
    if f.subtype in FLOAT_SUBTYPES and not _all_finite(f):
        return "non-finite"
    return None


def _all_finite(f: sf.SoundFile, block: int = 1 << 16) -> bool:
    """Whether every sample of an open file is finite (read block by block)."""
    f.seek(0)
    return all(np.isfinite(chunk).all() for chunk in f.blocks(blocksize=block, dtype="float32"))


def trim_silence(wave: torch.Tensor, db: float) -> torch.Tensor:
    """Cut leading and trailing samples quieter than ``db`` decibels below the peak.

    Args:
        wave: ``(C, T)``; a sample's level is its largest magnitude over channels.
        db: positive, e.g. ``40`` keeps everything from the first to the last sample within 40 dB
            of the peak.

    Returns:
        ``(C, T')`` with ``T' <= T``; a silent clip comes back unchanged.
    """
    level = wave.abs().amax(dim=0)  # (C, T) -> (T,)
    peak = float(level.max()) if level.numel() else 0.0
    if peak <= 0.0:
        return wave
    loud = torch.nonzero(level >= peak * 10.0 ** (-db / 20.0)).squeeze(1)  # (K,) indices
    return wave[:, int(loud[0]) : int(loud[-1]) + 1]


def normalize_loudness(wave: torch.Tensor, target_db: float) -> torch.Tensor:
    """Scale ``wave`` ``(C, T)`` so its RMS is ``target_db`` dBFS, but never beyond a peak of 1.

    When reaching the target would clip, the gain stops at peak 1 (the RMS then stays below the
    target).  A silent clip comes back unchanged.
    """
    rms = float(wave.pow(2).mean().sqrt()) if wave.numel() else 0.0
    peak = float(wave.abs().max()) if wave.numel() else 0.0
    if rms < 1e-8:
        return wave
    gain = min(10.0 ** (target_db / 20.0) / rms, 1.0 / peak)
    return wave * gain


def crop_or_pad(wave: torch.Tensor, length: int, offset: int = 0) -> torch.Tensor:
    """``(C, T) -> (C, length)``: samples ``offset .. offset+length`` when ``T >= length``, else zeros appended."""
    if wave.shape[-1] >= length:
        return wave[:, offset : offset + length]
    return torch.nn.functional.pad(wave, (0, length - wave.shape[-1]))  # (C, T) -> (C, length)


def _crop_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit generator seed that depends on ``(seed, epoch, index)`` only."""
    digest = hashlib.blake2b(f"{seed},{epoch},{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class AudioDataset(Dataset):
    """Fixed-length clips from manifest items.

    Args:
        items: the clips (e.g. from :func:`audiodiff.data.read_manifest`).
        sample_rate: decode at this rate (files are resampled by ``load_audio``).
        seconds: clip length; each waveform has ``S = round(seconds * sample_rate)`` samples.
        crop: where a longer file is cut: ``"random"`` (reproducible, see :meth:`set_epoch`),
            ``"start"`` or ``"center"``.  Shorter files are zero-padded at the end.
        mono: average channels to one; with ``False`` the file's channels are kept.
        loudness_normalize: target RMS in dBFS (e.g. ``-20``), applied to the whole (trimmed)
            file before cropping; ``None`` leaves levels alone.
        trim_silence_db: trim leading/trailing audio quieter than this many dB below the peak
            (e.g. ``40``); ``None`` keeps the file whole.
        min_seconds: files shorter than this are skipped.
        seed: seed of the random crops.
        check_files: check every file at construction with :meth:`scan`; with ``False`` only the
            manifest durations are checked against ``min_seconds``.

    Attributes:
        items: the usable items; ``dataset[i]`` is ``items[i]``.
        skipped: ``{reason: count}`` of the items left out.

    Raises:
        ConfigError: a bad argument, or no usable item.
    """

    def __init__(
        self,
        items: Sequence[ManifestItem],
        sample_rate: int,
        seconds: float,
        crop: str = "random",
        mono: bool = True,
        loudness_normalize: float | None = None,
        trim_silence_db: float | None = None,
        min_seconds: float = 0.05,
        seed: int = 0,
        check_files: bool = True,
    ) -> None:
        _check_arguments(sample_rate, seconds, crop, loudness_normalize, trim_silence_db, min_seconds)
        self.sample_rate = int(sample_rate)
        self.seconds = float(seconds)
        self.num_samples = round(seconds * sample_rate)
        self.crop = crop
        self.mono = mono
        self.loudness_normalize = loudness_normalize
        self.trim_silence_db = trim_silence_db
        self.min_seconds = float(min_seconds)
        self.seed = int(seed)
        self.epoch = 0
        self.manifest_items: list[ManifestItem] = list(items)
        self.items: list[ManifestItem] = []
        self.skipped: dict[str, int] = {}
        self.scan(check_files)

    @classmethod
    def from_manifest(cls, path: str | os.PathLike, split: str | None = None, **kwargs: object) -> "AudioDataset":
        """``AudioDataset(read_manifest(path, split), **kwargs)``."""
        return cls(read_manifest(path, split), **kwargs)  # type: ignore[arg-type]

    def scan(self, check_files: bool = True) -> None:
        """Sort :attr:`manifest_items` into usable :attr:`items` and :attr:`skipped` counts.

        Logs one warning per skipped file.  Raises :class:`ConfigError` if nothing is usable.
        """
        usable, reasons = [], Counter()
        for item in self.manifest_items:
            reason = self._check(item, check_files)
            if reason is None:
                usable.append(item)
            else:
                reasons[reason] += 1
                log.warning("skipping %s: %s", item.path, reason)
        self.items, self.skipped = usable, dict(reasons)
        log.info("AudioDataset: %s", self.summary())
        if not usable:
            raise ConfigError(f"no usable audio in manifest ({len(self.manifest_items)} items): {self.summary()}")

    def _check(self, item: ManifestItem, check_files: bool) -> str | None:
        """The skip reason of one item, or ``None``."""
        if check_files:
            return check_audio(item.path, self.min_seconds)
        return "too short" if item.duration < self.min_seconds else None

    def summary(self) -> str:
        """One line, e.g. ``"1200 usable clips, skipped 4 (2 unreadable, 1 empty, 1 too short)"``."""
        total = sum(self.skipped.values())
        line = f"{len(self.items)} usable clips, skipped {total}"
        if total:
            counts = sorted(self.skipped.items(), key=lambda pair: (-pair[1], pair[0]))
            line += " (" + ", ".join(f"{count} {reason}" for reason, count in counts) + ")"
        return line

    def set_epoch(self, epoch: int) -> None:
        """Use the random crops of ``epoch``; call it before iterating each epoch.

        DataLoader workers copy the dataset when an iterator starts, so with
        ``persistent_workers=True`` they keep the epoch they started with.
        """
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        """``{"waveform": (C, S) float32, "caption": str, "label": str, "index": int}`` (``C == 1`` when mono)."""
        item = self.items[index]
        wave, _ = load_audio(item.path, self.sample_rate, self.mono)  # (C, T)
        if self.trim_silence_db is not None:
            wave = trim_silence(wave, self.trim_silence_db)
        if self.loudness_normalize is not None:
            wave = normalize_loudness(wave, self.loudness_normalize)
        wave = crop_or_pad(wave, self.num_samples, self._offset(wave.shape[-1], index))
        return {
            "waveform": wave.to(torch.float32).contiguous(),
            "caption": item.caption or "",
            "label": item.label or "",
            "index": int(index),
        }

    def _offset(self, length: int, index: int) -> int:
        """Start sample of the crop of a ``length``-sample clip (0 when it needs padding)."""
        spare = length - self.num_samples
        if spare <= 0 or self.crop == "start":
            return 0
        if self.crop == "center":
            return spare // 2
        generator = torch.Generator().manual_seed(_crop_seed(self.seed, self.epoch, index))
        return int(torch.randint(0, spare + 1, (1,), generator=generator))


def _check_arguments(
    sample_rate: int,
    seconds: float,
    crop: str,
    loudness_normalize: float | None,
    trim_silence_db: float | None,
    min_seconds: float,
) -> None:
    """Raise :class:`ConfigError` for a bad :class:`AudioDataset` argument."""
    if sample_rate <= 0 or seconds <= 0 or round(seconds * sample_rate) < 1:
        raise ConfigError(f"AudioDataset needs sample_rate > 0 and seconds > 0, got {sample_rate} and {seconds}")
    if crop not in CROPS:
        raise ConfigError(f"unknown crop {crop!r}; valid crops: {', '.join(CROPS)}")
    if loudness_normalize is not None and loudness_normalize > 0:
        raise ConfigError(f"loudness_normalize is a target RMS in dBFS (<= 0), got {loudness_normalize}")
    if trim_silence_db is not None and trim_silence_db <= 0:
        raise ConfigError(f"trim_silence_db is decibels below the peak (> 0), got {trim_silence_db}")
    if min_seconds < 0:
        raise ConfigError(f"min_seconds must be >= 0, got {min_seconds}")


def collate(batch: Sequence[dict]) -> dict:
    """Stack :class:`AudioDataset` (or :class:`~audiodiff.data.cache.FeatureCache`) items into a batch.

    Returns:
        ``{"waveform": (B, C, S), "caption": list[str], "label": list[str], "index": (B,) int64}``
        (``"features"`` ``(B, n_mels, frames)`` instead of ``"waveform"`` for cached features).

    Raises:
        ConfigError: the waveforms differ in shape (e.g. ``mono=False`` with mixed channel counts).
    """
    key = "features" if "features" in batch[0] else "waveform"
    shapes = {tuple(example[key].shape) for example in batch}
    if len(shapes) > 1:
        raise ConfigError(f"cannot stack {key} of shapes {sorted(shapes)}; use mono=True for mixed channel counts")
    return {
        key: torch.stack([example[key] for example in batch]),  # B x (C, S) -> (B, C, S)
        "caption": [example["caption"] for example in batch],
        "label": [example["label"] for example in batch],
        "index": torch.tensor([example["index"] for example in batch], dtype=torch.long),
    }
