"""Discriminators and GAN losses for training neural vocoders.

- :class:`MultiPeriodDiscriminator`: HiFi-GAN's MPD (Kong et al. 2020, section 2.2): for each period
  ``p`` in (2, 3, 5, 7, 11) the waveform is folded into a ``(T / p, p)`` image and judged by a stack of
  ``(5, 1)`` convolutions, so each sub-discriminator sees samples ``p`` apart.
- :class:`MultiResolutionDiscriminator`: the multi-resolution spectrogram discriminator of UnivNet
  (Jang et al. 2021) that Vocos uses (Siuzdak 2023, section 3.3): 2D convolutions over STFT
  magnitudes at three resolutions.
- Losses: the hinge losses Vocos trains with (section 3.3), and HiFi-GAN's feature-matching loss
  (Kong et al. 2020, eq. 4): the L1 distance of every intermediate feature map, real vs generated.

Channel counts are small (``channels`` scales them) so that the discriminators train fast.
Waveforms are ``(B, 1, S)``; each discriminator returns ``(scores, features)``: one score map and
one list of feature maps per sub-discriminator.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError

Outputs = tuple[list[torch.Tensor], list[list[torch.Tensor]]]
LRELU_SLOPE = 0.1


class PeriodDiscriminator(nn.Module):
    """One MPD sub-discriminator (Kong et al. 2020, section 2.2 and appendix A)."""

    def __init__(self, period: int, channels: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.period = int(period)
        widths = [1, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (5, 1), (3, 1), padding=(2, 0)))
            for c_in, c_out in zip(widths[:-1], widths[1:]))
        self.convs.append(weight_norm(nn.Conv2d(widths[-1], widths[-1], (5, 1), 1, padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = wave.shape
        if t % self.period:
            wave = F.pad(wave, (0, self.period - t % self.period), mode="reflect")  # (B, 1, T) -> (B, 1, T')
        x = wave.reshape(b, c, -1, self.period)  # (B, 1, T') -> (B, 1, T' / p, p)
        return conv_stack(self.convs, self.post, x)  # (B, H * p) scores


def conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU convolutions then ``post``: ``(scores (B, -1), every layer's output for feature matching)``."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN's multi-period discriminator (periods 2, 3, 5, 7, 11 by default)."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: int = 32) -> None:
        super().__init__()
        if channels < 1 or not periods:
            raise ConfigError(f"MPD needs channels >= 1 and at least one period, got {channels}, {periods}")
        widths = (channels, 2 * channels, 4 * channels, 8 * channels)
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, widths) for p in periods)

    def forward(self, wave: torch.Tensor) -> Outputs:
        outs = [d(wave) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class ResolutionDiscriminator(nn.Module):
    """One UnivNet/Vocos resolution sub-discriminator over an STFT magnitude ``(B, 1, frames, freqs)``."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, channels: int = 32) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = int(n_fft), int(hop_length), int(win_length)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(wave[:, 0].float(), self.n_fft, self.hop_length, self.win_length, self.window,
                          center=True, return_complex=True).abs()  # (B, 1, S) -> (B, freqs, frames)
        x = spec.transpose(1, 2).unsqueeze(1)  # (B, freqs, frames) -> (B, 1, frames, freqs)
        return conv_stack(self.convs, self.post, x)  # (B, frames * freqs') scores


class MultiResolutionDiscriminator(nn.Module):
    """Spectrogram discriminators at ``(n_fft, hop_length, win_length)`` resolutions (UnivNet, Vocos)."""

    def __init__(self, resolutions: Sequence[tuple[int, int, int]] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)),
                 channels: int = 32) -> None:
        super().__init__()
        if channels < 1 or not resolutions:
            raise ConfigError(f"MRD needs channels >= 1 and at least one resolution, got {channels}, {resolutions}")
        self.discriminators = nn.ModuleList(ResolutionDiscriminator(*r, channels=channels) for r in resolutions)

    def forward(self, wave: torch.Tensor) -> Outputs:
        outs = [d(wave) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


def resolutions_for(n_fft: int) -> tuple[tuple[int, int, int], ...]:
    """Three MRD resolutions around the vocoder's ``n_fft``: half, same and double, hop a quarter window
    (for ``n_fft`` 1024 these are UnivNet's (512, 128), (1024, 256), (2048, 512))."""
    return tuple((f, f // 4, f) for f in (n_fft // 2, n_fft, 2 * n_fft))


# -- losses -------------------------------------------------------------------------------------
def discriminator_loss(real_scores: list[torch.Tensor], fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """Hinge loss ``mean_k [ mean relu(1 - D_k(x)) + mean relu(1 + D_k(G(s))) ]`` (Vocos, section 3.3)."""
    terms = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_scores, fake_scores)]
    return torch.stack(terms).mean()


def generator_loss(fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """Hinge generator loss ``mean_k mean relu(1 - D_k(G(s)))`` (Vocos, section 3.3)."""
    return torch.stack([F.relu(1 - f).mean() for f in fake_scores]).mean()


def feature_matching_loss(real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]) -> torch.Tensor:
    """``mean_k sum_i mean |D_k^i(x) - D_k^i(G(s))|`` over each sub-discriminator's feature maps
    (HiFi-GAN, Kong et al. 2020, eq. 4; averaged over sub-discriminators as Vocos does)."""
    terms = [sum((r.detach() - f).abs().mean() for r, f in zip(reals, fakes))
             for reals, fakes in zip(real_features, fake_features)]
    return torch.stack(terms).mean()
