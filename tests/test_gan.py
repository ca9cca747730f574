"""The conditional GAN baseline (MelGAN + train_gan): shapes, training, checkpoints, exact resume, errors."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import ToneDataset

from audiodiff import registry
from audiodiff.errors import ConfigError
from audiodiff.generators import MelGAN, load_generator
from audiodiff.generators.gan import MelDiscriminator
from audiodiff.training import GANTrainConfig, TrainingError, latest_checkpoint, train_gan
from audiodiff.vocoders import build_vocoder

MEL = {"name": "mel", "sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 32}
SPEECH_MEL = {"name": "mel", "sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64,
              "f_min": 20.0, "f_max": 4000.0}
LABELS = [str(i) for i in range(12)]  # ToneDataset's


def tiny_gan(**overrides) -> MelGAN:
    torch.manual_seed(0)
    kwargs = {"seconds": 0.25, "latent_dim": 8, "channels": 8, "embed_dim": 8, **overrides}
    return MelGAN(MEL, LABELS, **kwargs)


def train(run, steps: int, **overrides) -> MelGAN:
    settings = dict(steps=steps, batch_size=4, checkpoint_every=2, log_every=1, num_workers=0, progress=False,
                    keep_last=2, fit_stats_batches=2)
    settings.update(overrides)
    return train_gan(tiny_gan(), ToneDataset(n=16), run, GANTrainConfig(**settings))


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_generator_and_discriminator_shapes():
    gan = tiny_gan(seconds=0.3)  # 38 frames: not a multiple of 8, the output is cropped
    assert gan.frames == 38 and gan.latent_shape() == (8,)
    z, labels = torch.randn(3, 8), torch.tensor([0, 5, 11])
    x = gan(z, labels)
    assert x.shape == (3, 32, 38) and torch.isfinite(x).all()
    assert torch.equal(gan.decode_latents(z, labels), x)
    disc = gan.discriminator()
    assert isinstance(disc, MelDiscriminator)
    assert disc(x, labels).shape == (3,)
    mels = gan.sample_mels(["1", "2"], torch.Generator().manual_seed(0))
    assert mels.shape == (2, 32, 38)


def test_default_sizes_on_the_speech_mel():
    gan = MelGAN(SPEECH_MEL, [str(i) for i in range(10)])
    assert gan.frames == 63
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 1.5e6 <= count(gan) <= 4e6
    assert 2e5 <= count(gan.discriminator()) <= 2e6
    with torch.no_grad():
        assert gan(torch.randn(2, 128), torch.tensor([0, 9])).shape == (2, 64, 63)


def test_registry_config_and_errors():
    assert "mel_gan" in registry.names("generator")
    gan = tiny_gan()
    rebuilt = registry.build("generator", gan.config())
    assert isinstance(rebuilt, MelGAN) and rebuilt.config() == gan.config()
    with pytest.raises(ConfigError, match=r"invalid mel_gan setting\(s\): latent_dim=0") as info:
        tiny_gan(latent_dim=0)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="unknown label.*'ten'"):
        gan.sample_mels(["1", "ten"])
    with pytest.raises(ConfigError, match="lr_d=0"):
        GANTrainConfig(lr_d=0)
    with pytest.raises(ConfigError, match="unknown GAN training setting"):
        GANTrainConfig.from_dict({"stepz": 3})
    assert GANTrainConfig.from_dict({"betas": [0, 0.9]}).betas == (0, 0.9)
    with pytest.raises(ConfigError, match="fewer than"):
        train_gan(tiny_gan(), ToneDataset(n=2), "unused", {"batch_size": 4, "progress": False})


def test_train_writes_checkpoints_log_and_a_loadable_model(tmp_path):
    run = tmp_path / "run"
    ema = train(run, 4)
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())
    assert ckpts == ["step_0000002", "step_0000004"]
    assert latest_checkpoint(run, ("generator.safetensors", "ema.safetensors", "discriminator.safetensors"))
    logged = records(run)
    assert [r["step"] for r in logged] == [1, 2, 3, 4]
    assert {"loss_g", "loss_d", "d_real", "d_fake", "grad_norm_g", "grad_norm_d", "samples_per_s", "lr_g",
            "lr_d"} <= set(logged[0])
    assert all(r["loss_d"] is not None and r["loss_g"] is not None for r in logged)
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["name"] == "mel_gan" and config["training"]["steps"] == 4
    loaded = load_generator(run / "model")
    assert isinstance(loaded, MelGAN) and not loaded.training
    assert not torch.allclose(loaded.mel.mean, torch.full_like(loaded.mel.mean, -5.0)), "statistics were fitted"
    a = ema.sample_mels(["0", "7", "11"], torch.Generator().manual_seed(3))
    b = loaded.sample_mels(["0", "7", "11"], torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    vocoder = build_vocoder({"name": "griffinlim", "n_iter": 4}, loaded.mel.settings())
    audio = loaded.generate(["3", "4"], vocoder, seed=0)
    assert audio.shape[:2] == (2, 1) and audio.shape[-1] > 1000 and torch.isfinite(audio).all()


@pytest.mark.parametrize("d_steps", [1, 2])
def test_a_stopped_run_resumes_with_identical_losses(tmp_path, d_steps):
    full, split = tmp_path / "full", tmp_path / "split"
    train(full, 6, d_steps_per_g=d_steps)
    train(split, 2, d_steps_per_g=d_steps)  # stops at step 2 (mid-epoch with one D step per G step)
    train(split, 6, d_steps_per_g=d_steps)  # resumes from step 2
    a = {r["step"]: r for r in records(full)}
    b = {r["step"]: r for r in records(split)}
    assert sorted(b) == list(range(1, 7))
    for step in range(1, 7):
        for key in ("loss_g", "loss_d", "d_real", "d_fake"):
            assert a[step][key] == pytest.approx(b[step][key], rel=1e-5, abs=1e-7), (step, key)
    x = torch.Generator().manual_seed(1)
    y = torch.Generator().manual_seed(1)
    assert torch.allclose(load_generator(full).sample_mels(LABELS, x), load_generator(split).sample_mels(LABELS, y),
                          atol=1e-6)


def test_time_limit_then_rerun_and_non_finite_losses(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(run, 50, time_limit=1e-9, checkpoint_every=100)
    assert latest_checkpoint(run, ("generator.safetensors",)).name == "step_0000001"
    assert (run / "model" / "model.safetensors").is_file(), "the EMA generator is exported"
    train(run, 3, checkpoint_every=100)
    assert [r["step"] for r in records(run)] == [1, 2, 3]
    import audiodiff.training.gan as gan_training

    monkeypatch.setattr(gan_training, "generator_loss", lambda scores: scores[0].mean() * float("nan"))
    with pytest.raises(TrainingError, match="NaN/inf for 2 steps in a row at step 4.*lower lr_g"):
        train(run, 20, max_bad_steps=2)
    assert all(torch.isfinite(t).all() for t in load_generator(run).state_dict().values()), "skipped steps never land"
