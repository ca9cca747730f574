"""Pitch accuracy of single notes: is the note's fundamental within a semitone of the prompted pitch?

The fundamental is tracked with probabilistic YIN (pYIN; Mauch & Dixon 2014, "pYIN: a fundamental
frequency estimator using probabilistic threshold distributions", ICASSP), as ``librosa.pyin``
implements it: the note's pitch is the median f0 of its voiced frames, in MIDI numbers.  A clip is
correct when that is within ``tolerance`` semitones (default 1) of the target; an octave error is
12 semitones off and so wrong, and a clip with no voiced frame is wrong too.

Targets come from captions through a judge's ``notes`` pattern (:func:`audiodiff.evaluation.targets.caption_pitch`;
the recipe that trained the judge says how its captions name notes).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..audio.io import resample
from ..errors import ConfigError
from .targets import caption_pitch

#: pYIN runs at this rate; 2048-sample frames (128 ms) resolve down to A0; candidate pitches every
#: quarter semitone (why not librosa's tenth: benchmarks/results/defaults.md)
PITCH_RATE = 16000
FRAME_LENGTH = 2048
RESOLUTION = 0.25
#: the search range: a semitone beyond the piano's A0 (27.5 Hz) and C8 (4186 Hz), as MIDI 20 and 109 exactly
#: so that the candidate pitches fall on whole and quarter semitones
FMIN_HZ, FMAX_HZ = 440.0 * 2 ** ((20 - 69) / 12), 440.0 * 2 ** ((109 - 69) / 12)

def _as_batch(waves: Any) -> torch.Tensor:
    """``(B, 1, S)``, ``(B, S)`` or ``(S,)`` -> ``(B, S)`` float."""
    wave = torch.as_tensor(waves).float()
    if wave.dim() == 3 and wave.shape[1] == 1:
        wave = wave[:, 0]  # (B, 1, S) -> (B, S)
    elif wave.dim() == 1:
        wave = wave[None]  # (S,) -> (1, S)
    if wave.dim() != 2 or wave.shape[-1] == 0:
        raise ConfigError(f"pitch estimation expects mono audio (B, 1, S), (B, S) or (S,), got {tuple(waves.shape)}")
    return wave


def estimate_pitch(waves: Any, sample_rate: int, batch_size: int = 32) -> np.ndarray:
    """``(B,)`` MIDI pitch (float) of each clip of ``(B, 1, S)`` audio: the median pYIN f0 of its voiced
    frames; NaN for a clip with no voiced frame (silence, noise)."""
    import librosa

    wave = _as_batch(waves)
    if int(sample_rate) != PITCH_RATE:
        wave = resample(wave[:, None], int(sample_rate), PITCH_RATE)[:, 0]  # (B, 1, S) -> (B, S')
    if wave.shape[-1] < FRAME_LENGTH:
        wave = torch.nn.functional.pad(wave, (0, FRAME_LENGTH - wave.shape[-1]))
    out = []
    for start in range(0, len(wave), batch_size):
        f0, voiced, _ = librosa.pyin(wave[start : start + batch_size].double().numpy(), fmin=FMIN_HZ, fmax=FMAX_HZ,
                                     sr=PITCH_RATE, frame_length=FRAME_LENGTH,
                                     resolution=RESOLUTION)  # (b, frames) each
        for row, flags in zip(f0, voiced):
            hz = row[flags & np.isfinite(row)]
            out.append(float(librosa.hz_to_midi(np.median(hz))) if hz.size else float("nan"))
    return np.asarray(out)


def pitch_hits(estimates: Any, targets: Sequence[int], tolerance: float = 1.0) -> np.ndarray:
    """``(B,)`` booleans: estimate within ``tolerance`` semitones of the target MIDI pitch (NaN is a miss)."""
    est = np.asarray(estimates, dtype=float).reshape(-1)
    tgt = np.asarray(targets, dtype=float).reshape(-1)
    if est.shape != tgt.shape:
        raise ConfigError(f"need one target pitch per estimate, got {tgt.size} targets for {est.size} clips")
    with np.errstate(invalid="ignore"):
        return np.abs(est - tgt) <= tolerance


def pitch_accuracy(waves: Any, sample_rate: int, targets: Sequence[int], tolerance: float = 1.0) -> tuple[float, np.ndarray]:
    """Fraction of ``(B, 1, S)`` clips whose pitch is within ``tolerance`` semitones of ``targets`` ``(B,)``
    (MIDI numbers), and the ``(B,)`` estimates."""
    wave = _as_batch(waves)
    if len(targets) != len(wave):
        raise ConfigError(f"need one target pitch per clip, got {len(targets)} targets for {len(wave)} clips")
    estimates = estimate_pitch(wave, sample_rate)
    return float(pitch_hits(estimates, targets, tolerance).mean()), estimates


def caption_pitch_accuracy(waves: Any, sample_rate: int, captions: Sequence[str | None], notes: str | None,
                           tolerance: float = 1.0) -> dict[str, Any] | None:
    """Pitch accuracy over the clips whose caption names a note under the ``notes`` pattern; ``None`` if none does.

    Returns ``{"pitch_accuracy", "pitch_clips", "pitch_unvoiced"}`` (unvoiced: clips with no voiced frame).
    """
    wave = _as_batch(waves)
    pitches = [caption_pitch(c, notes) for c in captions]
    rows = [i for i, pitch in enumerate(pitches) if pitch is not None]
    if not rows:
        return None
    accuracy, estimates = pitch_accuracy(wave[rows], sample_rate, [pitches[i] for i in rows], tolerance)
    return {"pitch_accuracy": accuracy, "pitch_clips": len(rows), "pitch_unvoiced": int(np.isnan(estimates).sum())}
