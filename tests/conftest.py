"""Shared fixtures: 2 torch threads, tiny model configs, the real audio in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$AUDIODIFF_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("AUDIODIFF_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real audio not found at {path}")
    return path


TINY_MEL = {"name": "mel", "sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 32}


def tiny_config(net: str = "unet1d", **overrides) -> dict:
    """A model config small enough to run in milliseconds."""
    nets = {
        "unet1d": {"name": "unet1d", "channels": 16, "channel_mults": [1, 2], "num_res_blocks": 1,
                   "attention_levels": [1], "norm_groups": 4},
        "unet2d": {"name": "unet2d", "channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
                   "attention_levels": [1], "norm_groups": 4},
    }
    cfg = {"representation": dict(TINY_MEL), "net": nets[net], "seconds": 0.25, "steps": 4}
    cfg.update(overrides)
    return cfg


def perturb(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Give zero-initialised layers random weights so outputs depend on every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return module


@pytest.fixture
def tiny_model():
    from audiodiff import DiffusionModel

    torch.manual_seed(0)
    return perturb(DiffusionModel(tiny_config())).eval()
