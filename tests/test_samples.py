"""``recipes/samples.py``: regenerates the committed samples, all models or only those named."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import audiodiff

SCRIPT = Path(__file__).resolve().parents[1] / "recipes" / "samples.py"


@pytest.fixture(scope="module")
def samples():
    spec = importlib.util.spec_from_file_location("samples_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unknown_model_is_a_one_line_error(samples, tmp_path, capsys):
    assert samples.main(["--out", str(tmp_path), "--models", "nope"]) == 2
    assert "not shipped: nope" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_named_model_only(samples, tmp_path):
    if "speech" not in audiodiff.list_models():
        pytest.skip("no shipped speech model")
    assert samples.main(["--out", str(tmp_path), "--models", "speech", "--prompts", "1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "speech"]
    wav = next((tmp_path / "speech").glob("*.wav"))
    sidecar = json.loads(wav.with_suffix(".json").read_text())
    assert sidecar["model"] == "speech" and sidecar["command"].startswith("python recipes/samples.py")
    assert wav.with_suffix(".png").exists()
    assert json.loads((tmp_path / "index.json").read_text())["speech"] == [wav.name]
