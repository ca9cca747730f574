"""The ``train``, ``finetune`` and ``lora`` commands of the ``audiodiff`` command line.

``train`` trains a new model on a folder of audio, a caption table or a manifest
(:mod:`audiodiff.training.folder`); ``finetune`` trains a LoRA adapter (or, with ``--full``, every
weight) of a model on such data (:mod:`audiodiff.finetune`); ``lora merge`` bakes adapters into a plain
model folder and ``lora info`` describes one.  :func:`add_commands` adds them to the main parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import checks
from ..errors import ConfigError
from .options import OVERWRITE_HELP, add_lora_option, positive_int

#: exit status of a run stopped by its time limit (checkpointed; ``--resume`` goes on)
EXIT_TIME_LIMIT = 3


def ui_models(models: list[str] | None, loras: list[str]) -> list[str] | None:
    """The web page's model choices: ``models`` and, with ``--lora``, ``"BASE + DIR[:S] + ..."`` (the adapters
    stacked on the base the first one names, or on the first ``--model``)."""
    if not loras:
        return models
    from ..lora import SPEC_JOIN, adapter_base, parse_spec

    base = models[0] if models else adapter_base(parse_spec(loras[0])[0])
    if base is None:
        raise ConfigError(f"--lora {loras[0]} is not an adapter folder")
    return [*(models or []), SPEC_JOIN.join([base, *loras])]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``train``, ``finetune`` and ``lora`` sub-commands."""
    _positive_int, _key_value = positive_int, checks.key_value_arg

    tr = sub.add_parser("train", help="train a new model on a folder of audio (subfolders are labels), a caption "
                                      "table (path,caption) or a manifest")
    _data_options(tr, _positive_int, _key_value)
    tr.add_argument("--preset", choices=["speech", "music", "sfx", "tiny"], default=None,
                    help="sample rate, mel settings, clip length and model size (default: inferred from the files)")
    tr.add_argument("--name", default=None, help="the model's name in its config (default: mine)")
    tr.set_defaults(func=cmd_train)

    ft = sub.add_parser("finetune", help="fine-tune a model on your clips: a small LoRA adapter (default) or every weight")
    ft.add_argument("--model", "-m", required=True, help="the base: shipped model name, model folder or hf://org/repo")
    _data_options(ft, _positive_int, _key_value)
    ft.add_argument("--lora-rank", type=_positive_int, default=4, help="LoRA rank (default 4)")
    ft.add_argument("--lora-alpha", type=float, default=None, help="LoRA scale alpha (default: the rank)")
    ft.add_argument("--full", action="store_true", help="train every weight; the result is a plain model folder")
    ft.add_argument("--no-new-labels", action="store_true", help="do not add the data's unknown labels to a label model")
    ft.add_argument("--merge", action="store_true", help="also write the base with the adapter merged to OUT/merged")
    ft.set_defaults(func=cmd_finetune)

    lora = sub.add_parser("lora", help="LoRA adapters: merge into a plain model folder, or describe one")
    lsub = lora.add_subparsers(dest="lora_command", required=True, metavar="ACTION")
    mg = lsub.add_parser("merge", help="write a model folder with adapters baked in")
    mg.add_argument("--model", "-m", required=True, help="the base model")
    add_lora_option(mg)
    mg.add_argument("--out", "-o", required=True, help="folder for the merged model")
    mg.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    mg.set_defaults(func=cmd_lora_merge)
    inf = lsub.add_parser("info", help="an adapter's base model, rank, size and new labels")
    inf.add_argument("adapter", help="adapter folder")
    inf.set_defaults(func=cmd_lora_info)


