"""The reverse step's variance: fixed (``beta``, ``beta_tilde``), learned, or analytic.

One DDPM step goes from noise level ``sigma`` to ``sigma_next`` (``0 < sigma_next < sigma``) in sigma
space, ``x = x0 + sigma * eps``; DDPM's ``x_t`` is ``x / sqrt(1 + sigma^2)``, so a variance in ``x_t``
space at the step's end is this module's variance divided by ``1 + sigma_next^2``.  With that change
of scale every formula below is its paper's:

- ``beta_tilde`` (the posterior's, Ho et al. 2020, eq. 7): ``sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2``;
- ``beta`` (Ho et al. 2020, sec. 3.2; the step's effective ``1 - a_t / a_prev`` for skipped timesteps):
  ``(sigma^2 - sigma_next^2) (1 + sigma_next^2) / (1 + sigma^2)``;
- **learned** (Nichol & Dhariwal 2021, eq. 15): ``exp(v log beta + (1 - v) log beta_tilde)``, where the
  net outputs, per element, a raw value that :func:`variance_fraction` maps to ``v`` in ``(0, 1)``;
- **analytic** (Bao et al. 2022, Analytic-DPM, theorem 1 with ``lambda^2 = beta_tilde``):
  ``beta_tilde + (sigma - sigma_down)^2 (1 - Gamma(sigma))``, where ``sigma_down = sigma_next^2 / sigma``
  is the posterior mean's remaining noise and ``Gamma(sigma) = E ||eps_theta(x_sigma)||^2 / d`` the mean
  squared predicted noise at that level (their ``beta_bar_n E||s_n||^2 / d``).  It is the optimal
  variance for the model's own mean; ``Gamma`` is clipped to ``[0, 1]`` (``E ||E[eps | x]||^2 <= d``),
  which keeps the variance between ``beta_tilde`` and the bound of their theorem 2.

:class:`EpsSquareTable` holds ``Gamma`` at a few noise levels (estimated once per model, see
:mod:`audiodiff.variance`) and interpolates it in ``log sigma``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

#: Improved DDPM's hybrid loss weight of the VLB term (Nichol & Dhariwal 2021, sec. 3.1)
VLB_WEIGHT = 1e-3


def posterior_variance(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """``beta_tilde`` of the step ``sigma -> sigma_next`` in sigma space (any broadcastable shapes)."""
    return sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2


def beta_variance(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """``beta`` of the step ``sigma -> sigma_next`` in sigma space."""
    return (sigma**2 - sigma_next**2) * (1 + sigma_next**2) / (1 + sigma**2)


def variance_fraction(raw: torch.Tensor) -> torch.Tensor:
    """The net's raw variance output -> ``v`` in ``(0, 1)`` (Nichol & Dhariwal map ``[-1, 1]`` by
    ``(raw + 1) / 2`` and leave it unbounded; a sigmoid keeps the variance between ``beta_tilde`` and
    ``beta`` for any output, and is ``1/2`` at a zero-initialised output)."""
    return torch.sigmoid(raw)


def learned_log_variance(fraction: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """``v log beta + (1 - v) log beta_tilde`` (Nichol & Dhariwal 2021, eq. 15) for ``v = fraction``.

    ``sigma`` and ``sigma_next`` broadcast against ``fraction`` (e.g. ``(B, 1, 1)``); ``sigma_next > 0``.
    """
    log_beta = beta_variance(sigma, sigma_next).log()
    log_beta_tilde = posterior_variance(sigma, sigma_next).log()
    return fraction * log_beta + (1 - fraction) * log_beta_tilde


def analytic_variance(sigma: torch.Tensor, sigma_next: torch.Tensor, eps_sq: torch.Tensor) -> torch.Tensor:
    """Analytic-DPM's optimal variance (Bao et al. 2022, theorem 1), ``eps_sq = Gamma(sigma)``."""
    sigma_down = sigma_next**2 / sigma
    return posterior_variance(sigma, sigma_next) + (sigma - sigma_down) ** 2 * (1 - eps_sq.clamp(0, 1))


#: the reverse variances :func:`reverse_variance` knows
KINDS = ("posterior", "beta", "analytic", "learned")


def reverse_variance(kind: str, sigma: torch.Tensor, sigma_next: torch.Tensor, fraction: torch.Tensor | None = None,
                     eps_sq: torch.Tensor | None = None) -> torch.Tensor:
    """The variance of the reverse step ``sigma -> sigma_next > 0`` of ``kind`` (one of :data:`KINDS`):
    ``fraction`` is the learned ``v``, ``eps_sq`` Analytic-DPM's ``Gamma(sigma)``."""
    if kind == "posterior":
        return posterior_variance(sigma, sigma_next)
    if kind == "beta":
        return beta_variance(sigma, sigma_next)
    if kind == "analytic":
        return analytic_variance(sigma, sigma_next, eps_sq)
    if kind == "learned":
        return learned_log_variance(fraction, sigma, sigma_next).exp()
    raise ValueError(f"unknown reverse variance {kind!r}; valid: {', '.join(KINDS)}")


