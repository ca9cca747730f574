"""Distillation: few-step students of a diffusion model, each round trained through :func:`~audiodiff.training.fit`.

Two methods, chained by :func:`distill`:

- **Guidance distillation** (Meng et al. 2023, sec. 4.1, stage one).  Classifier-free guidance costs
  two net passes per step.  The student is the teacher's net plus an embedding of the guidance scale
  ``w`` (:class:`~audiodiff.nets.blocks.NoiseEmbedding`), trained at the teacher's training noise levels
  to match the guided denoiser ``D_u + w (D_c - D_u)`` for ``w`` drawn uniformly from a range.  One pass
  then stands for two, at any ``w`` in the range; every sampler works with it unchanged.
- **Progressive distillation** (Salimans & Ho 2022, alg. 2).  A student walking ``N`` DDIM steps is
  trained so that each of its steps lands where two of its teacher's land.  The teacher walks a ladder
  of ``2N`` steps; the student's ladder is every other rung of it.  From ``x`` at rung ``2i`` the teacher
  takes two deterministic steps to ``x''`` at rung ``2i + 2``, and the student's target is the clean
  estimate ``x0~`` whose one DDIM step lands there (eq. 8 in sigma space):

      x'' = x0~ + (sigma''/sigma) (x - x0~)   =>   x0~ = (x'' - (sigma''/sigma) x) / (1 - sigma''/sigma)

  (``x0~ = x''`` when ``sigma'' = 0``).  Rounds halve the steps: 32 -> 16 -> 8 -> 4 -> 2 -> 1.

A student is an ordinary model folder: its ``config.json`` records the distillation (teacher, method,
rounds, guidance range) and carries ``sigmas``, the ladder it was trained for, which is its default.
Every round is its own resumable run folder under the work folder; running :func:`distill` again goes
on where it stopped.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from . import checks
from .conditioning import keep_mask
from .errors import ConfigError
from .model import DiffusionModel

log = logging.getLogger(__name__)

METHODS = ("guidance", "progressive")


@dataclass(frozen=True)
class DistillConfig:
    """What :func:`distill` does.

    Args:
        steps: the final student's sampler steps (a power of two times fewer than ``start_steps``).
        start_steps: the steps of the ladder the first progressive round's teacher walks.
        spacing, sigma_min: that ladder (default: the teacher's own spacing and ``sigma_min``).
        guidance_range: the guidance scales a student learns, drawn uniformly (default ``(1, 2 w)``
            with ``w`` the teacher's default scale).
        methods: ``"guidance"`` (conditional teachers only) and/or ``"progressive"``, in that order.
        train: :class:`~audiodiff.training.TrainConfig` fields for every round (``steps`` per round).
        time_limit: seconds for the whole call (0: none); a round cut short resumes on the next call.
    """

    steps: int = 4
    start_steps: int = 32
    spacing: str | None = None
    sigma_min: float | None = None
    guidance_range: tuple[float, float] | None = None
    methods: tuple[str, ...] = METHODS
    train: Mapping[str, Any] = field(default_factory=dict)
    time_limit: float = 0.0

    def __post_init__(self) -> None:
        checks.integer("distill steps", self.steps, 1)
        checks.integer("distill start_steps", self.start_steps, self.steps)
        rounds = math.log2(self.start_steps / self.steps)
        if "progressive" in self.methods and rounds != int(rounds):
            raise ConfigError(f"start_steps ({self.start_steps}) must be steps ({self.steps}) times a power of two")
        if not self.methods or any(m not in METHODS for m in self.methods) or list(self.methods) != sorted(
                set(self.methods), key=METHODS.index):
            raise ConfigError(f"distill methods must be some of {', '.join(METHODS)}, in that order; got {self.methods}")
        if self.guidance_range is not None:
            lo, hi = (checks.number("guidance_range", v, 0.0) for v in self.guidance_range)
            if lo > hi:
                raise ConfigError(f"guidance_range must be (low, high) with low <= high, got {self.guidance_range}")
        checks.number("distill time_limit", self.time_limit, 0.0)


def guided_target(teacher: DiffusionModel, x: torch.Tensor, sigma: torch.Tensor, scale: torch.Tensor,
                  inputs: Mapping[str, torch.Tensor], null: Mapping[str, torch.Tensor] | None) -> torch.Tensor:
    """The teacher's denoiser guided at per-example scales ``scale`` ``(B,)``: one pass for a teacher that
    takes the scale (or an unconditional one), else ``D_u + w (D_c - D_u)`` from one paired pass."""
    if teacher.takes_guidance or null is None:
        return teacher.denoise(x, sigma, guidance=scale, **inputs)
    both = teacher.paired_inputs(dict(inputs), dict(null))
    cond, uncond = teacher.denoise(torch.cat([x, x]), torch.cat([sigma, sigma]), **both).chunk(2)
    return uncond + scale.reshape(-1, *([1] * (x.dim() - 1))) * (cond - uncond)


def progressive_target(teacher_denoise, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """The clean estimate whose one DDIM step from ``x`` at ``sigmas[:, 0]`` lands where two teacher DDIM
    steps (via ``sigmas[:, 1]`` to ``sigmas[:, 2]``) land (Salimans & Ho 2022, alg. 2); ``sigmas`` ``(B, 3)``."""
    shape = (-1, *([1] * (x.dim() - 1)))
    s0, s1, s2 = (sigmas[:, k].reshape(shape) for k in range(3))
    d = teacher_denoise(x, sigmas[:, 0])
    x1 = d + s1 / s0 * (x - d)  # DDIM (eta 0) = Euler in sigma space
    d = teacher_denoise(x1, sigmas[:, 1])
    x2 = d + s2 / s1 * (x1 - d)
    ratio = s2 / s0
    return (x2 - ratio * x) / (1 - ratio)


def truncated_snr(sigma: torch.Tensor) -> torch.Tensor:
    """``max(SNR, 1)`` with ``SNR = 1 / sigma^2``: the weight of the clean-estimate error (Salimans & Ho 2022,
    sec. 4).  Unlike min-SNR it does not vanish at the top of the ladder, where a few-step student's
    first step is decided."""
    return sigma.pow(-2).clamp(min=1.0)


class Distillation(nn.Module):
    """One distillation round as :func:`~audiodiff.training.fit` trains it: ``forward`` is the student's loss.

    The teacher is frozen and kept outside the module tree (not in checkpoints, not optimised).  Each
    example draws a guidance scale from ``guidance_range`` (for conditional models) and is dropped to the
    null prompt with the teacher's ``cond_dropout``.  With ``ladder`` (``(2N + 1,)`` sigmas, the teacher's
    ``2N`` steps) the round is progressive; without, it is guidance distillation at the teacher's
    training noise levels.  The loss is the :func:`truncated_snr`-weighted squared error of the
    student's clean estimate.
    """

    fits_statistics = False  # the student keeps its teacher's normalisation

    def __init__(self, student: DiffusionModel, teacher: DiffusionModel, guidance_range: tuple[float, float],
                 ladder: torch.Tensor | None = None) -> None:
        super().__init__()
        self.student = student
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False)
        self.guidance_range = tuple(float(v) for v in guidance_range)
        self.register_buffer("ladder", ladder if ladder is not None else torch.empty(0), persistent=False)

    @property
    def representation(self) -> nn.Module:
        return self.student.representation

    @property
    def config(self) -> dict[str, Any]:
        return self.student.config

    def encode_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.student.encode_batch(batch)

    def conditioning_inputs(self, batch: Mapping[str, Any], train: bool = False,
                            generator: torch.Generator | None = None) -> dict[str, Any]:
        """The student's and the teacher's net inputs for the batch, with the same examples dropped."""
        if not self.student.is_conditional:
            return {}
        keep = keep_mask(len(batch["index"]), float(self.teacher.config["cond_dropout"]) if train else 0.0, generator)
        teacher = self.teacher.to(self.student.device)
        with torch.no_grad():
            teacher_inputs = teacher.batch_inputs(batch, keep)
            null = None if teacher.takes_guidance else teacher.batch_inputs(batch, [False] * len(keep))
        return {"inputs": self.student.batch_inputs(batch, keep), "teacher_inputs": teacher_inputs, "null": null}

    def forward(self, x0: torch.Tensor, generator: torch.Generator | None = None, inputs: Mapping | None = None,
                teacher_inputs: Mapping | None = None, null: Mapping | None = None) -> torch.Tensor:
        """Scalar loss of the student against the teacher's (guided) target on clean samples ``x0``."""
        teacher, n = self.teacher, x0.shape[0]
        lo, hi = self.guidance_range
        scale = (lo + (hi - lo) * torch.rand(n, generator=generator)).to(x0.device)
        with torch.no_grad():
            if self.ladder.numel():
                rung = 2 * torch.randint((len(self.ladder) - 1) // 2, (n,), generator=generator).to(x0.device)
                sigmas = torch.stack([self.ladder[rung], self.ladder[rung + 1], self.ladder[rung + 2]], dim=1)  # (B, 3)
                sigma = sigmas[:, 0]
                noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
                x = x0 + sigma.reshape(-1, *([1] * (x0.dim() - 1))) * noise
                target = progressive_target(
                    lambda y, s: guided_target(teacher, y, s, scale, teacher_inputs or {}, null), x, sigmas)
            else:
                sigma, _, x = teacher.noised(x0, generator)
                target = guided_target(teacher, x, sigma, scale, teacher_inputs or {}, null)
        denoised = self.student.denoise(x, sigma, scale if self.student.takes_guidance else None, **(inputs or {}))
        return (truncated_snr(sigma) * (denoised - target).pow(2).flatten(1).mean(1)).mean()

    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        return self.student.save(folder, dtype)


def make_student(teacher: DiffusionModel, record: Mapping[str, Any], ladder: torch.Tensor | None = None) -> DiffusionModel:
    """A student initialised from ``teacher``: the same net (with a guidance input for a conditional
    teacher), ``distillation`` = ``record``, and for a progressive round the ``sigmas`` every other rung of
    ``ladder`` and the DDIM sampler that walks them."""
    config = copy.deepcopy(teacher.config)
    config.pop("audiodiff_version", None)
    if teacher.is_conditional:
        config["net"]["guidance_input"] = True
    if ladder is not None:
        config["sigmas"] = [float(s) for s in ladder[::2]]
        config["steps"] = len(config["sigmas"]) - 1
        config["sampler"] = {"name": "ddim", "eta": 0.0}
    config["distillation"] = dict(record)
    student = DiffusionModel(config).to(teacher.device)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any(".guidance_mlp." not in k for k in missing):
        raise ConfigError(f"cannot initialise the student from its teacher: missing {missing[:2]}, unexpected {unexpected[:2]}")
    student.set_vocoder(teacher.trained_vocoder)
    return student


def plan(teacher: DiffusionModel, cfg: DistillConfig) -> list[tuple[str, int | None]]:
    """The rounds ``[(name, student_steps), ...]``: ``("guidance", None)`` then ``("steps-16", 16)`` ..."""
    rounds: list[tuple[str, int | None]] = []
    if "guidance" in cfg.methods:
        if not teacher.is_conditional:
            raise ConfigError("guidance distillation needs a conditional model (this one takes no prompt)")
        if not teacher.can_run_unconditionally:
            raise ConfigError("guidance distillation needs a model trained with condition dropout (cond_dropout > 0)")
        if not teacher.takes_guidance:
            rounds.append(("guidance", None))
    if "progressive" in cfg.methods:
        steps = cfg.start_steps // 2
        while steps >= cfg.steps:
            rounds.append((f"steps-{steps}", steps))
            steps //= 2
    return rounds


def distill(teacher: DiffusionModel, dataset, work_dir: str | os.PathLike, config: DistillConfig | Mapping | None = None,
            out: str | os.PathLike | None = None) -> DiffusionModel:
    """Distil ``teacher`` on ``dataset`` (the items it was trained on) into a few-step student.

    Each round trains in ``work_dir/<round>`` (resumable) and saves its EMA student to
    ``work_dir/<round>/model``; the last one is also written to ``out`` if given.  Returns the student,
    or raises :class:`TimeoutError` (after saving a checkpoint) when ``time_limit`` ran out first.
    """
    from .training import TrainConfig, checkpoint_step, fit, latest_checkpoint

    cfg = config if isinstance(config, DistillConfig) else DistillConfig(**dict(config or {}))
    work_dir = Path(work_dir)
    w = float(teacher.config["guidance_scale"])
    guidance_range = cfg.guidance_range or (1.0, max(1.0, 2 * w))
    rounds = plan(teacher, cfg)
    if not rounds:
        raise ConfigError("nothing to distil: the model already takes the guidance scale and no progressive round was asked")
    deadline = time.monotonic() + cfg.time_limit if cfg.time_limit else None
    ladder = None
    history = list(teacher.config.get("distillation", {}).get("rounds", []))
    source = str(getattr(teacher, "source", None) or teacher.config.get("name") or "unnamed")
    for name, steps in rounds:
        if steps is not None:
            ladder = _ladder(teacher, cfg) if ladder is None else ladder[::2]
        run_dir = work_dir / name
        history.append({"round": name, "steps": steps})
        record = {"teacher": source, "methods": list(cfg.methods), "rounds": list(history),
                  "guidance_range": list(guidance_range), "steps": int(teacher.config["steps"]) if steps is None else steps}
        student = make_student(teacher, record, ladder)
        train = dict(cfg.train)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"time limit reached before round {name}; run again to go on")
            train["time_limit"] = left
        train_cfg = TrainConfig.from_dict(train)
        log.info("distillation round %s: %s", name, "guidance" if steps is None else f"{2 * steps} -> {steps} steps")
        fit(Distillation(student, teacher, guidance_range, ladder), dataset, run_dir, train_cfg)
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None or checkpoint_step(ckpt) < train_cfg.steps:
            raise TimeoutError(f"time limit reached in round {name}; run again to resume it")
        teacher = DiffusionModel.from_folder(run_dir / "model").to(student.device)
        teacher.source = source
    if out is not None:
        teacher.save(out)
    return teacher


def _ladder(teacher: DiffusionModel, cfg: DistillConfig) -> torch.Tensor:
    from .sampling import inference_sigmas

    return inference_sigmas(teacher, cfg.start_steps, cfg.spacing or teacher.config["spacing"],
                            cfg.sigma_min if cfg.sigma_min is not None else teacher.config.get("sigma_min"))


def describe(config: DistillConfig) -> dict[str, Any]:
    """The config as JSON-able values (for logs and results)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
