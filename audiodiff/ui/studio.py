"""The page's jobs, testable without a browser or Gradio (the page itself: :mod:`audiodiff.ui.page`).

- :class:`Studio` runs one operation (``generate``, ``inpaint``, ``continue``, ``variation``,
  ``interpolate``, ``interpolate_prompts``, ``loop``) with :func:`audiodiff.load` and the public
  functions of :mod:`audiodiff.generate` and :mod:`audiodiff.edit`, writes every clip with
  :meth:`audiodiff.Audio.save` (WAV + JSON sidecar, and a mel PNG on request) into a folder of its
  own, and returns the ``audiodiff ...`` command that makes the same clips (:func:`cli_command`).
  That command is also the sidecar's ``command``: a clip made on the page and the one the command
  makes are bit-identical (the seed a blank seed box drew is in the command).  The page generates
  one clip at a time (``batch_size=1``), so that each clip is also made bit for bit by
  ``audiodiff generate`` with the settings of its own sidecar alone: in a batch, the net's arithmetic
  on several clips at once rounds differently (benchmarks/results/defaults.md).
"""

from __future__ import annotations

import itertools
import logging
import shlex
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import AudioError, AudiodiffError, ConfigError

log = logging.getLogger(__name__)

#: clips shown with a player, a mel image and downloads; every file of a job is also under "All files of the job"
MAX_PLAYERS = 8

#: the longest clip the page takes as input to an edit (the CLI takes any length)
MAX_INPUT_SECONDS = 60.0

#: operation -> (CLI command, public function name in ``audiodiff``)
OPERATIONS: dict[str, tuple[str, str]] = {
    "generate": ("generate", "generate"),
    "inpaint": ("inpaint", "inpaint"),
    "continue": ("continue", "continue_audio"),
    "variation": ("variation", "variation"),
    "interpolate": ("interpolate", "interpolate"),
    "interpolate_prompts": ("interpolate", "interpolate_prompts"),
    "loop": ("loop", "loop"),
}

#: keyword arguments whose CLI option is not ``--`` + the name with dashes
FLAGS = {"audio": "--input", "audio_a": "--input", "audio_b": "--input2", "prompt_a": "--prompt",
         "prompt_b": "--prompt2", "n": "--num-steps"}

#: keyword arguments that name input audio files (copied into the job's folder first)
AUDIO_ARGS = ("audio", "audio_a", "audio_b")


def cli_command(operation: str, model: str, kwargs: Mapping[str, Any], plot: bool = False) -> str:
    """The ``audiodiff`` command line that calls the public function of ``operation`` with ``kwargs``.

    ``None`` values are left out (the function's default); a list (``generate``'s prompts) repeats
    its option.  Floats are written with ``repr``, which reads back to the same float.
    """
    command, _ = OPERATIONS[operation]
    argv = ["audiodiff", command, "--model", str(model)]
    for key, value in kwargs.items():
        if value is None:
            continue
        flag = FLAGS.get(key, "--" + key.replace("_", "-"))
        for item in value if isinstance(value, (list, tuple)) else [value]:
            argv += [flag, repr(item) if isinstance(item, float) else str(item)]
    if plot:
        argv.append("--plot")
    return shlex.join(argv)


class Cancelled(AudiodiffError):
    """A page job stopped by its Stop button."""


@dataclass
class Result:
    """What one job made: its clips, where they were written, and the command that makes them."""

    clips: list[Any]
    paths: list[Path]
    folder: Path
    command: str
    seconds: float

    @property
    def seed(self) -> int | None:
        """The job's base seed (clip ``i`` used ``seed + i``), or ``None`` for a deterministic edit."""
        return self.clips[0].metadata.get("seed")

    def summary(self) -> str:
        """One line for the page: how many clips, their seed, how long it took, where they are."""
        n = len(self.clips)
        seed = "" if self.seed is None else f" with seed {self.seed}"
        more = f"; the first {MAX_PLAYERS} are shown" if n > MAX_PLAYERS else ""
        return f"Made {n} clip{'s' if n != 1 else ''}{seed} in {self.seconds:.1f} s, written to `{self.folder}`{more}."


