"""The pieces every sampling run is built from: sampler and sigma ladder, per-clip noise, the
(guided) denoiser, the sampler run, and decoding into :class:`~audiodiff.audio.clip.Audio`.

Each clip draws all its noise from its own generator (:class:`PerRowGenerator`), so a clip is
reproducible from its seed alone, whatever the batch it was made in.  Guidance is classifier-free
guidance (Ho & Salimans 2022) with optional rescaling (Lin et al. 2024, sec. 3.4).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import torch

from .. import checks
from ..audio.clip import Audio
from ..diffusion.guidance import guided_denoiser
from ..diffusion.variance import with_variance
from ..diffusion.samplers import Sampler
from ..errors import AudiodiffError, ConfigError
from ..model import DiffusionModel, component_config
from ..registry import build
from ..vocoders import build_vocoder

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict[str, Any]], None] | None


def resolve_sampler(spec: str | Mapping[str, Any] | Sampler | Callable | None, model: DiffusionModel) -> Any:
    """A sampler object from a registry name, a config mapping, an instance, or ``None`` (model default)."""
    if spec is None:
        spec = model.config["sampler"]
    if isinstance(spec, (str, Mapping)):
        return check_sampler_options(with_model_statistics(build("sampler", spec), model))
    if callable(spec):
        return with_model_statistics(spec, model)
    raise ConfigError(f"sampler must be a name, a config or a sampler object, got {type(spec).__name__}")

def with_model_statistics(sampler: Any, model: DiffusionModel) -> Any:
    """``sampler``, given the model's eps-square table if it is a ``ddpm`` sampler with
    ``variance="analytic"`` and no table of its own (Bao et al. 2022; :mod:`audiodiff.variance`)."""
    if getattr(sampler, "variance", None) != "analytic" or getattr(sampler, "eps_sq", ()) is not None:
        return sampler
    table = model.eps_square_table()
    if table is None:
        raise ConfigError(f"model {model.config.get('name', 'in use')!r} has no analytic-variance statistic; estimate it "
                          f"once with `audiodiff variance --model MODEL --data MANIFEST --out DIR` and use that folder")
    return dataclasses.replace(sampler, eps_sq=table.pairs())


def check_sampler_options(sampler: Any) -> Any:
    """``sampler`` if every numeric option it was built with is finite and of sane size
    (:func:`audiodiff.checks.bounded`): ``step_lr=1e30`` would saturate every clip."""
    config = sampler_config(sampler)
    for key, value in config.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            checks.bounded(f"sampler option {key}", value)
    return sampler

def sampler_config(sampler: Any) -> dict[str, Any]:
    """The JSON-able config of a sampler (for sidecars)."""
    try:
        return component_config(sampler)
    except (TypeError, AttributeError):
        return {"name": getattr(sampler, "registry_name", type(sampler).__name__)}

def inference_sigmas(model: DiffusionModel, steps: int | None = None, spacing: str | None = None,
                     sigma_min: float | None = None) -> torch.Tensor:
    """``(steps + 1,)`` descending sigmas of the model's schedule ending in 0; ``steps``, ``spacing`` and
    ``sigma_min`` (the last noise level before the final step) default to the model's."""
    ladder = model.config.get("sigmas")
    if ladder is not None and spacing is None and sigma_min is None and steps in (None, len(ladder) - 1):
        return torch.tensor(ladder, dtype=torch.float32)  # the ladder a distilled student was trained to walk
    steps = checks.integer("steps", model.config["steps"] if steps is None else steps, 1)
    spacing = spacing or model.config["spacing"]
    sigma_min = model.config.get("sigma_min") if sigma_min is None else sigma_min
    try:
        return model.schedule.inference_sigmas(steps, spacing, sigma_min)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

