"""Training behaves exactly as before the move of the loops into ``audiodiff/training/`` (issue #18).

The expected values below were produced by the code before the move (``audiodiff/train.py`` and
``audiodiff/vocoders/training.py``, ``audiodiff/autoencoder_training.py`` at commit 0bc909e) on one CPU
thread: a short diffusion run that stops on its time limit after one step and is resumed, and a short
GAN vocoder run and autoencoder run likewise.  Each
run's per-step losses and a sha256 of every file of its last checkpoint (tensors by name, dtype,
shape and bytes; ``state.pt`` and ``config.json`` walked in key order) must stay identical.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_MEL, tiny_config
from train_helpers import ToneDataset

from audiodiff.checkpoint import read_tensors


def _walk(value: Any, digest: "hashlib._Hash") -> None:
    """Feed ``value`` (nested dicts, lists, tensors, plain values) into ``digest`` in a fixed order."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(f"K{key!r}".encode())
            _walk(value[key], digest)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _walk(item, digest)
    else:
        digest.update(f"V{value!r}".encode())


def _sha(value: Any) -> str:
    digest = hashlib.sha256()
    _walk(value, digest)
    return digest.hexdigest()[:16]


def _checkpoint_digests(ckpt: Path) -> dict[str, str]:
    out = {}
    for path in sorted(ckpt.iterdir()):
        if path.suffix == ".safetensors":
            out[path.name] = _sha(read_tensors(ckpt, path.name))
        elif path.name == "state.pt":
            out[path.name] = _sha(torch.load(path, map_location="cpu", weights_only=True))
    config = json.loads((ckpt / "config.json").read_text())
    config.pop("audiodiff_version", None)
    out["config.json"] = _sha(config)
    return out


def _records(run_dir: Path, keys: tuple[str, ...]) -> list[list]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [[r["step"], *(r[k] for k in keys)] for r in rows]


def _same(actual: list[list], expected: list[list]) -> bool:
    """Exact equality, NaN-free values compared as floats (``None`` stays ``None``)."""
    return len(actual) == len(expected) and all(
        len(a) == len(e) and all((x is None and y is None) or (x is not None and y is not None and
                                                               (x == y or (math.isnan(x) and math.isnan(y))))
                                 for x, y in zip(a, e)) for a, e in zip(actual, expected))


