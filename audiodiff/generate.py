"""Generation: noise -> sampler -> features -> vocoder -> ``Audio``.

:func:`generate` is assembled from small pieces that the editing functions reuse:
:func:`resolve_sampler`, :func:`inference_sigmas`, :func:`initial_noise`, :func:`run_sampler`
and :func:`to_audio` (plus :func:`resolve_vocoder`, :func:`check_guidance` and :func:`base_metadata`).
Each clip ``i`` of a call with ``seed`` draws all its noise from its own generator seeded with
``seed + i``, so a clip is reproducible from its sidecar alone, whatever the batch it was made in.

Clips longer than ``model.max_seconds`` are made in overlapping windows: the first is sampled as
usual, each further one inpaints its overlap with the tail so far (:func:`audiodiff.edit.extend`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from . import __version__, checks
from .audio.io import save_audio
from .diffusion.guidance import guided_denoiser
from .diffusion.variance import with_variance
from .diffusion.samplers import Sampler
from .errors import AudiodiffError, ConfigError, shorten
from .files import atomic_write_bytes, check_target, json_bytes
from .model import DiffusionModel, component_config
from .registry import build
from .vocoders import build_vocoder

log = logging.getLogger(__name__)


@dataclass
class Audio:
    """A generated clip.

    Attributes:
        waveform: ``(C, S)`` float32 in [-1, 1].
        sample_rate: Hz.
        features: the generated features in the representation's layout, e.g. ``(n_mels, frames)``
            normalised log-mel, or ``None``.
        metadata: everything needed to reproduce the clip (written as the JSON sidecar).
    """

    waveform: torch.Tensor
    sample_rate: int
    features: torch.Tensor | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate

    def save(self, path: str | Path, sidecar: bool = True, plot: bool = False,
             log_mel: torch.Tensor | None = None, hop_length: int | None = None, overwrite: bool = False) -> Path:
        """Write the WAV, its ``.json`` sidecar and, with ``plot``, a ``.png`` of its mel.

        For ``plot``, ``log_mel`` ``(n_mels, frames)`` and ``hop_length`` say what to draw.  Each
        file is written atomically and never through a symlink (:mod:`audiodiff.files`); unless
        ``overwrite``, an existing WAV, sidecar or PNG is an :class:`~audiodiff.errors.OutputExistsError`
        raised before anything is written.
        """
        path = Path(path)
        if plot and (log_mel is None or hop_length is None):
            raise ConfigError("Audio.save(plot=True) needs log_mel and hop_length")
        targets = [path] + [path.with_suffix(s) for s, wanted in ((".json", sidecar), (".png", plot)) if wanted]
        for target in targets:
            check_target(target, overwrite)
        png = None
        if plot:
            from .plot import mel_png_bytes

            png = mel_png_bytes(log_mel, self.sample_rate, hop_length, title=path.name)
        meta = json_bytes(self.metadata) if sidecar else None
        written: list[Path] = []
        try:
            written.append(save_audio(path, self.waveform, self.sample_rate, overwrite))
            if meta is not None:
                written.append(atomic_write_bytes(path.with_suffix(".json"), meta, overwrite))
            if png is not None:
                written.append(atomic_write_bytes(path.with_suffix(".png"), png, overwrite))
        except BaseException:
            if not overwrite:  # they were new: no WAV is left without its sidecar
                for done in written:
                    done.unlink(missing_ok=True)
            raise
        return path

    def file_name(self, prefix: str = "clip") -> str:
        """``{prefix}_{index:03d}[_{prompt}][_seed{seed}]_{settings}.wav``: ``settings`` is a short hash of
        the sidecar's settings, so runs with other settings never share a name (see :func:`settings_hash`)."""
        check_prefix(prefix)
        meta = self.metadata
        tag = slug(meta.get("prompt") or "")
        seed = meta.get("seed")
        parts = [prefix, f"{int(meta.get('index', 0)):03d}", tag, "" if seed is None else f"seed{seed}",
                 settings_hash(meta)]
        return "_".join(p for p in parts if p) + ".wav"


def check_prefix(prefix: Any) -> str:
    """``prefix`` if it is a plain file name part: no folder (``../x`` would write outside ``--out``), not hidden."""
    if not isinstance(prefix, str) or not prefix or prefix != Path(prefix).name or prefix.startswith("."):
        raise ConfigError(f"a file name prefix must be a plain name (no folder, not hidden), got {shorten(prefix)}")
    return prefix


#: sidecar fields left out of :func:`settings_hash`: provenance and measurements, not settings, and the
#: index and seed (the file name shows them as they are), so the clips of one run share the hash
NOT_SETTINGS = frozenset({"command", "commit", "audiodiff_version", "seams", "seam_ratio", "inversion_error",
                          "index", "seed"})


