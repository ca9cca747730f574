"""The registry: names, errors, and third-party plugins through entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import tiny_config

import audiodiff
from audiodiff import registry
from audiodiff.errors import ConfigError


def test_builtin_kinds_have_components():
    for kind in ("net", "schedule", "preconditioning", "sampler", "representation", "vocoder"):
        assert registry.names(kind), kind
    assert {"ddim", "ddpm"} <= set(registry.names("sampler"))
    assert {"unet1d", "unet2d"} <= set(registry.names("net"))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown sampler 'dddim'; valid names: .*ddim.*ddpm"):
        registry.build("sampler", "dddim")
    with pytest.raises(ConfigError, match="unknown component kind 'widget'"):
        registry.names("widget")


def test_wrong_keyword_lists_valid_keywords():
    with pytest.raises(ConfigError, match=r"schedule 'linear' got unknown keyword\(s\) beta_max; valid keywords: num_steps, train_sigmas, p_mean, p_std, beta_start, beta_end"):
        registry.build("schedule", {"name": "linear", "beta_max": 0.1})


def test_build_accepts_names_and_mappings():
    assert registry.build("sampler", "ddim").eta == 0.0
    assert registry.build("sampler", {"name": "ddim", "eta": 0.3}).eta == 0.3
    with pytest.raises(ConfigError, match="'name' key"):
        registry.build("sampler", {"eta": 0.3})


PLUGIN_SOURCE = '''
from dataclasses import dataclass
from audiodiff.diffusion.samplers import DDIM

@dataclass(frozen=True)
class PluginSampler(DDIM):
    """A third-party sampler: DDIM with a different default eta."""
    eta: float = 0.25
'''


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A fake installed distribution declaring an ``audiodiff.sampler`` entry point."""
    (tmp_path / "adplugin_demo").mkdir()
    (tmp_path / "adplugin_demo" / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist = tmp_path / "adplugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: adplugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[audiodiff.sampler]\nplugin_ddim = adplugin_demo:PluginSampler\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", set())
    monkeypatch.setitem(registry._registry, "sampler", dict(registry._registry["sampler"]))
    return tmp_path


def test_plugin_works_through_build_generate_and_cli(plugin_path, tmp_path):
    assert "plugin_ddim" in registry.names("sampler")
    sampler = registry.build("sampler", "plugin_ddim")
    assert sampler.eta == 0.25
    model = audiodiff.DiffusionModel(tiny_config())
    clip = audiodiff.generate(model, steps=2, seed=0, sampler="plugin_ddim")[0]
    assert clip.metadata["sampler"] == {"name": "plugin_ddim", "eta": 0.25}
    folder = model.save(tmp_path / "model")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-m", "audiodiff", "generate", "--model", str(folder), "--out", str(tmp_path / "wavs"),
         "--sampler", "plugin_ddim", "--steps", "2", "--quiet", "--seed", "1"],
        capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    wav = Path(out.stdout.strip().splitlines()[0])
    assert wav.is_file() and '"plugin_ddim"' in wav.with_suffix(".json").read_text()


def test_broken_plugin_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    dist = tmp_path / "broken_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[audiodiff.sampler]\nbroken = no_such_module_xyz:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", set())
    monkeypatch.setitem(registry._registry, "sampler", dict(registry._registry["sampler"]))
    assert "broken" not in registry.names("sampler")
    assert "could not load audiodiff.sampler plugin 'broken'" in caplog.text
