"""Distillation: guidance-distilled and progressively halved students (audiodiff.distill, `audiodiff distill`)."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from audiodiff import DiffusionModel, registry
from audiodiff.distill import (Distillation, DistillConfig, distill, guided_target, make_student, plan,
                               progressive_target)
from audiodiff.errors import ConfigError
from audiodiff.generate import generate
from audiodiff.sampling import conditioned_denoiser, inference_sigmas, initial_noise, make_generators, run_sampler
from conftest import perturb, tiny_config
from train_helpers import ToneDataset

LABELS = [str(i) for i in range(12)]
TRAIN = dict(batch_size=8, checkpoint_every=50, log_every=10, warmup_steps=5, num_workers=0, progress=False,
             lr=2e-3, ema_decay=0.0)


def label_teacher(seed: int = 0) -> DiffusionModel:
    torch.manual_seed(seed)
    config = tiny_config(conditioning={"label": {"name": "label", "labels": LABELS, "dim": 16}}, guidance_scale=3.0)
    model = perturb(DiffusionModel(config), seed, scale=0.05).eval()
    with torch.no_grad():
        model.net.embedding.cond_proj.weight.mul_(40)  # so that the prompt, and guidance, matter
    return model


def training_inputs(model: DiffusionModel, n: int = 8, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    data = ToneDataset(n)
    batch = {"waveform": torch.stack([data[i]["waveform"] for i in range(n)]), "label": [str(i % 12) for i in range(n)],
             "index": list(range(n))}
    x0 = model.encode_batch(batch)
    sigma = torch.exp(torch.randn(n, generator=g) * 1.2 - 0.5)
    x = x0 + sigma[:, None, None] * torch.randn(x0.shape, generator=g)
    return batch, x, sigma


def test_progressive_target_lands_where_two_teacher_steps_land():
    """One DDIM step from x with the target as its clean estimate reaches the teacher's two-step result."""
    def teacher(x, s):  # the exact denoiser of N(0, 1) data
        return x / (1 + s.reshape(-1, 1, 1) ** 2)

    x = torch.randn(3, 4, 5)
    sigmas = torch.tensor([[5.0, 2.0, 0.5], [1.0, 0.3, 0.0], [80.0, 10.0, 1.0]])
    target = progressive_target(teacher, x, sigmas)
    s0, s1, s2 = (sigmas[:, k].reshape(-1, 1, 1) for k in range(3))
    d = teacher(x, sigmas[:, 0])
    x1 = d + s1 / s0 * (x - d)
    d = teacher(x1, sigmas[:, 1])
    two_steps = d + s2 / s1 * (x1 - d)
    one_step = target + s2 / s0 * (x - target)
    torch.testing.assert_close(one_step, two_steps)


def test_a_new_student_is_its_teachers_conditional_denoiser():
    teacher = label_teacher()
    student = make_student(teacher, {"teacher": "t"})
    assert student.takes_guidance and not teacher.takes_guidance
    batch, x, sigma = training_inputs(teacher)
    inputs = teacher.batch_inputs(batch, [True] * len(sigma))
    with torch.no_grad():
        for w in (0.0, 1.0, 5.0):
            torch.testing.assert_close(student.denoise(x, sigma, guidance=w, **inputs), teacher.denoise(x, sigma, **inputs))


@pytest.mark.slow
def test_guidance_distilled_student_matches_the_guided_teacher(tmp_path):
    """After a short round the one-pass student at scale w is close to the teacher's two-pass guided denoiser."""
    torch.manual_seed(0)
    teacher = label_teacher()
    cfg = DistillConfig(methods=("guidance",), guidance_range=(1.0, 4.0), train={**TRAIN, "steps": 300})
    student = distill(teacher, ToneDataset(48), tmp_path / "work", cfg, out=tmp_path / "student")
    batch, x, sigma = training_inputs(teacher, n=12)
    inputs = teacher.batch_inputs(batch, [True] * len(sigma))
    null = teacher.batch_inputs(batch, [False] * len(sigma))
    errors = {}
    with torch.no_grad():
        for w in (2.5, 3.5):  # where guidance moves the denoiser most (the relative error is noisy near w = 1)
            scale = torch.full((len(sigma),), w)
            want = guided_target(teacher, x, sigma, scale, inputs, null)
            before = (teacher.denoise(x, sigma, **inputs) - want).pow(2).mean()
            after = (student.denoise(x, sigma, guidance=w, **inputs) - want).pow(2).mean()
            errors[w] = (float(before), float(after))
            assert after < 0.35 * before, errors
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert saved["net"]["guidance_input"] is True
    assert saved["distillation"]["rounds"] == [{"round": "guidance", "steps": None}]
    assert saved["distillation"]["guidance_range"] == [1.0, 4.0]


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory):
    """A tiny unconditional model trained briefly on tones: its 2- and 4-step DDIM outputs differ."""
    from audiodiff.training import TrainConfig, fit

    torch.manual_seed(0)
    model = DiffusionModel(tiny_config(spacing="trailing"))
    return fit(model, ToneDataset(48), tmp_path_factory.mktemp("teacher"),
               TrainConfig(**{**TRAIN, "steps": 300, "fit_stats_batches": 2})).eval()