def settings_hash(metadata: Mapping[str, Any], length: int = 8) -> str:
    """A short hex digest of a sidecar's settings (everything but :data:`NOT_SETTINGS`)."""
    text = json.dumps(_settings(metadata), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _settings(value: Any) -> Any:
    """``value`` without the :data:`NOT_SETTINGS` keys, at every depth (an edit's ``inversion_error``)."""
    if isinstance(value, Mapping):
        return {k: _settings(v) for k, v in value.items() if k not in NOT_SETTINGS}
    return value


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe short form of a prompt."""
    keep = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in keep.split("-") if part)[:limit]


# -- pieces -----------------------------------------------------------------------------------
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
        return model_denoiser(model, model.encode_prompts(prompts))
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


def check_guidance(model: DiffusionModel, guidance_scale: float | None, guidance_rescale: float) -> float:
    """The guidance scale to use (default the model's); an error if it or the rescale is out of range."""
    scale = checks.number("guidance_scale", model.config["guidance_scale"] if guidance_scale is None else guidance_scale,
                          -GUIDANCE_LIMIT, GUIDANCE_LIMIT)
    checks.number("guidance_rescale", guidance_rescale, 0.0, 1.0)
    return scale


#: the largest magnitude of a guidance scale (useful ones are 1-15; 1e30 turns every clip into noise)
GUIDANCE_LIMIT = 100.0
#: normalised features beyond this mean a diverged sampler (a trained model's lie within about +-10;
#: the shipped speech model at guidance 100 reaches 7, langevin with step_lr=1 reaches 7e8)
FEATURE_LIMIT = 1000.0
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


def resolve_vocoder(model: DiffusionModel, vocoder: Any = None) -> Any:
    """The vocoder (default: the model's trained one, else its config's), checked against the model's
    mel settings, on its device."""
    return build_vocoder(vocoder or model.default_vocoder, model.representation.settings()).to(model.device)


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


# -- the public function ----------------------------------------------------------------------
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
            (see :func:`audiodiff.edit.extend`); the sidecar then records the seams' ``seam_ratio``.
        steps: sampler steps (default: the model's); between 1 and the schedule's training steps.
        sampler: registry name or config (``"ddim"``, ``{"name": "ddim", "eta": 0.5}``, ``"ddpm"``,
            ...), a sampler object, or ``None`` for the model's default.
        seed: base seed, an integer with ``seed + i < 2**64``; clip ``i`` uses ``seed + i``.  ``None`` draws
            a random one (recorded).
        vocoder: registry name/config, trained vocoder folder or object; default the model's.
        callback: called after every sampler step with ``{"i", "sigma", "x", "denoised", "batch"}``.
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
    prompts, negatives = check_prompts(model, prompt, negative_prompt, num_samples)
    scale = check_guidance(model, guidance_scale, guidance_rescale)
    batch_size = checks.integer("batch_size", batch_size, 1, checks.MAX_BATCH)
    seconds = check_seconds(model, seconds, long_form=True)
    overlap = checks.number("overlap", overlap, 0.0, 1.0, low_open=True, high_open=True)
    seed = checks.seed(seed, len(prompts))
    if device is not None:
        model = model.to(checks.device(device))
    model.eval()
    sampler_obj = resolve_sampler(sampler, model)
    sigma_min = model.config.get("sigma_min") if sigma_min is None else checks.number("sigma_min", sigma_min)
    sigmas = inference_sigmas(model, steps, spacing, sigma_min)
    vocoder_obj = resolve_vocoder(model, vocoder)
    frames = model.representation.frames_for(seconds)
    plan = None
    if seconds > model.max_seconds + 1e-9:
        from .edit import plan_windows  # edit builds on this module's pieces

        plan = plan_windows(model, frames, overlap)
    common = base_metadata(model, sampler_obj, sigmas, spacing, seconds, vocoder_obj)
    common["sigma_min"] = sigma_min
    if model.is_conditional:
        common.update(guidance_scale=scale, guidance_rescale=guidance_rescale)
    run = (model, prompts, negatives, scale, guidance_rescale, seed, batch_size)
    return _batches(run, frames, sigmas, sampler_obj, vocoder_obj, plan, common, callback)


def _batches(run: tuple, frames: int, sigmas: torch.Tensor, sampler_obj: Any, vocoder_obj: Any, plan: Any,
             common: dict[str, Any], callback: Callable[[dict[str, Any]], None] | None) -> Iterator[Audio]:
    """The clips of :func:`iter_generate`, one batch at a time."""
    model, prompts, negatives, scale, guidance_rescale, seed, batch_size = run
    total = len(prompts)
    for start in range(0, total, batch_size):
        stop = min(total, start + batch_size)
        seeds = list(range(seed + start, seed + stop))
        generators = make_generators(seeds)
        with torch.inference_mode():
            denoise_fn = conditioned_denoiser(model, prompts[start:stop], negatives and negatives[start:stop],
                                              scale, guidance_rescale)
        batch_cb = None if callback is None else (lambda info, b=start // batch_size: callback({**info, "batch": b}))
        x, extra = sample_frames(model, frames, sigmas, sampler_obj, generators, batch_cb, denoise_fn, plan)
        meta = [{**common, **extra[j], "seed": s, "index": start + j} for j, s in enumerate(seeds)]
        if model.is_conditional:
            for j, m in enumerate(meta):
                m.update(prompt=prompts[start + j], negative_prompt=negatives[start + j] if negatives else None)
        yield from to_audio(model, x, vocoder_obj, meta)


def sample_frames(model: DiffusionModel, frames: int, sigmas: torch.Tensor, sampler: Any,
                  generators: Sequence[torch.Generator], callback: Callable[[dict[str, Any]], None] | None,
                  denoise_fn: Callable, plan: Any = None) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """``(B, *sample_shape(frames))`` samples from noise, and per-clip sidecar extras.

    Without a window ``plan`` this is one sampler run; with one (a long clip), the first window
    is sampled and :func:`audiodiff.edit.extend` continues it window by window.
    """
    first = frames if plan is None else plan.window
    x = initial_noise(model, first, float(sigmas[0]), generators).to(model.device)
    x = run_sampler(model, x, sigmas, sampler, generators, callback, denoise_fn)
    if plan is None:
        return x, [{} for _ in generators]
    from .edit import extend, seam_score

    x, seams = extend(model, x, plan, sigmas, sampler, generators, denoise_fn, callback=callback)
    feats = model.from_net_layout(x).float().cpu()  # (B, *shape_per_frame, frames)
    info = plan.metadata()
    return x, [{"long_form": info, "seams": seams, "seam_ratio": seam_score(f, seams)} for f in feats]
