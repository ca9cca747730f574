"""A convolutional KL-regularised autoencoder of normalised log-mels: the first stage of latent diffusion.

Latent diffusion (Rombach et al. 2022, "High-resolution image synthesis with latent diffusion
models", sec. 3.1) trains the diffusion model on the latents of a small perceptual-compression
autoencoder rather than on the signal itself.  :class:`MelAutoencoder` is their KL-regularised
variant ("KL-reg", sec. 3.1 and appendix G) for mel spectrograms: the encoder outputs the mean and
log-variance of a diagonal Gaussian posterior ``q(z | x)`` (a VAE, Kingma & Welling 2014,
"Auto-encoding variational Bayes", sec. 2.4), the decoder reconstructs the normalised log-mel from
a sample ``z``, and the loss is the L1 reconstruction error (plus an optional L2 term) and a small
weight times ``KL(q(z | x) || N(0, I))`` (Kingma & Welling 2014, appendix B), which keeps the latent
space near a unit Gaussian without forcing it to give up detail.  Like Rombach et al. we skip the
KL weight's usual scale: the reconstruction term is a mean over mel cells and the KL term is the
sum over latent cells divided by the number of mel cells, so ``kl_weight`` means what their
``kl_weight = 1e-6`` means (their losses are sums over pixels).  The adversarial and perceptual
terms of their autoencoder are left out (no cheap perceptual metric exists for mels).

Layout: log-mels ``(B, n_mels, T)`` are treated as one-channel images ``(B, 1, n_mels, T)`` and
compressed by 2D convolutions to latents ``(B, C, n_mels / freq_factor, ceil(T / time_factor))``.
2D rather than 1D (mel bins as channels) because the structure of a spectrogram is local in
frequency as well as time (harmonics, formants and onsets move along the mel axis), and a 2D conv
is translation-equivariant along both axes, so the same small filters serve every register with
far fewer weights than a 1D conv that sees all bins at once; it also lets the latent keep a
(coarser) frequency axis that a 2D U-Net can denoise as an image.  Any frame count works: the
input is padded at the end to a multiple of ``time_factor`` (repeating the last frame) and the
reconstruction is cropped back.

The autoencoder owns the :class:`~audiodiff.audio.mel.Mel` it was trained with (settings and
normalisation statistics), so its folder (``config.json`` + ``model.safetensors``, written by
:meth:`MelAutoencoder.save`) is all that :class:`~audiodiff.audio.latent.Latent` needs.

Its building blocks (:class:`ResBlock2d`, :class:`Upsample2d`, :func:`standard_normal_kl`) are public:
the conditional VAE baseline :class:`~audiodiff.generators.vae.MelCVAE` is built from the same pieces.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_built_folder, save_folder
from ..errors import ConfigError
from ..registry import register
from .mel import Mel

#: config keys of a saved autoencoder folder that describe it rather than build it
METADATA_KEYS = ("audiodiff_version", "training", "autoencoder_training")


def standard_normal_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(logvar)) || N(0, 1))`` elementwise (Kingma & Welling 2014, appendix B), any shape."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


class ResBlock2d(nn.Module):
    """``x + conv(SiLU(GN(conv(SiLU(GN(x))))))`` with a 1x1 skip when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(norm_groups, in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.GroupNorm(norm_groups, out_channels), nn.SiLU(), nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W)`` -> ``(B, out, H, W)``."""
        return self.skip(x) + self.body(x)


class Upsample2d(nn.Module):
    """Nearest-neighbour upsampling by ``(freq, time)`` factors, then a 3x3 conv."""

    def __init__(self, channels: int, factors: tuple[int, int]) -> None:
        super().__init__()
        self.factors = factors
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H * f, W * t)``."""
        return self.conv(F.interpolate(x, scale_factor=self.factors, mode="nearest"))


