"""Fuzzing the command line with bad numbers, bad files and bad model folders (issue 17).

Every case runs ``audiodiff ...`` in-process on a generated corpus (broken audio, hostile model folders)
with options drawn by hypothesis, and checks the promises of the README:

- it succeeds (exit 0) or fails with exit status 2 and exactly one line ``audiodiff: error: ...``;
- no traceback (any other exception fails the test);
- no file outside ``--out`` changes (the model folders, the corpus, the current folder);
- no partial file: nothing temporary is left in ``--out``, every WAV there decodes and has its sidecar.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_MEL, tiny_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiodiff import DiffusionModel
from audiodiff.cli import main

SR = TINY_MEL["sample_rate"]
FUZZ = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# -- the corpus: bad audio files ------------------------------------------------------------------------
def _tone(seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.4 * np.sin(2 * math.pi * 300 * t)).astype(np.float32)


def make_audio_corpus(folder: Path) -> dict[str, Path]:
    """Good and bad inputs by name: what users (and attackers) hand the edit commands."""
    folder.mkdir(parents=True)
    files = {}

    def add(name: str, data: bytes) -> None:
        files[name] = folder / name
        files[name].write_bytes(data)

    sf.write(str(folder / "good.wav"), _tone(), SR, subtype="PCM_16")
    files["good.wav"] = folder / "good.wav"
    good = files["good.wav"].read_bytes()
    add("empty.wav", b"")
    add("random.wav", os.urandom(4096))
    add("truncated.wav", good[: len(good) // 3])
    add("header-only.wav", good[:44])
    add("text.wav", b"this is not audio\n" * 50)
    add("pickle.wav", b"\x80\x04\x95" + os.urandom(200))
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf), ("neginf.wav", -np.inf)):
        data = _tone()
        data[len(data) // 2] = value
        sf.write(str(folder / name), data, SR, subtype="FLOAT")
        files[name] = folder / name
    sf.write(str(folder / "all-inf.wav"), np.full(SR // 4, np.inf, dtype=np.float32), SR, subtype="FLOAT")
    files["all-inf.wav"] = folder / "all-inf.wav"
    sf.write(str(folder / "tiny.wav"), _tone(0.002), SR, subtype="PCM_16")
    files["tiny.wav"] = folder / "tiny.wav"
    with wave.open(str(folder / "zero-frames.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(SR)
    files["zero-frames.wav"] = folder / "zero-frames.wav"
    (folder / "folder.wav").mkdir()
    files["folder.wav"] = folder / "folder.wav"
    files["missing.wav"] = folder / "missing.wav"
    return files


# -- the corpus: bad model folders -----------------------------------------------------------------------
def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def make_model_corpus(folder: Path) -> dict[str, Path]:
    """A good tiny model folder and hostile or broken variants of it."""
    torch.manual_seed(0)
    good = DiffusionModel(tiny_config()).save(folder / "good")
    models = {"good": good}

    def variant(name: str, change=None, files=None) -> None:
        target = Path(shutil.copytree(good, folder / name))
        if change is not None:
            config = _config(target)
            change(config)
            (target / "config.json").write_text(json.dumps(config))
        for file_name, data in (files or {}).items():
            (target / file_name).write_bytes(data)
        models[name] = target

    variant("net-null", lambda c: c.update(net=None))
    variant("net-name-dict", lambda c: c["net"].update(name={}))
    variant("steps-five", lambda c: c.update(steps="five"))
    variant("seconds-negative", lambda c: c.update(seconds=-1))
    variant("unknown-key", lambda c: c.update(netz={}))
    variant("autoencoder-escape", lambda c: c.update(representation={"name": "latent", "autoencoder": "../../etc"}))
    variant("autoencoder-absolute", lambda c: c.update(representation={"name": "latent", "autoencoder": "/etc"}))
    variant("text-escape", lambda c: c.update(conditioning={"p": {"name": "text", "model": "../good"}}))
    variant("text-hub", lambda c: c.update(conditioning={"p": {"name": "text", "model": "evil/encoder"}}))
    variant("config-array", files={"config.json": b"[1, 2, 3]"})
    variant("config-not-json", files={"config.json": b"{not json"})
    variant("weights-junk", files={"model.safetensors": b"junk"})
    variant("weights-pickle", files={"model.safetensors": b"\x80\x04\x95" + os.urandom(300)})
    variant("weights-wrong-shape", lambda c: c["net"].update(channels=8))
    variant("no-weights")
    (models["no-weights"] / "model.safetensors").unlink()
    variant("vocoder-link-outside")
    (models["vocoder-link-outside"] / "vocoder").symlink_to(folder.parent)
    return models


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    return {"root": root, "audio": make_audio_corpus(root / "audio"), "models": make_model_corpus(root / "models")}


# -- running a case and checking the promises -------------------------------------------------------------
def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``folder`` with its bytes (symlinks by target, folders as None)."""
    state: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = os.readlink(path).encode()
        elif path.is_file():
            state[key] = path.read_bytes()
        else:
            state[key] = None
    return state


