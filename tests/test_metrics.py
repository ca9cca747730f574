"""Metrics (Frechet distance, IS/mIS/AM/NDB, spectral distances, retrieval), the judge and ``evaluate``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_config

import audiodiff
from audiodiff import registry
from audiodiff.data import ManifestItem
from audiodiff.errors import AudiodiffError, ConfigError, ModelLoadError
from audiodiff.metrics import am_score, caption_retrieval, classifier_accuracy, frechet_distance, frechet_distance_from_stats, inception_score, log_mel_l1, modified_inception_score, mr_stft_distance, ndb
from audiodiff.evaluation import MelClassifier, load_judge
from audiodiff.evaluation.evaluate import evaluate
from audiodiff.evaluation.report import write_report
from audiodiff.evaluation.judge import window_batch
from audiodiff.training.judge import JudgeTrainConfig, fit_judge, train_judge

SR = 8000
TINY_JUDGE = {"mel": {"sample_rate": SR, "n_fft": 256, "hop_length": 128, "n_mels": 24},
              "seconds": 0.5, "channels": 16, "depth": 2, "embed_dim": 16}
EMBEDDER_CONFIGS = {"judge": {"name": "judge", "labels": ["low", "high"], **TINY_JUDGE}}


# -- Frechet distance ------------------------------------------------------------------------------
def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_mean_shift():
    x = np.random.default_rng(0).normal(size=(2000, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 0.0, 2.0, 0.0])
    assert frechet_distance(x, x + shift) == pytest.approx(5.0, rel=1e-6)  # |shift|^2, same covariance
    assert frechet_distance(x, x + shift) < frechet_distance(x, x + 2 * shift)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(1)
    mu, scale, d = np.array([0.5, -1.0, 0.0]), 2.0, 3
    a, b = rng.normal(size=(40000, d)), mu + scale * rng.normal(size=(40000, d))
    closed = mu @ mu + d * (1 - scale) ** 2  # |mu|^2 + tr(I + s^2 I - 2 s I)
    assert frechet_distance(a, b) == pytest.approx(closed, rel=0.03)
    cov_b = np.diag([1.0, 4.0, 9.0])
    exact = frechet_distance_from_stats(np.zeros(3), np.eye(3), mu, cov_b)
    assert exact == pytest.approx(mu @ mu + (0 + 1 + 4), rel=1e-6)  # sum (1 - sqrt(s_i))^2 = 0 + 1 + 4


def test_frechet_distance_survives_tiny_sample_counts():
    rng = np.random.default_rng(2)
    for n_a, n_b in [(1, 1), (2, 3), (5, 40)]:
        value = frechet_distance(torch.randn(n_a, 16), rng.normal(size=(n_b, 16)))
        assert math.isfinite(value) and value >= 0
    with pytest.raises(ConfigError, match="differ in size"):
        frechet_distance(np.zeros((3, 2)), np.zeros((3, 4)))


# -- classifier scores --------------------------------------------------------------------------------
def one_hot(indices, n):
    return np.eye(n)[np.asarray(indices)]


def test_inception_score_limits():
    assert inception_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)
    assert inception_score(one_hot(np.arange(100) % 10, 10)) == pytest.approx(10.0, rel=1e-6)
    assert inception_score(one_hot(np.zeros(100, int), 10)) == pytest.approx(1.0)  # mode collapse
    with pytest.raises(ConfigError, match="sum to 1"):
        inception_score(np.ones((3, 4)))


def test_modified_inception_score_and_am_score():
    same = np.tile([0.7, 0.2, 0.1], (20, 1))
    assert modified_inception_score(same) == pytest.approx(1.0)
    soft = np.full((20, 4), 0.05) + 0.8 * one_hot(np.arange(20) % 4, 4)
    kl = 0.85 * math.log(0.85 / 0.05) + 0.05 * math.log(0.05 / 0.85)  # KL between two different rows
    assert modified_inception_score(soft) == pytest.approx(math.exp(0.75 * kl), rel=1e-6)  # 3/4 of pairs differ
    balanced = one_hot(np.arange(40) % 4, 4)
    assert am_score(balanced, balanced) == pytest.approx(0.0, abs=1e-6)
    assert am_score(np.full((40, 4), 0.25), balanced) == pytest.approx(math.log(4))  # entropy term only
    collapsed = one_hot(np.zeros(40, int), 4)
    assert am_score(collapsed, balanced) > am_score(balanced, balanced) + 1


def test_classifier_accuracy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert classifier_accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)


def test_ndb_same_distribution_versus_shifted():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(2000, 4))
    assert ndb(real, rng.normal(size=(1000, 4)), k=20) <= 0.15  # about alpha by chance
    assert ndb(real, rng.normal(size=(1000, 4)) + 1.5, k=20) >= 0.5
    with pytest.raises(ConfigError, match="k <= real"):
        ndb(real[:10], real, k=20)


# -- spectral distances ---------------------------------------------------------------------------------
def test_log_mel_l1_and_mr_stft_are_zero_for_identical_audio():
    t = torch.arange(SR) / SR
    tone = (0.5 * torch.sin(2 * math.pi * 440 * t))[None, None]  # (1, 1, S)
    noise = 0.3 * torch.randn(1, 1, SR, generator=torch.Generator().manual_seed(0))
    mel = audiodiff.build("representation", {"name": "mel", "sample_rate": SR, "n_fft": 512, "hop_length": 128, "n_mels": 32})
    assert log_mel_l1(tone, tone, mel) == pytest.approx(0.0, abs=1e-6)
    assert mr_stft_distance(tone, tone) == pytest.approx(0.0, abs=1e-6)
    assert log_mel_l1(tone, noise, mel) > 1.0
    near = tone + 0.01 * noise
    assert 0 < mr_stft_distance(near, tone) < mr_stft_distance(noise, tone)
    assert mr_stft_distance(tone[..., :5000], tone) == pytest.approx(0.0, abs=1e-6)  # lengths are aligned
    assert math.isfinite(mr_stft_distance(tone[..., :300], noise[..., :300]))  # shorter than a window


def test_caption_retrieval():
    emb = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    assert caption_retrieval(emb, emb, k=1) == (1.0, 0.05)
    recall, chance = caption_retrieval(emb, torch.randn(20, 8), k=5)
    assert chance == 0.25 and 0 <= recall <= 1
    with pytest.raises(ConfigError):
        caption_retrieval(emb, emb[:5])


# -- the judge --------------------------------------------------------------------------------------
def tone(freq: float, seconds: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    return 0.5 * torch.sin(2 * math.pi * freq * t) + 0.01 * torch.randn(t.shape, generator=g)


def tone_set(n: int, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``n`` low (200-400 Hz, class 0) and high (1500-3000 Hz, class 1) tones of 0.1-0.4 s."""
    rng = np.random.default_rng(seed)
    clips, targets = [], []
    for i in range(n):
        high = i % 2
        freq = rng.uniform(1500, 3000) if high else rng.uniform(200, 400)
        clips.append(tone(freq, rng.uniform(0.1, 0.4), seed * 1000 + i))
        targets.append(high)
    return clips, torch.tensor(targets)


