"""Fine-tuning a trained model on a few clips of your own: a LoRA adapter (default) or all weights.

LoRA (Hu et al. 2021) trains small low-rank changes of the net's convolutions, linear layers and
attention projections (:mod:`audiodiff.lora`) while the base model stays frozen; the result is an
adapter folder of a few percent of the model's size that loads onto the base model it names
(``audiodiff.load(base, lora=[folder])``), stacks with other adapters and merges into a plain model.
Full fine-tuning (``full=True``) trains every weight and writes a plain model folder.

New prompts: a label model gains the labels of the data it has not seen (their embedding rows start at
the mean of the known ones and are trained with the adapter); a caption model learns new captions
through its existing encoder.  Both run through :func:`~audiodiff.training.fit` (resume, time limit,
progress, ``log.jsonl``, atomic checkpoints); the model's normalisation statistics are kept.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from . import checks
from .lora import add_labels, add_lora, adapter_size, save_adapter
from .model import DiffusionModel
from .training.diffusion import held_out_loss  # noqa: F401  (part of this module's API: the measure finetune reports)

log = logging.getLogger(__name__)

ADAPTER = "adapter"
#: training settings a fine-tuning run starts from (any TrainConfig field may be changed)
FINETUNE_TRAIN: dict[str, Any] = {"steps": 500, "batch_size": 8, "lr": 1e-3, "warmup_steps": 20, "ema_decay": 0.99,
                                  "checkpoint_every": 100, "log_every": 10, "num_workers": 0, "fit_stats_batches": 0}
#: full fine-tuning moves every weight: a smaller step
FULL_LR = 5e-5


@dataclass(frozen=True)
class FinetuneConfig:
    """What :func:`finetune` does.

    Args:
        rank, alpha: the LoRA rank and scale (``alpha / rank`` multiplies the change; default ``alpha = rank``).
        full: train every weight instead of an adapter.
        new_labels: give a label model the labels of the data it lacks (default True).
        train: :class:`~audiodiff.training.TrainConfig` fields over :data:`FINETUNE_TRAIN`.
    """

    rank: int = 4
    alpha: float | None = None
    full: bool = False
    new_labels: bool = True
    train: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks.integer("lora rank", self.rank, 1, 4096)
        if self.alpha is not None:
            checks.number("lora alpha", self.alpha, 0.0, 1e6)

    def train_config(self) -> dict[str, Any]:
        """The TrainConfig fields of the run."""
        return {**FINETUNE_TRAIN, **({"lr": FULL_LR} if self.full else {}), **dict(self.train)}


class AdapterObjective(nn.Module):
    """A model with a trainable adapter as :func:`~audiodiff.training.fit` trains it: ``forward`` is the model's
    loss, :meth:`save` writes the adapter folder (naming ``base_name`` and the base's checksum)."""

    fits_statistics = False  # the base model's normalisation stays

    def __init__(self, model: DiffusionModel, base_name: str, record: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.model, self.base_name, self.record = model, base_name, dict(record or {})

    @property
    def representation(self) -> nn.Module:
        return self.model.representation

    @property
    def config(self) -> dict[str, Any]:
        return self.model.config

    def encode_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.model.encode_batch(batch)

    def conditioning_inputs(self, batch: Mapping[str, Any], train: bool = False,
                            generator: torch.Generator | None = None) -> dict[str, Any]:
        return self.model.conditioning_inputs(batch, train, generator)

    def demo_prompts(self, n: int) -> list[str] | None:
        return self.model.demo_prompts(n)

    def forward(self, x0: torch.Tensor, generator: torch.Generator | None = None, **cond: Any) -> torch.Tensor:
        return self.model.loss(x0, generator=generator, **cond)

    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """The adapter folder (floats cast to ``dtype`` if given)."""
        return save_adapter(self.model, folder, ADAPTER, self.base_name, {"finetune": self.record}, dtype)


def base_name(model: DiffusionModel) -> str:
    """How an adapter names its base: the shipped name, or the absolute folder it was loaded from."""
    from .hub import list_models

    source = str(getattr(model, "source", None) or model.config.get("name") or "unnamed")
    if source in list_models() or not Path(source).is_dir():
        return source
    return str(Path(source).absolute())


def prepare_model(model: DiffusionModel, labels: list[str], cfg: FinetuneConfig) -> nn.Module:
    """``model`` made ready to train: the new ``labels`` added (label models), an adapter attached (LoRA) or
    every weight trainable (full); returns what :func:`~audiodiff.training.fit` trains."""
    name = base_name(model)
    key = next((k for k, c in model.conditioners.items() if getattr(c, "labels", None) is not None), None)
    new = sorted(set(labels) - set(model.conditioners[key].labels)) if key is not None and cfg.new_labels else []
    if cfg.full:
        model.requires_grad_(True)
        if new:
            add_labels(model, key, new)
        return model
    add_lora(model, cfg.rank, cfg.alpha, ADAPTER)
    if new:
        add_labels(model, key, new, adapter=ADAPTER)
    record = {"rank": cfg.rank, "new_labels": new, "train": cfg.train_config()}
    objective = AdapterObjective(model, name, record)
    size, total = adapter_size(model, ADAPTER), sum(p.numel() for p in model.parameters() if not p.requires_grad)
    log.info("LoRA rank %d: %s trainable parameters (%.1f%% of the model's %s)%s", cfg.rank, f"{size:,}",
             100 * size / max(1, total), f"{total:,}", f"; new labels: {', '.join(new)}" if new else "")
    return objective


def finetune(model: DiffusionModel, dataset: Dataset, run_dir: str | os.PathLike, config: FinetuneConfig | None = None,
             labels: list[str] | None = None) -> Path:
    """Fine-tune ``model`` on ``dataset`` in ``run_dir`` (resumable); return the folder of the result,
    ``run_dir/model``: an adapter folder (LoRA) or a model folder (``full``).  ``labels``: the data's labels
    (a label model gains those it lacks).  A run cut short by its time limit raises :class:`TimeoutError`."""
    from .training import TrainConfig, checkpoint_step, fit, latest_checkpoint

    from .training.folder import fitting_batch

    cfg = config or FinetuneConfig()
    train_cfg = TrainConfig.from_dict(fitting_batch(cfg.train_config(), len(dataset)))
    objective = prepare_model(model, sorted(set(labels or [])), cfg)
    tuned = fit(objective, dataset, run_dir, train_cfg)
    ckpt = latest_checkpoint(Path(run_dir))
    if ckpt is None or checkpoint_step(ckpt) < train_cfg.steps:
        raise TimeoutError(f"time limit reached at step {checkpoint_step(ckpt) if ckpt else 0} of {train_cfg.steps}; "
                           "run again with --resume to go on")
    return tuned.save(Path(run_dir) / "model", dtype=torch.float16)  # fp16, as adapters and shipped models are
