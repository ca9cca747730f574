"""Conformance of every registered ``generator`` (built-ins and plugins): build from a config by name,
sample the promised shape, save and load back to the same samples, and refuse unknown labels."""

from __future__ import annotations

import pytest
import torch

from audiodiff import registry
from audiodiff.errors import ConfigError, ModelLoadError
from audiodiff.generators import MelGenerator, load_generator

MEL = {"name": "mel", "sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 32}
LABELS = ["low", "high"]


def test_the_baselines_are_registered() -> None:
    assert {"mel_gan", "mel_cvae"} <= set(registry.names("generator"))


@pytest.mark.parametrize("name", registry.names("generator"))
def test_generator_conformance(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = registry.build("generator", {"name": name, "mel": MEL, "labels": LABELS, "seconds": 0.5}).eval()
    assert isinstance(model, MelGenerator) and model.config()["name"] == name
    frames = model.mel.frames_for(0.5)
    mels = model.sample_mels(["high", "low", "high"], torch.Generator().manual_seed(3))
    assert mels.shape == (3, MEL["n_mels"], frames) and torch.isfinite(mels).all()
    model.save(tmp_path / name)
    loaded = load_generator(tmp_path / name)
    assert type(loaded) is type(model) and loaded.config() == model.config()
    again = loaded.sample_mels(["high", "low", "high"], torch.Generator().manual_seed(3))
    torch.testing.assert_close(again, mels)
    with pytest.raises(ConfigError, match="unknown label"):
        model.sample_mels(["middle"])


def test_load_generator_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(ModelLoadError):
        load_generator(tmp_path / "missing")
    model = registry.build("generator", {"name": "mel_gan", "mel": MEL, "labels": LABELS, "latent_dim": 8, "channels": 8})
    model.save(tmp_path / "gan")
    config = (tmp_path / "gan" / "config.json").read_text().replace('"latent_dim": 8', '"latent_dim": 9')
    (tmp_path / "gan" / "config.json").write_text(config)
    with pytest.raises(ModelLoadError, match="do not match"):
        load_generator(tmp_path / "gan")
    (tmp_path / "gan" / "config.json").write_text(config.replace('"mel_gan"', '"os.system"'))
    with pytest.raises(ModelLoadError) as err:
        load_generator(tmp_path / "gan")
    assert "\n" not in str(err.value)


@pytest.fixture
def gan_dir(tmp_path):
    torch.manual_seed(0)
    model = registry.build("generator", {"name": "mel_gan", "mel": MEL, "labels": LABELS, "latent_dim": 8,
                                         "channels": 8, "seconds": 0.5})
    model.save(tmp_path / "gan")
    return tmp_path / "gan"


def test_cli_generates_from_a_generator_folder(gan_dir, tmp_path, capsys) -> None:
    import soundfile as sf

    from audiodiff.cli import main

    out = tmp_path / "out"
    argv = ["generate", "--model", str(gan_dir), "-p", "high", "-p", "low", "-n", "2", "--seed", "5",
            "--vocoder", "griffinlim", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == 4 and len(list(out.glob("*.json"))) == 4
    assert capsys.readouterr().out.count(".wav") == 4
    audio, rate = sf.read(wavs[0])
    assert rate == MEL["sample_rate"] and len(audio) > 0
    names = " ".join(w.name for w in wavs)
    assert all(f"seed{seed}" in names for seed in (5, 6, 7, 8)) and "_high_" in names and "_low_" in names


def test_generate_clips_draws_clip_i_from_seed_plus_i(gan_dir) -> None:
    from audiodiff.vocoders import build_vocoder

    model = load_generator(gan_dir)
    vocoder = build_vocoder("griffinlim", model.mel.settings())
    clips = model.generate_clips(["high", "low", "high"], vocoder, seed=5)
    alone = model.generate_clips(["low"], vocoder, seed=6)
    torch.testing.assert_close(alone[0].features, clips[1].features)
    assert clips[2].metadata["seed"] == 7 and clips[2].metadata["prompt"] == "high"
    assert clips[0].waveform.dim() == 2 and clips[0].waveform.shape[0] == 1 and clips[0].sample_rate == 8000
    assert clips[0].waveform.abs().max() <= 1.0


@pytest.mark.parametrize("extra, message", [
    (["-p", "high", "--steps", "5"], "--steps only apply to diffusion models"),
    (["-p", "middle"], "unknown label"),
    ([], "needs --prompt"),
])
def test_cli_generator_errors_are_one_line(gan_dir, tmp_path, capsys, extra, message) -> None:
    from audiodiff.cli import main

    assert main(["generate", "--model", str(gan_dir), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