def write_tones(folder, n: int, seed: int, split: str = "test") -> list[ManifestItem]:
    folder.mkdir(parents=True, exist_ok=True)
    clips, targets = tone_set(n, seed)
    items = []
    for i, (clip, target) in enumerate(zip(clips, targets.tolist())):
        path = folder / f"{split}_{i:03d}.wav"
        sf.write(path, clip.numpy(), SR)
        label = ["low", "high"][target]
        items.append(ManifestItem(str(path), len(clip) / SR, SR, label, label, split))
    return items


def tiny_judge(seed: int = 0) -> MelClassifier:
    torch.manual_seed(seed)
    return MelClassifier(["low", "high"], **TINY_JUDGE)


def test_judge_learns_low_versus_high_tones_within_seconds():
    judge = tiny_judge()
    clips, targets = tone_set(64, seed=1)
    valid_clips, valid_targets = tone_set(40, seed=2)
    valid = window_batch(valid_clips, judge.num_samples)
    cfg = JudgeTrainConfig(steps=40, batch_size=16, eval_every=20, warmup_steps=5, lr=5e-3)
    report = fit_judge(judge, clips, targets, valid, valid_targets, cfg)
    assert report["valid_accuracy"] >= 0.9 and report["best_step"] in (20, 40)
    assert not judge.training
    assert judge.predict(tone(300, 0.3, 9)) == ["low"] and judge.predict(tone(2500, 0.3, 9)) == ["high"]


