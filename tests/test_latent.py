"""Latent diffusion: the mel autoencoder, its training, the latent representation, latent models and edits."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import TINY_MEL, perturb, tiny_config
from train_helpers import ToneDataset, losses

import audiodiff
from audiodiff import DiffusionModel, registry
from audiodiff.audio import Latent, MelAutoencoder, load_autoencoder
from audiodiff.training.autoencoder import AutoencoderTrainConfig, reconstruction_l1, train_autoencoder
from audiodiff.errors import ConfigError, ModelLoadError
from audiodiff.training import latest_checkpoint
from audiodiff.vocoders import build_vocoder

TINY_AE = {"name": "mel_vae", "mel": dict(TINY_MEL), "latent_channels": 4, "channels": 8,
           "channel_mults": [1, 2, 2], "num_res_blocks": 1, "time_factor": 4, "freq_factor": 4}


def tiny_autoencoder(seed: int = 0) -> MelAutoencoder:
    torch.manual_seed(seed)
    return audiodiff.build("autoencoder", TINY_AE)


def ae_settings(**overrides) -> dict:
    settings = dict(batch_size=4, lr=3e-3, warmup_steps=1, checkpoint_every=4, log_every=1, num_workers=0,
                    progress=False, fit_stats_batches=2, ema_decay=0.9)
    settings.update(overrides)
    return settings


# -- the autoencoder -----------------------------------------------------------------------------
@pytest.mark.parametrize("frames", [1, 5, 16, 23])
def test_autoencoder_shapes_for_any_frame_count(frames):
    ae = tiny_autoencoder()
    x = torch.randn(2, 32, frames)
    recon, mean, logvar = ae(x, generator=torch.Generator().manual_seed(0))
    assert recon.shape == x.shape
    assert mean.shape == logvar.shape == (2, 4, 8, math.ceil(frames / 4))
    assert ae.decode(mean).shape == (2, 32, 4 * math.ceil(frames / 4))
    assert ae.reconstruct(x).shape == x.shape
    parts = ae.loss(x, kl_weight=1e-3, l2_weight=0.5)
    assert set(parts) == {"loss", "l1", "l2", "kl"} and all(torch.isfinite(v) for v in parts.values())


def test_default_autoencoder_is_small_and_compresses_speech_mels():
    ae = MelAutoencoder(mel={"sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64})
    assert 5e5 <= sum(p.numel() for p in ae.parameters()) <= 2e6
    assert ae.latent_shape_per_frame == (4, 16) and ae.latent_frames(63) == 16


def test_autoencoder_config_errors_are_one_line():
    for bad, match in [({"freq_factor": 3}, "powers of 2"), ({"time_factor": 8}, "levels"),
                       ({"mel": {**TINY_MEL, "n_mels": 30}}, "not divisible"), ({"widht": 3}, "unknown keyword")]:
        with pytest.raises(ConfigError, match=match) as info:
            audiodiff.build("autoencoder", {**TINY_AE, **bad})
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="unknown autoencoder training setting"):
        AutoencoderTrainConfig.from_dict({"kl_wieght": 1.0})
    with pytest.raises(ConfigError, match="kl_weight"):
        AutoencoderTrainConfig(kl_weight=-1)
    with pytest.raises(ConfigError, match="lr"):
        AutoencoderTrainConfig(lr=0)


def test_autoencoder_save_load_round_trip(tmp_path):
    ae = perturb(tiny_autoencoder()).eval()
    ae.mel.mean.fill_(-4.0)
    ae.save(tmp_path / "ae", metadata={"training": {"steps": 3}})
    loaded = load_autoencoder(tmp_path / "ae")
    x = torch.randn(2, 32, 9)
    assert torch.equal(ae.reconstruct(x), loaded.reconstruct(x))
    assert torch.equal(loaded.mel.mean, ae.mel.mean) and loaded.config() == ae.config()
    with pytest.raises(ModelLoadError, match="no model folder|not found"):
        load_autoencoder(tmp_path / "missing")
    config = json.loads((tmp_path / "ae" / "config.json").read_text())
    (tmp_path / "ae" / "config.json").write_text(json.dumps({**config, "channels": 16}))
    with pytest.raises(ModelLoadError, match="do not match"):
        load_autoencoder(tmp_path / "ae")


def test_train_autoencoder_learns_fits_mel_stats_and_resumes_exactly(tmp_path, monkeypatch):
    from audiodiff.training.diffusion import DiffusionTrainer as T

    full, split = tmp_path / "full", tmp_path / "split"
    data = ToneDataset(n=16)
    trained = train_autoencoder(tiny_autoencoder(), data, full, ae_settings(steps=8))
    record = losses(full)
    assert list(record) == list(range(1, 9))
    assert sum(record[s] for s in (7, 8)) < sum(record[s] for s in (1, 2)), record
    assert trained.mel.mean.abs().sum() > 0, "mel statistics were fitted"
    loaded = load_autoencoder(full / "model")
    x = torch.randn(1, 32, 7)
    assert torch.equal(loaded.reconstruct(x), trained.reconstruct(x))
    assert json.loads((full / "model" / "config.json").read_text())["training"]["kl_weight"] == 1e-5
    assert reconstruction_l1(loaded, torch.stack([data[i]["waveform"] for i in range(4)])) > 0

    real_step, calls = T.step, {"n": 0}

    def crashing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("simulated crash in step 6")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(T, "step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(tiny_autoencoder(), ToneDataset(n=16), split, ae_settings(steps=8))
    monkeypatch.setattr(T, "step", real_step)
    assert latest_checkpoint(split).name == "step_0000004"
    train_autoencoder(tiny_autoencoder(seed=1), ToneDataset(n=16), split, ae_settings(steps=8))  # resumes from step 4
    resumed = losses(split)
    assert list(resumed) == list(range(1, 9))
    for step in range(1, 9):
        assert resumed[step] == pytest.approx(record[step], rel=1e-5, abs=1e-7), step


# -- the latent representation -----------------------------------------------------------------------
REPRESENTATION_CONFIGS = {"mel": dict(TINY_MEL), "latent": {"name": "latent", "autoencoder": TINY_AE}}


@pytest.mark.parametrize("name", registry.names("representation"))
def test_representation_conformance(name):
    """Every registered representation: layouts, frame counts, decoding, config round trip, statistics."""
    torch.manual_seed(0)
    rep = audiodiff.build("representation", REPRESENTATION_CONFIGS.get(name, name))
    sr = rep.sample_rate
    wave = torch.randn(2, 1, 2000) * 0.1
    feats = rep.encode(wave)
    assert feats.shape == (2, *rep.shape_per_frame, rep.frames_for_samples(2000))
    assert rep.frames_for(0.25) == rep.frames_for_samples(round(0.25 * sr))
    assert rep.seconds_for(rep.frames_for(0.25)) <= 0.25 + 1e-9
    assert rep.frames_for(rep.seconds_for(9)) == 9
    log_mel = rep.to_log_mel(feats)
    assert log_mel.shape[:2] == (2, rep.settings()["n_mels"]) and torch.isfinite(log_mel).all()
    vocoder = build_vocoder({"name": "griffinlim", "n_iter": 2}, rep.settings())
    assert rep.decode(feats, vocoder).shape[:2] == (2, 1)
    rebuilt = audiodiff.build("representation", rep.config())
    assert rebuilt.shape_per_frame == rep.shape_per_frame and rebuilt.settings() == rep.settings()
    before = {k: v.clone() for k, v in rep.state_dict().items()}
    rep.fit_stats([rep.log_mel(wave)])
    assert any(not torch.equal(before[k], v) for k, v in rep.state_dict().items()), "fit_stats sets statistics"
    rebuilt.load_state_dict(rep.state_dict())
    assert torch.equal(rebuilt.encode(wave), rep.encode(wave))


def test_latent_scale_gives_unit_variance_and_autoencoder_is_frozen(tmp_path):
    ae = perturb(tiny_autoencoder())
    ae.save(tmp_path / "ae")
    rep = Latent(autoencoder=str(tmp_path / "ae"))
    assert rep.config()["autoencoder"] == ae.config(), "the config holds the autoencoder inline"
    assert not any(p.requires_grad for p in rep.parameters())
    rep.train()
    assert not rep.autoencoder.training
    waves = [torch.randn(4, 1, 3000) * 0.2 for _ in range(2)]
    rep.fit_stats(rep.log_mel(w) for w in waves)
    z = torch.cat([rep.encode(w) for w in waves])
    assert z.std().item() == pytest.approx(1.0, abs=1e-3)
    assert torch.equal(rep.normalize(rep.log_mel(waves[0])), rep.encode(waves[0]))
    with pytest.raises(ModelLoadError):
        Latent(autoencoder=str(tmp_path / "missing"))


# -- latent diffusion models ---------------------------------------------------------------------------
def latent_config(ae_folder, net: str = "unet1d") -> dict:
    return tiny_config(net, representation={"name": "latent", "autoencoder": str(ae_folder)}, seconds=0.5)


def test_latent_model_trains_saves_loads_generates_and_edits(tmp_path):
    from audiodiff.training import TrainConfig, fit

    perturb(tiny_autoencoder()).save(tmp_path / "ae")
    torch.manual_seed(0)
    model = DiffusionModel(latent_config(tmp_path / "ae"))
    assert model.net.in_channels == 4 * 8, "C x mel/4 channels for a 1D net"
    ae_before = {k: v.clone() for k, v in model.representation.autoencoder.state_dict().items()}
    ema = fit(model, ToneDataset(n=8, samples=4000), tmp_path / "run",
              TrainConfig(steps=2, batch_size=4, warmup_steps=1, checkpoint_every=2, log_every=1, num_workers=0,
                          progress=False, fit_stats_batches=1))
    assert all(torch.equal(ae_before[k], v) for k, v in model.representation.autoencoder.state_dict().items())
    assert float(ema.representation.scale) != 1.0, "the latent scale was fitted at step 0"
    (tmp_path / "ae" / "model.safetensors").unlink()  # the saved model must not need the autoencoder folder
    loaded = audiodiff.load(tmp_path / "run" / "model")
    assert loaded.config["representation"]["autoencoder"]["name"] == "mel_vae"
    assert torch.equal(loaded.representation.scale, ema.representation.scale)
    x, sigma = torch.randn(2, *loaded.sample_shape(8)), torch.tensor([0.5, 5.0])
    with torch.no_grad():
        assert torch.equal(loaded.denoise(x, sigma), ema.denoise(x, sigma))
    clip = audiodiff.generate(loaded, num_samples=1, seed=0, steps=2)[0]
    frames = loaded.representation.frames_for(0.5)
    assert clip.features.shape == (4, 8, frames)
    assert clip.waveform.shape[-1] == (4 * frames - 1) * TINY_MEL["hop_length"]
    out = audiodiff.inpaint(loaded, clip, 0.1, 0.3, steps=2, seed=0)[0]
    a, b = out.metadata["edit"]["frames"]
    assert (a, b) == (2, 5)  # latent frames are 4 hops (64 ms) apart: centres 0.128 .. 0.256 s
    assert torch.equal(out.features[..., :a], clip.features[..., :a])
    assert torch.equal(out.features[..., b:], clip.features[..., b:])
    with pytest.raises(ConfigError, match="frequency band"):
        audiodiff.inpaint(loaded, clip, 0.1, 0.3, fmin=100.0, fmax=1000.0, steps=2)


def test_latent_edits_run(tmp_path):
    perturb(tiny_autoencoder()).save(tmp_path / "ae")
    torch.manual_seed(0)
    model = perturb(DiffusionModel(latent_config(tmp_path / "ae"))).eval()
    clip = audiodiff.generate(model, num_samples=1, seed=0, steps=2)[0]
    frames = clip.features.shape[-1]
    longer = audiodiff.continue_audio(model, clip, 0.25, steps=2, seed=0)[0]
    assert longer.features.shape[-1] == frames + model.representation.frames_for(0.25) - 1
    assert audiodiff.variation(model, clip, 0.5, steps=2, seed=0)[0].features.shape == clip.features.shape
    assert len(audiodiff.interpolate(model, clip, clip.waveform[0], 2, steps=2)) == 2
    assert "seam_ratio" in audiodiff.loop(model, steps=2, seed=0)[0].metadata
    assert audiodiff.generate(model, seconds=1.0, steps=2, seed=0)[0].features.shape[-1] == \
        model.representation.frames_for(1.0)


def test_latent_model_with_a_2d_net(tmp_path):
    tiny_autoencoder().save(tmp_path / "ae")
    model = DiffusionModel(latent_config(tmp_path / "ae", net="unet2d"))
    assert model.sample_shape(5) == (4, 8, 5), "a C-channel image of mel/4 x frames/4"
    x0 = model.encode(torch.randn(2, 1, 4000) * 0.1)
    assert x0.shape == (2, 4, 8, model.representation.frames_for_samples(4000))
    loss = model.loss(x0, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is None for p in model.representation.parameters())


# -- recipes ---------------------------------------------------------------------------------------------
def test_autoencoder_recipe_configs_compose_and_build():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from test_recipes import DOMAINS, REPO

    for domain, overrides in [("speech", []), *[(d, ["experiment=debug"]) for d in DOMAINS]]:
        with initialize_config_dir(str(REPO / "recipes" / domain / "conf"), version_base=None):
            cfg = compose("autoencoder", overrides=overrides)
            latent = compose("train", overrides=[*overrides, "model/representation=latent"])
        mel = OmegaConf.to_container(cfg.model.representation, resolve=True)
        ae = audiodiff.build("autoencoder", {**OmegaConf.to_container(cfg.autoencoder), "mel": mel})
        assert ae.mel.n_mels % ae.freq_factor == 0
        AutoencoderTrainConfig.from_dict(OmegaConf.to_container(cfg.ae_train, resolve=True))
        rep = OmegaConf.to_container(latent.model.representation, resolve=True)
        assert rep == {"name": "latent", "autoencoder": f"{cfg.ae_run_dir}/model"}, (domain, overrides)


@pytest.mark.slow
def test_speech_recipe_trains_an_autoencoder_then_a_latent_model(tmp_path, shared_data):
    from test_recipes import REPO, run

    recipe = REPO / "recipes" / "speech"
    paths = [f"run_dir={tmp_path / 'run'}", f"data.manifest={tmp_path / 'manifest.jsonl'}"]
    out = run(recipe / "train_autoencoder.py", "experiment=debug", *paths)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run-ae" / "model" / "model.safetensors").is_file()
    out = run(recipe / "train.py", "experiment=debug", "model/representation=latent", *paths)
    assert out.returncode == 0, out.stderr[-3000:]
    model = audiodiff.load(tmp_path / "run" / "model")
    assert model.config["representation"]["name"] == "latent"
    out = run(recipe / "generate.py", f"model_path={tmp_path / 'run' / 'model'}", "prompt=[seven]", "num_samples=1",
              "steps=2", f"out_dir={tmp_path / 'out'}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list((tmp_path / "out").glob("*.wav"))) == 1
