"""Editing: inpaint (RePaint), continue and long clips, variation (SDEdit), interpolation (DDIM
inversion + slerp, prompts), loops; seam scores; the CLI subcommands and their one-line errors."""

from __future__ import annotations

import json
import re
import math

import pytest
import torch
from conftest import perturb, tiny_config

import audiodiff
from audiodiff import DiffusionModel, registry
from audiodiff.audio import save_audio
from audiodiff.cli import main
from audiodiff.edit import (continue_audio, inpaint, interpolate, interpolate_prompts, load_input, loop, mel_band,
                            mel_centres, variation)
from audiodiff.errors import AudiodiffError, ConfigError
from audiodiff.sampling import (circular_denoiser, loop_seam_score, make_generators, plan_windows, repaint_segments,
                                resolve_sampler, run_inpainting, run_sampler, seam_score, slerp)

SR = 8000


def test_wave(seconds: float = 0.25, seed: int = 0) -> torch.Tensor:
    """``(1, S)``: a chirp with a little noise, at the tiny models' rate."""
    t = torch.arange(round(seconds * SR)) / SR
    g = torch.Generator().manual_seed(seed)
    chirp = 0.5 * torch.sin(2 * math.pi * (300 + 2000 * t) * t)
    return (chirp + 0.05 * torch.randn(t.shape, generator=g))[None]


test_wave.__test__ = False  # a helper, not a test


def features_of(model, wave):
    return model.from_net_layout(load_input(model, wave)[0])[0]  # (1, n_mels, T) -> (n_mels, T)


# -- inpainting -----------------------------------------------------------------------------------
def test_inpaint_keeps_the_known_region_and_changes_the_range(tiny_model, tmp_path):
    wave = test_wave()
    clips = inpaint(tiny_model, wave, 0.1, 0.18, steps=6, seed=3, num_samples=2)
    x0 = features_of(tiny_model, wave)
    a, b = clips[0].metadata["edit"]["frames"]
    assert (a, b) == (7, 12)  # frame centres k * 16 ms in [0.1, 0.18]
    for i, clip in enumerate(clips):
        assert clip.features.shape == x0.shape and clip.waveform.shape[0] == 1
        assert abs(clip.seconds - wave.shape[-1] / SR) < 0.02
        assert torch.allclose(clip.features[:, :a], x0[:, :a], atol=1e-4)
        assert torch.allclose(clip.features[:, b:], x0[:, b:], atol=1e-4)
        assert (clip.features[:, a:b] - x0[:, a:b]).abs().mean() > 0.1
        assert clip.metadata["seed"] == 3 + i and clip.metadata["edit"]["name"] == "inpaint"
        assert math.isfinite(clip.metadata["seam_ratio"]) and clip.metadata["seams"] == [a, b]
    assert not torch.allclose(clips[0].features, clips[1].features)
    path = clips[0].save(tmp_path / "a.wav")
    assert json.loads(path.with_suffix(".json").read_text())["edit"]["start"] == 0.1


def test_inpaint_a_frequency_band_only(tiny_model):
    wave = test_wave()
    clip = inpaint(tiny_model, wave, 0.05, 0.2, fmin=500, fmax=1500, steps=4, seed=0)[0]
    x0 = features_of(tiny_model, wave)
    lo, hi = clip.metadata["edit"]["mel_bins"]
    a, b = clip.metadata["edit"]["frames"]
    centres = mel_centres(tiny_model.representation)
    assert centres[lo] >= 500 and centres[hi - 1] <= 1500 and centres[lo - 1] < 500 and centres[hi] > 1500
    outside = torch.ones_like(x0, dtype=torch.bool)
    outside[lo:hi, a:b] = False
    assert torch.allclose(clip.features[outside], x0[outside], atol=1e-4)
    assert (clip.features[lo:hi, a:b] - x0[lo:hi, a:b]).abs().mean() > 0.1


