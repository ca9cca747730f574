"""Train a model from a folder of your own sounds, without Hydra: presets, what is inferred, and the run.

:func:`train_from_data` reads the clips (:func:`audiodiff.data.sources.read_data`), picks a preset
(``speech``: 8 kHz, 64 mel bins, 1 s; ``music``: 16 kHz, 80 mel bins, 1 s; ``sfx``: 16 kHz, 80 mel bins,
2 s; ``tiny``: a small fast model for trying things out) or infers one from the files, chooses the
conditioning from the data (labels from subfolders: a label embedding; captions: a character-level
text encoder trained with the model; neither: unconditional), writes the manifest it trains on into the
run folder, trains with :func:`~audiodiff.training.fit` and measures the held-out loss at the end.  The
presets carry the recipes' model and training settings (``recipes/<domain>/conf``).
"""

from __future__ import annotations

import copy
import logging
import os
import statistics
from pathlib import Path
from typing import Any, Mapping

from ..data import AudioDataset, ManifestItem, read_manifest, write_manifest
from ..errors import ConfigError

log = logging.getLogger(__name__)

_NET = {"name": "unet1d", "channels": 64, "channel_mults": [1, 2, 2], "num_res_blocks": 2, "attention_levels": [2],
        "num_heads": 4, "dropout": 0.0}
_MEL16K = {"name": "mel", "sample_rate": 16000, "n_fft": 1024, "hop_length": 256, "n_mels": 80, "f_min": 30.0,
           "f_max": 8000.0}
_TRAIN = {"steps": 8000, "batch_size": 32, "lr": 3e-4, "warmup_steps": 200, "checkpoint_every": 250, "keep_last": 2,
          "log_every": 50, "num_workers": 1}
