"""A conditional GAN of normalised log-mels: a SpecGAN-style generator and a projection discriminator.

A GAN (Goodfellow et al. 2014, "Generative adversarial nets", eq. 1) trains a generator ``G(z, y)``
that maps noise ``z ~ N(0, I)`` and a class label ``y`` to a sample in one pass, against a
discriminator ``D(x, y)`` that learns to tell real samples from generated ones.  SpecGAN (Donahue et
al. 2019, "Adversarial audio synthesis", sec. 4) applies the DCGAN recipe (Radford et al. 2016) to
the spectrogram as a one-channel image, and so does :class:`MelGAN` on normalised log-mels
``(B, n_mels, frames)`` seen as ``(B, 1, n_mels, frames)``:

- :class:`MelGAN` (the generator): ``[z, embed(y)]`` -> a linear map to a ``(2c, n_mels/8, frames/8)``
  grid -> three stages of nearest-neighbour x2 upsampling + 3x3 conv (widths ``c, c/2, c/4``), each
  followed by a label-conditional GroupNorm and a ReLU -> a 3x3 conv to one channel, cropped to
  ``(n_mels, frames)``.  Upsample + conv rather than SpecGAN's transposed convolutions avoids their
  checkerboard artefacts (Odena et al. 2016, "Deconvolution and checkerboard artifacts").  The
  normalisation is conditional (the class embedding sets a per-channel scale and shift, as the
  conditional batch norm of de Vries et al. 2017 and BigGAN, Brock et al. 2019, sec. 3) but over
  groups (Wu & He 2018) rather than the batch, so the generator behaves the same in training and
  evaluation and its EMA copy needs no re-estimated batch statistics.  The output is unbounded:
  normalised log-mels have about unit standard deviation per bin.
- :class:`MelDiscriminator`: stride-2 4x4 convolutions (DCGAN) with leaky ReLU 0.2, spectral
  normalisation on every layer (Miyato et al. 2018, "Spectral normalization for generative
  adversarial networks", sec. 2.1), and the label by projection (Miyato & Koyama 2018, "cGANs with
  projection discriminator", eq. 3): ``D(x, y) = psi(h) + <embed(y), h>`` with ``h`` the flattened
  last feature map (flattened rather than pooled so that ``D`` knows where in frequency a feature
  sits).

Objective.  WaveGAN and SpecGAN trained with WGAN-GP (Gulrajani et al. 2017), five discriminator
steps per generator step.  We use the hinge loss (Lim & Ye 2017, "Geometric GAN"; Miyato et al.
2018, eq. 17) with spectral normalisation and projection instead, one discriminator step per
generator step, Adam with betas ``(0.0, 0.9)`` and the two time-scale update rule (Heusel et al.
2017: a faster discriminator, ``lr_d = 4 lr_g``), the settings of SAGAN (Zhang et al. 2019, sec. 5)
and BigGAN: Lipschitz control by spectral normalisation costs one power iteration per layer, where a
gradient penalty needs a double backward through ``D`` on every step, and one ``D`` step instead of
five makes a training step several times cheaper on a CPU.  The training loop is
:func:`audiodiff.training.train_gan`; the losses are :mod:`audiodiff.vocoders.discriminators`'.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError
from ..registry import register
from .base import MelGenerator

#: upsampling (generator) and downsampling (discriminator) stages, each a factor 2 on both axes
STAGES = 3
#: at most this many GroupNorm groups (fewer where a width is not divisible by it)
NORM_GROUPS = 8
#: leaky ReLU slope of the discriminator (DCGAN, SNGAN)
LRELU_SLOPE = 0.2


def _widths(channels: int) -> list[int]:
    """Generator widths from the first grid to the last stage: ``2c, c, c/2, c/4`` (at least 1)."""
    return [max(1, channels * 2 // 2**i) for i in range(STAGES + 1)]


class ConditionalGroupNorm(nn.Module):
    """GroupNorm without its own affine, then a per-channel scale ``1 + gamma(e)`` and shift ``beta(e)``
    from the class embedding ``e`` (conditional normalisation, de Vries et al. 2017; starts as plain GN)."""

    def __init__(self, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(NORM_GROUPS, channels), channels, affine=False)
        self.affine = nn.Linear(embed_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x (B, C, H, W)``, ``emb (B, E)`` -> ``(B, C, H, W)``."""
        gamma, beta = self.affine(emb)[:, :, None, None].chunk(2, dim=1)  # (B, 2C) -> 2 x (B, C, 1, 1)
        return self.norm(x) * (1 + gamma) + beta


