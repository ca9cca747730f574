"""generate(): determinism, batching, lengths, errors; sidecars."""

from __future__ import annotations

import json

import pytest
import torch

import audiodiff
from audiodiff.errors import ConfigError


def test_generate_shapes_and_metadata(tiny_model, tmp_path):
    calls = []
    clips = audiodiff.generate(tiny_model, num_samples=3, seconds=0.2, steps=3, seed=5, batch_size=2,
                               callback=calls.append)
    assert len(clips) == 3 and len(calls) == 3 * 2
    for i, clip in enumerate(clips):
        assert clip.waveform.dim() == 2 and clip.waveform.shape[0] == 1
        assert clip.sample_rate == 8000 and clip.waveform.abs().max() <= 1.0
        assert abs(clip.seconds - 0.2) < 0.02
        assert clip.metadata["seed"] == 5 + i and clip.metadata["steps"] == 3
        assert clip.metadata["sampler"] == {"name": "ddim", "eta": 0.0}
    path = clips[0].save(tmp_path / "a.wav")
    assert json.loads(path.with_suffix(".json").read_text())["seed"] == 5


@pytest.mark.parametrize("sampler", ["ddim", {"name": "ddim", "eta": 1.0}, "ddpm", "dpmpp_2m"])
def test_same_seed_same_audio_whatever_the_batch(tiny_model, sampler):
    a = audiodiff.generate(tiny_model, num_samples=3, steps=3, seed=11, sampler=sampler, batch_size=3)
    b = audiodiff.generate(tiny_model, num_samples=3, steps=3, seed=11, sampler=sampler, batch_size=1)
    for x, y in zip(a, b):  # equal up to float batching noise, which Griffin-Lim's iterations amplify
        assert torch.allclose(x.features, y.features, rtol=1e-4, atol=1e-4)
        assert torch.corrcoef(torch.cat([x.waveform, y.waveform]))[0, 1] > 0.999
    c = audiodiff.generate(tiny_model, num_samples=1, steps=3, seed=12, sampler=sampler)
    assert torch.allclose(c[0].features, a[1].features, rtol=1e-4, atol=1e-4), "clip i is reproducible from seed + i"
    assert not torch.allclose(a[0].features, a[1].features, rtol=1e-2, atol=1e-2)


def test_generate_errors(tiny_model):
    with pytest.raises(ConfigError, match="beyond what this model makes"):
        audiodiff.generate(tiny_model, seconds=1000)  # long clips are made in windows, up to 10 minutes
    with pytest.raises(ConfigError, match="overlap must be in"):
        audiodiff.generate(tiny_model, seconds=10, overlap=1.0)
    with pytest.raises(ConfigError, match="positive"):
        audiodiff.generate(tiny_model, seconds=0)
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        audiodiff.generate(tiny_model, steps=0)
    with pytest.raises(ConfigError, match="between 1 and"):
        audiodiff.generate(tiny_model, steps=5000)
    with pytest.raises(ConfigError, match="unknown sampler 'nope'"):
        audiodiff.generate(tiny_model, sampler="nope")
    with pytest.raises(ConfigError, match="num_samples"):
        audiodiff.generate(tiny_model, num_samples=0)


@pytest.mark.slow  # a 1000-step ladder
def test_ddim_any_step_count(tiny_model):
    for steps in (1, 1000):
        clip = audiodiff.generate(tiny_model, steps=steps, seed=0, seconds=0.05)[0]
        assert torch.isfinite(clip.waveform).all()


def test_sigma_min_ends_the_ladder_from_the_call_or_the_model_config(tiny_model, tmp_path):
    seen = []
    clip = audiodiff.generate(tiny_model, steps=4, spacing="karras", sigma_min=0.5, seed=3,
                              callback=lambda info: seen.append(float(info["sigma"])))[0]
    assert seen[-1] == pytest.approx(0.5) and clip.metadata["sigma_min"] == 0.5
    default = audiodiff.generate(tiny_model, steps=4, spacing="karras", seed=3)[0]
    assert default.metadata["sigma_min"] is None
    assert not torch.allclose(default.features, clip.features)
    tiny_model.config["sigma_min"] = 0.5  # the model's own default, saved with it
    again = audiodiff.generate(audiodiff.load(tiny_model.save(tmp_path / "m")), steps=4, spacing="karras", seed=3)[0]
    assert again.metadata["sigma_min"] == 0.5 and torch.allclose(again.features, clip.features, atol=1e-5)
    with pytest.raises(ConfigError, match="sigma_min must be in"):
        audiodiff.generate(tiny_model, sigma_min=-1.0)


@pytest.mark.parametrize("seconds", [None, 0.6])  # one window, and a long clip made in windows
def test_the_callback_reports_the_total_steps_of_the_call(tiny_model, seconds):
    steps = []
    audiodiff.generate(tiny_model, num_samples=3, batch_size=2, steps=2, seed=0, seconds=seconds, callback=steps.append)
    assert {info["total"] for info in steps} == {len(steps)}
    assert [info["batch"] for info in steps][0] == 0 and steps[-1]["batch"] == 1
