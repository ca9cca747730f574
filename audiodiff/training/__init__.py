"""Training: one loop (:mod:`~audiodiff.training.loop`) and thin trainers over it.

    from audiodiff.training import TrainConfig, fit
    fit(model, dataset, "runs/speech", TrainConfig(steps=20000, batch_size=32))

| module | what it trains |
|---|---|
| :mod:`~audiodiff.training.loop` | nothing itself: :class:`TrainState`, :func:`run_loop`, EMA, resumable sampler, DDP set-up, RNG state, progress and log |
| :mod:`~audiodiff.training.checkpoints` | nothing itself: atomic checkpoint folders, the ``latest`` pointer, checksums, reading back |
| :mod:`~audiodiff.training.diffusion` | :func:`fit`: a diffusion model, or any :class:`Objective` |
| :mod:`~audiodiff.training.autoencoder` | :func:`train_autoencoder`: the mel autoencoder of latent diffusion, through ``fit`` |
| :mod:`~audiodiff.training.vocoder` | :func:`train_vocoder`: a neural vocoder with GAN losses |
| :mod:`~audiodiff.training.judge` | :func:`train_judge`, :func:`fit_judge`: the classifier judges of the metrics |
"""

from ..errors import TrainingError
from .autoencoder import AutoencoderObjective, AutoencoderTrainConfig, train_autoencoder
from .checkpoints import checkpoint_step, latest_checkpoint
from .diffusion import Objective, TrainConfig, fit
from .judge import JudgeTrainConfig, fit_judge, train_judge
from .loop import TrainState, run_loop
from .vocoder import VocoderTrainConfig, train_vocoder

__all__ = [
    "AutoencoderObjective",
    "AutoencoderTrainConfig",
    "JudgeTrainConfig",
    "Objective",
    "TrainConfig",
    "TrainState",
    "TrainingError",
    "VocoderTrainConfig",
    "checkpoint_step",
    "fit",
    "fit_judge",
    "latest_checkpoint",
    "run_loop",
    "train_autoencoder",
    "train_judge",
    "train_vocoder",
]
