"""Griffin-Lim vocoder (Griffin & Lim 1984) with fast momentum (Perraudin et al. 2013).

The mel is mapped back to a linear magnitude spectrogram with the pseudo-inverse of the mel
filterbank (clamped at zero), then torchaudio's Griffin-Lim estimates the phase.  Deterministic:
the phase starts from zero rather than at random.
"""

from __future__ import annotations

from typing import Any

import torch
import torchaudio.functional as AF

from ..audio.settings import MEL_SETTING_KEYS, MelSettings
from ..errors import ConfigError
from ..registry import register
from .base import Vocoder


@register("vocoder", "griffinlim")
class GriffinLim(Vocoder):
    """Griffin-Lim phase reconstruction for any mel settings.

    Args:
        n_iter: Griffin-Lim iterations (more is slower and less metallic; 32 is a fair default).
        momentum: the fast Griffin-Lim momentum in [0, 1).
        **mel: the :class:`~audiodiff.audio.settings.MelSettings` fields (the model supplies them).
    """

    forwarded_keywords = MEL_SETTING_KEYS

    def __init__(
        self,
        n_iter: int = 32,
        momentum: float = 0.99,
        **mel: Any,
    ) -> None:
        super().__init__()
        if int(n_iter) < 1:
            raise ConfigError(f"griffinlim n_iter must be >= 1, got {n_iter}")
        if not 0 <= momentum < 1:
            raise ConfigError(f"griffinlim momentum must be in [0, 1), got {momentum}")
        self.n_iter, self.momentum = int(n_iter), float(momentum)
        m = MelSettings(**mel)
        self.mel_settings = m.as_dict()
        fb = AF.melscale_fbanks(m.n_fft // 2 + 1, m.f_min, m.f_max, m.n_mels, m.sample_rate, m.mel_norm,
                                m.mel_scale)  # (freqs, n_mels)
        self.register_buffer("inverse_fb", torch.linalg.pinv(fb.T), persistent=False)  # (freqs, n_mels)
        self.register_buffer("window", torch.hann_window(m.win_length), persistent=False)

    def config(self) -> dict[str, Any]:
        return {"name": "griffinlim", "n_iter": self.n_iter, "momentum": self.momentum, **self.mel_settings}

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, frames)`` log mel -> ``(B, 1, (frames - 1) * hop)`` waveform."""
        s = self.mel_settings
        mel = log_mel.float().exp()
        if s["power"] != 1.0:
            mel = mel ** (1.0 / s["power"])  # back to magnitude
        magnitude = (self.inverse_fb @ mel).clamp(min=0)  # (freqs, n_mels) @ (B, n_mels, T) -> (B, freqs, T)
        length = (log_mel.shape[-1] - 1) * s["hop_length"]
        wave = AF.griffinlim(
            magnitude, self.window, s["n_fft"], s["hop_length"], s["win_length"], power=1.0,
            n_iter=self.n_iter, momentum=self.momentum, length=length, rand_init=False,
        )  # (B, S)
        return wave.unsqueeze(1)  # (B, S) -> (B, 1, S)
