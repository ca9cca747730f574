"""``audiodiff eval`` (generated clips scored against real ones by a judge), ``audiodiff likelihood`` and
``audiodiff variance`` (a model's analytic reverse variance)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import checks
from ..diffusion.schedules import SPACINGS
from ..errors import ConfigError
from ..files import check_out_dir
from .options import (DEVICE_HELP, MODEL_HELP, OVERWRITE_HELP, VOCODER_HELP, add_lora_option, device, positive_int,
                      progress, sampler_spec)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``eval``, ``likelihood`` and ``variance`` sub-commands."""
    ev = sub.add_parser("eval", help="score generated clips against real ones with a judge classifier "
                                     "(Frechet distance, accuracy, IS, mIS, AM, NDB; pitch accuracy for note "
                                     "captions; caption retrieval for judges of captions)")
    ev.add_argument("--model", "-m", required=True, help=MODEL_HELP)
    ev.add_argument("--reference", "-r", required=True, help="manifest (JSONL) of real clips")
    ev.add_argument("--split", default="test", choices=["train", "valid", "test", "all"],
                    help="split of the reference manifest (default: test)")
    ev.add_argument("--num-samples", "-n", type=positive_int, default=100, help="clips to generate in all (default 100)")
    ev.add_argument("--prompts", nargs="+", default=None, metavar="PROMPT",
                    help="prompts used in turn; `--prompts labels` uses each of the judge's labels in turn, "
                         "`--prompts captions` the reference clips' captions (default: unconditional)")
    ev.add_argument("--judge", default=None,
                    help="judge folder or shipped judge name (default: the shipped judge that knows the model's labels, "
                         "else the one named like the model: music, sfx)")
    ev.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    ev.add_argument("--sampler", default=None, help="sampler name (default: the model's)")
    ev.add_argument("--sampler-arg", type=checks.key_value_arg, action="append", default=[], metavar="KEY=VALUE",
                    help="sampler option, e.g. variance=analytic (repeatable)")
    ev.add_argument("--spacing", choices=list(SPACINGS), default=None)
    ev.add_argument("--sigma-min", type=float, default=None,
                    help="last noise level before the final step to 0 (default: the model's)")
    ev.add_argument("--guidance-scale", type=float, default=None)
    ev.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    ev.add_argument("--seed", type=int, default=0, help="clip i uses seed + i (default 0)")
    ev.add_argument("--batch-size", type=positive_int, default=16)
    ev.add_argument("--max-reference", type=positive_int, default=None, help="use at most this many reference clips")
    ev.add_argument("--resynthesize", action="store_true",
                    help="also score the reference clips passed through the model's mel and vocoder")
    ev.add_argument("--out", "-o", required=True, help="folder for report.json and report.md")
    ev.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    ev.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    ev.add_argument("--device", default=None, help=DEVICE_HELP)
    add_lora_option(ev)
    ev.set_defaults(func=cmd_eval)

    lik = sub.add_parser("likelihood", help="bits per dimension of audio files under a model")
    lik.add_argument("files", nargs="+", metavar="FILE", help="audio files (each cropped or zero-padded to the model's window)")
    lik.add_argument("--model", "-m", required=True, help=MODEL_HELP)
    lik.add_argument("--method", choices=["vlb", "ode"], default="vlb",
                     help="vlb: variational bound, an upper bound on the NLL (default); ode: probability-flow ODE")
    lik.add_argument("--steps", type=positive_int, default=None,
                     help="vlb: timesteps sampled (default: all); ode: Heun steps (default 64)")
    lik.add_argument("--bin-width", type=float, default=None,
                     help="bin width in normalised feature units (default 2/255)")
    lik.add_argument("--variance", choices=["posterior", "beta", "analytic", "learned"], default="posterior",
                     help="vlb: the reverse step's variance (default posterior, beta_tilde); analytic needs the "
                          "model's table (`audiodiff variance`), learned a model trained with it")
    lik.add_argument("--prompt", "-p", default=None, help="condition on this prompt (default: the null condition)")
    lik.add_argument("--seed", type=int, default=0)
    lik.add_argument("--batch-size", type=positive_int, default=8)
    lik.add_argument("--json", default="likelihood.json", help="where to write the results (default likelihood.json)")
    lik.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    lik.add_argument("--device", default=None, help=DEVICE_HELP)
    lik.set_defaults(func=cmd_likelihood)

    avar = sub.add_parser("variance", help="estimate a model's analytic reverse variance (Analytic-DPM) and save "
                                           "a copy of the model that carries it")
    avar.add_argument("--model", "-m", required=True, help="shipped model name, model folder or hf://org/repo")
    source = avar.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a manifest (JSONL) of real clips to estimate from")
    source.add_argument("--from-samples", action="store_true", help="estimate from the model's own samples instead")
    avar.add_argument("--split", default="train", help="manifest split to read (train, valid, test or all; default train)")
    avar.add_argument("--crop", choices=["start", "center", "random"], default="start",
                      help="where longer files are cut (default: start, as the recipes train)")
    avar.add_argument("--trim-db", type=float, default=None, help="trim silence quieter than this many dB below the peak")
    avar.add_argument("--loudness-db", type=float, default=None, help="normalise each file to this RMS in dBFS (e.g. -20)")
    avar.add_argument("--clips", type=positive_int, default=256, help="clips to average over (default 256)")
    avar.add_argument("--levels", type=positive_int, default=32, help="noise levels in the table (default 32)")
    avar.add_argument("--seed", type=int, default=0)
    avar.add_argument("--batch-size", type=positive_int, default=16)
    avar.add_argument("--out", required=True, help="the model folder to write (the model, plus its table)")
    avar.add_argument("--overwrite", action="store_true", help="replace --out's model if it exists")
    avar.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    avar.set_defaults(func=cmd_variance)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..hub import load
    from ..evaluation import load_judge
    from ..evaluation.evaluate import CAPTION_PROMPTS, LABEL_PROMPTS, evaluate_manifest
    from ..evaluation.report import write_report

    from ..files import check_target

    out = check_out_dir(args.out)
    for name in ("report.json", "report.md"):  # before the long evaluation, not after it
        check_target(out / name, args.overwrite)
    judge = load_judge(args.judge) if args.judge is not None else None
    model = load(args.model, device=device(args.device), lora=args.lora)
    prompts = args.prompts[0] if args.prompts in ([LABEL_PROMPTS], [CAPTION_PROMPTS]) else args.prompts
    bar, callback = progress(args.quiet)
    try:
        split = None if args.split == "all" else args.split
        report = evaluate_manifest(model, args.reference, args.num_samples, split, judge=judge, prompts=prompts,
                                   steps=args.steps, seed=args.seed, sampler=sampler_spec(args, model),
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
    from ..hub import load
    from ..likelihood import DEFAULT_BIN_WIDTH, format_table, likelihood_of_files

    from ..files import check_target, write_json

    out = check_target(args.json, args.overwrite)
    if not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: folder {out.parent} does not exist")
    model = load(args.model, device=device(args.device))
    bin_width = DEFAULT_BIN_WIDTH if args.bin_width is None else args.bin_width
    results = likelihood_of_files(model, args.files, method=args.method, steps=args.steps, bin_width=bin_width,
                                  seed=args.seed, batch_size=args.batch_size, prompt=args.prompt,
                                  variance=args.variance)
    print(format_table(results))
    write_json(out, results, args.overwrite)
    print(f"wrote {out}")
    return 0


def cmd_variance(args: argparse.Namespace) -> int:
    import torch

    from ..files import check_target
    from ..hub import load
    from ..variance import data_batches, estimate_eps_sq, sample_batches, stored_dtype, with_analytic_variance

    out = Path(args.out)
    check_target(out / "config.json", args.overwrite)
    model = load(args.model, device=device(args.device))
    generator = torch.Generator().manual_seed(checks.seed(args.seed))
    if args.from_samples:
        batches, source = sample_batches(model, args.clips, args.batch_size, args.seed), "samples"
    else:
        from ..data import AudioDataset, read_manifest

        items = read_manifest(args.data, split=None if args.split == "all" else args.split)
        dataset = AudioDataset(items, sample_rate=model.sample_rate, seconds=model.seconds, crop=args.crop,
                               trim_silence_db=args.trim_db, loudness_normalize=args.loudness_db)
        batches, source = data_batches(model, dataset, args.clips, args.batch_size), f"data:{args.split}"
    table, clips = estimate_eps_sq(model, batches, args.levels, generator)
    with_analytic_variance(model, table, source, clips).save(out, stored_dtype(getattr(model, "source", None)))
    print(f"Gamma = E||eps||^2/d from {clips} clips ({source}): " +
          ", ".join(f"{v:.3f} @ sigma {s:.3g}" for s, v in list(zip(table.sigmas, table.values))[::max(1, args.levels // 6)]))
    print(f"wrote {out} (use it with --sampler ddpm --sampler-arg variance=analytic)")
    return 0
