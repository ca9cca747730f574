"""Long clips in overlapping windows, seams, and spherical interpolation.

A clip longer than a model's window is made window by window (:func:`extend`): each window after the
first starts ``overlap`` frames before the end so far, inpaints everything after its known part
(:func:`~audiodiff.sampling.transforms.run_inpainting`, RePaint) and is crossfaded on in feature space.
:func:`seam_score` measures a seam: the mean absolute mel change between the frames either side of it,
over the clip's median frame-to-frame change (1 is a seam like any other frame step).
:func:`slerp` is spherical interpolation (Shoemake 1985; as in Song et al. 2021, sec. 5.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .. import checks
from ..errors import ConfigError
from ..model import DiffusionModel
from .core import Callback, DenoiseFn
from .transforms import known_mask, masked_start, run_inpainting


def seam_score(features: torch.Tensor, seam_frames: Sequence[int]) -> float:
    """How abrupt seams are: mean abs change across them over the clip's median frame-to-frame change.

    Args:
        features: one clip's features ``(*shape_per_frame, frames)``, e.g. a mel ``(n_mels, frames)``.
        seam_frames: frames ``s`` (``1 <= s < frames``) where a seam lies between ``s - 1`` and ``s``.

    Returns:
        ``mean_s |f[:, s] - f[:, s-1]| / median_t |f[:, t] - f[:, t-1]|`` (each change averaged over
        the feature axes); about 1 when a seam is as smooth as the clip.
    """
    frames = features.shape[-1]
    seams = [int(s) for s in seam_frames]
    if not seams or not all(1 <= s < frames for s in seams):
        raise ConfigError(f"seam frames must be a non-empty list within [1, {frames - 1}], got {seams}")
    flat = features.detach().float().reshape(-1, frames)  # (*shape_per_frame, T) -> (D, T)
    change = (flat[:, 1:] - flat[:, :-1]).abs().mean(0)  # (T - 1,): change into frame t + 1
    typical = change.median().clamp(min=1e-12)
    return float(change[[s - 1 for s in seams]].mean() / typical)

def loop_seam_score(features: torch.Tensor) -> float:
    """:func:`seam_score` of a clip played twice: its end flowing into its start."""
    return seam_score(torch.cat([features, features], dim=-1), [features.shape[-1]])  # (..., T) -> (..., 2T)

@dataclass(frozen=True)
class WindowPlan:
    """How a clip of ``frames`` frames is made in windows of ``window`` frames.

    Each window after the first shares ``overlap`` frames with the audio so far: the first
    ``overlap - crossfade`` are inpainted as known, the last ``crossfade`` are crossfaded.
    """

    frames: int
    window: int
    overlap: int
    crossfade: int

    def windows_after(self, existing: int) -> int:
        """How many windows continue ``existing`` frames to :attr:`frames`."""
        hop = self.window - min(self.overlap, existing)
        return max(0, -(-(self.frames - existing) // hop))

    @property
    def count(self) -> int:
        """Windows in all when the first window is sampled from noise."""
        return 1 + self.windows_after(min(self.window, self.frames))

    def metadata(self) -> dict[str, int]:
        return {"window_frames": self.window, "overlap_frames": self.overlap,
                "crossfade_frames": self.crossfade, "windows": self.count}

def plan_windows(model: DiffusionModel, frames: int, overlap: float = 0.5, crossfade: float = 0.25) -> WindowPlan:
    """Windows of the model's ``max_seconds`` overlapping by the fraction ``overlap`` of a window, of
    which the fraction ``crossfade`` is crossfaded rather than kept (a crossfade makes smoother seams:
    ``benchmarks/results/defaults.md``).
    """
    checks.number("overlap", overlap, 0.0, 1.0, low_open=True, high_open=True)
    if checks.number("crossfade", crossfade) < 0 or crossfade >= 1:
        raise ConfigError(f"crossfade must be in [0, 1), got {crossfade:g}")
    window = model.representation.frames_for(model.max_seconds)
    if window < 3:
        raise ConfigError(f"this model's window ({window} frames) is too short to make long clips from")
    shared = min(window - 1, max(2, round(overlap * window)))
    return WindowPlan(int(frames), window, shared, min(shared - 1, round(crossfade * shared)))

def join(x: torch.Tensor, y: torch.Tensor, shared: int, fade: int) -> torch.Tensor:
    """``x`` ``(B, ..., E)`` then window ``y`` ``(B, ..., W)`` whose first ``shared`` frames overlap
    ``x``'s last; the last ``fade`` of those are crossfaded linearly.  Returns ``(B, ..., E + W - shared)``."""
    end = x.shape[-1]
    w = torch.arange(1, fade + 1, device=x.device, dtype=x.dtype) / (fade + 1)  # (fade,) ramp into y
    blend = torch.lerp(x[..., end - fade:], y[..., shared - fade:shared], w)
    return torch.cat([x[..., :end - fade], blend, y[..., shared:]], dim=-1)

@torch.inference_mode()
def extend(model: DiffusionModel, x: torch.Tensor, plan: WindowPlan, sigmas: torch.Tensor, sampler: Any,
           generators: Sequence[torch.Generator], denoise_fn: DenoiseFn, jumps: int = 0, jump_length: int = 10,
           callback: Callback = None) -> tuple[torch.Tensor, list[int]]:
    """Continue clean samples ``x`` ``(B, ..., E)`` to ``(B, ..., plan.frames)``, window by window.

    Each window starts ``overlap`` frames before the end so far, inpaints (:func:`run_inpainting`)
    everything after its known part, and is joined on with :func:`join`.  Returns the samples and
    the seam frames (where the new window's content starts and where the crossfade ends).
    """
    seams: list[int] = []
    while x.shape[-1] < plan.frames:
        end = x.shape[-1]
        shared = min(plan.overlap, end)
        fade = min(plan.crossfade, shared - 1)
        x0 = x.new_zeros((*x.shape[:-1], plan.window))
        x0[..., :shared] = x[..., end - shared:]
        known = known_mask(model, plan.window, shared - fade, plan.window)
        start = masked_start(model, x0, known, float(sigmas[0]), generators)
        y = run_inpainting(model, start, x0, known, sigmas, sampler, generators, denoise_fn, jumps, jump_length,
                           callback)
        x = join(x, y, shared, fade)
        seams += sorted({end - fade, end})
    return x[..., :plan.frames], [s for s in seams if s < plan.frames]

def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of ``a``, ``b`` ``(1, ...)`` at ``t`` ``(N,)`` -> ``(N, ...)`` (Shoemake 1985).

    Falls back to linear interpolation for nearly parallel vectors.
    """
    fa, fb = a.reshape(-1).double(), b.reshape(-1).double()  # (1, ...) -> (D,)
    cos = (fa @ fb / (fa.norm() * fb.norm()).clamp(min=1e-12)).clamp(-1, 1)
    theta = torch.arccos(cos)
    t = t.double().to(a.device)[:, None]  # (N, 1)
    if theta < 1e-4:
        mixed = (1 - t) * fa + t * fb
    else:
        mixed = (torch.sin((1 - t) * theta) * fa + torch.sin(t * theta) * fb) / torch.sin(theta)
    return mixed.to(a.dtype).reshape(len(t), *a.shape[1:])  # (N, D) -> (N, ...)
