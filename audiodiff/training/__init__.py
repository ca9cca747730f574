"""Training: one loop (:mod:`~audiodiff.training.loop`) and thin trainers over it.

    from audiodiff.training import TrainConfig, fit
    fit(model, dataset, "runs/speech", TrainConfig(steps=20000, batch_size=32))

- :mod:`~audiodiff.training.loop`: the loop itself (:class:`TrainState`, :func:`run_loop`), EMA, the
  resumable sampler, DDP set-up, RNG state, progress bar and JSONL log;
- :mod:`~audiodiff.training.checkpoints`: atomic checkpoint folders, ``latest``, checksums, reading back;
- :mod:`~audiodiff.training.diffusion`: :func:`fit`, for a diffusion model or any :class:`Objective`;
- :mod:`~audiodiff.training.autoencoder`: :func:`train_autoencoder`, the mel autoencoder, through ``fit``;
- :mod:`~audiodiff.training.vocoder`: :func:`train_vocoder`, a neural vocoder with GAN losses;
- :mod:`~audiodiff.training.gan`: :func:`train_gan`, the conditional GAN of mels (a baseline for diffusion);
- :mod:`~audiodiff.training.vae`: :func:`train_vae`, the conditional VAE baseline, through ``fit``;
- :mod:`~audiodiff.training.judge`: :func:`train_judge`, :func:`fit_judge`, the metrics' classifier judges.
"""

from ..errors import TrainingError
from .autoencoder import AutoencoderObjective, AutoencoderTrainConfig, train_autoencoder
from .checkpoints import checkpoint_step, latest_checkpoint
from .diffusion import Objective, TrainConfig, fit
from .gan import GANTrainConfig, train_gan
from .judge import JudgeTrainConfig, fit_judge, train_judge
from .loop import TrainState, run_loop
from .vae import VAEObjective, VAETrainConfig, train_vae
from .vocoder import VocoderTrainConfig, train_vocoder

__all__ = [
    "AutoencoderObjective",
    "AutoencoderTrainConfig",
    "GANTrainConfig",
    "JudgeTrainConfig",
    "Objective",
    "TrainConfig",
    "TrainState",
    "TrainingError",
    "VAEObjective",
    "VAETrainConfig",
    "VocoderTrainConfig",
    "checkpoint_step",
    "fit",
    "fit_judge",
    "latest_checkpoint",
    "run_loop",
    "train_autoencoder",
    "train_gan",
    "train_judge",
    "train_vae",
    "train_vocoder",
]
