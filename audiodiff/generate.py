"""Generation: noise -> sampler -> features -> vocoder -> ``Audio``.

:func:`generate` is one readable run over the shared sampling pieces: :func:`~audiodiff.sampling.prepare_run`
checks and resolves the arguments (sampler, sigma ladder, prompts, seeds, vocoder), then each batch is
sampled from noise (:func:`~audiodiff.sampling.core.run_sampler`) and decoded
(:func:`~audiodiff.sampling.core.to_audio`).  Each clip ``i`` of a call with ``seed`` draws all its noise
from its own generator seeded with ``seed + i``, so a clip is reproducible from its sidecar alone,
whatever the batch it was made in.

Clips longer than ``model.max_seconds`` are made in overlapping windows: the first is sampled as
usual, each further one inpaints its overlap with the tail so far (:func:`audiodiff.sampling.extend`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from . import checks
from .audio.clip import Audio
from .diffusion.samplers import Sampler
from .model import DiffusionModel
from .sampling.core import initial_noise, make_generators, run_sampler, to_audio
from .sampling.run import SamplingRun, check_seconds, prepare_run, with_progress
from .sampling.windows import WindowPlan, extend, plan_windows, seam_score

__all__ = ["Audio", "generate", "iter_generate", "sample_frames"]


def generate(
    model: DiffusionModel,
    num_samples: int = 1,
    prompt: str | Sequence[str] | None = None,
    negative_prompt: str | Sequence[str] | None = None,
    guidance_scale: float | None = None,
    guidance_rescale: float = 0.0,
    seconds: float | None = None,
    steps: int | None = None,
    sampler: str | Mapping[str, Any] | Sampler | None = None,
    seed: int | None = None,
    vocoder: Any = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    batch_size: int = 16,
    spacing: str | None = None,
    device: torch.device | str | None = None,
    overlap: float = 0.5,
    sigma_min: float | None = None,
) -> list[Audio]:
    """Generate ``num_samples`` clips (per prompt).

    Args:
        model: a :class:`DiffusionModel` (e.g. from :func:`audiodiff.load`).
        num_samples: number of clips for each prompt (or in all, without prompts).
        prompt: a prompt or list of prompts for a conditional model (``""`` is the null condition).
        negative_prompt: what the guidance steers away from (one, or one per prompt); default null.
        guidance_scale: classifier-free guidance scale (1 = plain conditional, 0 = unconditional);
            default the model's ``guidance_scale``.
        guidance_rescale: fraction in [0, 1] of guidance rescaling (Lin et al. 2024).
        seconds: clip length (default: the model's training window).  Beyond ``model.max_seconds``
            the clip is made in windows of ``max_seconds`` that overlap by ``overlap``
            (see :func:`audiodiff.sampling.extend`); the sidecar then records the seams' ``seam_ratio``.
        steps: sampler steps (default: the model's); between 1 and the schedule's training steps.
        sampler: registry name or config (``"ddim"``, ``{"name": "ddim", "eta": 0.5}``, ``"ddpm"``,
            ...), a sampler object, or ``None`` for the model's default.
        seed: base seed, an integer with ``seed + i < 2**64``; clip ``i`` uses ``seed + i``.  ``None`` draws
            a random one (recorded).
        vocoder: registry name/config, trained vocoder folder or object; default the model's.
        callback: called after every sampler step with ``{"i", "sigma", "x", "denoised", "batch", "total"}``
            (``total``: the sampler steps the whole call makes, for a progress bar).
        batch_size: clips per denoiser batch.
        spacing: timestep spacing ``"leading"``, ``"trailing"`` or ``"linspace"`` (default: model's).
        device: where to run (default: the model's device).
        overlap: for long clips, the fraction in (0, 1) of a window shared with the one before.
        sigma_min: the smallest noise level the sampler visits before its final step to 0, which
            returns the denoised estimate there (default: the model's ``sigma_min``, else the
            schedule's smallest).

    Returns:
        ``num_samples * len(prompts)`` :class:`Audio` clips, ``waveform`` ``(1, S)`` each.  To keep
        only one batch in memory at a time, iterate :func:`iter_generate` instead (same arguments).
    """
    # the signature repeats iter_generate's on purpose: the public function names and documents every
    # argument for help() and IDEs; all the work is iter_generate's
    return list(iter_generate(model, num_samples, prompt, negative_prompt, guidance_scale, guidance_rescale, seconds,
                              steps, sampler, seed, vocoder, callback, batch_size, spacing, device, overlap, sigma_min))


def iter_generate(
    model: DiffusionModel,
    num_samples: int = 1,
    prompt: str | Sequence[str] | None = None,
    negative_prompt: str | Sequence[str] | None = None,
    guidance_scale: float | None = None,
    guidance_rescale: float = 0.0,
    seconds: float | None = None,
    steps: int | None = None,
    sampler: str | Mapping[str, Any] | Sampler | None = None,
    seed: int | None = None,
    vocoder: Any = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    batch_size: int = 16,
    spacing: str | None = None,
    device: torch.device | str | None = None,
    overlap: float = 0.5,
    sigma_min: float | None = None,
) -> Iterator[Audio]:
    """:func:`generate` as an iterator: every argument is checked now, then the clips come batch by
    batch as they are made (memory stays bounded for any ``num_samples``; the CLI writes each batch
    to disk before making the next)."""
    batch_size = checks.integer("batch_size", batch_size, 1, checks.MAX_BATCH)
    overlap = checks.number("overlap", overlap, 0.0, 1.0, low_open=True, high_open=True)
    if device is not None:
        model = model.to(checks.device(device))
    sigma_min = model.config.get("sigma_min") if sigma_min is None else checks.number("sigma_min", sigma_min)
    run = prepare_run(model, num_samples, prompt, negative_prompt, guidance_scale, guidance_rescale, steps, sampler,
                      spacing, sigma_min, seed, vocoder, check_seconds(model, seconds, long_form=True))
    seconds = run.common["seconds"]
    frames = model.representation.frames_for(seconds)
    plan = plan_windows(model, frames, overlap) if seconds > model.max_seconds + 1e-9 else None
    run.common["sigma_min"] = sigma_min
    if model.is_conditional:
        run.common.update(guidance_scale=run.scale, guidance_rescale=run.rescale)
    total = run.steps * -(-len(run.prompts) // batch_size) * (1 if plan is None else plan.count)
    return _batches(run, frames, plan, batch_size, callback, total)


def _batches(run: SamplingRun, frames: int, plan: WindowPlan | None, batch_size: int,
             callback: Callable[[dict[str, Any]], None] | None, total: int) -> Iterator[Audio]:
    """The clips of :func:`iter_generate`, one batch at a time; ``total`` steps in all are reported."""
    model = run.model
    for start in range(0, len(run.prompts), batch_size):
        stop = min(len(run.prompts), start + batch_size)
        generators = make_generators(run.seeds[start:stop])
        batch_cb = with_progress(callback, total, {"batch": start // batch_size})
        x, extra = sample_frames(model, frames, run.sigmas, run.sampler, generators, batch_cb, run.denoiser(start, stop),
                                 plan)
        metas = run.metadata(start, stop, {})
        for meta, fields in zip(metas, extra):
            meta.update(fields)
        yield from to_audio(model, x, run.vocoder, metas)


def sample_frames(model: DiffusionModel, frames: int, sigmas: torch.Tensor, sampler: Any,
                  generators: Sequence[torch.Generator], callback: Callable[[dict[str, Any]], None] | None,
                  denoise_fn: Callable, plan: WindowPlan | None = None) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """``(B, *sample_shape(frames))`` samples from noise, and per-clip sidecar extras.

    Without a window ``plan`` this is one sampler run; with one (a long clip), the first window
    is sampled and :func:`audiodiff.sampling.extend` continues it window by window.
    """
    first = frames if plan is None else plan.window
    x = initial_noise(model, first, float(sigmas[0]), generators).to(model.device)
    x = run_sampler(model, x, sigmas, sampler, generators, callback, denoise_fn)
    if plan is None:
        return x, [{} for _ in generators]
    x, seams = extend(model, x, plan, sigmas, sampler, generators, denoise_fn, callback=callback)
    feats = model.from_net_layout(x).float().cpu()  # (B, *shape_per_frame, frames)
    info = plan.metadata()
    return x, [{"long_form": info, "seams": seams, "seam_ratio": seam_score(f, seams)} for f in feats]
