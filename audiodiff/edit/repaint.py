"""Edits that keep part of a clip: inpainting (RePaint, Lugmayr et al. 2022, alg. 1), continuation in
overlapping windows, loops (the circular denoiser) and variations (SDEdit, Meng et al. 2022, sec. 3, alg. 1)."""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import checks
from ..audio.clip import Audio
from ..errors import ConfigError
from ..model import DiffusionModel
from ..sampling.core import Callback, DenoiseFn, PerRowGenerator, initial_noise, run_sampler
from ..sampling.run import LONG_FORM_LIMIT, SamplingRun, check_seconds, with_progress
from ..sampling.transforms import (check_jumps, circular_denoiser, known_mask, masked_start, repaint_steps,
                                  run_inpainting)
from ..sampling.windows import extend, loop_seam_score, plan_windows
from .common import (AudioInput, check_length, context_window, finish, fraction, load_input, mel_band, prepare,
                     time_frames)


def inpaint(model: DiffusionModel, audio: AudioInput, start: float, end: float, fmin: float | None = None,
            fmax: float | None = None, prompt: str | None = None, num_samples: int = 1,
            negative_prompt: str | None = None, guidance_scale: float | None = None, steps: int | None = None,
            sampler: Any = None, spacing: str | None = None, jumps: int = 0, jump_length: int = 10,
            seed: int | None = None, vocoder: Any = None, callback: Callback = None) -> list[Audio]:
    """Regenerate ``start``-``end`` seconds of a clip (only mel bins in ``fmin``-``fmax`` Hz if given).

    Everything else is kept (RePaint, :func:`run_inpainting`); ``jumps`` resamplings every
    ``jump_length`` steps harmonise the new part with the kept one (0: plain replacement).  Only a
    window of the model's ``max_seconds`` around the range is the context; the rest is copied.

    Returns:
        ``num_samples`` :class:`Audio` clips ``(1, S)`` as long as the input, with ``seam_ratio`` at
        the range's edges in their metadata.
    """
    x0, source = load_input(model, audio)
    a, b = time_frames(model.representation, start, end, x0.shape[-1])
    band = mel_band(model.representation, fmin, fmax)
    run = prepare(model, num_samples, prompt, negative_prompt, guidance_scale, steps, sampler, spacing, seed, vocoder)
    check_jumps(jumps, jump_length, run.steps)
    callback = with_progress(callback, repaint_steps(run.steps, jumps, jump_length))
    w0, w1 = context_window(x0.shape[-1], a, b, model.representation.frames_for(model.max_seconds))
    x = _inpaint_window(model, run, x0, (w0, w1), known_mask(model, w1 - w0, a - w0, b - w0, band),
                        jumps, jump_length, callback)
    edit = {"name": "inpaint", "input": source, "start": float(start), "end": float(end), "fmin": fmin, "fmax": fmax,
            "frames": [a, b], "mel_bins": list(band) if band else None, "jumps": jumps, "jump_length": jump_length}
    return finish(model, run, x, edit, [s for s in (a, b) if 1 <= s < x0.shape[-1]])


@torch.inference_mode()
def _inpaint_window(model: DiffusionModel, run: SamplingRun, x0: torch.Tensor, window: tuple[int, int],
                    known: torch.Tensor, jumps: int, jump_length: int, callback: Callback,
                    denoise_fn: DenoiseFn | None = None) -> torch.Tensor:
    """``(B, ..., T)``: ``x0`` ``(1, ..., T)`` with its ``window`` frames inpainted where not ``known``
    (with ``denoise_fn``, default the run's guided denoiser)."""
    w0, w1 = window
    part = x0[..., w0:w1]
    start = masked_start(model, part, known, float(run.sigmas[0]), run.generators)
    y = run_inpainting(model, start, part, known, run.sigmas, run.sampler, run.generators,
                       denoise_fn or run.denoiser(), jumps, jump_length, callback)
    out = x0.repeat(len(run.seeds), *[1] * (x0.dim() - 1))  # (1, ...) -> (B, ...)
    out[..., w0:w1] = y
    return out


