"""The training loop: checkpoints, resume after SIGKILL, NaN handling, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_MEL, tiny_config
from train_helpers import ToneDataset, losses, train, wait_for_checkpoint

import audiodiff
from audiodiff.training import TrainConfig, TrainingError, fit, latest_checkpoint
from audiodiff.training.loop import lr_factor

HERE = Path(__file__).parent


def test_lr_schedule():
    cfg = dict(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, **cfg) == pytest.approx(0.1) and lr_factor(9, **cfg) == pytest.approx(1.0)
    assert lr_factor(10, **cfg) == pytest.approx(1.0) and lr_factor(100, **cfg) == pytest.approx(0.1)
    assert lr_factor(55, **cfg) == pytest.approx(0.55)
    assert lr_factor(50, 100, 10, schedule="constant") == 1.0
    assert lr_factor(100, 100, 10) == 0.0, "cosine decay to 0 by default (the judges' schedule)"


def test_bad_settings_are_one_line_errors():
    with pytest.raises(audiodiff.ConfigError, match="lr=-1"):
        TrainConfig(lr=-1)
    with pytest.raises(audiodiff.ConfigError, match="unknown training setting"):
        TrainConfig.from_dict({"stepz": 3})


def test_fit_writes_checkpoints_log_and_model(tmp_path):
    run = tmp_path / "run"
    train(str(run), 6)
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())
    assert ckpts == ["step_0000004", "step_0000006"], "keeps the last 2"
    assert latest_checkpoint(run).name == "step_0000006"
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "grad_norm", "samples_per_s", "data_wait"} <= set(records[0])
    model = audiodiff.load(run / "model")
    config = json.loads((run / "checkpoints" / "step_0000006" / "config.json").read_text())
    assert config["training"]["steps"] == 6
    assert model.representation.mean.abs().sum() > 0  # statistics were fitted
    assert not list((run / "checkpoints").glob(".*tmp")), "no temporary folders left"


def test_resume_continues_with_identical_losses(tmp_path, monkeypatch):
    from audiodiff.training.diffusion import DiffusionTrainer as T

    full, split = tmp_path / "full", tmp_path / "split"
    train(str(full), 8)
    real_step, calls = T.step, {"n": 0}

    def crashing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("simulated crash in step 6")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(T, "step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        train(str(split), 8)
    monkeypatch.setattr(T, "step", real_step)
    assert latest_checkpoint(split).name == "step_0000004"
    train(str(split), 8)  # resumes from step 4
    a, b = losses(full), losses(split)
    assert list(b) == list(range(1, 9))
    for step in range(1, 9):
        assert a[step] == pytest.approx(b[step], rel=1e-5, abs=1e-7), step


def test_time_limit_checkpoints_and_a_rerun_resumes(tmp_path):
    run = tmp_path / "run"
    train(str(run), 50, time_limit=1e-9, checkpoint_every=100)
    assert latest_checkpoint(run).name == "step_0000001", "stops after the first step, with a checkpoint"
    assert (run / "model" / "model.safetensors").is_file(), "the EMA model is exported"
    train(str(run), 3, checkpoint_every=100)
    assert latest_checkpoint(run).name == "step_0000003"
    assert list(losses(run)) == [1, 2, 3]


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    steps = 30
    train(str(full), steps, checkpoint_every=3)
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(HERE / "train_helpers.py"), str(killed), str(steps), json.dumps({"checkpoint_every": 3})]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(killed, proc, 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = latest_checkpoint(killed)
    assert resumed_from is not None and int(resumed_from.name.split("_")[1]) < steps
    train(str(killed), steps, checkpoint_every=3)
    a, b = losses(full), losses(killed)
    for step in range(1, steps + 1):
        assert a[step] == pytest.approx(b[step], rel=1e-5, abs=1e-7), step
    x = torch.randn(1, 32, 9)
    m1, m2 = audiodiff.load(full / "model"), audiodiff.load(killed / "model")
    with torch.no_grad():
        assert torch.allclose(m1.denoise(x, torch.tensor([1.0])), m2.denoise(x, torch.tensor([1.0])), atol=1e-5)


def test_nan_losses_skip_then_stop_with_advice(tmp_path, monkeypatch):
    from audiodiff import DiffusionModel

    run = tmp_path / "run"
    train(str(run), 4)  # a good checkpoint at step 4
    model = DiffusionModel(json.loads((run / "model" / "config.json").read_text()))
    calls = {"n": 0}
    real_loss = DiffusionModel.loss

    def flaky_loss(self, x0, generator=None, **kw):
        calls["n"] += 1
        loss = real_loss(self, x0, generator=generator, **kw)
        return loss * float("nan") if calls["n"] >= 3 else loss

    monkeypatch.setattr(DiffusionModel, "loss", flaky_loss)
    cfg = TrainConfig(steps=20, batch_size=4, checkpoint_every=2, log_every=1, num_workers=0, progress=False,
                      max_bad_steps=3, fit_stats_batches=1)
    with pytest.raises(TrainingError, match=r"NaN/inf for 3 steps in a row at step 8.*lower lr.*last good checkpoint: .*step_0000008"):
        fit(model, ToneDataset(), run, cfg)
    from audiodiff.checkpoint import read_tensors

    last = latest_checkpoint(run)
    for name in ("model.safetensors", "ema.safetensors"):  # skipped steps never reach the weights
        assert all(torch.isfinite(t).all() for t in read_tensors(last, name).values())
    audiodiff.load(run / "model")  # still loadable


def test_objective_protocol_frozen_parameters_and_skipping_statistics(tmp_path):
    from audiodiff.training import AutoencoderObjective, AutoencoderTrainConfig, Objective

    assert isinstance(audiodiff.DiffusionModel(tiny_config()), Objective)
    ae = audiodiff.build("autoencoder", {"name": "mel_vae", "mel": dict(TINY_MEL), "channels": 8})
    assert isinstance(AutoencoderObjective(ae, AutoencoderTrainConfig()), Objective)
    torch.manual_seed(0)
    model = audiodiff.DiffusionModel(tiny_config())
    model.fits_statistics = False  # e.g. a student whose representation is its teacher's, already fitted
    frozen = next(model.net.parameters()).requires_grad_(False)
    before, mean_before = frozen.detach().clone(), model.representation.mean.clone()
    fit(model, ToneDataset(n=8), tmp_path / "run", TrainConfig(steps=2, batch_size=4, num_workers=0, progress=False,
                                                                 warmup_steps=1, checkpoint_every=2))
    assert torch.equal(frozen, before), "only requires_grad parameters are optimised"
    assert torch.equal(model.representation.mean, mean_before), "fits_statistics=False: no statistics fitted"
    assert latest_checkpoint(tmp_path / "run").name == "step_0000002"


def test_lower_layers_do_not_import_training():
    import ast

    package = Path(audiodiff.__file__).parent
    for layer in ("vocoders", "audio", "nets", "conditioning", "diffusion"):
        for path in (package / layer).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    names = [("." * node.level) + (node.module or "")] + [a.name for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                assert not any(n.split(".")[-1] == "training" or "training." in n or n.endswith(".train")
                               for n in names), f"{path} imports {names}"


def test_too_small_dataset_is_an_error(tmp_path):
    with pytest.raises(audiodiff.ConfigError, match="fewer than one batch"):
        fit(audiodiff.DiffusionModel(), ToneDataset(n=2), tmp_path, TrainConfig(batch_size=4, progress=False))




@pytest.mark.slow
def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys, torch, torch.distributed as dist\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "torch.set_num_threads(1)\n"
        "import audiodiff.training as T\n"
        "from train_helpers import train\n"
        "captured = {}\n"
        "real_fit = T.fit\n"
        "def fit(model, *a, **k):\n"
        "    captured['model'] = model\n"
        "    return real_fit(model, *a, **k)\n"
        "T.fit = fit\n"
        f"train({str(tmp_path / 'run')!r}, 4, checkpoint_every=4)\n"
        "flat = torch.cat([p.detach().flatten() for p in captured['model'].net.parameters()])\n"
        f"torch.save(flat, {str(tmp_path)!r} + f'/rank{{dist.get_rank()}}.pt')\n"
        "dist.destroy_process_group()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", str(script)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(w0, w1)
    assert (tmp_path / "run" / "checkpoints" / "step_0000004").is_dir()


def test_training_on_cached_features_gives_the_same_losses(tmp_path):
    import soundfile as sf

    from audiodiff import DiffusionModel
    from audiodiff.data import AudioDataset, FeatureCache, ManifestItem
    from conftest import tiny_config

    items = []
    for i in range(8):
        path = tmp_path / f"{i}.wav"
        sf.write(str(path), (0.3 * torch.sin(torch.arange(3000) * (0.05 + 0.02 * i))).numpy(), 8000)
        items.append(ManifestItem(path=str(path), duration=3000 / 8000, sample_rate=8000))
    cfg = TrainConfig(steps=3, batch_size=4, num_workers=0, progress=False, warmup_steps=1, fit_stats_batches=1,
                      log_every=1)
    results = []
    conditioning = {"p": {"name": "label", "labels": ["a", "b"], "dim": 8}}  # conditional models read labels too
    for i, item in enumerate(items):
        items[i] = ManifestItem(path=item.path, duration=item.duration, sample_rate=8000, label="ab"[i % 2])
    for name in ("direct", "cached"):
        torch.manual_seed(0)
        model = DiffusionModel(tiny_config(conditioning=conditioning))
        data = AudioDataset(items, sample_rate=8000, seconds=0.25, crop="start")
        if name == "cached":
            data = FeatureCache(data, model.representation, tmp_path / "cache")
        fit(model, data, tmp_path / name, cfg)
        results.append(losses(tmp_path / name))
    assert results[0] == pytest.approx(results[1], rel=1e-5)
