"""Likelihood of real audio under the shipped speech model (the likelihood issue's test)."""

from __future__ import annotations

import pytest
import torch

import audiodiff
from audiodiff.likelihood import bits_per_dim_vlb


@pytest.mark.slow
def test_real_clips_score_lower_bits_per_dim_than_noise_or_reversed(shared_data):
    if "speech" not in audiodiff.list_models():
        pytest.skip("no shipped speech model")
    from audiodiff.data import AudioDataset, prepare_fsdd

    model = audiodiff.load("speech")
    test = [i for i in prepare_fsdd(shared_data / "fsdd") if i.split == "test"][::30]  # 10 held-out clips
    clips = AudioDataset(test, sample_rate=model.sample_rate, seconds=model.seconds, crop="start",
                         trim_silence_db=40, loudness_normalize=-20)
    real = torch.stack([clips[i]["waveform"] for i in range(len(clips))])  # (B, 1, S)
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(0)) * real.std()
    reversed_ = real.flip(-1)
    scores = {}
    with torch.no_grad():
        for name, wave in {"real": real, "noise": noise, "reversed": reversed_}.items():
            x0 = model.encode(wave)
            scores[name] = bits_per_dim_vlb(model, x0, steps=32, generator=torch.Generator().manual_seed(1)).mean().item()
    assert scores["real"] < scores["noise"] and scores["real"] < scores["reversed"], scores
