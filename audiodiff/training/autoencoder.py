"""Training the mel autoencoder of latent diffusion (Rombach et al. 2022, sec. 3.1) with :func:`audiodiff.training.fit`.

    from audiodiff.audio import MelAutoencoder
    from audiodiff.training import AutoencoderTrainConfig, train_autoencoder
    ae = MelAutoencoder(mel={"sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64})
    train_autoencoder(ae, dataset, "runs/speech-ae", AutoencoderTrainConfig(steps=4000))
    # runs/speech-ae/model is the trained autoencoder: Latent(autoencoder="runs/speech-ae/model")

There is one training loop in the library.  :class:`AutoencoderObjective` is an
:class:`~audiodiff.training.diffusion.Objective`, the face :func:`~audiodiff.training.fit` trains
(``representation``, ``encode_batch``, ``conditioning_inputs``, ``forward(x0, generator) -> loss``,
``config``, ``save``), so the
autoencoder gets the same atomic checkpoints, exact resume, EMA, gradient clipping, NaN guard,
AMP, DDP, time limit and ``log.jsonl`` as a diffusion model.  At step 0 ``fit`` fits the
``representation``'s statistics, which here are the autoencoder's own mel statistics (per-bin mean
and std, :meth:`~audiodiff.audio.mel.Mel.fit_stats`), so they are saved with it.

The loss is the L1 (+ optional L2) reconstruction of normalised log-mels plus ``kl_weight`` times
the KL divergence of the posterior from N(0, I) (Kingma & Welling 2014, appendix B); see
:meth:`~audiodiff.audio.autoencoder.MelAutoencoder.loss`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from ..audio.autoencoder import MelAutoencoder
from ..errors import ConfigError
from .diffusion import TrainConfig, fit
from .loop import check_settings, config_from_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """Everything that shapes an autoencoder training run.

    ``seconds`` (0: whole clips) crops each batch's waveforms to their first ``seconds``; ``kl_weight``
    and ``l2_weight`` weight the KL and L2 terms against the L1 reconstruction.  ``time_limit`` is in
    seconds (0: none): when spent, the run checkpoints, exports and returns normally.  The rest mean
    what they mean in :class:`~audiodiff.training.TrainConfig`.
    """

    steps: int = 4000
    batch_size: int = 32
    lr: float = 3e-4
    kl_weight: float = 1e-5
    l2_weight: float = 0.0
    seconds: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    amp: str = "auto"
    checkpoint_every: int = 500
    keep_last: int = 2
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    time_limit: float = 0.0
    progress: bool = True
    num_workers: int = 2
    fit_stats_batches: int = 20

    def __post_init__(self) -> None:
        checks = {"kl_weight": self.kl_weight >= 0, "l2_weight": self.l2_weight >= 0, "seconds": self.seconds >= 0,
                  "fit_stats_batches": self.fit_stats_batches >= 1}
        check_settings(self, checks, "autoencoder training")
        self.train_config()  # the shared settings are checked by TrainConfig

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "AutoencoderTrainConfig":
        return config_from_dict(cls, values, "autoencoder training")

    def train_config(self) -> TrainConfig:
        """The :class:`TrainConfig` of the run (constant LR after warm-up, no demos)."""
        own = {"kl_weight", "l2_weight", "seconds"}
        return TrainConfig(lr_schedule="constant", demo_every=0,
                           **{f.name: getattr(self, f.name) for f in fields(self) if f.name not in own})


class AutoencoderObjective(nn.Module):
    """An autoencoder as :func:`~audiodiff.training.fit` trains it: ``forward(x0, generator)`` is its loss.

    ``representation`` is the autoencoder's :class:`~audiodiff.audio.mel.Mel` (whose statistics
    ``fit`` fits at step 0), clean samples ``x0`` are normalised log-mels ``(B, n_mels, frames)``,
    and :meth:`save` writes the autoencoder's folder.
    """

    def __init__(self, autoencoder: MelAutoencoder, config: AutoencoderTrainConfig) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.train_settings = config

    @property
    def representation(self) -> nn.Module:
        return self.autoencoder.mel

    @property
    def config(self) -> dict[str, Any]:
        return {**self.autoencoder.config(), "autoencoder_training": asdict(self.train_settings)}

    def encode_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Normalised log-mels ``(B, n_mels, frames)`` of a batch's ``"waveform"`` ``(B, 1, S)``
        (cropped to ``seconds``) or cached log-mel ``"features"``."""
        mel = self.autoencoder.mel
        device = mel.mean.device
        if "features" in batch:
            return mel.normalize(batch["features"].to(device))
        wave = batch["waveform"]
        if self.train_settings.seconds > 0:
            wave = wave[..., : max(1, round(self.train_settings.seconds * mel.sample_rate))]  # (B, 1, S) -> (B, 1, S')
        return mel.encode(wave.to(device, non_blocking=True))

    def conditioning_inputs(self, batch: Mapping[str, Any], train: bool = False,
                            generator: torch.Generator | None = None) -> dict[str, Any]:
        return {}  # an autoencoder is unconditional

    def forward(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scalar loss on normalised log-mels ``x0`` ``(B, n_mels, frames)``."""
        s = self.train_settings
        return self.autoencoder.loss(x0, s.kl_weight, s.l2_weight, generator)["loss"]

    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        return self.autoencoder.save(folder, dtype, metadata={"training": asdict(self.train_settings)})


def train_autoencoder(
    autoencoder: MelAutoencoder,
    dataset: Dataset,
    run_dir: str | os.PathLike,
    config: AutoencoderTrainConfig | Mapping[str, Any] | None = None,
    resume: bool = True,
) -> MelAutoencoder:
    """Train ``autoencoder`` on ``dataset`` (items with a ``"waveform"`` ``(1, S)``), checkpointing in ``run_dir``.

    Fits the autoencoder's mel statistics on the data first, then trains with :func:`audiodiff.training.fit`
    (same run folder layout: ``checkpoints/``, ``log.jsonl``, and ``model/``, the trained
    autoencoder's folder).  Resumes from the latest checkpoint when there is one (and ``resume``).

    Returns:
        The EMA autoencoder (eval mode), also saved to ``run_dir/model``.
    """
    cfg = config if isinstance(config, AutoencoderTrainConfig) else AutoencoderTrainConfig.from_dict(config or {})
    if not isinstance(autoencoder, MelAutoencoder):
        raise ConfigError(f"train_autoencoder trains a MelAutoencoder, got {type(autoencoder).__name__}")
    log.info("autoencoder: %s parameters", f"{sum(p.numel() for p in autoencoder.parameters()):,}")
    trained = fit(AutoencoderObjective(autoencoder, cfg), dataset, run_dir, cfg.train_config(), resume=resume)
    return trained.autoencoder.eval()


@torch.no_grad()
def reconstruction_l1(autoencoder: MelAutoencoder, waves: torch.Tensor, batch_size: int = 16) -> float:
    """Mean absolute natural-log-mel error of ``autoencoder`` on waveforms ``(N, 1, S)``.

    Both sides are clamped to the range real audio has (:meth:`Mel.to_log_mel`), as a vocoder sees them.
    """
    mel, device = autoencoder.mel, autoencoder.mel.mean.device
    total, count = 0.0, 0
    for i in range(0, len(waves), batch_size):
        x = mel.encode(waves[i : i + batch_size].to(device))  # (b, n_mels, T)
        err = (mel.to_log_mel(autoencoder.reconstruct(x)) - mel.to_log_mel(x)).abs()
        total, count = total + float(err.sum()), count + err.numel()
    return total / max(count, 1)
