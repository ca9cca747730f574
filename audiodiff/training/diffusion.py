"""Training a diffusion model (or any :class:`Objective`): DDP under torchrun, EMA, clipping, accumulation, AMP.

    from audiodiff.training import TrainConfig, fit
    fit(model, dataset, "runs/speech", TrainConfig(steps=20000, batch_size=32))

Run folder layout::

    runs/speech/
      model/                      EMA weights, ready to load: audiodiff.load("runs/speech/model")
      checkpoints/step_0001000/   model.safetensors, ema.safetensors, config.json, state.pt
      checkpoints/latest          name of the newest complete checkpoint
      log.jsonl                   step, loss, lr, grad_norm, samples_per_s, data_wait
      demos/step_0001000/         demo clips (WAV + mel PNG) when demo_every > 0

Resuming restores the weights, EMA, optimizer, LR schedule, step, epoch, the position inside the
epoch and every RNG, so a resumed run reproduces the losses of an uninterrupted one (CPU,
deterministic kernels).  The loop itself is :func:`audiodiff.training.loop.run_loop`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, runtime_checkable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import tensors_to_bytes
from ..errors import AudiodiffError, ConfigError
from .checkpoints import latest_checkpoint, load_weights, read_state, state_errors, write_checkpoint_folder
from .loop import (EMA, DistInfo, ResumableSampler, TrainState, Window, all_ranks_agree, autocast_dtype,
                   check_settings, config_from_dict, init_distributed, jsonable, lr_factor, resolve_device,
                   rng_state, run_loop, set_rng_state)

log = logging.getLogger(__name__)

CHECKPOINT_FILES = ("model.safetensors", "ema.safetensors")


@runtime_checkable
class Objective(Protocol):
    """What :func:`fit` trains: an ``nn.Module`` whose ``forward`` is a training loss.

    :class:`~audiodiff.DiffusionModel` is one; :class:`~audiodiff.training.autoencoder.AutoencoderObjective`
    trains an autoencoder through ``fit`` the same way.  Only parameters with ``requires_grad`` are
    optimised, so an objective may hold frozen parts (e.g. a distillation teacher).  ``fit`` deep-copies
    the objective for its EMA, and saves the EMA copy with :meth:`save` to ``run_dir/model``.

    Optional attributes ``fit`` looks for:

    - ``fits_statistics`` (default True): False skips fitting ``representation``'s statistics at
      step 0 (e.g. a representation whose statistics are already fitted, as a teacher's is);
    - ``demo_prompts(n) -> list[str]``: prompts for demo clips (``TrainConfig.demo_every``).
    """

    #: turns audio into what the net sees; ``fit`` calls its ``fit_stats(log_mels)`` (if it has one)
    #: on the first batches, unless ``fits_statistics`` is False
    representation: torch.nn.Module

    @property
    def config(self) -> Mapping[str, Any]:
        """JSON-able config saved in each checkpoint's ``config.json`` (with ``training`` added)."""

    def encode_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Clean training samples ``x0`` of a collated batch (called under ``torch.no_grad()``)."""

    def conditioning_inputs(self, batch: Mapping[str, Any], train: bool = False,
                            generator: torch.Generator | None = None) -> dict[str, Any]:
        """Keyword arguments of ``forward`` taken from the batch (e.g. prompts, with CFG dropout when ``train``)."""

    def __call__(self, x0: torch.Tensor, generator: torch.Generator | None = None, **cond: Any) -> torch.Tensor:
        """``forward``: the scalar training loss on ``x0``, drawing noise from ``generator``."""

    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write a folder that loads without the training code."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a training run (saved in each checkpoint)."""

    steps: int = 10000
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 500
    lr_schedule: str = "cosine"  # or "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # 0 disables
    grad_accum: int = 1
    ema_decay: float = 0.999
    amp: str = "auto"  # "auto", "none", "bf16", "fp16"
    checkpoint_every: int = 1000
    keep_last: int = 3
    log_every: int = 50
    demo_every: int = 0  # 0: no demo clips
    demo_samples: int = 2
    demo_steps: int = 25
    num_workers: int = 2
    seed: int = 0
    max_bad_steps: int = 20
    fit_stats_batches: int = 20  # batches used to fit the representation's statistics at step 0
    device: str = "auto"
    progress: bool = True
    time_limit: float = 0.0  # seconds of this invocation; when spent: checkpoint, export and return (0: none)

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "grad_accum": self.grad_accum >= 1, "ema_decay": 0 <= self.ema_decay < 1,
            "checkpoint_every": self.checkpoint_every >= 1, "keep_last": self.keep_last >= 1,
            "warmup_steps": self.warmup_steps >= 0, "max_bad_steps": self.max_bad_steps >= 1,
            "time_limit": self.time_limit >= 0,
            "lr_schedule": self.lr_schedule in ("cosine", "constant"),
            "amp": self.amp in ("auto", "none", "bf16", "fp16"),
        }
        check_settings(self, checks, "training")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        return config_from_dict(cls, values, "training", tuples=("adam_betas",))


