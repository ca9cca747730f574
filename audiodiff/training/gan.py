"""Training the conditional GAN of normalised log-mels (:class:`~audiodiff.generators.MelGAN`), resumably.

    from audiodiff.generators import MelGAN
    from audiodiff.training import GANTrainConfig, train_gan
    gan = MelGAN(mel={"sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64}, labels=digits)
    train_gan(gan, dataset, "runs/speech-gan", GANTrainConfig(steps=20000))
    # runs/speech-gan/model is the EMA generator: audiodiff.generators.load_generator("runs/speech-gan/model")

Each step takes ``d_steps_per_g`` discriminator steps, each on a fresh batch of real mels and as many
generated ones with the batch's labels, then one generator step on the last of those generated mels
(so the generator runs once per step), all with the hinge losses of
:mod:`audiodiff.vocoders.discriminators` (Lim & Ye 2017; Miyato et al. 2018, eq. 17).  The defaults
(one ``D`` step, Adam betas ``(0, 0.9)``, ``lr_d = 4 lr_g``: the two time-scale update rule of Heusel
et al. 2017) are SAGAN's (Zhang et al. 2019, sec. 5); :mod:`audiodiff.generators.gan` says why we use
them rather than SpecGAN's WGAN-GP.  The generator's weights are averaged (EMA, as BigGAN samples
from, Brock et al. 2019, sec. 4) and the average is what is exported.

Data: batches as :mod:`audiodiff.data` datasets give them (``{"waveform": (B, 1, S), "label": list[str],
...}``, or cached log-mel ``"features"``); the waveforms are cut (or padded with silence) to the generator's
``seconds`` and encoded by its :class:`~audiodiff.audio.mel.Mel`, whose statistics are fitted on the
first batches of a fresh run (as :func:`~audiodiff.training.fit` fits a diffusion model's).

Run folder::

    run_dir/model/                      the EMA generator: config.json + model.safetensors
    run_dir/checkpoints/step_0001000/   generator, ema, discriminator .safetensors, config.json, state.pt
    run_dir/checkpoints/latest
    run_dir/log.jsonl                   step, loss_g, loss_d, d_real, d_fake, grad norms, lr_g, lr_d, speed

The loop, checkpoints and RNG state are :mod:`audiodiff.training.loop`'s and
:mod:`audiodiff.training.checkpoints`', so a resumed run continues with the losses of an
uninterrupted one (CPU, deterministic kernels).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import read_config, tensors_to_bytes
from ..data import collate
from ..errors import ConfigError
from ..generators.gan import MelGAN
from ..vocoders.discriminators import discriminator_loss, generator_loss
from .checkpoints import (checkpoint_step, latest_checkpoint, load_weights, read_state, state_errors,
                          write_checkpoint_folder)
from .diffusion import fit_representation_stats
from .loop import (EMA, DistInfo, ResumableSampler, TrainState, Window, check_settings, config_from_dict, jsonable,
                   lr_factor, optimizer_step, resolve_device, rng_state, run_loop, set_rng_state)

log = logging.getLogger(__name__)

CHECKPOINT_FILES = ("generator.safetensors", "ema.safetensors", "discriminator.safetensors")
LOG_KEYS = ("loss_g", "loss_d", "d_real", "d_fake", "grad_norm_g", "grad_norm_d")


@dataclass(frozen=True)
class GANTrainConfig:
    """Everything that shapes a GAN training run (saved in each checkpoint).

    ``d_steps_per_g`` discriminator steps (each on its own batch) precede each generator step;
    ``warmup_steps`` ramps both learning rates linearly from 0, after which they stay constant;
    ``grad_clip`` 0 means no clipping; ``time_limit`` is in seconds of this invocation (0: none):
    when spent, the run checkpoints, exports and returns (run again to go on).
    """

    steps: int = 10000
    batch_size: int = 32
    lr_g: float = 1e-4  # SAGAN (Zhang et al. 2019, sec. 5)
    lr_d: float = 4e-4  # TTUR (Heusel et al. 2017): the discriminator learns faster
    betas: tuple[float, float] = (0.0, 0.9)  # SAGAN, BigGAN
    warmup_steps: int = 0
    d_steps_per_g: int = 1
    ema_decay: float = 0.999
    grad_clip: float = 0.0  # 0 disables
    checkpoint_every: int = 1000
    keep_last: int = 2
    log_every: int = 50
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    num_workers: int = 2
    time_limit: float = 0.0  # seconds of this invocation; when spent: checkpoint, export and return (0: none)
    max_bad_steps: int = 20
    fit_stats_batches: int = 20  # batches used to fit the mel statistics at step 0
    progress: bool = True

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1, "batch_size": self.batch_size >= 1, "lr_g": self.lr_g > 0, "lr_d": self.lr_d > 0,
            "betas": len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "warmup_steps": self.warmup_steps >= 0, "d_steps_per_g": self.d_steps_per_g >= 1,
            "ema_decay": 0 <= self.ema_decay < 1, "grad_clip": self.grad_clip >= 0,
            "checkpoint_every": self.checkpoint_every >= 1, "keep_last": self.keep_last >= 1,
            "log_every": self.log_every >= 1, "num_workers": self.num_workers >= 0, "time_limit": self.time_limit >= 0,
            "max_bad_steps": self.max_bad_steps >= 1, "fit_stats_batches": self.fit_stats_batches >= 0,
        }
        check_settings(self, checks, "GAN training")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "GANTrainConfig":
        return config_from_dict(cls, values, "GAN training", tuples=("betas",))


def train_gan(model: MelGAN, dataset: Dataset, run_dir: str | os.PathLike,
              config: GANTrainConfig | Mapping[str, Any] | None = None, resume: bool = True,
              fit_stats: bool = True) -> MelGAN:
    """Train the generator ``model`` against a fresh :class:`~audiodiff.generators.gan.MelDiscriminator`
    on ``dataset`` (items with a ``"waveform"`` ``(1, S)`` and a ``"label"``), checkpointing in ``run_dir``.

    Resumes from ``run_dir``'s latest checkpoint when there is one (and ``resume``); a fresh run first
    fits ``model.mel``'s statistics on the data unless ``fit_stats`` is False (e.g. statistics shared
    with other models).  With ``config.time_limit`` spent it checkpoints and returns early.

    Returns:
        The EMA generator (eval mode), also saved to ``run_dir/model``.
    """
    cfg = config if isinstance(config, GANTrainConfig) else GANTrainConfig.from_dict(config or {})
    if not isinstance(model, MelGAN):
        raise ConfigError(f"train_gan trains a MelGAN, got {type(model).__name__}")
    trainer = GANTrainer(model, dataset, Path(run_dir), cfg)
    ckpt = trainer.start(resume, fit_stats)
    run_loop(trainer, ckpt[1], cfg)
    if ckpt[0] is not None and ckpt[1].step == checkpoint_step(ckpt[0]):
        trainer.export()  # nothing left to train: export anyway
    return trainer.ema.model.eval()


class GANTrainer:
    """The generator, its EMA, the discriminator, both optimizers, the data and the noise of one
    :func:`train_gan` run (a :class:`~audiodiff.training.loop.Trainer`)."""

    name = "gan"
    checkpoint_files = CHECKPOINT_FILES
    advice = "try lower lr_g and lr_d, grad_clip=1.0, or check the data for silent/corrupt clips"

    def __init__(self, model: MelGAN, dataset: Dataset, run_dir: Path, cfg: GANTrainConfig) -> None:
        if len(dataset) < cfg.batch_size * cfg.d_steps_per_g:
            raise ConfigError(f"dataset has {len(dataset)} clips, fewer than the {cfg.d_steps_per_g} batch(es) "
                              f"of {cfg.batch_size} one GAN step takes")
        self.cfg, self.dataset, self.run_dir = cfg, dataset, run_dir
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.generator = model.to(self.device)
        self.discriminator = model.discriminator().to(self.device)
        betas = tuple(float(b) for b in cfg.betas)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr_d, betas=betas)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed * 7919 + 17)
        self.sampler = ResumableSampler(len(dataset), cfg.seed)
        self.samples_per_step = cfg.batch_size * cfg.d_steps_per_g
        self.batches_per_step = cfg.d_steps_per_g
        self.ema: EMA

    def start(self, resume: bool, fit_stats: bool) -> tuple[Path | None, TrainState]:
        """Fit the mel statistics (fresh run) or restore the latest checkpoint: ``(checkpoint, state)``."""
        state = TrainState()
        ckpt = latest_checkpoint(self.run_dir, CHECKPOINT_FILES) if resume else None
        if ckpt is None:
            if fit_stats:
                fit_representation_stats(self.generator.mel, self.dataset, self.cfg, self.device, DistInfo())
            self.ema = EMA(self.generator, self.cfg.ema_decay)
        else:
            self._restore(ckpt, state)
        count = lambda m: f"{sum(p.numel() for p in m.parameters()):,}"  # noqa: E731
        log.info("GAN: generator %s, discriminator %s parameters", count(self.generator), count(self.discriminator))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.generator.train()
        self.discriminator.train()
        return ckpt, state

    def set_lr(self, step: int) -> float:
        """Set both learning rates for ``step`` (linear warm-up, then constant); return the factor."""
        factor = lr_factor(step, self.cfg.steps, self.cfg.warmup_steps, schedule="constant")
        for opt, lr in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor
        return factor

    def batches(self, state: TrainState) -> Iterator[tuple[list, float]]:
        """``(d_steps_per_g batches, seconds waited for them)`` for the rest of the current epoch."""
        cfg, per_step = self.cfg, self.batches_per_step
        self.sampler.set_position(state.epoch, state.batch_in_epoch * cfg.batch_size)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(state.epoch)
        # the loader's own generator keeps it from consuming the global RNG (resume must not shift it)
        loader = iter(DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=self.sampler, collate_fn=collate,
                                 num_workers=cfg.num_workers, drop_last=True, pin_memory=self.device.type == "cuda",
                                 generator=torch.Generator().manual_seed(cfg.seed + state.epoch)))
        while True:
            t0 = time.perf_counter()
            group = [batch for _, batch in zip(range(per_step), loader)]
            if len(group) < per_step:
                return
            yield group, time.perf_counter() - t0

    def real_mels(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's normalised log-mels ``(B, n_mels, frames)`` (:meth:`MelGenerator.batch_mels`) and
        label indices ``(B,)``."""
        return self.generator.batch_mels(batch), self.generator.label_indices(batch["label"])

    def step(self, group: list, state: TrainState) -> tuple[dict[str, float], bool]:
        self.set_lr(state.step)
        return _train_step(self, group, state.step)

    def postfix(self, figures: Mapping[str, float]) -> dict[str, str]:
        return {"loss_d": f"{figures['loss_d']:.3f}", "loss_g": f"{figures['loss_g']:.3f}"}

    def log_record(self, state: TrainState, window: Window) -> dict[str, Any]:
        return {"step": state.step, "epoch": state.epoch, **{k: window.mean(k) for k in LOG_KEYS},
                "lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"],
                "steps_per_s": window.per_second(window.steps), "samples_per_s": window.per_second(window.samples),
                "data_wait": window.per_second(window.data_time), "skipped_steps": state.skipped_steps}

    def checkpoint(self, state: TrainState) -> None:
        """Write ``checkpoints/step_XXXXXXX`` and export the EMA generator to ``run_dir/model``."""
        saved = {**state.saved(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "rng": rng_state(self.noise_gen), "train_config": jsonable(asdict(self.cfg))}
        files = {"generator.safetensors": tensors_to_bytes(self.generator.state_dict()),
                 "ema.safetensors": tensors_to_bytes(self.ema.model.state_dict()),
                 "discriminator.safetensors": tensors_to_bytes(self.discriminator.state_dict())}
        config = {"generator": jsonable(self.generator.config()), "training": saved["train_config"]}
        write_checkpoint_folder(self.run_dir, saved, files, config, self.cfg.keep_last)
        self.export()

    def export(self) -> None:
        """Save the EMA generator to ``run_dir/model`` (a :func:`~audiodiff.generators.load_generator` folder)."""
        self.ema.model.save(self.run_dir / "model", metadata={"training": jsonable(asdict(self.cfg))})

    def after_step(self, state: TrainState) -> None:
        pass

    def _restore(self, ckpt: Path, state: TrainState) -> None:
        saved_config = read_config(ckpt).get("generator")
        if saved_config != jsonable(self.generator.config()):
            raise ConfigError(f"checkpoint {ckpt} is of another generator config ({saved_config}); "
                              "use a new run_dir or the same generator")
        load_weights(self.generator, ckpt, "generator.safetensors")
        self.ema = EMA(self.generator, self.cfg.ema_decay)
        load_weights(self.ema.model, ckpt, "ema.safetensors")
        load_weights(self.discriminator, ckpt, "discriminator.safetensors")
        saved = read_state(ckpt)
        with state_errors(ckpt):
            self.opt_g.load_state_dict(saved["opt_g"])
            self.opt_d.load_state_dict(saved["opt_d"])
            set_rng_state(saved["rng"], self.noise_gen)
            state.restore(saved)
        log.info("resumed GAN training from %s (step %d)", ckpt, state.step)


def _train_step(parts: GANTrainer, group: list, step: int) -> tuple[dict[str, float], bool]:
    """``len(group)`` discriminator steps, then one generator step on the last batch's generated mels."""
    gan, disc, cfg = parts.generator, parts.discriminator, parts.cfg
    d_terms: list[torch.Tensor] = []
    d_norms, ok = [], True
    for i, batch in enumerate(group):
        real, labels = parts.real_mels(batch)
        z = torch.randn((len(labels), *gan.latent_shape()), generator=parts.noise_gen).to(parts.device)
        with torch.set_grad_enabled(i == len(group) - 1):  # the generator step reuses the last fakes
            fake = gan(z, labels)  # (B, n_mels, frames)
        scores = disc(torch.cat([real, fake.detach()]), torch.cat([labels, labels]))  # (2B, ...) -> (2B,)
        real_scores, fake_scores = scores.chunk(2)
        loss_d = discriminator_loss([real_scores], [fake_scores])
        norm, ok_d = optimizer_step(parts.opt_d, disc, loss_d, cfg.grad_clip)
        d_terms.append(torch.stack([loss_d.detach(), real_scores.detach().mean(), fake_scores.detach().mean()]))
        d_norms.append(norm)
        ok = ok and ok_d
    disc.requires_grad_(False)  # the generator step needs no gradient of the discriminator's weights
    try:
        loss_g = generator_loss([disc(fake, labels)])
    finally:
        disc.requires_grad_(True)
    norm_g, ok_g = optimizer_step(parts.opt_g, gan, loss_g, cfg.grad_clip)
    if ok_g:
        parts.ema.update(gan, step)
    loss_d, d_real, d_fake = torch.stack(d_terms).mean(0).tolist()
    return {"loss_g": float(loss_g.detach()), "loss_d": loss_d, "d_real": d_real, "d_fake": d_fake,
            "grad_norm_g": norm_g, "grad_norm_d": sum(d_norms) / len(d_norms)}, ok and ok_g
