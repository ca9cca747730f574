"""Vocos: a ConvNeXt backbone over mel frames and an inverse-STFT head (Siuzdak 2023, "Vocos").

The network never upsamples in time: it runs at the frame rate of the mel and predicts, for every
frame, the complex STFT coefficients of the waveform, which ``torch.istft`` (with the mel's own
``n_fft``, hop and window) turns into audio.  As in Vocos (section 3):

- a Conv1d embeds the ``n_mels`` bins into ``dim`` channels, followed by a LayerNorm;
- ``num_layers`` ConvNeXt blocks (Liu et al. 2022): depthwise conv (kernel 7), LayerNorm, pointwise
  MLP with GELU, layer scale, residual;
- the head predicts, per frequency bin, a log-magnitude ``m`` and an angle ``p``; the coefficient
  is ``exp(m) * (cos p + i sin p)`` (Vocos eq. 3-4), the magnitude clipped to ``n_fft`` (the largest
  STFT magnitude of audio in [-1, 1]).

Input: natural-log magnitude mels ``(B, n_mels, frames)`` (the :class:`~audiodiff.vocoders.Vocoder`
interface), normalised inside by the fixed affine ``(log_mel - INPUT_MEAN) / INPUT_STD``.  Output:
``(B, 1, (frames - 1) * hop_length)``, the length :class:`~audiodiff.vocoders.GriffinLim` gives.
Train it with :func:`audiodiff.training.train_vocoder`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.settings import MEL_SETTING_KEYS, MelSettings
from ..errors import ConfigError
from ..registry import register
from .base import Vocoder

#: fixed input normalisation of natural-log mels (their usual range is about -11.5 .. 5)
INPUT_MEAN, INPUT_STD = -5.0, 2.5


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block on ``(B, dim, T)`` (Liu et al. 2022; as adapted to 1D in Vocos, section 3.1)."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, dim, T) -> (B, T, dim)
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)  # (B, T, dim) -> (B, dim, T)


@register("vocoder", "vocos")
class Vocos(Vocoder):
    """Vocos neural vocoder for one set of mel settings (Siuzdak 2023).

    Args:
        dim: backbone channels.
        intermediate_dim: hidden size of each ConvNeXt block's MLP.
        num_layers: ConvNeXt blocks.
        **mel: the :class:`~audiodiff.audio.settings.MelSettings` fields; the STFT of the head uses the same
            ``n_fft``, ``hop_length`` and ``win_length`` (Hann window).

    The defaults (dim 192, 8 layers) have about 2 M parameters.
    """

    forwarded_keywords = MEL_SETTING_KEYS

    def __init__(
        self,
        dim: int = 192,
        intermediate_dim: int = 576,
        num_layers: int = 8,
        **mel: Any,
    ) -> None:
        super().__init__()
        if min(int(dim), int(intermediate_dim), int(num_layers)) < 1:
            raise ConfigError(f"vocos dim, intermediate_dim and num_layers must be >= 1, "
                              f"got {dim}, {intermediate_dim}, {num_layers}")
        m = MelSettings(**mel)
        self.mel_settings = m.as_dict()
        if m.win_length > m.n_fft:
            raise ConfigError(f"vocos win_length {m.win_length} is larger than n_fft {m.n_fft}")
        self.dim, self.intermediate_dim, self.num_layers = int(dim), int(intermediate_dim), int(num_layers)
        self.embed = nn.Conv1d(m.n_mels, self.dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(self.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(self.dim, self.intermediate_dim, 1.0 / self.num_layers) for _ in range(self.num_layers))
        self.final_norm = nn.LayerNorm(self.dim, eps=1e-6)
        self.head = nn.Linear(self.dim, m.n_fft + 2)  # log-magnitude and angle of n_fft // 2 + 1 bins
        self.register_buffer("window", torch.hann_window(m.win_length), persistent=False)
        self.apply(_init_weights)

    def config(self) -> dict[str, Any]:
        return {"name": "vocos", "dim": self.dim, "intermediate_dim": self.intermediate_dim,
                "num_layers": self.num_layers, **self.mel_settings}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def spectrogram(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, frames)`` log mel -> ``(B, n_fft // 2 + 1, frames)`` complex STFT (Vocos eq. 3-4)."""
        x = (log_mel - INPUT_MEAN) / INPUT_STD
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)  # (B, dim, T), normalised over dim
        for block in self.blocks:
            x = block(x)
        out = self.head(self.final_norm(x.transpose(1, 2))).float()  # (B, dim, T) -> (B, T, n_fft + 2)
        log_mag, angle = out.transpose(1, 2).chunk(2, dim=1)  # 2 x (B, n_fft // 2 + 1, T)
        magnitude = log_mag.clamp(max=math.log(self.mel_settings["n_fft"])).exp()
        return torch.polar(magnitude, angle)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, frames)`` natural-log mel -> ``(B, 1, (frames - 1) * hop)`` waveform."""
        if log_mel.dim() != 3 or log_mel.shape[1] != self.mel_settings["n_mels"]:
            raise ConfigError(f"vocos expects (B, {self.mel_settings['n_mels']}, frames) mels, got {tuple(log_mel.shape)}")
        s = self.mel_settings
        spec = self.spectrogram(log_mel.float())
        length = (log_mel.shape[-1] - 1) * s["hop_length"]
        wave = torch.istft(spec, s["n_fft"], s["hop_length"], s["win_length"], self.window, center=True,
                           length=length)  # (B, S)
        return wave.unsqueeze(1)  # (B, S) -> (B, 1, S)

    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (loadable with ``load_vocoder_folder``)."""
        from .base import save_vocoder_folder

        return save_vocoder_folder(self, folder, dtype)


def _init_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) weights and zero biases, as Vocos initialises its backbone."""
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
