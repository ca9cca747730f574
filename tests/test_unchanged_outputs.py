"""Generation and every edit write exactly the same WAV bytes as before the redesign (issue #18).

The expected sha256 digests below were produced by the code before the move of the sampling
machinery out of ``generate.py`` and ``edit.py`` (commit 3878d43), on one CPU thread: each shipped
model makes a short clip with a few steps (one also a long clip, made in windows), and each edit runs
once on the shipped speech model.  Any change to the numbers a refactor must not change (the order of
the noise draws, the denoiser calls, the decoding) changes a digest.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from audiodiff import edit
from audiodiff.generate import generate
from audiodiff.hub import list_models, load

SHIPPED = ["speech", "music", "sfx", "sfx-uncond"]
PROMPTS = {"speech": "seven", "music": "a piano playing c4", "sfx": "door slam", "sfx-uncond": None}

#: sha256 of each clip's WAV bytes (16 hex digits) and sidecar fields (8), from the code at commit 3878d43;
#: the sidecars of clips made with ``ddpm`` were re-pinned when that sampler gained its ``eps_sq`` option
#: (``null`` unless ``variance="analytic"``; issue #22), their WAV digests unchanged; every clip of ``speech``
#: (generation and the edits) was re-pinned when the shipped ``speech`` model was replaced by its wider
#: teacher (issue #24): new weights and a new default sampler, the code unchanged (music and sfx digests kept)
EXPECTED: dict[str, str] = {
    "generate/speech/0": "7d36ca9930806f6f 2d64d29f",
    "generate/music/0": "1217b0dfee046cc9 833cd2d9",
    "generate/sfx/0": "cfeeb09c8c783169 b2bb8740",
    "generate/sfx-uncond/0": "b62f21da0c22c451 e36c09cc",
    "generate/speech-long/0": "eb90c72d0e122bf8 b7a45ec8",
    "generate/speech-guided/0": "6b6ad9987159eae3 d982a74e",
    "generate/speech-guided/1": "06c623466d3d0e7c b2452271",
    "inpaint/0": "2c924a8a057d2318 30d79918",
    "inpaint-band/0": "badfa9c7908e8a40 26aae889",
    "continue/0": "5df466f314c58eba 6b8fe39a",
    "continue/1": "ed8c73e3430dd515 59512a51",
    "variation/0": "307ecfd7feb71a6c d51f46fe",
    "interpolate/0": "29993879a518c84b 0d0d377a",
    "interpolate/1": "91a8cb812cbc0b2e 34c478e1",
    "interpolate/2": "062ebabca567f452 95aa2cb6",
    "interpolate-prompts/0": "62c229b13cf1b951 8bf255a6",
    "interpolate-prompts/1": "8e7a664e1127d7c3 69b92d5d",
    "loop/0": "2593a60342774a35 1bf093fb",
    "loop-audio/0": "effd44b8358a6d98 3934e840",
    "in-batches/0": "ec1eb91b801923aa e65329cb",
    "in-batches/1": "22edef0669cfc641 db4b2f1e",
    "in-batches/2": "d518aed2cb842673 711857e8",
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models():
    shipped = list_models()
    missing = [m for m in SHIPPED if m not in shipped]
    if missing:
        pytest.skip(f"shipped models missing: {missing}")
    return {name: load(name, device="cpu") for name in SHIPPED}


def _digest(clip, path: Path) -> str:
    """sha256 of the WAV bytes and of the sidecar's fields (less the command line and the version)."""
    clip.save(path, sidecar=False)
    meta = {k: v for k, v in clip.metadata.items() if k not in ("command", "audiodiff_version")}
    text = json.dumps(meta, sort_keys=True, default=str)
    return (hashlib.sha256(path.read_bytes()).hexdigest()[:16] + " " + hashlib.sha256(text.encode()).hexdigest()[:8])


def _tone(model, seconds: float) -> torch.Tensor:
    """``(1, S)`` a fixed test input at the model's rate: two sines."""
    t = torch.arange(int(seconds * model.sample_rate)) / model.sample_rate
    return (0.3 * torch.sin(2 * math.pi * 220 * t) + 0.1 * torch.sin(2 * math.pi * 660 * t))[None]


def _outputs(models, tmp_path: Path) -> dict[str, str]:
    out: dict[str, str] = {}

    def keep(name: str, clips) -> None:
        for i, clip in enumerate(clips):
            out[f"{name}/{i}"] = _digest(clip, tmp_path / f"{name.replace('/', '_')}_{i}.wav")

    for name in SHIPPED:
        keep(f"generate/{name}", generate(models[name], prompt=PROMPTS[name], seconds=0.5, steps=3, seed=1))
    speech = models["speech"]
    keep("generate/speech-long", generate(speech, prompt="three", seconds=1.6, steps=2, seed=2, overlap=0.4))
    keep("generate/speech-guided", generate(speech, prompt=["two", "five"], negative_prompt="nine", seconds=0.3,
                                            steps=2, seed=3, guidance_scale=2.0, guidance_rescale=0.5))
    tone = _tone(speech, 0.6)
    keep("inpaint", edit.inpaint(speech, tone, 0.2, 0.4, prompt="four", steps=4, jumps=1, jump_length=2, seed=4))
    keep("inpaint-band", edit.inpaint(speech, tone, 0.1, 0.3, fmin=500, fmax=2000, steps=2, seed=5))
    keep("continue", edit.continue_audio(speech, tone, 0.5, prompt="six", steps=2, seed=6, num_samples=2))
    keep("variation", edit.variation(speech, tone, 0.5, prompt="one", steps=4, seed=7))
    keep("interpolate", edit.interpolate(speech, tone, _tone(speech, 0.5).flip(-1), 3, steps=2))
    keep("interpolate-prompts", edit.interpolate_prompts(speech, "zero", "eight", 2, seconds=0.3, steps=2, seed=8))
    keep("loop", edit.loop(speech, seconds=0.4, prompt="two", steps=2, seed=9))
    keep("loop-audio", edit.loop(speech, prompt="two", steps=2, seed=10, audio=tone))
    keep("in-batches", edit.in_batches(edit.variation, speech, num_samples=3, seed=11, batch_size=2, audio=tone,
                                       strength=0.3, steps=3))
    return out


def test_outputs_unchanged(models, tmp_path: Path) -> None:
    actual = _outputs(models, tmp_path)
    assert actual == EXPECTED
