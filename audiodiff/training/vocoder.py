"""Training a neural vocoder (e.g. :class:`~audiodiff.vocoders.Vocos`) with GAN losses, resumably.

    from audiodiff.vocoders import Vocos
    from audiodiff.training import VocoderTrainConfig, train_vocoder
    vocoder = Vocos(**model.representation.settings())
    train_vocoder(vocoder, dataset, "runs/vocoder-speech", VocoderTrainConfig(steps=20000, device="cuda"))

The objective is HiFi-GAN's (Kong et al. 2020, eq. 5-6) with Vocos' hinge losses (Siuzdak 2023,
section 3.3): ``mel_loss_weight`` (45) x log-mel L1 + ``mrstft_loss_weight`` x multi-resolution STFT
loss (Yamamoto et al. 2020) + adversarial and feature-matching terms of a multi-period (HiFi-GAN) and
a multi-resolution (UnivNet/Vocos) discriminator, the latter weighted by ``mrd_weight``.  Before step
``gan_start`` only the reconstruction terms train the generator (the discriminators wait), which
gives a usable vocoder quickly and a stable start for the GAN.

Data: ``dataset[i]`` is a dict with a ``"waveform"`` (or ``"audio"``) ``(1, S)`` at the vocoder's
rate (e.g. :class:`audiodiff.data.AudioDataset`).  The clips are decoded once and kept in memory
(vocoder corpora here are small); each step takes a random ``segment_seconds`` window from the
non-padded part of ``batch_size`` clips.

Run folder::

    run_dir/vocoder/                    the generator: config.json + model.safetensors
                                        (audiodiff.vocoders.load_vocoder_folder)
    run_dir/checkpoints/step_0001000/   generator.safetensors, discriminators.safetensors, config.json, state.pt
    run_dir/checkpoints/latest
    run_dir/log.jsonl                   step, loss, mel_l1, mrstft, adv, fm, disc, lr, grad norms, speed

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
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..audio.mel import Mel
from ..checkpoint import read_config, tensors_to_bytes
from ..errors import ConfigError
from ..metrics.spectral import mr_stft_loss
from ..vocoders.base import Vocoder, save_vocoder_folder
from ..vocoders.discriminators import (MultiPeriodDiscriminator, MultiResolutionDiscriminator, discriminator_loss,
                                       feature_matching_loss, generator_loss, resolutions_for)
from .checkpoints import (checkpoint_step, latest_checkpoint, load_weights, read_state, state_errors,
                          write_checkpoint_folder)
from .loop import (ResumableSampler, TrainState, Window, autocast_dtype, check_settings, config_from_dict, jsonable,
                   lr_factor, optimizer_step, resolve_device, rng_state, run_loop, set_rng_state)

log = logging.getLogger(__name__)

CHECKPOINT_FILES = ("generator.safetensors", "discriminators.safetensors")
LOG_KEYS = ("loss", "mel_l1", "mrstft", "adv", "fm", "disc", "grad_norm", "disc_grad_norm")


@dataclass(frozen=True)
class VocoderTrainConfig:
    """Everything that shapes a vocoder training run (saved in each checkpoint)."""

    steps: int = 20000
    batch_size: int = 16
    lr: float = 5e-4  # Vocos
    betas: tuple[float, float] = (0.8, 0.9)  # HiFi-GAN / Vocos
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.05  # cosine decay to lr * min_lr_ratio at `steps`
    segment_seconds: float = 0.5
    mel_loss_weight: float = 45.0  # HiFi-GAN eq. 6, Vocos
    mrstft_loss_weight: float = 1.0
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 2.0  # HiFi-GAN eq. 6
    mrd_weight: float = 0.1  # weight of the multi-resolution discriminator's terms (Vocos)
    gan_start: int = 1000  # steps of reconstruction-only training before the discriminators join
    disc_channels: int = 32  # width of the discriminators (MPD: c, 2c, 4c, 8c; MRD: c)
    grad_clip: float = 100.0  # 0 disables
    amp: str = "none"  # "none", "bf16" or "auto" (bf16 on CUDA)
    checkpoint_every: int = 1000
    keep_last: int = 2
    log_every: int = 50
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    num_workers: int = 2  # processes that decode the clips once at the start
    time_limit: float = 0.0  # seconds of this invocation; when spent: checkpoint, export and return (0: none)
    max_bad_steps: int = 20
    progress: bool = True

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "betas": len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "weight_decay": self.weight_decay >= 0, "warmup_steps": self.warmup_steps >= 0,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1, "segment_seconds": self.segment_seconds > 0,
            "mel_loss_weight": self.mel_loss_weight >= 0, "mrstft_loss_weight": self.mrstft_loss_weight >= 0,
            "adversarial_weight": self.adversarial_weight >= 0, "feature_matching_weight": self.feature_matching_weight >= 0,
            "mrd_weight": self.mrd_weight >= 0, "gan_start": self.gan_start >= 0, "disc_channels": self.disc_channels >= 1,
            "grad_clip": self.grad_clip >= 0, "amp": self.amp in ("none", "bf16", "auto"),
            "checkpoint_every": self.checkpoint_every >= 1, "keep_last": self.keep_last >= 1,
            "log_every": self.log_every >= 1, "num_workers": self.num_workers >= 0,
            "time_limit": self.time_limit >= 0, "max_bad_steps": self.max_bad_steps >= 1,
        }
        check_settings(self, checks, "vocoder training")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "VocoderTrainConfig":
        return config_from_dict(cls, values, "vocoder training", tuples=("betas",))


# -- data ---------------------------------------------------------------------------------------
def load_clips(dataset: Dataset, num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every clip once: ``(N, S)`` waveforms (zero-padded to the longest) and ``(N,)`` lengths
    up to the last non-zero sample (so that segments avoid the padding)."""
    loader = DataLoader(dataset, batch_size=16, num_workers=num_workers, collate_fn=_waves)
    waves = [w for batch in loader for w in batch]
    if not waves:
        raise ConfigError("the vocoder training dataset is empty")
    clips = torch.zeros(len(waves), max(w.shape[-1] for w in waves))
    lengths = torch.ones(len(waves), dtype=torch.long)
    for i, w in enumerate(waves):
        clips[i, : w.shape[-1]] = w
        nonzero = torch.nonzero(w).flatten()
        if len(nonzero):
            lengths[i] = int(nonzero[-1]) + 1
    return clips, lengths


