"""The conditional VAE baseline: shapes, its ELBO in bits/dim, training through fit, folders, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import Subset
from train_helpers import ToneDataset, losses

from audiodiff import registry
from audiodiff.errors import ConfigError
from audiodiff.generators import MelCVAE, load_generator
from audiodiff.likelihood import DEFAULT_BIN_WIDTH
from audiodiff.training import VAEObjective, VAETrainConfig, train_vae
from audiodiff.vocoders import build_vocoder

SMALL_MEL = {"name": "mel", "sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 32}
LABELS = [str(i) for i in range(12)]
#: 0.24 s: 31 frames, padded to 32 inside the encoder and cropped back
TINY_VAE = {"name": "mel_cvae", "mel": SMALL_MEL, "labels": LABELS, "seconds": 0.24, "latent_dim": 8,
            "channels": 8, "channel_mults": [1, 2], "embed_dim": 8, "norm_groups": 4, "bottleneck": 4}


def tiny_vae(seed: int = 0, **overrides) -> MelCVAE:
    torch.manual_seed(seed)
    return registry.build("generator", {**TINY_VAE, **overrides})


def vae_settings(**overrides) -> dict:
    settings = dict(steps=4, batch_size=4, lr=3e-3, warmup_steps=1, checkpoint_every=2, log_every=1, num_workers=0,
                    progress=False, fit_stats_batches=2, ema_decay=0.9)
    settings.update(overrides)
    return settings


def batch_of(vae: MelCVAE, n: int = 3, label: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(n, vae.mel.n_mels, vae.frames), torch.full((n,), label, dtype=torch.long)


# -- the model -----------------------------------------------------------------------------------
def test_shapes_and_registry():
    vae = tiny_vae()
    assert "mel_cvae" in registry.names("generator")
    assert vae.frames == 31 and vae.latent_shape() == (8,)
    x, y = batch_of(vae)
    mean, logvar = vae.encode(x, y)
    assert mean.shape == logvar.shape == (3, 8)
    assert vae.decode_latents(mean, y).shape == x.shape
    mels = vae.sample_mels(["0", "11"], torch.Generator().manual_seed(0))
    assert mels.shape == (2, 32, 31) and torch.isfinite(mels).all()
    assert torch.isfinite(vae.loss(x, y, torch.Generator().manual_seed(0)))


def test_default_size_for_speech():
    mel = {"name": "mel", "sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64, "f_min": 20.0,
           "f_max": 4000.0}
    vae = MelCVAE(mel, ["zero", "one"])
    assert vae.frames == 63 and vae.grid == (8, 8)
    assert 1.5e6 <= sum(p.numel() for p in vae.parameters()) <= 4e6


def test_elbo_pieces_add_up_and_are_bounds():
    vae = tiny_vae()
    x, y = batch_of(vae)
    parts = vae.elbo(x, y, torch.Generator().manual_seed(0))
    assert all(v.shape == (3,) for v in parts.values())
    torch.testing.assert_close(parts["nelbo_nats"], parts["recon_nats"] + parts["kl_nats"])
    torch.testing.assert_close(parts["bits_per_dim"], parts["nelbo_nats"] / (x[0].numel() * math.log(2)))
    assert (parts["kl_nats"] > 0).all() and (parts["recon_nats"] > 0).all()  # bin masses are at most 1


def test_discretised_and_continuous_differ_by_the_bin_width():
    vae = tiny_vae()  # decoder std 0.5, much wider than the bins
    x, y = batch_of(vae)
    binned = vae.elbo(x, y, torch.Generator().manual_seed(0))["bits_per_dim"]
    density = vae.elbo(x, y, torch.Generator().manual_seed(0), bin_width=None)["bits_per_dim"]
    torch.testing.assert_close(binned - density, torch.full_like(binned, -math.log2(DEFAULT_BIN_WIDTH)),
                               atol=1e-3, rtol=0)
    with pytest.raises(ConfigError, match="bin_width"):
        vae.elbo(x, y, bin_width=-1.0)


def test_importance_bound():
    vae = tiny_vae()
    x, y = batch_of(vae)
    iwae = vae.importance_bits_per_dim(x, y, samples=8, generator=torch.Generator().manual_seed(0))
    again = vae.importance_bits_per_dim(x, y, samples=8, generator=torch.Generator().manual_seed(0))
    assert iwae.shape == (3,) and torch.isfinite(iwae).all() and torch.equal(iwae, again)
    with torch.no_grad():  # tighter than the ELBO (Burda et al. 2016, theorem 1), on average over z
        elbos = [vae.elbo(x, y, torch.Generator().manual_seed(s))["bits_per_dim"] for s in range(8)]
    assert float(iwae.mean()) < float(torch.stack(elbos).mean()) + 0.02
    with pytest.raises(ConfigError, match="samples"):
        vae.importance_bits_per_dim(x, y, samples=0)


def test_errors_are_one_line():
    with pytest.raises(ConfigError, match="latent_dim=0") as info:
        tiny_vae(latent_dim=0)
    assert "\n" not in str(info.value)
    for bad, match in [({"channel_mults": [1, 2, 2, 2, 2, 2, 2]}, "divisible by 64"),
                       ({"norm_groups": 3}, "norm_groups"), ({"channel_mults": []}, "channel_mults"),
                       ({"labels": []}, "labels"), ({"seconds": 0}, "seconds"), ({"widht": 3}, "unknown keyword")]:
        with pytest.raises(ConfigError, match=match) as info:
            tiny_vae(**bad)
        assert "\n" not in str(info.value)
    vae = tiny_vae()
    with pytest.raises(ConfigError, match="unknown label"):
        vae.sample_mels(["0", "twelve"])
    with pytest.raises(ConfigError, match="encodes"):
        vae.encode(torch.randn(1, 32, 40), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ConfigError, match="kl_weight"):
        VAETrainConfig(kl_weight=-1.0)
    with pytest.raises(ConfigError, match="unknown VAE training setting"):
        VAETrainConfig.from_dict({"kl_wieght": 1.0})


def test_generate_through_a_vocoder():
    vae = tiny_vae()
    vocoder = build_vocoder({"name": "griffinlim", "n_iter": 4}, vae.mel.settings())
    wave = vae.generate(["3", "4"], vocoder, seed=0)
    assert wave.shape[:2] == (2, 1) and wave.shape[-1] >= 30 * 64 and torch.isfinite(wave).all()


# -- training ------------------------------------------------------------------------------------
def test_encode_batch_crops_and_pads_to_the_clip():
    objective = VAEObjective(tiny_vae(), VAETrainConfig(**vae_settings()))
    for samples in (1000, 1920, 3000):
        x0 = objective.encode_batch({"waveform": torch.randn(2, 1, samples)})
        assert x0.shape == (2, 32, 31)
    assert objective.encode_batch({"features": torch.randn(2, 32, 20)}).shape == (2, 32, 31)
    cond = objective.conditioning_inputs({"label": ["1", "11"]})
    assert cond["labels"].tolist() == [1, 11]


def test_train_writes_run_and_reloads(tmp_path):
    run = tmp_path / "run"
    trained = train_vae(tiny_vae(), ToneDataset(), run, vae_settings())
    assert (run / "checkpoints" / "latest").is_file() and (run / "log.jsonl").is_file()
    assert sorted(losses(run)) == [1, 2, 3, 4]
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["name"] == "mel_cvae" and config["training"]["kl_weight"] == 1.0
    loaded = load_generator(run)
    assert isinstance(loaded, MelCVAE) and loaded.config() == trained.config()
    torch.testing.assert_close(loaded.mel.mean, trained.mel.mean)
    labels = ["0", "5", "11"]
    a = trained.sample_mels(labels, torch.Generator().manual_seed(3))
    b = loaded.sample_mels(labels, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_preset_statistics_are_kept(tmp_path):
    vae = tiny_vae()
    vae.mel.mean.fill_(-3.0)
    trained = train_vae(vae, ToneDataset(), tmp_path / "run", vae_settings(steps=1), fit_stats=False)
    assert torch.equal(trained.mel.mean, torch.full((32,), -3.0))


def test_training_on_one_tone_lowers_bits_per_dim(tmp_path):
    one_tone = Subset(ToneDataset(n=96), range(0, 96, 12))  # eight clips of the 200 Hz tone, label "0"
    trained = train_vae(tiny_vae(), one_tone, tmp_path / "run",
                        vae_settings(steps=150, batch_size=8, checkpoint_every=150, log_every=10, ema_decay=0.95))
    untrained = tiny_vae()
    untrained.mel.load_state_dict(trained.mel.state_dict())  # same fitted statistics
    objective = VAEObjective(trained, VAETrainConfig(**vae_settings()))
    x = objective.encode_batch({"waveform": torch.stack([one_tone[i]["waveform"] for i in range(4)])})
    y = torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        before = untrained.elbo(x, y, torch.Generator().manual_seed(0))["bits_per_dim"].mean()
        after = trained.elbo(x, y, torch.Generator().manual_seed(0))["bits_per_dim"].mean()
    logged = losses(tmp_path / "run")
    assert logged[150] < logged[10] - 0.5
    assert after < before - 1.0, (float(before), float(after))
