"""Vocoders: registry conformance, Vocos save/load, discriminators, resumable training on real speech,
a model folder's ``vocoder/`` default, the CLI ``--vocoder`` override, and the vocoder recipe."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_MEL, perturb, tiny_config

import audiodiff
from audiodiff.audio.mel import Mel
from audiodiff.audio.settings import MEL_SETTING_KEYS
from audiodiff.errors import ConfigError, ModelLoadError, SettingsMismatchError
from audiodiff.registry import build, names
from audiodiff.vocoders import Vocos, build_vocoder, load_vocoder_folder
from audiodiff.vocoders.discriminators import (MultiPeriodDiscriminator, MultiResolutionDiscriminator,
                                               discriminator_loss, feature_matching_loss, generator_loss,
                                               resolutions_for)
from audiodiff.training.vocoder import VocoderTrainConfig, random_segments, train_vocoder

REPO = Path(__file__).resolve().parents[1]
SETTINGS = Mel(**{k: v for k, v in TINY_MEL.items() if k != "name"}).settings()
TINY_VOCOS = {"dim": 32, "intermediate_dim": 64, "num_layers": 1}


def tiny_vocos(settings=SETTINGS, seed: int = 0) -> Vocos:
    torch.manual_seed(seed)
    return Vocos(**TINY_VOCOS, **settings)


# -- conformance over the registry ----------------------------------------------------------------
@pytest.mark.parametrize("name", names("vocoder"))
def test_every_vocoder_gives_the_length_convention_and_rejects_other_settings(name):
    vocoder = build_vocoder(name, SETTINGS).eval()
    assert vocoder.mel_settings == SETTINGS
    frames = 9
    log_mel = Mel(**SETTINGS).log_mel(0.1 * torch.randn(2, 1, (frames - 1) * SETTINGS["hop_length"]))
    with torch.no_grad():
        wave = vocoder(log_mel)
    assert wave.shape == (2, 1, (frames - 1) * SETTINGS["hop_length"])
    assert torch.isfinite(wave).all()
    rebuilt = build("vocoder", vocoder.config())  # config() names every constructor keyword
    assert rebuilt.config() == vocoder.config()
    other = {**SETTINGS, "n_mels": 40}
    with pytest.raises(SettingsMismatchError, match="n_mels=32 vs 40"):
        build_vocoder(vocoder, other)


def test_vocos_default_size_and_fixed_input_normalisation():
    vocoder = Vocos(**SETTINGS)
    assert 1_000_000 < vocoder.num_parameters() < 2_500_000
    with pytest.raises(ConfigError, match="expects \\(B, 32, frames\\)"):
        vocoder(torch.zeros(1, 40, 5))
    with pytest.raises(ConfigError, match="num_layers"):
        Vocos(num_layers=0, **SETTINGS)


def test_vocos_save_load_round_trip_is_identical(tmp_path):
    vocoder = perturb(tiny_vocos()).eval()
    log_mel = torch.randn(1, SETTINGS["n_mels"], 12) - 5
    vocoder.save(tmp_path / "voc")
    loaded = load_vocoder_folder(tmp_path / "voc")
    assert isinstance(loaded, Vocos) and loaded.config() == vocoder.config()
    with torch.no_grad():
        assert torch.equal(loaded(log_mel), vocoder(log_mel))
    assert build_vocoder(str(tmp_path / "voc"), SETTINGS).config() == vocoder.config()  # a folder path works too
    vocoder.save(tmp_path / "half", dtype=torch.float16)
    with torch.no_grad():
        assert torch.allclose(load_vocoder_folder(tmp_path / "half")(log_mel), vocoder(log_mel), atol=1e-3)
    (tmp_path / "voc" / "config.json").write_text(json.dumps({**vocoder.config(), "dim": 48}))
    with pytest.raises(ModelLoadError, match="do not match its config.json"):
        load_vocoder_folder(tmp_path / "voc")


# -- discriminators ---------------------------------------------------------------------------------
def test_discriminators_and_losses():
    wave = 0.1 * torch.randn(2, 1, 1000)
    for disc in (MultiPeriodDiscriminator(channels=2), MultiResolutionDiscriminator(resolutions_for(256), channels=2)):
        scores, features = disc(wave)
        assert len(scores) == len(features) == len(disc.discriminators)
        assert all(s.shape[0] == 2 and s.dim() == 2 for s in scores)
        assert feature_matching_loss(features, features).item() == 0.0
    real, fake = [torch.full((2, 3), 2.0)], [torch.full((2, 3), -2.0)]
    assert float(discriminator_loss(real, fake)) == 0.0  # both beyond the hinge margins
    assert float(generator_loss(fake)) == pytest.approx(3.0)
    assert resolutions_for(1024) == ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def test_random_segments_stay_inside_the_unpadded_part():
    clips = torch.zeros(3, 100)
    clips[:, :40] = torch.arange(1, 41, dtype=torch.float32)
    lengths = torch.tensor([40, 40, 10])
    segs = random_segments(clips, lengths, [0, 1, 2], 16, torch.Generator().manual_seed(0))
    assert segs.shape == (3, 1, 16)
    assert (segs[:2] > 0).all(), "a segment never starts in the padding when the clip is long enough"
    assert segs[2, 0, 0] == 1.0, "a clip shorter than a segment starts at 0"


def test_train_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="unknown vocoder training setting\\(s\\) stepz"):
        VocoderTrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ConfigError, match="lr=-1"):
        VocoderTrainConfig(lr=-1)
    assert VocoderTrainConfig.from_dict({"betas": [0.5, 0.9]}).betas == (0.5, 0.9)
    assert VocoderTrainConfig().mel_loss_weight == 45.0


# -- training on real speech ------------------------------------------------------------------------
SPEECH = {"sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64, "f_min": 20.0, "f_max": 4000.0}


@pytest.fixture(scope="module")
def fsdd_clips():
    """A handful of real FSDD digits (trimmed, loudness-normalised), as an in-memory dataset."""
    from conftest import shared_data_dir

    from audiodiff.audio.io import load_audio
    from audiodiff.data.dataset import crop_or_pad, normalize_loudness, trim_silence

    folder = shared_data_dir() / "fsdd" / "recordings"
    if not folder.is_dir():
        pytest.skip(f"real audio not found at {folder}")
    files = sorted(folder.glob("*_jackson_1*.wav"))[:8]
    waves = [crop_or_pad(normalize_loudness(trim_silence(load_audio(f, 8000)[0], 40), -20), 6000) for f in files]
    return ListDataset([{"waveform": w} for w in waves])


class ListDataset(torch.utils.data.Dataset):
    sample_rate = 8000

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _train(run_dir, dataset, steps, **overrides):
    settings = dict(steps=steps, batch_size=4, segment_seconds=0.2, lr=2e-3, gan_start=steps, disc_channels=2,
                    checkpoint_every=2, keep_last=2, log_every=1, num_workers=0, progress=False)
    settings.update(overrides)
    torch.manual_seed(1)
    vocoder = Vocos(**TINY_VOCOS, **Mel(**SPEECH).settings())
    return train_vocoder(vocoder, dataset, run_dir, VocoderTrainConfig(**settings))


def _records(run_dir) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (Path(run_dir) / "log.jsonl").read_text().splitlines())}


def test_training_lowers_the_mel_loss_and_exports_a_loadable_vocoder(tmp_path, fsdd_clips):
    trained = _train(tmp_path / "run", fsdd_clips, 8)
    mel_l1 = [r["mel_l1"] for r in _records(tmp_path / "run").values()]
    assert len(mel_l1) == 8 and all(math.isfinite(x) for x in mel_l1)
    assert sum(mel_l1[-2:]) / 2 < 0.8 * sum(mel_l1[:2]) / 2, mel_l1
    loaded = load_vocoder_folder(tmp_path / "run" / "vocoder")
    log_mel = Mel(**SPEECH).log_mel(fsdd_clips[0]["waveform"][None])
    with torch.no_grad():
        assert torch.equal(loaded(log_mel), trained(log_mel))
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir())
    assert ckpts == ["step_0000006", "step_0000008"]


def test_gan_training_resumes_exactly_after_a_crash(tmp_path, fsdd_clips, monkeypatch):
    from audiodiff.training.vocoder import VocoderTrainer as T

    full, split = tmp_path / "full", tmp_path / "split"
    _train(full, fsdd_clips, 4, gan_start=2, checkpoint_every=3)
    real_step, calls = T.step, {"n": 0}

    def crashing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated crash in step 4")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(T, "step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        _train(split, fsdd_clips, 4, gan_start=2, checkpoint_every=3)
    monkeypatch.setattr(T, "step", real_step)
    assert (split / "checkpoints" / "latest").read_text() == "step_0000003", "saved after one GAN step"
    _train(split, fsdd_clips, 4, gan_start=2, checkpoint_every=3)
    a, b = _records(full), _records(split)
    assert sorted(b) == list(range(1, 5)) and a[3]["disc"] is not None, "the GAN phase ran"
    for step in range(1, 5):
        for key in ("loss", "mel_l1", "disc"):
            if a[step][key] is not None:
                assert a[step][key] == pytest.approx(b[step][key], rel=1e-5, abs=1e-7), (step, key)


def test_time_limit_checkpoints_and_stops(tmp_path, fsdd_clips):
    _train(tmp_path / "run", fsdd_clips, 50, time_limit=1e-9, checkpoint_every=100)
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text() == "step_0000001"
    assert (tmp_path / "run" / "vocoder" / "model.safetensors").is_file()


def test_resuming_with_another_vocoder_config_is_an_error(tmp_path, fsdd_clips):
    _train(tmp_path / "run", fsdd_clips, 2)
    other = Vocos(dim=16, intermediate_dim=32, num_layers=1, **Mel(**SPEECH).settings())
    with pytest.raises(ConfigError, match="another vocoder config"):
        train_vocoder(other, fsdd_clips, tmp_path / "run", VocoderTrainConfig(steps=4, batch_size=4, num_workers=0,
                                                                               progress=False))


def test_dataset_at_another_rate_is_an_error(tmp_path, fsdd_clips):
    vocoder = Vocos(**TINY_VOCOS, **{**SETTINGS, "sample_rate": 16000})
    with pytest.raises(ConfigError, match="sample rate 8000 differs"):
        train_vocoder(vocoder, fsdd_clips, tmp_path / "run", {"steps": 1, "progress": False})


# -- a model's default vocoder and the CLI ----------------------------------------------------------
@pytest.fixture
def model_with_vocoder(tmp_path):
    torch.manual_seed(0)
    model = perturb(audiodiff.DiffusionModel(tiny_config())).eval()
    model.set_vocoder(perturb(tiny_vocos()).eval())
    folder = tmp_path / "model"
    model.save(folder)
    return model, folder


def test_model_folder_with_a_vocoder_subfolder_uses_it(model_with_vocoder, tmp_path):
    model, folder = model_with_vocoder
    assert (folder / "vocoder" / "config.json").is_file() and (folder / "vocoder" / "model.safetensors").is_file()
    loaded = audiodiff.load(folder)
    assert isinstance(loaded.default_vocoder, Vocos)
    assert not any(k.startswith("vocoder") for k in loaded.state_dict()), "the vocoder is not in the model's weights"
    log_mel = torch.randn(1, SETTINGS["n_mels"], 7) - 5
    with torch.no_grad():
        assert torch.equal(loaded.default_vocoder(log_mel), model.default_vocoder(log_mel))
    clip = audiodiff.generate(loaded, steps=2, seed=0)[0]
    assert clip.metadata["vocoder"]["name"] == "vocos"
    assert audiodiff.generate(loaded, steps=2, seed=0, vocoder="griffinlim")[0].metadata["vocoder"]["name"] == "griffinlim"
    loaded.save(tmp_path / "again")  # save keeps the trained vocoder
    assert isinstance(audiodiff.load(tmp_path / "again").default_vocoder, Vocos)
    plain = audiodiff.DiffusionModel(tiny_config())
    assert plain.default_vocoder == plain.config["vocoder"]


def test_mismatched_vocoder_is_an_error(model_with_vocoder, tmp_path):
    model, folder = model_with_vocoder
    wrong = tiny_vocos({**SETTINGS, "n_mels": 40})
    with pytest.raises(SettingsMismatchError, match="n_mels"):
        model.set_vocoder(wrong)
    wrong.save(folder / "vocoder")
    with pytest.raises(ModelLoadError, match="vocoder mel settings differ"):
        audiodiff.load(folder)


def test_vocoder_spec_errors_are_one_line():
    with pytest.raises(ConfigError, match="unknown vocoder 'vocos-nope'.*shipped vocoder .*vocos-sfx"):
        build_vocoder("vocos-nope", SETTINGS)
    with pytest.raises(ConfigError, match="vocoder must be a registry name.*got int"):
        build_vocoder(3, SETTINGS)
    with pytest.raises(SettingsMismatchError, match="sample_rate=16000 vs 8000"):
        build_vocoder("vocos-sfx", SETTINGS)  # a shipped vocoder, by name, checked like a folder


def test_cli_vocoder_override_and_mismatch(model_with_vocoder, tmp_path, capsys):
    from audiodiff.cli import main

    _, folder = model_with_vocoder
    base = ["generate", "--model", str(folder), "--steps", "2", "--seed", "0", "-q"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert json.loads(next((tmp_path / "a").glob("*.json")).read_text())["vocoder"]["name"] == "vocos"
    assert main([*base, "--out", str(tmp_path / "b"), "--vocoder", "griffinlim"]) == 0
    assert json.loads(next((tmp_path / "b").glob("*.json")).read_text())["vocoder"]["name"] == "griffinlim"
    tiny_vocos({**SETTINGS, "sample_rate": 16000}).save(tmp_path / "wrong")
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "c"), "--vocoder", str(tmp_path / "wrong")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sample_rate=16000 vs 8000" in err[0]
    assert main(["variation", "--model", str(folder), "--input", str(next((tmp_path / "a").glob("*.wav"))),
                 "--strength", "0.5", "--steps", "2", "-q", "--out", str(tmp_path / "d"),
                 "--vocoder", str(tmp_path / "wrong")]) == 2
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "e"), "--vocoder", "vocos-nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown vocoder 'vocos-nope'" in err[0]
    assert main(["info", "--model", str(folder)]) == 0
    assert '"name": "vocos"' in capsys.readouterr().out


# -- the recipe --------------------------------------------------------------------------------------
def _compose(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "recipes" / "vocoder" / "conf"), version_base=None):
        return compose("vocoder", overrides=list(overrides))


@pytest.mark.parametrize("domain", ["speech", "music", "sfx"])
def test_recipe_domains_compose_with_the_domain_models_mel_settings(domain):
    sys.path.insert(0, str(REPO / "recipes" / "vocoder"))
    try:
        from train import mel_settings
    finally:
        sys.path.pop(0)
    from omegaconf import OmegaConf

    cfg = _compose(f"domain={domain}")
    with initialize_domain(domain) as domain_cfg:
        expected = build("representation", OmegaConf.to_container(domain_cfg.model.representation)).settings()
    assert mel_settings(cfg) == {k: expected[k] for k in MEL_SETTING_KEYS}
    VocoderTrainConfig.from_dict(OmegaConf.to_container(cfg.train))
    assert cfg.run_dir == f"runs/vocoder-{domain}"


class initialize_domain:
    """The domain recipe's own train config (context manager)."""

    def __init__(self, domain):
        self.domain = domain

    def __enter__(self):
        from hydra import compose, initialize_config_dir

        self.ctx = initialize_config_dir(str(REPO / "recipes" / self.domain / "conf"), version_base=None)
        self.ctx.__enter__()
        return compose("train")

    def __exit__(self, *exc):
        self.ctx.__exit__(*exc)