@pytest.mark.slow
def test_a_progressive_round_brings_two_steps_closer_to_the_teachers_four(trained_teacher, tmp_path):
    teacher = trained_teacher
    ladder = inference_sigmas(teacher, 4, "trailing")

    def sample(model, sigmas):
        x = initial_noise(model, 16, float(sigmas[0]), make_generators(range(16)))
        return run_sampler(model, x, sigmas, registry.build("sampler", {"name": "ddim"}), make_generators(range(16)),
                           None, model.denoise)

    with torch.no_grad():
        want = sample(teacher, ladder)
        before = float((sample(teacher, ladder[::2]) - want).pow(2).mean())
    cfg = DistillConfig(steps=2, start_steps=4, spacing="trailing", methods=("progressive",),
                        train={**TRAIN, "steps": 500, "lr": 2e-3})
    student = distill(teacher, ToneDataset(48), tmp_path, cfg)
    assert student.config["sigmas"] == pytest.approx(ladder[::2].tolist())
    assert student.config["steps"] == 2 and student.config["sampler"]["name"] == "ddim"
    with torch.no_grad():
        after = float((sample(student, inference_sigmas(student)) - want).pow(2).mean())
    assert after < 0.85 * before, (before, after)  # a 16-channel net learns the noise -> sample map slowly


def test_a_student_saves_loads_and_runs_every_sampler_and_edit(tmp_path):
    from audiodiff.edit import continue_audio, inpaint, interpolate, interpolate_prompts, loop, variation
    from audiodiff.hub import load

    teacher = label_teacher()
    cfg = DistillConfig(steps=2, start_steps=4, train={**TRAIN, "steps": 4, "checkpoint_every": 2})
    distill(teacher, ToneDataset(16), tmp_path / "work", cfg, out=tmp_path / "student")
    student = load(tmp_path / "student")
    assert student.takes_guidance and student.config["steps"] == 2
    assert [r["round"] for r in student.config["distillation"]["rounds"]] == ["guidance", "steps-2"]
    clip = generate(student, 1, prompt="3", seed=0)[0]
    assert torch.isfinite(clip.waveform).all()
    for name in registry.names("sampler"):
        out = generate(student, 1, prompt="3", seed=0, sampler=name, steps=2)[0]
        assert torch.isfinite(out.waveform).all(), name
    audio = clip.waveform
    for result in (inpaint(student, audio, start=0.05, end=0.15, prompt="3", seed=1),
                   continue_audio(student, audio, seconds=0.25, prompt="3", seed=1),
                   variation(student, audio, strength=0.5, prompt="3", seed=1),
                   interpolate(student, audio, audio, 2, prompt="3"),
                   interpolate_prompts(student, "3", "7", 2, seed=1),
                   loop(student, seconds=0.25, prompt="3", seed=1)):
        assert all(torch.isfinite(c.waveform).all() for c in result)


def test_a_student_makes_one_pass_per_step_and_two_with_a_negative_prompt():
    student = make_student(label_teacher(), {"teacher": "t"})
    calls = []
    forward = student.net.forward
    student.net.forward = lambda x, *a, **k: (calls.append(x.shape[0]), forward(x, *a, **k))[1]
    x, sigma = torch.randn(2, 32, 16), torch.full((2,), 1.0)
    with torch.no_grad():
        conditioned_denoiser(student, ["1", "2"], None, 3.0)(x, sigma)
        conditioned_denoiser(student, ["1", "2"], ["5", "5"], 3.0)(x, sigma)
    assert calls == [2, 4]


def test_bad_distillation_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="power of two"):
        DistillConfig(steps=4, start_steps=12)
    with pytest.raises(ConfigError, match="methods"):
        DistillConfig(methods=("consistency",))
    with pytest.raises(ConfigError, match="conditional"):
        plan(DiffusionModel(tiny_config()), DistillConfig(methods=("guidance",)))
    assert plan(DiffusionModel(tiny_config()), DistillConfig(steps=4, start_steps=16, methods=("progressive",))) == [
        ("steps-8", 8), ("steps-4", 4)]


def test_distill_cli_end_to_end_and_resume(tmp_path, capsys):
    from audiodiff.cli import main
    from audiodiff.data import ManifestItem, write_manifest

    teacher = label_teacher()
    teacher.save(tmp_path / "teacher")
    data = ToneDataset(16)
    items = []
    for i in range(16):
        path = tmp_path / "clips" / f"{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, data[i]["waveform"][0].numpy(), 8000)
        items.append(ManifestItem(path=str(path), duration=0.25, sample_rate=8000, label=str(i % 12)))
    write_manifest(items, tmp_path / "clips.jsonl")
    args = ["distill", "--model", str(tmp_path / "teacher"), "--data", str(tmp_path / "clips.jsonl"),
            "--out", str(tmp_path / "student"), "--steps", "2", "--start-steps", "4", "--round-steps", "3",
            "--set", "batch_size=4", "--set", "checkpoint_every=1", "--set", "progress=false", "--set", "num_workers=0"]
    assert main(args) == 0
    assert "2 steps" in capsys.readouterr().out
    assert main(args) == 2  # the student folder exists: no silent overwrite
    assert "existing file" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0  # every round is done: resumes straight to the end
    assert main(["generate", "--model", str(tmp_path / "student"), "--prompt", "4", "--out", str(tmp_path / "gen"),
                 "--quiet"]) == 0
    assert main(args[:-2] + ["--methods", "bogus"]) == 2
    assert "methods" in capsys.readouterr().err.splitlines()[-1]
