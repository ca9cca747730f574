"""The web page: :func:`build_app` lays it out with Gradio (the ``ui`` extra) over the jobs of
:class:`~audiodiff.ui.studio.Studio`, and :func:`launch` serves it.

Every :class:`~audiodiff.errors.AudiodiffError` becomes a short message on the page; the server keeps
running.  One job runs at a time (a queue), since one job already uses the CPU's threads.  Stop cancels
the running job of its browser tab at the sampler's next step (:class:`~audiodiff.ui.studio.Cancelled`).
"""

# No ``from __future__ import annotations`` here: gradio reads a handler's annotations (``gr.Request``)
# as objects at run time.
import itertools
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import AudiodiffError, ConfigError, first_line
from .studio import MAX_PLAYERS, Cancelled, Result, Studio

log = logging.getLogger(__name__)

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
    text = (f"**{name}**: {model.sample_rate} Hz, {model.seconds:g} s window; "
            + (f"conditioned on {', '.join(kinds)} prompts" if model.is_conditional else "unconditional (no prompt)")
            + f". Defaults: {sampler}, {cfg['steps']} steps"
            + (f", guidance {float(cfg['guidance_scale']):g}" if model.is_conditional else "") + ".")
    if model.is_conditional and not model.can_run_unconditionally:
        text += " It needs a prompt."
    return text


def example_prompts(model: Any) -> list[str]:
    """The prompts the page offers for ``model``: a label model's labels, a text model's examples."""
    return list(dict.fromkeys(model.demo_prompts(64) or []))


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


def offered_models(models: Sequence[str] | None = None) -> list[str]:
    """The model picker's choices: the shipped models, then ``models`` (folders, ``hf://`` ids) not among them."""
    from ..hub import list_models

    return list(dict.fromkeys([*list_models(), *(models or [])]))


