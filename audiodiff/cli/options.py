"""What the ``audiodiff`` commands share: the one-line error parser, argument types, the option sets
(argparse parent parsers) that ``generate`` and every edit declare once, and the progress bar."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import checks
from ..diffusion.schedules import SPACINGS

EXIT_USAGE = 2
#: an error line longer than this is cut (a 100 KB prompt must not be echoed whole)
MAX_ERROR_CHARS = 400
MODEL_HELP = "shipped model name, model folder or hf://org/repo"
LORA_HELP = "a LoRA adapter folder, optionally with a strength (DIR or DIR:0.7); repeatable, adapters stack"
OVERWRITE_HELP = "replace existing output files (default: an existing file is an error)"
DEVICE_HELP = "torch device (default: cuda if available, else cpu)"
VOCODER_HELP = ("vocoder: a registry name (e.g. griffinlim) or a trained vocoder folder "
                "(default: the model folder's vocoder/, else its config's)")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``audiodiff: error: ...``) and exit status 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        line = f"{self.prog}: {message} (see `{self.prog} --help`)"
        print(f"audiodiff: error: {one_line(line)}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def one_line(text: Any) -> str:
    """``text`` on one line, at most :data:`MAX_ERROR_CHARS` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS - 3] + "..."


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def device(name: str | None) -> str:
    """The torch device ``--device`` names (default: cuda if available, else cpu)."""
    return checks.device(name)


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def output_options() -> argparse.ArgumentParser:
    """Where and how clips are written, for ``generate`` and every edit.

    A command sets its own default prefix with ``set_defaults(default_prefix=...)`` (not
    ``set_defaults(prefix=...)``: the actions of a parent parser are shared by every command).
    """
    p = _parent()
    p.add_argument("--model", "-m", required=True, help=MODEL_HELP)
    p.add_argument("--out", "-o", default="out", help="output folder (default: out)")
    p.add_argument("--prefix", default=None, help="file name prefix (default: the command's name; generate: clip)")
    p.add_argument("--plot", action="store_true", help="also write a mel-spectrogram PNG per clip")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    add_lora_option(p)
    return p


def add_lora_option(parser: argparse.ArgumentParser) -> None:
    """``--lora DIR[:STRENGTH]`` (repeatable) for commands that load a model."""
    parser.add_argument("--lora", action="append", default=[], metavar="DIR[:STRENGTH]", help=LORA_HELP)


def sampling_options() -> argparse.ArgumentParser:
    """The sampler, ladder, seed, guidance and vocoder options of ``generate`` and every edit."""
    p = _parent()
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    p.add_argument("--sampler", default=None, help="sampler name (see `audiodiff info --registry`)")
    p.add_argument("--sampler-arg", type=checks.key_value_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="sampler option, e.g. eta=0.5 (repeatable)")
    p.add_argument("--spacing", choices=list(SPACINGS), default=None)
    p.add_argument("--seed", type=int, default=None, help="base seed; clip i uses seed + i")
    p.add_argument("--negative-prompt", default=None, help="what guidance steers away from")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance scale (1 = none; default: the model's)")
    p.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    return p


def repaint_options() -> argparse.ArgumentParser:
    """RePaint's resampling options (inpaint, continue)."""
    p = _parent()
    p.add_argument("--jumps", type=int, default=0, help="RePaint resamplings per jump point (default 0)")
    p.add_argument("--jump-length", type=int, default=10, help="steps between jump points (default 10)")
    return p


def sampler_spec(args: argparse.Namespace, model: Any) -> Any:
    """The sampler named by ``--sampler`` (default: the model's) with ``--sampler-arg`` options."""
    sampler = args.sampler or model.config["sampler"]
    if args.sampler_arg:
        sampler = {**({"name": sampler} if isinstance(sampler, str) else dict(sampler)), **dict(args.sampler_arg)}
    return sampler


def progress(quiet: bool):
    """A progress bar and the sampler callback that moves it; the bar appears at the first step (with the
    ``total`` the step reports), so an error found before sampling starts is printed alone (one line)."""
    if quiet:
        return None, None
    bar = LazyBar()
    return bar, bar.step


class LazyBar:
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
