"""``audiodiff generate`` and the edit commands (``inpaint``, ``continue``, ``variation``, ``interpolate``,
``loop``): thin wrappers over :func:`audiodiff.generate.iter_generate` and :mod:`audiodiff.edit` that
write each batch of clips as it is made."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..audio.clip import check_prefix, write_clips
from ..errors import ConfigError
from ..files import check_out_dir
from .options import (device, output_options, positive_int, progress, repaint_options, sampler_spec,
                      sampling_options)

#: the largest --prompts-file read
MAX_PROMPTS_FILE = 16 * 2**20


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``generate`` and edit sub-commands."""
    output, sampling, repaint = output_options(), sampling_options(), repaint_options()
    gen = sub.add_parser("generate", help="generate WAV files from a model", parents=[output, sampling])
    gen.add_argument("--num-samples", "-n", type=positive_int, default=1, help="clips per prompt (default 1)")
    gen.add_argument("--prompt", "-p", action="append", default=None, help="text prompt (repeatable)")
    gen.add_argument("--prompts-file", default=None, help="a file with one prompt per line")
    gen.add_argument("--guidance-rescale", type=float, default=0.0, help="guidance rescale fraction in [0, 1]")
    gen.add_argument("--seconds", type=float, default=None,
                     help="clip length (default: the model's window; longer clips are made in overlapping windows)")
    gen.add_argument("--overlap", type=float, default=0.5,
                     help="for long clips: fraction of a window shared with the one before (default 0.5)")
    gen.add_argument("--sigma-min", type=float, default=None,
                     help="last noise level before the final step to 0 (default: the model's)")
    gen.add_argument("--batch-size", type=positive_int, default=16)
    gen.set_defaults(func=cmd_generate, default_prefix="clip")

    def edit(name: str, help: str, prefix: str, *extra: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, parents=[output, sampling, *extra])
        p.add_argument("--prompt", "-p", default=None, help="text prompt (conditional models)")
        p.set_defaults(default_prefix=prefix)
        return p

    inp = edit("inpaint", "regenerate a time range (and frequency band) of a clip", "inpaint", repaint)
    inp.add_argument("--input", "-i", required=True, help="audio file to edit")
    inp.add_argument("--start", type=float, required=True, help="start of the range to regenerate (s)")
    inp.add_argument("--end", type=float, required=True, help="end of the range to regenerate (s)")
    inp.add_argument("--fmin", type=float, default=None, help="lowest frequency to regenerate (Hz)")
    inp.add_argument("--fmax", type=float, default=None, help="highest frequency to regenerate (Hz)")
    inp.add_argument("--num-samples", "-n", type=positive_int, default=1)
    inp.set_defaults(func=cmd_inpaint)

    cont = edit("continue", "extend a clip by N seconds", "continue", repaint)
    cont.add_argument("--input", "-i", required=True, help="audio file to continue")
    cont.add_argument("--seconds", type=float, required=True, help="seconds to add")
    cont.add_argument("--overlap", type=float, default=0.5, help="fraction of a window that is context (default 0.5)")
    cont.add_argument("--num-samples", "-n", type=positive_int, default=1)
    cont.set_defaults(func=cmd_continue)

    var = edit("variation", "variations of a clip (SDEdit)", "variation")
    var.add_argument("--input", "-i", required=True, help="audio file to vary")
    var.add_argument("--strength", type=float, required=True, help="in (0, 1]: how far from the clip (1: ignore it)")
    var.add_argument("--num-samples", "-n", type=positive_int, default=1)
    var.set_defaults(func=cmd_variation)

    itp = edit("interpolate", "clips between two clips (DDIM inversion + slerp) or two prompts", "interp")
    itp.add_argument("--input", "-i", default=None, help="first audio file")
    itp.add_argument("--input2", default=None, help="second audio file")
    itp.add_argument("--prompt2", default=None, help="second prompt (with --prompt, no inputs)")
    itp.add_argument("--num-steps", type=positive_int, default=5, help="clips from one end to the other (default 5)")
    itp.add_argument("--seconds", type=float, default=None, help="clip length for prompt interpolation")
    itp.set_defaults(func=cmd_interpolate)

    lp = edit("loop", "clips whose end flows into their start", "loop")
    lp.add_argument("--seconds", type=float, default=None, help="clip length (default: the model's window)")
    lp.add_argument("--wrap", type=float, default=0.25, help="fraction of the clip the net sees wrapped around "
                    "(with --input: the fraction regenerated around the seam, half at each end)")
    lp.add_argument("--input", "-i", default=None, help="a clip to make loop (its ends are regenerated)")
    lp.add_argument("--num-samples", "-n", type=positive_int, default=1)
    lp.set_defaults(func=cmd_loop)


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
    from ..generate import iter_generate
    from ..generators import is_generator_folder

    prompts = read_prompts(args.prompt, args.prompts_file)
    if is_generator_folder(args.model):
        return _generate_one_shot(args, prompts)
    model, out = _model_and_out(args)
    return _write(args, model, out, lambda callback: iter_generate(
        model, num_samples=args.num_samples, prompt=prompts, negative_prompt=args.negative_prompt,
        guidance_scale=args.guidance_scale, guidance_rescale=args.guidance_rescale, seconds=args.seconds,
        steps=args.steps, sampler=sampler_spec(args, model), seed=args.seed, vocoder=args.vocoder, callback=callback,
        batch_size=args.batch_size, spacing=args.spacing, overlap=args.overlap, sigma_min=args.sigma_min))


