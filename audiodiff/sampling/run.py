"""The set-up every sampling run shares: one :func:`prepare_run` for :func:`~audiodiff.generate.generate`
and every edit in :mod:`audiodiff.edit`.

It checks the prompts, guidance, seed and length, resolves the sampler, the sigma ladder and the
vocoder, and collects the sidecar fields every clip shares, into a :class:`SamplingRun`.  Clip ``i``
of a run with base seed ``seed`` draws all its noise from a generator seeded with ``seed + i``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Sequence

import torch

from .. import checks
from .._version import __version__
from ..errors import ConfigError, shorten
from ..model import DiffusionModel
from .core import (Callback, DenoiseFn, conditioned_denoiser, inference_sigmas, make_generators, resolve_sampler,
                   resolve_vocoder, sampler_config)


def check_prompts(model: DiffusionModel, prompt: str | Sequence[str] | None, negative_prompt: str | Sequence[str] | None,
                  num_samples: int) -> tuple[list[str], list[str] | None]:
    """One prompt per clip (each prompt repeated ``num_samples`` times), and the negative prompts;
    at most :data:`audiodiff.checks.MAX_CLIPS` clips."""
    num_samples = checks.integer("num_samples", num_samples, 1, checks.MAX_CLIPS)
    prompts = _strings("prompt", prompt)
    if len(prompts) * num_samples > checks.MAX_CLIPS:
        raise ConfigError(f"{len(prompts)} prompts x {num_samples} clips is more than {checks.MAX_CLIPS} in one call")
    if prompts and not model.is_conditional:
        raise ConfigError("this model is unconditional: it takes no prompt")
    if negative_prompt is not None and not model.is_conditional:
        raise ConfigError("this model is unconditional: it takes no negative prompt")
    if not prompts:
        if not model.can_run_unconditionally:
            raise ConfigError("this model needs a prompt (it was trained without condition dropout)")
        prompts = [""]
    clips = [p for p in prompts for _ in range(num_samples)]
    if negative_prompt is None:
        return clips, None
    negatives = _strings("negative_prompt", negative_prompt)
    if len(negatives) == 1:
        negatives = negatives * len(prompts)
    if len(negatives) != len(prompts):
        raise ConfigError(f"got {len(negatives)} negative prompts for {len(prompts)} prompts")
    return clips, [n for n in negatives for _ in range(num_samples)]

def _strings(name: str, value: Any) -> list[str]:
    """A prompt or a sequence of prompts as a list of strings; anything else is a :class:`ConfigError`."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{name} must be a string or a list of strings, got {shorten(value)}")
    return list(value)

def check_guidance(model: DiffusionModel, guidance_scale: float | None, guidance_rescale: float) -> float:
    """The guidance scale to use (default the model's); an error if it or the rescale is out of range."""
    scale = checks.number("guidance_scale", model.config["guidance_scale"] if guidance_scale is None else guidance_scale,
                          -GUIDANCE_LIMIT, GUIDANCE_LIMIT)
    checks.number("guidance_rescale", guidance_rescale, 0.0, 1.0)
    return scale

#: the largest magnitude of a guidance scale (useful ones are 1-15; 1e30 turns every clip into noise)
GUIDANCE_LIMIT = 100.0

#: the fewest frames a clip may have (the vocoders' inverse STFT needs a few)
MIN_FRAMES = 4

#: the longest clip made in overlapping windows (10 minutes)
LONG_FORM_LIMIT = 600.0

def check_seconds(model: DiffusionModel, seconds: float | None, long_form: bool = False) -> float:
    """The clip length to make: ``seconds`` or the model's window; an error outside ``(0, max_seconds]``
    (with ``long_form``, up to :data:`LONG_FORM_LIMIT`: longer clips are made in overlapping windows)."""
    seconds = model.seconds if seconds is None else seconds
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"seconds must be a positive number, got {shorten(seconds)}")
    limit = LONG_FORM_LIMIT if long_form else model.max_seconds
    if seconds > limit + 1e-9:
        raise ConfigError(f"seconds={seconds} is beyond what this model makes (at most {limit:g} s)")
    check_frames(model, seconds)
    return float(seconds)

def check_frames(model: DiffusionModel, seconds: float, what: str = "seconds") -> int:
    """The frames of ``seconds`` of audio; an error below :data:`MIN_FRAMES` (too short to decode)."""
    frames = model.representation.frames_for(seconds)
    if frames < MIN_FRAMES:
        shortest = model.representation.seconds_for(MIN_FRAMES)
        raise ConfigError(f"{what}={seconds:g} is too short: this model needs at least {shortest:.3f} s "
                          f"({MIN_FRAMES} frames)")
    return frames

