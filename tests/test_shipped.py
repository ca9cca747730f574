"""Every shipped model loads by name, with its vocoder, and makes finite, audible sound."""

from __future__ import annotations

import pytest
import torch

import audiodiff

SHIPPED = sorted(audiodiff.list_models())


def test_the_three_recipes_and_the_sfx_baseline_are_shipped():
    assert {"speech", "music", "sfx", "sfx-uncond"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_generates(name):
    model = audiodiff.load(name)
    assert model.config["name"] == name
    prompts = model.demo_prompts(1)
    clip = audiodiff.generate(model, num_samples=1, prompt=prompts, seed=0, steps=2)[0]
    wave = clip.waveform
    assert clip.sample_rate == model.sample_rate and wave.shape[-1] >= 0.9 * model.config["seconds"] * model.sample_rate
    assert torch.isfinite(wave).all() and wave.abs().max() > 1e-3


@pytest.mark.parametrize("name", ["speech", "music", "sfx"])
def test_shipped_vocoders_are_trained_and_match(name):
    model = audiodiff.load(name)
    vocoder = model.default_vocoder
    assert type(vocoder).__name__ == "Vocos"
    audiodiff.vocoders.check_mel_settings(vocoder.mel_settings, model.representation.settings())
