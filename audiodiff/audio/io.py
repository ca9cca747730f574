"""Audio file I/O with soundfile, resampling with torchaudio, mono mixdown.

Waveforms are float32 tensors shaped ``(C, T)`` for one clip and ``(B, C, T)`` for a batch.
soundfile (libsndfile >= 1.1) reads WAV, FLAC, OGG/Vorbis and MP3.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from ..errors import AudioError, first_line


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    mono: bool = True,
) -> tuple[torch.Tensor, int]:
    """Read an audio file.

    Args:
        path: a file soundfile can decode (WAV, FLAC, OGG, MP3, ...).
        sample_rate: resample to this rate; ``None`` keeps the file's rate.
        mono: average the channels into one.

    Returns:
        ``(waveform (C, T) float32, sample_rate)``; ``C == 1`` when ``mono``.

    Raises:
        AudioError: the file is missing, empty, cannot be decoded, or holds NaN or inf samples
            (a float WAV can; they would silently turn every result into noise).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        with sf.SoundFile(str(path)) as f:
            if log_says_truncated(f.extra_info):
                raise AudioError(f"audio file is truncated (it ends before its header says): {path}")
            data, sr = f.read(dtype="float32", always_2d=True), f.samplerate  # (T, C)
    except AudioError:
        raise
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, ...
        raise AudioError(f"cannot decode audio file {path}: {first_line(exc)}") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file has no samples: {path}")
    if not np.isfinite(data).all():
        raise AudioError(f"audio file has non-finite samples (NaN or inf): {path}")
    wave = torch.from_numpy(np.ascontiguousarray(data.T))  # (T, C) -> (C, T)
    if mono:
        wave = to_mono(wave)
    if sample_rate is not None and sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
        sr = sample_rate
    return wave, int(sr)


# libsndfile corrects a WAV's frame count when the file ends early and logs e.g.
# "data : 16000 (should be 7978)"; a cut Ogg stream logs "Last page lacks an end-of-stream bit".
_TRUNCATED_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_TRUNCATED_OGG = "lacks an end-of-stream"


def log_says_truncated(open_log: str) -> bool:
    """True if libsndfile's open log (``SoundFile.extra_info``) says the data ends before the header says."""
    match = _TRUNCATED_DATA.search(open_log)
    if match is not None and int(match.group(1)) > int(match.group(2)):
        return True
    return _TRUNCATED_OGG in open_log


def to_mono(wave: torch.Tensor) -> torch.Tensor:
    """Average channels: ``(..., C, T) -> (..., 1, T)``."""
    return wave.mean(dim=-2, keepdim=True)


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling of ``(..., T)`` from ``orig_rate`` to ``new_rate`` (torchaudio)."""
    if orig_rate == new_rate:
        return wave
    return AF.resample(wave, int(orig_rate), int(new_rate))


def save_audio(path: str | os.PathLike, wave: torch.Tensor, sample_rate: int, overwrite: bool = False) -> Path:
    """Write ``wave`` ``(C, T)`` (or ``(T,)``) as 16-bit PCM (format from the suffix, WAV by default).

    Samples are clipped to [-1, 1].  The file is encoded in memory and written atomically by
    :func:`audiodiff.files.atomic_write_bytes` (never through a symlink; an existing file is
    replaced only with ``overwrite``).  Raises :class:`AudioError` for non-finite samples or an
    unknown format, :class:`~audiodiff.errors.OutputError` if the file cannot be written.
    """
    from ..files import atomic_write_bytes

    path = Path(path)
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)  # (T,) -> (1, T)
    wave = wave.detach().to("cpu", torch.float32)
    if not torch.isfinite(wave).all():
        raise AudioError(f"refusing to write {path}: the audio holds NaN or inf samples")
    data = wave.clamp(-1.0, 1.0).numpy().T  # (C, T) -> (T, C)
    kind = (path.suffix[1:] or "wav").upper()
    buffer = io.BytesIO()
    try:
        sf.write(buffer, data, int(sample_rate), subtype="PCM_16", format=kind)
    except Exception as exc:
        raise AudioError(f"cannot write audio file {path}: {first_line(exc)}") from None
    return atomic_write_bytes(path, buffer.getvalue(), overwrite)
