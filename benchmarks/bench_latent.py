"""Latent diffusion (Rombach et al. 2022) against diffusion on the mel itself, on spoken digits.

Three measurements, each skipped with a note when its model folder does not exist yet:

1. The autoencoder (``--autoencoder``, default the latent model's own, else ``runs/speech-ae/model``):
   natural-log-mel L1 between held-out real clips (FSDD takes 5-9: the manifest's ``valid`` split,
   which the recipes keep out of training) and their reconstruction through the autoencoder
   (posterior mean, no sampling), both clamped as a vocoder sees them; beside it the L1 of the
   trivial reconstruction "every frame is the per-bin mean" as a scale, and the compression
   (numbers per second of audio in the mel and in the latent).
2. Sampling speed of the mel model (``--mel-model``, default the shipped ``speech``, or
   ``runs/gpu/speech-mel/export`` when the latent model is ``runs/gpu/speech-latent/export``) and the
   latent one (``--latent-model``, default ``runs/speech-latent/model``, else
   ``runs/gpu/speech-latent/export``) at the same sampler and steps:
   seconds per clip of the denoising loop alone (classifier-free guidance included) and of decoding
   (autoencoder decoder + Griffin-Lim for the latent model; Griffin-Lim for the mel one), median of
   repeats, both models timed side by side in this run.  The ratio mel / latent is the speed-up.
3. Quality, as ``audiodiff eval`` measures it (:func:`audiodiff.evaluation.evaluate`): N clips per model
   (prompts: the judge's ten digits in turn, the same seeds), Frechet distance of the speech judge's
   embeddings to the FSDD test clips, and prompt accuracy.

    .venv/bin/python benchmarks/bench_latent.py            # writes benchmarks/results/latent.md
    .venv/bin/python benchmarks/bench_latent.py --quick    # 20 clips; prints only

Nothing is asserted.  The two models need not have had the same training budget: the report
gives their parameter counts, and read the comparison with that in mind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

common.configure_environment()  # thread and OpenMP settings must be in the env before torch loads

import torch  # noqa: E402

import audiodiff  # noqa: E402
from audiodiff.audio import load_autoencoder  # noqa: E402
from audiodiff.training.autoencoder import reconstruction_l1  # noqa: E402
from audiodiff.data import read_manifest  # noqa: E402
from audiodiff.sampling import conditioned_denoiser, inference_sigmas, initial_noise, make_generators  # noqa: E402
from audiodiff.sampling import resolve_sampler, resolve_vocoder, run_sampler  # noqa: E402

from audiodiff.evaluation.evaluate import evaluate, select_reference  # noqa: E402
from audiodiff.evaluation.judge import load_clips, window_batch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "latent.md"
MANIFEST = common.REPO_ROOT / "data" / "speech" / "manifest.jsonl"
RUNS = common.REPO_ROOT / "runs"


def first_model(*candidates: Path) -> Path:
    """The first candidate folder holding a model, else the first candidate (reported as missing)."""
    return next((c for c in candidates if (c / "config.json").is_file()), candidates[0])


# the recipe's folder, else what `tools/train_shipped.py run` exports; the GPU run's two speech
# models had the same budget, so its mel model is the fair partner of its latent one
GPU_LATENT, GPU_MEL = RUNS / "gpu" / "speech-latent" / "export", RUNS / "gpu" / "speech-mel" / "export"
LATENT_MODEL = first_model(RUNS / "speech-latent" / "model", GPU_LATENT)
AUTOENCODER = RUNS / "speech-ae" / "model"
MEL_MODEL = str(GPU_MEL) if LATENT_MODEL == GPU_LATENT and (GPU_MEL / "config.json").is_file() else "speech"


@dataclass(frozen=True)
class Settings:
    """What a run measures; ``--quick`` shrinks it."""

    recon_clips: int = 300
    num_samples: int = 200
    speed_batch: int = 10
    speed_repeats: int = 5
    steps: int | None = None  # None: the mel model's default
    sampler: str | None = None  # None: the mel model's default
    batch_size: int = 25
    seed: int = 0


QUICK = Settings(recon_clips=20, num_samples=20, speed_repeats=2)


# -- inputs ------------------------------------------------------------------------------------
def held_out_waves(manifest: Path, count: int, sample_rate: int, seconds: float) -> torch.Tensor:
    """``(N, 1, S)`` held-out clips (``valid`` split, else ``test``), evenly spread, cut or padded to ``seconds``."""
    items = read_manifest(manifest, split="valid") or read_manifest(manifest, split="test")
    items = select_reference(items, count)
    return window_batch(load_clips([item.path for item in items], sample_rate), round(seconds * sample_rate))


def load_if_there(path: str | Path, what: str, hint: str, notes: list[str]):
    """The model at ``path``, or ``None`` with a note saying how to make it."""
    try:
        return audiodiff.load(path).eval()
    except audiodiff.ModelLoadError as exc:
        notes.append(f"{what} skipped: {exc}{'; ' + hint if hint else ''}")
        return None


# -- 1. the autoencoder ---------------------------------------------------------------------------
def autoencoder_rows(ae, waves: torch.Tensor) -> list[list[str]]:
    """Reconstruction L1 against the per-bin-mean baseline, and the compression."""
    mel = ae.mel
    with torch.no_grad():
        log_mel = mel.to_log_mel(mel.encode(waves))  # (N, n_mels, T), clamped as a vocoder sees it
        baseline = float((log_mel - mel.mean[:, None]).abs().mean())
    l1 = reconstruction_l1(ae, waves)
    c, h = ae.latent_shape_per_frame
    per_second_mel = mel.n_mels * mel.sample_rate / mel.hop_length
    per_second_latent = c * h * mel.sample_rate / (mel.hop_length * ae.time_factor)
    return [["autoencoder log-mel L1 (natural log)", f"{l1:.3f}"],
            ["per-bin-mean baseline L1 (same clips)", f"{baseline:.3f}"],
            ["L1 / baseline", f"{l1 / baseline:.2f}"],
            ["numbers per second: mel -> latent",
             f"{per_second_mel:.0f} -> {per_second_latent:.0f} ({per_second_mel / per_second_latent:.1f}x fewer)"],
            ["autoencoder parameters", f"{sum(p.numel() for p in ae.parameters()) / 1e6:.2f} M"]]


# -- 2. speed -------------------------------------------------------------------------------------
def speed(model, settings: Settings, prompts: list[str] | None) -> dict[str, float]:
    """Median seconds per clip of the denoising loop and of decoding, for a batch of ``speed_batch`` clips."""
    n = settings.speed_batch
    sampler = resolve_sampler(settings.sampler, model)
    sigmas = inference_sigmas(model, settings.steps)
    vocoder = resolve_vocoder(model)
    generators = make_generators(range(n))
    frames = model.representation.frames_for(model.seconds)
    clip_prompts = prompts[:n] if prompts and model.is_conditional else [""] * n
    with torch.inference_mode():
        denoise_fn = conditioned_denoiser(model, clip_prompts, None, float(model.config["guidance_scale"]))

    def sample() -> torch.Tensor:
        x = initial_noise(model, frames, float(sigmas[0]), generators).to(model.device)
        return run_sampler(model, x, sigmas, sampler, generators, None, denoise_fn)

    x = sample()
    loop = common.time_call(sample, repeats=settings.speed_repeats)
    with torch.inference_mode():
        decode = common.time_call(lambda: model.decode(x, vocoder), repeats=settings.speed_repeats)
    return {"loop": loop.median / n, "decode": decode.median / n, "steps": len(sigmas) - 1}


# -- 3. quality -----------------------------------------------------------------------------------
def quality(model, reference, settings: Settings) -> dict[str, float | None]:
    prompts = "labels" if model.is_conditional else None
    report = evaluate(model, reference, settings.num_samples, prompts=prompts, steps=settings.steps,
                      sampler=settings.sampler, seed=settings.seed, batch_size=settings.batch_size)
    gen = report["generated"]
    return {"fd": gen["frechet_distance"], "accuracy": gen.get("prompt_accuracy"),
            "generate": report["timing"]["generate"] / settings.num_samples,
            "halves": report["reference"].get("frechet_distance_halves")}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def run(mel_name: str, latent_path: Path, ae_path: Path, settings: Settings, quick: bool) -> str:
    notes: list[str] = []
    mel_model = load_if_there(mel_name, "the mel model", "", notes)
    latent = load_if_there(latent_path, "the latent model", "train it with python recipes/speech/train.py "
                           "model/representation=latent run_dir=runs/speech-latent", notes)
    if settings.steps is None and mel_model is not None:
        settings = replace(settings, steps=int(mel_model.config["steps"]))
    if settings.sampler is None and mel_model is not None:
        settings = replace(settings, sampler=mel_model.config["sampler"]["name"])
    parts = []

    ae, ae_source = None, None
    if latent is not None and latent.config["representation"]["name"] == "latent":
        ae, ae_source = latent.representation.autoencoder, f"the latent model's ({common.repo_relative(latent_path)})"
    elif ae_path.is_dir():
        ae, ae_source = load_autoencoder(ae_path), str(ae_path)
    else:
        notes.append(f"the autoencoder reconstruction skipped: no autoencoder at {ae_path}; "
                     "train it with python recipes/speech/train_autoencoder.py")
    if ae is not None:
        waves = held_out_waves(MANIFEST, settings.recon_clips, ae.mel.sample_rate, 1.0)
        parts += [f"## 1. Autoencoder reconstruction ({ae_source}; {len(waves)} held-out FSDD clips of 1 s)", "",
                  common.markdown_table(["measure", "value"], autoencoder_rows(ae, waves)), ""]
        print(f"[{time.strftime('%H:%M:%S')}] autoencoder measured", file=sys.stderr, flush=True)

    models = {name: m for name, m in (("mel", mel_model), ("latent", latent)) if m is not None}
    if len(models) == 2:
        prompts = mel_model.demo_prompts(settings.speed_batch)
        timings = {name: speed(m, settings, prompts) for name, m in models.items()}
        reference = read_manifest(MANIFEST, split="test")
        scores = {name: quality(m, reference, settings) for name, m in models.items()}
        rows = [[name, f"`{src}`", f"{m.num_parameters() / 1e6:.2f} M", "x".join(map(str, m.sample_shape(
                    m.representation.frames_for(m.seconds)))), f"{timings[name]['loop']:.3f}",
                 f"{timings[name]['decode']:.3f}", f"{scores[name]['generate']:.3f}", f"{scores[name]['fd']:.2f}",
                 pct(scores[name]["accuracy"])]
                for (name, m), src in zip(models.items(), map(common.repo_relative, (mel_name, latent_path)))]
        ratio = timings["mel"]["loop"] / timings["latent"]["loop"]
        parts += [f"## 2-3. Mel vs latent diffusion ({settings.sampler}, {settings.steps} steps, the models' "
                  f"guidance; {settings.num_samples} clips each for quality)", "",
                  common.markdown_table(["model", "folder", "parameters (all)", "sample shape",
                                         "denoising s/clip", "decoding s/clip", "generate s/clip (eval)",
                                         "Frechet distance", "prompt accuracy"], rows), "",
                  f"**Sampling speed-up of the latent model (denoising loop, mel / latent): {ratio:.2f}x.**", ""]
        halves = scores["mel"]["halves"]
        if halves is not None:
            parts += [f"Floor of the Frechet distance (two halves of the test clips): {halves:.2f}.", ""]
    if notes:
        parts += ["## Skipped", ""] + [f"- {n}" for n in notes] + [""]
    if quick:
        parts += [f"`--quick`: {settings.recon_clips} clips for the autoencoder, {settings.num_samples} generated "
                  f"clips per model, {settings.speed_repeats} timed repeats: read only large differences."]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mel-model", default=MEL_MODEL,
                        help="mel model name or folder (default: runs/gpu/speech-mel/export beside a latent model "
                             "from runs/gpu, else the shipped 'speech')")
    parser.add_argument("--latent-model", type=Path, default=LATENT_MODEL,
                        help=f"latent model folder (default: {LATENT_MODEL.relative_to(common.REPO_ROOT)})")
    parser.add_argument("--autoencoder", type=Path, default=AUTOENCODER,
                        help="autoencoder folder when there is no latent model "
                             f"(default: {AUTOENCODER.relative_to(common.REPO_ROOT)})")
    parser.add_argument("--quick", action="store_true", help="20 clips, 2 timed repeats; prints only")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the mel model's)")
    parser.add_argument("--sampler", default=None, help="sampler name (default: the mel model's)")
    parser.add_argument("--num-samples", type=int, default=None, help="clips per model for quality (default 200)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown file to write (default: {RESULTS.relative_to(common.REPO_ROOT)} "
                             "for a full run, none with --quick)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    settings = replace(settings, steps=args.steps, sampler=args.sampler,
                       num_samples=args.num_samples or settings.num_samples)
    common.setup_threads()
    load_before = os.getloadavg()
    start = time.perf_counter()
    body = run(args.mel_model, args.latent_model, args.autoencoder, settings, args.quick)
    header = common.report_header("audiodiff latent diffusion benchmark" + (" (--quick)" if args.quick else ""),
                                  time.perf_counter() - start)
    header += f"\n- load average (1 min) before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
    common.emit_report(header + "\n\n" + body, args.out or (None if args.quick else RESULTS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
