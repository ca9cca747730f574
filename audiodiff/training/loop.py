"""The one training loop every trainer of the library runs on, and the pieces they all need.

A trainer (diffusion :func:`~audiodiff.training.fit`, :func:`~audiodiff.training.train_vocoder`, and
the autoencoder through ``fit``) describes one kind of run as a :class:`Trainer`: its batches, one
optimizer step, its log record and its checkpoint.  :func:`run_loop` drives it: epochs that can start
mid-way (:class:`ResumableSampler`), the count of non-finite steps and the stop with advice, the
progress bar, the ``log.jsonl`` lines, the time limit, and when to checkpoint.  Where a run is lives in
one :class:`TrainState`, which a checkpoint's ``state.pt`` saves; the trainer holds its own parts.

Also here: the warm-up + cosine/constant learning-rate factor, :class:`EMA` of weights, device and
autocast choice, torchrun (DDP) set-up, and the RNG state a resumed run restores.  Checkpoint folders
are written and verified by :mod:`audiodiff.training.checkpoints`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..errors import ConfigError, TrainingError
from ..files import json_line
from .checkpoints import latest_checkpoint

log = logging.getLogger(__name__)


# -- settings ----------------------------------------------------------------------------------
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


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (tuples become lists, anything else unknown its ``str``)."""
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def lr_factor(step: int, steps: int, warmup_steps: int, min_lr_ratio: float = 0.0, schedule: str = "cosine") -> float:
    """Linear warm-up to 1 over ``warmup_steps``, then constant or cosine decay to ``min_lr_ratio`` at ``steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return min_lr_ratio + (1 - min_lr_ratio) * cosine


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


def optimizer_step(optimizer: torch.optim.Optimizer, module: torch.nn.Module, loss: torch.Tensor,
                    grad_clip: float) -> tuple[float, bool]:
    """Backward, clip, and step unless the loss or the gradient is not finite; ``(grad norm, ok)``."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    finite = torch.isfinite(loss.detach()) & torch.isfinite(norm)
    norm_value, ok = torch.stack([norm.float(), finite.float()]).tolist()  # one device sync
    if ok:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm_value, bool(ok)


