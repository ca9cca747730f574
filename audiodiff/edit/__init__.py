"""Editing audio with a diffusion model: inpaint, continue, variations, interpolation, loops.

Every edit starts from the one shared set-up (:func:`~audiodiff.sampling.prepare_run`) and is built
from the sampling pieces in :mod:`audiodiff.sampling`; it works with any registered sampler, because
an edit changes the denoise function a sampler sees, or which segment of the sigma ladder it walks,
never the sampler itself.

- Inpainting (:func:`inpaint`): RePaint (Lugmayr et al. 2022, alg. 1) through
  :func:`~audiodiff.sampling.run_inpainting` and its known-region denoiser.
- Continuation (:func:`continue_audio`): windows of the model's ``max_seconds`` that overlap the audio
  so far (:func:`~audiodiff.sampling.extend`); each inpaints its overlap (known) and the rest, and the
  last ``crossfade`` frames of the overlap are crossfaded in feature space.
- Variation (:func:`variation`): SDEdit (Meng et al. 2022, sec. 3, alg. 1): noise the clip to the
  ladder's sigma at fraction ``strength`` and sample from there.
- Interpolation (:func:`interpolate`): DDIM inversion (Song et al. 2021, sec. 4.3; the
  probability-flow ODE, Karras et al. 2022 eq. 4, integrated upwards from sigma_min to sigma_max
  with the same deterministic sampler on the ascending ladder), spherical interpolation of the
  latents (:func:`~audiodiff.sampling.slerp`), regenerated with the ODE.
  :func:`interpolate_prompts` blends the conditioning net inputs linearly from one noise.
- Loops (:func:`loop`): the denoiser sees the time axis circularly padded
  (:func:`~audiodiff.sampling.circular_denoiser`), so the clip's end flows into its start.
"""

from .common import MAX_EDIT_CLIPS, AudioInput, in_batches, load_input, mel_band, mel_centres, prepare
from .interpolation import (interpolate, interpolate_prompts, invert, iter_interpolate, iter_interpolate_prompts,
                            lerp_inputs)
from .repaint import continue_audio, inpaint, loop, variation

__all__ = ["MAX_EDIT_CLIPS", "AudioInput", "continue_audio", "in_batches", "inpaint", "interpolate",
           "interpolate_prompts", "invert", "iter_interpolate", "iter_interpolate_prompts", "lerp_inputs", "load_input",
           "loop", "mel_band", "mel_centres", "prepare", "variation"]