def make_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One seeded generator per clip."""
    return [torch.Generator(device).manual_seed(int(s)) for s in seeds]

def initial_noise(model: DiffusionModel, frames: int, sigma_max: float, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """``(B, *sample_shape)`` prior samples ``N(0, prior_scale(sigma_max)^2)``, one generator per row."""
    shape = model.sample_shape(frames)
    rows = [torch.randn(shape, generator=g, device=g.device) for g in generators]
    return torch.stack(rows) * model.schedule.prior_scale(sigma_max)  # B x (shape) -> (B, *shape)

class PerRowGenerator:
    """Draws noise row by row from per-clip generators, so each clip's noise ignores its batch."""

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)
        self.device = torch.device("cpu")

    def randn(self, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        rows = [torch.randn(tuple(shape[1:]), generator=g, device=g.device, dtype=dtype) for g in self.generators]
        return torch.stack(rows)  # B x (...) -> (B, ...)

def run_sampler(model: DiffusionModel, x: torch.Tensor, sigmas: torch.Tensor, sampler: Any,
                generators: Sequence[torch.Generator] | None = None,
                callback: Callable[[dict[str, Any]], None] | None = None,
                denoise_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Run ``sampler`` from ``x`` (at ``sigmas[0]``) with the model's denoiser (or ``denoise_fn``)."""
    denoise_fn = denoise_fn or model_denoiser(model, {})
    generator = PerRowGenerator(generators) if generators is not None else None
    with torch.inference_mode():
        return sampler(denoise_fn, x, sigmas.to(x.device), generator=generator, callback=callback)

#: normalised features beyond this mean a diverged sampler (a trained model's lie within about +-10;
#: benchmarks/results/defaults.md)
FEATURE_LIMIT = 1000.0

def to_audio(model: DiffusionModel, x: torch.Tensor, vocoder: Any, metadata: Sequence[dict[str, Any]]) -> list[Audio]:
    """Decode samples ``(B, *sample_shape)`` into :class:`Audio` clips with their metadata."""
    with torch.inference_mode():
        waves = model.decode(x, vocoder).float().cpu()  # (B, 1, S)
        feats = model.from_net_layout(x).float().cpu()
    if not torch.isfinite(waves).all():
        raise AudiodiffError("the model made NaN or inf samples (a broken or diverged model, or extreme settings); "
                             "nothing was written")
    peak_feature = float(feats.abs().max())
    if peak_feature > FEATURE_LIMIT:
        raise AudiodiffError(f"the sampler diverged: features reach {peak_feature:.3g} (a trained model's lie within "
                             f"about +-10); lower the sampler's step size or the guidance, or use another sampler")
    peak = waves.abs().amax(dim=(1, 2), keepdim=True).clamp(min=1.0)
    waves = waves / peak  # only ever scale down, so nothing clips
    return [Audio(waves[i], model.sample_rate, feats[i], dict(metadata[i])) for i in range(len(waves))]

def conditioned_denoiser(model: DiffusionModel, prompts: list[str], negatives: list[str] | None,
                         guidance_scale: float, guidance_rescale: float = 0.0):
    """The model's denoiser for ``prompts``, with classifier-free guidance when it matters.

    Guidance needs no second pass when the model is unconditional, every prompt is the null
    prompt with no negative, or ``guidance_scale == 1`` (the plain conditional denoiser).
    """
    if not model.is_conditional:
        return model_denoiser(model, {})
    unguided = guidance_scale == 1.0 or (negatives is None and not any(prompts))
    if unguided:
        inputs = model.encode_prompts(prompts)
        return model_denoiser(model, inputs)
    return inputs_denoiser(model, model.encode_prompts(prompts), negatives and model.encode_prompts(negatives),
                           guidance_scale, guidance_rescale)

def inputs_denoiser(model: DiffusionModel, cond: dict[str, torch.Tensor], uncond: dict[str, torch.Tensor] | None,
                    guidance_scale: float, guidance_rescale: float = 0.0):
    """The guided denoiser for ready-made net inputs ``cond`` and ``uncond`` (``(B, ...)`` each; ``None``: the
    null prompt).

    A guidance-distilled student (:attr:`DiffusionModel.takes_guidance`) makes one pass with the scale as
    an input.  A negative prompt or a rescale needs the conditional and unconditional outputs apart, so
    then it makes the two passes of classifier-free guidance with its own conditional denoiser (scale 1).
    """
    if guidance_scale == 1.0:
        return model_denoiser(model, cond)
    if model.takes_guidance and uncond is None and guidance_rescale == 0.0:
        return model_denoiser(model, cond, guidance=guidance_scale)
    if uncond is None:
        uncond = model.encode_prompts([""] * _rows(cond))
    both = model.paired_inputs(cond, uncond)
    return guided_denoiser(model_denoiser(model, both), guidance_scale, guidance_rescale)


def model_denoiser(model: DiffusionModel, inputs: Mapping[str, Any], **extra: Any):
    """``(x, sigma) -> model.denoise(x, sigma, **extra, **inputs)``; for a learned-variance model also
    its ``with_variance`` (:func:`~audiodiff.diffusion.variance.with_variance`)."""
    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return model.denoise(x, sigma, **extra, **inputs)

    if not model.learns_variance:
        return denoise
    return with_variance(denoise, lambda x, sigma: model.denoise_with_variance(x, sigma, **extra, **inputs))

def _rows(inputs: Mapping[str, torch.Tensor]) -> int:
    return len(next(iter(inputs.values())))

def resolve_vocoder(model: DiffusionModel, vocoder: Any = None) -> Any:
    """The vocoder (default: the model's trained one, else its config's), checked against the model's
    mel settings, on its device."""
    return build_vocoder(vocoder or model.default_vocoder, model.representation.settings()).to(model.device)