def continue_audio(model: DiffusionModel, audio: AudioInput, seconds: float, num_samples: int = 1,
                   prompt: str | None = None, negative_prompt: str | None = None, guidance_scale: float | None = None,
                   steps: int | None = None, sampler: Any = None, spacing: str | None = None, seed: int | None = None,
                   overlap: float = 0.5, crossfade: float = 0.25, jumps: int = 0, jump_length: int = 10,
                   vocoder: Any = None, callback: Callback = None) -> list[Audio]:
    """Extend a clip by ``seconds`` (as many windows as it takes; see :func:`extend`).

    The clip's last ``overlap`` of a window is the known context of the first new window; the
    clip is kept as it is up to its last ``crossfade`` part, which is crossfaded into the new audio.

    Returns:
        ``num_samples`` :class:`Audio` clips ``(1, S)`` of the input's length plus ``seconds``, with
        ``seam_ratio`` (:func:`seam_score` over the seams) in their metadata.
    """
    seconds = checks.number("seconds", seconds, 0.0, LONG_FORM_LIMIT, low_open=True)
    x0, source = load_input(model, audio)
    run = prepare(model, num_samples, prompt, negative_prompt, guidance_scale, steps, sampler, spacing, seed, vocoder)
    check_jumps(jumps, jump_length, run.steps)
    frames = x0.shape[-1] + model.representation.frames_for(seconds) - 1
    if frames <= x0.shape[-1]:
        raise ConfigError(f"seconds={seconds:g} adds no frame to the clip (frames are "
                          f"{model.representation.seconds_for(2) - model.representation.seconds_for(1):.3f} s apart)")
    plan = plan_windows(model, frames, overlap, crossfade)
    callback = with_progress(callback, plan.windows_after(x0.shape[-1]) * repaint_steps(run.steps, jumps, jump_length))
    x = x0.expand(len(run.seeds), *x0.shape[1:])  # (1, ...) -> (B, ...)
    x, seams = extend(model, x, plan, run.sigmas, run.sampler, run.generators, run.denoiser(), jumps,
                      jump_length, callback)
    edit = {"name": "continue", "input": source, "added_seconds": seconds, "jumps": jumps,
            "jump_length": jump_length, **plan.metadata(), "windows": plan.windows_after(x0.shape[-1])}
    return finish(model, run, x, edit, seams)


def variation(model: DiffusionModel, audio: AudioInput, strength: float, num_samples: int = 1,
              prompt: str | None = None, negative_prompt: str | None = None, guidance_scale: float | None = None,
              steps: int | None = None, sampler: Any = None, spacing: str | None = None, seed: int | None = None,
              vocoder: Any = None, callback: Callback = None) -> list[Audio]:
    """Variations of a clip (SDEdit): noise it to the ladder's sigma at ``strength`` and sample from there.

    ``strength`` in (0, 1]: the last ``ceil(strength * steps)`` steps of the ladder are run, from
    ``x0 + sigma * eps``; near 0 returns nearly the clip, 1 is plain generation (the clip is ignored).

    Returns:
        ``num_samples`` :class:`Audio` clips ``(1, S)`` as long as the input.
    """
    strength = fraction("strength", strength, 0.0, 1.0, closed_high=True)
    x0, source = load_input(model, audio)
    check_length(model, x0, "variation")
    run = prepare(model, num_samples, prompt, negative_prompt, guidance_scale, steps, sampler, spacing, seed, vocoder)
    total = len(run.sigmas) - 1
    sigmas = run.sigmas[total - max(1, math.ceil(strength * total - 1e-9)):]
    if strength == 1.0:
        x = initial_noise(model, x0.shape[-1], float(sigmas[0]), run.generators).to(model.device)
    else:
        eps = PerRowGenerator(run.generators).randn((len(run.seeds), *x0.shape[1:]), x0.dtype)  # (B, ...)
        x = x0 + sigmas[0] * eps.to(x0.device)
    x = run_sampler(model, x, sigmas, run.sampler, run.generators, with_progress(callback, len(sigmas) - 1),
                    run.denoiser())
    edit = {"name": "variation", "input": source, "strength": strength, "start_sigma": float(sigmas[0]),
            "steps_run": len(sigmas) - 1}
    return finish(model, run, x, edit)