def build_app(studio: Studio, models: Sequence[str] | None = None) -> Any:
    """The Gradio page (``gr.Blocks``) over ``studio``: the shipped models and ``models`` to pick from."""
    gr = require_gradio()
    from ..diffusion.schedules import SPACINGS
    from ..registry import names

    offered = offered_models(models)
    first = models[0] if models else (offered[0] if offered else None)
    running: dict[str, threading.Event] = {}  # browser session -> its job's cancel flag

    def outputs(result: Result) -> list[Any]:
        """The page's outputs for a job: status, each clip's group, command, all files, sidecar, clip picker, state."""
        shown = result.paths[:MAX_PLAYERS]
        groups = [gr.update(visible=i < len(shown)) for i in range(MAX_PLAYERS)]
        players = [gr.update(value=str(p), label=p.name) for p in shown] + [None] * (MAX_PLAYERS - len(shown))
        images = [str(p.with_suffix(".png")) for p in shown] + [None] * (MAX_PLAYERS - len(shown))  # jobs plot
        downloads = [[str(p), str(p.with_suffix(".json"))] for p in shown] + [None] * (MAX_PLAYERS - len(shown))
        every = [str(p.with_suffix(suffix)) for p in result.paths for suffix in (".wav", ".json", ".png")]
        return [result.summary(), *groups, *players, *images, *downloads, result.command, every,
                result.clips[0].metadata,
                gr.update(choices=[p.name for p in result.paths], value=result.paths[0].name),
                {"folder": str(result.folder), "seed": result.seed}]

    def failed(message: str, count: int) -> list[Any]:
        """A message for a job that failed: a toast, and the first output (a status line); the other
        ``count - 1`` outputs keep what they showed."""
        gr.Warning(message, title="Error")
        return [f"**Error:** {message}", *[gr.skip()] * (count - 1)]

    def job(operation: str, common: Sequence[Any], request: Any, progress: Any,
            arguments: Callable[[], dict[str, Any]]) -> list[Any]:
        """Run one job from the page with the shared settings ``common`` and the tab's ``arguments()``;
        an :class:`AudiodiffError` (from reading the fields, too) becomes a message on the page."""
        model, negative, guidance, steps, sampler, spacing, seed, vocoder = common
        session = getattr(request, "session_hash", None) or ""
        cancel = running[session] = threading.Event()
        count = itertools.count(1)
        try:
            kwargs = dict(arguments(), negative_prompt=(negative or "").strip() or None,
                          guidance_scale=_float(guidance), steps=_int(steps), sampler=_choice(sampler),
                          spacing=_choice(spacing), seed=_seed(seed), vocoder=(vocoder or "").strip() or None)

            def step(info: dict[str, Any]) -> None:
                done, total = next(count), info.get("total")  # every operation reports its total
                progress((min(done, total), total) if total else (done, None), desc="sampling", unit="steps")

            result = studio.run(operation, model, plot=True, cancel=cancel, callback=step, **kwargs)
        except Cancelled as exc:  # asked for: a status line, no alarm
            return [f"{str(exc).capitalize()}.", *[gr.skip()] * (len(results) - 1)]
        except AudiodiffError as exc:
            return failed(str(exc), len(results))
        except Exception:  # a bug, not a user error: log it, show one line, keep serving
            log.exception("%s failed", operation)
            return failed(f"{operation} failed unexpectedly; the server's log has the details", len(results))
        finally:
            running.pop(session, None)
        return outputs(result)

    def stop(request: gr.Request) -> None:
        """Cancel this browser tab's running job at its sampler's next step; the job then says so.

        Not gradio's ``cancels``: that drops the job's answer, and its worker thread would run on."""
        flag = running.get(getattr(request, "session_hash", None) or "")
        if flag is not None:
            flag.set()

    def show_model(name: str) -> list[Any]:
        """The model's description, its example prompts, and its defaults in the fields that have them."""
        try:
            model = studio.model(name)
        except AudiodiffError as exc:
            return failed(str(exc), len(model_fields))
        placeholder = "one prompt per line" if model.is_conditional else "this model takes no prompt"
        prompts = example_prompts(model)
        prompt_update = gr.update(interactive=model.is_conditional, placeholder=placeholder)
        if not model.is_conditional:
            prompt_update["value"] = ""  # a prompt left from another model would only be refused
        return [describe(model, name), prompt_update,
                gr.update(samples=[[p] for p in prompts], visible=bool(prompts)),
                model.config["steps"], gr.update(value=float(model.config["guidance_scale"]),
                                                 interactive=model.is_conditional),
                model.seconds, model.seconds, model.seconds]

    with gr.Blocks(title="audiodiff") as app:
        gr.Markdown("# audiodiff\nMake and edit audio with diffusion models. Every clip is saved as a WAV "
                    "with a JSON sidecar, and the command under the results makes the same clips from the "
                    "command line.")
        with gr.Row():
            model = gr.Dropdown(offered, value=first, label="Model", allow_custom_value=True,
                                info="a shipped model, a model folder or hf://org/repo", elem_id="model", scale=1)
            info = gr.Markdown(elem_id="model-info")
        prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt",
                            info="Generate: one set of clips per line. Edits: one line. Interpolate: the first prompt.")
        examples = gr.Dataset(components=[prompt], samples=[], label="Example prompts (click to use)",
                              elem_id="examples", samples_per_page=64)
        with gr.Accordion("Sampling", open=False, elem_id="sampling"):
            with gr.Row():
                steps = gr.Number(label="Steps", precision=0, info="the model's default when it is chosen", elem_id="steps")
                sampler = gr.Dropdown([DEFAULT, *names("sampler")], value=DEFAULT, label="Sampler", elem_id="sampler")
                spacing = gr.Dropdown([DEFAULT, *SPACINGS], value=DEFAULT, label="Spacing")
                with gr.Column():
                    seed = gr.Number(-1, label="Seed", precision=0, info="-1: a random one (shown); clip i uses seed + i",
                                     elem_id="seed")
                    reuse = gr.Button("Reuse the last seed", size="sm", elem_id="reuse-seed")
            with gr.Row():
                guidance = gr.Number(label="Guidance scale", info="1: none; the model's default when it is chosen",
                                     elem_id="guidance")
                negative = gr.Textbox(label="Negative prompt", info="what guidance steers away from")
                vocoder = gr.Textbox(label="Vocoder", info="blank: the model's; a registry name or a vocoder folder")
        common = [model, negative, guidance, steps, sampler, spacing, seed, vocoder]

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
                var_audio = gr.Audio(label="Clip to vary", type="filepath", sources=["upload", "microphone"],
                                     elem_id="variation-input")
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
                loop_audio = gr.Audio(label="Clip to make loop (empty: new loops from the prompt)", type="filepath",
                                      sources=["upload", "microphone"], elem_id="loop-input")
                with gr.Row():
                    loop_seconds = gr.Number(label="Seconds", info="new loops only; a clip keeps its length")
                    loop_wrap = gr.Number(label="Wrap (fraction of the clip)", value=0.25)
                    loop_n = gr.Number(label="Clips", value=1, precision=0)
                loop_go = gr.Button("Make loops", variant="primary", elem_id="loop-button")

        with gr.Row(equal_height=True):
            status = gr.Markdown(elem_id="status")
            stop_button = gr.Button("Stop", variant="stop", size="sm", elem_id="stop-button", scale=0, min_width=90)
        groups, players, images, downloads = [], [], [], []
        plain_player = gr.WaveformOptions(show_recording_waveform=False)  # the browser's own <audio> controls
        for row in range(0, MAX_PLAYERS, 2):
            with gr.Row():
                for i in (row, row + 1):
                    with gr.Column(visible=False, elem_id=f"result-{i}") as group:
                        players.append(gr.Audio(type="filepath", interactive=False, elem_id=f"clip-{i}",
                                                autoplay=i == 0, waveform_options=plain_player))
                        images.append(gr.Image(type="filepath", interactive=False, show_label=False, height=220,
                                               elem_id=f"mel-{i}"))
                        downloads.append(gr.File(file_count="multiple", interactive=False, show_label=False,
                                                 height=130, elem_id=f"files-{i}"))
                    groups.append(group)
        command = gr.Code(label="The same clips from the command line", language="shell", elem_id="command",
                          interactive=False, wrap_lines=True, lines=2, max_lines=6)
        with gr.Row():
            pick = gr.Dropdown([], label="Clip", elem_id="pick", scale=2)
            use = gr.Button("Send this clip to the edit tabs", elem_id="use-clip", scale=1)
        with gr.Accordion("All files of the job", open=False):
            all_files = gr.File(file_count="multiple", interactive=False, show_label=False, elem_id="files")
        sidecar = gr.JSON(label="Sidecar of the first clip", elem_id="sidecar", open=False)
        last = gr.State({})
        results = [status, *groups, *players, *images, *downloads, command, all_files, sidecar, pick, last]

        model_fields = [info, prompt, examples, steps, guidance, gen_seconds, itp_seconds, loop_seconds]
        model.change(show_model, model, model_fields)
        app.load(show_model, model, model_fields)
        examples.click(lambda sample: sample[0], examples, prompt)
        reuse.click(lambda state: gr.skip() if state.get("seed") is None else state["seed"], last, seed)

        # gradio hands a handler its request and progress tracker by position, before the fields' values
        def run_generate(request: gr.Request, progress=gr.Progress(), *values):
            text, n, seconds, *common_values = values
            return job("generate", common_values, request, progress, lambda: dict(
                prompt=_prompts(text) or None, num_samples=_int(n), seconds=_float(seconds)))

        def run_inpaint(request: gr.Request, progress=gr.Progress(), *values):
            text, audio, start, end, fmin, fmax, jumps, jump_length, n, *common_values = values
            return job("inpaint", common_values, request, progress, lambda: dict(
                prompt=_one_prompt(text), audio=_needs(audio, "the clip to edit"), start=_float(start),
                end=_float(end), fmin=_limit(fmin), fmax=_limit(fmax), jumps=_int(jumps),
                jump_length=_int(jump_length), num_samples=_int(n)))

        def run_continue(request: gr.Request, progress=gr.Progress(), *values):
            text, audio, seconds, overlap, jumps, n, *common_values = values
            return job("continue", common_values, request, progress, lambda: dict(
                prompt=_one_prompt(text), audio=_needs(audio, "the clip to continue"),
                seconds=_float(_needs(seconds, "seconds to add")), overlap=_float(overlap), jumps=_int(jumps),
                num_samples=_int(n)))

        def run_variation(request: gr.Request, progress=gr.Progress(), *values):
            text, audio, strength, n, *common_values = values
            return job("variation", common_values, request, progress, lambda: dict(
                prompt=_one_prompt(text), audio=_needs(audio, "the clip to vary"), strength=_float(strength),
                num_samples=_int(n)))

        def run_interpolate(request: gr.Request, progress=gr.Progress(), *values):
            text, mode, a, b, prompt2, n, seconds, *common_values = values
            if mode == "two prompts":
                return job("interpolate_prompts", common_values, request, progress, lambda: dict(
                    prompt_a=_needs(_one_prompt(text, "interpolation between prompts"), "the first prompt"),
                    prompt_b=_needs((prompt2 or "").strip(), "the second prompt"), n=_int(n), seconds=_float(seconds)))
            common_values[6] = None  # interpolating clips is deterministic: no seed
            return job("interpolate", common_values, request, progress, lambda: dict(
                prompt=_one_prompt(text), audio_a=_needs(a, "the first clip"), audio_b=_needs(b, "the second clip"),
                n=_int(n)))

        def run_loop(request: gr.Request, progress=gr.Progress(), *values):
            text, audio, seconds, wrap, n, *common_values = values
            return job("loop", common_values, request, progress, lambda: dict(
                prompt=_one_prompt(text), audio=audio or None, seconds=None if audio else _float(seconds),
                wrap=_float(wrap), num_samples=_int(n)))

        for button, handler, inputs in [
            (gen_go, run_generate, [gen_n, gen_seconds]),
            (inp_go, run_inpaint, [inp_audio, inp_start, inp_end, inp_fmin, inp_fmax, inp_jumps, inp_jump_length, inp_n]),
            (cont_go, run_continue, [cont_audio, cont_seconds, cont_overlap, cont_jumps, cont_n]),
            (var_go, run_variation, [var_audio, var_strength, var_n]),
            (itp_go, run_interpolate, [itp_mode, itp_a, itp_b, itp_prompt2, itp_steps, itp_seconds]),
            (loop_go, run_loop, [loop_audio, loop_seconds, loop_wrap, loop_n]),
        ]:
            button.click(handler, [prompt, *inputs, *common], results)
        stop_button.click(stop, None, None, queue=False)

        def use_clip(name: str | None, state: dict) -> list[Any]:
            if not name or not state.get("folder"):
                gr.Warning("make a clip first", title="Error")
                return [gr.skip()] * 5
            return [str(Path(state["folder"]) / name)] * 5

        use.click(use_clip, [pick, last], [inp_audio, cont_audio, var_audio, itp_a, loop_audio])
    return app


def launch(out_dir: str | Path = "out/ui", host: str = "127.0.0.1", port: int | None = None, device: Any = None,
           models: Sequence[str] | None = None, open_browser: bool = False) -> tuple[Any, str]:
    """Serve the page at ``host:port`` (``None``: the first free port from 7860), clips under ``out_dir``.

    Never a public share link.  Returns ``(app, url)`` at once, the server running in the background:
    ``app.block_thread()`` waits for Ctrl-C, ``app.close()`` stops it.
    """
    require_gradio()
    out_dir = Path(out_dir)
    app = build_app(Studio(out_dir, device), models)
    app.queue(default_concurrency_limit=1)
    try:
        _, url, _ = app.launch(server_name=host, server_port=port, inbrowser=open_browser, prevent_thread_lock=True,
                               share=False, quiet=True, allowed_paths=[str(out_dir.resolve())], footer_links=[])
    except OSError as exc:  # the port is taken, the address is not this machine's, ...
        app.close()
        raise ConfigError(f"cannot serve the page on {host}:{port or '7860+'}: {first_line(exc)}") from None
    return app, url
