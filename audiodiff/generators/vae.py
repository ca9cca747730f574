"""A conditional VAE of normalised log-mels, with its evidence lower bound in bits per dimension.

:class:`MelCVAE` is a variational autoencoder (Kingma & Welling 2014, "Auto-encoding variational
Bayes") conditioned on a class label as in the conditional VAE of Sohn et al. 2015 ("Learning
structured output representation using deep conditional generative models", sec. 3, eq. 4):

- prior ``p(z) = N(0, I)`` over one global latent vector ``z`` of ``latent_dim`` numbers (Sohn et al.
  also allow a label-dependent prior; a fixed one lets :meth:`~MelGenerator.sample_mels` draw
  ``z ~ N(0, I)`` like every generator here);
- encoder ``q(z | x, y) = N(mu, diag(exp(logvar)))``: the mel as a one-channel image
  ``(B, 1, n_mels, frames)`` through :class:`~audiodiff.audio.autoencoder.ResBlock2d` levels with
  stride-2 convolutions, a 1x1 bottleneck, flattened and concatenated with the label embedding, then
  a linear map to ``mu`` and ``logvar``;
- decoder ``p(x | z, y) = N(mean(z, y), diag(std^2))``: a linear map of ``[z, embed(y)]`` to a small
  grid ``(bottleneck, n_mels / 2^L, frames' / 2^L)``, then ``ResBlock2d`` and
  :class:`~audiodiff.audio.autoencoder.Upsample2d` levels back to ``(n_mels, frames)`` (each block
  narrows to the next level's width before upsampling, so every grid has the encoder's width at that
  resolution: the convolutions at fine resolutions stay cheap).  The decoder's standard deviation
  is one learned number per mel bin, ``std = exp(10 * log_std) + 1e-3`` (the floor keeps the
  continuous density bounded; the gain of 10 lets Adam move it ten times faster than a weight, so
  it keeps up with the falling reconstruction error in a short run instead of lagging hundreds of
  steps behind), initialised at ``0.5``: the data have unit variance per bin, so ``0.5`` starts
  the reconstruction term at four times the weight a unit std would give it (which keeps the KL
  term from collapsing the posterior in the first steps), and the learned std then settles where
  it maximises the likelihood (the decoder's RMS error per bin).

Likelihood.  :meth:`MelCVAE.elbo` measures ``-ELBO = E_q[-log p(x | z, y)] + KL(q(z | x, y) || p(z))``
(Kingma & Welling 2014, eq. 3) with one reparameterised sample of ``z`` per example (sec. 2.4), in
the same space and with the same bin width as the diffusion bound of :mod:`audiodiff.likelihood`:
normalised log-mel values, each the bin of width ``bin_width`` (default ``2/255``) around it, its
probability the Gaussian decoder's mass on that bin (:func:`~audiodiff.likelihood.log_bin_mass`).
``bits_per_dim`` is then an upper bound on ``-log2 P(x | y) / D``, the quantity
:func:`~audiodiff.likelihood.bits_per_dim_vlb` bounds for a diffusion model.  ``bin_width=None``
gives the continuous density instead.  :meth:`MelCVAE.importance_bits_per_dim` is the tighter
importance-weighted bound of Burda et al. 2016 ("Importance weighted autoencoders", eq. 8).

Training (:meth:`MelCVAE.loss`) minimises the negative ELBO per dimension in nats with the
continuous Gaussian density: with bins much narrower than the decoder's std it differs from the
discretised one by the constant ``log(bin_width)`` per dimension, and it is cheaper and smoother.
``kl_weight`` (1: the true ELBO) and ``free_bits`` (the "free bits" of Kingma et al. 2016, "Improved
variational inference with inverse autoregressive flow": a floor of ``free_bits`` nats on the
batch-mean KL of each latent dimension) are there for studying posterior collapse; a likelihood
report needs the defaults.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.autoencoder import ResBlock2d, Upsample2d, standard_normal_kl
from ..errors import ConfigError
from ..likelihood import DEFAULT_BIN_WIDTH, check_bin_width, gaussian_log_density, log_bin_mass, to_bits_per_dim
from ..registry import register
from .base import MelGenerator

#: the decoder's standard deviation is ``exp(LOG_STD_GAIN * log_std) + MIN_DECODER_STD``
MIN_DECODER_STD = 1e-3
#: the parameter ``log_std`` is the decoder's log-std divided by this, so that Adam (whose steps are
#: about ``lr`` whatever the gradient's scale) moves the log-std this many times faster than a weight
LOG_STD_GAIN = 10.0
#: initial decoder standard deviation (normalised units; see the module docstring)
INIT_DECODER_STD = 0.5


@register("generator", "mel_cvae")
class MelCVAE(MelGenerator):
    """Conditional VAE of normalised log-mels (Kingma & Welling 2014; Sohn et al. 2015).

    Args:
        mel: the :class:`~audiodiff.audio.mel.Mel` config (its statistics are buffers fitted before training).
        labels: the class names.
        seconds: clip length; the model generates ``mel.frames_for(seconds)`` frames.
        latent_dim: size of the global latent vector ``z``.
        channels: width of the first level; level ``i`` has ``channels * channel_mults[i]``.
        channel_mults: width multipliers; each level after the first halves both axes, so ``n_mels``
            must be divisible by ``2 ** (len(channel_mults) - 1)`` (frames are padded to it).
        embed_dim: size of the label embedding (shared by encoder and decoder).
        norm_groups: GroupNorm groups (must divide every width).
        bottleneck: channels of the smallest grid, flattened into (and out of) the latent.

    Shapes: :meth:`encode` ``(B, n_mels, frames)``, labels ``(B,)`` -> mean and log-variance
    ``(B, latent_dim)``; :meth:`decode_latents` ``(B, latent_dim)``, labels -> ``(B, n_mels, frames)``.
    """

    def __init__(
        self,
        mel: Mapping[str, Any] | None,
        labels: Sequence[str],
        seconds: float = 1.0,
        latent_dim: int = 128,
        channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 4, 4),
        embed_dim: int = 64,
        norm_groups: int = 8,
        bottleneck: int = 16,
    ) -> None:
        super().__init__(mel, labels, seconds)
        self.channel_mults = tuple(int(m) for m in channel_mults)
        self.latent_dim, self.channels = int(latent_dim), int(channels)
        self.embed_dim, self.norm_groups, self.bottleneck = int(embed_dim), int(norm_groups), int(bottleneck)
        _validate(self)
        self.factor = 2 ** (len(self.channel_mults) - 1)
        self.grid = (self.mel.n_mels // self.factor, -(-self.frames // self.factor))  # (freq, time), smallest grid
        widths = [self.channels * m for m in self.channel_mults]
        flat = self.bottleneck * self.grid[0] * self.grid[1]
        self.embed = nn.Embedding(len(self.labels), self.embed_dim)
        self.encoder = self._encoder(widths)
        self.to_posterior = nn.Linear(flat + self.embed_dim, 2 * self.latent_dim)  # -> mean and log-variance
        self.from_latent = nn.Linear(self.latent_dim + self.embed_dim, flat)
        self.decoder = self._decoder(widths)
        init = math.log(INIT_DECODER_STD - MIN_DECODER_STD) / LOG_STD_GAIN
        self.log_std = nn.Parameter(torch.full((self.mel.n_mels,), init))  # see decoder_std

    def _encoder(self, widths: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(1, widths[0], 3, padding=1)]
        width = widths[0]
        for level, out in enumerate(widths):
            layers.append(ResBlock2d(width, out, self.norm_groups))
            width = out
            if level < len(widths) - 1:
                layers.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        layers += [ResBlock2d(width, width, self.norm_groups), nn.GroupNorm(self.norm_groups, width), nn.SiLU(),
                   nn.Conv2d(width, self.bottleneck, 1)]
        return nn.Sequential(*layers)

    def _decoder(self, widths: list[int]) -> nn.Sequential:
        width = widths[-1]
        layers: list[nn.Module] = [nn.Conv2d(self.bottleneck, width, 3, padding=1),
                                   ResBlock2d(width, width, self.norm_groups)]
        for level in reversed(range(len(widths))):  # narrow, then upsample: each grid gets the encoder's width there
            layers.append(ResBlock2d(width, widths[max(level - 1, 0)], self.norm_groups))
            width = widths[max(level - 1, 0)]
            if level > 0:
                layers.append(Upsample2d(width, (2, 2)))
        layers += [nn.GroupNorm(self.norm_groups, width), nn.SiLU(), nn.Conv2d(width, 1, 3, padding=1)]
        return nn.Sequential(*layers)

    # -- description ------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor keywords that rebuild this model (weights and mel statistics travel as tensors)."""
        return {"name": "mel_cvae", "mel": self.mel.config(), "labels": list(self.labels),
                "seconds": self.clip_seconds, "latent_dim": self.latent_dim, "channels": self.channels,
                "channel_mults": list(self.channel_mults), "embed_dim": self.embed_dim,
                "norm_groups": self.norm_groups, "bottleneck": self.bottleneck}

    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    def decoder_std(self) -> torch.Tensor:
        """The decoder's standard deviation per mel bin ``(n_mels, 1)`` (broadcasts over frames)."""
        return ((LOG_STD_GAIN * self.log_std).exp() + MIN_DECODER_STD)[:, None]

    # -- the two halves ---------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised log-mels ``(B, n_mels, frames)``, label indices ``(B,)`` -> mean, log-variance
        ``(B, latent_dim)`` of ``q(z | x, y)``."""
        if x.dim() != 3 or tuple(x.shape[1:]) != (self.mel.n_mels, self.frames):
            raise ConfigError(f"mel_cvae encodes (B, {self.mel.n_mels}, {self.frames}) mels, got {tuple(x.shape)}")
        pad = self.grid[1] * self.factor - self.frames
        x = F.pad(x, (0, pad), mode="replicate") if pad else x  # (B, n_mels, frames) -> (B, n_mels, T')
        h = self.encoder(x[:, None]).flatten(1)  # (B, 1, n_mels, T') -> (B, bottleneck, H', W') -> (B, flat)
        mean, logvar = self.to_posterior(torch.cat([h, self.embed(labels)], 1)).chunk(2, dim=1)  # (B, latent_dim) each
        return mean, logvar.clamp(-30.0, 20.0)

    def decode_latents(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, latent_dim)``, label indices ``(B,)`` -> the decoder's MEAN ``(B, n_mels, frames)``.

        As is standard for a Gaussian-decoder VAE, samples are the mean of ``p(x | z, y)``, not a draw
        from it (whose per-cell noise of std :meth:`decoder_std` would only add hiss).
        """
        h = self.from_latent(torch.cat([z, self.embed(labels)], 1))  # (B, flat)
        h = h.view(len(z), self.bottleneck, *self.grid)  # (B, flat) -> (B, bottleneck, H', W')
        return self.decoder(h)[:, 0, :, : self.frames]  # (B, 1, n_mels, T') -> (B, n_mels, frames)

    def _posterior_sample(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None):
        """``(mean, logvar, z)`` of ``q(z | x, y)``, ``z`` reparameterised (Kingma & Welling 2014, sec. 2.4)."""
        mean, logvar = self.encode(x, labels)
        eps = torch.randn(mean.shape, generator=generator).to(mean.device, mean.dtype)  # drawn on the CPU generator
        return mean, logvar, mean + (0.5 * logvar).exp() * eps

    def _log_likelihood(self, x: torch.Tensor, mean: torch.Tensor, bin_width: float | None) -> torch.Tensor:
        """``log p(x | z, y)`` summed per example ``(B,)`` (bin mass, or density when ``bin_width`` is None)."""
        x, mean, std = x.double(), mean.double(), self.decoder_std().double()
        log_p = gaussian_log_density(x, mean, std) if bin_width is None else log_bin_mass(x, mean, std, bin_width)
        return log_p.flatten(1).sum(1)  # (B, n_mels, frames) -> (B,)

    # -- objectives -------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None,
             kl_weight: float = 1.0, free_bits: float = 0.0) -> torch.Tensor:
        """Training loss: the negative ELBO per dimension in nats, a scalar, for mels ``(B, n_mels, frames)``.

        ``E[-log p(x|z,y)] / D + kl_weight * sum_j max(free_bits, E[KL_j]) / D`` with the continuous
        Gaussian density and ``E`` the batch mean; the defaults make it the true negative ELBO.
        """
        mean_z, logvar, z = self._posterior_sample(x, labels, generator)
        mean_x = self.decode_latents(z, labels).float()
        recon = -gaussian_log_density(x.float(), mean_x, self.decoder_std()).mean()
        kl_per_latent = standard_normal_kl(mean_z.float(), logvar.float()).mean(0)  # (latent_dim,)
        return recon + kl_weight * kl_per_latent.clamp(min=free_bits).sum() / x[0].numel()

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None,
             bin_width: float | None = DEFAULT_BIN_WIDTH) -> dict[str, torch.Tensor]:
        """The negative ELBO of mels ``x`` ``(B, n_mels, frames)`` with label indices ``(B,)``.

        Returns per-example ``(B,)`` float64 tensors: ``recon_nats`` (``-log p(x | z, y)`` of one
        reparameterised ``z``), ``kl_nats`` (``KL(q(z | x, y) || N(0, I))``), ``nelbo_nats`` (their
        sum) and ``bits_per_dim`` (``nelbo_nats / (D ln 2)``, an upper bound on ``-log2 P(x | y) / D``).
        A measurement, without gradients (:meth:`loss` is what trains).
        """
        check_bin_width(bin_width)
        mean_z, logvar, z = self._posterior_sample(x, labels, generator)
        recon = -self._log_likelihood(x, self.decode_latents(z, labels), bin_width)
        kl = standard_normal_kl(mean_z.double(), logvar.double()).sum(1)  # (B, latent_dim) -> (B,)
        nelbo = recon + kl
        return {"recon_nats": recon, "kl_nats": kl, "nelbo_nats": nelbo, "bits_per_dim": to_bits_per_dim(nelbo, x)}

    @torch.no_grad()
    def importance_bits_per_dim(self, x: torch.Tensor, labels: torch.Tensor, samples: int = 16,
                                generator: torch.Generator | None = None,
                                bin_width: float | None = DEFAULT_BIN_WIDTH) -> torch.Tensor:
        """The importance-weighted bound (Burda et al. 2016, eq. 8) with ``samples`` draws, in bits/dim ``(B,)``.

        ``-log (1/K) sum_k p(x | z_k, y) p(z_k) / q(z_k | x, y)``; ``samples=1`` is the ELBO, and the
        bound tightens towards ``-log2 P(x | y) / D`` as ``samples`` grows.
        """
        check_bin_width(bin_width)
        if int(samples) < 1:
            raise ConfigError(f"importance_bits_per_dim needs samples >= 1, got {samples!r}")
        mean, logvar = self.encode(x, labels)
        std = (0.5 * logvar).exp()
        log_w = []
        for _ in range(int(samples)):
            z = mean + std * torch.randn(mean.shape, generator=generator).to(mean.device, mean.dtype)
            log_prior = gaussian_log_density(z.double(), torch.zeros_like(z, dtype=torch.float64), 1.0).sum(1)
            log_q = gaussian_log_density(z.double(), mean.double(), std.double()).sum(1)
            log_w.append(self._log_likelihood(x, self.decode_latents(z, labels), bin_width) + log_prior - log_q)
        log_px = torch.logsumexp(torch.stack(log_w), 0) - math.log(int(samples))  # (K, B) -> (B,)
        return to_bits_per_dim(-log_px, x)

    def extra_repr(self) -> str:
        return (f"{len(self.labels)} labels, z {self.latent_dim}, {self.frames} frames, "
                f"{sum(p.numel() for p in self.parameters()):,} parameters")


def _validate(model: MelCVAE) -> None:
    """One-line :class:`ConfigError` for sizes that cannot build a model."""
    sizes = {"latent_dim": model.latent_dim, "channels": model.channels, "embed_dim": model.embed_dim,
             "norm_groups": model.norm_groups, "bottleneck": model.bottleneck}
    bad = [f"{k}={v}" for k, v in sizes.items() if v < 1]
    if bad or not model.channel_mults or min(model.channel_mults) < 1:
        bad = bad or [f"channel_mults={list(model.channel_mults)}"]
        raise ConfigError(f"mel_cvae sizes must be positive, got {', '.join(bad)}")
    factor = 2 ** (len(model.channel_mults) - 1)
    if model.mel.n_mels % factor:
        raise ConfigError(f"mel_cvae with {len(model.channel_mults)} levels needs n_mels divisible by {factor}, "
                          f"got {model.mel.n_mels}")
    widths = [model.channels * m for m in model.channel_mults]
    if any(w % model.norm_groups for w in widths):
        raise ConfigError(f"mel_cvae widths {widths} must be divisible by norm_groups {model.norm_groups}")
