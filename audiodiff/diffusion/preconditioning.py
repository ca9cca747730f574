"""What the network predicts: the single owner of ``c_skip, c_out, c_in`` and of the loss.

The denoiser is ``D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))``
(Karras et al. 2022, eq. 7), with ``x = x0 + sigma * eps`` in sigma space.  Training regresses ``F``
onto the target ``(x0 - c_skip * x) / c_out`` with weight ``w(sigma)`` (Karras et al. 2022, eq. 8).

- ``eps``: ``F`` predicts the noise (Ho et al. 2020, eq. 14): ``c_skip = 1, c_out = -sigma``.
- ``v``: ``F`` predicts ``v = alpha * eps - s * x0`` (Salimans & Ho 2022, sec. 4):
  ``c_skip = 1 / (1 + sigma^2), c_out = -sigma / sqrt(1 + sigma^2)``.
- ``x0``: ``F`` predicts the clean data: ``c_skip = 0, c_out = 1``.
- ``edm``: Karras et al. 2022 table 1 with data std ``sigma_data``.

For the VP parameterisations ``c_in = 1 / sqrt(1 + sigma^2)``, so the net sees DDPM's ``x_t``.
Loss weighting: ``"simple"`` (1 in ``F``'s space, Ho et al.'s L_simple) or ``"min_snr"``
(Hang et al. 2023, min(SNR, gamma) expressed for each target).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..registry import register

WEIGHTINGS = ("simple", "min_snr")


def _expand(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` -> ``(B, 1, ..., 1)`` broadcastable against ``x``."""
    return sigma.reshape(-1, *([1] * (x.dim() - 1)))


@dataclass(frozen=True)
class Preconditioning:
    """Base class; subclasses define :meth:`scalings`."""

    weighting: str = "simple"
    min_snr_gamma: float = 5.0

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown loss weighting {self.weighting!r}; valid: {', '.join(WEIGHTINGS)}")

    def scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(c_skip, c_out, c_in)`` for ``sigma`` of any shape."""
        raise NotImplementedError

    def denoised(self, x: torch.Tensor, sigma: torch.Tensor, net_out: torch.Tensor) -> torch.Tensor:
        """``D = c_skip * x + c_out * F`` for ``x``, ``net_out`` ``(B, ...)`` and ``sigma`` ``(B,)``."""
        c_skip, c_out, _ = self.scalings(_expand(sigma, x))
        return c_skip * x + c_out * net_out

    def net_input(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``c_in * x``: what the net is fed for ``x`` ``(B, ...)`` at ``sigma`` ``(B,)``."""
        return self.scalings(_expand(sigma, x))[2] * x

    def target(self, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The regression target of ``F``: ``(x0 - c_skip * x) / c_out`` with ``x = x0 + sigma * noise``."""
        s = _expand(sigma, x0)
        c_skip, c_out, _ = self.scalings(s)
        return (x0 - c_skip * (x0 + s * noise)) / c_out

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """``(B,)`` loss weight in ``F``'s space."""
        if self.weighting == "simple":
            return torch.ones_like(sigma)
        # min-SNR: weight min(SNR, gamma) on the x0 error; converted into F's space by c_out^2.
        snr = sigma.pow(-2)
        _, c_out, _ = self.scalings(sigma)
        return torch.minimum(snr, torch.full_like(snr, self.min_snr_gamma)) * c_out**2

    def loss(self, net_out: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``(B,)`` per-example weighted mean squared error of ``F`` against its target."""
        err = (net_out - self.target(x0, noise, sigma)).pow(2).flatten(1).mean(1)
        return self.weight(sigma) * err


def _vp_c_in(sigma: torch.Tensor) -> torch.Tensor:
    return (1 + sigma**2).rsqrt()


@register("preconditioning", "eps")
@dataclass(frozen=True)
class EpsPrediction(Preconditioning):
    """The net predicts the noise ``eps`` (DDPM)."""

    def scalings(self, sigma):
        return torch.ones_like(sigma), -sigma, _vp_c_in(sigma)


@register("preconditioning", "v")
@dataclass(frozen=True)
class VPrediction(Preconditioning):
    """The net predicts ``v`` (progressive distillation's parameterisation)."""

    def scalings(self, sigma):
        c_in = _vp_c_in(sigma)
        return c_in**2, -sigma * c_in, c_in


@register("preconditioning", "x0")
@dataclass(frozen=True)
class X0Prediction(Preconditioning):
    """The net predicts the clean sample ``x0``."""

    def scalings(self, sigma):
        return torch.zeros_like(sigma), torch.ones_like(sigma), _vp_c_in(sigma)


@register("preconditioning", "edm")
@dataclass(frozen=True)
class EDMPreconditioning(Preconditioning):
    """Karras et al. 2022 (table 1): unit-variance input and target for data of std ``sigma_data``.

    Its natural weight ``(sigma^2 + sigma_data^2) / (sigma * sigma_data)^2`` times ``c_out^2`` is 1
    in ``F``'s space, so ``"simple"`` weighting is the EDM loss.
    """

    sigma_data: float = 1.0

    def scalings(self, sigma):
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = (sigma**2 + sd2).rsqrt()
        return c_skip, c_out, c_in
