"""The mel-spectrogram representation: waveform -> STFT -> mel -> log -> per-bin normalisation.

``Mel.encode`` maps waveforms ``(B, 1, S)`` to normalised log-mels ``(B, n_mels, frames)`` with
``frames = S // hop_length + 1`` (centred STFT); ``Mel.decode`` undoes the normalisation and hands
the natural-log magnitude mel to a vocoder.  The normalisation statistics (a mean and std per mel
bin) are buffers, so they are saved with the model; :meth:`Mel.fit_stats` estimates them from data.
The filterbank is torchaudio's (Slaney mel scale and area normalisation by default, as
librosa and most neural vocoders use).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
import torchaudio.functional as AF
from torch import nn

from ..errors import ConfigError
from ..registry import register

#: keys of :meth:`Mel.settings` that a vocoder must share with the model.
MEL_SETTING_KEYS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "f_min", "f_max",
                    "power", "mel_scale", "mel_norm", "log_floor")


@register("representation", "mel")
class Mel(nn.Module):
    """Log-mel spectrogram with per-bin normalisation.

    Args:
        sample_rate: audio rate in Hz.
        n_fft, hop_length, win_length: STFT size, hop and window (Hann) length in samples.
        n_mels, f_min, f_max: mel filterbank (``f_max`` None means ``sample_rate / 2``).
        power: 1 for a magnitude mel, 2 for a power mel.
        mel_scale, mel_norm: ``"slaney"``/``"htk"`` scale and ``"slaney"``/``None`` filter norm.
        log_floor: magnitudes are clamped to this before the log.
        mean, std: initial normalisation statistics (scalars, or lists of ``n_mels``).
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int | None = None,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 1.0,
        mel_scale: str = "slaney",
        mel_norm: str | None = "slaney",
        log_floor: float = 1e-5,
        mean: float | list[float] = -5.0,
        std: float | list[float] = 2.5,
    ) -> None:
        super().__init__()
        win_length = win_length or n_fft
        f_max = float(f_max) if f_max is not None else sample_rate / 2
        _validate(sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, log_floor)
        self.sample_rate, self.n_fft, self.hop_length = int(sample_rate), int(n_fft), int(hop_length)
        self.win_length, self.n_mels = int(win_length), int(n_mels)
        self.f_min, self.f_max, self.power = float(f_min), f_max, float(power)
        self.mel_scale, self.mel_norm, self.log_floor = mel_scale, mel_norm, float(log_floor)
        fb = AF.melscale_fbanks(self.n_fft // 2 + 1, self.f_min, self.f_max, self.n_mels, self.sample_rate,
                                mel_norm, mel_scale)  # (freqs, n_mels)
        # derived from the settings, so not saved with the weights
        self.register_buffer("filterbank", fb.T.contiguous(), persistent=False)  # (n_mels, freqs)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.register_buffer("mean", torch.full((n_mels,), 0.0) + torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.full((n_mels,), 0.0) + torch.as_tensor(std, dtype=torch.float32))

    # -- description ----------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The mel settings a vocoder must share (JSON-able)."""
        return {k: getattr(self, k) for k in MEL_SETTING_KEYS}

    def config(self) -> dict[str, Any]:
        """Constructor keywords that rebuild this representation (statistics travel as buffers)."""
        return {"name": "mel", **self.settings()}

    @property
    def shape_per_frame(self) -> tuple[int, ...]:
        """Shape of one frame of the encoding: ``(n_mels,)``."""
        return (self.n_mels,)

    def frames_for(self, seconds: float) -> int:
        """Number of frames that encode ``seconds`` of audio."""
        return self.frames_for_samples(round(seconds * self.sample_rate))

    def frames_for_samples(self, num_samples: int) -> int:
        return int(num_samples) // self.hop_length + 1

    def seconds_for(self, frames: int) -> float:
        return (frames - 1) * self.hop_length / self.sample_rate

    # -- transforms -------------------------------------------------------------------------
    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, 1, S)`` or ``(B, S)`` waveforms -> ``(B, n_mels, frames)`` natural-log mels."""
        if wave.dim() == 3:
            if wave.shape[1] != 1:
                raise ConfigError(f"Mel expects mono audio (B, 1, S), got {tuple(wave.shape)}")
            wave = wave[:, 0]  # (B, 1, S) -> (B, S)
        spec = torch.stft(wave.float(), self.n_fft, self.hop_length, self.win_length, self.window,
                          center=True, pad_mode="reflect", return_complex=True).abs()  # (B, freqs, frames)
        if self.power != 1.0:
            spec = spec**self.power
        mel = self.filterbank @ spec  # (n_mels, freqs) @ (B, freqs, frames) -> (B, n_mels, frames)
        return mel.clamp(min=self.log_floor).log()

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        return (log_mel - self.mean[:, None]) / self.std[:, None]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std[:, None] + self.mean[:, None]

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, 1, S)`` waveforms -> ``(B, n_mels, frames)`` normalised log-mels."""
        return self.normalize(self.log_mel(wave))

    def decode(self, x: torch.Tensor, vocoder: nn.Module) -> torch.Tensor:
        """``(B, n_mels, frames)`` normalised log-mels -> ``(B, 1, S)`` waveforms through ``vocoder``.

        Log-mels are clamped (:meth:`to_log_mel`) to what audio in [-1, 1] can produce (from ``log(log_floor)`` up to
        ``log(n_fft)``, the largest STFT magnitude of a full-scale signal), so a wild sample is loud
        rather than infinite.
        """
        return vocoder(self.to_log_mel(x))

    def to_log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, n_mels, frames)`` -> natural-log mel, clamped to the range real audio has."""
        return self.denormalize(x).clamp(math.log(self.log_floor), math.log(self.n_fft))

    @torch.no_grad()
    def fit_stats(self, log_mels: Iterable[torch.Tensor], min_std: float = 1e-2) -> None:
        """Set the per-bin mean and std from batches of ``(B, n_mels, frames)`` log-mels."""
        count, total, total_sq = 0, torch.zeros(self.n_mels, dtype=torch.float64), torch.zeros(self.n_mels, dtype=torch.float64)
        for m in log_mels:
            m = m.detach().to("cpu", torch.float64).transpose(0, 1).reshape(self.n_mels, -1)  # (n_mels, B*frames)
            count += m.shape[1]
            total += m.sum(1)
            total_sq += (m**2).sum(1)
        if count == 0:
            raise ConfigError("cannot fit mel statistics: no frames given")
        mean = total / count
        std = (total_sq / count - mean**2).clamp(min=0).sqrt().clamp(min=min_std)
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ConfigError("cannot fit mel statistics: the audio holds NaN or inf samples")
        self.mean.copy_(mean.float())
        self.std.copy_(std.float())

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings().items())


def _validate(sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, log_floor) -> None:
    if sample_rate <= 0 or n_fft <= 0 or hop_length <= 0 or n_mels <= 0:
        raise ConfigError("mel sample_rate, n_fft, hop_length and n_mels must be positive")
    if win_length > n_fft:
        raise ConfigError(f"mel win_length {win_length} is larger than n_fft {n_fft}")
    if not 0 <= f_min < f_max <= sample_rate / 2 + 1e-6:
        raise ConfigError(f"mel needs 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}")
    if n_mels > n_fft // 2 + 1:
        raise ConfigError(f"n_mels {n_mels} is more than the {n_fft // 2 + 1} STFT bins")
    if not log_floor > 0 or not math.isfinite(log_floor):
        raise ConfigError("mel log_floor must be a positive number")