def test_inpaint_on_a_2d_net_with_resampling():
    torch.manual_seed(0)
    model = perturb(DiffusionModel(tiny_config("unet2d"))).eval()
    wave = test_wave()
    calls = []
    clip = inpaint(model, wave, 0.1, 0.2, fmax=2000, steps=6, jumps=2, jump_length=2, seed=0, callback=calls.append)[0]
    assert len(calls) == 6 + 2 * 2 * 2 and [c["i"] for c in calls] == list(range(len(calls)))
    x0 = features_of(model, wave)
    a, _ = clip.metadata["edit"]["frames"]
    assert torch.allclose(clip.features[:, :a], x0[:, :a], atol=1e-4)


@pytest.mark.parametrize("name", registry.names("sampler"))
def test_every_sampler_keeps_the_known_region(tiny_model, name):
    """Conformance: the known-region denoiser works with any registered sampler (and plugins)."""
    wave = test_wave()
    clip = inpaint(tiny_model, wave, 0.1, 0.2, steps=4, sampler=name, seed=0)[0]
    x0 = features_of(tiny_model, wave)
    a, b = clip.metadata["edit"]["frames"]
    assert torch.allclose(clip.features[:, :a], x0[:, :a], atol=1e-3)
    assert torch.allclose(clip.features[:, b:], x0[:, b:], atol=1e-3)


def test_known_region_is_the_clip_noised_to_the_current_sigma(tiny_model):
    """At every step of an ODE sampler the known part is x0 + sigma * eps with one eps (RePaint eq. 8)."""
    x0 = load_input(tiny_model, test_wave())[0]
    known = torch.ones_like(x0, dtype=torch.bool)
    known[..., 5:10] = False
    sigmas = tiny_model.schedule.inference_sigmas(5)
    gens = make_generators([0])
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9))
    start = torch.where(known, x0 + sigmas[0] * eps, eps * 3)
    seen = []
    run_inpainting(tiny_model, start, x0, known, sigmas, resolve_sampler("ddim", tiny_model), gens,
                   tiny_model.denoise, callback=lambda info: seen.append((info["sigma_next"], info["x"])))
    for sigma, x in seen[:-1]:
        assert torch.allclose(((x - x0) / sigma)[known], eps[known], atol=1e-3)
    assert torch.equal(seen[-1][1][known], x0[known])


def test_repaint_segments():
    assert repaint_segments(5, 0, 2) == [(0, 5)]
    assert repaint_segments(4, 1, 2) == [(0, 2), (2, 0), (0, 4)]
    assert repaint_segments(6, 1, 2) == [(0, 2), (2, 0), (0, 4), (4, 2), (2, 6)]
    segs = repaint_segments(50, 9, 10)
    assert sum(j - i for i, j in segs if i < j) == 50 + 4 * 9 * 10  # jump points 10, 20, 30, 40
    assert segs[-1][1] == 50 and all(i - j == 10 for i, j in segs if i > j)


def test_mel_centres_match_torchaudio_and_librosa():
    librosa = pytest.importorskip("librosa")
    from audiodiff.audio import Mel

    for scale in ("slaney", "htk"):
        rep = Mel(sample_rate=SR, n_fft=512, hop_length=128, n_mels=32, f_min=20.0, mel_scale=scale)
        ours = mel_centres(rep)
        ref = librosa.mel_frequencies(n_mels=34, fmin=20.0, fmax=SR / 2, htk=scale == "htk")[1:-1]
        assert torch.allclose(ours, torch.as_tensor(ref, dtype=torch.float64), rtol=1e-6)
        peaks = rep.filterbank.argmax(dim=1).double() * SR / 512  # (n_mels,) the filters' peak FFT bins
        assert (peaks - ours).abs().max() <= SR / 512
        assert mel_band(rep, None, None) is None and mel_band(rep, None, 4000.0) == (0, 32)


