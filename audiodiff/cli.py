"""The ``audiodiff`` command line: a thin front end over the public Python functions.

``generate`` makes clips from noise (any length: long ones in overlapping windows); ``inpaint``,
``continue``, ``variation``, ``interpolate`` and ``loop`` wrap :mod:`audiodiff.edit`.  Every command
writes WAVs with JSON sidecars, batch by batch as they are made, under names that carry a hash of
their settings; an existing file is replaced only with ``--overwrite``.  Every error a user can
cause (argparse's included) prints one line ``audiodiff: error: ...`` and exits with status 2, and
a failed run leaves no empty output folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__, checks
from .diffusion.schedules import SPACINGS
from .audio.clip import write_clips
from .errors import AudiodiffError, ConfigError
from .files import check_out_dir

EXIT_USAGE = 2
#: an error line longer than this is cut (a 100 KB prompt must not be echoed whole)
MAX_ERROR_CHARS = 400
#: the largest --prompts-file read
MAX_PROMPTS_FILE = 16 * 2**20
OVERWRITE_HELP = "replace existing output files (default: an existing file is an error)"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``audiodiff: error: ...``) and exit status 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        line = f"{self.prog}: {message} (see `{self.prog} --help`)"
        print(f"audiodiff: error: {_one_line(line)}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _one_line(text: str) -> str:
    """``text`` on one line, at most :data:`MAX_ERROR_CHARS` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS - 3] + "..."
