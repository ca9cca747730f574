"""`audiodiff train` and `audiodiff finetune` on a tiny folder of audio, end to end (SIGKILL + --resume too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audiodiff
from audiodiff import DiffusionModel
from audiodiff.cli import main
from audiodiff.data.sources import read_data
from audiodiff.lora import merge
from conftest import REPO, perturb, tiny_config
from train_helpers import wait_for_checkpoint

SR = 8000


def _tone(freq: float, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).normal(0, 0.01, t.shape)
    return (0.4 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


@pytest.fixture
def folder(tmp_path) -> Path:
    """Two labels (subfolders) of four short tones each, one FLAC among them."""
    root = tmp_path / "sounds"
    for label, freq in (("low", 220.0), ("high", 880.0)):
        (root / label).mkdir(parents=True)
        for i in range(4):
            suffix = "flac" if i == 3 else "wav"
            sf.write(root / label / f"{label}_{i}.{suffix}", _tone(freq * (1 + 0.02 * i), seed=i), SR)
    return root


@pytest.fixture
def base(tmp_path) -> Path:
    """A tiny label model that knows only ``high``."""
    torch.manual_seed(0)
    conditioning = {"prompt": {"name": "label", "labels": ["high"], "dim": 8}}
    model = perturb(DiffusionModel(tiny_config(conditioning=conditioning, seconds=0.5)))
    return model.save(tmp_path / "base")


FAST = ["--set", "checkpoint_every=2", "--set", "batch_size=4", "--set", "log_every=1", "-q"]


def test_read_data_folder_and_tables(folder, tmp_path):
    items = read_data(folder)
    assert len(items) == 8 and {i.label for i in items} == {"low", "high"}
    table = tmp_path / "captions.csv"
    table.write_text("path,caption\n" + "".join(f"sounds/low/low_{i}.wav,a low hum\n" for i in range(3)))
    assert [i.caption for i in read_data(table)] == ["a low hum"] * 3
    with pytest.raises(audiodiff.ConfigError, match="does not exist"):
        read_data(tmp_path / "nope")


def test_train_from_a_folder(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--out", str(out), "--preset", "tiny", "--steps", "4", *FAST]) == 0
    assert "held-out loss" in capsys.readouterr().out
    model = audiodiff.load(out / "model")
    assert model.conditioners["prompt"].labels == ["high", "low"]
    assert main(["train", "--data", str(folder), "--out", str(out), "--preset", "tiny", "--steps", "4", *FAST]) == 2
    assert "--resume" in capsys.readouterr().err


def test_finetune_lora_adds_a_label_and_merges(folder, base, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", "--model", str(base), "--data", str(folder), "--out", str(out), "--steps", "4",
                 "--lora-rank", "2", *FAST]) == 0
    adapter = out / "model"
    config = json.loads((adapter / "config.json").read_text())
    assert config["new_labels"] == {"prompt": ["low"]} and config["base"]["name"] == str(base)
    adapted = audiodiff.load(base, lora=[adapter])
    assert adapted.conditioners["prompt"].labels == ["high", "low"]
    assert audiodiff.load(adapter).conditioners["prompt"].labels == ["high", "low"]  # the adapter names its base
    merged_dir = tmp_path / "merged"
    assert main(["lora", "merge", "--model", str(base), "--lora", str(adapter), "--out", str(merged_dir)]) == 0
    x = torch.randn(2, *adapted.sample_shape(8), generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.3, 3.0])
    with torch.no_grad():
        a = adapted.denoise(x, sigma, **adapted.encode_prompts(["low", "high"]))
        merged = audiodiff.load(merged_dir)
        b = merged.denoise(x, sigma, **merged.encode_prompts(["low", "high"]))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    clips = audiodiff.generate(adapted, prompt=["low"], steps=2, seed=0)
    assert clips[0].waveform.isfinite().all()


def test_finetune_full_writes_a_model(folder, base, tmp_path):
    out = tmp_path / "full"
    assert main(["finetune", "--model", str(base), "--data", str(folder), "--out", str(out), "--steps", "2", "--full",
                 *FAST]) == 0
    model = audiodiff.load(out / "model")
    assert model.conditioners["prompt"].labels == ["high", "low"]
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(out / "model" / "model.safetensors").values() if t.is_floating_point()} == {torch.float16}


def test_adapter_errors_from_the_cli(folder, base, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", "--model", str(base), "--data", str(folder), "--out", str(out), "--steps", "2", *FAST]) == 0
    torch.manual_seed(1)
    other = DiffusionModel(tiny_config(conditioning={"prompt": {"name": "label", "labels": ["high"], "dim": 8}},
                                       seconds=0.5)).save(tmp_path / "other")
    capsys.readouterr()
    assert main(["lora", "merge", "--model", str(other), "--lora", str(out / "model"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "made for model" in err and len(err.strip().splitlines()) == 1
    (out / "model" / "adapter.safetensors").write_bytes(b"junk")
    assert main(["lora", "info", str(out / "model")]) == 2
    assert "not a usable adapter" in capsys.readouterr().err


def test_time_limit_exits_3_and_resume_finishes(folder, base, tmp_path):
    out = tmp_path / "ft"
    args = ["finetune", "--model", str(base), "--data", str(folder), "--out", str(out), "--steps", "6", *FAST]
    assert main([*args, "--time-limit", "1e-9"]) == 3
    assert main(args) == 2  # the folder holds a run: --resume or a new folder
    assert main([*args, "--resume"]) == 0
    assert (out / "model" / "adapter.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["finetune", "train"])
def test_sigkill_mid_training_then_resume(folder, base, tmp_path, command):
    out = tmp_path / "run"
    model = ["--model", str(base)] if command == "finetune" else ["--preset", "tiny"]
    args = [command, *model, "--data", str(folder), "--out", str(out), "--steps", "120", *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "audiodiff", *args], env=env, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(out, proc, 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert int((out / "checkpoints" / "latest").read_text().split("_")[1]) < 120  # killed mid-run
    assert main([*args, "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps[-1] == 120 and steps.count(1) == 1  # resumed, not restarted
    loaded = audiodiff.load(out / "model") if command == "train" else merge(audiodiff.load(base, lora=[out / "model"]))
    assert loaded.conditioners["prompt"].labels == ["high", "low"]


def test_held_out_loss_is_deterministic_and_takes_the_null_prompt(folder, base):
    from audiodiff.finetune import held_out_loss
    from audiodiff.training.folder import dataset

    model = audiodiff.load(base)
    data = dataset(read_data(folder), model)  # "low" is unknown to the base: only the null prompt works
    assert held_out_loss(model, data, conditional=False) == held_out_loss(model, data, conditional=False) > 0
    with pytest.raises(audiodiff.ConfigError, match="unknown label"):
        held_out_loss(model, data)


def test_lora_on_generate_edits_and_the_page(folder, base, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", "--model", str(base), "--data", str(folder), "--out", str(out), "--steps", "2", *FAST]) == 0
    adapter = str(out / "model")
    clips = tmp_path / "clips"
    assert main(["generate", "--model", str(base), "--lora", f"{adapter}:0.5", "--prompt", "low",
                 "--steps", "2", "--out", str(clips), "-q"]) == 0
    wav = sorted(clips.glob("*.wav"))[0]
    assert main(["variation", "--model", str(base), "--lora", adapter, "--input", str(wav), "--strength", "0.5",
                 "--prompt", "low", "--steps", "2", "--out", str(tmp_path / "var"), "-q"]) == 0
    capsys.readouterr()
    assert main(["generate", "--model", str(base), "--lora", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "adapter folder not found" in capsys.readouterr().err
    from audiodiff.cli.train import ui_models
    from audiodiff.ui import Studio

    entry = ui_models(None, [f"{adapter}:0.5"])[-1]
    assert entry == f"{base} + {adapter}:0.5"
    assert Studio(tmp_path / "ui").model(entry).conditioners["prompt"].labels == ["high", "low"]


def test_caption_model_learns_new_captions(folder, tmp_path):
    torch.manual_seed(0)
    conditioning = {"prompt": {"name": "tokens", "dim": 8, "layers": 1, "heads": 2, "max_length": 16,
                               "route": "cross", "source": "caption"}}
    base = perturb(DiffusionModel(tiny_config(conditioning=conditioning, seconds=0.5))).save(tmp_path / "base")
    table = tmp_path / "captions.csv"
    table.write_text("path,caption\n" + "".join(f"{p},a low hum\n" for p in sorted(folder.rglob("low_*"))))
    out = tmp_path / "ft"
    assert main(["finetune", "--model", str(base), "--data", str(table), "--out", str(out), "--steps", "2", "--merge",
                 *FAST]) == 0
    assert json.loads((out / "model" / "config.json").read_text())["new_labels"] == {}
    assert audiodiff.load(out / "merged").config["adapters"] == [{"name": "model", "strength": 1.0}]
    clips = audiodiff.generate(audiodiff.load(base, lora=[out / "model"]), prompt=["a low hum"], steps=2, seed=0)
    assert clips[0].waveform.isfinite().all()
