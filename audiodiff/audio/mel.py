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
from .settings import MEL_SETTING_KEYS, MelSettings



@register("representation", "mel")
class Mel(nn.Module):
    """Log-mel spectrogram with per-bin normalisation.

    Args:
        mean, std: initial normalisation statistics (scalars, or lists of ``n_mels``).
        **mel: the :class:`~audiodiff.audio.settings.MelSettings` fields (``sample_rate``, ``n_fft``, ...);
            each is also an attribute (``mel.n_mels``).
    """

    #: keywords taken through ``**mel`` (the registry checks configs against them)
    forwarded_keywords = MEL_SETTING_KEYS

    def __init__(self, mean: float | list[float] = -5.0, std: float | list[float] = 2.5, **mel: Any) -> None:
        super().__init__()
        self.mel_settings = MelSettings(**mel).check()
        for key, value in self.mel_settings.as_dict().items():
            setattr(self, key, value)  # mel.sample_rate, mel.n_mels, ...: read-only copies of the settings
        n_mels = self.n_mels
        fb = AF.melscale_fbanks(self.n_fft // 2 + 1, self.f_min, self.f_max, self.n_mels, self.sample_rate,
                                self.mel_norm, self.mel_scale)  # (freqs, n_mels)
        # derived from the settings, so not saved with the weights
        self.register_buffer("filterbank", fb.T.contiguous(), persistent=False)  # (n_mels, freqs)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.register_buffer("mean", torch.full((n_mels,), 0.0) + torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.full((n_mels,), 0.0) + torch.as_tensor(std, dtype=torch.float32))

    # -- description ----------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The mel settings a vocoder must share (JSON-able)."""
        return self.mel_settings.as_dict()

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
