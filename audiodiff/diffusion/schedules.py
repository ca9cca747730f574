"""Noise schedules of variance-preserving (DDPM) diffusion, expressed in ``sigma``.

- ``linear``: betas linear from 1e-4 to 0.02 over 1000 steps (Ho et al. 2020, sec. 4).
- ``cosine``: ``alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)``, betas clipped at 0.999
  (Nichol & Dhariwal 2021, eq. 17).

A schedule owns: the table ``sigmas`` (index ``t = 0..T-1``, ascending), the net's noise input
``c_noise(sigma)`` (the continuous timestep, interpolated in log sigma), the prior scale of
``x_sigma`` at the start of sampling, how training draws noise levels, and the default inference
ladders with "leading", "trailing" and "linspace" timestep spacing (Lin et al. 2024, table 2).

Training noise levels (``train_sigmas``): ``"uniform"`` draws a training timestep uniformly (Ho et
al. 2020, alg. 1); ``"lognormal"`` draws ``ln sigma ~ N(p_mean, p_std^2)`` (Karras et al. 2022,
sec. 5 and table 1, "P_mean, P_std"), clamped to the schedule's ``[sigma_min, sigma_max]``.  On the
cosine schedule uniform timesteps put about 18% of training below sigma 0.3; ``N(-1.2, 1.2^2)`` puts
half there, where the last steps of a deterministic sampler ask the most of the denoiser.

Two continuous noise ladders between the schedule's ``sigma_min`` and ``sigma_max`` (not tied to
training timesteps; the net sees the interpolated ``c_noise``) are also inference spacings:

- ``karras``: ``sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``
  with ``rho = 7`` (Karras et al. 2022, eq. 5);
- ``exponential``: uniform in ``log sigma`` (the ``rho -> infinity`` limit of eq. 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from ..registry import register

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
TRAIN_SIGMAS = ("uniform", "lognormal")
SIGMA_LADDERS = ("karras", "exponential")
#: every valid ``spacing`` of :meth:`VPSchedule.inference_sigmas` (and of ``audiodiff generate --spacing``)
SPACINGS = TIMESTEP_SPACINGS + SIGMA_LADDERS


def sigma_to_alpha_bar(sigma: torch.Tensor) -> torch.Tensor:
    """``a = 1 / (1 + sigma^2)``: the DDPM cumulative alpha of noise level ``sigma``."""
    return 1.0 / (1.0 + sigma**2)


def alpha_bar_to_sigma(alpha_bar: torch.Tensor) -> torch.Tensor:
    """``sigma = sqrt((1 - a) / a)``."""
    return ((1.0 - alpha_bar) / alpha_bar).sqrt()


def _check_ladder(steps: int, sigma_min: float, sigma_max: float) -> None:
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")


def _with_zero(sigmas: torch.Tensor) -> torch.Tensor:
    """Append the final 0 and return float32 (the dtype of a schedule's table)."""
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """``(steps + 1,)`` descending sigmas of Karras et al. 2022, eq. 5, from ``sigma_max``, with a trailing 0.

    ``rho = 1`` is linear in sigma; larger ``rho`` spends more steps at low noise.
    """
    _check_ladder(steps, sigma_min, sigma_max)
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    ramp = torch.linspace(0, 1, int(steps), dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _with_zero((hi + ramp * (lo - hi)) ** rho)


def exponential_sigmas(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """``(steps + 1,)`` descending sigmas uniform in ``log sigma`` from ``sigma_max`` to ``sigma_min``, then 0."""
    _check_ladder(steps, sigma_min, sigma_max)
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), int(steps), dtype=torch.float64)
    return _with_zero(log_sigmas.exp())


@dataclass(frozen=True)
class VPSchedule:
    """Base class: a discrete VP schedule of ``num_steps`` training timesteps.

    ``train_sigmas``, ``p_mean`` and ``p_std`` say how training draws noise levels (module docstring).
    """

    num_steps: int = 1000
    train_sigmas: str = "uniform"
    p_mean: float = -1.2
    p_std: float = 1.2

    def __post_init__(self) -> None:
        if int(self.num_steps) < 2:
            raise ValueError(f"num_steps must be >= 2, got {self.num_steps}")
        if self.train_sigmas not in TRAIN_SIGMAS:
            raise ValueError(f"unknown train_sigmas {self.train_sigmas!r}; valid: {', '.join(TRAIN_SIGMAS)}")
        if not (math.isfinite(self.p_mean) and math.isfinite(self.p_std) and self.p_std > 0):
            raise ValueError(f"need a finite p_mean and p_std > 0, got {self.p_mean}, {self.p_std}")

    # -- the table ---------------------------------------------------------------------------
    def betas(self) -> torch.Tensor:
        """``(T,)`` float64 betas; subclasses define them."""
        raise NotImplementedError

    @cached_property
    def alphas_cumprod(self) -> torch.Tensor:
        """``(T,)`` float64 cumulative products of ``1 - beta``."""
        return torch.cumprod(1.0 - self.betas(), dim=0)

    @cached_property
    def sigmas(self) -> torch.Tensor:
        """``(T,)`` float32 ascending noise levels of the training timesteps."""
        return alpha_bar_to_sigma(self.alphas_cumprod).float()

    @cached_property
    def log_sigmas(self) -> torch.Tensor:
        """``(T,)`` log of :attr:`sigmas` (cached: every denoiser call interpolates in it)."""
        return self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    # -- what the net sees ------------------------------------------------------------------
    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep of ``sigma`` by linear interpolation in log sigma (any shape)."""
        log_sigmas = self.log_sigmas.to(sigma.device)
        log_sigma = sigma.float().clamp(min=1e-10).log()
        idx = torch.searchsorted(log_sigmas, log_sigma.reshape(-1)).clamp(1, len(log_sigmas) - 1)
        low, high = log_sigmas[idx - 1], log_sigmas[idx]
        w = ((log_sigma.reshape(-1) - low) / (high - low)).clamp(0, 1)
        return (idx - 1 + w).reshape(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`sigma_to_t` for (possibly fractional) timesteps ``t``."""
        log_sigmas = self.log_sigmas.to(t.device)
        t = t.float().clamp(0, len(log_sigmas) - 1)
        low = t.floor().long()
        high = t.ceil().long()
        w = t - low
        return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        """The noise-level input of the net: the continuous timestep in ``[0, T-1]``."""
        return self.sigma_to_t(sigma)

    def prior_scale(self, sigma: float | torch.Tensor) -> float | torch.Tensor:
        """Std of ``x_sigma`` for unit-variance data: ``sqrt(1 + sigma^2)``.

        Starting from ``x_T ~ N(0, I)`` in DDPM's space is ``x_sigma = x_T * sqrt(1 + sigma_T^2)``.
        """
        if isinstance(sigma, torch.Tensor):
            return (1.0 + sigma**2).sqrt()
        return math.sqrt(1.0 + float(sigma) ** 2)

    # -- training -------------------------------------------------------------------------
    def sample_sigmas(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(batch,)`` training noise levels drawn as ``train_sigmas`` says (module docstring)."""
        if self.train_sigmas == "lognormal":
            log_sigma = self.p_mean + self.p_std * torch.randn(batch, generator=generator)
            return log_sigma.exp().clamp(self.sigma_min, self.sigma_max)
        t = torch.randint(0, self.num_steps, (batch,), generator=generator)
        return self.sigmas[t]

    # -- inference ------------------------------------------------------------------------
    def timesteps(self, steps: int, spacing: str = "trailing", first: int = 0) -> torch.Tensor:
        """``(steps,)`` descending integer timesteps in ``[first, T-1]`` for a ``steps``-step sampler.

        With ``n = T - first`` (all ``T`` timesteps when ``first`` is 0):
        leading:  ``t = first + k * (n // steps)``, k = steps-1..0 (DDIM's original choice);
        trailing: ``t = first + round(n - k * n / steps) - 1``, k = 0..steps-1 (starts at T-1);
        linspace: ``round(linspace(T-1, first, steps))``.
        """
        T = self.num_steps
        n = T - int(first)
        if not 0 <= int(first) < T:
            raise ValueError(f"first timestep must be in [0, {T - 1}], got {first}")
        if not 1 <= int(steps) <= n:
            span = f"the schedule's {T} training steps" if n == T else f"the {n} training steps from timestep {first}"
            raise ValueError(f"steps must be between 1 and {span}, got {steps}")
        if spacing == "leading":
            t = first + torch.arange(steps - 1, -1, -1) * (n // steps)
        elif spacing == "trailing":
            t = first + (n - torch.arange(steps) * (n / steps)).round().long() - 1
        elif spacing == "linspace":
            t = torch.linspace(T - 1, first, steps).round().long()
        elif spacing in SIGMA_LADDERS:
            raise ValueError(f"spacing {spacing!r} is a continuous sigma ladder without integer timesteps; "
                             f"timestep spacings: {', '.join(TIMESTEP_SPACINGS)}")
        else:
            raise ValueError(f"unknown timestep spacing {spacing!r}; valid: {', '.join(SPACINGS)}")
        return t.long()

    def inference_sigmas(self, steps: int, spacing: str = "trailing", sigma_min: float | None = None) -> torch.Tensor:
        """``(steps + 1,)`` descending sigmas with a trailing 0.

        A timestep spacing picks ``steps`` of the training timesteps; ``"karras"`` (rho 7) and
        ``"exponential"`` lay a continuous ladder between ``sigma_min`` and the schedule's ``sigma_max``.
        ``sigma_min`` (default: the schedule's) is the smallest noise level the ladder visits before its
        final step to 0, which returns the denoised estimate there (Karras et al. 2022, sec. 3 treat it
        as a sampling choice); a timestep spacing then uses only the timesteps at or above it.
        """
        low = self.sigma_min if sigma_min is None else float(sigma_min)
        if not (math.isfinite(low) and self.sigma_min <= low < self.sigma_max):
            raise ValueError(f"sigma_min must be in [{self.sigma_min:.4g}, {self.sigma_max:.4g}), got {sigma_min}")
        if spacing == "karras":
            return karras_sigmas(steps, low, self.sigma_max)
        if spacing == "exponential":
            return exponential_sigmas(steps, low, self.sigma_max)
        first = 0 if sigma_min is None else int(torch.ceil(self.sigma_to_t(torch.tensor(low)) - 1e-4))
        sigmas = self.sigmas[self.timesteps(steps, spacing, first)]
        return torch.cat([sigmas, sigmas.new_zeros(1)])


@register("schedule", "linear")
@dataclass(frozen=True)
class LinearSchedule(VPSchedule):
    """DDPM's linear beta schedule (Ho et al. 2020): ``beta_t`` linear in ``[beta_start, beta_end]``."""

    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}")

    def betas(self) -> torch.Tensor:
        return torch.linspace(self.beta_start, self.beta_end, self.num_steps, dtype=torch.float64)


@register("schedule", "cosine")
@dataclass(frozen=True)
class CosineSchedule(VPSchedule):
    """Cosine schedule (Nichol & Dhariwal 2021, eq. 17) with offset ``s`` and betas clipped at ``max_beta``."""

    s: float = 0.008
    max_beta: float = 0.999

    def betas(self) -> torch.Tensor:
        T = self.num_steps
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + self.s) / (1 + self.s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=self.max_beta)
