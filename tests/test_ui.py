"""The web page (``audiodiff ui``): its jobs make the same bytes as the CLI, its errors are one line,
and (slow) the page works in a real browser: clicks make clips that play, errors show as messages.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import soundfile as sf
from conftest import perturb, tiny_config
from test_edit import SR, test_wave as chirp
from ui_browser import Page, chromium, find_browser, serve

from audiodiff import DiffusionModel
from audiodiff.cli import main
from audiodiff.errors import AudioError, AudiodiffError, ConfigError
from audiodiff.ui import (MAX_INPUT_SECONDS, Cancelled, Studio, check_input, cli_command, describe, example_prompts,
                          offered_models)

LABELS = {"prompt": {"name": "label", "labels": ["low", "high"], "dim": 16}}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny model folders: ``plain`` (unconditional) and ``cond`` (labels, trained with condition dropout)."""
    root = tmp_path_factory.mktemp("models")
    plain = perturb(DiffusionModel(tiny_config())).save(root / "plain")
    cond = perturb(DiffusionModel(tiny_config(conditioning=LABELS, cond_dropout=0.1)), seed=1).save(root / "cond")
    return {"plain": str(plain), "cond": str(cond)}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two short WAV files at the tiny models' rate."""
    root = tmp_path_factory.mktemp("inputs")
    paths = []
    for seed in (0, 1):
        path = root / f"in{seed}.wav"
        sf.write(path, chirp(0.25, seed)[0].numpy(), SR)
        paths.append(str(path))
    return paths


def test_cli_command_names_every_argument_once():
    assert cli_command("generate", "speech", {"prompt": ["two words", "c"], "seed": 3, "steps": None,
                                               "seconds": 0.1 + 0.2, "num_samples": 2}, plot=True) == (
        "audiodiff generate --model speech --prompt 'two words' --prompt c --seed 3 "
        "--seconds 0.30000000000000004 --num-samples 2 --plot")
    assert cli_command("interpolate_prompts", "m", {"prompt_a": "a", "prompt_b": "b", "n": 3}) == (
        "audiodiff interpolate --model m --prompt a --prompt2 b --num-steps 3")
    assert cli_command("interpolate", "m", {"audio_a": "x.wav", "audio_b": "y.wav", "jump_length": 4}) == (
        "audiodiff interpolate --model m --input x.wav --input2 y.wav --jump-length 4")
    assert cli_command("continue", "m", {"audio": "a b.wav"}) == "audiodiff continue --model m --input 'a b.wav'"


# operation, model, the job's keyword arguments ("{0}", "{1}": the input files)
JOBS = [
    ("generate", "cond", {"prompt": ["low", "high"], "num_samples": 2, "steps": 3, "sampler": "ddim"}),
    ("generate", "plain", {"seconds": 0.6, "steps": 2, "seed": 1}),  # longer than the window: overlapping windows
    ("inpaint", "plain", {"audio": "{0}", "start": 0.05, "end": 0.15, "fmin": 500.0, "jumps": 1, "jump_length": 1,
                          "steps": 3, "seed": 2}),
    ("continue", "cond", {"audio": "{0}", "seconds": 0.2, "prompt": "high", "steps": 2, "seed": 0}),
    ("variation", "cond", {"audio": "{1}", "strength": 0.5, "prompt": "low", "num_samples": 2, "steps": 4,
                           "seed": 5, "guidance_scale": 2.0}),
    ("interpolate", "plain", {"audio_a": "{0}", "audio_b": "{1}", "n": 3, "steps": 3}),
    ("interpolate_prompts", "cond", {"prompt_a": "low", "prompt_b": "high", "n": 3, "steps": 3, "seed": 1}),
    ("loop", "plain", {"seconds": 0.25, "wrap": 0.5, "steps": 3, "sampler": "euler"}),  # seed drawn at random
    ("loop", "plain", {"audio": "{0}", "wrap": 0.5, "steps": 3, "seed": 4}),  # a clip made to loop
]