@pytest.fixture
def one_thread():
    """One thread, and the global RNGs a checkpoint saves in a known state (tests before may have drawn)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    random.seed(0)
    np.random.seed(0)
    yield
    torch.set_num_threads(threads)


# -- diffusion ---------------------------------------------------------------------------------------
DIFFUSION_LOSSES = [
    [1, 1.0249552130699158, 0.0002, 0.20115934312343597, 0, 0],
    [2, 1.0624148845672607, 0.0002, 0.3317298889160156, 0, 0],
    [3, 1.094102919101715, 0.000155, 0.24766120314598083, 1, 0],
    [4, 0.9633919596672058, 6.500000000000002e-05, 0.2927404046058655, 1, 0],
    [5, 1.0616966485977173, 2e-05, 0.3396703898906708, 2, 0],
]
DIFFUSION_CHECKPOINT = {'ema.safetensors': 'ee117459bee5adc1', 'model.safetensors': 'bb1221a36df3a8a1', 'state.pt': '586c9ab21dcf11b4', 'config.json': '9a2e22071d87d9c5', 'model/': 'ee117459bee5adc1'}


def _diffusion_run(run_dir: Path) -> None:
    from audiodiff import DiffusionModel
    from audiodiff.training import TrainConfig, fit

    settings = dict(steps=5, batch_size=4, grad_accum=2, checkpoint_every=2, log_every=1, warmup_steps=2,
                    num_workers=0, progress=False, keep_last=2, fit_stats_batches=2)
    for time_limit in (1e-9, 0.0):  # stop after one step on the time limit, then resume to the end
        torch.manual_seed(0)
        model = DiffusionModel(tiny_config(seconds=0.25))
        fit(model, ToneDataset(n=20), run_dir, TrainConfig(**settings, time_limit=time_limit))


def test_diffusion_fit_with_a_resume_is_unchanged(tmp_path, one_thread):
    run = tmp_path / "run"
    _diffusion_run(run)
    losses = _records(run, ("loss", "lr", "grad_norm", "epoch", "skipped_steps"))
    digests = _checkpoint_digests(run / "checkpoints" / "step_0000005")
    digests["model/"] = _sha(read_tensors(run / "model"))
    print("DIFFUSION_LOSSES =", losses)
    print("DIFFUSION_CHECKPOINT =", digests)
    assert [r[0] for r in losses] == [1, 2, 3, 4, 5]
    assert _same(losses, DIFFUSION_LOSSES), losses
    assert digests == DIFFUSION_CHECKPOINT


# -- vocoder -----------------------------------------------------------------------------------------
VOCODER_LOSSES = [
    [1, 152.67628479003906, 3.291127920150757, 4.5755295753479, None, None, None, 160.66998291015625, None, 0.002],
    [2, 150.8009033203125, 3.2433650493621826, 4.849468231201172, None, None, None, 129.31703186035156, None, 0.0017217514421272201],
    [3, 144.9292755126953, 3.083103895187378, 4.592591762542725, 1.1775375604629517, 0.20973874628543854, 2.2001819610595703, 143.80291748046875, 0.006443008314818144, 0.0010500000000000002],
    [4, 127.88580322265625, 2.718965530395508, 3.9217689037323, 1.1772502660751343, 0.2166653275489807, 2.2002029418945312, 136.04530334472656, 0.007805958390235901, 0.0003782485578727799],
]
VOCODER_CHECKPOINT = {'discriminators.safetensors': '4ae471e4bff17b9f', 'generator.safetensors': '144819932f3a937c', 'state.pt': '01e0fbdb962ea8b7', 'config.json': '32519cdfa5eae466', 'vocoder/': '144819932f3a937c'}


def _vocoder_run(run_dir: Path) -> None:
    from audiodiff.audio.mel import Mel
    from audiodiff.vocoders import Vocos
    from audiodiff.training.vocoder import VocoderTrainConfig, train_vocoder

    settings = dict(steps=4, batch_size=4, segment_seconds=0.1, lr=2e-3, gan_start=2, disc_channels=2,
                    checkpoint_every=2, keep_last=2, log_every=1, num_workers=0, progress=False)
    mel = Mel(**{k: v for k, v in TINY_MEL.items() if k != "name"}).settings()
    for time_limit in (1e-9, 0.0):
        torch.manual_seed(1)
        vocoder = Vocos(dim=16, intermediate_dim=32, num_layers=1, **mel)
        train_vocoder(vocoder, ToneDataset(n=6, samples=1600), run_dir, VocoderTrainConfig(**settings, time_limit=time_limit))


def test_vocoder_training_with_a_resume_is_unchanged(tmp_path, one_thread):
    run = tmp_path / "run"
    _vocoder_run(run)
    losses = _records(run, ("loss", "mel_l1", "mrstft", "adv", "fm", "disc", "grad_norm", "disc_grad_norm", "lr"))
    digests = _checkpoint_digests(run / "checkpoints" / "step_0000004")
    digests["vocoder/"] = _sha(read_tensors(run / "vocoder"))
    print("VOCODER_LOSSES =", losses)
    print("VOCODER_CHECKPOINT =", digests)
    assert [r[0] for r in losses] == [1, 2, 3, 4]
    assert _same(losses, VOCODER_LOSSES), losses
    assert digests == VOCODER_CHECKPOINT


# -- autoencoder (through fit) -------------------------------------------------------------------------
AUTOENCODER_LOSSES = [
    [1, 1.0013744831085205, 0.003, 1.6415214538574219, 0],
    [2, 0.9174341559410095, 0.003, 1.3520783185958862, 0],
    [3, 0.9440573453903198, 0.003, 1.3831522464752197, 0],
]
AUTOENCODER_CHECKPOINT = {'ema.safetensors': '1418bae1571b1b3f', 'model.safetensors': '980257e0ae94528c', 'state.pt': '8c1fadb3b4166ac8', 'config.json': '4b5d36f4b04ffbf2', 'model/': 'd6951026cf0df3a9'}


def _autoencoder_run(run_dir: Path) -> None:
    import audiodiff
    from audiodiff.training.autoencoder import AutoencoderTrainConfig, train_autoencoder

    settings = dict(steps=3, batch_size=4, lr=3e-3, warmup_steps=1, checkpoint_every=2, log_every=1, num_workers=0,
                    progress=False, fit_stats_batches=2, ema_decay=0.9, kl_weight=1e-3, seconds=0.2)
    config = {"name": "mel_vae", "mel": dict(TINY_MEL), "latent_channels": 4, "channels": 8,
              "channel_mults": [1, 2, 2], "num_res_blocks": 1, "time_factor": 4, "freq_factor": 4}
    for time_limit in (1e-9, 0.0):
        torch.manual_seed(0)
        autoencoder = audiodiff.build("autoencoder", config)
        train_autoencoder(autoencoder, ToneDataset(n=12), run_dir, AutoencoderTrainConfig(**settings, time_limit=time_limit))


def test_autoencoder_training_with_a_resume_is_unchanged(tmp_path, one_thread):
    run = tmp_path / "run"
    _autoencoder_run(run)
    losses = _records(run, ("loss", "lr", "grad_norm", "epoch"))
    digests = _checkpoint_digests(run / "checkpoints" / "step_0000003")
    digests["model/"] = _sha(read_tensors(run / "model"))
    print("AUTOENCODER_LOSSES =", losses)
    print("AUTOENCODER_CHECKPOINT =", digests)
    assert [r[0] for r in losses] == [1, 2, 3]
    assert _same(losses, AUTOENCODER_LOSSES), losses
    assert digests == AUTOENCODER_CHECKPOINT
