"""A plain PyTorch training loop: DDP under torchrun, EMA, clipping, accumulation, AMP, safe checkpoints.

    from audiodiff.train import TrainConfig, fit
    fit(model, dataset, "runs/speech", TrainConfig(steps=20000, batch_size=32))

Run folder layout::

    runs/speech/
      model/                      EMA weights, ready to load: audiodiff.load("runs/speech/model")
      checkpoints/step_0001000/   model.safetensors, ema.safetensors, config.json, state.pt
      checkpoints/latest          name of the newest complete checkpoint
      log.jsonl                   step, loss, lr, grad_norm, samples_per_s, data_wait
      demos/step_0001000/         demo clips (WAV + mel PNG) when demo_every > 0

Checkpoints are written into a temporary folder (every file fsynced) and renamed into place; the
``latest`` pointer is replaced atomically after that, so a crash at any moment leaves the last good
checkpoint intact.  Resuming restores the weights, EMA, optimizer, LR schedule, step, epoch, the
position inside the epoch and every RNG, so a resumed run reproduces the losses of an uninterrupted
one (CPU, deterministic kernels).  ``state.pt`` holds only tensors and plain containers and is read
with ``torch.load(weights_only=True)``: no arbitrary unpickling.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import math
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from .checkpoint import CONFIG_NAME, _fsync_dir, atomic_write_bytes, read_tensors, tensors_to_bytes, write_config
from .errors import AudiodiffError, ConfigError
from .files import json_line

if TYPE_CHECKING:  # fit is duck-typed (the autoencoder trains through it too); no import of model.py at run time
    from .model import DiffusionModel

log = logging.getLogger(__name__)

LATEST = "latest"
#: sha256 of every file of a checkpoint folder, written last
CHECKSUMS = "checksums.json"
_STEP_NAME = re.compile(r"step_\d{7,}")


class TrainingError(AudiodiffError):
    """Training cannot go on (e.g. the loss keeps being NaN); the message says what to try."""


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


def check_settings(config: Any, checks: Mapping[str, bool], what: str) -> None:
    """Raise one :class:`ConfigError` naming every field of ``config`` whose check is False."""
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ConfigError(f"invalid {what} setting(s): {', '.join(f'{k}={getattr(config, k)!r}' for k in bad)}")


def config_from_dict(cls: type, values: Mapping[str, Any], what: str, tuples: tuple[str, ...] = ()) -> Any:
    """Build the settings dataclass ``cls`` from a mapping (e.g. a recipe config); unknown keys are a
    one-line :class:`ConfigError` listing the valid ones; the fields in ``tuples`` become tuples."""
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ConfigError(f"unknown {what} setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    return cls(**{k: tuple(v) if k in tuples else v for k, v in values.items()})


# -- pieces ------------------------------------------------------------------------------------
def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then constant or cosine decay to ``min_lr_ratio`` at ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine


class EMA:
    """Exponential moving average of parameters (and copies of buffers), with the usual warm-up
    ``decay_t = min(decay, (1 + t) / (10 + t))``."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


