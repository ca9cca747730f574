"""Training: one loop (:mod:`~audiodiff.training.loop`) and thin trainers over it.

    from audiodiff.training import TrainConfig, fit
    fit(model, dataset, "runs/speech", TrainConfig(steps=20000, batch_size=32))

- :mod:`~audiodiff.training.loop`: the loop itself (:class:`TrainState`, :func:`run_loop`), EMA, the
  resumable sampler, DDP set-up, RNG state, progress bar and JSONL log;
- :mod:`~audiodiff.training.checkpoints`: atomic checkpoint folders, ``latest``, checksums, reading back;
- :mod:`~audiodiff.training.diffusion`: :func:`fit`, for a diffusion model or any :class:`Objective`;
- :mod:`~audiodiff.training.autoencoder`: :func:`train_autoencoder`, the mel autoencoder, through ``fit``;
- :mod:`~audiodiff.training.vocoder`: :func:`train_vocoder`, a neural vocoder with GAN losses;
- :mod:`~audiodiff.training.judge`: :func:`train_judge`, :func:`fit_judge`, the metrics' classifier judges.
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