@pytest.mark.parametrize("operation, model, kwargs", JOBS, ids=[f"{j[0]}-{j[1]}" for j in JOBS])
def test_a_page_job_and_its_command_make_the_same_bytes(models, inputs, tmp_path, capsys, operation, model, kwargs):
    kwargs = {k: v.format(*inputs) if isinstance(v, str) else v for k, v in kwargs.items()}
    studio = Studio(tmp_path / "page")
    steps = []
    result = studio.run(operation, models[model], plot=operation == "generate", callback=steps.append, **kwargs)
    assert steps, "the progress callback was never called"
    assert all(info["total"] == len(steps) for info in steps)  # every operation reports the progress bar's total
    assert result.folder.parent == tmp_path / "page" and result.folder.name.endswith(operation)
    assert len(result.paths) == len(result.clips) == {"generate": len(kwargs.get("prompt", [""])) * kwargs.get(
        "num_samples", 1)}.get(operation, kwargs.get("n", kwargs.get("num_samples", 1)))
    sidecars = [json.loads(p.with_suffix(".json").read_text()) for p in result.paths]
    assert all(s["command"] == result.command for s in sidecars)
    for key in ("audio", "audio_a", "audio_b"):  # inputs are copied beside the clips and named in the command
        if key in kwargs:
            assert str(result.folder) in result.command
    if operation == "generate":
        assert all(p.with_suffix(".png").is_file() for p in result.paths)

    cli_out = tmp_path / "cli"
    assert main(shlex.split(result.command)[1:] + ["--out", str(cli_out), "--quiet"]) == 0
    capsys.readouterr()
    cli_wavs = sorted(cli_out.glob("*.wav"))
    assert [p.name[len(p.name.split("_")[0]) + 1:][:3] for p in cli_wavs] == [p.name[:3] for p in result.paths]
    for page_wav, cli_wav in zip(result.paths, cli_wavs):
        assert page_wav.read_bytes() == cli_wav.read_bytes(), (page_wav, cli_wav)
        page_meta = json.loads(page_wav.with_suffix(".json").read_text())
        cli_meta = json.loads(cli_wav.with_suffix(".json").read_text())
        assert {k: v for k, v in page_meta.items() if k != "command"} == \
               {k: v for k, v in cli_meta.items() if k != "command"}


def sidecar_argv(meta: dict) -> list[str]:
    """``audiodiff generate`` arguments that make the clip of a sidecar, from the sidecar alone."""
    argv = ["generate", "--model", meta["model"], "--seed", str(meta["seed"]), "--steps", str(meta["steps"]),
            "--spacing", meta["spacing"], "--seconds", repr(meta["seconds"]), "--sampler", meta["sampler"]["name"]]
    argv += [a for k, v in meta["sampler"].items() if k != "name" for a in ("--sampler-arg", f"{k}={json.dumps(v)}")]
    if meta.get("prompt") is not None:
        argv += ["--prompt", meta["prompt"], "--guidance-scale", repr(meta["guidance_scale"])]
    return argv


def test_any_clip_from_the_page_is_made_again_from_its_sidecar(models, tmp_path, capsys):
    result = Studio(tmp_path / "page").run("generate", models["cond"], prompt=["high", "low"], num_samples=2,
                                           steps=3, sampler="ddpm", guidance_scale=2.5)
    assert len(result.paths) == 4 and "--batch-size 1" in result.command
    for index in (0, 3):  # the first clip, and the last one (its own seed, alone)
        meta = json.loads(result.paths[index].with_suffix(".json").read_text())
        out = tmp_path / f"cli{index}"
        assert main(sidecar_argv(meta) + ["--out", str(out), "--quiet"]) == 0
        (wav,) = out.glob("*.wav")
        assert wav.read_bytes() == result.paths[index].read_bytes()
    capsys.readouterr()