class ResumableSampler(Sampler[int]):
    """Shuffles per epoch from ``(seed, epoch)``, splits across ranks, and can start mid-epoch."""

    def __init__(self, length: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.seed, self.rank, self.world_size = length, seed, rank, world_size
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int) -> None:
        """Begin ``epoch`` at this rank's ``start``-th index (skipping those already trained on)."""
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.length, generator=g).tolist()
        per_rank = self.length // self.world_size  # drop the tail so ranks stay in step
        return order[self.rank * per_rank:(self.rank + 1) * per_rank]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start:])

    def __len__(self) -> int:
        return max(0, self.length // self.world_size - self.start)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            rank = int(os.environ.get("LOCAL_RANK", 0))
            return torch.device("cuda", rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp``; ``"auto"`` means bf16 on CUDA (if supported), fp32 on CPU
    (bf16 autocast measured 8x slower than fp32 on our 2-core CPU: benchmarks/results/amp.md)."""
    if amp == "none":
        return None
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


# -- distributed -------------------------------------------------------------------------------
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group (gloo on CPU, NCCL on CUDA) when ``WORLD_SIZE > 1``."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def all_ranks_agree(flag: bool, info: DistInfo) -> bool:
    """True only if ``flag`` is True on every rank."""
    if info.world_size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


# -- checkpoints -------------------------------------------------------------------------------
def rng_state(noise_gen: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "noise": noise_gen.get_state(),
             "python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
             "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], noise_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    noise_gen.set_state(state["noise"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(run_dir: Path, model: DiffusionModel, ema: EMA, state: dict[str, Any], keep_last: int) -> Path:
    """Write ``checkpoints/step_XXXXXXX`` atomically, move ``latest``, prune, export the EMA model."""
    final = write_checkpoint_folder(run_dir, state, {
        "model.safetensors": tensors_to_bytes(model.state_dict()),
        "ema.safetensors": tensors_to_bytes(ema.model.state_dict()),
    }, {**ema.model.config, "training": state["train_config"]}, keep_last)
    ema.model.save(run_dir / "model")
    return final


def checkpoint_step(folder: Path) -> int:
    """The optimizer step a checkpoint folder (``step_XXXXXXX``) was written at."""
    return int(Path(folder).name.split("_")[-1])


def write_checkpoint_folder(run_dir: Path, state: dict[str, Any], files: Mapping[str, bytes],
                            config: Mapping[str, Any], keep_last: int) -> Path:
    """Write ``run_dir/checkpoints/step_XXXXXXX`` (``files``, ``config.json`` and ``state`` as ``state.pt``)
    into a temporary folder, rename it into place, then move the ``latest`` pointer and keep the last
    ``keep_last`` checkpoints."""
    ckpt_root = run_dir / "checkpoints"
    name = f"step_{state['step']:07d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    contents = {**files, "state.pt": buffer.getvalue()}
    for file_name, data in contents.items():
        atomic_write_bytes(tmp / file_name, data)
    sums = {file_name: hashlib.sha256(data).hexdigest() for file_name, data in contents.items()}
    sums[CONFIG_NAME] = _sha256(write_config(tmp, config))
    atomic_write_bytes(tmp / CHECKSUMS, (json.dumps(sums, indent=2, sort_keys=True) + "\n").encode())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _fsync_dir(ckpt_root)
    atomic_write_bytes(ckpt_root / LATEST, name.encode())
    for old in sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path, needed: tuple[str, ...] = ("model.safetensors", "ema.safetensors")) -> Path | None:
    """The checkpoint to resume from: the one ``checkpoints/latest`` names if it is intact, else the
    newest intact one (with a warning saying so); ``None`` when there is no ``latest`` (a fresh run).

    ``latest`` must name a ``step_NNNNNNN`` folder directly inside ``checkpoints/`` (no ``..``, no
    link); a checkpoint is intact when it holds ``needed``, ``state.pt`` and ``config.json`` and each
    file matches the sha256 in its ``checksums.json`` (checkpoints written before checksums existed
    are checked for completeness only).  Raises :class:`TrainingError` if none is intact.
    """
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST
    if not pointer.is_file() and not pointer.is_symlink():
        return None
    needed = (*needed, "state.pt", CONFIG_NAME)
    named, problem = _pointer_target(pointer)
    if named is not None:
        problem = checkpoint_problem(named, needed)
        if problem is None:
            return named
    steps = sorted((p for p in root.glob("step_*") if _STEP_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()),
                   key=checkpoint_step, reverse=True)
    for folder in steps:
        if folder != named and checkpoint_problem(folder, needed) is None:
            log.warning("%s; resuming from %s, the newest intact checkpoint", problem, folder)
            return folder
    raise TrainingError(f"{problem}, and no other checkpoint in {root} is intact; "
                        f"remove {pointer} to start over")


def _pointer_target(pointer: Path) -> tuple[Path | None, str]:
    """The step folder ``latest`` names, or ``None`` and why it names none."""
    try:
        name = pointer.read_bytes().decode("ascii").strip() if not pointer.is_symlink() else ""
    except (OSError, UnicodeDecodeError):
        name = ""
    if not _STEP_NAME.fullmatch(name):
        return None, f"{pointer} does not name a step_NNNNNNN folder"
    folder = pointer.parent / name
    if folder.is_symlink() or not folder.is_dir():
        return None, f"checkpoint {folder} named by {pointer} is missing"
    return folder, ""


def checkpoint_problem(folder: Path, needed: tuple[str, ...]) -> str | None:
    """Why checkpoint ``folder`` cannot be resumed from (a missing file, a checksum mismatch), or ``None``."""
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        return f"checkpoint {folder} is incomplete (no {missing[0]})"
    if not (folder / CHECKSUMS).is_file():
        return None  # written before checksums existed
    try:
        sums = json.loads((folder / CHECKSUMS).read_text())
        bad = [name for name, digest in sums.items() if _sha256(folder / name) != digest]
    except (OSError, ValueError, AttributeError, TypeError):
        return f"checkpoint {folder} has an unreadable {CHECKSUMS} or file"
    return f"checkpoint {folder} is corrupt ({bad[0]} does not match its checksum)" if bad else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state(ckpt: Path) -> dict[str, Any]:
    """A checkpoint's ``state.pt`` (tensors and plain containers only: ``weights_only=True``); a broken
    file is a one-line :class:`TrainingError`."""
    try:
        return torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, a pickle of forbidden objects
        raise TrainingError(f"cannot read {ckpt / 'state.pt'}: {str(exc).splitlines()[0][:200]}") from None


@contextlib.contextmanager
def state_errors(ckpt: Path) -> Iterator[None]:
    """Turn a ``state.pt`` that does not fit the run (missing keys, other shapes) into one line."""
    try:
        yield
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError) as exc:
        raise TrainingError(f"{ckpt / 'state.pt'} does not fit this run: {str(exc).splitlines()[0][:200]}") from None


def load_weights(module: torch.nn.Module, ckpt: Path, name: str) -> None:
    """Load ``ckpt/name`` (safetensors) into ``module``; weights of another shape are a one-line error."""
    try:
        module.load_state_dict(read_tensors(ckpt, name))
    except RuntimeError as exc:
        raise TrainingError(f"{ckpt / name} does not fit this model (another config?): "
                            f"{str(exc).splitlines()[0][:200]}") from None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


# -- the loop -----------------------------------------------------------------------------------
@dataclass
class _Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches this rank consumed in the current epoch
    bad_steps: int = 0  # consecutive non-finite steps
    skipped_steps: int = 0  # all non-finite steps


def fit(
    model: DiffusionModel,
    dataset: Dataset,
    run_dir: str | os.PathLike,
    config: TrainConfig | Mapping[str, Any] | None = None,
    resume: bool = True,
) -> DiffusionModel:
    """Train ``model`` on ``dataset`` (items with a ``"waveform"`` ``(1, S)``), checkpointing in ``run_dir``.

    Resumes from ``run_dir``'s latest checkpoint when there is one (and ``resume``).  Returns the
    EMA model (eval mode), which is also saved to ``run_dir/model``.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config or {})
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    info = init_distributed(device)
    if len(dataset) < cfg.batch_size * info.world_size:
        raise ConfigError(f"dataset has {len(dataset)} clips, fewer than one batch of {cfg.batch_size} per process")
    if hasattr(dataset, "summary") and info.is_main:
        log.info("training data: %s", dataset.summary())
    torch.manual_seed(cfg.seed)
    model = model.to(device)
    noise_gen = torch.Generator().manual_seed(cfg.seed * 7919 + info.rank)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    progress = _Progress()
    sampler = ResumableSampler(len(dataset), cfg.seed, info.rank, info.world_size)
    ckpt = latest_checkpoint(run_dir) if resume else None
    if ckpt is None:
        _fit_stats(model, dataset, cfg, device, info)
        ema = EMA(model, cfg.ema_decay)
    else:
        ema = _restore(ckpt, model, optimizer, scheduler, progress, noise_gen, cfg, info)
    ddp_model = _wrap_ddp(model, device, info)
    dtype = autocast_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    bar = _progress_bar(cfg, progress.step, info)
    log_file = run_dir / "log.jsonl"
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    window = _Window()
    first_step, first_skipped = progress.step, progress.skipped_steps
    model.train()
    deadline = time.monotonic() + cfg.time_limit if cfg.time_limit > 0 else None
    out_of_time = False
    while progress.step < cfg.steps and not out_of_time:
        for group, wait in _epoch_groups(dataset, sampler, progress, cfg, device):
            window.data_time += wait
            t0 = time.perf_counter()
            loss, grad_norm, ok = _train_step(ddp_model, model, group, optimizer, scaler, dtype, noise_gen, cfg, device, info)
            progress.batch_in_epoch += len(group)
            _after_step(progress, ok, loss, cfg, run_dir)
            if ok:
                scheduler.step()
                ema.update(model, progress.step)
            progress.step += 1
            window.add(loss if ok else float("nan"), cfg.batch_size * cfg.grad_accum * info.world_size,
                       time.perf_counter() - t0 + wait)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{window.last_loss:.4f}", refresh=False)
            if info.is_main and (progress.step % cfg.log_every == 0 or progress.step == cfg.steps):
                _log(log_file, progress, window, scheduler, grad_norm)
            out_of_time = deadline is not None and all_ranks_agree(time.monotonic() > deadline, info)
            if progress.step % cfg.checkpoint_every == 0 or progress.step == cfg.steps or out_of_time:
                _checkpoint(run_dir, model, ema, optimizer, scheduler, progress, noise_gen, cfg, info)
            if info.is_main and cfg.demo_every and progress.step % cfg.demo_every == 0:
                _demo(run_dir, ema.model, progress.step, cfg)
            if progress.step >= cfg.steps or out_of_time:
                break
        else:  # the epoch ran out
            progress.epoch += 1
            progress.batch_in_epoch = 0
    if bar is not None:
        bar.close()
    if info.world_size > 1:
        dist.barrier()
    if out_of_time and info.is_main:
        log.warning("time limit of %.0f s reached at step %d of %d; checkpoint saved (run again to resume)",
                    cfg.time_limit, progress.step, cfg.steps)
    if progress.skipped_steps and info.is_main:
        log.warning("skipped %d steps with a non-finite loss or gradient", progress.skipped_steps)
    if progress.step > first_step and progress.skipped_steps - first_skipped == progress.step - first_step:
        raise TrainingError(f"every step of this run ({progress.step - first_step}) had a non-finite loss or gradient; "
                            "the model did not learn: check the data for NaN/inf clips, try a lower lr or amp=none")
    return ema.model.eval()


def _fit_stats(model: DiffusionModel, dataset: Dataset, cfg: TrainConfig, device: torch.device, info: DistInfo) -> None:
    """Fit the representation's normalisation statistics on the first batches (same on every rank)."""
    if (not getattr(model, "fits_statistics", True) or not hasattr(model.representation, "fit_stats")
            or cfg.fit_stats_batches <= 0):  # a distillation student keeps its teacher's statistics
        return
    g = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(dataset), generator=g)[: cfg.fit_stats_batches * cfg.batch_size].tolist()
    loader = DataLoader(torch.utils.data.Subset(dataset, order), batch_size=cfg.batch_size,
                        num_workers=min(cfg.num_workers, 2), collate_fn=_collate, generator=g)
    with torch.no_grad():
        mels = (b["features"].to(device) if "features" in b else model.representation.log_mel(b["waveform"].to(device))
                for b in loader)
        model.representation.fit_stats(mels)
    if info.is_main:
        log.info("fitted %s statistics on %d clips", type(model.representation).__name__, len(order))


