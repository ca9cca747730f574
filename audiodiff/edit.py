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

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from . import checks
from .audio.clip import Audio
from .audio.io import load_audio, resample, to_mono
from .errors import AudioError, ConfigError
from .model import DiffusionModel
from .sampling.core import (Callback, DenoiseFn, PerRowGenerator, initial_noise, inputs_denoiser, make_generators,
                            run_sampler, to_audio)
from .sampling.run import LONG_FORM_LIMIT, SamplingRun, check_seconds, prepare_run
from .sampling.transforms import check_jumps, circular_denoiser, known_mask, masked_start, run_inpainting
from .sampling.windows import extend, loop_seam_score, plan_windows, seam_score, slerp

AudioInput = Audio | torch.Tensor | str | os.PathLike

__all__ = ["continue_audio", "in_batches", "inpaint", "interpolate", "interpolate_prompts", "invert",
           "iter_interpolate", "iter_interpolate_prompts", "lerp_inputs", "load_input", "loop", "mel_band", "mel_centres",
           "variation"]


# -- checks and inputs -------------------------------------------------------------------------
def _fraction(name: str, value: Any, low: float, high: float, closed_high: bool = False) -> float:
    """``value`` in ``(low, high)`` (or ``(low, high]``), else a one-line error."""
    return checks.number(name, value, low, high, low_open=True, high_open=not closed_high)


#: the most clips one edit call makes (they are made in one batch)
MAX_EDIT_CLIPS = 256


def load_input(model: DiffusionModel, audio: AudioInput) -> tuple[torch.Tensor, str | None]:
    """Clean samples ``(1, *net_shape_per_frame, frames)`` of a clip, and its path (if it came from one).

    ``audio`` is a file path (read with :func:`~audiodiff.audio.load_audio` at the model's rate), a
    waveform ``(S,)`` or ``(C, S)`` at the model's rate, or an :class:`Audio` (its ``features`` are
    used as they are when they fit the model, so a generated clip is edited without re-encoding).
    """
    source = None
    if isinstance(audio, (str, os.PathLike)):
        source = str(audio)
        wave, _ = load_audio(audio, model.sample_rate)  # (1, S)
    elif isinstance(audio, Audio):
        feats = audio.features
        if feats is not None and tuple(feats.shape[:-1]) == tuple(model.representation.shape_per_frame):
            return model.to_net_layout(feats[None].to(model.device, torch.float32)), None  # (1, *shape, T)
        wave = resample(to_mono(audio.waveform), audio.sample_rate, model.sample_rate)
    elif isinstance(audio, torch.Tensor) and audio.dim() in (1, 2) and audio.is_floating_point():
        wave = to_mono(audio if audio.dim() == 2 else audio[None])  # (S,) or (C, S) -> (1, S)
    else:
        raise ConfigError(f"audio must be a path, a float waveform (S,) or (C, S), or an Audio, got "
                          f"{_describe(audio)}")
    if not torch.isfinite(wave).all():
        raise AudioError(f"input audio{' ' + source if source else ''} holds NaN or inf samples")
    if wave.shape[-1] < model.representation.hop_length:
        raise ConfigError(f"input audio{' ' + source if source else ''} is too short ({wave.shape[-1]} samples)")
    with torch.inference_mode():
        return model.encode(wave[None].to(model.device, torch.float32)), source  # (1, 1, S) -> (1, *net, T)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def check_length(model: DiffusionModel, x0: torch.Tensor, what: str) -> None:
    """An error if clean samples ``x0`` are longer than one window of the model (``max_seconds``)."""
    seconds = model.representation.seconds_for(x0.shape[-1])
    if seconds > model.max_seconds + 1e-6:
        raise ConfigError(f"{what} works on clips of at most {model.max_seconds:g} s (this model's window); "
                          f"the input is {seconds:.2f} s")


def in_batches(edit: Callable[..., list[Audio]], model: DiffusionModel, num_samples: int = 1,
               seed: int | None = None, batch_size: int = 16, **kwargs: Any) -> Iterator[Audio]:
    """The clips of ``edit(model, num_samples=num_samples, seed=seed, **kwargs)`` (``inpaint``,
    ``continue_audio``, ``variation``, ``loop``), made ``batch_size`` at a time and handed out as each
    batch is done: memory stays bounded for any ``num_samples``.  Clip ``i`` uses ``seed + i`` and has
    index ``i``, as in one call."""
    num_samples = checks.integer("num_samples", num_samples, 1, checks.MAX_CLIPS)
    batch_size = checks.integer("batch_size", batch_size, 1, MAX_EDIT_CLIPS)
    seed = checks.seed(seed, num_samples)

    def clips() -> Iterator[Audio]:
        for start in range(0, num_samples, batch_size):
            for clip in edit(model, num_samples=min(batch_size, num_samples - start), seed=seed + start, **kwargs):
                clip.metadata["index"] += start
                yield clip

    return clips()


