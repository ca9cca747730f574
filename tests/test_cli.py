"""The command line: outputs, sidecars and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import tiny_config

from audiodiff import DiffusionModel
from audiodiff.cli import main


@pytest.fixture
def model_dir(tmp_path):
    return DiffusionModel(tiny_config()).save(tmp_path / "model")


def test_generate_writes_wavs_sidecars_and_plots(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["generate", "--model", str(model_dir), "--out", str(out), "-n", "2", "--steps", "3",
               "--seed", "7", "--plot", "--quiet", "--sampler", "ddim", "--sampler-arg", "eta=0.5"])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    tag = names[0].split("_")[-1].split(".")[0]  # the settings hash, shared by the run's clips
    assert len(tag) == 8 and names == [f"clip_{i:03d}_seed{7 + i}_{tag}.{ext}" for i in (0, 1)
                                       for ext in ("json", "png", "wav")]
    meta = json.loads((out / f"clip_001_seed8_{tag}.json").read_text())
    assert meta["seed"] == 8 and meta["steps"] == 3 and meta["sampler"] == {"name": "ddim", "eta": 0.5}
    assert meta["model"] == str(model_dir) and meta["audiodiff_version"]
    assert meta["vocoder"]["name"] == "griffinlim" and "command" in meta
    assert capsys.readouterr().out.count(".wav") == 2


def test_info_and_models(model_dir, capsys):
    assert main(["info", "--model", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "parameters:" in out and '"n_mels": 32' in out
    assert main(["info"]) == 0
    assert "sampler: " in capsys.readouterr().out
    assert main(["models"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--model", "{tmp}/nope"], "no model folder or shipped model named"),
    (["--model", "{model}", "--sampler", "nope"], "unknown sampler 'nope'"),
    (["--model", "{model}", "--steps", "0"], "steps must be an integer >= 1"),
    (["--model", "{model}", "--steps", "5000"], "between 1 and the schedule's 1000"),
    (["--model", "{model}", "--seconds", "0"], "seconds must be a positive number"),
    (["--model", "{model}", "--seconds", "6000"], "beyond what this model makes"),
    (["--model", "{model}", "--seconds", "2", "--overlap", "1"], "overlap must be in (0, 1)"),
    (["--model", "{model}", "--out", "{model}/config.json/x"], "cannot write to output folder"),
    (["--model", "{model}", "--vocoder", "nope"], "unknown vocoder 'nope'"),
    (["--model", "{model}", "--sampler-arg", "etaa=1"], "valid keywords: eta"),
    (["--model", "{corrupt}"], "not a valid safetensors file"),
    (["--model", "{mismatch}"], "do not match its config.json"),
])
def test_generate_errors_are_one_line_exit_2(model_dir, tmp_path, capsys, args, message):
    corrupt = DiffusionModel(tiny_config()).save(tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"junk")
    mismatch = DiffusionModel(tiny_config()).save(tmp_path / "mismatch")
    cfg = json.loads((mismatch / "config.json").read_text())
    cfg["net"]["num_res_blocks"] = 2
    (mismatch / "config.json").write_text(json.dumps(cfg))
    fill = {"tmp": tmp_path, "model": model_dir, "corrupt": corrupt, "mismatch": mismatch}
    argv = ["generate", "--quiet", "--out", str(tmp_path / "o")] + [a.format(**fill) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("audiodiff: error: ") and message in err[0], err


def test_console_script_error_has_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "audiodiff", "generate", "--model", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_demo_without_shipped_models_fails_clearly(tmp_path, capsys, monkeypatch):
    import audiodiff.hub as hub

    monkeypatch.setattr(hub, "PRETRAINED_DIR", tmp_path / "none")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "no shipped models yet" in capsys.readouterr().err