def test_train_judge_from_manifest_items(tmp_path):
    train = write_tones(tmp_path / "train", 24, seed=3, split="train")
    valid = write_tones(tmp_path / "valid", 10, seed=4, split="valid")
    judge, report = train_judge(train, valid, mel=TINY_JUDGE["mel"], seconds=0.5, steps=30, batch_size=16,
                                eval_every=15, judge_kwargs={"channels": 16, "depth": 2, "embed_dim": 16})
    assert judge.labels == ["low", "high"]  # order of first appearance
    assert report["num_train"] == 24 and report["num_valid"] == 10 and 0 <= report["valid_accuracy"] <= 1
    assert judge.training_report is report
    with pytest.raises(ConfigError, match="no label"):
        train_judge([ManifestItem(train[0].path, 0.1, SR, None, None)], steps=1)


def test_judge_save_load_round_trip(tmp_path):
    judge = tiny_judge().eval()
    with torch.no_grad():
        for p in judge.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    wave = torch.randn(3, 1, 6000) * 0.1
    folder = judge.save(tmp_path / "judge", training={"valid_accuracy": 0.5})
    config = json.loads((folder / "config.json").read_text())
    assert config["name"] == "judge" and config["training"] == {"valid_accuracy": 0.5}
    loaded = load_judge(folder)
    assert not loaded.training and loaded.training_report == {"valid_accuracy": 0.5}
    with torch.no_grad():
        assert torch.equal(loaded.logits(wave), judge.logits(wave))
        half = load_judge(judge.save(tmp_path / "half", dtype=torch.float16))
        assert torch.allclose(half.logits(wave), judge.logits(wave), atol=0.05)


def test_judge_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="no judge folder or shipped judge named 'nope'"):
        load_judge("nope")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"name": "unet"}')
    with pytest.raises(ModelLoadError, match="is not a judge"):
        load_judge(tmp_path / "model")
    with pytest.raises(ConfigError, match="distinct"):
        MelClassifier(["a", "a"])
    with pytest.raises(ConfigError, match="unknown to the judge"):
        tiny_judge().label_indices(["medium"])


def test_judge_resamples_and_fits_its_window():
    judge = tiny_judge().eval()
    assert judge.prepare(torch.zeros(2, 1, 100)).shape == (2, 1, judge.num_samples)
    assert judge.prepare(torch.zeros(2, 16000), sample_rate=16000).shape == (2, 1, judge.num_samples)
    t8, t16 = torch.arange(4000) / SR, torch.arange(8000) / 16000
    with torch.no_grad():  # one tone, sampled at 8 kHz and at 16 kHz
        a, b = judge.embed(torch.sin(2 * math.pi * 300 * t8)), judge.embed(torch.sin(2 * math.pi * 300 * t16), 16000)
    assert torch.allclose(a, b, atol=0.05 * a.abs().max())