@pytest.mark.parametrize("operation, kwargs, message", [
    ("nope", {}, "unknown operation 'nope'"),
    ("generate", {"prompt": ["middle"]}, "unknown label(s) 'middle'"),
    ("generate", {"steps": 0}, "steps must be an integer >= 1"),
    ("variation", {"audio": "/no/such.wav", "strength": 0.5}, "is not a file"),
    ("variation", {"audio": "{0}", "strength": 2.0}, "strength must be in (0, 1]"),
    ("interpolate_prompts", {"prompt_a": "low", "prompt_b": "high", "n": 1}, "n must be an integer in [2, "),
])
def test_job_errors_are_one_line_audiodiff_errors(models, inputs, tmp_path, operation, kwargs, message):
    kwargs = {k: v.format(*inputs) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(AudiodiffError) as info:
        Studio(tmp_path).run(operation, models["cond"], **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_models_load_once_and_a_bad_name_is_a_clear_error(models, tmp_path):
    studio = Studio(tmp_path)
    assert studio.model(models["plain"]) is studio.model(models["plain"])
    with pytest.raises(ConfigError, match="choose a model"):
        studio.model(" ")
    with pytest.raises(AudiodiffError, match="no model folder or shipped model named"):
        studio.model(str(tmp_path / "missing"))


def test_describe_and_examples_say_what_the_model_knows(models, tmp_path):
    studio = Studio(tmp_path)
    cond, plain = studio.model(models["cond"]), studio.model(models["plain"])
    assert describe(cond, "cond") == ("**cond**: 8000 Hz, 0.25 s window; conditioned on label prompts. "
                                      "Defaults: ddim, 4 steps, guidance 3.")
    assert example_prompts(cond) == ["low", "high"]  # a label model offers its labels
    assert "unconditional (no prompt)" in describe(plain, "plain") and example_prompts(plain) == []


def test_the_picker_offers_the_shipped_models_and_the_given_folders(models):
    from audiodiff import list_models

    offered = offered_models([models["plain"], "speech"])
    assert offered == [*list_models(), models["plain"]] and "speech" in offered


def test_uploads_that_are_not_audio_or_too_long_are_one_line_errors(models, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n")
    long = tmp_path / "long.wav"
    sf.write(long, chirp(MAX_INPUT_SECONDS + 1, 0)[0].numpy(), SR)
    studio = Studio(tmp_path / "page")
    for path, message in [(text, "notes.wav is not an audio file soundfile can read"),
                          (long, f"long.wav is 61 s long; the page edits clips up to {MAX_INPUT_SECONDS:g} s")]:
        with pytest.raises(AudioError) as info:
            studio.run("variation", models["plain"], audio=str(path), strength=0.5)
        assert str(info.value).startswith(message)
    assert check_input(long, limit=100) == pytest.approx(MAX_INPUT_SECONDS + 1)
    assert not (tmp_path / "page").exists() or not any((tmp_path / "page").iterdir())  # no job folder was left


def test_a_cancelled_job_stops_at_the_next_step_and_leaves_no_folder(models, tmp_path):
    cancel, steps = threading.Event(), []

    def step(info):
        steps.append(info)
        cancel.set()  # the Stop button, pressed during the first step

    with pytest.raises(Cancelled, match="stopped before it finished"):
        Studio(tmp_path).run("generate", models["plain"], steps=4, seed=0, callback=step, cancel=cancel)
    assert len(steps) == 1 and list(tmp_path.iterdir()) == []


def test_ui_without_gradio_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    assert main(["ui", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["audiodiff: error: the web page needs gradio: pip install 'audiodiff[ui]'"]


@pytest.mark.slow  # starts a server
def test_a_taken_port_is_a_one_line_error(models, tmp_path, capsys):
    pytest.importorskip("gradio")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--model", models["plain"], "--out", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"audiodiff: error: cannot serve the page on 127.0.0.1:{port}: ")


def test_the_page_builds_for_a_model(models, tmp_path):
    pytest.importorskip("gradio")
    from audiodiff.ui import build_app

    app = build_app(Studio(tmp_path), [models["cond"], models["plain"]])
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert {"model", "prompt", "examples", "reuse-seed", "generate-button", "inpaint-button", "stop-button", "status",
            "clip-0", "mel-0", "files-0", "command"} <= ids


# -- in a browser ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_page_in_a_browser(tmp_path):
    """The page as a person uses it, with the shipped speech model in headless Chromium: pick an example
    prompt, generate, hear clip 1 play and see its mel; download the WAV and check it against what the
    page showed; remake it bit for bit with the CLI; see bad input as a message (the server keeps
    serving); stop a long job; send a clip to Inpaint and inpaint it.

    ``AUDIODIFF_UI_SCREENSHOTS=docs/ui`` keeps the screenshots (the README's come from here)."""
    pytest.importorskip("gradio")
    pytest.importorskip("selenium")
    if find_browser() is None:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    shots = Path(os.environ.get("AUDIODIFF_UI_SCREENSHOTS") or tmp_path / "shots")
    out = tmp_path / "page"
    with serve(out, ["speech"]) as url, chromium() as driver:
        page = Page(driver, url, timeout=120)
        page.open()
        assert page.text("model-info").startswith("speech: 8000 Hz, 1 s window; conditioned on label prompts")
        page.click_example("seven")
        assert page.value("prompt") == "seven"
        page.open_sampling()
        page.fill("seed", 3)
        page.fill("num-samples", 2)
        status, seconds = page.run("generate-button")
        assert status.startswith("Made 2 clips with seed 3 in ") and 0 < seconds < 120
        page.wait(lambda: page.driver.execute_script(
            "const i = document.querySelector('#mel-0 img'); return i !== null && i.complete && i.naturalWidth > 0"),
            30, "no mel image for clip 1")
        (folder,) = out.glob("*-generate")
        wavs = sorted(folder.glob("*.wav"))
        assert [p.name for p in wavs] == ["000_seed3.wav", "001_seed4.wav"]

        downloaded = page.download("files-0", "000_seed3.wav", tmp_path / "downloaded.wav")
        assert downloaded.read_bytes() == wavs[0].read_bytes()
        wave, rate = sf.read(downloaded)
        shown_rate = int(page.text("model-info").split(":")[1].split("Hz")[0])
        hop = 128  # the speech model's: a clip is a whole number of mel frames
        assert rate == shown_rate == 8000 and abs(len(wave) - float(page.value("seconds")) * rate) < hop
        assert 0.01 < abs(wave).max() <= 1.0 and abs(wave).std() > 1e-3  # sound, not silence or noise-free zeros
        meta = json.loads(wavs[0].with_suffix(".json").read_text())
        assert (meta["prompt"], meta["seed"], meta["steps"], meta["guidance_scale"]) == (
            "seven", 3, int(page.value("steps")), float(page.value("guidance")))
        assert " ".join(page.text("command").split()).endswith(meta["command"])
        page.screenshot(shots / "generate.png")

        cli_out = tmp_path / "cli"
        # bit-identical needs the same arithmetic: the CLI process gets the page's torch thread count
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
        done = subprocess.run([sys.executable, "-m", "audiodiff", *shlex.split(meta["command"])[1:], "--out",
                               str(cli_out), "--quiet"], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        assert [p.read_bytes() for p in sorted(cli_out.glob("*.wav"))] == [p.read_bytes() for p in wavs]

        page.fill("prompt", "eleven")
        text = page.expect_message("generate-button", "unknown label(s) 'eleven'; this model knows: zero")
        assert "Traceback" not in text and page.text("status").startswith("Error: unknown label(s) 'eleven'")
        assert page.driver.execute_script("return document.querySelector('#clip-1 audio').src").endswith(wavs[1].name)
        page.screenshot(shots / "error.png")
        page.dismiss_messages()

        page.tab("Variation")
        for name, message in [("notes.txt", "Invalid file type: notes.txt"),  # the browser refuses it
                              ("notes.wav", "notes.wav is not an audio file soundfile can read")]:  # the server does
            (tmp_path / name).write_text("these are notes, not sound\n")
            page.upload("variation-input", tmp_path / name)
            text = page.expect_message("variation-button", message)
            assert "Traceback" not in text
            page.dismiss_messages()

        page.tab("Generate")
        page.fill("prompt", "seven")
        page.fill("steps", 600)  # long: the speech model's ladder to sigma 0.6 has 662 training steps
        page.find("#generate-button").click()
        page.wait(lambda: len(list(out.glob("*-generate"))) == 2, 60, "the long job never started")
        page.find("#stop-button").click()
        page.wait(lambda: page.text("status") == "Stopped before it finished; nothing was saved.", 30,
                  "Stop did not answer")
        page.wait(lambda: len(list(out.glob("*-generate"))) == 1, 60, "the stopped job left its folder")
        page.fill("steps", 5)

        page.fill("seed", -1)  # a random seed: shown, and one click puts it back
        status, _ = page.run("generate-button")
        drawn = int(status.split("with seed ")[1].split()[0])
        page.find("#reuse-seed").click()
        page.wait(lambda: page.value("seed") == str(drawn), 10, "the seed was not put back")

        page.find("#use-clip").click()
        page.tab("Inpaint")
        page.wait(lambda: "Drop Audio Here" not in page.text("inpaint-input"), 30, "the clip never reached the Inpaint tab")
        page.fill("inpaint-start", 0.3)
        page.fill("inpaint-end", 0.6)
        status, _ = page.run("inpaint-button")
        assert status.startswith(f"Made 1 clip with seed {drawn}")
        (edit,) = out.glob("*-inpaint")
        meta = json.loads(next(edit.glob("*.json")).read_text())
        assert meta["edit"]["name"] == "inpaint" and meta["edit"]["start"] == 0.3 and meta["prompt"] == "seven"
        assert Path(meta["edit"]["input"]).parent == edit  # the input was copied beside the result
        page.screenshot(shots / "inpaint.png")
