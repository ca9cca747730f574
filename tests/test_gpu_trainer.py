"""tools/train_shipped.py: a tiny bundle trains every kind of job on the CPU and tars the results."""

from __future__ import annotations

import importlib.util
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MEL, tiny_config

import audiodiff

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "train_shipped.py"
SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.11.4
SMALL = {"steps": 3, "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 2, "log_every": 1, "num_workers": 0,
         "progress": False, "fit_stats_batches": 2}


def load_script(bundle: Path):
    spec = importlib.util.spec_from_file_location("train_shipped", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.BUNDLE = bundle
    return module


def tones(n: int = 8, rate: int = 8000, seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    waves = [0.3 * np.sin(2 * math.pi * (200 + 50 * i) * t) for i in range(n)]
    return (np.stack(waves) * 32767).astype(np.int16)  # (n, S)


def make_bundle(bundle: Path, script) -> None:
    bundle.mkdir(parents=True)
    waves = tones()
    path = script.write_clips("speech", waves, 8000)
    meta = {"sample_rate": 8000, "shape": list(waves.shape), "file": path.name,
            "items": [{"caption": f"tone {i}", "label": str(i)} for i in range(len(waves))]}
    (bundle / "speech.json").write_text(json.dumps(meta))
    mel = {k: v for k, v in TINY_MEL.items() if k != "name"}
    jobs = [
        {"kind": "diffusion", "name": "mel", "domain": "speech", "model": tiny_config(), "train": SMALL, "fixed_steps": True},
        {"kind": "latent", "name": "latent", "domain": "speech", "fixed_steps": True, "train": SMALL,
         "model": tiny_config(representation={"name": "latent"}),
         "autoencoder": {"name": "mel_vae", "channels": 8, "channel_mults": [1, 2, 2], "mel": TINY_MEL},
         "ae_train": SMALL},
        {"kind": "vocoder", "name": "vocoder-speech", "domain": "speech",
         "vocoder": {"name": "vocos", "dim": 16, "intermediate_dim": 32, "num_layers": 1, **mel},
         "train": {"steps": 3, "batch_size": 4, "segment_seconds": 0.125, "gan_start": 1, "disc_channels": 4,
                   "checkpoint_every": 2, "log_every": 1, "num_workers": 0, "progress": False}},
    ]
    (bundle / "jobs.json").write_text(json.dumps(jobs))


def test_packed_clips_round_trip_the_waveforms(tmp_path):
    script = load_script(tmp_path / "bundle")
    make_bundle(tmp_path / "bundle", script)
    data = script.PackedClips("speech")
    assert len(data) == 8 and data[3]["waveform"].shape == (1, 2000) and data[3]["caption"] == "tone 3"
    assert np.allclose(data[3]["waveform"][0].numpy(), tones()[3] / 32768, atol=1e-3)


@pytest.mark.slow
def test_every_job_kind_trains_exports_and_is_tarred(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    monkeypatch.setenv("AUDIODIFF_GPU_BUNDLE", str(bundle))
    script = load_script(bundle)
    make_bundle(bundle, script)
    out = tmp_path / "out"
    script.run(budget=60, out=out, only=None, device_name="cpu")
    assert sorted(p.name for p in out.iterdir()) == ["latent.tar", "mel.tar", "vocoders.tar"]
    for name in ("mel", "latent"):
        with tarfile.open(out / f"{name}.tar") as tar:
            tar.extractall(tmp_path / "x", **SAFE)
        model = audiodiff.load(tmp_path / "x" / name / "export")
        assert audiodiff.generate(model, num_samples=1, seed=0, steps=2)[0].waveform.abs().sum() > 0
    with tarfile.open(out / "vocoders.tar") as tar:
        tar.extractall(tmp_path / "x", **SAFE)
    vocoder = audiodiff.vocoders.load_vocoder_folder(tmp_path / "x" / "vocoder-speech" / "export")
    assert vocoder.mel_settings["n_mels"] == TINY_MEL["n_mels"]
