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
