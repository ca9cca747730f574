"""Recipes: every experiment config composes; the debug experiment trains, evaluates and samples on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import audiodiff

REPO = Path(__file__).resolve().parents[1]
DOMAINS = sorted(p.name for p in (REPO / "recipes").iterdir() if (p / "conf" / "train.yaml").is_file())


def experiments(domain: str) -> list[str | None]:
    folder = REPO / "recipes" / domain / "conf" / "experiment"
    return [None] + sorted(p.stem for p in folder.glob("*.yaml"))


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_experiment_composes_and_builds(domain):
    for experiment in experiments(domain):
        overrides = [f"experiment={experiment}"] if experiment else []
        with initialize_config_dir(str(REPO / "recipes" / domain / "conf"), version_base=None):
            cfg = compose("train", overrides=overrides)
        from omegaconf import OmegaConf

        model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
        model = audiodiff.DiffusionModel(model_cfg)  # the config builds a model
        assert model.num_parameters() > 0, experiment
        assert cfg.train.steps >= 1 and cfg.data.sources


def test_generate_configs_compose():
    for domain in DOMAINS:
        with initialize_config_dir(str(REPO / "recipes" / domain / "conf"), version_base=None):
            cfg = compose("generate")
        assert cfg.model_path and cfg.num_samples >= 1


def run(script: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, str(script), *overrides], capture_output=True, text=True, env=env,
                          timeout=900, cwd=REPO)


@pytest.mark.slow  # about 20-45 s per domain on 2 threads
@pytest.mark.parametrize("domain", DOMAINS)
def test_debug_experiment_trains_and_samples(domain, tmp_path, shared_data):
    recipe = REPO / "recipes" / domain
    paths = [f"run_dir={tmp_path / 'run'}", f"data.manifest={tmp_path / 'manifest.jsonl'}"]
    out = run(recipe / "train.py", "experiment=debug", *paths)
    assert out.returncode == 0, out.stderr[-3000:]
    model_dir = tmp_path / "run" / "model"
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert records and records[-1]["loss"] is not None
    report = json.loads((tmp_path / "run" / "eval" / "report.json").read_text())  # evaluated after training
    assert report["settings"]["num_samples"] == 4 and report["settings"]["num_reference"] == 20
    assert report["generated"]["frechet_distance"] >= 0 and (tmp_path / "run" / "eval" / "report.md").is_file()
    model = audiodiff.load(model_dir)
    prompts = model.demo_prompts(2)
    prompt_arg = f"prompt=[{','.join(prompts)}]" if prompts else "prompt=null"
    out = run(recipe / "generate.py", f"model_path={model_dir}", prompt_arg, "num_samples=1", "steps=2",
              f"out_dir={tmp_path / 'out'}")
    assert out.returncode == 0, out.stderr[-3000:]
    wavs = sorted((tmp_path / "out").glob("*.wav"))
    assert len(wavs) == max(1, len(prompts or []))
    assert all(w.with_suffix(".json").is_file() for w in wavs)
    out = run(recipe / "distill.py", "experiment=debug", *paths, f"distill.teacher={model_dir}", "distill.steps=2",
              "distill.start_steps=4", "distill.round_steps=2", f"distill.work_dir={tmp_path / 'distill'}",
              f"distill.out={tmp_path / 'student'}")
    assert out.returncode == 0, out.stderr[-3000:]
    student = audiodiff.load(tmp_path / "student")
    assert student.config["steps"] == 2 and student.takes_guidance == model.is_conditional


def test_recipe_errors_are_one_line(tmp_path):
    out = run(REPO / "recipes" / "speech" / "generate.py", f"model_path={tmp_path / 'missing'}",
              f"out_dir={tmp_path}")
    assert out.returncode == 2 and "no model folder" in out.stderr and "Traceback" not in out.stderr


def test_init_from_may_add_a_global_route_that_starts_at_zero(tmp_path):
    """A cross-attention text model fine-tuned with route ``both``: the source's weights load, the new
    global input starts at zero (same predictions as the source), anything else still refuses."""
    import torch
    from conftest import perturb, tiny_config

    sys.path.insert(0, str(REPO / "recipes"))
    from _common import init_weights

    def model(route: str, **net) -> audiodiff.DiffusionModel:
        cfg = tiny_config(conditioning={"prompt": {"name": "tokens", "dim": 16, "layers": 1, "heads": 2, "route": route}})
        cfg["net"].update(net)
        return audiodiff.DiffusionModel(cfg)

    torch.manual_seed(0)
    source = perturb(model("cross")).eval()
    source.save(tmp_path / "src")
    target = model("both").eval()
    assert target.config["net"]["cond_dim"] == 16 and "cond_dim" not in source.config["net"]
    init_weights(target, tmp_path / "src")
    assert torch.count_nonzero(target.net.embedding.cond_proj.weight) == 0
    x, sigma = torch.randn(2, *source.sample_shape(10)), torch.tensor([1.0, 4.0])
    with torch.no_grad():
        a = source.denoise(x, sigma, **source.encode_prompts(["a dog barks", "wind"]))
        b = target.denoise(x, sigma, **target.encode_prompts(["a dog barks", "wind"]))
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(audiodiff.ConfigError, match="net or representation differs"):
        init_weights(model("both", channels=8), tmp_path / "src")
    model("global").save(tmp_path / "global")  # a global source cannot lose its input
    with pytest.raises(audiodiff.ConfigError, match="net or representation differs"):
        init_weights(model("cross"), tmp_path / "global")


def test_speech_judge_voices_render_once_with_their_own_pitch_and_split(tmp_path):
    sys.path.insert(0, str(REPO / "recipes"))
    import judges

    voices = [("en-us", "m1"), ("en-us", "f2"), ("en-gb", "m1"), ("en-gb", "f2")]
    items = judges.espeak_digits(tmp_path, voices, words=("seven", "two"))
    assert len(items) == 8 and {i.label for i in items} == {"seven", "two"} and all(i.caption == i.label for i in items)
    waves = [audiodiff.audio.load_audio(i.path, 8000)[0] for i in items]
    assert all(0.2 < w.shape[-1] / 8000 < 1.5 and w.abs().max() > 0.05 for w in waves)  # real speech, at 8 kHz
    # the same word in another voice is other audio; a second call reuses the files
    assert not torch.equal(waves[0][..., :1000], waves[2][..., :1000])
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    judges.espeak_digits(tmp_path, voices, words=("seven", "two"))
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamp
    # each voice's pitch, rate and split are fixed by its name
    assert judges._draw("en-us+m1/pitch", 30, 70) == judges._draw("en-us+m1/pitch", 30, 70)
    splits = {v: judges._draw(v, 0, 4) == 0 for v in judges.ESPEAK_VARIANTS}
    assert 0 < sum(splits.values()) < len(splits) / 2  # some variants are held out, most train
    assert len(judges.espeak_voices()) == 203 and judges.espeak_voices(3) == judges.espeak_voices()[:3]


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_speech_debug_runs_are_reproducible_and_resume_exactly(tmp_path, shared_data):
    """Two fresh runs of the real recipe on real audio with one seed give identical losses, and a run
    killed with SIGKILL after a checkpoint and rerun gives the uninterrupted run's losses."""
    import signal

    from train_helpers import wait_for_checkpoint

    recipe = REPO / "recipes" / "speech" / "train.py"
    common = ["experiment=debug", "eval.num_samples=0", f"data.manifest={tmp_path / 'manifest.jsonl'}",
              "train.steps=8"]
    runs = {name: tmp_path / name for name in ("a", "b", "killed")}
    for name in ("a", "b"):
        out = run(recipe, *common, f"run_dir={runs[name]}")
        assert out.returncode == 0, out.stderr[-3000:]
    assert len(_losses(runs["a"])) == 8 and _losses(runs["a"]) == _losses(runs["b"])
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, str(recipe), *common, f"run_dir={runs['killed']}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(runs["killed"], proc, 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rest = run(recipe, *common, f"run_dir={runs['killed']}")
    assert rest.returncode == 0, rest.stderr[-3000:]
    resumed = {}
    for line in (runs["killed"] / "log.jsonl").read_text().splitlines():  # the rerun repeats steps after the checkpoint
        record = json.loads(line)
        resumed[record["step"]] = record["loss"]
    assert list(resumed.values()) == _losses(runs["a"])