# -- devices -----------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """``"auto"``: this process's CUDA device (``LOCAL_RANK``) if there is one, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            rank = int(os.environ.get("LOCAL_RANK", 0))
            return torch.device("cuda", rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp``; ``"auto"`` means bf16 on CUDA (if supported), fp32 on CPU
    (where bf16 autocast is slower: benchmarks/results/amp.md)."""
    if amp == "none":
        return None
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


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


# -- RNG state ---------------------------------------------------------------------------------
def rng_state(noise_gen: torch.Generator) -> dict[str, Any]:
    """Every RNG a run draws from (torch, ``noise_gen``, Python, NumPy, CUDA) as tensors and plain values."""
    state = {"torch": torch.get_rng_state(), "noise": noise_gen.get_state(),
             "python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
             "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], noise_gen: torch.Generator) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    noise_gen.set_state(state["noise"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the loop ----------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Where a run is; the first four fields are saved in every checkpoint's ``state.pt``."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # batches this rank consumed in the current epoch
    skipped_steps: int = 0  # all non-finite steps
    bad_steps: int = 0  # consecutive non-finite steps (not saved)

    def saved(self) -> dict[str, int]:
        """The position a checkpoint saves."""
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "skipped_steps": self.skipped_steps}

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Take the position from a checkpoint's ``state.pt`` (a missing key raises ``KeyError``)."""
        self.step, self.epoch = int(saved["step"]), int(saved["epoch"])
        self.batch_in_epoch, self.skipped_steps = int(saved["batch_in_epoch"]), int(saved["skipped_steps"])


class LoopSettings(Protocol):
    """The fields of a trainer's config that :func:`run_loop` reads (each trainer's config has them)."""

    steps: int
    log_every: int
    checkpoint_every: int
    time_limit: float  # seconds of this invocation (0: none)
    max_bad_steps: int
    progress: bool


class Trainer(Protocol):
    """One kind of training run, as :func:`run_loop` drives it."""

    name: str  # names the run in the progress bar and in messages ("training", "vocoder")
    run_dir: Path
    checkpoint_files: tuple[str, ...]  # what a checkpoint of this run must hold besides state.pt, config.json
    advice: str  # what to try when the loss keeps being non-finite
    samples_per_step: int  # clips per optimizer step, all processes together
    batches_per_step: int  # batches of this process per optimizer step

    def batches(self, state: TrainState) -> Iterator[tuple[Any, float]]:
        """``(what one step trains on, seconds waited for it)`` for the rest of ``state.epoch``."""

    def step(self, batch: Any, state: TrainState) -> tuple[dict[str, float], bool]:
        """One optimizer step at ``state.step``: ``(figures for the log, whether it was finite)``."""

    def postfix(self, figures: Mapping[str, float]) -> dict[str, str]:
        """What the progress bar shows after a step."""

    def log_record(self, state: TrainState, window: Window) -> dict[str, Any]:
        """One ``log.jsonl`` line (after ``state.step``) from the figures of the steps since the last."""

    def checkpoint(self, state: TrainState) -> None:
        """Write a checkpoint of the run at ``state.step``."""

    def after_step(self, state: TrainState) -> None:
        """Anything else to do after each step (e.g. demo clips)."""


class Window:
    """The figures of the steps between two log lines."""

    def __init__(self) -> None:
        self.reset()
        self.last: dict[str, float] = {}

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.steps, self.samples, self.time, self.data_time = 0, 0, 0.0, 0.0

    def add(self, figures: Mapping[str, float], samples: int, seconds: float, data_seconds: float) -> None:
        for key, value in figures.items():
            if math.isfinite(value):
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1
        self.last = dict(figures)
        self.steps += 1
        self.samples += samples
        self.time += seconds
        self.data_time += data_seconds

    def mean(self, key: str) -> float | None:
        """The mean of the finite values of ``key``; ``None`` when there were none."""
        return self.sums[key] / self.counts[key] if self.counts.get(key) else None

    def per_second(self, count: float) -> float | None:
        return count / self.time if self.time else None


def run_loop(trainer: Trainer, state: TrainState, cfg: LoopSettings, info: DistInfo | None = None) -> bool:
    """Train from ``state`` to ``cfg.steps`` (or until ``cfg.time_limit``); return whether time ran out.

    After every step: count it if non-finite (and stop with :class:`TrainingError` after
    ``cfg.max_bad_steps`` in a row), log every ``cfg.log_every`` steps, checkpoint every
    ``cfg.checkpoint_every`` steps, at the end, and when time runs out.
    """
    info = info or DistInfo()
    bar = progress_bar(cfg.steps, state.step, trainer.name) if cfg.progress and info.is_main else None
    window = Window()
    first_step, first_skipped = state.step, state.skipped_steps
    deadline = time.monotonic() + cfg.time_limit if cfg.time_limit > 0 else None
    out_of_time = False
    while state.step < cfg.steps and not out_of_time:
        for batch, wait in trainer.batches(state):
            t0 = time.perf_counter()
            figures, ok = trainer.step(batch, state)
            state.batch_in_epoch += trainer.batches_per_step
            _count_bad_step(trainer, state, ok, cfg.max_bad_steps)
            state.step += 1
            window.add(figures, trainer.samples_per_step, time.perf_counter() - t0 + wait, wait)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(trainer.postfix(figures), refresh=False)
            if info.is_main and (state.step % cfg.log_every == 0 or state.step == cfg.steps):
                with open(trainer.run_dir / "log.jsonl", "a") as f:
                    f.write(json_line(trainer.log_record(state, window)))
                window.reset()
            out_of_time = deadline is not None and all_ranks_agree(time.monotonic() > deadline, info)
            if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps or out_of_time:
                trainer.checkpoint(state)
            trainer.after_step(state)
            if state.step >= cfg.steps or out_of_time:
                break
        else:  # the epoch ran out
            state.epoch += 1
            state.batch_in_epoch = 0
    if bar is not None:
        bar.close()
    if info.world_size > 1:
        dist.barrier()
    _report_end(trainer, state, cfg, info, out_of_time, state.step - first_step, state.skipped_steps - first_skipped)
    return out_of_time


def _count_bad_step(trainer: Trainer, state: TrainState, ok: bool, max_bad_steps: int) -> None:
    if ok:
        state.bad_steps = 0
        return
    state.bad_steps += 1
    state.skipped_steps += 1
    log.warning("%s step %d: non-finite loss or gradient; step skipped", trainer.name, state.step)
    if state.bad_steps >= max_bad_steps:
        last = latest_checkpoint(trainer.run_dir, trainer.checkpoint_files)
        raise TrainingError(
            f"{trainer.name} loss or gradient was NaN/inf for {state.bad_steps} steps in a row at step {state.step}; "
            f"{trainer.advice}; last good checkpoint: {last or 'none yet'}")


def _report_end(trainer: Trainer, state: TrainState, cfg: LoopSettings, info: DistInfo, out_of_time: bool,
                steps: int, skipped: int) -> None:
    """Warn of a time limit or skipped steps; fail if every step of this invocation was skipped."""
    if out_of_time and info.is_main:
        log.warning("time limit of %.0f s reached at step %d of %d; checkpoint saved (run again to resume)",
                    cfg.time_limit, state.step, cfg.steps)
    if state.skipped_steps and info.is_main:
        log.warning("skipped %d steps with a non-finite loss or gradient", state.skipped_steps)
    if steps > 0 and skipped == steps:
        raise TrainingError(f"every step of this {trainer.name} run ({steps}) had a non-finite loss or gradient; "
                            f"the model did not learn: {trainer.advice}")


def progress_bar(total: int, start: int, desc: str):
    """A tqdm bar (redrawn every 30 s when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True,
                mininterval=0.1 if sys.stderr.isatty() else 30.0)