def _waves(batch: list[dict]) -> list[torch.Tensor]:
    """Items -> their mono waveforms ``(S,)``."""
    out = []
    for item in batch:
        wave = item.get("waveform", item.get("audio")) if isinstance(item, Mapping) else None
        if wave is None:
            raise ConfigError("vocoder training items must be dicts with a 'waveform' (or 'audio') (1, S) tensor")
        wave = torch.as_tensor(wave, dtype=torch.float32)
        if wave.dim() == 2:
            if wave.shape[0] != 1:
                raise ConfigError(f"vocoder training needs mono audio (1, S), got {tuple(wave.shape)}")
            wave = wave[0]  # (1, S) -> (S,)
        out.append(wave)
    return out


def random_segments(clips: torch.Tensor, lengths: torch.Tensor, indices: list[int], samples: int,
                    generator: torch.Generator) -> torch.Tensor:
    """``(B, 1, samples)``: a window of each clip ``indices[b]`` starting uniformly within its
    non-padded part (zero-padded where a clip is shorter)."""
    out = torch.zeros(len(indices), 1, samples)
    spare = (lengths[indices] - samples).clamp(min=0)  # (B,)
    offsets = (torch.rand(len(indices), generator=generator) * (spare + 1)).long().clamp(max=spare)  # (B,)
    for b, (i, start) in enumerate(zip(indices, offsets.tolist())):
        piece = clips[i, start:start + samples]
        out[b, 0, : piece.shape[-1]] = piece
    return out