def run_case(corpus: dict, argv: list[str]) -> tuple[int, str]:
    """Run ``audiodiff argv`` (``{out}`` filled in) in a fresh current folder; check every promise."""
    root = corpus["root"]
    before = snapshot(root)
    with tempfile.TemporaryDirectory() as work:
        cwd, out = Path(work) / "cwd", Path(work) / "out"
        cwd.mkdir()
        argv = [a.replace("{out}", str(out)) for a in argv]
        err = io.StringIO()
        old = os.getcwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse
                    code = int(exc.code)
        finally:
            os.chdir(old)
        lines = err.getvalue().strip().splitlines()
        assert code in (0, 2), (argv, code, lines)
        if code == 2:
            assert len(lines) == 1 and lines[0].startswith("audiodiff: error: "), (argv, lines)
        assert "Traceback" not in err.getvalue()
        assert list(cwd.iterdir()) == [], f"{argv} wrote into the current folder"
        beside = set(os.listdir(work)) - {"cwd", "out", "out.json"}
        assert not beside, f"{argv} wrote beside --out: {beside}"
        check_no_partial_files(out, code)
    assert snapshot(root) == before, f"{argv} changed a file outside --out"
    return code, lines[0] if lines else ""


def check_no_partial_files(out: Path, code: int) -> None:
    if not out.exists():
        return
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".") or p.suffix == ".tmp"], files
    for wav in (p for p in files if p.suffix == ".wav"):
        data, _ = sf.read(str(wav))
        assert len(data) > 0 and np.isfinite(data).all() and wav.with_suffix(".json").is_file()
    if code != 0:
        assert files or not out.exists(), "a failed run leaves no empty folder"


# -- numbers ------------------------------------------------------------------------------------------------
NUMBERS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e30", "-1e30", "1e308", "0", "-0", "-1", "1e-9", "2.7", "abc", ""]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
)
SMALL_SECONDS = st.one_of(st.sampled_from(["0.001", "0.01", "0.05", "0.25", "nan", "-0.25", "1e9", "inf"]),
                          st.floats(min_value=-1, max_value=0.3).map(repr))
SEEDS = st.one_of(st.sampled_from([str(2**64 - 1), str(2**64), str(2**70), "-1", "x", "1.5"]),
                  st.integers(min_value=-(2**70), max_value=2**70).map(str))


@FUZZ
@given(option=st.sampled_from(["--guidance-scale", "--guidance-rescale", "--overlap", "--batch-size", "--steps"]),
       value=NUMBERS, seed=SEEDS, seconds=SMALL_SECONDS)
def test_fuzz_generate_numbers(corpus, option, value, seed, seconds):
    model = corpus["models"]["good"]
    if option in ("--steps", "--batch-size") and value.lstrip("-").isdigit() and 1 <= int(value) <= 1000:
        value = "1001"  # a valid count would only slow the fuzzing down
    run_case(corpus, ["generate", "-m", str(model), "-o", "{out}", "-q", option, value, "--seed", seed,
                      "--seconds", seconds, "--steps", "2"] if option != "--steps" else
             ["generate", "-m", str(model), "-o", "{out}", "-q", option, value, "--seed", seed])


@FUZZ
@given(sampler=st.sampled_from(["ddim", "ddpm", "euler_ancestral", "langevin", "sde", "dpmpp_2m_sde", "heun"]),
       key=st.sampled_from(["eta", "step_lr", "n_steps_each", "snr", "corrector_steps", "s_churn", "nope"]),
       value=NUMBERS)
def test_fuzz_sampler_options(corpus, sampler, key, value):
    model = corpus["models"]["good"]
    run_case(corpus, ["generate", "-m", str(model), "-o", "{out}", "-q", "--steps", "2", "--sampler", sampler,
                      "--sampler-arg", f"{key}={value}"])


@FUZZ
@given(prompt=st.text(min_size=0, max_size=50) | st.just("p" * 100_000), count=st.integers(-3, 3))
def test_fuzz_prompts_and_counts(corpus, prompt, count):
    model = corpus["models"]["good"]
    code, line = run_case(corpus, ["generate", "-m", str(model), "-o", "{out}", "-q", "--steps", "1",
                                   "--prompt", prompt, "-n", str(count)])
    assert code == 2 and len(line) <= 400  # the tiny model is unconditional: a prompt is always an error


@FUZZ
@given(prefix=st.sampled_from(["../escape", "/tmp/abs", "a/b", ".hidden", "..", "", "ok"]) | st.text(max_size=12))
def test_fuzz_prefixes_stay_in_out(corpus, prefix):
    code, _ = run_case(corpus, ["generate", "-m", str(corpus["models"]["good"]), "-o", "{out}", "-q", "--steps", "1",
                                "--prefix", prefix])
    assert code == 2 or "/" not in prefix