def loop(model: DiffusionModel, seconds: float | None = None, prompt: str | None = None, num_samples: int = 1,
         wrap: float = 0.25, negative_prompt: str | None = None, guidance_scale: float | None = None,
         steps: int | None = None, sampler: Any = None, spacing: str | None = None, seed: int | None = None,
         vocoder: Any = None, callback: Callback = None, audio: AudioInput | None = None) -> list[Audio]:
    """Clips whose end flows into their start: every denoiser call sees ``wrap`` (a fraction of the
    clip, in (0, 1]) of its end before its start and of its start after its end.

    With ``audio`` (a clip no longer than the model's window) the clip itself is made to loop: its
    middle is kept, and the last and first ``wrap / 2`` of it are regenerated around the seam (RePaint
    with the circular denoiser), so the clip keeps its length and only its ends change.

    Returns:
        ``num_samples`` :class:`Audio` clips ``(1, S)`` with the end-to-start ``seam_ratio`` in their metadata.
    """
    wrap = fraction("wrap", wrap, 0.0, 1.0, closed_high=True)
    run = prepare(model, num_samples, prompt, negative_prompt, guidance_scale, steps, sampler, spacing, seed, vocoder)
    callback = with_progress(callback, run.steps)  # one walk down the ladder (a clip's ends: RePaint, no jumps)
    if audio is None:
        frames = model.representation.frames_for(check_seconds(model, seconds))
        wrap_frames = max(1, round(wrap * frames))
        x = initial_noise(model, frames, float(run.sigmas[0]), run.generators).to(model.device)
        x = run_sampler(model, x, run.sigmas, run.sampler, run.generators, callback,
                        circular_denoiser(run.denoiser(), wrap_frames))
        edit = {"name": "loop", "wrap_frames": wrap_frames}
    else:
        x, edit = _loop_clip(model, run, audio, seconds, wrap, callback)
    clips = finish(model, run, x, edit)
    for clip in clips:
        clip.metadata["seam_ratio"] = loop_seam_score(clip.features)
    return clips


def _loop_clip(model: DiffusionModel, run: SamplingRun, audio: AudioInput, seconds: float | None, wrap: float,
               callback: Callback) -> tuple[torch.Tensor, dict[str, Any]]:
    """``(B, ...)``: the clip with its ends regenerated around the end-to-start seam, and the sidecar's ``edit``."""
    if seconds is not None:
        raise ConfigError("loop: seconds and audio exclude each other (a clip keeps its own length)")
    x0, source = load_input(model, audio)
    frames, window = x0.shape[-1], model.representation.frames_for(model.max_seconds)
    if frames > window:
        raise ConfigError(f"loop: the clip is {model.representation.seconds_for(frames):.2f} s; this model loops clips "
                          f"of up to {model.max_seconds:g} s (cut it, or inpaint the seam of a longer clip)")
    tail = max(1, round(wrap * frames / 2))  # regenerated at each end: the seam sits in the middle of 2 * tail frames
    known = ~known_mask(model, frames, tail, frames - tail)  # (1, ..., T): True in the middle only
    x = _inpaint_window(model, run, x0, (0, frames), known, 0, 10, callback,
                        circular_denoiser(run.denoiser(), 2 * tail))
    return x, {"name": "loop", "input": source, "wrap_frames": 2 * tail, "regenerated_frames": [[0, tail], [frames - tail, frames]]}