@pytest.mark.parametrize("name", registry.names("embedder"))
def test_embedder_conformance(name):
    embedder = registry.build("embedder", EMBEDDER_CONFIGS.get(name, {"name": name})).eval()
    wave = torch.randn(3, 1, embedder.sample_rate // 2) * 0.1
    with torch.no_grad():
        emb = embedder.embed(wave)
        one = embedder.embed(wave[:1])
    assert emb.shape == (3, embedder.dim) and torch.isfinite(emb).all()
    assert torch.allclose(one[0], emb[0], atol=1e-5)  # no batch dependence in eval mode
    again = registry.build("embedder", embedder.config())
    again.load_state_dict(embedder.state_dict())
    with torch.no_grad():
        assert torch.allclose(again.eval().embed(wave), emb)


def test_judges_are_not_listed_as_models():
    assert "judges" not in audiodiff.list_models()


# -- evaluate -----------------------------------------------------------------------------------------
@pytest.fixture
def reference(tmp_path):
    return write_tones(tmp_path / "ref", 24, seed=5)


def test_evaluate_end_to_end(tmp_path, reference):
    torch.manual_seed(0)
    model = audiodiff.DiffusionModel(tiny_config(conditioning={"prompt": {"name": "label", "labels": ["low", "high"], "dim": 16}}))
    judge = MelClassifier(["low", "high"], **{**TINY_JUDGE, "mel": {"sample_rate": 16000, "n_fft": 512,
                                                                     "hop_length": 256, "n_mels": 24}})
    report = evaluate(model, reference, num_samples=4, prompts="labels", judge=judge, steps=2, seed=3,
                      resynthesize=True)
    gen, ref, s = report["generated"], report["reference"], report["settings"]
    assert s["prompts"] == ["low", "high"] and s["num_reference"] == 24 and s["steps"] == 2 and s["ndb_k"] == 2
    assert sum(gen["label_counts"].values()) == 4
    for section in (gen, ref, report["resynthesized"]):
        assert math.isfinite(section["inception_score"]) and math.isfinite(section["am_score"])
    assert gen["frechet_distance"] >= 0 and 0 <= gen["prompt_accuracy"] <= 1 and gen["ndb"] is not None
    assert 0 <= ref["accuracy"] <= 1 and ref["accuracy_clips"] == 24 and ref["frechet_distance_halves"] >= 0
    paths = write_report(report, tmp_path / "out" / "report.json", tmp_path / "out" / "report.md")
    assert json.loads(paths[0].read_text())["generated"]["prompt_accuracy"] == gen["prompt_accuracy"]
    table = paths[1].read_text()
    assert "| Frechet distance" in table and "resynthesized" in table and "| NDB/k" in table


def test_evaluate_unconditional_and_errors(reference, tiny_model):
    report = evaluate(tiny_model, reference[:8], num_samples=3, judge=tiny_judge(), steps=2, max_reference=6)
    assert report["settings"]["prompt_mode"] == "unconditional" and report["settings"]["num_reference"] == 6
    assert report["generated"]["prompt_accuracy"] is None and report["generated"]["ndb"] is None
    with pytest.raises(ConfigError, match="no reference clips"):
        evaluate(tiny_model, [], num_samples=2, judge=tiny_judge())
    with pytest.raises(ConfigError, match="no judge given"):
        evaluate(tiny_model, reference, num_samples=2)
    with pytest.raises(ConfigError, match="unconditional"):
        evaluate(tiny_model, reference, num_samples=2, judge=tiny_judge(), prompts="labels", steps=1)
    with pytest.raises(AudiodiffError):
        evaluate(tiny_model, reference, num_samples=0, judge=tiny_judge())


# -- the shipped judge ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_shipped_speech_judge_is_accurate_on_fsdd_test_clips(shared_data):
    from audiodiff.data import prepare
    from audiodiff.evaluation import judge_clips, list_judges
    from audiodiff.evaluation.judge import load_clips

    assert "speech" in list_judges()
    judge = load_judge("speech")
    test = [item for item in prepare("fsdd", shared_data / "fsdd") if item.split == "test"][::3][:100]
    waves = window_batch(load_clips([item.path for item in test], judge.sample_rate), judge.num_samples)
    _, probs = judge_clips(judge, waves)
    accuracy = float((probs.argmax(1) == judge.label_indices([item.label for item in test])).float().mean())
    assert len(test) == 100 and accuracy >= 0.95


@pytest.mark.slow
def test_judges_recipe_runs(shared_data, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "recipes" / "judges.py"
    out = subprocess.run([sys.executable, str(script), "speech", "--out", str(tmp_path / "judge"), "--steps", "3",
                          "--root", str(shared_data / "fsdd"), "--fp16", "--espeak-voices", "2", "--set", "noise_prob=0",
                          "--set", "speed_range=[0.9,1.1]"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "held-out test accuracy" in out.stdout
    judge = load_judge(tmp_path / "judge")
    assert judge.labels[0] == "zero" and judge.training_report["steps"] == 3
    assert judge.training_report["num_espeak_voices"] == 2 and judge.training_report["config"]["noise_prob"] == 0
    assert judge.training_report["config"]["speed_range"] == [0.9, 1.1]
    bad = subprocess.run([sys.executable, str(script), "speech", "--out", str(tmp_path / "j2"), "--set", "stepz=3"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "stepz" in bad.stderr and "Traceback" not in bad.stderr


def test_eval_cli_writes_reports_and_fails_cleanly(tmp_path, reference, capsys):
    from audiodiff.cli import main
    from audiodiff.data import write_manifest

    torch.manual_seed(0)
    model = audiodiff.DiffusionModel(tiny_config(conditioning={"prompt": {"name": "label", "labels": ["low", "high"], "dim": 16}}))
    folder = model.save(tmp_path / "model")
    judge_dir = tiny_judge().save(tmp_path / "judge")
    manifest = write_manifest(reference, tmp_path / "ref.jsonl")
    argv = ["eval", "--model", str(folder), "--reference", str(manifest), "--split", "all", "-n", "4",
            "--prompts", "labels", "--judge", str(judge_dir), "--steps", "2", "--out", str(tmp_path / "ev"), "--quiet"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["settings"]["prompts"] == ["low", "high"]
    ladder = ["--spacing", "karras", "--sigma-min", "0.5", "--out", str(tmp_path / "ev-ladder")]
    assert main(argv[:-3] + ladder + ["--quiet"]) == 0
    settings = json.loads((tmp_path / "ev-ladder" / "report.json").read_text())["settings"]
    assert (settings["spacing"], settings["sigma_min"], settings["steps"]) == ("karras", 0.5, 2)
    capsys.readouterr()
    assert main(argv) == 2, "the reports exist: not replaced without --overwrite"
    assert "--overwrite" in capsys.readouterr().err
    argv.append("--overwrite")
    assert main(argv[:4] + [str(tmp_path / "none.jsonl")] + argv[5:]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    no_valid = argv[:6] + ["valid"] + argv[7:]  # this manifest has no valid clips
    assert main(no_valid) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no valid clips" in err


def test_mr_stft_loss_stays_finite_and_small_with_a_silent_example():
    from audiodiff.metrics.spectral import mr_stft_loss

    torch.manual_seed(0)
    real = torch.randn(4, 8000) * 0.1
    real[1] = 0.0  # a silent reference segment
    fake = real + 1e-3 * torch.randn_like(real)
    loss = mr_stft_loss(fake, real)
    assert torch.isfinite(loss) and float(loss) < 5.0, float(loss)


def test_speed_perturbation_resamples_and_defaults_to_nothing():
    from audiodiff.training.judge import change_speed

    clip = torch.sin(torch.arange(8000) / 8000 * 2 * math.pi * 200)  # 200 Hz for 1 s at 8 kHz
    g = torch.Generator().manual_seed(0)
    assert change_speed(clip, (1.0, 1.0), g) is clip  # off: the same tensor, no random draw
    assert g.initial_seed() == 0 and torch.equal(torch.rand(1, generator=g), torch.rand(1, generator=torch.Generator().manual_seed(0)))
    fast = change_speed(clip, (1.25, 1.25), torch.Generator().manual_seed(0))
    assert fast.shape == (6400,)  # 1.25 x as fast: 0.8 s, and 250 Hz
    crossings = ((fast[1:] > 0) & (fast[:-1] <= 0)).sum().item()
    assert abs(crossings - 200) <= 2  # 250 Hz over 0.8 s
    with pytest.raises(ConfigError, match="speed_range"):
        JudgeTrainConfig(speed_range=(1.2, 0.9))
