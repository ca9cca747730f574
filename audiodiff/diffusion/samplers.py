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
- ``dpmpp_2m_sde``: its SDE variant (Lu et al. 2022b, sec. 4 and app. B, "SDE-DPM-Solver++(2M)") in
  k-diffusion's formulation with ``eta`` (0 is exactly ``dpmpp_2m``) and a ``midpoint`` or ``heun``
  2nd-order correction.
- ``sde``: predictor-corrector sampling of the VE SDE (Song et al. 2021, "Score-Based Generative
  Modeling through SDEs", alg. 2 with the Langevin corrector of alg. 4, ``x = x0 + sigma * eps``).
- ``langevin``: annealed Langevin dynamics (Song & Ermon 2019, alg. 1) with a final denoising step
  (Jolicoeur-Martineau et al. 2021, sec. 3).

Score-based samplers use the score of the noised data, ``score = (denoised - x) / sigma^2``
(Tweedie's formula; Song et al. 2021, eq. 8 with the optimal denoiser).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ..registry import register
from .variance import KINDS as VARIANCES, EpsSquareTable, reverse_variance

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


#: a "leap" is a step whose larger sigma exceeds this many times both the smaller sigma and the
#: data's scale (1: the library's representations normalise data to unit std), e.g. the first step
#: down from a VP schedule's clipped sigma_max (20291 for the cosine schedule) to ~3-30.  There the
#: trapezoid correction of Heun and the Euler-Maruyama noise of the reverse-diffusion predictor have
#: errors of order sigma, so those samplers take the first-order step, exact for a data mean.
LEAP_RATIO = 10.0


def is_leap(sigma: torch.Tensor, sigma_next: torch.Tensor) -> bool:
    """True for a step between noise levels far apart and far above the data (see :data:`LEAP_RATIO`).

    Both directions count, so a deterministic inversion (sigmas rising) takes the same first-order
    step on the leap as the sampling that undoes it.  Small steps near sigma 0 never leap.
    """
    high, low = torch.maximum(sigma, sigma_next), torch.minimum(sigma, sigma_next)
    return bool(high > LEAP_RATIO * low.clamp(min=1.0))


def score(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """``grad_x log p_sigma(x) = (denoised - x) / sigma^2``."""
    return (denoised - x) / sigma**2


def langevin_step(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor, step_size: torch.Tensor,
                  z: torch.Tensor) -> torch.Tensor:
    """One Langevin step ``x + step_size * score + sqrt(2 step_size) z`` (Song et al. 2021, alg. 4, line 6).

    ``step_size`` is a scalar or ``(B, 1, ..., 1)``; Song & Ermon's ``alpha`` is ``2 * step_size``.
    """
    return x + step_size * score(x, sigma, denoised) + (2 * step_size).sqrt() * z


def consistent_step(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor, fraction: torch.Tensor,
                    target: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A Langevin step whose noise leaves ``x`` at noise level ``target`` (consistent annealed sampling,
    Jolicoeur-Martineau et al. 2021, sec. 3).

    ``x <- x + c (denoised - x) + beta target z`` with ``c = max(fraction, 1 - target / sigma)`` (the
    step ``fraction * sigma^2`` times the score) and ``beta^2 = 1 - ((1 - c) sigma / target)^2``: if
    ``x`` holds data plus noise of std ``sigma`` and ``denoised`` is the data, the result holds noise
    of std ``target``.  ``c = 1`` is "denoise, then add noise of std ``target``".
    """
    c = torch.clamp(torch.as_tensor(fraction, dtype=x.dtype), min=float(1 - target / sigma))
    beta = (1 - ((1 - c) * sigma / target) ** 2).clamp(min=0).sqrt()
    return x + c * (denoised - x) + beta * target * z


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
        state = self.init_state(sigmas)
        ones = x.new_ones(x.shape[0])  # (B,) to broadcast sigma per example
        for i in range(len(sigmas) - 1):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised = self.evaluate(denoise_fn, x, sigma * ones, state)
            x = self.step(denoise_fn, x, denoised, sigma, sigma_next, generator, state)
            if callback is not None:
                callback({"i": i, "sigma": sigma, "sigma_next": sigma_next, "x": x, "denoised": denoised})
        return x

    def init_state(self, sigmas: torch.Tensor) -> dict[str, Any]:
        """The per-call state :meth:`step` reads and updates (e.g. a multistep history); empty by default."""
        return {}

    def evaluate(self, denoise_fn: DenoiseFn, x: torch.Tensor, sigma: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """The denoised estimate at the start of a step (a sampler may also keep more of the call in ``state``)."""
        return denoise_fn(x, sigma)

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


@register("sampler", "ddpm")
@dataclass(frozen=True)
class DDPM(Sampler):
    """DDPM ancestral sampling (Ho et al. 2020, alg. 2) on any subsequence of training timesteps.

    The mean is the posterior mean ``mu_tilde(x_t, x0_hat)``.  The noise variance
    (:mod:`~audiodiff.diffusion.variance`, each recomputed for the step actually taken, so any
    number of steps works) is:

    - ``"posterior"``: ``beta_tilde``; ``"beta"``: ``beta``, the step's effective ``1 - a_t / a_prev``;
    - ``"learned"``: the model's own (Nichol & Dhariwal 2021), for a denoiser from a model trained with
      ``"variance": "learned"`` (one that has ``with_variance``);
    - ``"analytic"``: Analytic-DPM's optimal variance (Bao et al. 2022), from ``eps_sq``, the model's
      table of ``[sigma, E||eps||^2 / d]`` pairs (filled in from the model by :func:`audiodiff.generate`).

    The last step (to sigma 0) adds no noise.
    """

    variance: str = "posterior"
    eps_sq: Optional[tuple] = None
    stochastic = True

    def __post_init__(self) -> None:
        if self.variance not in VARIANCES:
            raise ValueError(f"unknown DDPM variance {self.variance!r}; valid: {', '.join(VARIANCES)}")
        if self.eps_sq is not None:
            object.__setattr__(self, "eps_sq", tuple(tuple(pair) for pair in EpsSquareTable.from_pairs(self.eps_sq).pairs()))

    def evaluate(self, denoise_fn, x, sigma, state):
        if self.variance != "learned":
            return denoise_fn(x, sigma)
        if not hasattr(denoise_fn, "with_variance"):
            raise ValueError("variance='learned' needs a model trained with a learned variance "
                             "(and is not available inside the edits' denoisers)")
        denoised, state["fraction"] = denoise_fn.with_variance(x, sigma)
        return denoised

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, 1.0)  # posterior mean and std
        x = denoised + sigma_down * to_d(x, sigma, denoised)
        if sigma_next == 0:
            return x
        if self.variance != "posterior":  # learned: like x
            eps_sq = self.eps_square(sigma) if self.variance == "analytic" else None
            sigma_up = reverse_variance(self.variance, sigma, sigma_next, state.get("fraction"), eps_sq).sqrt()
        return x + sigma_up * noise_like(x, generator)

    def eps_square(self, sigma: torch.Tensor) -> torch.Tensor:
        """``Gamma(sigma)`` from :attr:`eps_sq` (``variance="analytic"``)."""
        if self.eps_sq is None:
            raise ValueError("variance='analytic' needs the model's eps_sq table (see `audiodiff variance`)")
        return EpsSquareTable.from_pairs(self.eps_sq)(sigma)


@register("sampler", "heun")
@dataclass(frozen=True)
class Heun(Sampler):
    """Heun's 2nd-order method (Karras et al. 2022, alg. 1); Euler on the final step to sigma 0.

    Costs two denoiser calls per step except the last.  A leap (:func:`is_leap`, e.g. the first step
    from a VP schedule's sigma_max) is an Euler step: the trapezoid rule's error there is of the order
    of the step, ``sigma``, far above the data's scale, while Euler's is exact for a data mean.
    """

    order = 2

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        d = to_d(x, sigma, denoised)
        x_next = x + d * (sigma_next - sigma)
        if sigma_next == 0 or is_leap(sigma, sigma_next):
            return x_next
        denoised_next = denoise_fn(x_next, sigma_next * x.new_ones(x.shape[0]))
        d_next = to_d(x_next, sigma_next, denoised_next)
        return x + (d + d_next) / 2 * (sigma_next - sigma)


def swap_history(state: dict[str, Any], denoised: torch.Tensor,
                 h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Remember ``(denoised, h)`` for the next step; return the last step's ``(denoised, h_last / h)``, if any."""
    old = state.get("old")
    state["old"] = (denoised, h)
    return None if old is None else (old[0], old[1] / h)


def extrapolate(denoised: torch.Tensor, old_denoised: torch.Tensor, w: torch.Tensor | float) -> torch.Tensor:
    """``(1 + w) * denoised - w * old_denoised``: the multistep 2nd-order correction of DPM-Solver++."""
    return (1 + w) * denoised - w * old_denoised


@register("sampler", "dpmpp_2m")
@dataclass(frozen=True)
class DPMSolverPP2M(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022b, alg. 2) in ``lambda = -log sigma``; one call per step."""

    order = 2

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        if sigma_next == 0:
            return denoised
        h = sigma.log() - sigma_next.log()
        prev = swap_history(state, denoised, h)
        d = denoised if prev is None else extrapolate(denoised, prev[0], 1 / (2 * prev[1]))
        return (sigma_next / sigma) * x - torch.expm1(-h) * d


SOLVER_TYPES = ("midpoint", "heun")


@register("sampler", "dpmpp_2m_sde")
@dataclass(frozen=True)
class DPMSolverPP2MSDE(Sampler):
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b, app. B) as in k-diffusion, with stochasticity ``eta``.

    With ``h = log(sigma / sigma_next)`` and ``h' = (1 + eta) h`` a step is
    ``x <- (sigma_next / sigma) e^(-eta h) x + (1 - e^(-h')) d + sigma_next sqrt(1 - e^(-2 eta h)) z``,
    where ``d`` extrapolates the last two denoised estimates with weight ``1 / (2 r)``
    (``midpoint``) or ``(1 / (1 - e^(-h')) - 1 / h') / r`` (``heun``), ``r = h_last / h``.
    ``eta = 1`` is the SDE solver (the noise has the DDPM posterior's variance at first order);
    ``eta = 0`` with ``midpoint`` is exactly ``dpmpp_2m``.  The last step (to sigma 0) returns the
    denoised estimate.  k-diffusion draws Brownian-tree noise; here it is fresh noise per step.
    """

    eta: float = 1.0
    solver_type: str = "midpoint"
    order = 2

    def __post_init__(self) -> None:
        if not self.eta >= 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if self.solver_type not in SOLVER_TYPES:
            raise ValueError(f"unknown solver_type {self.solver_type!r}; valid: {', '.join(SOLVER_TYPES)}")

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.eta > 0

    def correction_weight(self, h_eta: torch.Tensor) -> torch.Tensor | float:
        """The extrapolation weight times ``r``: 1/2 (midpoint) or ``1 / (1 - e^(-h')) - 1 / h'`` (heun)."""
        if self.solver_type == "midpoint":
            return 0.5
        return -1 / torch.expm1(-h_eta) - 1 / h_eta

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        if sigma_next == 0:
            return denoised
        h = sigma.log() - sigma_next.log()
        h_eta = h + self.eta * h
        prev = swap_history(state, denoised, h)
        d = denoised if prev is None else extrapolate(denoised, prev[0], self.correction_weight(h_eta) / prev[1])
        x = (sigma_next / sigma) * torch.exp(-self.eta * h) * x - torch.expm1(-h_eta) * d
        if self.eta > 0:
            x = x + sigma_next * (-torch.expm1(-2 * self.eta * h)).sqrt() * noise_like(x, generator)
        return x


STEP_NORMS = ("example", "batch")


def snr_step_size(grad: torch.Tensor, z: torch.Tensor, snr: float, norm: str) -> torch.Tensor:
    """Langevin corrector step ``2 (snr ||z|| / ||grad||)^2`` (Song et al. 2021, alg. 4, lines 4-5, alpha = 1).

    ``norm="example"``: one step size per example, ``(B, 1, ..., 1)``; ``"batch"``: the norms
    averaged over the batch first, a scalar (Song et al.'s reference code).
    """
    grad_norm = grad.flatten(1).norm(dim=1)  # (B, ...) -> (B,)
    z_norm = z.flatten(1).norm(dim=1)
    if norm == "batch":
        grad_norm, z_norm = grad_norm.mean(), z_norm.mean()
    eps = 2 * (snr * z_norm / grad_norm.clamp(min=1e-20)) ** 2
    return eps.reshape(-1, *([1] * (grad.dim() - 1))) if norm == "example" else eps


@register("sampler", "sde")
@dataclass(frozen=True)
class PredictorCorrector(Sampler):
    """Predictor-corrector sampling of the VE SDE (Song et al. 2021, alg. 2), in the paper's order.

    From each level ``sigma`` the reverse-diffusion (Euler-Maruyama) predictor moves to ``sigma_next``:
    ``x <- x + (sigma^2 - sigma_next^2) score + sqrt(sigma^2 - sigma_next^2) z`` (a leap, see
    :func:`is_leap`, takes the DDPM posterior step instead: the two agree for small steps); then
    ``corrector_steps`` Langevin steps at ``sigma_next`` with step ``2 (snr ||z|| / ||score||)^2``
    (alg. 4; snr 0.16 is the paper's choice for VE on CIFAR-10).  The last step, to sigma 0, returns
    the denoised estimate (the paper's final noise removal).  ``1 + corrector_steps`` denoiser calls
    per step.

    ``step_norm="example"`` (default) gives every example its own step, so a clip ignores the rest
    of its batch (generate's reproducibility promise); it needs many dimensions per example (any mel
    has them): for a 1-D example ``||z|| / ||score||`` is heavy-tailed and the chain diverges.
    ``"batch"`` averages the norms over the batch as Song et al.'s code does: it works for examples
    of any size and is a little less biased, but a clip then depends on its batch.
    """

    snr: float = 0.16
    corrector_steps: int = 1
    step_norm: str = "example"
    stochastic = True

    def __post_init__(self) -> None:
        if not self.snr > 0 or int(self.corrector_steps) < 0:
            raise ValueError(f"need snr > 0 and corrector_steps >= 0, got {self.snr}, {self.corrector_steps}")
        if self.step_norm not in STEP_NORMS:
            raise ValueError(f"unknown step_norm {self.step_norm!r}; valid: {', '.join(STEP_NORMS)}")

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        if sigma_next == 0:
            return denoised
        if is_leap(sigma, sigma_next):  # the DDPM posterior step: Euler-Maruyama would add noise of std ~sigma
            sigma_down, sigma_up = ancestral_step(sigma, sigma_next, 1.0)
            x = denoised + sigma_down * to_d(x, sigma, denoised) + sigma_up * noise_like(x, generator)
        else:
            var = sigma**2 - sigma_next**2
            x = x + var * score(x, sigma, denoised) + var.sqrt() * noise_like(x, generator)
        for _ in range(int(self.corrector_steps)):
            x = self.correct(denoise_fn, x, sigma_next, generator)
        return x

    def correct(self, denoise_fn, x, sigma, generator):
        """One Langevin corrector step at ``sigma`` (Song et al. 2021, alg. 4, lines 3-6)."""
        denoised = denoise_fn(x, sigma * x.new_ones(x.shape[0]))
        z = noise_like(x, generator)
        eps = snr_step_size(score(x, sigma, denoised), z, self.snr, self.step_norm)
        return langevin_step(x, sigma, denoised, eps, z)


#: :class:`AnnealedLangevin`'s default ``step_lr`` as a multiple of ``sigma_min^2`` (see its docstring):
#: plain Langevin, and consistent annealed sampling
RELATIVE_STEP_LR = 2.0
CONSISTENT_RELATIVE_STEP_LR = 0.1


@register("sampler", "langevin")
@dataclass(frozen=True)
class AnnealedLangevin(Sampler):
    """Annealed Langevin dynamics (Song & Ermon 2019, alg. 1), by default in its consistent form
    (Jolicoeur-Martineau et al. 2021), with a final denoising step.

    At each nonzero level ``sigma`` of the ladder, ``n_steps_each`` steps with step size
    ``alpha / 2 = (step_lr / 2) sigma^2 / sigma_min^2`` (``sigma_min`` the smallest nonzero sigma of the
    ladder), a fraction ``c = step_lr / (2 sigma_min^2)`` of ``sigma^2``.  The step to sigma 0 returns
    the denoised estimate of the final sample.  ``n_steps_each`` denoiser calls per level, plus one at
    the end.

    - ``consistent=False``: the paper's step ``x <- x + (alpha / 2) score + sqrt(alpha) z``.  Its noise
      is right for the stationary distribution of small steps but not for the level: at a high
      ``sigma`` each step leaves ``x`` with about ``sqrt(1 + c / (2 - c))`` times the level's noise
      (``sqrt(2)`` for ``c = 1``), and the denoiser is then asked about inputs noisier than it is
      told.  ``step_lr`` ``None`` means ``2 sigma_min^2`` (``c = 1``: ``x <- denoised + sqrt(2) sigma z``).
    - ``consistent=True`` (default): the same drift, with noise that leaves ``x`` at exactly the
      level's noise and, on the level's last step, at the next level's (:func:`consistent_step`); so
      the step from one level to the next is at least a DDIM step.  The price is a small loss of
      variance, ``1 - c / 2`` of it at low noise on Gaussian data.  ``step_lr`` ``None`` means
      ``0.1 sigma_min^2`` (``c = 0.05``).  The measurements behind both defaults are in
      ``benchmarks/results/defaults.md``.
    """

    n_steps_each: int = 5
    step_lr: Optional[float] = None
    consistent: bool = True
    stochastic = True

    def __post_init__(self) -> None:
        if int(self.n_steps_each) < 1 or not (self.step_lr is None or self.step_lr > 0):
            raise ValueError(f"need n_steps_each >= 1 and step_lr > 0, got {self.n_steps_each}, {self.step_lr}")

    def init_state(self, sigmas: torch.Tensor) -> dict[str, Any]:
        sigma_min = sigmas[sigmas > 0].min()
        relative = CONSISTENT_RELATIVE_STEP_LR if self.consistent else RELATIVE_STEP_LR
        step_lr = relative * sigma_min**2 if self.step_lr is None else self.step_lr
        return {"alpha_per_sigma2": step_lr / sigma_min**2}

    def step(self, denoise_fn, x, denoised, sigma, sigma_next, generator, state):
        fraction = state["alpha_per_sigma2"] / 2  # of sigma^2: the step size's share
        half_alpha = fraction * sigma**2
        ones = x.new_ones(x.shape[0])  # (B,)
        n = int(self.n_steps_each)
        for j in range(n):
            if j > 0:
                denoised = denoise_fn(x, sigma * ones)
            if self.consistent:
                target = sigma_next if j == n - 1 and sigma_next > 0 else sigma
                x = consistent_step(x, sigma, denoised, fraction, target, noise_like(x, generator))
            else:
                x = langevin_step(x, sigma, denoised, half_alpha, noise_like(x, generator))
        return denoise_fn(x, sigma * ones) if sigma_next == 0 else x
