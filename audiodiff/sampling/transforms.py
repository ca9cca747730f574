"""Denoiser transforms and ladder walks that edits are made of; every sampler works with them.

- :func:`known_denoiser`: RePaint (Lugmayr et al. 2022, alg. 1).  The known region must be
  ``x0 + sigma * eps`` at every sigma (RePaint eq. 8).  Rather than overwrite a sampler's state, the
  denoiser answers with ``x0`` itself inside the known region; any sampler that steps towards its
  denoised estimate (DDIM, Euler, Heun, DPM-Solver++, ancestral/DDPM) then keeps the known region at
  exactly ``x0 + sigma * eps`` after every step, while the net sees it as context for the rest.
- :func:`repaint_segments` and :func:`run_inpainting`: resampling ("jumps", alg. 1 lines 3-9 with the
  jump schedule of their sec. 4.3): after walking ``jump_length`` levels down the ladder the sample is
  re-noised back up with ``x_hi = x_lo + sqrt(sigma_hi^2 - sigma_lo^2) * z`` (the forward process in
  sigma space) and walked down again, ``jumps`` times.
- :func:`circular_denoiser`: the denoiser sees the time axis circularly padded, so a clip's end flows
  into its start (loops).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .. import checks
from ..errors import ConfigError
from ..model import DiffusionModel
from .core import Callback, DenoiseFn, PerRowGenerator, run_sampler


#: the most RePaint resamplings per jump point (each repeats jump_length sampler steps)
MAX_JUMPS = 100

def known_mask(model: DiffusionModel, frames: int, a: int, b: int, band: tuple[int, int] | None = None) -> torch.Tensor:
    """Bool ``(1, *net_shape_per_frame, frames)``: False in frames ``[a, b)`` (and mel ``band``), True elsewhere."""
    known = torch.ones(1, *model.representation.shape_per_frame, frames, dtype=torch.bool)
    lo, hi = band or (0, known.shape[1])
    known[:, lo:hi, ..., a:b] = False  # bins are the first feature axis of a mel
    return model.to_net_layout(known).to(model.device)

def known_denoiser(denoise_fn: DenoiseFn, x0: torch.Tensor, known: torch.Tensor) -> DenoiseFn:
    """``D'(x, sigma) = x0`` where ``known``, ``D(x, sigma)`` elsewhere (an oracle for the known region).

    A sampler stepping towards ``D'`` keeps the known region of its sample at ``x0 + sigma * eps``.
    """
    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.where(known, x0, denoise_fn(x, sigma))

    return denoise

def circular_denoiser(denoise_fn: DenoiseFn, wrap: int) -> DenoiseFn:
    """The denoiser on the time axis padded circularly by ``wrap`` frames each side, cropped back."""
    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1]
        padded = torch.cat([x[..., frames - wrap:], x, x[..., :wrap]], dim=-1)  # (B, ..., T) -> (B, ..., T + 2 wrap)
        return denoise_fn(padded, sigma)[..., wrap:wrap + frames]  # (B, ..., T + 2 wrap) -> (B, ..., T)

    return denoise

def repaint_segments(steps: int, jumps: int, jump_length: int) -> list[tuple[int, int]]:
    """RePaint's walk over ladder indices ``0..steps`` as ``(i, j)`` pairs (Lugmayr et al. 2022, sec. 4.3).

    ``i < j``: run the sampler over ``sigmas[i..j]``; ``i > j``: re-noise from ``sigmas[i]`` up to
    ``sigmas[j]``.  Every ``jump_length`` levels (above the last) the walk jumps back up
    ``jump_length`` levels, ``jumps`` times.  ``jumps = 0`` is one run over the whole ladder.
    """
    left = {k: jumps for k in range(jump_length, steps, jump_length)}
    segments, start, k = [], 0, 0
    while k < steps:
        k += 1
        if left.get(k, 0) > 0:
            left[k] -= 1
            segments += [(start, k), (k, k - jump_length)]
            start = k = k - jump_length
    return segments + [(start, steps)]

def repaint_steps(steps: int, jumps: int, jump_length: int) -> int:
    """The sampler steps :func:`run_inpainting` makes (and reports) on a ladder of ``steps`` steps."""
    return sum(j - i for i, j in repaint_segments(steps, jumps, jump_length) if i < j)


def renoise(x: torch.Tensor, sigma: torch.Tensor, sigma_up: torch.Tensor, noise: PerRowGenerator) -> torch.Tensor:
    """The forward process from ``sigma`` up to ``sigma_up``: add ``N(0, sigma_up^2 - sigma^2)``."""
    return x + (sigma_up**2 - sigma**2).sqrt() * noise.randn(x.shape, x.dtype).to(x.device)

def masked_start(model: DiffusionModel, x0: torch.Tensor, known: torch.Tensor, sigma: float,
                 generators: Sequence[torch.Generator]) -> torch.Tensor:
    """``(B, ...)`` start: ``x0 + sigma * eps`` where ``known``, prior noise elsewhere (one ``eps`` per row)."""
    eps = PerRowGenerator(generators).randn((len(generators), *x0.shape[1:]), x0.dtype).to(x0.device)
    return torch.where(known, x0 + sigma * eps, model.schedule.prior_scale(sigma) * eps)

def check_jumps(jumps: int, jump_length: int, steps: int) -> None:
    checks.integer("jumps", jumps, 0, MAX_JUMPS)
    checks.integer("jump_length", jump_length, 1)
    if jumps > 0 and jump_length >= steps:
        raise ConfigError(f"jump_length ({jump_length}) must be below the number of steps ({steps}) "
                          "for jumps to happen")

def run_inpainting(model: DiffusionModel, x: torch.Tensor, x0: torch.Tensor, known: torch.Tensor,
                   sigmas: torch.Tensor, sampler: Any, generators: Sequence[torch.Generator], denoise_fn: DenoiseFn,
                   jumps: int = 0, jump_length: int = 10, callback: Callback = None) -> torch.Tensor:
    """Sample ``x`` ``(B, ...)`` at ``sigmas[0]`` down the ladder keeping ``x0`` where ``known`` (RePaint).

    Runs ``sampler`` on the segments of :func:`repaint_segments` with :func:`known_denoiser`; the
    callback's ``"i"`` counts steps over all segments.
    """
    denoise_fn = known_denoiser(denoise_fn, x0, known)
    noise = PerRowGenerator(generators)
    done = [0]

    def counted(info: dict[str, Any]) -> None:
        callback({**info, "i": done[0]})
        done[0] += 1

    for i, j in repaint_segments(len(sigmas) - 1, jumps, jump_length):
        if i < j:
            x = run_sampler(model, x, sigmas[i:j + 1], sampler, generators, callback and counted, denoise_fn)
        else:
            x = renoise(x, sigmas[i], sigmas[j], noise)
    return x
