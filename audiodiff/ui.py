"""The web page: ``audiodiff ui`` serves a Gradio page over the same public functions as the CLI.

Two layers, so that the first is testable without a browser or Gradio:

- :class:`Studio` runs one operation (``generate``, ``inpaint``, ``continue``, ``variation``,
  ``interpolate``, ``interpolate_prompts``, ``loop``) with :func:`audiodiff.load` and the public
  functions of :mod:`audiodiff.generate` and :mod:`audiodiff.edit`, writes every clip with
  :meth:`audiodiff.Audio.save` (WAV + JSON sidecar, and a mel PNG on request) into a folder of its
  own, and returns the ``audiodiff ...`` command that makes the same clips (:func:`cli_command`).
  That command is also the sidecar's ``command``: a clip made on the page and the one the command
  makes are bit-identical (the seed a blank seed box drew is in the command).  The page generates
  one clip at a time (``batch_size=1``), so that each clip is also made bit for bit by
  ``audiodiff generate`` with the settings of its own sidecar alone: in a batch, the net's arithmetic
  on several clips at once rounds differently (by up to about 2e-6, measured on the shipped models).
- :func:`build_app` lays the page out with Gradio (the ``ui`` extra) and :func:`launch` serves it.
  Every :class:`~audiodiff.errors.AudiodiffError` becomes a short message on the page; the server
  keeps running.  One job runs at a time (a queue), since one job already uses the CPU's threads.
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
from typing import Any, Callable, Mapping, Sequence

from .errors import AudiodiffError, ConfigError

log = logging.getLogger(__name__)

#: audio players on the page; further clips are in the file list
MAX_PLAYERS = 8

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


@dataclass
class Result:
    """What one job made: its clips, where they were written, and the command that makes them."""

    clips: list[Any]
    paths: list[Path]
    folder: Path
    command: str
    seconds: float

    @property
    def pngs(self) -> list[Path]:
        return [p.with_suffix(".png") for p in self.paths if p.with_suffix(".png").is_file()]

    def summary(self) -> str:
        """One line for the page: how many clips, how long it took, where they are."""
        n = len(self.clips)
        return f"Made {n} clip{'s' if n != 1 else ''} in {self.seconds:.1f} s, written to `{self.folder}`."


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
        """The model ``name`` (shipped name, folder or ``hf://`` id), loaded on first use."""
        from .hub import load

        name = (name or "").strip()
        if not name:
            raise ConfigError("choose a model")
        with self._lock:
            if name not in self._models:
                self._models[name] = load(name, device=self.device).eval()
            return self._models[name]

    def run(self, operation: str, model_name: str, plot: bool = False,
            callback: Callable[[dict[str, Any]], None] | None = None, **kwargs: Any) -> Result:
        """Run ``operation`` on ``model_name`` with ``kwargs`` (``None``: the function's default) and save the clips.

        Input audio (``audio``, ``audio_a``, ``audio_b``: file paths) is copied into the job's folder
        first, so the sidecars and the command name files that stay.  A blank ``seed`` is drawn by
        the function; the drawn one goes into the command.
        """
        import audiodiff

        if operation not in OPERATIONS:
            raise ConfigError(f"unknown operation {operation!r}; valid: {', '.join(OPERATIONS)}")
        if plot:
            from .plot import save_mel_png  # noqa: F401  (fail before sampling if matplotlib is missing)
        model = self.model(model_name)
        folder = self.new_folder(operation)
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        if operation == "generate":
            kwargs.setdefault("batch_size", 1)  # see the module docstring: every sidecar alone remakes its clip
        for key in AUDIO_ARGS:
            if key in kwargs:
                kwargs[key] = str(copy_input(kwargs[key], folder, "input2" if key == "audio_b" else "input"))
        function = getattr(audiodiff, OPERATIONS[operation][1])
        start = time.perf_counter()
        clips = function(model, callback=callback, **kwargs)
        seconds = time.perf_counter() - start
        if "seed" in clips[0].metadata and clips[0].metadata["seed"] is not None:
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


def copy_input(path: str | Path, folder: Path, stem: str) -> Path:
    """Copy an input audio file into ``folder`` as ``stem`` + its suffix; an error if it cannot be read."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"input audio {source} is not a file")
    return Path(shutil.copyfile(source, folder / (stem + (source.suffix or ".wav"))))


# -- the page --------------------------------------------------------------------------------------
DEFAULT = "(model default)"


def require_gradio() -> Any:
    """The ``gradio`` module, or a one-line error naming the extra to install."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the page never phones home
    try:
        import gradio
    except ImportError:
        raise AudiodiffError("the web page needs gradio: pip install 'audiodiff[ui]'") from None
    return gradio


def describe(model: Any, name: str) -> str:
    """A short markdown description of a loaded model for the page: rate, window, prompts, defaults."""
    cfg = model.config
    sampler = cfg["sampler"]["name"] if isinstance(cfg["sampler"], Mapping) else cfg["sampler"]
    kinds = sorted({getattr(c, "registry_name", "prompt") for c in model.conditioners.values()})
    lines = [f"**{name}**: {model.sample_rate} Hz, {model.seconds:g} s window; "
             + (f"conditioned on {', '.join(kinds)} prompts" if model.is_conditional else "unconditional (no prompt)")
             + f". Defaults: {sampler}, {cfg['steps']} steps"
             + (f", guidance {float(cfg['guidance_scale']):g}" if model.is_conditional else "") + "."]
    examples = list(dict.fromkeys(model.demo_prompts(12) or []))
    if examples:
        lines.append("Prompts it knows, e.g.: " + ", ".join(f"`{p}`" for p in examples))
    if model.is_conditional and not model.can_run_unconditionally:
        lines.append("It needs a prompt.")
    return "  \n".join(lines)


def _prompts(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _one_prompt(text: str | None, what: str = "this edit") -> str | None:
    prompts = _prompts(text)
    if len(prompts) > 1:
        raise ConfigError(f"{what} takes one prompt, got {len(prompts)} lines")
    return prompts[0] if prompts else None


def _choice(value: str | None) -> str | None:
    return None if value in (None, "", DEFAULT) else value


def _int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _limit(value: Any) -> float | None:
    """A frequency limit from the page: 0 (or blank) is no limit."""
    value = _float(value)
    return value if value else None


def _seed(value: Any) -> int | None:
    """A seed from the page: negative (or blank) draws a random one."""
    value = _int(value)
    return None if value is None or value < 0 else value


def _needs(value: Any, what: str) -> Any:
    if value is None or value == "":
        raise ConfigError(f"{what} is missing")
    return value


def build_app(studio: Studio, models: Sequence[str] | None = None) -> Any:
    """The Gradio page (``gr.Blocks``) over ``studio``; ``models`` are offered first (default: the shipped ones)."""
    gr = require_gradio()
    from .diffusion.schedules import SPACINGS
    from .hub import list_models
    from .registry import names

    offered = list(models or list_models())

    def progress_callback(progress: Any) -> Callable[[dict[str, Any]], None]:
        count = itertools.count(1)
        return lambda info: progress((next(count), None), desc="sampling", unit="steps")

    def outputs(result: Result) -> list[Any]:
        """The page's outputs for a job: status, players, command, files, sidecar, mels, clip picker."""
        players = [gr.update(value=str(p), label=p.name, visible=True) for p in result.paths[:MAX_PLAYERS]]
        players += [gr.update(value=None, visible=False)] * (MAX_PLAYERS - len(players))
        files = [str(f) for p in result.paths for f in (p, p.with_suffix(".json"))] + [str(p) for p in result.pngs]
        more = len(result.paths) - MAX_PLAYERS
        status = result.summary() + (f" The first {MAX_PLAYERS} are shown; all are in the file list." if more > 0 else "")
        return [status, *players, result.command, files, result.clips[0].metadata,
                gr.update(value=[str(p) for p in result.pngs], visible=bool(result.pngs)),
                gr.update(choices=[p.name for p in result.paths], value=result.paths[0].name), str(result.folder)]

    def failed(message: str, count: int) -> list[Any]:
        """A message for a job that failed: a toast, and the first output (a status line); the other
        ``count - 1`` outputs keep what they showed."""
        gr.Warning(message, title="Error")
        return [f"**Error:** {message}", *[gr.skip()] * (count - 1)]

    def job(operation: str, common: Sequence[Any], progress: Any, arguments: Callable[[], dict[str, Any]]) -> list[Any]:
        """Run one job from the page with the shared settings ``common`` and the tab's ``arguments()``;
        an :class:`AudiodiffError` (from reading the fields, too) becomes a message on the page."""
        model, negative, guidance, steps, sampler, spacing, seed, vocoder, plot = common
        try:
            kwargs = arguments()
            result = studio.run(operation, model, plot=bool(plot), callback=progress_callback(progress),
                                negative_prompt=(negative or "").strip() or None, guidance_scale=_float(guidance),
                                steps=_int(steps), sampler=_choice(sampler), spacing=_choice(spacing),
                                seed=_seed(seed), vocoder=(vocoder or "").strip() or None, **kwargs)
        except AudiodiffError as exc:
            return failed(str(exc), len(results))
        except Exception:  # a bug, not a user error: log it, show one line, keep serving
            log.exception("%s failed", operation)
            return failed(f"{operation} failed unexpectedly; the server's log has the details", len(results))
        return outputs(result)

    def show_model(name: str) -> list[Any]:
        """The model's description, and its defaults in the fields that have them."""
        try:
            model = studio.model(name)
        except AudiodiffError as exc:
            return failed(str(exc), len(model_fields))
        placeholder = ("one prompt per line" if model.is_conditional else "this model takes no prompt")
        return [describe(model, name), gr.update(interactive=model.is_conditional, placeholder=placeholder),
                model.config["steps"], gr.update(value=float(model.config["guidance_scale"]),
                                                 interactive=model.is_conditional),
                model.seconds, model.seconds, model.seconds]

    with gr.Blocks(title="audiodiff") as app:
        gr.Markdown("# audiodiff\nMake and edit audio with diffusion models. Every clip is saved as a WAV "
                    "with a JSON sidecar, and the command under the results makes the same clips from the "
                    "command line.")
        with gr.Row():
            model = gr.Dropdown(offered, value=offered[0] if offered else None, label="Model", allow_custom_value=True,
                                info="a shipped model, a model folder or hf://org/repo", elem_id="model", scale=1)
            info = gr.Markdown(elem_id="model-info")
        prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt",
                            info="Generate: one clip set per line. Edits: one line. Interpolate: the first prompt.")
        with gr.Accordion("Sampling", open=False, elem_id="sampling"):
            with gr.Row():
                steps = gr.Number(label="Steps", precision=0, info="the model's default when it is chosen", elem_id="steps")
                sampler = gr.Dropdown([DEFAULT, *names("sampler")], value=DEFAULT, label="Sampler", elem_id="sampler")
                spacing = gr.Dropdown([DEFAULT, *SPACINGS], value=DEFAULT, label="Spacing")
                seed = gr.Number(-1, label="Seed", precision=0, info="-1: a random one (recorded); clip i uses seed + i",
                                 elem_id="seed")
            with gr.Row():
                guidance = gr.Number(label="Guidance scale", info="1: none; the model's default when it is chosen")
                negative = gr.Textbox(label="Negative prompt", info="what guidance steers away from")
                vocoder = gr.Textbox(label="Vocoder", info="blank: the model's; a registry name or a vocoder folder")
                plot = gr.Checkbox(label="Mel-spectrogram images", value=False)
        common = [model, negative, guidance, steps, sampler, spacing, seed, vocoder, plot]

        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    gen_n = gr.Number(label="Clips per prompt", value=1, precision=0, elem_id="num-samples")
                    gen_seconds = gr.Number(label="Seconds", info="beyond the model's window: overlapping windows",
                                            elem_id="seconds")
                gen_go = gr.Button("Generate", variant="primary", elem_id="generate-button")
            with gr.Tab("Inpaint", id="inpaint"):
                inp_audio = gr.Audio(label="Clip to edit", type="filepath", sources=["upload", "microphone"],
                                     elem_id="inpaint-input")
                with gr.Row():
                    inp_start = gr.Number(label="Start (s)", value=0.25, elem_id="inpaint-start")
                    inp_end = gr.Number(label="End (s)", value=0.5, elem_id="inpaint-end")
                    inp_fmin = gr.Number(0, label="Lowest frequency (Hz)", info="0: no limit")
                    inp_fmax = gr.Number(0, label="Highest frequency (Hz)", info="0: no limit")
                with gr.Row():
                    inp_jumps = gr.Number(label="RePaint jumps", value=0, precision=0)
                    inp_jump_length = gr.Number(label="Jump length (steps)", value=10, precision=0)
                    inp_n = gr.Number(label="Clips", value=1, precision=0)
                inp_go = gr.Button("Inpaint", variant="primary", elem_id="inpaint-button")
            with gr.Tab("Continue", id="continue"):
                cont_audio = gr.Audio(label="Clip to continue", type="filepath", sources=["upload", "microphone"])
                with gr.Row():
                    cont_seconds = gr.Number(label="Seconds to add", value=1.0)
                    cont_overlap = gr.Number(label="Overlap (fraction of a window)", value=0.5)
                    cont_jumps = gr.Number(label="RePaint jumps", value=0, precision=0)
                    cont_n = gr.Number(label="Clips", value=1, precision=0)
                cont_go = gr.Button("Continue", variant="primary", elem_id="continue-button")
            with gr.Tab("Variation", id="variation"):
                var_audio = gr.Audio(label="Clip to vary", type="filepath", sources=["upload", "microphone"])
                with gr.Row():
                    var_strength = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Strength",
                                             info="how far from the clip (1: ignore it)")
                    var_n = gr.Number(label="Clips", value=2, precision=0)
                var_go = gr.Button("Make variations", variant="primary", elem_id="variation-button")
            with gr.Tab("Interpolate", id="interpolate"):
                itp_mode = gr.Radio(["two clips", "two prompts"], value="two clips", label="Between")
                with gr.Row():
                    itp_a = gr.Audio(label="First clip", type="filepath", sources=["upload", "microphone"])
                    itp_b = gr.Audio(label="Second clip", type="filepath", sources=["upload", "microphone"])
                with gr.Row():
                    itp_prompt2 = gr.Textbox(label="Second prompt", info="with 'two prompts'; the first is Prompt")
                    itp_steps = gr.Number(label="Clips from one end to the other", value=5, precision=0)
                    itp_seconds = gr.Number(label="Seconds", info="with 'two prompts'")
                itp_go = gr.Button("Interpolate", variant="primary", elem_id="interpolate-button")
            with gr.Tab("Loop", id="loop"):
                with gr.Row():
                    loop_seconds = gr.Number(label="Seconds")
                    loop_wrap = gr.Number(label="Wrap (fraction of the clip)", value=0.25)
                    loop_n = gr.Number(label="Clips", value=1, precision=0)
                loop_go = gr.Button("Make loops", variant="primary", elem_id="loop-button")

        status = gr.Markdown(elem_id="status")
        players = []
        plain_player = gr.WaveformOptions(show_recording_waveform=False)  # the browser's own <audio> controls
        for row in range(0, MAX_PLAYERS, 2):
            with gr.Row():
                players += [gr.Audio(type="filepath", interactive=False, visible=False, elem_id=f"clip-{i}",
                                     autoplay=i == 0, waveform_options=plain_player) for i in (row, row + 1)]
        command = gr.Code(label="The same clips from the command line", language="shell", elem_id="command",
                          interactive=False, wrap_lines=True, lines=2, max_lines=6)
        mels = gr.Gallery(label="Mel spectrograms", visible=False, columns=2, height="auto")
        with gr.Row():
            pick = gr.Dropdown([], label="Clip", elem_id="pick", scale=2)
            use = gr.Button("Use this clip as the input of the edit tabs", elem_id="use-clip", scale=1)
        with gr.Row():
            files = gr.File(label="WAV files, sidecars and images", file_count="multiple", elem_id="files")
            sidecar = gr.JSON(label="Sidecar of the first clip", elem_id="sidecar")
        folder = gr.State("")
        results = [status, *players, command, files, sidecar, mels, pick, folder]

        model_fields = [info, prompt, steps, guidance, gen_seconds, itp_seconds, loop_seconds]
        model.change(show_model, model, model_fields)
        app.load(show_model, model, model_fields)

        def run_generate(*values, progress=gr.Progress()):
            text, n, seconds, *common_values = values
            return job("generate", common_values, progress, lambda: dict(
                prompt=_prompts(text) or None, num_samples=_int(n), seconds=_float(seconds)))

        def run_inpaint(*values, progress=gr.Progress()):
            text, audio, start, end, fmin, fmax, jumps, jump_length, n, *common_values = values
            return job("inpaint", common_values, progress, lambda: dict(
                prompt=_one_prompt(text), audio=_needs(audio, "the clip to edit"), start=_float(start),
                end=_float(end), fmin=_limit(fmin), fmax=_limit(fmax), jumps=_int(jumps),
                jump_length=_int(jump_length), num_samples=_int(n)))

        def run_continue(*values, progress=gr.Progress()):
            text, audio, seconds, overlap, jumps, n, *common_values = values
            return job("continue", common_values, progress, lambda: dict(
                prompt=_one_prompt(text), audio=_needs(audio, "the clip to continue"),
                seconds=_float(_needs(seconds, "seconds to add")), overlap=_float(overlap), jumps=_int(jumps),
                num_samples=_int(n)))

        def run_variation(*values, progress=gr.Progress()):
            text, audio, strength, n, *common_values = values
            return job("variation", common_values, progress, lambda: dict(
                prompt=_one_prompt(text), audio=_needs(audio, "the clip to vary"), strength=_float(strength),
                num_samples=_int(n)))

        def run_interpolate(*values, progress=gr.Progress()):
            text, mode, a, b, prompt2, n, seconds, *common_values = values
            if mode == "two prompts":
                return job("interpolate_prompts", common_values, progress, lambda: dict(
                    prompt_a=_needs(_one_prompt(text, "interpolation between prompts"), "the first prompt"),
                    prompt_b=_needs((prompt2 or "").strip(), "the second prompt"), n=_int(n), seconds=_float(seconds)))
            common_values[6] = None  # interpolating clips is deterministic: no seed
            return job("interpolate", common_values, progress, lambda: dict(
                prompt=_one_prompt(text), audio_a=_needs(a, "the first clip"), audio_b=_needs(b, "the second clip"),
                n=_int(n)))

        def run_loop(*values, progress=gr.Progress()):
            text, seconds, wrap, n, *common_values = values
            return job("loop", common_values, progress, lambda: dict(
                prompt=_one_prompt(text), seconds=_float(seconds), wrap=_float(wrap), num_samples=_int(n)))

        for button, handler, inputs in [
            (gen_go, run_generate, [gen_n, gen_seconds]),
            (inp_go, run_inpaint, [inp_audio, inp_start, inp_end, inp_fmin, inp_fmax, inp_jumps, inp_jump_length, inp_n]),
            (cont_go, run_continue, [cont_audio, cont_seconds, cont_overlap, cont_jumps, cont_n]),
            (var_go, run_variation, [var_audio, var_strength, var_n]),
            (itp_go, run_interpolate, [itp_mode, itp_a, itp_b, itp_prompt2, itp_steps, itp_seconds]),
            (loop_go, run_loop, [loop_seconds, loop_wrap, loop_n]),
        ]:
            button.click(handler, [prompt, *inputs, *common], results)

        def use_clip(name: str | None, job_folder: str) -> list[Any]:
            if not name or not job_folder:
                gr.Warning("make a clip first", title="Error")
                return [gr.skip()] * 4
            path = str(Path(job_folder) / name)
            return [path, path, path, path]

        use.click(use_clip, [pick, folder], [inp_audio, cont_audio, var_audio, itp_a])
    return app


def launch(out_dir: str | Path = "out/ui", host: str = "127.0.0.1", port: int | None = None, device: Any = None,
           models: Sequence[str] | None = None, open_browser: bool = False) -> tuple[Any, str]:
    """Serve the page at ``host:port`` (``None``: the first free port from 7860), clips under ``out_dir``.

    Returns ``(app, url)`` at once, the server running in the background: ``app.block_thread()``
    waits for Ctrl-C, ``app.close()`` stops it.
    """
    require_gradio()
    out_dir = Path(out_dir)
    app = build_app(Studio(out_dir, device), models)
    app.queue(default_concurrency_limit=1)
    _, url, _ = app.launch(server_name=host, server_port=port, inbrowser=open_browser, prevent_thread_lock=True,
                           quiet=True, allowed_paths=[str(out_dir.resolve())], footer_links=[])
    return app, url
