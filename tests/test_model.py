"""DiffusionModel, checkpoints, loading, the mel representation and Griffin-Lim."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_MEL, perturb, tiny_config

import audiodiff
from audiodiff import DiffusionModel
from audiodiff.audio import Mel, load_audio
from audiodiff.errors import ConfigError, ModelLoadError, SettingsMismatchError
from audiodiff.vocoders import build_vocoder


@pytest.mark.parametrize("net", ["unet1d", "unet2d"])
def test_model_layouts_and_loss(net):
    model = DiffusionModel(tiny_config(net))
    wave = torch.randn(2, 1, 2000) * 0.1
    x0 = model.encode(wave)
    frames = model.representation.frames_for_samples(2000)
    assert x0.shape == (2, *model.sample_shape(frames))
    assert model.from_net_layout(x0).shape == (2, 32, frames)
    loss = model.loss(x0, generator=torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    sigma = torch.tensor([1.0, 10.0])
    assert model.denoise(x0, sigma).shape == x0.shape


@pytest.mark.parametrize("net", ["unet1d", "unet2d"])
def test_save_load_gives_identical_outputs(tmp_path, net):
    model = perturb(DiffusionModel(tiny_config(net))).eval()
    model.representation.mean.fill_(-3.0)
    model.save(tmp_path / "m")
    loaded = audiodiff.load(tmp_path / "m")
    x = torch.randn(2, *model.sample_shape(9))
    sigma = torch.tensor([0.5, 5.0])
    with torch.no_grad():
        assert torch.equal(model.denoise(x, sigma), loaded.denoise(x, sigma))
    assert torch.equal(loaded.representation.mean, model.representation.mean)
    assert loaded.config["net"] == model.config["net"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["audiodiff_version"] == audiodiff.__version__
    assert config["net"]["name"] == net and config["representation"]["n_mels"] == 32


def test_fp16_checkpoint_loads_close(tmp_path):
    model = perturb(DiffusionModel(tiny_config())).eval()
    model.save(tmp_path / "m16", dtype=torch.float16)
    loaded = audiodiff.load(tmp_path / "m16")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x, sigma = torch.randn(1, *model.sample_shape(8)), torch.tensor([2.0])
    with torch.no_grad():
        assert torch.allclose(model.denoise(x, sigma), loaded.denoise(x, sigma), atol=1e-2)


def test_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="no model folder or shipped model named"):
        audiodiff.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        audiodiff.load(tmp_path / "empty")
    model = DiffusionModel(tiny_config())
    folder = model.save(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError, match="not a valid safetensors"):
        audiodiff.load(folder)
    model.save(folder)
    config = json.loads((folder / "config.json").read_text())
    config["net"]["channels"] = 32  # weights were made with 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="do not match its config.json"):
        audiodiff.load(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        audiodiff.load(folder)
    config["net"]["name"] = "transformer9000"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="unknown net 'transformer9000'; valid names: unet1d, unet2d"):
        audiodiff.load(folder)


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown model config key"):
        DiffusionModel({**tiny_config(), "netw": {}})
    with pytest.raises(ConfigError, match="valid keywords"):
        DiffusionModel(tiny_config(net="unet1d", schedule={"name": "linear", "betastart": 0.1}))
    with pytest.raises(ConfigError, match="seconds"):
        DiffusionModel(tiny_config(seconds=0))
    with pytest.raises(ConfigError, match="in_channels"):
        DiffusionModel({**tiny_config(), "net": {**tiny_config()["net"], "in_channels": 7}})


def test_hub_download_path_uses_local_snapshot(tmp_path, monkeypatch):
    """The hf:// path (real code for users with a network) tested on a local snapshot."""
    import types
    import sys

    folder = DiffusionModel(tiny_config()).save(tmp_path / "snapshot")
    calls = {}

    def snapshot_download(repo_id, revision=None, allow_patterns=None, local_files_only=False):
        calls.update(repo_id=repo_id, revision=revision)
        return str(folder)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    model = audiodiff.load("hf://someone/tiny@v1")
    assert calls == {"repo_id": "someone/tiny", "revision": "v1"}
    assert model.num_parameters() > 0