def _collate(batch):
    from .data import collate

    return collate(batch)


def _epoch_groups(dataset: Dataset, sampler: ResumableSampler, progress: _Progress, cfg: TrainConfig,
                  device: torch.device) -> Iterator[tuple[list, float]]:
    """Yield ``(grad_accum batches, seconds waited for them)`` for the rest of the current epoch."""
    sampler.set_position(progress.epoch, progress.batch_in_epoch * cfg.batch_size)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(progress.epoch)
    # the loader's own generator keeps it from consuming the global RNG (resume must not shift it)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        collate_fn=_collate, drop_last=True, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.seed + progress.epoch))
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


def _wrap_ddp(model: DiffusionModel, device: torch.device, info: DistInfo) -> torch.nn.Module:
    if info.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def _train_step(ddp_model, model, group, optimizer, scaler, dtype, noise_gen, cfg, device, info):
    """One optimizer step over ``grad_accum`` micro-batches; returns ``(loss, grad_norm, ok)``."""
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, batch in enumerate(group):
        with torch.no_grad():
            x0 = model.encode_batch(batch)
        sync = i == len(group) - 1 or info.world_size == 1
        ctx = ddp_model.no_sync() if not sync else contextlib.nullcontext()
        with ctx, torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = ddp_model(x0, generator=noise_gen, **model.conditioning_inputs(batch, train=True, generator=noise_gen))
            scaler.scale(loss / len(group)).backward()
        total += loss.detach().float().item()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
    ok = all_ranks_agree(math.isfinite(total) and bool(torch.isfinite(grad_norm)), info)
    if ok:
        scaler.step(optimizer)
    else:
        optimizer.zero_grad(set_to_none=True)
    scaler.update()
    return total / len(group), float(grad_norm), ok