def gaussian_kl(mean1: torch.Tensor, log_var1: torch.Tensor, mean2: torch.Tensor, log_var2: torch.Tensor) -> torch.Tensor:
    """Elementwise ``KL(N(mean1, e^log_var1) || N(mean2, e^log_var2))`` in nats."""
    return 0.5 * (log_var2 - log_var1 + (log_var1 - log_var2).exp() + (mean1 - mean2) ** 2 * (-log_var2).exp() - 1)


@dataclass(frozen=True)
class EpsSquareTable:
    """``Gamma(sigma) = E ||eps_theta||^2 / d`` at ascending noise levels, interpolated in ``log sigma``
    (held constant beyond the ends)."""

    sigmas: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.sigmas) != len(self.values) or len(self.sigmas) < 2:
            raise ValueError("an eps-square table needs at least two (sigma, value) pairs of equal length")
        if any(not math.isfinite(s) or s <= 0 for s in self.sigmas) or list(self.sigmas) != sorted(set(self.sigmas)):
            raise ValueError("an eps-square table's sigmas must be positive, finite and strictly ascending")
        if any(not math.isfinite(v) or v < 0 for v in self.values):
            raise ValueError("an eps-square table's values must be finite and non-negative")

    @classmethod
    def from_pairs(cls, pairs: Sequence[Sequence[float]]) -> "EpsSquareTable":
        """From ``[[sigma, value], ...]`` (the JSON form a sampler config carries)."""
        try:
            sigmas, values = zip(*((float(s), float(v)) for s, v in pairs))
        except (TypeError, ValueError):
            raise ValueError("an eps-square table must be a list of [sigma, value] pairs") from None
        return cls(tuple(sigmas), tuple(values))

    def pairs(self) -> list[list[float]]:
        return [[s, v] for s, v in zip(self.sigmas, self.values)]

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        """``Gamma`` at ``sigma`` (any shape), linear in ``log sigma`` between the table's levels."""
        log_s = torch.tensor(self.sigmas, dtype=torch.float64).log()
        vals = torch.tensor(self.values, dtype=torch.float64)
        q = sigma.detach().to(torch.float64).clamp(min=self.sigmas[0], max=self.sigmas[-1]).log()
        hi = torch.searchsorted(log_s, q.reshape(-1)).clamp(1, len(log_s) - 1)
        w = (q.reshape(-1) - log_s[hi - 1]) / (log_s[hi] - log_s[hi - 1])
        out = vals[hi - 1] + w * (vals[hi] - vals[hi - 1])
        return out.reshape(sigma.shape).to(sigma.dtype)


def _expand(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` -> ``(B, 1, ..., 1)`` broadcastable against ``x``."""
    return sigma.reshape(-1, *([1] * (x.dim() - 1)))


def hybrid_vlb_term(schedule, x0: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor,
                    fraction: torch.Tensor, weight: float = VLB_WEIGHT) -> torch.Tensor:
    """``lambda * L_vlb`` of Improved DDPM's hybrid loss (Nichol & Dhariwal 2021, sec. 3.1), scalar.

    For each example at training level ``sigma`` ``(B,)`` the term is ``L_{t-1}``, the KL in bits per
    element from the true posterior ``q(x_{t-1} | x_t, x0)`` to the model's step from ``sigma`` to the
    schedule's noise level one timestep below (:meth:`sigma_to_t`, fractional), with the model's mean
    from ``denoised`` (``(B, ...)``, detached by the caller so that only the variance learns from it)
    and its variance from ``fraction`` ``v``.  ``T E_t[L_{t-1}]`` estimates the sum over timesteps;
    levels less than one timestep above the lowest have no such step and add nothing (the
    discretised decoder term is left to :mod:`audiodiff.likelihood`).
    """
    t = schedule.sigma_to_t(sigma)  # (B,) fractional timesteps
    has_step = t >= 1
    sigma_next = torch.where(has_step, schedule.t_to_sigma((t - 1).clamp(min=0)).to(sigma), sigma / 2)
    s, s_next = _expand(sigma, x), _expand(sigma_next, x)
    keep = (s_next / s) ** 2  # sigma_down / sigma: the posterior mean keeps this much of x - x0
    true_mean = x0 + keep * (x - x0)
    model_mean = denoised + keep * (x - denoised)
    true_log_var = posterior_variance(s, s_next).log().expand_as(x)
    kl = gaussian_kl(true_mean, true_log_var, model_mean, learned_log_variance(fraction, s, s_next))
    bits = kl.flatten(1).mean(1) / math.log(2)  # (B,)
    return weight * schedule.num_steps * (bits * has_step).mean()


def with_variance(denoise, denoise_and_fraction):
    """Mark ``denoise(x, sigma) -> denoised`` as a learned-variance denoiser: ``denoise.with_variance(x, sigma)``
    returns ``(denoised, v)`` (what :class:`~audiodiff.diffusion.samplers.DDPM` with ``variance="learned"``
    and the VLB likelihood call)."""
    denoise.with_variance = denoise_and_fraction
    return denoise
