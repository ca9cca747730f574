"""An on-disk cache of features (e.g. log-mels), keyed by the representation's settings.

``FeatureCache(dataset, representation, folder)`` wraps an :class:`AudioDataset` whose crops are
deterministic (``"start"`` or ``"center"``) and returns ``{"features": (n_mels, frames), ...}``
instead of the waveform.  Each clip's features are computed once, on the CPU of the data-loading
worker, and written as safetensors under ``folder/<settings hash>/``; the hash covers the
representation's settings and the dataset's clip parameters, so changing any of them never reads
stale features.  The training loop accepts batches with either ``"waveform"`` or ``"features"``.

Whether it pays: on the recipes' settings the mel front end is a few percent of a training step
(benchmarks/results/training.md), so computing mels in batches on the device is the default.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from ..checkpoint import atomic_write_bytes, tensors_to_bytes
from ..errors import ConfigError
from .dataset import AudioDataset

DETERMINISTIC_CROPS = ("start", "center")


def cache_key(dataset: AudioDataset, representation: Any) -> str:
    """Hash of everything that changes a clip's features."""
    params = {
        "representation": representation.settings(),
        "sample_rate": dataset.sample_rate, "num_samples": dataset.num_samples, "crop": dataset.crop,
        "mono": dataset.mono, "loudness": dataset.loudness_normalize, "trim": dataset.trim_silence_db,
    }
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


class FeatureCache(Dataset):
    """Cached ``representation.log_mel`` features of an :class:`AudioDataset`'s clips."""

    def __init__(self, dataset: AudioDataset, representation: Any, folder: str | os.PathLike) -> None:
        if dataset.crop not in DETERMINISTIC_CROPS:
            raise ConfigError(f"a feature cache needs a deterministic crop ({' or '.join(DETERMINISTIC_CROPS)}), "
                              f"not {dataset.crop!r}: random crops differ every epoch")
        if not hasattr(representation, "log_mel"):
            raise ConfigError(f"{type(representation).__name__} has no log_mel front end to cache")
        self.dataset = dataset
        self.representation = representation.to("cpu")
        self.folder = Path(folder) / cache_key(dataset, representation)
        self.folder.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.dataset)

    def _path(self, index: int) -> Path:
        item = self.dataset.items[index]
        stat = os.stat(item.path)
        name = hashlib.sha1(f"{item.path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:20]
        return self.folder / f"{name}.safetensors"

    def __getitem__(self, index: int) -> dict:
        """``{"features": (n_mels, frames) float32, "caption", "label", "index"}``."""
        path = self._path(index)
        if path.is_file():
            features = load_file(str(path))["features"]
            meta = self.dataset.items[index]
            return {"features": features, "caption": meta.caption or "", "label": meta.label or "", "index": index}
        item = self.dataset[index]
        with torch.no_grad():
            features = self.representation.log_mel(item.pop("waveform")[None])[0]  # (1, C, S) -> (n_mels, frames)
        atomic_write_bytes(path, tensors_to_bytes({"features": features}))
        return {"features": features, **item}

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def summary(self) -> str:
        cached = sum(1 for _ in self.folder.glob("*.safetensors"))
        return f"{self.dataset.summary()}; {cached} cached in {self.folder}"
