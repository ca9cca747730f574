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


@pytest.mark.parametrize("name", ["speech", "music", "sfx", "sfx-uncond"])
def test_shipped_vocoders_are_trained_and_match(name):
    model = audiodiff.load(name)
    vocoder = model.default_vocoder
    assert type(vocoder).__name__ == "Vocos"
    audiodiff.vocoders.check_mel_settings(vocoder.mel_settings, model.representation.settings())


def test_shipped_domain_vocoder_loads_by_name_and_resynthesises_real_sfx(shared_data):
    """``vocos-sfx`` (trained on sound effects, shipped on its own) is a ``--vocoder`` name; it fits the
    sfx model's mel settings, and it resynthesises real sound effects closer than the music vocoder."""
    from audiodiff.audio.io import load_audio
    from audiodiff.audio.mel import Mel
    from audiodiff.metrics.spectral import log_mel_l1

    assert "vocos-sfx" in audiodiff.vocoders.list_shipped_vocoders()
    model = audiodiff.load("sfx")
    settings = model.representation.settings()
    ours = audiodiff.vocoders.build_vocoder("vocos-sfx", settings)
    mel = Mel(**settings)
    scores = {"ours": [], "music": []}
    for path in sorted((shared_data / "berklee").glob("*.mp3"))[:40:10]:
        wave, _ = load_audio(str(path), settings["sample_rate"])
        wave = wave.mean(0, keepdim=True)[None, :, : 2 * settings["sample_rate"]]
        wave = wave / wave.pow(2).mean().sqrt().clamp(min=1e-5) * 0.1  # about -20 dBFS, as the recipes train
        with torch.inference_mode():
            log_mel = mel.log_mel(wave)
            scores["ours"].append(log_mel_l1(ours(log_mel), wave, mel))
            scores["music"].append(log_mel_l1(model.default_vocoder(log_mel), wave, mel))
    ours_l1, music_l1 = (sum(v) / len(v) for v in scores.values())
    print(f"log-mel L1: vocos-sfx {ours_l1:.3f}, music vocoder {music_l1:.3f}")
    assert ours_l1 < 0.3 and ours_l1 < 0.7 * music_l1