#: generate options that only a diffusion model takes, and their defaults
DIFFUSION_ONLY = {"steps": None, "sampler": None, "sampler_arg": [], "spacing": None, "negative_prompt": None,
                  "guidance_scale": None, "guidance_rescale": 0.0, "seconds": None, "overlap": 0.5,
                  "sigma_min": None, "lora": []}


def _generate_one_shot(args: argparse.Namespace, prompts: list[str] | None) -> int:
    """``generate`` with a one-shot generator folder (a GAN or VAE of :mod:`audiodiff.generators`):
    ``-n`` clips per prompt (a class label), clip ``i`` from seed ``--seed + i``, decoded by ``--vocoder``
    (default: Griffin-Lim)."""
    import torch

    from ..generators import load_generator
    from ..vocoders import build_vocoder

    given = [f"--{k.replace('_', '-')}" for k, default in DIFFUSION_ONLY.items() if getattr(args, k, default) != default]
    if given:
        raise ConfigError(f"{', '.join(given)} only apply to diffusion models; a one-shot generator draws each "
                          "clip in one pass")
    if args.prefix is None:
        args.prefix = args.default_prefix
    check_prefix(args.prefix)
    out = check_out_dir(args.out)
    model, where = load_generator(args.model), device(args.device)
    model = model.to(where) if where is not None else model
    if not prompts:
        raise ConfigError(f"a generator needs --prompt, one of its labels: {', '.join(model.labels)}")
    vocoder = build_vocoder(args.vocoder or "griffinlim", model.mel.settings()).to(model.device)
    labels = [p for p in prompts for _ in range(args.num_samples)]
    seed = args.seed if args.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
    clips = model.generate_clips(labels, vocoder, seed, batch_size=args.batch_size)
    for path in write_clips(clips, model, out, args.prefix, args.plot, args.overwrite):
        print(path)
    return 0


def _run_edit(args: argparse.Namespace, edit, shared: Sequence[str] = ("seed", "prompt", "negative_prompt"),
              **kwargs: Any) -> int:
    """Load the model, run ``edit(model, **kwargs)`` with the sampling options and the ``shared`` ones
    (``--seed``, ``--prompt``, ...) under a progress bar, and write the clips."""
    from ..edit import in_batches

    model, out = _model_and_out(args)
    kwargs.update(steps=args.steps, spacing=args.spacing, vocoder=args.vocoder, guidance_scale=args.guidance_scale)
    if args.sampler is not None or args.sampler_arg:  # otherwise the edit's default sampler
        kwargs["sampler"] = sampler_spec(args, model)
    kwargs.update({key: getattr(args, key) for key in shared})
    if "num_samples" in kwargs:  # made and written batch by batch: bounded memory for any -n
        return _write(args, model, out, lambda callback: in_batches(edit, model, callback=callback, **kwargs))
    return _write(args, model, out, lambda callback: edit(model, callback=callback, **kwargs))


def _model_and_out(args: argparse.Namespace) -> tuple[Any, Path]:
    """Check ``--prefix``, ``--out`` and ``--plot`` (before the model loads), then load ``--model``."""
    from ..hub import load

    if args.prefix is None:
        args.prefix = args.default_prefix
    check_prefix(args.prefix)
    out = check_out_dir(args.out)
    if args.plot:
        from ..plot import save_mel_png  # noqa: F401  (fail early if matplotlib is missing)
    return load(args.model, device=device(args.device), lora=args.lora), out


def _write(args: argparse.Namespace, model: Any, out: Path, make: Callable[[Any], Iterable]) -> int:
    """Write the clips of ``make(callback)`` as they come, under a progress bar, and print their paths."""
    bar, callback = progress(args.quiet)
    try:
        paths = write_clips(make(callback), model, out, args.prefix, args.plot, args.overwrite)  # batch by batch
    finally:
        if bar is not None:
            bar.close()
    for path in paths:
        print(path)
    return 0


def cmd_inpaint(args: argparse.Namespace) -> int:
    from ..edit import inpaint

    return _run_edit(args, inpaint, audio=args.input, start=args.start, end=args.end, fmin=args.fmin, fmax=args.fmax,
                     jumps=args.jumps, jump_length=args.jump_length, num_samples=args.num_samples)


def cmd_continue(args: argparse.Namespace) -> int:
    from ..edit import continue_audio

    return _run_edit(args, continue_audio, audio=args.input, seconds=args.seconds, overlap=args.overlap,
                     jumps=args.jumps, jump_length=args.jump_length, num_samples=args.num_samples)


def cmd_variation(args: argparse.Namespace) -> int:
    from ..edit import variation

    return _run_edit(args, variation, audio=args.input, strength=args.strength, num_samples=args.num_samples)


def cmd_interpolate(args: argparse.Namespace) -> int:
    from ..edit import iter_interpolate, iter_interpolate_prompts

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
    from ..edit import loop

    return _run_edit(args, loop, seconds=args.seconds, wrap=args.wrap, num_samples=args.num_samples, audio=args.input)
