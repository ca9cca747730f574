"""The latent representation of latent diffusion: waveform -> log-mel -> frozen autoencoder -> scaled latent.

Latent diffusion (Rombach et al. 2022, "High-resolution image synthesis with latent diffusion
models", sec. 3-4) runs the diffusion model on ``z = scale * E(x)``, the latents of a pretrained,
frozen first-stage autoencoder (:class:`~audiodiff.audio.autoencoder.MelAutoencoder`), and decodes
samples with ``D(z / scale)``.  ``scale`` is set from data to ``1 / std(E(x))`` (their sec. 4.3.2
and appendix G, "rescaling the latent space"), so the latents have about unit variance whatever
the KL weight of the autoencoder; :meth:`Latent.fit_stats` estimates it (the training loop calls it
at step 0, with log-mels).  We encode with the posterior mean rather than a posterior sample, so
encoding is deterministic (edits keep their known regions exactly); with the small posterior
variance of a weakly KL-regularised autoencoder the two hardly differ.

Layouts: waveforms ``(B, 1, S)`` -> log-mels ``(B, n_mels, T)`` -> latents ``(B, C, n_mels /
freq_factor, T')`` with ``T' = ceil(T / time_factor)``; ``shape_per_frame = (C, n_mels /
freq_factor)``, so a 1D net sees ``C * n_mels / freq_factor`` channels and a 2D net a
``C``-channel image.  Decoding gives ``T' * time_factor`` mel frames, a little longer (at most
``time_factor - 1`` hops) than the encoded audio; :meth:`Latent.seconds_for` counts latent hops.

The autoencoder's weights are part of this module's state (frozen: ``requires_grad`` is False and
it stays in eval mode), so a latent diffusion model saves as one folder.  ``settings()`` are the
autoencoder's mel settings, so vocoders are checked against those.  Frequency-band edits are not
supported (a latent has no mel bins); time ranges map to latent frames.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import build, register
from .autoencoder import load_autoencoder


@register("representation", "latent")
class Latent(nn.Module):
    """Scaled latents of a frozen mel autoencoder.

    Args:
        autoencoder: the folder of a trained autoencoder (see
            :func:`audiodiff.training.train_autoencoder`), whose weights are loaded now,
            or an autoencoder config (``{"name": "mel_vae", "mel": {...}, ...}``) whose weights come
            later with the model's state (that is how a saved model rebuilds).  Default: an untrained
            ``mel_vae`` with default mel settings.
        scale: initial latent scale (a buffer; :meth:`fit_stats` sets it to ``1 / std`` of the latents).
    """

    def __init__(self, autoencoder: str | os.PathLike | Mapping[str, Any] | None = None, scale: float = 1.0) -> None:
        super().__init__()
        if isinstance(autoencoder, (str, os.PathLike)):
            self.autoencoder = load_autoencoder(autoencoder)
        elif autoencoder is None or isinstance(autoencoder, Mapping):
            self.autoencoder = build("autoencoder", dict(autoencoder or {"name": "mel_vae"}))
        else:
            raise ConfigError(f"latent autoencoder must be a folder or a config, got {type(autoencoder).__name__}")
        if not all(hasattr(self.autoencoder, k) for k in ("mel", "encode", "decode", "latent_shape_per_frame")):
            raise ConfigError(f"autoencoder {type(self.autoencoder).__name__} lacks the mel autoencoder interface")
        self.autoencoder.requires_grad_(False).eval()
        if not math.isfinite(scale) or scale <= 0:
            raise ConfigError(f"latent scale must be a positive number, got {scale!r}")
        self.register_buffer("scale", torch.tensor(float(scale)))

    # -- description ----------------------------------------------------------------------------
    @property
    def mel(self) -> nn.Module:
        """The autoencoder's :class:`~audiodiff.audio.mel.Mel` (settings and statistics)."""
        return self.autoencoder.mel

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def hop_length(self) -> int:
        """The mel hop in samples (of the log-mels :meth:`log_mel` and :meth:`to_log_mel` give)."""
        return self.mel.hop_length

    @property
    def time_factor(self) -> int:
        """Mel frames per latent frame."""
        return self.autoencoder.time_factor

    def settings(self) -> dict[str, Any]:
        """The mel settings a vocoder must share (the autoencoder's)."""
        return self.mel.settings()

    def config(self) -> dict[str, Any]:
        """Constructor keywords that rebuild this representation (the autoencoder inline; weights travel as tensors)."""
        return {"name": "latent", "autoencoder": self.autoencoder.config()}

    @property
    def shape_per_frame(self) -> tuple[int, ...]:
        """``(C, n_mels / freq_factor)``: one latent frame."""
        return tuple(self.autoencoder.latent_shape_per_frame)

    def frames_for(self, seconds: float) -> int:
        """Latent frames that encode ``seconds`` of audio."""
        return self.frames_for_samples(round(seconds * self.sample_rate))

    def frames_for_samples(self, num_samples: int) -> int:
        return self.autoencoder.latent_frames(self.mel.frames_for_samples(num_samples))

    def seconds_for(self, frames: int) -> float:
        """``frames - 1`` latent hops (``time_factor`` mel hops each), as :meth:`Mel.seconds_for` counts mel
        hops: the shortest audio that encodes to ``frames`` latent frames (decoding gives ``time_factor - 1``
        mel hops more)."""
        return self.mel.seconds_for((int(frames) - 1) * self.time_factor + 1)

    # -- transforms -------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Latent":
        """Training mode never reaches the frozen autoencoder (it stays in eval mode)."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, 1, S)`` waveforms -> ``(B, n_mels, frames)`` natural-log mels (the front end; cacheable)."""
        return self.mel.log_mel(wave)

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Natural-log mels ``(B, n_mels, T)`` -> scaled latents ``(B, C, H', T')`` (the step after :meth:`log_mel`)."""
        mean, _ = self.autoencoder.encode(self.mel.normalize(log_mel))  # (B, C, H', T')
        return mean * self.scale

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, 1, S)`` waveforms -> ``(B, C, H', T')`` scaled latents."""
        return self.normalize(self.log_mel(wave))

    def to_log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, C, H', T')`` -> natural-log mels ``(B, n_mels, T' * time_factor)``, clamped
        to the range real audio has (:meth:`Mel.to_log_mel`)."""
        return self.mel.to_log_mel(self.autoencoder.decode(x / self.scale))

    def decode(self, x: torch.Tensor, vocoder: nn.Module) -> torch.Tensor:
        """Scaled latents ``(B, C, H', T')`` -> waveforms ``(B, 1, S)`` through the decoder and ``vocoder``."""
        return vocoder(self.to_log_mel(x))

    @torch.no_grad()
    def fit_stats(self, log_mels: Iterable[torch.Tensor]) -> None:
        """Set ``scale = 1 / std`` of the unscaled latents of batches of ``(B, n_mels, frames)`` log-mels
        (Rombach et al. 2022, sec. 4.3.2).  The mel statistics are the autoencoder's and stay as they are."""
        count, total, total_sq = 0, 0.0, 0.0
        for m in log_mels:
            z, _ = self.autoencoder.encode(self.mel.normalize(m.to(self.scale.device)))  # (B, C, H', T')
            z = z.double()
            count, total, total_sq = count + z.numel(), total + float(z.sum()), total_sq + float(z.pow(2).sum())
        if count == 0:
            raise ConfigError("cannot fit the latent scale: no frames given")
        std = math.sqrt(max(total_sq / count - (total / count) ** 2, 0.0))
        self.scale.fill_(1.0 / max(std, 1e-6))

    def extra_repr(self) -> str:
        return f"scale={float(self.scale):.4g}, sample_rate={self.sample_rate}"
