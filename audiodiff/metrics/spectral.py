"""Distances between two waveforms of the same content: log-mel L1 and multi-resolution STFT.

- ``log_mel_l1``: mean absolute difference of natural-log mel spectrograms, the mel distance that
  HiFi-GAN (Kong et al. 2020, eq. 3) trains and reports for vocoders.
- ``mr_stft_distance`` (and ``mr_stft_loss``, its differentiable form for training): the
  multi-resolution STFT loss of Parallel WaveGAN (Yamamoto et al. 2020, "Parallel WaveGAN",
  eq. 4-6): for each STFT resolution the spectral convergence
  ``|| |Y| - |X| ||_F / || |Y| ||_F`` (eq. 4) plus the log-magnitude distance
  ``|| log|Y| - log|X| ||_1 / N`` (eq. 5), averaged over resolutions (eq. 6).

Both accept ``(B, 1, S)``, ``(B, S)`` or ``(S,)`` waveforms at the same sample rate and cut both
to the shorter length first.  Identical audio gives 0.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError

DEFAULT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
MAG_FLOOR = 1e-7


def align(wave_a: torch.Tensor, wave_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both waveforms as ``(B, S)`` float32, cut to the shorter length."""
    a, b = _as_batch(wave_a, "wave_a"), _as_batch(wave_b, "wave_b")
    if a.shape[0] != b.shape[0]:
        raise ConfigError(f"waveform batches differ in size: {a.shape[0]} vs {b.shape[0]}")
    length = min(a.shape[-1], b.shape[-1])
    if length == 0:
        raise ConfigError("cannot compare empty waveforms")
    return a[:, :length], b[:, :length]


def _as_batch(wave: torch.Tensor, name: str) -> torch.Tensor:
    wave = torch.as_tensor(wave).float()
    if wave.dim() == 3:
        if wave.shape[1] != 1:
            raise ConfigError(f"{name} must be mono (B, 1, S), got {tuple(wave.shape)}")
        return wave[:, 0]  # (B, 1, S) -> (B, S)
    if wave.dim() == 1:
        return wave[None]  # (S,) -> (1, S)
    if wave.dim() == 2:
        return wave
    raise ConfigError(f"{name} must be (B, 1, S), (B, S) or (S,), got {tuple(wave.shape)}")


def log_mel_l1(wave_a: torch.Tensor, wave_b: torch.Tensor, mel: torch.nn.Module) -> float:
    """Mean ``|log_mel(a) - log_mel(b)|`` over batch, bins and frames (HiFi-GAN's mel distance).

    Args:
        wave_a, wave_b: waveforms at ``mel.sample_rate`` (see the module docstring for shapes).
        mel: an :class:`audiodiff.audio.Mel` (its ``log_mel`` is used; normalisation is not).
    """
    a, b = align(wave_a, wave_b)
    with torch.no_grad():
        return float((mel.log_mel(a) - mel.log_mel(b)).abs().mean())


def stft_distance(wave_a: torch.Tensor, wave_b: torch.Tensor, n_fft: int, hop_length: int,
                  win_length: int) -> tuple[float, float]:
    """``(spectral convergence, log-magnitude L1)`` at one STFT resolution (Yamamoto et al. 2020, eq. 4-5).

    ``wave_b`` is the reference ``y`` in the spectral convergence's denominator.
    """
    with torch.no_grad():
        sc, log_l1 = stft_terms(wave_a, wave_b, n_fft, hop_length, win_length)
    return float(sc), float(log_l1)


def stft_terms(wave_a: torch.Tensor, wave_b: torch.Tensor, n_fft: int, hop_length: int,
               win_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable spectral convergence and log-magnitude L1 (eq. 4-5) of a batch, as tensors.

    The spectral convergence pools the whole batch (one Frobenius norm over all examples): per
    example, a silent reference makes the ratio explode, which wrecked a vocoder's training on sound
    effects with quiet segments.  For one example it is eq. 4 exactly.
    """
    a, b = align(wave_a, wave_b)
    mag_a, mag_b = _magnitude(a, n_fft, hop_length, win_length), _magnitude(b, n_fft, hop_length, win_length)
    sc = torch.linalg.norm(mag_b - mag_a) / torch.linalg.norm(mag_b).clamp(min=MAG_FLOOR)
    log_l1 = (mag_b.log() - mag_a.log()).abs().mean()
    return sc, log_l1


def _magnitude(wave: torch.Tensor, n_fft: int, hop_length: int, win_length: int) -> torch.Tensor:
    """``(B, S) -> (B, freqs, frames)`` STFT magnitudes (Hann window, centred), floored at ``MAG_FLOOR``."""
    if win_length > n_fft:
        raise ConfigError(f"win_length {win_length} is larger than n_fft {n_fft}")
    if wave.shape[-1] <= n_fft // 2:  # reflect padding needs more samples than half a window
        wave = F.pad(wave, (0, n_fft // 2 + 1 - wave.shape[-1]))  # (B, S) -> (B, n_fft // 2 + 1)
    window = torch.hann_window(win_length, device=wave.device)
    spec = torch.stft(wave, n_fft, hop_length, win_length, window, center=True, pad_mode="reflect",
                      return_complex=True)  # (B, freqs, frames)
    return spec.abs().clamp(min=MAG_FLOOR)


def mr_stft_distance(wave_a: torch.Tensor, wave_b: torch.Tensor,
                     resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS) -> float:
    """Multi-resolution STFT distance ``mean_m (L_sc + L_mag)`` (Yamamoto et al. 2020, eq. 6).

    Args:
        wave_a, wave_b: waveforms at one sample rate (``wave_b`` is the reference).
        resolutions: ``(n_fft, hop_length, win_length)`` triples; the default is Parallel WaveGAN's.
    """
    with torch.no_grad():
        return float(mr_stft_loss(wave_a, wave_b, resolutions))


def mr_stft_loss(wave_a: torch.Tensor, wave_b: torch.Tensor,
                 resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS) -> torch.Tensor:
    """The differentiable form of :func:`mr_stft_distance` (a scalar tensor), for training vocoders."""
    if not resolutions:
        raise ConfigError("mr_stft_distance needs at least one resolution")
    terms = [sum(stft_terms(wave_a, wave_b, *r)) for r in resolutions]
    return sum(terms) / len(terms)