# -- mel + vocoder ---------------------------------------------------------------------------
def log_mel_l1(a: torch.Tensor, b: torch.Tensor, mel: Mel) -> float:
    n = min(a.shape[-1], b.shape[-1])
    return (mel.log_mel(a[..., :n]) - mel.log_mel(b[..., :n])).abs().mean().item()


def test_mel_griffinlim_round_trip_on_real_speech(shared_data):
    wave, sr = load_audio(shared_data / "fsdd" / "recordings" / "3_jackson_12.wav")
    assert sr == 8000 and wave.shape[0] == 1
    mel = Mel(**{k: v for k, v in TINY_MEL.items() if k != "name"})
    vocoder = build_vocoder({"name": "griffinlim", "n_iter": 64}, mel.settings())
    wave = wave[None]  # (1, T) -> (1, 1, T)
    resynth = mel.decode(mel.encode(wave), vocoder)
    assert resynth.shape[:2] == (1, 1) and abs(resynth.shape[-1] - wave.shape[-1]) < mel.hop_length
    noise = torch.randn_like(wave) * wave.std()
    close, far = log_mel_l1(wave, resynth, mel), log_mel_l1(wave, noise, mel)
    assert close < 0.5 and close < far / 3, (close, far)


def test_mel_stats_fit_and_buffers():
    mel = Mel(**{k: v for k, v in TINY_MEL.items() if k != "name"})
    batches = [mel.log_mel(torch.randn(2, 1, 4000) * 0.1) for _ in range(3)]
    mel.fit_stats(batches)
    x = mel.normalize(torch.cat(batches))
    assert x.mean().abs() < 1e-3 and (x.transpose(0, 1).reshape(32, -1).std(1) - 1).abs().max() < 1e-2
    assert set(mel.state_dict()) == {"mean", "std"}


def test_mel_settings_validation():
    with pytest.raises(ConfigError, match="f_max"):
        Mel(sample_rate=8000, f_max=6000)
    with pytest.raises(ConfigError, match="n_mels"):
        Mel(n_fft=64, n_mels=80)


def test_vocoder_mel_mismatch_is_an_error(tmp_path):
    vocoder = build_vocoder("griffinlim", Mel(sample_rate=8000, n_fft=512, hop_length=128, n_mels=32).settings())
    with pytest.raises(SettingsMismatchError, match="hop_length=128 vs 256"):
        build_vocoder(vocoder, Mel(sample_rate=8000, n_fft=512, hop_length=256, n_mels=32).settings())


def test_load_audio_formats_and_errors(shared_data, tmp_path):
    wave, sr = load_audio(next((shared_data / "salamander").glob("*.ogg")), sample_rate=16000)
    assert sr == 16000 and wave.shape[0] == 1
    wave, sr = load_audio(next((shared_data / "berklee").glob("*.mp3")))
    assert sr == 44100 and wave.abs().max() > 0
    (tmp_path / "bad.wav").write_text("not audio")
    with pytest.raises(audiodiff.AudioError, match="cannot decode"):
        load_audio(tmp_path / "bad.wav")
    with pytest.raises(audiodiff.AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_load_weights_from_copies_matching_tensors_and_reports_the_rest():
    import copy

    from audiodiff.errors import ConfigError

    torch.manual_seed(0)
    source = perturb(DiffusionModel(tiny_config()))
    target = DiffusionModel(tiny_config())
    result = target.load_weights_from(source)
    assert result.skipped == [] and result.new == [] and set(result.loaded) == set(source.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    narrower = DiffusionModel({**tiny_config(), "net": {**tiny_config()["net"], "channels": 8}})
    partial = narrower.load_weights_from(source)
    assert partial.skipped and not set(partial.loaded) & set(partial.skipped)
    assert set(partial.loaded) | set(partial.skipped) == set(source.state_dict())  # every one of its tensors, once
    with pytest.raises(ConfigError, match="differ in shape"):
        copy.deepcopy(narrower).load_weights_from(source, skip_mismatched=False)