def base_metadata(model: DiffusionModel, sampler: Any, sigmas: torch.Tensor, spacing: str | None, seconds: float,
                  vocoder: Any) -> dict[str, Any]:
    """The sidecar fields every clip shares: model, sampler, steps, length, vocoder, version, command."""
    return {
        "model": getattr(model, "source", None),
        "sampler": sampler_config(sampler),
        "steps": len(sigmas) - 1,
        "spacing": spacing or model.config["spacing"],
        "seconds": seconds,
        "sample_rate": model.sample_rate,
        "vocoder": vocoder.config(),
        "audiodiff_version": __version__,
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None,
    }


@dataclass
class SamplingRun:
    """What a run resolved first: model, sampler, ladder, vocoder, one prompt and seed per clip, guidance,
    and the sidecar fields every clip shares (``common``)."""

    model: DiffusionModel
    sampler: Any
    sigmas: torch.Tensor
    vocoder: Any
    prompts: list[str]
    negatives: list[str] | None
    scale: float
    rescale: float
    seed: int
    common: dict[str, Any] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        """Clip ``i``'s seed: ``seed + i``."""
        return list(range(self.seed, self.seed + len(self.prompts)))

    @cached_property
    def generators(self) -> list[torch.Generator]:
        """One generator per clip (made once: edits draw from them across several steps)."""
        return make_generators(self.seeds)

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def denoiser(self, start: int = 0, stop: int | None = None) -> DenoiseFn:
        """The (guided) denoiser for the prompts of clips ``start..stop`` (default: all)."""
        stop = len(self.prompts) if stop is None else stop
        with torch.inference_mode():
            negatives = self.negatives and self.negatives[start:stop]
            return conditioned_denoiser(self.model, self.prompts[start:stop], negatives, self.scale, self.rescale)

    def metadata(self, start: int, stop: int, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One sidecar per clip ``start..stop``: the shared fields, ``fields``, the seed, index and prompt."""
        metas = []
        for i in range(start, stop):
            meta = {**self.common, **fields, "seed": self.seed + i, "index": i}
            if self.model.is_conditional:
                meta.update(prompt=self.prompts[i], negative_prompt=self.negatives[i] if self.negatives else None)
            metas.append(meta)
        return metas


def prepare_run(model: DiffusionModel, num_samples: int = 1, prompt: str | Sequence[str] | None = None,
                negative_prompt: str | Sequence[str] | None = None, guidance_scale: float | None = None,
                guidance_rescale: float = 0.0, steps: int | None = None, sampler: Any = None,
                spacing: str | None = None, sigma_min: float | None = None, seed: int | None = None,
                vocoder: Any = None, seconds: float | None = None, max_clips: int = checks.MAX_CLIPS) -> SamplingRun:
    """Check and resolve what every run shares (the model is put in eval mode).

    Args:
        model: the model to sample.
        num_samples: clips per prompt; at most ``max_clips`` in all.
        prompt, negative_prompt: see :func:`check_prompts`.
        guidance_scale, guidance_rescale: see :func:`check_guidance`.
        steps, spacing, sigma_min: the ladder (:func:`~audiodiff.sampling.core.inference_sigmas`).
        sampler: registry name or config, an instance, or ``None`` (the model's).
        seed: base seed (``None``: a random one); clip ``i`` uses ``seed + i``.
        vocoder: see :func:`~audiodiff.sampling.core.resolve_vocoder`.
        seconds: the clip length recorded in ``common`` (default: the model's window).

    Returns:
        a :class:`SamplingRun` whose ``common`` holds :func:`base_metadata`.
    """
    num_samples = checks.integer("num_samples", num_samples, 1, max_clips)
    prompts, negatives = check_prompts(model, prompt, negative_prompt, num_samples)
    if len(prompts) > max_clips:
        raise ConfigError(f"{len(prompts)} clips is more than {max_clips} in one call")
    scale = check_guidance(model, guidance_scale, guidance_rescale)
    seed = checks.seed(seed, len(prompts))
    model.eval()
    sampler_obj = resolve_sampler(sampler, model)
    sigmas = inference_sigmas(model, steps, spacing, sigma_min)
    vocoder_obj = resolve_vocoder(model, vocoder)
    common = base_metadata(model, sampler_obj, sigmas, spacing, model.seconds if seconds is None else seconds,
                           vocoder_obj)
    return SamplingRun(model, sampler_obj, sigmas, vocoder_obj, prompts, negatives, scale, guidance_rescale, seed,
                       common)


def with_progress(callback: Callback, total: int, extra: Mapping[str, Any] | None = None) -> Callback:
    """``callback`` with ``"total"`` (the sampler steps the whole call reports) and ``extra`` added to every
    step's info; ``None`` stays ``None``."""
    if callback is None:
        return None
    fields = {"total": total, **(extra or {})}
    return lambda info: callback({**info, **fields})
