"""``audiodiff info``, ``models``, ``demo``, ``ui`` and ``distill``: models, the registry, the web page, students."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import checks
from ..audio.clip import write_clips
from ..diffusion.schedules import SPACINGS
from ..errors import AudiodiffError
from ..files import check_out_dir
from .options import DEVICE_HELP, MODEL_HELP, OVERWRITE_HELP, VOCODER_HELP, add_lora_option, device, positive_int


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``info``, ``models``, ``demo``, ``ui`` and ``distill`` sub-commands."""
    info = sub.add_parser("info", help="show a model's config, size and mel settings, or the registry")
    info.add_argument("--model", "-m", default=None)
    info.add_argument("--registry", action="store_true", help="list every registered component name")
    info.set_defaults(func=cmd_info)

    models = sub.add_parser("models", help="list the shipped models")
    models.set_defaults(func=cmd_models)

    demo = sub.add_parser("demo", help="generate a few clips from every shipped model")
    demo.add_argument("--out", "-o", default="out")
    demo.add_argument("--num-samples", "-n", type=positive_int, default=1, help="clips per prompt")
    demo.add_argument("--prompts", type=positive_int, default=3, help="prompts per conditional model")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    demo.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser("ui", help="serve a web page to make and edit clips (needs the ui extra)")
    ui.add_argument("--model", "-m", action="append", default=None,
                    help="model offered on the page (repeatable; default: the shipped ones)")
    ui.add_argument("--out", "-o", default="out/ui", help="folder for the clips made on the page (default: out/ui)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    ui.add_argument("--port", type=positive_int, default=None, help="port (default: the first free one from 7860)")
    ui.add_argument("--open", action="store_true", help="open the page in a browser")
    ui.add_argument("--device", default=None, help=DEVICE_HELP)
    add_lora_option(ui)  # offered as "BASE + DIR[:STRENGTH]" on the page
    ui.set_defaults(func=cmd_ui)

    dst = sub.add_parser("distill", help="distil a model into a few-step student (guidance folded in, then halving rounds)")
    dst.add_argument("--model", "-m", required=True, help="the teacher: " + MODEL_HELP)
    dst.add_argument("--data", required=True, help="manifest (JSONL) of the clips the teacher was trained on")
    dst.add_argument("--out", "-o", required=True, help="folder for the student model")
    dst.add_argument("--work", default=None, help="folder for the rounds' resumable runs (default: OUT.rounds)")
    dst.add_argument("--steps", type=positive_int, default=4, help="the student's sampler steps (default 4)")
    dst.add_argument("--start-steps", type=positive_int, default=32,
                     help="steps of the first progressive round's teacher ladder (default 32)")
    dst.add_argument("--methods", default="guidance,progressive",
                     help="guidance and/or progressive, comma-separated (default: both; guidance only for prompted models)")
    dst.add_argument("--guidance-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                     help="guidance scales the student learns (default: 1 to twice the model's)")
    dst.add_argument("--spacing", choices=list(SPACINGS), default=None, help="ladder spacing (default: the model's)")
    dst.add_argument("--sigma-min", type=float, default=None, help="the ladder's last noise level (default: the model's)")
    dst.add_argument("--round-steps", type=positive_int, default=2000, help="training steps per round (default 2000)")
    dst.add_argument("--time-limit", type=float, default=0.0, help="seconds for this call; run again to resume (0: none)")
    dst.add_argument("--set", type=checks.key_value_arg, action="append", default=[], metavar="KEY=VALUE",
                     help="a training option of every round, e.g. lr=1e-4 or batch_size=16 (repeatable)")
    dst.add_argument("--split", default="train", help="manifest split to train on (default: train; 'all' for every item)")
    dst.add_argument("--crop", choices=["start", "center", "random"], default="start",
                     help="where longer files are cut (default: start, as the recipes train)")
    dst.add_argument("--trim-db", type=float, default=None, help="trim silence quieter than this many dB below the peak")
    dst.add_argument("--loudness-db", type=float, default=None, help="normalise each file to this RMS in dBFS (e.g. -20)")
    dst.add_argument("--overwrite", action="store_true", help="replace --out if it holds a model")
    dst.add_argument("--device", default=None, help=DEVICE_HELP)
    dst.set_defaults(func=cmd_distill)


def cmd_info(args: argparse.Namespace) -> int:
    from ..registry import KINDS, names

    if args.registry or args.model is None:
        for kind in KINDS:
            print(f"{kind}: {', '.join(names(kind)) or '(none)'}")
        if args.model is None:
            return 0
    from ..hub import load

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
    from ..hub import PRETRAINED_DIR, list_models

    shipped = list_models()
    if not shipped:
        print(f"no shipped models yet (they live in {PRETRAINED_DIR})")
        return 0
    for name, path in shipped.items():
        print(f"{name}\t{path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..hub import PRETRAINED_DIR, list_models

    shipped = list_models()
    if not shipped:
        raise AudiodiffError(
            f"no shipped models yet in {PRETRAINED_DIR}: train one with a recipe (see README) "
            "and generate from its folder with `audiodiff generate --model DIR`")
    from ..generate import generate
    from ..sampling import resolve_vocoder
    from ..hub import load

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
    from ..ui import launch
    from .train import ui_models

    app, url = launch(check_out_dir(args.out), host=args.host, port=args.port, device=device(args.device),
                      models=ui_models(args.model, args.lora), open_browser=args.open)
    print(f"audiodiff page at {url} (clips in {args.out}); Ctrl-C stops it", flush=True)
    app.block_thread()
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from ..data import AudioDataset, read_manifest
    from ..distill import DistillConfig, distill
    from ..files import check_target
    from ..hub import load

    out = Path(args.out)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    train = {"steps": args.round_steps, "device": args.device or "auto", **dict(args.set)}
    config = DistillConfig(steps=args.steps, start_steps=args.start_steps, spacing=args.spacing, sigma_min=args.sigma_min,
                           guidance_range=tuple(args.guidance_range) if args.guidance_range else None, methods=methods,
                           train=train, time_limit=args.time_limit)
    check_target(out / "config.json", args.overwrite)
    teacher = load(args.model, device=device(args.device))
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