def fit(
    model: Objective,
    dataset: Dataset,
    run_dir: str | os.PathLike,
    config: TrainConfig | Mapping[str, Any] | None = None,
    resume: bool = True,
) -> Objective:
    """Train ``model`` on ``dataset`` (items with a ``"waveform"`` ``(1, S)``), checkpointing in ``run_dir``.

    Resumes from ``run_dir``'s latest checkpoint when there is one (and ``resume``).  Returns the
    EMA model (eval mode), which is also saved to ``run_dir/model``.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config or {})
    trainer = DiffusionTrainer(model, dataset, Path(run_dir), cfg)
    state = trainer.start(resume)
    run_loop(trainer, state, cfg, trainer.info)
    return trainer.ema.model.eval()


class DiffusionTrainer:
    """The parts of one :func:`fit` run (a :class:`~audiodiff.training.loop.Trainer`)."""

    name = "training"
    checkpoint_files = CHECKPOINT_FILES
    advice = "try a lower lr, grad_clip=1.0, amp=none, or check the data for silent/corrupt clips"

    def __init__(self, model: Objective, dataset: Dataset, run_dir: Path, cfg: TrainConfig) -> None:
        self.cfg, self.dataset, self.run_dir = cfg, dataset, run_dir
        self.device = resolve_device(cfg.device)
        self.info = init_distributed(self.device)
        if len(dataset) < cfg.batch_size * self.info.world_size:
            raise ConfigError(f"dataset has {len(dataset)} clips, fewer than one batch of {cfg.batch_size} per process")
        if hasattr(dataset, "summary") and self.info.is_main:
            log.info("training data: %s", dataset.summary())
        torch.manual_seed(cfg.seed)
        self.model = model.to(self.device)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed * 7919 + self.info.rank)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
        schedule = dict(steps=cfg.steps, warmup_steps=cfg.warmup_steps, min_lr_ratio=cfg.min_lr_ratio,
                        schedule=cfg.lr_schedule)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, **schedule))
        self.sampler = ResumableSampler(len(dataset), cfg.seed, self.info.rank, self.info.world_size)
        self.samples_per_step = cfg.batch_size * cfg.grad_accum * self.info.world_size
        self.batches_per_step = cfg.grad_accum
        self.ema: EMA

    def start(self, resume: bool) -> TrainState:
        """Fit statistics (fresh run) or restore the latest checkpoint; wrap for DDP; the state to go on from."""
        state = TrainState()
        ckpt = latest_checkpoint(self.run_dir) if resume else None
        if ckpt is None:
            if getattr(self.model, "fits_statistics", True):
                fit_representation_stats(self.model.representation, self.dataset, self.cfg, self.device, self.info)
            self.ema = EMA(self.model, self.cfg.ema_decay)
        else:
            self._restore(ckpt, state)
        self.ddp_model = _wrap_ddp(self.model, self.device, self.info)
        self.dtype = autocast_dtype(self.cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.model.train()
        return state

    def batches(self, state: TrainState) -> Iterator[tuple[list, float]]:
        """``(grad_accum batches, seconds waited for them)`` for the rest of the current epoch."""
        cfg = self.cfg
        self.sampler.set_position(state.epoch, state.batch_in_epoch * cfg.batch_size)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(state.epoch)
        # the loader's own generator keeps it from consuming the global RNG (resume must not shift it)
        loader = DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=self.sampler, num_workers=cfg.num_workers,
                            collate_fn=_collate, drop_last=True, pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(cfg.seed + state.epoch))
        batches = iter(loader)
        while True:
            t0 = time.perf_counter()
            group = []
            for batch in batches:
                group.append(batch)
                if len(group) == cfg.grad_accum:
                    break
            if len(group) < cfg.grad_accum:
                return
            yield group, time.perf_counter() - t0

    def step(self, group: list, state: TrainState) -> tuple[dict[str, float], bool]:
        """One optimizer step over ``grad_accum`` micro-batches, then the LR schedule and the EMA."""
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i, batch in enumerate(group):
            with torch.no_grad():
                x0 = self.model.encode_batch(batch)
            sync = i == len(group) - 1 or self.info.world_size == 1
            ctx = self.ddp_model.no_sync() if not sync else contextlib.nullcontext()
            with ctx, torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                cond = self.model.conditioning_inputs(batch, train=True, generator=self.noise_gen)
                loss = self.ddp_model(x0, generator=self.noise_gen, **cond)
                self.scaler.scale(loss / len(group)).backward()
            total += loss.detach().float().item()
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        ok = all_ranks_agree(math.isfinite(total) and bool(torch.isfinite(grad_norm)), self.info)
        if ok:
            self.scaler.step(self.optimizer)
        else:
            self.optimizer.zero_grad(set_to_none=True)
        self.scaler.update()
        if ok:
            self.scheduler.step()
            self.ema.update(self.model, state.step)
        return {"loss": total / len(group) if ok else float("nan"), "grad_norm": float(grad_norm)}, ok

    def postfix(self, figures: Mapping[str, float]) -> dict[str, str]:
        return {"loss": f"{figures['loss']:.4f}"}

    def log_record(self, state: TrainState, window: Window) -> dict[str, Any]:
        return {"step": state.step, "epoch": state.epoch, "loss": window.mean("loss"),
                "lr": self.scheduler.get_last_lr()[0], "grad_norm": window.last["grad_norm"],
                "samples_per_s": window.per_second(window.samples), "data_wait": window.per_second(window.data_time),
                "skipped_steps": state.skipped_steps}

    def checkpoint(self, state: TrainState) -> None:
        """Write ``checkpoints/step_XXXXXXX`` (weights, EMA, optimizer, schedule, RNG) and export the EMA model."""
        if self.info.is_main:
            saved = {**state.saved(), "optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict(), "rng": rng_state(self.noise_gen),
                     "train_config": jsonable(asdict(self.cfg)), "world_size": self.info.world_size}
            files = {"model.safetensors": tensors_to_bytes(self.model.state_dict()),
                     "ema.safetensors": tensors_to_bytes(self.ema.model.state_dict())}
            config = {**self.ema.model.config, "training": saved["train_config"]}
            write_checkpoint_folder(self.run_dir, saved, files, config, self.cfg.keep_last)
            self.ema.model.save(self.run_dir / "model")
        if self.info.world_size > 1:
            dist.barrier()

    def after_step(self, state: TrainState) -> None:
        if self.info.is_main and self.cfg.demo_every and state.step % self.cfg.demo_every == 0:
            _demo(self.run_dir, self.ema.model, state.step, self.cfg)

    def _restore(self, ckpt: Path, state: TrainState) -> None:
        load_weights(self.model, ckpt, "model.safetensors")
        self.ema = EMA(self.model, self.cfg.ema_decay)
        load_weights(self.ema.model, ckpt, "ema.safetensors")
        saved = read_state(ckpt)
        with state_errors(ckpt):
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            if saved.get("world_size", 1) == self.info.world_size:
                set_rng_state(saved["rng"], self.noise_gen)
            else:
                log.warning("resuming with %d processes instead of %d: RNG streams restart", self.info.world_size,
                            saved["world_size"])
            state.restore(saved)
        if self.info.is_main:
            log.info("resumed from %s (step %d)", ckpt, state.step)


def fit_representation_stats(representation: torch.nn.Module, dataset: Dataset, cfg: Any, device: torch.device,
                             info: DistInfo) -> None:
    """Fit ``representation``'s normalisation statistics on the first ``cfg.fit_stats_batches`` batches of
    ``cfg.batch_size`` clips drawn with ``cfg.seed`` (the same on every rank); any trainer's config has those."""
    if not hasattr(representation, "fit_stats") or cfg.fit_stats_batches <= 0:
        return
    g = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(dataset), generator=g)[: cfg.fit_stats_batches * cfg.batch_size].tolist()
    loader = DataLoader(torch.utils.data.Subset(dataset, order), batch_size=cfg.batch_size,
                        num_workers=min(cfg.num_workers, 2), collate_fn=_collate, generator=g)
    with torch.no_grad():
        mels = (b["features"].to(device) if "features" in b else representation.log_mel(b["waveform"].to(device))
                for b in loader)
        representation.fit_stats(mels)
    if info.is_main:
        log.info("fitted %s statistics on %d clips", type(representation).__name__, len(order))


