"""Interpolation: between two clips by DDIM inversion (Song et al. 2021, sec. 4.3; the probability-flow
ODE, Karras et al. 2022 eq. 4, integrated upwards from sigma_min to sigma_max with the same deterministic
sampler on the ascending ladder), spherical interpolation of the latents (:func:`~audiodiff.sampling.slerp`)
and regeneration with the ODE; between two prompts by blending the conditioning net inputs linearly
from one noise."""

from __future__ import annotations

from typing import Any, Iterator

import torch

from .. import checks
from ..audio.clip import Audio
from ..errors import ConfigError
from ..model import DiffusionModel
from ..sampling.core import Callback, DenoiseFn, initial_noise, inputs_denoiser, make_generators, run_sampler
from ..sampling.run import check_seconds, with_progress
from ..sampling.windows import slerp
from .common import MAX_EDIT_CLIPS, AudioInput, check_length, finish, load_input, prepare


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
    regenerations = -(-n // batch_size) + (n > batch_size)  # every batch, and the last clip alone to measure it
    callback = with_progress(callback, run.steps - 1 + run.steps * regenerations)  # inversion: no step to 0
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
            for clip, weight in zip(finish(model, run, x, edit), weights.tolist()):
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
    callback = with_progress(callback, run.steps * -(-n // batch_size))
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
            for clip, weight in zip(finish(model, run, batch(weights), edit), weights.tolist()):
                clip.metadata.update(seed=run.seeds[0], t=weight, index=start + clip.metadata["index"])
                yield clip

    return clips()
