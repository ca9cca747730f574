"""Sampling machinery below :mod:`audiodiff.generate` and :mod:`audiodiff.edit` (it never imports them).

- :mod:`~audiodiff.sampling.core`: sampler, sigma ladder, per-clip noise, (guided) denoiser, the
  sampler run and decoding.
- :mod:`~audiodiff.sampling.run`: the one :func:`prepare_run` that generation and every edit share.
- :mod:`~audiodiff.sampling.transforms`: known-region (RePaint) and circular denoisers, RePaint's walk.
- :mod:`~audiodiff.sampling.windows`: long clips in overlapping windows, seam score, slerp.
"""

from .core import (PerRowGenerator, conditioned_denoiser, inference_sigmas, initial_noise, inputs_denoiser,
                   make_generators, resolve_sampler, resolve_vocoder, run_sampler, sampler_config, to_audio)
from .run import LONG_FORM_LIMIT, SamplingRun, check_guidance, check_prompts, check_seconds, prepare_run
from .transforms import circular_denoiser, known_denoiser, known_mask, repaint_segments, run_inpainting
from .windows import WindowPlan, extend, loop_seam_score, plan_windows, seam_score, slerp

__all__ = ["LONG_FORM_LIMIT", "PerRowGenerator", "SamplingRun", "WindowPlan", "check_guidance", "check_prompts",
           "check_seconds", "circular_denoiser", "conditioned_denoiser", "extend", "inference_sigmas", "initial_noise",
           "inputs_denoiser", "known_denoiser", "known_mask", "loop_seam_score", "make_generators", "plan_windows",
           "prepare_run", "repaint_segments", "resolve_sampler", "resolve_vocoder", "run_inpainting", "run_sampler",
           "sampler_config", "seam_score", "slerp", "to_audio"]