def _data_options(p: argparse.ArgumentParser, positive_int, key_value) -> None:
    p.add_argument("--data", required=True, help="a folder of WAV/FLAC/OGG/MP3 (subfolders become labels), a "
                                                 ".csv/.tsv/.jsonl caption table (path,caption) or a manifest")
    p.add_argument("--out", "-o", required=True, help="run folder (checkpoints, log.jsonl, the result in OUT/model)")
    p.add_argument("--steps", type=positive_int, default=None, help="training steps (default: the preset's)")
    p.add_argument("--time-limit", type=float, default=0.0, help="seconds for this call; --resume goes on (0: none)")
    p.add_argument("--resume", action="store_true", help="go on with the run in --out")
    p.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="any training option, e.g. lr=1e-4, batch_size=16, ema_decay=0.99 (repeatable)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _train_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = dict(args.set)
    for key, value in (("steps", args.steps), ("device", args.device)):
        if value is not None:
            options.setdefault(key, value)
    if args.time_limit:
        options.setdefault("time_limit", args.time_limit)
    if args.quiet:
        options.setdefault("progress", False)
    return options


def _check_run_folder(out: Path, resume: bool) -> None:
    """A new run needs an empty or new folder; ``--resume`` needs one that holds a run."""
    holds_run = (out / "checkpoints").is_dir() or (out / "log.jsonl").is_file()
    if resume and not holds_run:
        raise ConfigError(f"--resume: {out} holds no run to go on with")
    if not resume and out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; pass --resume to go on with the run there, or choose a new --out")


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.folder import train_from_data

    out = Path(args.out)
    _check_run_folder(out, args.resume)
    _log_to_stderr()
    try:
        summary = train_from_data(args.data, out, args.preset, _train_options(args), args.resume, args.name)
    except TimeoutError as exc:
        print(f"audiodiff: {exc}", file=sys.stderr)
        return EXIT_TIME_LIMIT
    if "held_out_loss" in summary:
        print(f"held-out loss on {summary['test_clips']} test clips: {summary['held_out_loss']:.4f}")
    print(f"model: {summary['model']}")
    print(f"judge it: audiodiff eval --model {summary['model']} --reference {out / 'manifest.jsonl'} --judge JUDGE --out "
          f"{out / 'eval'}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from ..data.sources import describe, read_data
    from ..finetune import FinetuneConfig, finetune
    from ..hub import load
    from ..lora import merge
    from ..training.folder import dataset

    out = Path(args.out)
    _check_run_folder(out, args.resume)
    config = FinetuneConfig(rank=args.lora_rank, alpha=args.lora_alpha, full=args.full,
                            new_labels=not args.no_new_labels, train=_train_options(args))
    model = load(args.model)
    items = read_data(args.data, test_fraction=0.0)
    print(f"data: {describe(items)}")
    _log_to_stderr()
    try:
        result = finetune(model, dataset(items, model), out, config, labels=[i.label for i in items if i.label])
    except TimeoutError as exc:
        print(f"audiodiff: {exc}", file=sys.stderr)
        return EXIT_TIME_LIMIT
    print(f"{'model' if args.full else 'adapter'}: {result}")
    if args.merge and not args.full:
        merged = merge(load(args.model, lora=[result]))
        merged.save(out / "merged")
        print(f"merged model: {out / 'merged'}")
    return 0


def cmd_lora_merge(args: argparse.Namespace) -> int:
    from ..files import check_target
    from ..hub import load
    from ..lora import merge

    if not args.lora:
        raise ConfigError("lora merge needs at least one --lora DIR[:STRENGTH]")
    out = Path(args.out)
    check_target(out / "config.json", args.overwrite)
    merged = merge(load(args.model, lora=args.lora))
    merged.save(out)
    print(f"merged model: {out}")
    return 0


def cmd_lora_info(args: argparse.Namespace) -> int:
    from ..lora import ADAPTER_WEIGHTS, read_adapter

    config, tensors = read_adapter(args.adapter)
    size = sum(t.numel() for t in tensors.values())
    print(f"base: {config['base']['name']} ({config['base']['checksum']})")
    print(f"rank {config['rank']}, alpha {config['alpha']:g}, {len(config['targets'])} layers, {size:,} parameters, "
          f"{(Path(args.adapter) / ADAPTER_WEIGHTS).stat().st_size / 1024:.0f} KiB")
    if config["new_labels"]:
        print("new labels: " + json.dumps(config["new_labels"]))
    return 0


def _log_to_stderr() -> None:
    """Show the library's INFO lines (what was inferred, resumed, ...) during a training command."""
    import logging

    logging.getLogger("audiodiff").setLevel(logging.INFO)