def _after_step(progress: _Progress, ok: bool, loss: float, cfg: TrainConfig, run_dir: Path) -> None:
    if ok:
        progress.bad_steps = 0
        return
    progress.bad_steps += 1
    progress.skipped_steps += 1
    log.warning("step %d: non-finite loss or gradient (%s); step skipped", progress.step, loss)
    if progress.bad_steps >= cfg.max_bad_steps:
        last = latest_checkpoint(run_dir)
        raise TrainingError(
            f"loss or gradient was NaN/inf for {progress.bad_steps} steps in a row at step {progress.step}; "
            f"try a lower lr, grad_clip=1.0, amp=none, or check the data for silent/corrupt clips; "
            f"last good checkpoint: {last or 'none yet'}")


class _Window:
    """Running figures between two log lines."""

    def __init__(self) -> None:
        self.reset()
        self.last_loss = float("nan")

    def reset(self) -> None:
        self.losses, self.samples, self.time, self.data_time = [], 0, 0.0, 0.0

    def add(self, loss: float, samples: int, seconds: float) -> None:
        self.losses.append(loss)
        self.last_loss = loss
        self.samples += samples
        self.time += seconds


def _log(path: Path, progress: _Progress, window: _Window, scheduler, grad_norm: float) -> None:
    finite = [x for x in window.losses if math.isfinite(x)]
    record = {
        "step": progress.step, "epoch": progress.epoch,
        "loss": sum(finite) / len(finite) if finite else None,
        "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
        "samples_per_s": window.samples / window.time if window.time else None,
        "data_wait": window.data_time / window.time if window.time else None,
        "skipped_steps": progress.skipped_steps,
    }
    with open(path, "a") as f:
        f.write(json_line(record))
    window.reset()