def _collate(batch):
    from ..data import collate

    return collate(batch)


def _wrap_ddp(model: Objective, device: torch.device, info: DistInfo) -> torch.nn.Module:
    if info.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def _demo(run_dir: Path, ema_model: Objective, step: int, cfg: TrainConfig) -> None:
    """Write a few clips (WAV + JSON + mel PNG) from the EMA model."""
    from ..generate import generate

    out = run_dir / "demos" / f"step_{step:07d}"
    prompts = ema_model.demo_prompts(cfg.demo_samples) if hasattr(ema_model, "demo_prompts") else None
    kwargs = {"prompt": prompts} if prompts else {}
    clips = generate(ema_model, num_samples=cfg.demo_samples, steps=cfg.demo_steps, seed=0, **kwargs)
    for i, clip in enumerate(clips):
        log_mel = ema_model.representation.to_log_mel(clip.features[None])[0]  # (1, n_mels, T) -> (n_mels, T)
        try:
            clip.save(out / f"demo_{i}.wav", plot=True, log_mel=log_mel, hop_length=ema_model.representation.hop_length,
                      overwrite=True)  # a resumed run remakes the demos of its step
        except AudiodiffError:  # no matplotlib: keep the WAVs
            clip.save(out / f"demo_{i}.wav", overwrite=True)
    ema_model.train(False)


@torch.no_grad()
def held_out_loss(model: Any, dataset: Dataset, repeats: int = 4, batch_size: int = 16, seed: int = 0,
                  conditional: bool = True) -> float:
    """A :class:`~audiodiff.DiffusionModel`'s own training loss on ``dataset``'s clips at fixed noise draws (``repeats`` per clip), a
    judge-free measure that two models of one representation share; ``conditional=False`` uses the null
    prompt (a base model that lacks the clips' labels)."""
    from ..data import collate

    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        x0 = model.encode_batch(batch)
        keep = [conditional] * len(x0)  # False: the null prompt
        cond = model.batch_inputs(batch, keep) if model.is_conditional else {}
        for _ in range(repeats):
            total += float(model.loss(x0, generator=generator, **cond)) * len(x0)
            count += len(x0)
    model.train(was_training)
    return total / max(1, count)
