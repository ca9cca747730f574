"""Stateless samplers in sigma space.

Every sampler is a frozen dataclass called as ``sampler(denoise_fn, x, sigmas, generator, callback)``:

- ``denoise_fn(x, sigma) -> denoised``: ``x`` ``(B, ...)`` at noise level ``sigma`` ``(B,)``; returns
  the estimate of the clean sample, same shape as ``x``;
- ``x``: the starting sample, already scaled to ``sigmas[0]``;
- ``sigmas``: ``(N + 1,)`` descending noise levels, normally ending in 0;
- ``generator``: the source of any fresh noise: a ``torch.Generator``, or an object with
  ``randn(shape, dtype)`` (see :func:`noise_like`);
- ``callback``: called after each step with ``{"i", "sigma", "sigma_next", "x", "denoised"}``.

A sampler never sees a model, a prompt or a schedule.  With ``d = (x - denoised) / sigma`` the
probability-flow ODE is ``dx/dsigma = d`` (Karras et al. 2022, eq. 4 with sigma(t) = t).

- ``ddim``: Song et al. 2021 (DDIM), eq. 12 with ``eta``; eta = 0 is exactly an Euler step of the
  ODE, eta = 1 the DDPM ancestral step with posterior variance.
- ``ddpm``: Ho et al. 2020, alg. 2, with the reverse variance ``beta_t`` or the posterior
  ``beta_tilde_t`` (Ho et al. 2020, sec. 3.2), generalised to skipped timesteps.
- ``euler``, ``euler_ancestral``: the same steps under k-diffusion's names.
- ``heun``: Karras et al. 2022, alg. 1 (2nd order, deterministic).
- ``dpmpp_2m``: DPM-Solver++(2M), Lu et al. 2022b, alg. 2 (multistep 2nd order in log-sigma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ..registry import register

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Optional[Callable[[dict[str, Any]], None]]


def noise_like(x: torch.Tensor, generator: Any = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``.

    ``generator`` is a ``torch.Generator`` (noise drawn on its device, then moved to ``x``'s), an
    object with ``randn(shape, dtype)`` (e.g. one generator per batch row), or ``None``.
    """
    if generator is not None and hasattr(generator, "randn"):
        return generator.randn(x.shape, x.dtype).to(x.device)
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE derivative ``dx/dsigma = (x - denoised) / sigma``."""
    return (x - denoised) / sigma


def ancestral_step(sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sigma_down, sigma_up)`` of a DDIM step with ``eta`` (Song et al. 2021, eq. 16 in sigma space).

    ``sigma_up^2 = eta^2 * sigma_next^2 * (sigma^2 - sigma_next^2) / sigma^2`` is DDIM's
    ``sigma_t^2 / alpha_bar_prev``; ``sigma_down^2 = sigma_next^2 - sigma_up^2``.
    """
    sigma_up = eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).clamp(min=0).sqrt()
    sigma_up = torch.minimum(sigma_up, sigma_next)
    sigma_down = (sigma_next**2 - sigma_up**2).clamp(min=0).sqrt()
    return sigma_down, sigma_up


class Sampler:
    """Base class: iterate the steps, call :meth:`step`, report through the callback."""

    stochastic: bool = False
    #: order of accuracy of the deterministic part (for tests and docs)
    order: int = 1

    def __call__(
        self,
        denoise_fn: DenoiseFn,
        x: torch.Tensor,
        sigmas: torch.Tensor,
        generator: torch.Generator | None = None,
        callback: Callback = None,
    ) -> torch.Tensor:
        sigmas = sigmas.to(device=x.device, dtype=x.dtype)
        state: dict[str, Any] = {}
        ones = x.new_ones(x.shape[0])  # (B,) to broadcast sigma per example
        for i in range(len(sigmas) - 1):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised = denoise_fn(x, sigma * ones)
            x = self.step(denoise_fn, x, denoised, sigma, sigma_next, generator, state)
            if callback is not None:
                callback({"i": i, "sigma": sigma, "sigma_next": sigma_next, "x": x, "denoised": denoised})
        return x

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state) -> torch.Tensor:
        raise NotImplementedError


@register("sampler", "ddim")
@dataclass(frozen=True)
class DDIM(Sampler):
    """DDIM with stochasticity ``eta`` (0: deterministic ODE Euler step; 1: DDPM posterior step)."""

    eta: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.eta > 0

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, self.eta)
        x = denoised + sigma_down * to_d(x, sigma, denoised)
        if sigma_up > 0:
            x = x + sigma_up * noise_like(x, generator)
        return x


@register("sampler", "euler")
@dataclass(frozen=True)
class Euler(DDIM):
    """Euler step of the probability-flow ODE (k-diffusion's name for DDIM with eta = 0)."""

    eta: float = 0.0


@register("sampler", "euler_ancestral")
@dataclass(frozen=True)
class EulerAncestral(DDIM):
    """Euler ancestral (k-diffusion's name for DDIM with eta > 0); eta 1 by default."""

    eta: float = 1.0


VARIANCES = ("posterior", "beta")


@register("sampler", "ddpm")
@dataclass(frozen=True)
class DDPM(Sampler):
    """DDPM ancestral sampling (Ho et al. 2020, alg. 2) on any subsequence of training timesteps.

    The mean is the posterior mean ``mu_tilde(x_t, x0_hat)``; the noise variance is the posterior
    ``beta_tilde`` (``variance="posterior"``) or ``beta`` (``variance="beta"``), where for a step
    from ``a_t`` to ``a_prev`` the effective beta is ``1 - a_t / a_prev``.  The last step (to
    sigma 0) adds no noise.
    """

    variance: str = "posterior"
    stochastic = True

    def __post_init__(self) -> None:
        if self.variance not in VARIANCES:
            raise ValueError(f"unknown DDPM variance {self.variance!r}; valid: {', '.join(VARIANCES)}")

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, 1.0)  # posterior mean and std
        x = denoised + sigma_down * to_d(x, sigma, denoised)
        if sigma_next == 0:
            return x
        if self.variance == "beta":
            # beta_eff / a_prev in sigma space: (sigma^2 - sigma_next^2) (1 + sigma_next^2) / (1 + sigma^2)
            sigma_up = ((sigma**2 - sigma_next**2) * (1 + sigma_next**2) / (1 + sigma**2)).sqrt()
        return x + sigma_up * noise_like(x, generator)


@register("sampler", "heun")
@dataclass(frozen=True)
class Heun(Sampler):
    """Heun's 2nd-order method (Karras et al. 2022, alg. 1); Euler on the final step to sigma 0.

    Costs two denoiser calls per step except the last.
    """

    order = 2

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        d = to_d(x, sigma, denoised)
        x_next = x + d * (sigma_next - sigma)
        if sigma_next == 0:
            return x_next
        denoised_next = denoise_fn(x_next, sigma_next * x.new_ones(x.shape[0]))
        d_next = to_d(x_next, sigma_next, denoised_next)
        return x + (d + d_next) / 2 * (sigma_next - sigma)


@register("sampler", "dpmpp_2m")
@dataclass(frozen=True)
class DPMSolverPP2M(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022b, alg. 2) in ``lambda = -log sigma``; one call per step."""

    order = 2

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        if sigma_next == 0:
            return denoised
        h = sigma.log() - sigma_next.log()
        old = state.get("old")
        if old is None:
            d = denoised
        else:
            old_denoised, h_last = old
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        state["old"] = (denoised, h)
        return (sigma_next / sigma) * x - torch.expm1(-h) * d