def _checkpoint(run_dir, model, ema, optimizer, scheduler, progress, noise_gen, cfg, info) -> None:
    if info.is_main:
        state = {
            "step": progress.step, "epoch": progress.epoch, "batch_in_epoch": progress.batch_in_epoch,
            "skipped_steps": progress.skipped_steps, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng_state(noise_gen),
            "train_config": _jsonable(asdict(cfg)), "world_size": info.world_size,
        }
        write_checkpoint(run_dir, model, ema, state, cfg.keep_last)
    if info.world_size > 1:
        dist.barrier()


def _restore(ckpt: Path, model, optimizer, scheduler, progress, noise_gen, cfg, info) -> EMA:
    load_weights(model, ckpt, "model.safetensors")
    ema = EMA(model, cfg.ema_decay)
    load_weights(ema.model, ckpt, "ema.safetensors")
    state = read_state(ckpt)
    with state_errors(ckpt):
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("world_size", 1) == info.world_size:
            set_rng_state(state["rng"], noise_gen)
        else:
            log.warning("resuming with %d processes instead of %d: RNG streams restart", info.world_size,
                        state["world_size"])
        progress.step, progress.epoch = int(state["step"]), int(state["epoch"])
        progress.batch_in_epoch, progress.skipped_steps = int(state["batch_in_epoch"]), int(state["skipped_steps"])
    if info.is_main:
        log.info("resumed from %s (step %d)", ckpt, progress.step)
    return ema


def _progress_bar(cfg: TrainConfig, start: int, info: DistInfo):
    if not (cfg.progress and info.is_main):
        return None
    import sys

    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(total=cfg.steps, initial=start, desc="training", unit="step", dynamic_ncols=True,
                mininterval=0.1 if interactive else 30.0)


def _demo(run_dir: Path, ema_model: DiffusionModel, step: int, cfg: TrainConfig) -> None:
    """Write a few clips (WAV + JSON + mel PNG) from the EMA model."""
    from .generate import generate

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