PRESETS: dict[str, dict[str, Any]] = {
    "speech": {"model": {"representation": {"name": "mel", "sample_rate": 8000, "n_fft": 512, "hop_length": 128,
                                            "n_mels": 64, "f_min": 20.0, "f_max": 4000.0},
                         "net": _NET, "seconds": 1.0, "steps": 25, "sampler": {"name": "dpmpp_2m"}},
               "train": {**_TRAIN, "steps": 10000}, "dim": 128},
    "music": {"model": {"representation": _MEL16K, "net": _NET, "seconds": 1.0, "steps": 25,
                        "sampler": {"name": "dpmpp_2m"}}, "train": _TRAIN, "dim": 128},
    "sfx": {"model": {"representation": _MEL16K, "net": _NET, "seconds": 2.0, "steps": 25,
                      "sampler": {"name": "dpmpp_2m"}}, "train": _TRAIN, "dim": 128},
    "tiny": {"model": {"representation": {"name": "mel", "sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 32},
                       "net": {"name": "unet1d", "channels": 16, "channel_mults": [1, 2], "num_res_blocks": 1,
                               "attention_levels": [1], "num_heads": 2, "norm_groups": 4},
                       "seconds": 0.5, "steps": 8, "sampler": {"name": "dpmpp_2m"}},
             "train": {"steps": 200, "batch_size": 4, "lr": 1e-3, "warmup_steps": 10, "checkpoint_every": 50,
                       "keep_last": 2, "log_every": 10, "num_workers": 0}, "dim": 16},
}
#: how every preset prepares clips (the recipes' data settings)
DATA_SETTINGS = {"crop": "start", "trim_silence_db": 40.0, "loudness_normalize": -20.0}
MANIFEST = "manifest.jsonl"


def infer_preset(items: list[ManifestItem]) -> tuple[str, str]:
    """``(preset, why)`` from the files: 11 kHz or less is ``speech``; clips of 1.5 s or more ``sfx``; else ``music``."""
    rate = statistics.median(i.sample_rate for i in items)
    length = statistics.median(i.duration for i in items)
    if rate <= 11025:
        return "speech", f"median sample rate {rate:g} Hz <= 11025"
    if length >= 1.5:
        return "sfx", f"median length {length:.2f} s >= 1.5 s"
    return "music", f"median length {length:.2f} s < 1.5 s at {rate:g} Hz"


def conditioning_for(items: list[ManifestItem], dim: int) -> tuple[dict[str, Any], str]:
    """``(conditioning config, description)``: labels when every clip has one, else captions when every clip
    has one, else none."""
    labels = sorted({i.label for i in items if i.label})
    if labels and all(i.label for i in items):
        return {"prompt": {"name": "label", "labels": labels, "dim": dim, "route": "global", "source": "label"}}, \
            f"label-conditioned ({len(labels)} labels from the subfolders)"
    captions = list(dict.fromkeys(i.caption for i in items if i.caption))
    if captions and all(i.caption for i in items):
        return {"prompt": {"name": "tokens", "dim": dim, "layers": 2, "heads": 4, "max_length": 48, "route": "cross",
                           "source": "caption", "examples": captions[:5]}}, \
            f"caption-conditioned ({len(captions)} distinct captions, a text encoder trained with the model)"
    return {}, "unconditional (no labels or captions)"


def model_config(items: list[ManifestItem], preset: str, name: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """The model config for ``items`` under ``preset`` and a list of what was inferred (for the user)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    spec = copy.deepcopy(PRESETS[preset])
    config = spec["model"]
    config["conditioning"], how = conditioning_for(items, spec["dim"])
    config["name"] = name or "mine"
    rep = config["representation"]
    notes = [f"preset {preset}: {rep['sample_rate']} Hz, {rep['n_mels']} mel bins, hop {rep['hop_length']}, "
             f"{config['seconds']:g} s clips", f"model: {how}"]
    return config, notes


def save_manifest(items: list[ManifestItem], run_dir: Path) -> Path:
    """The manifest the run trains on, written once (a resumed run reads it back, so the split stays)."""
    path = run_dir / MANIFEST
    if not path.is_file():
        write_manifest(items, path, relative=False)
    return path


def dataset(items: list[ManifestItem], model: Any, seed: int = 0) -> AudioDataset:
    """The clips at the model's rate and window, prepared as the recipes do."""
    return AudioDataset(items, sample_rate=model.sample_rate, seconds=model.seconds, seed=seed, **DATA_SETTINGS)


def train_from_data(data: str | os.PathLike, run_dir: str | os.PathLike, preset: str | None = None,
                    train: Mapping[str, Any] | None = None, resume: bool = False, name: str | None = None) -> dict[str, Any]:
    """Train a new model on the clips at ``data`` in ``run_dir``; return a summary (model folder, held-out loss,
    what was inferred).  ``train``: :class:`~audiodiff.training.TrainConfig` fields over the preset's.
    ``run_dir`` must be new unless ``resume``.  A run cut short by its time limit raises :class:`TimeoutError`."""
    import torch

    from ..data.sources import describe, read_data
    from ..model import DiffusionModel
    from .checkpoints import checkpoint_step, latest_checkpoint
    from .diffusion import TrainConfig, fit, held_out_loss

    run_dir = Path(run_dir)
    manifest = run_dir / MANIFEST
    if manifest.is_file() and not resume:
        raise ConfigError(f"{run_dir} holds a run already; pass --resume to go on with it or choose a new --out")
    items = read_manifest(manifest) if manifest.is_file() else read_data(data)
    notes = [f"data: {describe(items)}"]
    if preset is None:
        preset, why = infer_preset(items)
        notes.append(f"inferred preset {preset} ({why}; choose with --preset)")
    config, more = model_config(items, preset, name)
    notes += more
    train_items = [i for i in items if i.split != "test"] or items
    test_items = [i for i in items if i.split == "test"]
    cfg = TrainConfig.from_dict(fitting_batch({**PRESETS[preset]["train"], **dict(train or {})}, len(train_items)))
    for line in notes:
        log.info("%s", line)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_manifest(items, run_dir)
    torch.manual_seed(cfg.seed)
    model = DiffusionModel(config)
    ema = fit(model, dataset(train_items, model, cfg.seed), run_dir, cfg)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None or checkpoint_step(ckpt) < cfg.steps:
        raise TimeoutError(f"time limit reached at step {checkpoint_step(ckpt) if ckpt else 0} of {cfg.steps}; "
                           "run again with --resume to go on")
    summary: dict[str, Any] = {"model": str(run_dir / "model"), "preset": preset, "notes": notes,
                               "train_clips": len(train_items), "test_clips": len(test_items)}
    if test_items:
        summary["held_out_loss"] = held_out_loss(ema, dataset(test_items, ema))
    return summary


def fitting_batch(train: Mapping[str, Any], clips: int) -> dict[str, Any]:
    """``train`` with ``batch_size`` (default 16) cut to ``clips`` when there are fewer clips than one batch."""
    batch = int(train.get("batch_size", 16))
    if clips < batch:
        log.info("batch size %d cut to the %d clips there are", batch, clips)
    return {**train, "batch_size": max(1, min(batch, clips))}