def segment_samples(seconds: float, sample_rate: int, hop_length: int) -> int:
    """Samples in a training segment: ``seconds`` rounded down to whole hops (at least 2 hops)."""
    return max(2, int(seconds * sample_rate) // hop_length) * hop_length


# -- the loop -----------------------------------------------------------------------------------
def train_vocoder(vocoder: Vocoder, dataset: Dataset, run_dir: str | os.PathLike,
                  config: VocoderTrainConfig | Mapping[str, Any] | None = None, resume: bool = True) -> Vocoder:
    """Train ``vocoder`` (generator) against MPD + MRD discriminators on ``dataset``, checkpointing in ``run_dir``.

    Resumes from ``run_dir``'s latest checkpoint when there is one (and ``resume``); with
    ``config.time_limit`` spent it checkpoints and returns early (run again to go on).  The generator
    is exported to ``run_dir/vocoder`` at every checkpoint.  Returns it in eval mode.
    """
    cfg = config if isinstance(config, VocoderTrainConfig) else VocoderTrainConfig.from_dict(config or {})
    run_dir = Path(run_dir)
    _check_data(vocoder, dataset)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    trainer = VocoderTrainer(vocoder, cfg, device, run_dir)
    state = TrainState()
    ckpt = latest_checkpoint(run_dir, CHECKPOINT_FILES) if resume else None
    if ckpt is not None:
        trainer.restore(ckpt, state)
    trainer.load_data(dataset)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer.generator.train()
    run_loop(trainer, state, cfg)
    if ckpt is not None and state.step == checkpoint_step(ckpt):
        save_vocoder_folder(trainer.generator, run_dir / "vocoder")  # nothing left to train: export anyway
    return trainer.generator.eval()


class VocoderTrainer:
    """The generator, its discriminators, their optimizers and schedule, the mel loss, the data and the RNG
    of one :func:`train_vocoder` run (a :class:`~audiodiff.training.loop.Trainer`)."""

    name = "vocoder"
    checkpoint_files = CHECKPOINT_FILES
    advice = "try a lower lr or grad_clip, amp=none, or check the data"
    batches_per_step = 1

    def __init__(self, vocoder: Vocoder, cfg: VocoderTrainConfig, device: torch.device, run_dir: Path) -> None:
        settings = vocoder.mel_settings
        self.cfg, self.device, self.run_dir = cfg, device, run_dir
        self.generator = vocoder.to(device)
        self.resolutions = resolutions_for(settings["n_fft"])
        self.mpd = MultiPeriodDiscriminator(channels=cfg.disc_channels).to(device)
        self.mrd = MultiResolutionDiscriminator(self.resolutions, channels=cfg.disc_channels).to(device)
        self.discriminators = nn.ModuleDict({"mpd": self.mpd, "mrd": self.mrd})
        self.mel = Mel(**settings).to(device)
        adam = dict(lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=device.type == "cuda" or None)
        self.opt_g = torch.optim.AdamW(self.generator.parameters(), **adam)
        self.opt_d = torch.optim.AdamW(self.discriminators.parameters(), **adam)
        self.segment_gen = torch.Generator().manual_seed(cfg.seed * 7919 + 17)
        self.dtype = autocast_dtype(cfg.amp, device)
        self.samples_per_step = cfg.batch_size

    def set_lr(self, step: int) -> float:
        """Set both optimizers' learning rate for ``step`` (warm-up, then cosine decay); return it."""
        cfg = self.cfg
        lr = cfg.lr * lr_factor(step, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = lr
        return lr

    def load_data(self, dataset: Dataset) -> None:
        """Decode the clips into memory; the segment length; the per-epoch shuffle."""
        cfg, settings = self.cfg, self.generator.mel_settings
        self.clips, self.lengths = load_clips(dataset, cfg.num_workers)
        if len(self.clips) < cfg.batch_size:
            raise ConfigError(f"dataset has {len(self.clips)} clips, fewer than one batch of {cfg.batch_size}")
        self.samples = segment_samples(cfg.segment_seconds, settings["sample_rate"], settings["hop_length"])
        log.info("vocoder: %s parameters; %d clips; segments of %d samples",
                 f"{sum(p.numel() for p in self.generator.parameters()):,}", len(self.clips), self.samples)
        self.sampler = ResumableSampler(len(self.clips), cfg.seed)

    def batches(self, state: TrainState) -> Iterator[tuple[torch.Tensor, float]]:
        """Random ``(B, 1, samples)`` segments of the clips in this epoch's order (from ``(seed, epoch)``)."""
        batch_size = self.cfg.batch_size
        self.sampler.set_position(state.epoch, 0)
        order = self.sampler.indices()
        while (state.batch_in_epoch + 1) * batch_size <= len(order):
            t0 = time.perf_counter()
            start = state.batch_in_epoch * batch_size
            wave = random_segments(self.clips, self.lengths, order[start:start + batch_size], self.samples,
                                   self.segment_gen)
            yield wave.to(self.device), time.perf_counter() - t0

    def step(self, wave: torch.Tensor, state: TrainState) -> tuple[dict[str, float], bool]:
        self.set_lr(state.step)
        return _train_step(self, wave, state.step >= self.cfg.gan_start, self.cfg, self.dtype)

    def postfix(self, figures: Mapping[str, float]) -> dict[str, str]:
        return {"mel_l1": f"{figures['mel_l1']:.3f}"}

    def log_record(self, state: TrainState, window: Window) -> dict[str, Any]:
        return {"step": state.step, "epoch": state.epoch, **{k: window.mean(k) for k in LOG_KEYS},
                "lr": self.opt_g.param_groups[0]["lr"], "steps_per_s": window.per_second(window.steps),
                "samples_per_s": window.per_second(window.samples), "skipped_steps": state.skipped_steps}

    def checkpoint(self, state: TrainState) -> None:
        """Write ``checkpoints/step_XXXXXXX`` and export the generator to ``run_dir/vocoder``."""
        saved = {**state.saved(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "rng": rng_state(self.segment_gen), "train_config": jsonable(asdict(self.cfg))}
        files = {"generator.safetensors": tensors_to_bytes(self.generator.state_dict()),
                 "discriminators.safetensors": tensors_to_bytes(self.discriminators.state_dict())}
        config = {"vocoder": jsonable(self.generator.config()), "training": saved["train_config"]}
        write_checkpoint_folder(self.run_dir, saved, files, config, self.cfg.keep_last)
        save_vocoder_folder(self.generator, self.run_dir / "vocoder")

    def after_step(self, state: TrainState) -> None:
        pass

    def restore(self, ckpt: Path, state: TrainState) -> None:
        saved_config = read_config(ckpt).get("vocoder")
        if saved_config != jsonable(self.generator.config()):
            raise ConfigError(f"checkpoint {ckpt} is of another vocoder config ({saved_config}); "
                              "use a new run_dir or the same vocoder")
        load_weights(self.generator, ckpt, "generator.safetensors")
        load_weights(self.discriminators, ckpt, "discriminators.safetensors")
        saved = read_state(ckpt)
        with state_errors(ckpt):
            self.opt_g.load_state_dict(saved["opt_g"])
            self.opt_d.load_state_dict(saved["opt_d"])
            set_rng_state(saved["rng"], self.segment_gen)
            state.restore(saved)
        log.info("resumed vocoder training from %s (step %d)", ckpt, state.step)


def _check_data(vocoder: Vocoder, dataset: Dataset) -> None:
    if not isinstance(vocoder, Vocoder) or not any(p.requires_grad for p in vocoder.parameters()):
        raise ConfigError(f"train_vocoder needs a trainable Vocoder (e.g. Vocos), got {type(vocoder).__name__}")
    rate = getattr(dataset, "sample_rate", None)
    if rate is not None and int(rate) != vocoder.mel_settings["sample_rate"]:
        raise ConfigError(f"dataset sample rate {rate} differs from the vocoder's {vocoder.mel_settings['sample_rate']}")


def _train_step(parts: VocoderTrainer, wave: torch.Tensor, adversarial: bool, cfg: VocoderTrainConfig,
                dtype: torch.dtype | None) -> tuple[dict[str, float], bool]:
    """One discriminator step (when ``adversarial``) and one generator step on ``(B, 1, S)`` audio."""
    autocast = torch.autocast(wave.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
    with torch.no_grad():
        log_mel = parts.mel.log_mel(wave)  # (B, n_mels, frames)
    with autocast:
        fake = parts.generator(log_mel)  # (B, 1, S)
    nan = torch.full((), float("nan"), device=wave.device)
    tensors = {"disc": nan, "adv": nan, "fm": nan}
    norms = {"disc_grad_norm": float("nan")}
    ok = True
    if adversarial:
        with autocast:
            tensors["disc"] = _discriminator_loss(parts, wave, fake.detach(), cfg)
        norms["disc_grad_norm"], ok = optimizer_step(parts.opt_d, parts.discriminators, tensors["disc"], cfg.grad_clip)
    tensors["mel_l1"] = (parts.mel.log_mel(fake.float()) - log_mel).abs().mean()
    tensors["mrstft"] = (mr_stft_loss(fake.float(), wave, parts.resolutions) if cfg.mrstft_loss_weight > 0
                         else torch.zeros((), device=wave.device))
    loss = cfg.mel_loss_weight * tensors["mel_l1"] + cfg.mrstft_loss_weight * tensors["mrstft"]
    if adversarial:
        with autocast:
            tensors["adv"], tensors["fm"] = _generator_gan_losses(parts, wave, fake, cfg)
        loss = loss + cfg.adversarial_weight * tensors["adv"] + cfg.feature_matching_weight * tensors["fm"]
    tensors["loss"] = loss
    norms["grad_norm"], ok_g = optimizer_step(parts.opt_g, parts.generator, loss, cfg.grad_clip)
    values = torch.stack([t.detach().float() for t in tensors.values()]).tolist()  # one device sync
    return {**dict(zip(tensors, values)), **norms}, ok and ok_g


def _judge(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[list, list, list, list]:
    """``(real scores, fake scores, real features, fake features)`` of ``disc`` from one pass over the
    concatenated batch ``(2B, 1, S)`` (half the kernel launches of two passes; the same numbers)."""
    scores, features = disc(torch.cat([real, fake]))  # 2 x (B, 1, S) -> (2B, 1, S)
    b = real.shape[0]
    return ([s[:b] for s in scores], [s[b:] for s in scores],
            [[f[:b] for f in fs] for fs in features], [[f[b:] for f in fs] for fs in features])


def _discriminator_loss(parts: VocoderTrainer, real: torch.Tensor, fake: torch.Tensor, cfg: VocoderTrainConfig) -> torch.Tensor:
    """Hinge loss of the MPD plus ``mrd_weight`` times that of the MRD (Vocos, section 3.3)."""
    real_mpd, fake_mpd, _, _ = _judge(parts.mpd, real, fake)
    real_mrd, fake_mrd, _, _ = _judge(parts.mrd, real, fake)
    return discriminator_loss(real_mpd, fake_mpd) + cfg.mrd_weight * discriminator_loss(real_mrd, fake_mrd)


def _generator_gan_losses(parts: VocoderTrainer, real: torch.Tensor, fake: torch.Tensor,
                          cfg: VocoderTrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(adversarial, feature matching)`` generator losses, MRD terms weighted by ``mrd_weight``.

    The discriminators' own weights need no gradient here, so they are frozen for this pass."""
    parts.discriminators.requires_grad_(False)
    adv, fm = [], []
    try:
        for disc, weight in ((parts.mpd, 1.0), (parts.mrd, cfg.mrd_weight)):
            _, fake_scores, real_features, fake_features = _judge(disc, real, fake)
            adv.append(weight * generator_loss(fake_scores))
            fm.append(weight * feature_matching_loss(real_features, fake_features))
    finally:
        parts.discriminators.requires_grad_(True)
    return sum(adv), sum(fm)
