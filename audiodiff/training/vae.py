"""Training the conditional VAE baseline (:class:`~audiodiff.generators.MelCVAE`) with :func:`audiodiff.training.fit`.

    from audiodiff.generators import MelCVAE
    from audiodiff.training import VAETrainConfig, train_vae
    vae = MelCVAE(mel={"sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64}, labels=digits)
    train_vae(vae, dataset, "runs/digits-vae", VAETrainConfig(steps=4000))
    # runs/digits-vae/model is the trained VAE: audiodiff.generators.load_generator("runs/digits-vae/model")

There is one training loop in the library.  :class:`VAEObjective` is an
:class:`~audiodiff.training.diffusion.Objective` (``representation``, ``encode_batch``,
``conditioning_inputs``, ``forward(x0, generator, labels) -> loss``, ``config``, ``save``), so the VAE
gets the same atomic checkpoints, exact resume, EMA, clipping, NaN guard, AMP, DDP, time limit and
``log.jsonl`` as a diffusion model.  At step 0 ``fit`` fits the VAE's mel statistics unless
``fits_statistics`` is False (e.g. when statistics shared with other models are preset).

The loss is the negative ELBO per dimension in nats (Kingma & Welling 2014, eq. 3), optionally with
a KL weight and free bits; see :meth:`~audiodiff.generators.vae.MelCVAE.loss`.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..generators.vae import MelCVAE
from .diffusion import TrainConfig, fit
from .loop import check_settings, config_from_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VAETrainConfig(TrainConfig):
    """A :class:`~audiodiff.training.TrainConfig` (constant LR after warm-up by default, no demo
    clips) plus the VAE's loss settings: ``kl_weight`` (1: the true ELBO) and ``free_bits`` (nats per
    latent dimension, 0: none)."""

    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    lr_schedule: str = "constant"
    kl_weight: float = 1.0
    free_bits: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = {"kl_weight": math.isfinite(self.kl_weight) and self.kl_weight >= 0,
                  "free_bits": math.isfinite(self.free_bits) and self.free_bits >= 0,
                  "demo_every": self.demo_every == 0}  # demo clips are a diffusion model's
        check_settings(self, checks, "VAE training")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "VAETrainConfig":
        return config_from_dict(cls, values, "VAE training", tuples=("adam_betas",))


class VAEObjective(nn.Module):
    """A :class:`MelCVAE` as :func:`~audiodiff.training.fit` trains it: ``forward(x0, generator, labels)`` is its loss.

    ``representation`` is the VAE's :class:`~audiodiff.audio.mel.Mel`; clean samples ``x0`` are
    normalised log-mels ``(B, n_mels, frames)`` of exactly the model's ``frames``; :meth:`save` writes
    the VAE's folder.
    """

    def __init__(self, model: MelCVAE, config: VAETrainConfig, fits_statistics: bool = True) -> None:
        super().__init__()
        self.model = model
        self.train_settings = config
        self.fits_statistics = bool(fits_statistics)

    @property
    def representation(self) -> nn.Module:
        return self.model.mel

    @property
    def config(self) -> dict[str, Any]:
        return self.model.config()

    def encode_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Normalised log-mels ``(B, n_mels, frames)`` of a batch (:meth:`MelGenerator.batch_mels`)."""
        return self.model.batch_mels(batch)

    def conditioning_inputs(self, batch: Mapping[str, Any], train: bool = False,
                            generator: torch.Generator | None = None) -> dict[str, Any]:
        """``{"labels": (B,) indices}`` of the batch's ``"label"`` names (an unknown one is a ConfigError)."""
        return {"labels": self.model.label_indices(batch["label"])}

    def forward(self, x0: torch.Tensor, generator: torch.Generator | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar loss on normalised log-mels ``x0`` ``(B, n_mels, frames)`` with label indices ``(B,)``."""
        if labels is None:
            raise ConfigError("the VAE objective needs the batch's labels")
        s = self.train_settings
        return self.model.loss(x0, labels, generator, s.kl_weight, s.free_bits)

    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        return self.model.save(folder, dtype, metadata={"training": asdict(self.train_settings)})


def train_vae(
    model: MelCVAE,
    dataset: Dataset,
    run_dir: str | os.PathLike,
    config: VAETrainConfig | Mapping[str, Any] | None = None,
    resume: bool = True,
    fit_stats: bool = True,
) -> MelCVAE:
    """Train ``model`` on ``dataset`` (items with a ``"waveform"`` ``(1, S)`` and a ``"label"`` name),
    checkpointing in ``run_dir`` (``checkpoints/``, ``log.jsonl``, and ``model/``, the trained VAE's folder).

    ``fit_stats=False`` keeps the model's mel statistics as they are (e.g. preset to be shared with
    other models) instead of fitting them on the data at step 0.  Resumes from the latest checkpoint
    when there is one (and ``resume``).

    Returns:
        The EMA model (eval mode), also saved to ``run_dir/model``.
    """
    cfg = config if isinstance(config, VAETrainConfig) else VAETrainConfig.from_dict(config or {})
    if not isinstance(model, MelCVAE):
        raise ConfigError(f"train_vae trains a MelCVAE, got {type(model).__name__}")
    log.info("VAE: %s parameters", f"{sum(p.numel() for p in model.parameters()):,}")
    trained = fit(VAEObjective(model, cfg, fits_statistics=fit_stats), dataset, run_dir, cfg, resume=resume)
    return trained.model.eval()