VOCODER_HELP = ("vocoder: a registry name (e.g. griffinlim) or a trained vocoder folder "
                "(default: the model folder's vocoder/, else its config's)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _key_value(text: str) -> tuple[str, Any]:
    try:
        return checks.key_value(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_repaint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jumps", type=int, default=0, help="RePaint resamplings per jump point (default 0)")
    parser.add_argument("--jump-length", type=int, default=10, help="steps between jump points (default 10)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="audiodiff", description="Diffusion models of audio.")
    parser.add_argument("--version", action="version", version=f"audiodiff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="generate WAV files from a model")
    gen.add_argument("--model", "-m", required=True, help="shipped model name, model folder or hf://org/repo")
    gen.add_argument("--out", "-o", default="out", help="output folder (default: out)")
    gen.add_argument("--num-samples", "-n", type=_positive_int, default=1, help="clips per prompt (default 1)")
    gen.add_argument("--prompt", "-p", action="append", default=None, help="text prompt (repeatable)")
    gen.add_argument("--prompts-file", default=None, help="a file with one prompt per line")
    gen.add_argument("--negative-prompt", default=None, help="what guidance steers away from")
    gen.add_argument("--guidance-scale", type=float, default=None,
                     help="classifier-free guidance scale (1 = none; default: the model's)")
    gen.add_argument("--guidance-rescale", type=float, default=0.0, help="guidance rescale fraction in [0, 1]")
    gen.add_argument("--seconds", type=float, default=None,
                     help="clip length (default: the model's window; longer clips are made in overlapping windows)")
    gen.add_argument("--overlap", type=float, default=0.5,
                     help="for long clips: fraction of a window shared with the one before (default 0.5)")
    gen.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    gen.add_argument("--sampler", default=None, help="sampler name (see `audiodiff info --samplers`)")
    gen.add_argument("--sampler-arg", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                     help="sampler option, e.g. eta=0.5 (repeatable)")
    gen.add_argument("--spacing", choices=list(SPACINGS), default=None)
    gen.add_argument("--sigma-min", type=float, default=None,
                     help="last noise level before the final step to 0 (default: the model's)")
    gen.add_argument("--seed", type=int, default=None, help="base seed; clip i uses seed + i")
    gen.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    gen.add_argument("--batch-size", type=_positive_int, default=16)
    gen.add_argument("--prefix", default="clip", help="file name prefix (default: clip)")
    gen.add_argument("--plot", action="store_true", help="also write a mel-spectrogram PNG per clip")
    gen.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    gen.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    gen.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    gen.set_defaults(func=cmd_generate)

    info = sub.add_parser("info", help="show a model's config, size and mel settings, or the registry")
    info.add_argument("--model", "-m", default=None)
    info.add_argument("--registry", action="store_true", help="list every registered component name")
    info.set_defaults(func=cmd_info)

    models = sub.add_parser("models", help="list the shipped models")
    models.set_defaults(func=cmd_models)

    _add_edit_parsers(sub)

    demo = sub.add_parser("demo", help="generate a few clips from every shipped model")
    demo.add_argument("--out", "-o", default="out")
    demo.add_argument("--num-samples", "-n", type=_positive_int, default=1, help="clips per prompt")
    demo.add_argument("--prompts", type=_positive_int, default=3, help="prompts per conditional model")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    demo.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    demo.set_defaults(func=cmd_demo)
    ev = sub.add_parser("eval", help="score generated clips against real ones with a judge classifier "
                                     "(Frechet distance, accuracy, IS, mIS, AM, NDB; pitch accuracy for note "
                                     "captions; caption retrieval for judges of captions)")
    ev.add_argument("--model", "-m", required=True, help="shipped model name, model folder or hf://org/repo")
    ev.add_argument("--reference", "-r", required=True, help="manifest (JSONL) of real clips")
    ev.add_argument("--split", default="test", choices=["train", "valid", "test", "all"],
                    help="split of the reference manifest (default: test)")
    ev.add_argument("--num-samples", "-n", type=_positive_int, default=100, help="clips to generate in all (default 100)")
    ev.add_argument("--prompts", nargs="+", default=None, metavar="PROMPT",
                    help="prompts used in turn; `--prompts labels` uses each of the judge's labels in turn, "
                         "`--prompts captions` the reference clips' captions (default: unconditional)")
    ev.add_argument("--judge", default=None,
                    help="judge folder or shipped judge name (default: the shipped judge that knows the model's labels, "
                         "else the one named like the model: music, sfx)")
    ev.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    ev.add_argument("--sampler", default=None, help="sampler name (default: the model's)")
    ev.add_argument("--spacing", choices=list(SPACINGS), default=None)
    ev.add_argument("--sigma-min", type=float, default=None,
                    help="last noise level before the final step to 0 (default: the model's)")
    ev.add_argument("--guidance-scale", type=float, default=None)
    ev.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    ev.add_argument("--seed", type=int, default=0, help="clip i uses seed + i (default 0)")
    ev.add_argument("--batch-size", type=_positive_int, default=16)
    ev.add_argument("--max-reference", type=_positive_int, default=None, help="use at most this many reference clips")
    ev.add_argument("--resynthesize", action="store_true",
                    help="also score the reference clips passed through the model's mel and vocoder")
    ev.add_argument("--out", "-o", required=True, help="folder for report.json and report.md")
    ev.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    ev.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    ev.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    ev.set_defaults(func=cmd_eval)

    lik = sub.add_parser("likelihood", help="bits per dimension of audio files under a model")
    lik.add_argument("files", nargs="+", metavar="FILE", help="audio files (each cropped or zero-padded to the model's window)")
    lik.add_argument("--model", "-m", required=True, help="shipped model name, model folder or hf://org/repo")
    lik.add_argument("--method", choices=["vlb", "ode"], default="vlb",
                     help="vlb: variational bound, an upper bound on the NLL (default); ode: probability-flow ODE")
    lik.add_argument("--steps", type=_positive_int, default=None,
                     help="vlb: timesteps sampled (default: all); ode: Heun steps (default 64)")
    lik.add_argument("--bin-width", type=float, default=None,
                     help="bin width in normalised feature units (default 2/255)")
    lik.add_argument("--prompt", "-p", default=None, help="condition on this prompt (default: the null condition)")
    lik.add_argument("--seed", type=int, default=0)
    lik.add_argument("--batch-size", type=_positive_int, default=8)
    lik.add_argument("--json", default="likelihood.json", help="where to write the results (default likelihood.json)")
    lik.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    lik.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    lik.set_defaults(func=cmd_likelihood)

    ui = sub.add_parser("ui", help="serve a web page to make and edit clips (needs the ui extra)")
    ui.add_argument("--model", "-m", action="append", default=None,
                    help="model offered on the page (repeatable; default: the shipped ones)")
    ui.add_argument("--out", "-o", default="out/ui", help="folder for the clips made on the page (default: out/ui)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    ui.add_argument("--port", type=_positive_int, default=None, help="port (default: the first free one from 7860)")
    ui.add_argument("--open", action="store_true", help="open the page in a browser")
    ui.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    ui.set_defaults(func=cmd_ui)

    dst = sub.add_parser("distill", help="distil a model into a few-step student (guidance folded in, then halving rounds)")
    dst.add_argument("--model", "-m", required=True, help="the teacher: shipped model name, model folder or hf://org/repo")
    dst.add_argument("--data", required=True, help="manifest (JSONL) of the clips the teacher was trained on")
    dst.add_argument("--out", "-o", required=True, help="folder for the student model")
    dst.add_argument("--work", default=None, help="folder for the rounds' resumable runs (default: OUT.rounds)")
    dst.add_argument("--steps", type=_positive_int, default=4, help="the student's sampler steps (default 4)")
    dst.add_argument("--start-steps", type=_positive_int, default=32,
                     help="steps of the first progressive round's teacher ladder (default 32)")
    dst.add_argument("--methods", default="guidance,progressive",
                     help="guidance and/or progressive, comma-separated (default: both; guidance only for prompted models)")
    dst.add_argument("--guidance-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                     help="guidance scales the student learns (default: 1 to twice the model's)")
    dst.add_argument("--spacing", choices=list(SPACINGS), default=None, help="ladder spacing (default: the model's)")
    dst.add_argument("--sigma-min", type=float, default=None, help="the ladder's last noise level (default: the model's)")
    dst.add_argument("--round-steps", type=_positive_int, default=2000, help="training steps per round (default 2000)")
    dst.add_argument("--time-limit", type=float, default=0.0, help="seconds for this call; run again to resume (0: none)")
    dst.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                     help="a training option of every round, e.g. lr=1e-4 or batch_size=16 (repeatable)")
    dst.add_argument("--split", default="train", help="manifest split to train on (default: train; 'all' for every item)")
    dst.add_argument("--crop", choices=["start", "center", "random"], default="start",
                     help="where longer files are cut (default: start, as the recipes train)")
    dst.add_argument("--trim-db", type=float, default=None, help="trim silence quieter than this many dB below the peak")
    dst.add_argument("--loudness-db", type=float, default=None, help="normalise each file to this RMS in dBFS (e.g. -20)")
    dst.add_argument("--overwrite", action="store_true", help="replace --out if it holds a model")
    dst.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    dst.set_defaults(func=cmd_distill)
    return parser


def _add_sampling_options(p: argparse.ArgumentParser, prefix: str) -> None:
    """The options every edit command shares with ``generate``."""
    p.add_argument("--model", "-m", required=True, help="shipped model name, model folder or hf://org/repo")
    p.add_argument("--out", "-o", default="out", help="output folder (default: out)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    p.add_argument("--sampler", default=None, help="sampler name (see `audiodiff info --registry`)")
    p.add_argument("--sampler-arg", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="sampler option, e.g. eta=0.5 (repeatable)")
    p.add_argument("--spacing", choices=list(SPACINGS), default=None)
    p.add_argument("--seed", type=int, default=None, help="base seed; clip i uses seed + i")
    p.add_argument("--prompt", "-p", default=None, help="text prompt (conditional models)")
    p.add_argument("--negative-prompt", default=None, help="what guidance steers away from")
    p.add_argument("--guidance-scale", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    p.add_argument("--prefix", default=prefix, help=f"file name prefix (default: {prefix})")
    p.add_argument("--plot", action="store_true", help="also write a mel-spectrogram PNG per clip")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def _add_edit_parsers(sub) -> None:
    inp = sub.add_parser("inpaint", help="regenerate a time range (and frequency band) of a clip")
    _add_sampling_options(inp, "inpaint")
    inp.add_argument("--input", "-i", required=True, help="audio file to edit")
    inp.add_argument("--start", type=float, required=True, help="start of the range to regenerate (s)")
    inp.add_argument("--end", type=float, required=True, help="end of the range to regenerate (s)")
    inp.add_argument("--fmin", type=float, default=None, help="lowest frequency to regenerate (Hz)")
    inp.add_argument("--fmax", type=float, default=None, help="highest frequency to regenerate (Hz)")
    _add_repaint_options(inp)
    inp.add_argument("--num-samples", "-n", type=_positive_int, default=1)
    inp.set_defaults(func=cmd_inpaint)

    cont = sub.add_parser("continue", help="extend a clip by N seconds")
    _add_sampling_options(cont, "continue")
    cont.add_argument("--input", "-i", required=True, help="audio file to continue")
    cont.add_argument("--seconds", type=float, required=True, help="seconds to add")
    cont.add_argument("--overlap", type=float, default=0.5, help="fraction of a window that is context (default 0.5)")
    _add_repaint_options(cont)
    cont.add_argument("--num-samples", "-n", type=_positive_int, default=1)
    cont.set_defaults(func=cmd_continue)

    var = sub.add_parser("variation", help="variations of a clip (SDEdit)")
    _add_sampling_options(var, "variation")
    var.add_argument("--input", "-i", required=True, help="audio file to vary")
    var.add_argument("--strength", type=float, required=True, help="in (0, 1]: how far from the clip (1: ignore it)")
    var.add_argument("--num-samples", "-n", type=_positive_int, default=1)
    var.set_defaults(func=cmd_variation)

    itp = sub.add_parser("interpolate", help="clips between two clips (DDIM inversion + slerp) or two prompts")
    _add_sampling_options(itp, "interp")
    itp.add_argument("--input", "-i", default=None, help="first audio file")
    itp.add_argument("--input2", default=None, help="second audio file")
    itp.add_argument("--prompt2", default=None, help="second prompt (with --prompt, no inputs)")
    itp.add_argument("--num-steps", type=_positive_int, default=5, help="clips from one end to the other (default 5)")
    itp.add_argument("--seconds", type=float, default=None, help="clip length for prompt interpolation")
    itp.set_defaults(func=cmd_interpolate)

    lp = sub.add_parser("loop", help="clips whose end flows into their start")
    _add_sampling_options(lp, "loop")
    lp.add_argument("--seconds", type=float, default=None, help="clip length (default: the model's window)")
    lp.add_argument("--wrap", type=float, default=0.25, help="fraction of the clip the net sees wrapped around "
                    "(with --input: the fraction regenerated around the seam, half at each end)")
    lp.add_argument("--input", "-i", default=None, help="a clip to make loop (its ends are regenerated)")
    lp.add_argument("--num-samples", "-n", type=_positive_int, default=1)
    lp.set_defaults(func=cmd_loop)


def _device(name: str | None) -> str:
    from .checks import device

    return device(name)




def _progress(quiet: bool):
    """A progress bar and the sampler callback that moves it; the bar appears at the first step (with the
    ``total`` the step reports), so an error found before sampling starts is printed alone (one line)."""
    if quiet:
        return None, None
    bar = _LazyBar()
    return bar, bar.step

class _LazyBar:
    """A tqdm bar on stderr created when the first step is reported."""

    def __init__(self) -> None:
        self.bar = None

    def step(self, info: dict) -> None:
        """The sampler callback: one step done (``info["total"]``, when given, sizes the bar)."""
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=info.get("total"), desc="sampling", unit="step", file=sys.stderr, leave=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()



def read_prompts(prompts: list[str] | None, prompts_file: str | None) -> list[str] | None:
    """Prompts from ``--prompt`` and ``--prompts-file`` (one per line; blank lines skipped)."""
    out = list(prompts or [])
    if prompts_file:
        try:
            with open(prompts_file, "rb") as f:
                data = f.read(MAX_PROMPTS_FILE + 1)  # /dev/zero or a huge file must not fill the memory
            if len(data) > MAX_PROMPTS_FILE:
                raise ConfigError(f"prompts file {prompts_file} is larger than {MAX_PROMPTS_FILE // 2**20} MiB")
            lines = data.decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read prompts file {prompts_file}: {getattr(exc, 'strerror', None) or exc}") from None
        out.extend(line.strip() for line in lines if line.strip())
        if not out:
            raise ConfigError(f"prompts file {prompts_file} has no prompts")
    return out or None


def cmd_generate(args: argparse.Namespace) -> int:
    from .audio.clip import check_prefix
    from .generate import iter_generate
    from .hub import load

    prompts = read_prompts(args.prompt, args.prompts_file)
    check_prefix(args.prefix)
    out = check_out_dir(args.out)
    if args.plot:
        from .plot import save_mel_png  # noqa: F401  (fail early if matplotlib is missing)
    model = load(args.model, device=_device(args.device))
    bar, callback = _progress(args.quiet)
    try:
        clips = iter_generate(model, num_samples=args.num_samples, prompt=prompts, negative_prompt=args.negative_prompt,
                              guidance_scale=args.guidance_scale, guidance_rescale=args.guidance_rescale,
                              seconds=args.seconds, steps=args.steps, sampler=_sampler_spec(args, model), seed=args.seed,
                              vocoder=args.vocoder, callback=callback, batch_size=args.batch_size, spacing=args.spacing,
                              overlap=args.overlap, sigma_min=args.sigma_min)
        paths = write_clips(clips, model, out, args.prefix, args.plot, args.overwrite)  # batch by batch
    finally:
        if bar is not None:
            bar.close()
    for path in paths:
        print(path)
    return 0


def _sampler_spec(args: argparse.Namespace, model) -> Any:
    """The sampler named by ``--sampler`` (default: the model's) with ``--sampler-arg`` options."""
    sampler = args.sampler or model.config["sampler"]
    if args.sampler_arg:
        sampler = {**({"name": sampler} if isinstance(sampler, str) else dict(sampler)), **dict(args.sampler_arg)}
    return sampler


def _run_edit(args: argparse.Namespace, edit, shared: Sequence[str] = ("seed", "prompt", "negative_prompt"),
              **kwargs: Any) -> int:
    """Load the model, run ``edit(model, **kwargs)`` with the sampling options and the ``shared`` ones
    (``--seed``, ``--prompt``, ...) under a progress bar, and write the clips."""
    from .hub import load

    from .audio.clip import check_prefix

    check_prefix(args.prefix)
    out = check_out_dir(args.out)
    if args.plot:
        from .plot import save_mel_png  # noqa: F401  (fail early if matplotlib is missing)
    model = load(args.model, device=_device(args.device))
    kwargs.update(steps=args.steps, spacing=args.spacing, vocoder=args.vocoder, guidance_scale=args.guidance_scale)
    if args.sampler is not None or args.sampler_arg:  # otherwise the edit's default sampler
        kwargs["sampler"] = _sampler_spec(args, model)
    kwargs.update({key: getattr(args, key) for key in shared})
    bar, callback = _progress(args.quiet)
    try:
        if "num_samples" in kwargs:  # made and written batch by batch: bounded memory for any -n
            from .edit import in_batches

            clips = in_batches(edit, model, callback=callback, **kwargs)
        else:
            clips = edit(model, callback=callback, **kwargs)
        paths = write_clips(clips, model, out, args.prefix, args.plot, args.overwrite)
    finally:
        if bar is not None:
            bar.close()
    for path in paths:
        print(path)
    return 0


def cmd_inpaint(args: argparse.Namespace) -> int:
    from .edit import inpaint

    return _run_edit(args, inpaint, audio=args.input, start=args.start, end=args.end, fmin=args.fmin, fmax=args.fmax,
                     jumps=args.jumps, jump_length=args.jump_length, num_samples=args.num_samples)


def cmd_continue(args: argparse.Namespace) -> int:
    from .edit import continue_audio

    return _run_edit(args, continue_audio, audio=args.input, seconds=args.seconds, overlap=args.overlap,
                     jumps=args.jumps, jump_length=args.jump_length, num_samples=args.num_samples)


def cmd_variation(args: argparse.Namespace) -> int:
    from .edit import variation

    return _run_edit(args, variation, audio=args.input, strength=args.strength, num_samples=args.num_samples)


def cmd_interpolate(args: argparse.Namespace) -> int:
    from .edit import iter_interpolate, iter_interpolate_prompts

    if args.num_steps < 2:
        raise ConfigError(f"--num-steps must be >= 2 (both ends are included), got {args.num_steps}")
    if args.input is not None or args.input2 is not None:
        if args.input is None or args.input2 is None:
            raise ConfigError("interpolating audio needs both --input and --input2")
        if args.prompt2 is not None:
            raise ConfigError("--prompt2 is for prompt interpolation; with --input/--input2 give at most --prompt")
        if args.seconds is not None:
            raise ConfigError("--seconds is for prompt interpolation; audio interpolation keeps the inputs' length")
        return _run_edit(args, iter_interpolate, ("prompt", "negative_prompt"), audio_a=args.input, audio_b=args.input2,
                         n=args.num_steps)  # deterministic: --seed plays no part
    if args.prompt is None or args.prompt2 is None:
        raise ConfigError("interpolate needs --input and --input2, or --prompt and --prompt2")
    return _run_edit(args, iter_interpolate_prompts, ("seed", "negative_prompt"), prompt_a=args.prompt,
                     prompt_b=args.prompt2, n=args.num_steps, seconds=args.seconds)


def cmd_loop(args: argparse.Namespace) -> int:
    from .edit import loop

    return _run_edit(args, loop, seconds=args.seconds, wrap=args.wrap, num_samples=args.num_samples, audio=args.input)


def cmd_eval(args: argparse.Namespace) -> int:
    from .hub import load
    from .metrics import load_judge
    from .metrics.evaluate import CAPTION_PROMPTS, LABEL_PROMPTS, evaluate_manifest, write_report

    from .files import check_target

    out = check_out_dir(args.out)
    for name in ("report.json", "report.md"):  # before the long evaluation, not after it
        check_target(out / name, args.overwrite)
    judge = load_judge(args.judge) if args.judge is not None else None
    model = load(args.model, device=_device(args.device))
    prompts = args.prompts[0] if args.prompts in ([LABEL_PROMPTS], [CAPTION_PROMPTS]) else args.prompts
    bar, callback = _progress(args.quiet)
    try:
        split = None if args.split == "all" else args.split
        report = evaluate_manifest(model, args.reference, args.num_samples, split, judge=judge, prompts=prompts,
                                   steps=args.steps, seed=args.seed, sampler=args.sampler,
                                   guidance_scale=args.guidance_scale, batch_size=args.batch_size,
                                   max_reference=args.max_reference, resynthesize=args.resynthesize,
                                   callback=callback, vocoder=args.vocoder, spacing=args.spacing,
                                   sigma_min=args.sigma_min)
    finally:
        if bar is not None:
            bar.close()
    json_path, md_path = write_report(report, out / "report.json", out / "report.md", args.overwrite)
    print(md_path.read_text())
    print(json_path)
    print(md_path)
    return 0


def cmd_likelihood(args: argparse.Namespace) -> int:
    from .hub import load
    from .likelihood import DEFAULT_BIN_WIDTH, format_table, likelihood_of_files

    from .files import check_target, write_json

    out = check_target(args.json, args.overwrite)
    if not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: folder {out.parent} does not exist")
    model = load(args.model, device=_device(args.device))
    bin_width = DEFAULT_BIN_WIDTH if args.bin_width is None else args.bin_width
    results = likelihood_of_files(model, args.files, method=args.method, steps=args.steps, bin_width=bin_width,
                                  seed=args.seed, batch_size=args.batch_size, prompt=args.prompt)
    print(format_table(results))
    write_json(out, results, args.overwrite)
    print(f"wrote {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .registry import KINDS, names

    if args.registry or args.model is None:
        for kind in KINDS:
            print(f"{kind}: {', '.join(names(kind)) or '(none)'}")
        if args.model is None:
            return 0
    from .hub import load

    model = load(args.model)
    print(f"model: {args.model} ({getattr(model, 'source', '')})")
    print(f"parameters: {model.num_parameters():,}")
    print(f"sample rate: {model.sample_rate} Hz, window {model.seconds:g} s, at most {model.max_seconds:g} s")
    print("mel settings: " + json.dumps(model.representation.settings()))
    vocoder = model.default_vocoder
    print("vocoder: " + json.dumps(vocoder.config() if hasattr(vocoder, "config") else vocoder)
          + (" (trained, from the model folder's vocoder/)" if hasattr(vocoder, "config") else ""))
    print("config:")
    print(json.dumps(model.config, indent=2, sort_keys=True))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .hub import PRETRAINED_DIR, list_models

    shipped = list_models()
    if not shipped:
        print(f"no shipped models yet (they live in {PRETRAINED_DIR})")
        return 0
    for name, path in shipped.items():
        print(f"{name}\t{path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .hub import PRETRAINED_DIR, list_models

    shipped = list_models()
    if not shipped:
        raise AudiodiffError(
            f"no shipped models yet in {PRETRAINED_DIR}: train one with a recipe (see README) "
            "and generate from its folder with `audiodiff generate --model DIR`")
    from .generate import generate
    from .sampling import resolve_vocoder
    from .hub import load

    models = {name: load(name) for name in shipped}
    if args.vocoder is not None:
        for model in models.values():  # every model must take it before any clip is made
            resolve_vocoder(model, args.vocoder)
    for name, model in models.items():
        examples = list(dict.fromkeys(model.demo_prompts(args.prompts) or []))  # distinct, in order
        clips = generate(model, num_samples=args.num_samples, prompt=examples or None, seed=args.seed,
                         vocoder=args.vocoder)
        out = check_out_dir(Path(args.out) / name)
        for path in write_clips(clips, model, out, name, plot=False, overwrite=args.overwrite):
            print(path)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from .ui import launch

    app, url = launch(check_out_dir(args.out), host=args.host, port=args.port, device=_device(args.device),
                      models=args.model, open_browser=args.open)
    print(f"audiodiff page at {url} (clips in {args.out}); Ctrl-C stops it", flush=True)
    app.block_thread()
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from .data import AudioDataset, read_manifest
    from .distill import DistillConfig, distill
    from .files import check_target
    from .hub import load

    out = Path(args.out)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    train = {"steps": args.round_steps, "device": args.device or "auto", **dict(args.set)}
    config = DistillConfig(steps=args.steps, start_steps=args.start_steps, spacing=args.spacing, sigma_min=args.sigma_min,
                           guidance_range=tuple(args.guidance_range) if args.guidance_range else None, methods=methods,
                           train=train, time_limit=args.time_limit)
    check_target(out / "config.json", args.overwrite)
    teacher = load(args.model, device=_device(args.device))
    items = read_manifest(args.data, split=None if args.split == "all" else args.split)
    dataset = AudioDataset(items, sample_rate=teacher.sample_rate, seconds=teacher.seconds, crop=args.crop,
                           trim_silence_db=args.trim_db, loudness_normalize=args.loudness_db)
    try:
        student = distill(teacher, dataset, args.work or f"{out}.rounds", config, out=out)
    except TimeoutError as exc:
        print(f"audiodiff: {exc}", file=sys.stderr)
        return 3
    print(f"student: {out} ({student.config['steps']} steps, sampler {student.config['sampler']['name']})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="audiodiff: %(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    new_folder = _first_missing(getattr(args, "out", None))
    try:
        code = int(args.func(args) or 0)
    except AudiodiffError as exc:
        print(f"audiodiff: error: {_one_line(exc)}", file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        print("audiodiff: interrupted", file=sys.stderr)
        code = 130
    if code != 0 and new_folder is not None:
        _remove_empty_folders(new_folder)
    return code


def _first_missing(out: str | None) -> Path | None:
    """The outermost folder of ``out`` that does not exist yet (what a failed run may leave behind)."""
    if out is None:
        return None
    path = Path(out).absolute()
    missing = None
    while not path.exists() and path != path.parent:
        missing, path = path, path.parent
    return missing


def _remove_empty_folders(top: Path) -> None:
    """Remove ``top`` and the folders under it that hold no file (a failed run leaves no empty folders)."""
    if not top.is_dir() or top.is_symlink():
        return
    for folder in sorted((p for p in top.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty
    with contextlib.suppress(OSError):
        top.rmdir()


if __name__ == "__main__":
    sys.exit(main())