@register("generator", "mel_gan")
class MelGAN(MelGenerator):
    """The generator of a conditional GAN of normalised log-mels (SpecGAN-style; see the module docstring).

    Args:
        mel: the :class:`~audiodiff.audio.mel.Mel` config (its statistics are buffers fitted before training).
        labels: the class names.
        seconds: clip length; the model generates ``mel.frames_for(seconds)`` frames.
        latent_dim: size of the noise vector ``z``.
        channels: base width ``c``: the first grid has ``2c`` channels, the three upsampling stages
            ``c``, ``c/2`` and ``c/4``; the discriminator (:meth:`discriminator`) has ``c/2, c, 2c``.
        embed_dim: size of the label embedding.

    Shapes: :meth:`decode_latents` (= ``forward``) ``z (B, latent_dim)``, label indices ``(B,)`` ->
    ``(B, n_mels, frames)``.
    """

    def __init__(
        self,
        mel: Mapping[str, Any] | None,
        labels: Sequence[str],
        seconds: float = 1.0,
        latent_dim: int = 128,
        channels: int = 64,
        embed_dim: int = 64,
    ) -> None:
        super().__init__(mel, labels, seconds)
        self.latent_dim, self.channels, self.embed_dim = int(latent_dim), int(channels), int(embed_dim)
        _validate(self)
        factor = 2**STAGES
        self.grid = (-(-self.mel.n_mels // factor), -(-self.frames // factor))  # (freq, time) of the first grid
        widths = _widths(self.channels)
        self.embed = nn.Embedding(len(self.labels), self.embed_dim)
        self.project = nn.Linear(self.latent_dim + self.embed_dim, widths[0] * self.grid[0] * self.grid[1])
        self.norms = nn.ModuleList(ConditionalGroupNorm(w, self.embed_dim) for w in widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Conv2d(widths[-1], 1, 3, padding=1)

    # -- description ------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor keywords that rebuild this model (weights and mel statistics travel as tensors)."""
        return {"name": "mel_gan", "mel": self.mel.config(), "labels": list(self.labels),
                "seconds": self.clip_seconds, "latent_dim": self.latent_dim, "channels": self.channels,
                "embed_dim": self.embed_dim}

    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    def discriminator(self) -> "MelDiscriminator":
        """A fresh :class:`MelDiscriminator` for this generator's mels and labels (width ``channels``)."""
        return MelDiscriminator(self.mel.n_mels, self.frames, len(self.labels), self.channels)

    # -- generation -------------------------------------------------------------------------------
    def decode_latents(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``z (B, latent_dim)``, label indices ``(B,)`` -> normalised log-mels ``(B, n_mels, frames)``."""
        emb = self.embed(labels)  # (B, embed_dim)
        h = self.project(torch.cat([z, emb], 1))  # (B, latent_dim + embed_dim) -> (B, 2c * H' * W')
        # channels-last activations: the CPU (oneDNN) convolutions of these thin layers run about twice as fast
        h = h.view(len(z), -1, *self.grid).contiguous(memory_format=torch.channels_last)  # -> (B, 2c, H', W')
        h = F.relu(self.norms[0](h, emb))
        for conv, norm in zip(self.convs, self.norms[1:]):
            h = F.interpolate(h, scale_factor=2, mode="nearest")  # (B, C, H, W) -> (B, C, 2H, 2W)
            h = F.relu(norm(conv(h), emb))  # (B, C, 2H, 2W) -> (B, C', 2H, 2W)
        return self.out(h)[:, 0, : self.mel.n_mels, : self.frames]  # (B, 1, 8H', 8W') -> (B, n_mels, frames)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decode_latents(z, labels)


class MelDiscriminator(nn.Module):
    """Spectral-norm conv discriminator with a projection head (Miyato et al. 2018; Miyato & Koyama 2018).

    Args:
        n_mels, frames: the mel shape it judges.
        num_labels: the number of classes.
        channels: base width ``c``: the three stride-2 4x4 convs have ``c/2, c, 2c`` channels, then a
            3x3 conv keeps ``2c``.

    Shapes: ``forward(x (B, n_mels, frames), label indices (B,)) -> scores (B,)``.
    """

    def __init__(self, n_mels: int, frames: int, num_labels: int, channels: int = 64) -> None:
        super().__init__()
        if min(n_mels, frames, num_labels, channels) < 1:
            raise ConfigError(f"a mel discriminator needs positive sizes, got n_mels={n_mels}, frames={frames}, "
                              f"num_labels={num_labels}, channels={channels}")
        self.n_mels, self.frames = int(n_mels), int(frames)
        widths = [1, *(max(1, channels * 2**i // 2) for i in range(STAGES))]  # 1, c/2, c, 2c
        self.convs = nn.ModuleList(spectral_norm(nn.Conv2d(a, b, 4, stride=2, padding=1))
                                   for a, b in zip(widths[:-1], widths[1:]))
        self.convs.append(spectral_norm(nn.Conv2d(widths[-1], widths[-1], 3, padding=1)))
        height, width = self.n_mels, self.frames
        for _ in range(STAGES):
            height, width = height // 2, width // 2  # a 4x4 stride-2 conv with padding 1 halves (rounding down)
        if height < 1 or width < 1:
            raise ConfigError(f"a mel discriminator needs at least {2**STAGES} mel bins and frames, "
                              f"got {n_mels} x {frames}")
        features = widths[-1] * height * width
        self.linear = spectral_norm(nn.Linear(features, 1))
        self.embed = spectral_norm(nn.Embedding(num_labels, features))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Normalised log-mels ``(B, n_mels, frames)``, label indices ``(B,)`` -> scores ``(B,)``."""
        h = x[:, None].contiguous(memory_format=torch.channels_last)  # (B, n_mels, frames) -> (B, 1, n_mels, frames)
        for conv in self.convs:
            h = F.leaky_relu(conv(h), LRELU_SLOPE)
        h = h.flatten(1)  # (B, 2c, H', W') -> (B, features)
        return self.linear(h)[:, 0] + (self.embed(labels) * h).sum(1)  # psi(h) + <embed(y), h>


def _validate(model: MelGAN) -> None:
    """One :class:`ConfigError` naming every constructor value that is not positive."""
    values = {"latent_dim": model.latent_dim, "channels": model.channels,
              "embed_dim": model.embed_dim}
    bad = [f"{k}={v!r}" for k, v in values.items() if not v > 0]
    if bad:
        raise ConfigError(f"invalid mel_gan setting(s): {', '.join(bad)}")