def test_recipe_init_from_copies_a_trained_generator_and_checks_it(tmp_path):
    sys.path.insert(0, str(REPO / "recipes" / "vocoder"))
    try:
        from train import init_weights
    finally:
        sys.path.pop(0)
    trained = tiny_vocos(seed=1)
    trained.save(tmp_path / "model" / "vocoder")  # a model folder's vocoder/ is found too
    fresh = tiny_vocos(seed=2)
    init_weights(fresh, tmp_path / "model")
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), trained.state_dict().values()))
    other_mels = tiny_vocos({**SETTINGS, "n_mels": SETTINGS["n_mels"] + 8})
    with pytest.raises(SettingsMismatchError, match="init_from .*n_mels"):
        init_weights(other_mels, tmp_path / "model")
    torch.manual_seed(0)
    bigger = Vocos(**{**TINY_VOCOS, "num_layers": 2}, **SETTINGS)
    with pytest.raises(ConfigError, match="do not fit cfg.vocoder") as err:
        init_weights(bigger, tmp_path / "model")
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_recipe_debug_experiment_trains_and_exports(tmp_path, shared_data):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    export = tmp_path / "export" / "vocoder"
    out = subprocess.run([sys.executable, str(REPO / "recipes" / "vocoder" / "train.py"), "experiment=debug",
                          f"run_dir={tmp_path / 'run'}", f"data.manifest={tmp_path / 'manifest.jsonl'}",
                          f"export_to={export}"], capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 4
    vocoder = load_vocoder_folder(export)
    assert vocoder.mel_settings["sample_rate"] == 8000 and vocoder.mel_settings["n_mels"] == 64