# -- regions: time range and mel band -> known mask ------------------------------------------------
def mel_centres(representation: Any) -> torch.Tensor:
    """``(n_mels,)`` centre frequencies in Hz of a mel representation's filters."""
    import librosa

    htk = getattr(representation, "mel_scale", "slaney") == "htk"
    points = librosa.mel_frequencies(representation.n_mels + 2, fmin=representation.f_min,
                                     fmax=representation.f_max, htk=htk)  # filter edges and centres
    return torch.from_numpy(points[1:-1]).double()


def mel_band(representation: Any, fmin: float | None, fmax: float | None) -> tuple[int, int] | None:
    """The mel bins ``[lo, hi)`` whose filter centres lie in ``[fmin, fmax]`` Hz; ``None`` for all bins."""
    if fmin is None and fmax is None:
        return None
    if not all(hasattr(representation, k) for k in ("f_min", "f_max", "n_mels")):
        raise ConfigError("a frequency band (fmin/fmax) needs a mel representation")
    lo_hz = representation.f_min if fmin is None else checks.number("fmin", fmin)
    hi_hz = representation.f_max if fmax is None else checks.number("fmax", fmax)
    if not representation.f_min <= lo_hz < hi_hz <= representation.f_max:
        raise ConfigError(f"need {representation.f_min:g} <= fmin < fmax <= {representation.f_max:g} Hz "
                          f"(the model's mel range), got fmin={lo_hz:g}, fmax={hi_hz:g}")
    centres = mel_centres(representation)
    inside = ((centres >= lo_hz) & (centres <= hi_hz)).nonzero()
    if len(inside) == 0:
        raise ConfigError(f"the band {lo_hz:g}-{hi_hz:g} Hz holds no mel bin centre; widen it")
    return int(inside[0]), int(inside[-1]) + 1


def time_frames(representation: Any, start: float, end: float, frames: int) -> tuple[int, int]:
    """Frames ``[a, b)`` whose centres lie in ``[start, end]`` seconds of a clip of ``frames`` frames."""
    start, end = checks.number("start", start), checks.number("end", end)
    hop = representation.seconds_for(2) - representation.seconds_for(1)  # seconds per frame (a latent's span several hops)
    length = representation.seconds_for(frames)
    if not 0 <= start < end <= length + hop:
        raise ConfigError(f"need 0 <= start < end <= {length:.3f} s (the clip's length), "
                          f"got start={start:g}, end={end:g}")
    a, b = math.ceil(start / hop - 1e-6), min(frames, math.floor(end / hop + 1e-6) + 1)
    if b <= a:
        raise ConfigError(f"the range {start:g}-{end:g} s holds no mel frame (frames are {hop * 1000:.1f} ms apart)")
    return a, b


