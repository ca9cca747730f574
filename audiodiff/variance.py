"""Analytic-DPM's statistic for a trained model, estimated once and stored with it.

Analytic-DPM (Bao et al. 2022, theorem 1) gives the optimal reverse variance of a trained model in
closed form from ``Gamma(sigma) = E ||eps_theta(x_sigma, sigma)||^2 / d``, the mean squared noise the
model predicts at each noise level (:mod:`audiodiff.diffusion.variance`).  Following their sec. 3.3,
``Gamma`` is a Monte Carlo average over clean samples ``x0`` (real clips, or the model's own
samples) noised to a few levels log-spaced over the schedule's range, with the denoiser
conditioned on each clip's own prompt (no guidance).  The table goes into the model's config as
``analytic_variance``; the ``ddpm`` sampler with ``variance="analytic"`` and the VLB likelihood read it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from . import checks
from .diffusion.samplers import noise_like
from .diffusion.variance import EpsSquareTable
from .errors import ConfigError
from .model import DiffusionModel

#: noise levels of the table (interpolated in log sigma between them)
DEFAULT_LEVELS = 32


def table_levels(model: DiffusionModel, levels: int = DEFAULT_LEVELS) -> torch.Tensor:
    """``(levels,)`` ascending noise levels log-spaced over the model's training schedule."""
    levels = checks.integer("levels", levels, 2, 1000)
    lo, hi = math.log(model.schedule.sigma_min), math.log(model.schedule.sigma_max)
    return torch.linspace(lo, hi, levels, dtype=torch.float64).exp()


def estimate_eps_sq(model: DiffusionModel, batches: Iterable[tuple[torch.Tensor, Mapping[str, Any]]],
                    levels: int = DEFAULT_LEVELS, generator: torch.Generator | None = None) -> tuple[EpsSquareTable, int]:
    """``Gamma`` at :func:`table_levels` from ``(x0 (B, ...), net_kwargs)`` batches, and the clips used.

    ``eps_theta = (x - D(x, sigma)) / sigma`` for ``x = x0 + sigma * eps``; one noise draw per clip and level.
    """
    sigmas = table_levels(model, levels)
    sums = torch.zeros(len(sigmas), dtype=torch.float64)
    clips = 0
    with torch.inference_mode():
        for x0, net_kwargs in batches:
            ones = x0.new_ones(x0.shape[0])
            for i, sigma in enumerate(sigmas.tolist()):
                x = x0 + sigma * noise_like(x0, generator)
                eps = (x - model.denoise(x, sigma * ones, **net_kwargs)) / sigma
                sums[i] += eps.double().pow(2).flatten(1).mean(1).sum()
            clips += x0.shape[0]
    if clips == 0:
        raise ConfigError("no clips to estimate the analytic variance from")
    return EpsSquareTable(tuple(sigmas.tolist()), tuple((sums / clips).tolist())), clips


def data_batches(model: DiffusionModel, dataset: torch.utils.data.Dataset, clips: int, batch_size: int = 16):
    """``(x0, net_kwargs)`` batches of the first ``clips`` items of ``dataset`` (an :class:`AudioDataset`),
    each conditioned on its own prompt."""
    from .data.dataset import collate

    clips = min(checks.integer("clips", clips, 1), len(dataset))
    for start in range(0, clips, batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, clips))])
        with torch.no_grad():
            yield model.encode_batch(batch), model.conditioning_inputs(batch)


def sample_batches(model: DiffusionModel, clips: int, batch_size: int = 16, seed: int = 0):
    """``(x0, net_kwargs)`` batches of the model's own samples (its default sampler; prompts in turn)."""
    from .sampling import conditioned_denoiser, inference_sigmas, initial_noise, resolve_sampler, run_sampler

    clips = checks.integer("clips", clips, 1)
    prompts_all = model.demo_prompts(clips) or [""] * clips
    sampler, sigmas = resolve_sampler(None, model), inference_sigmas(model)
    frames = model.representation.frames_for(model.seconds)
    for start in range(0, clips, batch_size):
        prompts = prompts_all[start:start + batch_size]
        gens = [torch.Generator().manual_seed(seed * 1_000_003 + start + i) for i in range(len(prompts))]
        x = initial_noise(model, frames, float(sigmas[0]), gens)
        denoise = conditioned_denoiser(model, prompts, None, float(model.config["guidance_scale"]))
        x0 = run_sampler(model, x, sigmas, sampler, gens, denoise_fn=denoise)
        yield x0, (model.encode_prompts(prompts) if model.is_conditional else {})


def with_analytic_variance(model: DiffusionModel, table: EpsSquareTable, source: str, clips: int) -> DiffusionModel:
    """``model`` with ``table`` stored in its config (``analytic_variance``) for :meth:`~DiffusionModel.save`."""
    model.config["analytic_variance"] = {"eps_sq": table.pairs(), "source": source, "clips": clips}
    return model


def stored_dtype(folder: str | os.PathLike | None) -> torch.dtype | None:
    """The floating dtype of a model folder's weights (to save a copy as it was), or ``None``."""
    path = Path(folder) / "model.safetensors" if folder else None
    if path is None or not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            tensor = f.get_slice(key)
            if tensor.get_dtype() in ("F16", "BF16", "F32"):
                return {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}[tensor.get_dtype()]
    return None