@pytest.mark.parametrize("kwargs, message", [
    ({"start": 0.2, "end": 0.1}, "need 0 <= start < end"),
    ({"start": -0.1, "end": 0.1}, "need 0 <= start < end"),
    ({"start": 0.1, "end": 5.0}, "the clip's length"),
    ({"start": 0.101, "end": 0.102}, "holds no mel frame"),
    ({"start": "a", "end": 0.2}, "start must be a number"),
    ({"start": 0.1, "end": 0.2, "fmin": 3000, "fmax": 1000}, "fmin < fmax"),
    ({"start": 0.1, "end": 0.2, "fmax": 9000}, "the model's mel range"),
    ({"start": 0.1, "end": 0.2, "fmin": 1000, "fmax": 1001}, "holds no mel bin"),
    ({"start": 0.1, "end": 0.2, "jumps": -1}, r"jumps must be an integer in \[0, 100\]"),
    ({"start": 0.1, "end": 0.2, "jumps": 1, "jump_length": 4}, "jump_length (4) must be below"),
    ({"start": 0.1, "end": 0.2, "prompt": "a dog"}, "unconditional"),
    ({"start": 0.1, "end": 0.2, "num_samples": 0}, "num_samples"),
])
def test_inpaint_errors(tiny_model, kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        inpaint(tiny_model, test_wave(), steps=4, **kwargs)
    assert "\n" not in str(info.value)


def test_inpaint_a_long_clip_uses_a_window_of_context(tiny_model):
    wave = test_wave(1.0)
    x0 = features_of(tiny_model, wave)
    calls = []
    clip = inpaint(tiny_model, wave, 0.5, 0.55, steps=3, seed=0, callback=calls.append)[0]
    assert calls[0]["x"].shape[-1] == tiny_model.representation.frames_for(tiny_model.max_seconds)
    a, b = clip.metadata["edit"]["frames"]
    assert torch.allclose(clip.features[:, :a], x0[:, :a], atol=1e-4)
    assert torch.allclose(clip.features[:, b:], x0[:, b:], atol=1e-4)
    with pytest.raises(ConfigError, match="longer than this model's window"):
        inpaint(tiny_model, wave, 0.1, 0.9, steps=3)


# -- continuation and long clips ---------------------------------------------------------------------
def test_continue_extends_and_keeps_the_clip(tiny_model):
    wave = test_wave()
    x0 = features_of(tiny_model, wave)
    clips = continue_audio(tiny_model, wave, 0.5, steps=3, seed=1, num_samples=2)
    frames = x0.shape[-1] + tiny_model.representation.frames_for(0.5) - 1
    for clip in clips:
        assert clip.features.shape == (32, frames)
        assert abs(clip.seconds - (wave.shape[-1] / SR + 0.5)) < 0.02
        fade = clip.metadata["edit"]["crossfade_frames"]
        assert torch.equal(clip.features[:, :x0.shape[-1] - fade], x0[:, :x0.shape[-1] - fade])
        assert clip.metadata["seams"][0] == x0.shape[-1] - fade and math.isfinite(clip.metadata["seam_ratio"])
    assert clips[0].metadata["edit"]["windows"] == 4  # 16 + 3 x 8 new frames >= 47


def test_long_form_generate(tiny_model):
    calls = []
    clips = audiodiff.generate(tiny_model, seconds=1.0, steps=2, seed=0, num_samples=2, callback=calls.append)
    plan = plan_windows(tiny_model, tiny_model.representation.frames_for(1.0))
    for clip in clips:
        assert clip.features.shape[-1] == tiny_model.representation.frames_for(1.0)
        assert abs(clip.seconds - 1.0) < 0.02
        assert clip.metadata["long_form"]["windows"] == plan.count == 7
        assert math.isfinite(clip.metadata["seam_ratio"]) and clip.metadata["seconds"] == 1.0
    assert len(calls) == 2 * plan.count
    again = audiodiff.generate(tiny_model, seconds=1.0, steps=2, seed=1)[0]
    assert torch.allclose(again.features, clips[1].features, atol=1e-4), "clip i is reproducible from seed + i"
    with pytest.raises(ConfigError, match="overlap"):
        audiodiff.generate(tiny_model, seconds=1.0, overlap=1.0)


def test_seam_score():
    t = torch.arange(40.0)
    ramp = torch.stack([t * 0.1, -t * 0.2])  # (2, 40): every frame step is the same
    assert seam_score(ramp, [10, 20]) == pytest.approx(1.0)
    smooth = torch.sin(torch.arange(32.0)[None] * 0.2 + torch.arange(8.0)[:, None])  # (8, 32)
    assert 0.5 < seam_score(smooth, [16]) < 2.0
    jump = smooth.clone()
    jump[:, 16:] += 3.0
    assert seam_score(jump, [16]) > 10
    for bad in ([], [0], [32]):
        with pytest.raises(ConfigError, match="seam frames"):
            seam_score(smooth, bad)


# -- variation ---------------------------------------------------------------------------------------
def test_variation_strength(tiny_model):
    wave = test_wave()
    x0 = features_of(tiny_model, wave)
    near = variation(tiny_model, wave, 0.01, steps=100, seed=0)[0]
    assert near.metadata["edit"]["steps_run"] == 1 and near.metadata["edit"]["start_sigma"] < 0.05
    assert (near.features - x0).abs().mean() < 0.05 * x0.abs().mean()
    half = variation(tiny_model, wave, 0.5, steps=4, seed=0)[0]
    assert half.metadata["edit"]["steps_run"] == 2
    full = variation(tiny_model, wave, 1.0, steps=4, seed=7, num_samples=2)
    other = variation(tiny_model, test_wave(seed=1) * 0.1, 1.0, steps=4, seed=7)[0]
    plain = audiodiff.generate(tiny_model, steps=4, seed=7)[0]
    assert torch.allclose(full[0].features, plain.features, atol=1e-4)  # strength 1 ignores the clip
    assert torch.allclose(other.features, plain.features, atol=1e-4)
    assert full[1].metadata["seed"] == 8


@pytest.mark.parametrize("strength", [0, -0.5, 1.5, float("nan"), "high", True])
def test_variation_bad_strength(tiny_model, strength):
    with pytest.raises(ConfigError, match="strength"):
        variation(tiny_model, test_wave(), strength)


def test_variation_rejects_a_clip_longer_than_the_window(tiny_model):
    with pytest.raises(ConfigError, match="at most 0.25 s"):
        variation(tiny_model, test_wave(1.0), 0.5)


# -- interpolation -----------------------------------------------------------------------------------
def test_ddim_runs_up_an_ascending_ladder(tiny_model):
    """DDIM inversion is the ddim sampler on the reversed ladder: check it is a literal Euler step up."""
    x = load_input(tiny_model, test_wave())[0]
    sigmas = torch.tensor([0.1, 0.5, 2.0])
    got = run_sampler(tiny_model, x, sigmas, resolve_sampler("ddim", tiny_model))
    with torch.no_grad():
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            d = (x - tiny_model.denoise(x, s[None])) / s
            x = x + (s_next - s) * d
    assert torch.allclose(got, x, rtol=1e-4, atol=1e-4)


def test_slerp():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    out = slerp(a, b, torch.linspace(0, 1, 5))
    assert out.shape == (5, 2) and torch.allclose(out.norm(dim=1), torch.full((5,), 3.0))
    assert torch.allclose(out[0], a[0]) and torch.allclose(out[-1], b[0])
    assert torch.allclose(slerp(a, a, torch.tensor([0.5])), a)


def model_clips(model, n=2, steps=10):
    """Clips the model made itself: on its own data manifold, where its ODE is well behaved
    (a random tiny net's ODE from real audio is not, so its inversion is not a fair test)."""
    return audiodiff.generate(model, num_samples=n, steps=steps, seed=0)


def test_interpolate_clips(tiny_model, tmp_path):
    a, b = model_clips(tiny_model)
    clips = interpolate(tiny_model, a, b, 3, steps=20, sampler="heun", spacing="leading")
    assert len(clips) == 3 and [c.metadata["t"] for c in clips] == [0.0, 0.5, 1.0]
    xa, xb = a.features, b.features
    errors = clips[0].metadata["edit"]["inversion_error"]
    assert errors[0] < 0.01 * xa.abs().mean() and errors[1] < 0.01 * xb.abs().mean()
    assert (clips[1].features - xa).abs().mean() > 10 * errors[0]
    assert clips[0].metadata["seed"] is None


def test_inversion_error_shrinks_with_steps(tiny_model):
    a, b = model_clips(tiny_model)
    errs = [interpolate(tiny_model, a, b, 2, steps=s)[0].metadata["edit"]["inversion_error"][0] for s in (5, 40)]
    assert errs[1] < errs[0] / 2


def test_interpolate_errors(tiny_model):
    with pytest.raises(ConfigError, match="deterministic sampler"):
        interpolate(tiny_model, test_wave(), test_wave(seed=1), 3, steps=3, sampler="ddpm")
    with pytest.raises(ConfigError, match=r"n must be an integer in \[2, "):
        interpolate(tiny_model, test_wave(), test_wave(seed=1), 1)
    with pytest.raises(ConfigError, match="unconditional"):
        interpolate_prompts(tiny_model, "a", "b", 3)


def conditional_model() -> DiffusionModel:
    torch.manual_seed(0)
    cond = {"prompt": {"name": "tokens", "dim": 16, "layers": 1, "heads": 2, "examples": ["a dog barks"]}}
    return perturb(DiffusionModel(tiny_config(conditioning=cond))).eval()


def test_interpolate_prompts_ends_are_the_prompts():
    model = conditional_model()
    clips = interpolate_prompts(model, "a dog barks", "wind", 3, steps=3, seed=4)
    assert [c.metadata["t"] for c in clips] == [0.0, 0.5, 1.0] and all(c.metadata["seed"] == 4 for c in clips)
    for clip, prompt in ((clips[0], "a dog barks"), (clips[-1], "wind")):
        plain = audiodiff.generate(model, prompt=prompt, steps=3, seed=4)[0]
        assert torch.allclose(clip.features, plain.features, rtol=1e-3, atol=1e-3)
    assert not torch.allclose(clips[1].features, clips[0].features, atol=1e-2)
    inv = interpolate(model, test_wave(), test_wave(seed=1), 2, prompt="wind", guidance_scale=1.0, steps=4)
    assert inv[0].metadata["prompt"] == "wind"


def test_edits_take_a_prompt_on_a_conditional_model():
    model = conditional_model()
    wave = test_wave()
    a = inpaint(model, wave, 0.1, 0.2, prompt="wind", steps=3, seed=0)[0]
    b = variation(model, wave, 0.6, prompt="a dog barks", guidance_scale=2.0, steps=3, seed=0)[0]
    c = loop(model, prompt="wind", steps=3, seed=0)[0]
    d = continue_audio(model, wave, 0.2, prompt="wind", steps=3, seed=0)[0]
    assert [x.metadata["prompt"] for x in (a, b, c, d)] == ["wind", "a dog barks", "wind", "wind"]
    assert b.metadata["guidance_scale"] == 2.0


# -- loops -------------------------------------------------------------------------------------------
def test_circular_denoiser_makes_a_local_op_circular():
    kernel = torch.tensor([[[0.25, 0.5, 0.25]]])

    def blur(x, sigma):  # (B, 1, T): zero-padded, so not shift-equivariant at the ends
        return torch.nn.functional.conv1d(x, kernel, padding=1)

    x = torch.randn(1, 1, 12)
    wrapped = circular_denoiser(blur, 2)
    assert torch.allclose(wrapped(x.roll(5, -1), None), wrapped(x, None).roll(5, -1), atol=1e-6)
    assert not torch.allclose(blur(x.roll(5, -1), None), blur(x, None).roll(5, -1), atol=1e-6)


def test_loop(tiny_model):
    clips = loop(tiny_model, seconds=0.2, steps=3, seed=0, num_samples=2)
    assert len(clips) == 2 and abs(clips[0].seconds - 0.2) < 0.02
    for clip in clips:
        assert math.isfinite(clip.metadata["seam_ratio"]) and clip.metadata["edit"]["wrap_frames"] == 3
    with pytest.raises(ConfigError, match="wrap"):
        loop(tiny_model, wrap=0)
    with pytest.raises(ConfigError, match="beyond what this model makes"):
        loop(tiny_model, seconds=5)


# -- model-free checks: an exact denoiser for smooth features -------------------------------------------
def gp_model(length: float = 3.0) -> DiffusionModel:
    """A tiny model whose denoiser is exact for features that are, per mel bin, a unit-variance
    Gaussian process in time with a squared-exponential kernel of ``length`` frames:
    ``D(x) = x (K + sigma^2 I)^-1 K``.  Its samples are smooth, so seams show."""
    model = DiffusionModel(tiny_config()).eval()
    cache: dict = {}

    def denoise(x, sigma):
        frames, s = x.shape[-1], float(sigma.reshape(-1)[0])
        if (frames, s) not in cache:
            t = torch.arange(frames, dtype=torch.float64)
            k = torch.exp(-(t[:, None] - t[None]) ** 2 / (2 * length**2))  # (T, T)
            cache[frames, s] = torch.linalg.solve(k + s**2 * torch.eye(frames, dtype=torch.float64), k).T.float()
        return x @ cache[frames, s]

    model.denoise = denoise
    return model


def test_seams_of_an_exact_denoiser():
    model = gp_model()
    window = model.representation.frames_for(model.seconds)
    plain = audiodiff.generate(model, steps=20, seed=0, num_samples=4)
    naive = [seam_score(torch.cat([a.features, b.features], -1), [window]) for a, b in zip(plain, plain[1:])]
    long = [c.metadata["seam_ratio"] for c in audiodiff.generate(model, seconds=1.0, steps=20, seed=0, num_samples=3)]
    assert min(naive) > 3 and max(long) < 2, (naive, long)  # measured: naive 3.4-5.1, windows 1.35-1.5
    loops = [c.metadata["seam_ratio"] for c in loop(model, steps=20, seed=0, num_samples=3)]
    ends = [loop_seam_score(c.features) for c in plain]
    assert min(ends) > 3 and max(loops) < 1.5, (ends, loops)  # measured: plain 4.2-5.2, loops 0.9-1.1


def test_looping_a_clip_regenerates_only_its_ends_and_closes_the_seam():
    model = gp_model()
    plain = audiodiff.generate(model, steps=20, seed=0, num_samples=3)
    before = [loop_seam_score(c.features) for c in plain]
    after = []
    for i, clip in enumerate(plain):
        (looped,) = loop(model, audio=clip, steps=20, seed=10 + i, wrap=0.4)
        tail = looped.metadata["edit"]["regenerated_frames"][0][1]
        assert looped.features.shape == clip.features.shape and tail >= 2
        assert torch.equal(looped.features[..., tail:-tail], clip.features[..., tail:-tail])  # the middle is kept
        assert not torch.allclose(looped.features[..., :tail], clip.features[..., :tail])
        after.append(looped.metadata["seam_ratio"])
    assert min(before) > 3 and max(after) < 1.5, (before, after)


def test_loop_of_a_clip_errors(tiny_model):
    clip = audiodiff.generate(tiny_model, steps=2, seed=0)[0]
    with pytest.raises(ConfigError, match="exclude each other"):
        loop(tiny_model, audio=clip, seconds=0.2)
    long = audiodiff.generate(tiny_model, steps=2, seed=0, seconds=2 * tiny_model.max_seconds)[0]
    with pytest.raises(ConfigError, match="loops clips of up to"):
        loop(tiny_model, audio=long, steps=2)


def test_inversion_of_an_exact_denoiser():
    model = gp_model()
    a, b = audiodiff.generate(model, steps=20, seed=0, num_samples=2)
    clips = interpolate(model, a, b, 3, steps=20, sampler="heun", spacing="leading")
    err = clips[0].metadata["edit"]["inversion_error"]
    assert max(err) < 0.01 * a.features.abs().mean()


# -- the command line --------------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    model = perturb(DiffusionModel(tiny_config())).save(tmp_path / "model")
    a = save_audio(tmp_path / "a.wav", test_wave(), SR)
    b = save_audio(tmp_path / "b.wav", test_wave(seed=1) * 0.3, SR)
    return {"model": model, "a": a, "b": b, "out": tmp_path / "out", "tmp": tmp_path}


@pytest.mark.parametrize("args, names", [
    (["inpaint", "-i", "{a}", "--start", "0.1", "--end", "0.2", "--fmin", "300", "--jumps", "1",
      "--jump-length", "2", "--seed", "5", "--sampler", "ddim", "--sampler-arg", "eta=0.5"], ["inpaint_000_seed5"]),
    (["continue", "-i", "{a}", "--seconds", "0.3", "--seed", "1", "-n", "2"],
     ["continue_000_seed1", "continue_001_seed2"]),
    (["variation", "-i", "{a}", "--strength", "0.5", "-n", "2", "--seed", "0"],
     ["variation_000_seed0", "variation_001_seed1"]),
    (["interpolate", "-i", "{a}", "--input2", "{b}", "--num-steps", "3"], ["interp_000", "interp_001", "interp_002"]),
    (["loop", "--seconds", "0.2", "--seed", "2", "--prefix", "lp"], ["lp_000_seed2"]),
    (["loop", "-i", "{a}", "--seed", "2", "--prefix", "lpi"], ["lpi_000_seed2"]),
])
def test_cli_edits_write_wavs_and_sidecars(files, capsys, args, names):
    argv = [a.format(**files) for a in args] + ["--model", str(files["model"]), "--out", str(files["out"]),
                                                "--steps", "3", "--quiet"]
    assert main(argv) == 0
    written = sorted(p.name for p in files["out"].iterdir())
    # each name ends in the 8-digit hash of its settings (interpolation's differ in t)
    parts = [re.fullmatch(r"(.+)_[0-9a-f]{8}\.(json|wav)", p) for p in written]
    assert all(parts), written
    assert sorted(f"{m[1]}.{m[2]}" for m in parts) == sorted(f"{n}.{ext}" for n in names for ext in ("json", "wav"))
    meta = json.loads(next(files["out"].glob(f"{names[0]}_*.json")).read_text())
    assert meta["steps"] == 3 and meta["edit"]["name"] == args[0] and meta["model"] == str(files["model"])
    if "-i" in args:
        assert meta["edit"]["input"] == str(files["a"])
    assert capsys.readouterr().out.count(".wav") == len(names)


def test_cli_generate_long(files, capsys):
    assert main(["generate", "--model", str(files["model"]), "--out", str(files["out"]), "--seconds", "0.6",
                 "--steps", "2", "--seed", "0", "--quiet"]) == 0
    meta = json.loads(next(files["out"].glob("clip_000_seed0_*.json")).read_text())
    assert meta["seconds"] == 0.6 and meta["long_form"]["windows"] == 4 and "seam_ratio" in meta


@pytest.mark.parametrize("args, message", [
    (["inpaint", "-i", "{a}", "--start", "0.2", "--end", "0.1"], "need 0 <= start < end"),
    (["inpaint", "-i", "{tmp}/none.wav", "--start", "0", "--end", "0.1"], "audio file not found"),
    (["inpaint", "-i", "{a}", "--start", "0", "--end", "0.1", "--fmin", "2000", "--fmax", "100"], "fmin < fmax"),
    (["inpaint", "-i", "{a}", "--start", "0", "--end", "0.1", "--prompt", "x"], "unconditional"),
    (["inpaint", "-i", "{a}", "--start", "0", "--end", "0.1", "--steps", "0"], "steps must be an integer >= 1"),
    (["continue", "-i", "{a}", "--seconds", "-1"], "seconds must be in (0, "),
    (["continue", "-i", "{a}", "--seconds", "1", "--overlap", "1.5"], "overlap must be in (0, 1)"),
    (["variation", "-i", "{a}", "--strength", "0"], "strength must be in (0, 1]"),
    (["variation", "-i", "{a}", "--strength", "2"], "strength must be in (0, 1]"),
    (["variation", "-i", "{model}/config.json", "--strength", "0.5"], "cannot decode audio file"),
    (["interpolate", "-i", "{a}"], "needs both --input and --input2"),
    (["interpolate", "-i", "{a}", "--input2", "{b}", "--num-steps", "1"], "--num-steps must be >= 2"),
    (["interpolate", "--prompt", "x"], "--input and --input2, or --prompt and --prompt2"),
    (["interpolate", "--prompt", "x", "--prompt2", "y"], "unconditional"),
    (["interpolate", "-i", "{a}", "--input2", "{b}", "--sampler", "ddpm"], "deterministic sampler"),
    (["loop", "--seconds", "9"], "beyond what this model makes"),
    (["loop", "--wrap", "2"], "wrap must be in (0, 1]"),
    (["loop", "-i", "{a}", "--seconds", "0.2"], "seconds and audio exclude each other"),
    (["loop", "--model", "{tmp}/nope"], "no model folder"),
])
def test_cli_edit_errors_are_one_line_exit_2(files, capsys, args, message):
    argv = [args[0], "--model", str(files["model"]), "--out", str(files["out"]), "--quiet", "--steps", "2"]
    argv += [a.format(**files) for a in args[1:]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("audiodiff: error: ") and message in err[0], err


def test_missing_file_is_an_audiodiff_error(tiny_model, tmp_path):
    with pytest.raises(AudiodiffError, match="audio file not found"):
        variation(tiny_model, tmp_path / "none.wav", 0.5)


# -- slower checks -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_ddim_inversion_with_many_steps(tiny_model):
    a, b = model_clips(tiny_model)
    errors = [interpolate(tiny_model, a, b, 2, steps=steps, sampler="ddim")[0].metadata["edit"]["inversion_error"]
              for steps in (100, 400)]
    coarse, fine = errors
    assert fine[0] < 0.01 * a.features.abs().mean() and fine[1] < 0.01 * b.features.abs().mean()
    assert fine[0] < coarse[0] / 3 and fine[1] < coarse[1] / 3, "DDIM inversion error is first order in the step"


@pytest.mark.slow
def test_cli_generate_30_seconds(files):
    assert main(["generate", "--model", str(files["model"]), "--out", str(files["out"]), "--seconds", "30",
                 "--steps", "2", "--seed", "0", "--quiet"]) == 0
    meta = json.loads(next(files["out"].glob("clip_000_seed0_*.json")).read_text())
    assert meta["seconds"] == 30 and meta["long_form"]["windows"] > 100


@pytest.mark.parametrize("case", ["inpaint-jumps", "continue", "variation", "loop", "loop-audio", "interpolate",
                                  "interpolate-heun", "in-batches"])  # interpolate_prompts: tests/test_ui.py
def test_every_edit_reports_the_total_steps_of_the_call(tiny_model, case):
    from audiodiff.edit import in_batches

    steps, wave = [], test_wave()
    run = {
        "inpaint-jumps": lambda cb: inpaint(tiny_model, wave, 0.05, 0.15, steps=6, jumps=2, jump_length=2, callback=cb),
        "continue": lambda cb: continue_audio(tiny_model, wave, 0.4, steps=3, jumps=1, jump_length=1, callback=cb),
        "variation": lambda cb: variation(tiny_model, wave, 0.6, steps=5, callback=cb),
        "loop": lambda cb: loop(tiny_model, steps=3, callback=cb),
        "loop-audio": lambda cb: loop(tiny_model, audio=wave, steps=3, callback=cb),
        "interpolate": lambda cb: interpolate(tiny_model, wave, test_wave(seed=1), 5, steps=3, batch_size=2, callback=cb),
        "interpolate-heun": lambda cb: interpolate(tiny_model, wave, test_wave(seed=1), 3, steps=3, sampler="heun",
                                                   callback=cb),
        "in-batches": lambda cb: list(in_batches(variation, tiny_model, num_samples=3, batch_size=2, audio=wave,
                                                 strength=1.0, steps=2, callback=cb)),
    }[case]
    run(steps.append)
    assert steps and all(info["total"] == len(steps) for info in steps)