@register("autoencoder", "mel_vae")
class MelAutoencoder(nn.Module):
    """KL-regularised convolutional autoencoder of normalised log-mels (Rombach et al. 2022, sec. 3.1).

    Args:
        mel: the :class:`Mel` config (settings; its statistics are buffers fitted before training).
        latent_channels: ``C``, channels of the latent.
        channels: width of the first level; level ``i`` has ``channels * channel_mults[i]``.
        channel_mults: width multipliers; between consecutive levels the resolution is halved in
            time while ``time_factor`` is not reached, and in frequency while ``freq_factor`` is not.
        num_res_blocks: residual blocks per level (encoder and decoder).
        time_factor, freq_factor: compression of the frame and mel-bin axes (powers of 2; at most
            ``2 ** (len(channel_mults) - 1)``; ``n_mels`` must be divisible by ``freq_factor``).
        norm_groups: GroupNorm groups (must divide every width).

    Shapes: :meth:`encode` ``(B, n_mels, T)`` -> mean and log-variance ``(B, C, n_mels / freq_factor,
    ceil(T / time_factor))``; :meth:`decode` latents -> ``(B, n_mels, T' * time_factor)``.
    """

    def __init__(
        self,
        mel: Mapping[str, Any] | None = None,
        latent_channels: int = 4,
        channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 4),
        num_res_blocks: int = 1,
        time_factor: int = 4,
        freq_factor: int = 4,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        mel_cfg = {k: v for k, v in dict(mel or {}).items() if k != "name"}
        if dict(mel or {}).get("name", "mel") != "mel":
            raise ConfigError(f"mel_vae needs a 'mel' representation config, got name {dict(mel)['name']!r}")
        self.mel = Mel(**mel_cfg)
        channel_mults = tuple(int(m) for m in channel_mults)
        _validate(self.mel.n_mels, latent_channels, channels, channel_mults, num_res_blocks, time_factor,
                  freq_factor, norm_groups)
        self.latent_channels, self.channels, self.channel_mults = int(latent_channels), int(channels), channel_mults
        self.num_res_blocks, self.norm_groups = int(num_res_blocks), int(norm_groups)
        self.time_factor, self.freq_factor = int(time_factor), int(freq_factor)
        widths = [channels * m for m in channel_mults]
        strides = [(2 if 2**i < freq_factor else 1, 2 if 2**i < time_factor else 1) for i in range(len(widths) - 1)]
        self.encoder = self._encoder(widths, strides)
        self.decoder = self._decoder(widths, strides)

    def _encoder(self, widths: list[int], strides: list[tuple[int, int]]) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(1, widths[0], 3, padding=1)]
        width = widths[0]
        for level, out in enumerate(widths):
            for _ in range(self.num_res_blocks):
                layers.append(ResBlock2d(width, out, self.norm_groups))
                width = out
            if level < len(strides):
                layers.append(nn.Conv2d(width, width, 3, stride=strides[level], padding=1))
        layers += [ResBlock2d(width, width, self.norm_groups), nn.GroupNorm(self.norm_groups, width), nn.SiLU(),
                   nn.Conv2d(width, 2 * self.latent_channels, 3, padding=1)]  # -> mean and log-variance
        return nn.Sequential(*layers)

    def _decoder(self, widths: list[int], strides: list[tuple[int, int]]) -> nn.Sequential:
        width = widths[-1]
        layers: list[nn.Module] = [nn.Conv2d(self.latent_channels, width, 3, padding=1),
                                   ResBlock2d(width, width, self.norm_groups)]
        for level in reversed(range(len(widths))):
            for _ in range(self.num_res_blocks):
                layers.append(ResBlock2d(width, widths[level], self.norm_groups))
                width = widths[level]
            if level > 0:
                layers.append(Upsample2d(width, strides[level - 1]))
        layers += [nn.GroupNorm(self.norm_groups, width), nn.SiLU(), nn.Conv2d(width, 1, 3, padding=1)]
        return nn.Sequential(*layers)

    # -- description ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor keywords that rebuild this autoencoder (weights and mel statistics travel as tensors)."""
        return {"name": "mel_vae", "mel": self.mel.config(), "latent_channels": self.latent_channels,
                "channels": self.channels, "channel_mults": list(self.channel_mults),
                "num_res_blocks": self.num_res_blocks, "time_factor": self.time_factor,
                "freq_factor": self.freq_factor, "norm_groups": self.norm_groups}

    @property
    def latent_shape_per_frame(self) -> tuple[int, int]:
        """``(C, n_mels / freq_factor)``: one latent frame."""
        return (self.latent_channels, self.mel.n_mels // self.freq_factor)

    def latent_frames(self, frames: int) -> int:
        """Latent frames for ``frames`` mel frames: ``ceil(frames / time_factor)``."""
        return -(-int(frames) // self.time_factor)

    # -- the two halves ------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised log-mels ``(B, n_mels, T)`` -> posterior mean and log-variance ``(B, C, H', T')`` each."""
        if x.dim() != 3 or x.shape[1] != self.mel.n_mels:
            raise ConfigError(f"the autoencoder takes (B, {self.mel.n_mels}, frames) mels, got {tuple(x.shape)}")
        pad = self.latent_frames(x.shape[-1]) * self.time_factor - x.shape[-1]
        x = F.pad(x, (0, pad), mode="replicate") if pad else x  # (B, n_mels, T) -> (B, n_mels, T' * time_factor)
        h = self.encoder(x[:, None])  # (B, 1, n_mels, T'f) -> (B, 2C, H', T')
        mean, logvar = h.chunk(2, dim=1)  # (B, C, H', T') each
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, C, H', T')`` -> normalised log-mels ``(B, n_mels, T' * time_factor)``."""
        return self.decoder(z)[:, 0]  # (B, 1, n_mels, T'f) -> (B, n_mels, T'f)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """``(B, n_mels, T)`` -> reconstruction ``(B, n_mels, T)`` of a posterior sample, mean, log-variance."""
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator).to(mean.device, mean.dtype)  # drawn on the CPU generator
        z = mean + (0.5 * logvar).exp() * eps  # reparameterisation (Kingma & Welling 2014, sec. 2.4)
        return self.decode(z)[..., : x.shape[-1]], mean, logvar

    def loss(self, x: torch.Tensor, kl_weight: float = 1e-5, l2_weight: float = 0.0,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Training loss on normalised log-mels ``(B, n_mels, T)``.

        Returns ``{"loss", "l1", "l2", "kl"}`` scalars: ``loss = l1 + l2_weight * l2 + kl_weight * kl``
        with ``l1``/``l2`` means over mel cells and ``kl`` the summed ``KL(q(z|x) || N(0, I))`` per clip
        divided by the mel cells per clip (see the module docstring).
        """
        recon, mean, logvar = self(x, generator)
        recon, mean, logvar = recon.float(), mean.float(), logvar.float()
        l1 = (recon - x).abs().mean()
        l2 = (recon - x).pow(2).mean()
        kl = standard_normal_kl(mean, logvar).sum() / x.numel()
        return {"loss": l1 + l2_weight * l2 + kl_weight * kl, "l1": l1, "l2": l2, "kl": kl}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` -> the decoded posterior mean ``(B, n_mels, T)`` (no sampling)."""
        return self.decode(self.encode(x)[0])[..., : x.shape[-1]]

    # -- persistence ---------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None,
             metadata: Mapping[str, Any] | None = None) -> Path:
        """Write ``config.json`` (:meth:`config` plus ``metadata``, e.g. ``training``) + ``model.safetensors``."""
        from .._version import __version__

        config = {**copy.deepcopy(dict(metadata or {})), **self.config(), "audiodiff_version": __version__}
        return save_folder(folder, config, self.state_dict(), dtype)

    def extra_repr(self) -> str:
        return (f"latent {self.latent_channels} x n_mels/{self.freq_factor} x frames/{self.time_factor}, "
                f"{sum(p.numel() for p in self.parameters()):,} parameters")


def load_autoencoder(folder: str | os.PathLike) -> MelAutoencoder:
    """An autoencoder saved by :meth:`MelAutoencoder.save` (any registered ``autoencoder``), in eval mode.

    ``folder`` may also be the training run folder (its ``model/`` is the trained autoencoder).  Every
    problem (missing folder, bad config, weights that do not fit) is a one-line
    :class:`~audiodiff.errors.ModelLoadError`.
    """
    return load_built_folder("autoencoder", folder, METADATA_KEYS)


def _validate(n_mels, latent_channels, channels, channel_mults, num_res_blocks, time_factor, freq_factor,
              norm_groups) -> None:
    def power_of_two(n: int) -> bool:
        return n >= 1 and n & (n - 1) == 0

    if min(latent_channels, channels, num_res_blocks, norm_groups) < 1 or not channel_mults or min(channel_mults) < 1:
        raise ConfigError("mel_vae latent_channels, channels, channel_mults, num_res_blocks and norm_groups "
                          "must be positive")
    if not (power_of_two(time_factor) and power_of_two(freq_factor)):
        raise ConfigError(f"mel_vae time_factor and freq_factor must be powers of 2, got {time_factor}, {freq_factor}")
    if max(time_factor, freq_factor) > 2 ** (len(channel_mults) - 1):
        raise ConfigError(f"mel_vae needs {int(math.log2(max(time_factor, freq_factor))) + 1} levels (channel_mults) "
                          f"to compress by {max(time_factor, freq_factor)}, got {len(channel_mults)}")
    if n_mels % freq_factor:
        raise ConfigError(f"n_mels {n_mels} is not divisible by the autoencoder's freq_factor {freq_factor}")
    if any((channels * m) % norm_groups for m in channel_mults):
        raise ConfigError(f"mel_vae widths {[channels * m for m in channel_mults]} must be divisible by "
                          f"norm_groups {norm_groups}")
