"""Tiny deterministic training setups shared by the training tests (also run as a script)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from conftest import tiny_config


class ToneDataset(Dataset):
    """Synthetic clips: a tone whose pitch depends on the index, with an epoch-dependent phase."""

    def __init__(self, n: int = 32, samples: int = 2000, sample_rate: int = 8000):
        self.n, self.samples, self.sample_rate, self.epoch = n, samples, sample_rate, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        t = torch.arange(self.samples) / self.sample_rate
        freq = 200 + 50 * (i % 12)
        wave = 0.5 * torch.sin(2 * math.pi * freq * t + 0.3 * self.epoch)
        return {"waveform": wave[None], "caption": f"tone {i % 12}", "label": str(i % 12), "index": i}


def train(run_dir: str, steps: int, **overrides) -> None:
    from audiodiff import DiffusionModel
    from audiodiff.training import TrainConfig, fit

    torch.manual_seed(0)
    model = DiffusionModel(tiny_config(seconds=0.25))
    settings = dict(steps=steps, batch_size=4, checkpoint_every=2, log_every=1, warmup_steps=2,
                    num_workers=0, progress=False, keep_last=2, fit_stats_batches=2)
    settings.update(overrides)
    fit(model, ToneDataset(), run_dir, TrainConfig(**settings))


def wait_for_checkpoint(run, proc, step: int, timeout: float = 240) -> None:
    """Wait until ``run``'s ``latest`` checkpoint is at ``step`` or later (training in ``proc``)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pointer = Path(run) / "checkpoints" / "latest"
        if pointer.is_file() and int(pointer.read_text().split("_")[1]) >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared in time")


def losses(run_dir) -> dict[int, float]:
    """Step -> loss from log.jsonl (the last record of each step wins)."""
    out = {}
    with open(f"{run_dir}/log.jsonl") as f:
        for line in f:
            record = json.loads(line)
            out[record["step"]] = record["loss"]
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    train(sys.argv[1], int(sys.argv[2]), **extra)