class Studio:
    """Loads models once and runs page jobs with the library's public functions.

    Args:
        out_dir: every job writes into a new subfolder ``NNNN-<operation>`` of it.
        device: where models run (``None``: where :func:`audiodiff.load` puts them).
    """

    def __init__(self, out_dir: str | Path, device: Any = None):
        self.out_dir = Path(out_dir)
        self.device = device
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._jobs = itertools.count(1)

    def model(self, name: str) -> Any:
        """The model ``name`` (shipped name, folder or ``hf://`` id, optionally ``" + ADAPTER[:STRENGTH]"`` LoRA
        adapters after it), loaded on first use.

        Its conditioners encode an example prompt once then, so that a text encoder they load lazily
        (seconds for the sentence encoder) is loaded when the model is picked, not on the first click.
        """
        import torch

        from ..hub import load
        from ..lora import split_model_spec

        name = (name or "").strip()
        if not name:
            raise ConfigError("choose a model")
        with self._lock:
            if name not in self._models:
                base, adapters = split_model_spec(name)
                model = load(base, device=self.device, lora=adapters)
                if model.is_conditional:
                    with torch.inference_mode():
                        model.encode_prompts(model.demo_prompts(1) or [""])
                self._models[name] = model
            return self._models[name]

    def run(self, operation: str, model_name: str, plot: bool = False,
            callback: Callable[[dict[str, Any]], None] | None = None, cancel: threading.Event | None = None,
            **kwargs: Any) -> Result:
        """Run ``operation`` on ``model_name`` with ``kwargs`` (``None``: the function's default) and save the clips.

        Input audio (``audio``, ``audio_a``, ``audio_b``: file paths) is checked (:func:`check_input`)
        and copied into the job's folder first, so the sidecars and the command name files that stay.
        A blank ``seed`` is drawn by the function; the drawn one goes into the command.  ``callback``
        gets every sampler step; once ``cancel`` is set, the next step raises :class:`Cancelled`.
        With ``plot``, each clip also gets a mel-spectrogram PNG (the ``plot`` extra).
        """
        import audiodiff

        if operation not in OPERATIONS:
            raise ConfigError(f"unknown operation {operation!r}; valid: {', '.join(OPERATIONS)}")
        if plot:
            from ..plot import save_mel_png  # noqa: F401  (fail before sampling if matplotlib is missing)
        model = self.model(model_name)
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        if operation == "generate":
            kwargs.setdefault("batch_size", 1)  # see the module docstring: every sidecar alone remakes its clip
        for key in AUDIO_ARGS:
            if key in kwargs:
                check_input(kwargs[key])
        folder = self.new_folder(operation)
        try:
            for key in AUDIO_ARGS:
                if key in kwargs:
                    stem = "input2" if key == "audio_b" else "input"
                    kwargs[key] = str(shutil.copyfile(kwargs[key], folder / (stem + (Path(kwargs[key]).suffix or ".wav"))))
            start = time.perf_counter()
            function = getattr(audiodiff, OPERATIONS[operation][1])
            clips = function(model, callback=stoppable(callback, cancel), **kwargs)
            seconds = time.perf_counter() - start
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # nothing was made: no folder of inputs alone
            raise
        if clips[0].metadata.get("seed") is not None:
            kwargs["seed"] = clips[0].metadata["seed"]  # the base seed (clip i used seed + i)
        command = cli_command(operation, model_name, kwargs, plot)
        paths = []
        for clip in clips:
            clip.metadata["command"] = command
            name = f"{clip.metadata['index']:03d}" + ("" if clip.metadata.get("seed") is None
                                                      else f"_seed{clip.metadata['seed']}") + ".wav"
            log_mel = model.representation.to_log_mel(clip.features[None])[0] if plot else None  # (1, ...) -> (n_mels, T)
            paths.append(clip.save(folder / name, plot=plot, log_mel=log_mel, hop_length=model.representation.hop_length))
        return Result(clips, paths, folder, command, seconds)

    def new_folder(self, operation: str) -> Path:
        """A new, empty folder for one job: ``out_dir/NNNN-operation``."""
        while True:
            folder = self.out_dir / f"{next(self._jobs):04d}-{operation}"
            try:
                folder.mkdir(parents=True)
                return folder
            except FileExistsError:
                continue  # an earlier session's job
            except OSError as exc:
                raise ConfigError(f"cannot write to output folder {self.out_dir}: {exc.strerror or exc}") from None


def stoppable(callback: Callable[[dict[str, Any]], None] | None,
              cancel: threading.Event | None) -> Callable[[dict[str, Any]], None] | None:
    """``callback`` that first raises :class:`Cancelled` once ``cancel`` is set (``None``: never)."""
    if cancel is None:
        return callback

    def step(info: dict[str, Any]) -> None:
        if cancel.is_set():
            raise Cancelled("stopped before it finished; nothing was saved")
        if callback is not None:
            callback(info)

    return step


def check_input(path: str | Path, limit: float = MAX_INPUT_SECONDS) -> float:
    """The length in seconds of an input audio file; an error if it is not audio or longer than ``limit``."""
    import soundfile as sf

    name = Path(path).name
    if not Path(path).is_file():
        raise AudioError(f"input audio {name} is not a file")
    try:
        info = sf.info(str(path))
    except Exception:  # soundfile raises LibsndfileError, RuntimeError, ...
        raise AudioError(f"{name} is not an audio file soundfile can read (WAV, FLAC, OGG, MP3)") from None
    if info.frames == 0:
        raise AudioError(f"{name} has no samples")
    seconds = info.frames / info.samplerate
    if seconds > limit:
        raise AudioError(f"{name} is {seconds:.0f} s long; the page edits clips up to {limit:g} s "
                         "(the audiodiff command line takes any length)")
    return seconds
