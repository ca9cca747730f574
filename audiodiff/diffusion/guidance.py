"""Classifier-free guidance as a wrapper from one denoise function to another.

``D_guided = D_uncond + scale * (D_cond - D_uncond)`` (Ho & Salimans 2022, eq. 6, written for the
denoiser rather than eps: the two are affine in each other at fixed sigma, so it is the same
update).  ``scale = 1`` is the conditional denoiser and ``scale = 0`` the unconditional one.
Optional rescaling (Lin et al. 2024, sec. 3.4, alg. 2) pulls the guided prediction's per-example
std back towards the conditional one's by the fraction ``rescale``.

Both passes run as one batched call: the wrapped ``paired_denoise(x2, sigma2)`` receives
``[x; x]`` and must condition the first half and leave the second unconditional (or on the
negative prompt).  Samplers never know guidance is there.
"""

from __future__ import annotations

from typing import Callable

import torch

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def guided_denoiser(paired_denoise: DenoiseFn, scale: float, rescale: float = 0.0) -> DenoiseFn:
    """Wrap ``paired_denoise`` (on ``(2B, ...)`` cond-then-uncond batches) into a guided ``(B, ...)`` denoiser."""
    if not 0.0 <= rescale <= 1.0:
        raise ValueError(f"guidance rescale must be in [0, 1], got {rescale}")

    def combine(both: torch.Tensor) -> torch.Tensor:
        cond, uncond = both.chunk(2)  # (2B, ...) -> 2 x (B, ...)
        guided = uncond + scale * (cond - uncond)
        return rescale_to(guided, cond, rescale) if rescale > 0 else guided

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return combine(paired_denoise(torch.cat([x, x]), torch.cat([sigma, sigma])))  # (2B, ...) -> (B, ...)

    paired_with_variance = getattr(paired_denoise, "with_variance", None)
    if paired_with_variance is not None:  # a learned reverse variance: the conditional half's (as GLIDE does)
        def denoise_and_fraction(x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            both, fraction = paired_with_variance(torch.cat([x, x]), torch.cat([sigma, sigma]))
            return combine(both), fraction.chunk(2)[0]

        denoise.with_variance = denoise_and_fraction  # type: ignore[attr-defined]
    return denoise


def rescale_to(guided: torch.Tensor, reference: torch.Tensor, fraction: float) -> torch.Tensor:
    """Blend ``guided`` with itself rescaled to ``reference``'s per-example std (Lin et al. 2024, alg. 2)."""
    dims = tuple(range(1, guided.dim()))
    ratio = reference.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True).clamp(min=1e-8)
    return fraction * guided * ratio + (1 - fraction) * guided