def context_window(frames: int, a: int, b: int, window: int) -> tuple[int, int]:
    """A slice ``[w0, w1)`` of at most ``window`` frames around ``[a, b)``: the inpainting context."""
    if frames <= window:
        return 0, frames
    if b - a > window:
        raise ConfigError(f"the range to inpaint ({b - a} frames) is longer than this model's window ({window} frames)")
    w0 = min(max(0, (a + b) // 2 - window // 2), frames - window)
    return w0, w0 + window


# -- the inpainting sampler -----------------------------------------------------------------------


# -- the shared set-up of an edit ------------------------------------------------------------------


def prepare(model: DiffusionModel, num_samples: int = 1, prompt: str | None = None, negative_prompt: str | None = None,
            guidance_scale: float | None = None, steps: int | None = None, sampler: Any = None,
            spacing: str | None = None, seed: int | None = None, vocoder: Any = None) -> SamplingRun:
    """The shared set-up of an edit: :func:`~audiodiff.sampling.prepare_run` (no rescale, the model's ladder end),
    at most :data:`MAX_EDIT_CLIPS` clips."""
    return prepare_run(model, num_samples, prompt, negative_prompt, guidance_scale, 0.0, steps, sampler, spacing, None,
                       seed, vocoder, max_clips=MAX_EDIT_CLIPS)


def _seconds(model: DiffusionModel, x: torch.Tensor) -> float:
    return model.representation.seconds_for(x.shape[-1])


# -- seams ----------------------------------------------------------------------------------------


# -- long clips and continuation ----------------------------------------------------------------------


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
    check_jumps(jumps, jump_length, len(run.sigmas) - 1)
    frames = x0.shape[-1] + model.representation.frames_for(seconds) - 1
    if frames <= x0.shape[-1]:
        raise ConfigError(f"seconds={seconds:g} adds no frame to the clip (frames are "
                          f"{model.representation.seconds_for(2) - model.representation.seconds_for(1):.3f} s apart)")
    plan = plan_windows(model, frames, overlap, crossfade)
    x = x0.expand(len(run.seeds), *x0.shape[1:])  # (1, ...) -> (B, ...)
    x, seams = extend(model, x, plan, run.sigmas, run.sampler, run.generators, run.denoiser(), jumps,
                      jump_length, callback)
    edit = {"name": "continue", "input": source, "added_seconds": seconds, "jumps": jumps,
            "jump_length": jump_length, **plan.metadata(), "windows": plan.windows_after(x0.shape[-1])}
    return _finish(model, run, x, edit, seams)


def _finish(model: DiffusionModel, run: SamplingRun, x: torch.Tensor, edit: Mapping[str, Any],
            seams: Sequence[int] = ()) -> list[Audio]:
    """Decode ``x`` ``(B, ...)`` into clips with sidecars (and the seams' ``seam_ratio`` when there are seams)."""
    fields = {"seconds": _seconds(model, x), "edit": dict(edit)}
    if model.is_conditional:
        fields["guidance_scale"] = run.scale
    metas = run.metadata(0, min(len(x), len(run.prompts)), fields)
    feats = model.from_net_layout(x).float().cpu()  # (B, *shape_per_frame, T)
    for meta, f in zip(metas, feats):
        if seams:
            meta.update(seams=list(seams), seam_ratio=seam_score(f, seams))
    return to_audio(model, x, run.vocoder, metas)


# -- inpainting -----------------------------------------------------------------------------------
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
    check_jumps(jumps, jump_length, len(run.sigmas) - 1)
    w0, w1 = context_window(x0.shape[-1], a, b, model.representation.frames_for(model.max_seconds))
    x = _inpaint_window(model, run, x0, (w0, w1), known_mask(model, w1 - w0, a - w0, b - w0, band),
                        jumps, jump_length, callback)
    edit = {"name": "inpaint", "input": source, "start": float(start), "end": float(end), "fmin": fmin, "fmax": fmax,
            "frames": [a, b], "mel_bins": list(band) if band else None, "jumps": jumps, "jump_length": jump_length}
    return _finish(model, run, x, edit, [s for s in (a, b) if 1 <= s < x0.shape[-1]])


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


# -- variation (SDEdit) --------------------------------------------------------------------------
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
    strength = _fraction("strength", strength, 0.0, 1.0, closed_high=True)
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
    x = run_sampler(model, x, sigmas, run.sampler, run.generators, callback, run.denoiser())
    edit = {"name": "variation", "input": source, "strength": strength, "start_sigma": float(sigmas[0]),
            "steps_run": len(sigmas) - 1}
    return _finish(model, run, x, edit)


# -- interpolation ---------------------------------------------------------------------------------
def invert(model: DiffusionModel, x0: torch.Tensor, sigmas: torch.Tensor, sampler: Any, denoise_fn: DenoiseFn,
           callback: Callback = None) -> torch.Tensor:
    """DDIM inversion: clean ``x0`` ``(B, ...)`` -> latents ``(B, ...)`` at ``sigmas[0]``.

    ``x0`` is taken as the sample at the ladder's smallest nonzero sigma and the deterministic
    ``sampler`` runs the probability-flow ODE up the reversed ladder (no trailing 0).
    """
    if getattr(sampler, "stochastic", False):
        raise ConfigError("inversion needs a deterministic sampler (ddim with eta=0, euler, heun, dpmpp_2m)")
    rising = sigmas[:-1].flip(0)  # (N,) ascending: sigma_min .. sigma_max
    return run_sampler(model, x0, rising, sampler, None, callback, denoise_fn)


def interpolate(model: DiffusionModel, audio_a: AudioInput, audio_b: AudioInput, n: int, prompt: str | None = None,
                negative_prompt: str | None = None, guidance_scale: float | None = None, steps: int | None = None,
                sampler: Any = "ddim", spacing: str | None = None, vocoder: Any = None,
                callback: Callback = None, batch_size: int = 16) -> list[Audio]:
    """``n`` clips from ``audio_a`` to ``audio_b``: invert both, slerp the latents, regenerate.

    Deterministic (no seed; ``sampler`` must be deterministic).  Guidance (``guidance_scale`` other
    than 1 with a prompt) makes inversion less exact; the error tells.  Both clips are cut to the
    shorter; each must fit the model's window.  The sidecars record ``t`` and ``inversion_error``:
    the mean absolute feature difference between each input and its regeneration from its own
    latent (the clips at ``t = 0`` and ``t = 1``).  The clips are regenerated ``batch_size`` at a
    time; :func:`iter_interpolate` hands them out batch by batch (bounded memory for any ``n``).

    Returns:
        ``n`` :class:`Audio` clips ``(1, S)``.
    """
    return list(iter_interpolate(model, audio_a, audio_b, n, prompt, negative_prompt, guidance_scale, steps, sampler,
                                 spacing, vocoder, callback, batch_size))


def iter_interpolate(model: DiffusionModel, audio_a: AudioInput, audio_b: AudioInput, n: int,
                     prompt: str | None = None, negative_prompt: str | None = None,
                     guidance_scale: float | None = None, steps: int | None = None, sampler: Any = "ddim",
                     spacing: str | None = None, vocoder: Any = None, callback: Callback = None,
                     batch_size: int = 16) -> Iterator[Audio]:
    """:func:`interpolate` as an iterator: the inputs are checked and inverted now, then the clips
    come ``batch_size`` at a time."""
    checks.integer("n", n, 2, checks.MAX_CLIPS)
    batch_size = checks.integer("batch_size", batch_size, 1, MAX_EDIT_CLIPS)
    (xa, source_a), (xb, source_b) = load_input(model, audio_a), load_input(model, audio_b)
    frames = min(xa.shape[-1], xb.shape[-1])
    ends = torch.cat([xa[..., :frames], xb[..., :frames]])  # 2 x (1, ..., T) -> (2, ..., T)
    check_length(model, ends, "interpolate")
    rows = max(2, min(n, batch_size))
    run = prepare(model, rows, prompt, negative_prompt, guidance_scale, steps, sampler, spacing, 0, vocoder)
    latents = invert(model, ends, run.sigmas, run.sampler, run.denoiser(0, 2), callback)
    t = torch.linspace(0, 1, n)

    def regenerate(weights: torch.Tensor) -> torch.Tensor:  # (k,) -> (k, ...)
        return run_sampler(model, slerp(latents[:1], latents[1:], weights), run.sigmas, run.sampler, None, callback,
                           run.denoiser(0, len(weights)))

    first = regenerate(t[:batch_size])
    last = first[-1:] if n <= batch_size else regenerate(t[-1:])
    errors = [float((first[0] - ends[0]).abs().mean()), float((last[0] - ends[1]).abs().mean())]
    edit = {"name": "interpolate", "input": source_a, "input2": source_b, "num_steps": n, "inversion_error": errors}

    def clips() -> Iterator[Audio]:
        for start in range(0, n, batch_size):
            weights = t[start:start + batch_size]
            x = first if start == 0 else regenerate(weights)
            for clip, weight in zip(_finish(model, run, x, edit), weights.tolist()):
                clip.metadata.update(seed=None, t=weight, index=start + clip.metadata["index"])
                yield clip

    return clips()


def lerp_inputs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Net inputs ``(B, ...)`` blended row by row with weights ``w`` ``(B,)`` (0: ``a``, 1: ``b``).

    Token sequences are padded to one length; a token is attended to while its prompt has weight.
    """
    out = {}
    for key, both in DiffusionModel.paired_inputs(a, b).items():  # (2B, ...): pads sequences to one length
        va, vb = both.chunk(2)  # (2B, ...) -> 2 x (B, ...)
        if key == "context_mask":
            out[key] = (va & (w < 1)[:, None]) | (vb & (w > 0)[:, None])
        else:
            out[key] = torch.lerp(va, vb, w.reshape(-1, *[1] * (va.dim() - 1)).to(va))  # w (B,) -> (B, 1, ...)
    return out


def interpolate_prompts(model: DiffusionModel, prompt_a: str, prompt_b: str, n: int, seconds: float | None = None,
                        negative_prompt: str | None = None, guidance_scale: float | None = None,
                        steps: int | None = None, sampler: Any = None, spacing: str | None = None,
                        seed: int | None = None, vocoder: Any = None, callback: Callback = None,
                        batch_size: int = 16) -> list[Audio]:
    """``n`` clips from one starting noise whose conditioning moves linearly from ``prompt_a`` to ``prompt_b``.

    Every clip uses the generator of ``seed`` (the same noise); the sidecars record ``t``.  The clips
    are made ``batch_size`` at a time (:func:`iter_interpolate_prompts` hands them out as they come).

    Returns:
        ``n`` :class:`Audio` clips ``(1, S)``.
    """
    return list(iter_interpolate_prompts(model, prompt_a, prompt_b, n, seconds, negative_prompt, guidance_scale, steps,
                                         sampler, spacing, seed, vocoder, callback, batch_size))


def iter_interpolate_prompts(model: DiffusionModel, prompt_a: str, prompt_b: str, n: int,
                             seconds: float | None = None, negative_prompt: str | None = None,
                             guidance_scale: float | None = None, steps: int | None = None, sampler: Any = None,
                             spacing: str | None = None, seed: int | None = None, vocoder: Any = None,
                             callback: Callback = None, batch_size: int = 16) -> Iterator[Audio]:
    """:func:`interpolate_prompts` as an iterator: checked now, then made ``batch_size`` clips at a time."""
    checks.integer("n", n, 2, checks.MAX_CLIPS)
    batch_size = checks.integer("batch_size", batch_size, 1, MAX_EDIT_CLIPS)
    if not model.is_conditional:
        raise ConfigError("this model is unconditional: it takes no prompt to interpolate")
    if not isinstance(prompt_a, str) or not isinstance(prompt_b, str):
        raise ConfigError("prompts must be strings")
    seconds = check_seconds(model, seconds)
    run = prepare(model, min(n, batch_size), prompt_a, negative_prompt, guidance_scale, steps, sampler, spacing, seed,
                  vocoder)
    t = torch.linspace(0, 1, n, device=model.device)
    edit = {"name": "interpolate_prompts", "prompt2": prompt_b, "num_steps": n}

    def batch(weights: torch.Tensor) -> torch.Tensor:  # (k,) -> (k, ...) from the one noise of the seed
        k = len(weights)
        generators = make_generators([run.seeds[0]] * k)
        with torch.inference_mode():
            cond = lerp_inputs(model.encode_prompts([prompt_a] * k), model.encode_prompts([prompt_b] * k), weights)
            negatives = run.negatives and model.encode_prompts(run.negatives[:k])
            denoise_fn = inputs_denoiser(model, cond, negatives, run.scale)
        x = initial_noise(model, model.representation.frames_for(seconds), float(run.sigmas[0]), generators)
        return run_sampler(model, x.to(model.device), run.sigmas, run.sampler, generators, callback, denoise_fn)

    def clips() -> Iterator[Audio]:
        for start in range(0, n, batch_size):
            weights = t[start:start + batch_size]
            for clip, weight in zip(_finish(model, run, batch(weights), edit), weights.tolist()):
                clip.metadata.update(seed=run.seeds[0], t=weight, index=start + clip.metadata["index"])
                yield clip

    return clips()


# -- loops -------------------------------------------------------------------------------------------


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
    wrap = _fraction("wrap", wrap, 0.0, 1.0, closed_high=True)
    run = prepare(model, num_samples, prompt, negative_prompt, guidance_scale, steps, sampler, spacing, seed, vocoder)
    if audio is None:
        frames = model.representation.frames_for(check_seconds(model, seconds))
        wrap_frames = max(1, round(wrap * frames))
        x = initial_noise(model, frames, float(run.sigmas[0]), run.generators).to(model.device)
        x = run_sampler(model, x, run.sigmas, run.sampler, run.generators, callback,
                        circular_denoiser(run.denoiser(), wrap_frames))
        edit = {"name": "loop", "wrap_frames": wrap_frames}
    else:
        x, edit = _loop_clip(model, run, audio, seconds, wrap, callback)
    clips = _finish(model, run, x, edit)
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
