"""The ``audiodiff`` command line: a thin front end over the public Python functions.

``generate`` makes clips from noise (any length: long ones in overlapping windows); ``inpaint``,
``continue``, ``variation``, ``interpolate`` and ``loop`` wrap :mod:`audiodiff.edit`
(:mod:`audiodiff.cli.generate`); ``eval`` and ``likelihood`` score (:mod:`audiodiff.cli.evaluate`);
``info``, ``models``, ``demo``, ``ui`` and ``distill`` are in :mod:`audiodiff.cli.models`.  The options
``generate`` and the edits share are declared once (:mod:`audiodiff.cli.options`).  Every command
writes WAVs with JSON sidecars, batch by batch as they are made, under names that carry a hash of
their settings; an existing file is replaced only with ``--overwrite``.  Every error a user can
cause (argparse's included) prints one line ``audiodiff: error: ...`` and exits with status 2, and
a failed run leaves no empty output folder.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import Sequence

from .._version import __version__
from ..errors import AudiodiffError
from . import evaluate, generate, models, train
from .options import EXIT_USAGE, OneLineParser, one_line

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``audiodiff`` parser with every sub-command."""
    parser = OneLineParser(prog="audiodiff", description="Diffusion models of audio.")
    parser.add_argument("--version", action="version", version=f"audiodiff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    generate.add_parsers(sub)
    models.add_parsers(sub)
    evaluate.add_parsers(sub)
    train.add_parsers(sub)  # train, finetune, lora
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="audiodiff: %(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    new_folder = _first_missing(getattr(args, "out", None))
    try:
        code = int(args.func(args) or 0)
    except AudiodiffError as exc:
        print(f"audiodiff: error: {one_line(exc)}", file=sys.stderr)
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