@pytest.mark.parametrize("source", ["/dev/zero", "{pickle}", "{folder}", "{missing}"])
def test_fuzz_bad_prompts_files(corpus, source):
    audio = corpus["audio"]
    path = source.format(pickle=audio["pickle.wav"], folder=audio["folder.wav"], missing=audio["missing.wav"])
    if not Path(path).exists() and source == "/dev/zero":
        pytest.skip("no /dev/zero")
    code, line = run_case(corpus, ["generate", "-m", str(corpus["models"]["good"]), "-o", "{out}", "-q",
                                   "--prompts-file", path])
    assert code == 2 and "prompts file" in line


# -- bad files ------------------------------------------------------------------------------------------------
BAD_AUDIO = ["empty.wav", "random.wav", "truncated.wav", "header-only.wav", "text.wav", "pickle.wav", "nan.wav",
             "inf.wav", "neginf.wav", "all-inf.wav", "tiny.wav", "zero-frames.wav", "folder.wav", "missing.wav"]
EDITS = {
    "variation": ["--strength", "0.5"],
    "inpaint": ["--start", "0", "--end", "0.1"],
    "continue": ["--seconds", "0.1"],
    "interpolate": ["--input2", "{good}", "--num-steps", "2"],
}


@FUZZ
@given(name=st.sampled_from(BAD_AUDIO), edit=st.sampled_from(sorted(EDITS)))
def test_fuzz_bad_audio_files(corpus, name, edit):
    audio = corpus["audio"]
    extra = [a.replace("{good}", str(audio["good.wav"])) for a in EDITS[edit]]
    code, line = run_case(corpus, [edit, "-m", str(corpus["models"]["good"]), "-o", "{out}", "-q", "--steps", "2",
                                   "-i", str(audio[name])] + extra)
    assert code == 2 and name in line, line


@pytest.mark.parametrize("name", ["empty.wav", "random.wav", "truncated.wav", "nan.wav", "all-inf.wav",
                                  "zero-frames.wav", "folder.wav", "missing.wav"])
def test_fuzz_bad_files_for_likelihood(corpus, name):
    code, line = run_case(corpus, ["likelihood", "-m", str(corpus["models"]["good"]), str(corpus["audio"][name]),
                                   "--steps", "2", "--json", "{out}.json"])
    assert code == 2 and name in line, line


# -- bad model folders ----------------------------------------------------------------------------------------
MODEL_NAMES = ["net-null", "net-name-dict", "steps-five", "seconds-negative", "unknown-key", "autoencoder-escape",
               "autoencoder-absolute", "text-escape", "text-hub", "config-array", "config-not-json", "weights-junk",
               "weights-pickle", "weights-wrong-shape", "no-weights", "vocoder-link-outside"]


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("command", [["generate", "-o", "{out}", "-q", "--steps", "1"], ["info"]])
def test_fuzz_bad_model_folders(corpus, name, command, monkeypatch):
    monkeypatch.delenv("AUDIODIFF_ALLOW_HUB", raising=False)
    code, line = run_case(corpus, [command[0], "-m", str(corpus["models"][name]), *command[1:]])
    assert code == 2, (name, line)


def test_fuzz_the_corpus_is_what_it_claims(corpus):
    """The good pieces of the corpus work, so the failures above are the bad pieces' doing."""
    assert run_case(corpus, ["generate", "-m", str(corpus["models"]["good"]), "-o", "{out}", "-q", "--steps", "1"])[0] == 0
    assert run_case(corpus, ["variation", "-m", str(corpus["models"]["good"]), "-o", "{out}", "-q", "--steps", "1",
                             "-i", str(corpus["audio"]["good.wav"]), "--strength", "0.5"])[0] == 0


@pytest.mark.parametrize("argv", [
    ["generate", "--model", "{model}", "--seed", str(2**70)],
    ["variation", "--model", "{model}", "-i", "{nan}", "--strength", "0.5"],
    ["generate", "--model", "{escape}"],
    ["generate", "--frobnicate"],
])
@pytest.mark.slow  # a new Python process per case; tests/test_cli.py checks the console script once by default
def test_fuzz_console_script_prints_one_line(corpus, argv, tmp_path):
    fill = {"model": str(corpus["models"]["good"]), "nan": str(corpus["audio"]["nan.wav"]),
            "escape": str(corpus["models"]["autoencoder-escape"])}
    argv = [a.format(**fill) for a in argv] + ["--out", str(tmp_path / "out")]
    out = subprocess.run([sys.executable, "-m", "audiodiff", *argv], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert not (tmp_path / "out").exists()
