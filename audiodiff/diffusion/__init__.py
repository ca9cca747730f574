"""Diffusion math in one noise variable, ``sigma`` (k-diffusion convention).

A VP (DDPM) model with cumulative alpha-bar ``a`` has ``sigma = sqrt((1 - a) / a)`` and
``x_sigma = x_t / sqrt(a) = x0 + sigma * eps``.  In that space one sampler interface serves DDPM,
DDIM and higher-order solvers.  This package imports only torch.
"""

from .schedules import CosineSchedule, LinearSchedule, VPSchedule
from .preconditioning import Preconditioning
from . import samplers, guidance

__all__ = ["CosineSchedule", "LinearSchedule", "VPSchedule", "Preconditioning", "samplers", "guidance"]
