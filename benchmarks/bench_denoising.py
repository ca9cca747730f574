"""Why a model gets worse with more sampler steps: the denoiser's error per noise level, and what it leaves.

    .venv/bin/python recipes/speech/prepare.py
    .venv/bin/python benchmarks/bench_denoising.py                        # the shipped speech model
    .venv/bin/python benchmarks/bench_denoising.py --model speech --model runs/speech-edm/model
    .venv/bin/python benchmarks/bench_denoising.py --quick                # 32 clips; print only

For each model, on clips of the recipe's train and test splits (the recipe's own crops, trimming
and loudness), at noise levels ``sigma`` from 0.003 to 30:

- ``mse / sigma^2``: the denoiser's mean squared error against the clean features divided by the
  error of returning the noisy input.  1 means it removes none of the noise; the ideal denoiser of
  these data is far below 1 at every level, because half the features of a padded clip are the
  log floor exactly.
- the share of training draws that fall in each band, for the model's ``train_sigmas``.

Then what the samplers leave: for generated features (guidance at the model's default) the mean
frame-to-frame change ("roughness", real clips' in the first row), the share of features at the
data's floor, and the share below it (which real features never are).  A deterministic sampler
follows ``dx/dsigma = (x - D(x)) / sigma``; if ``D`` removes only a fraction ``1 - r`` of the noise,
the noise left shrinks like ``sigma^(1-r)`` instead of ``sigma``, so a denoiser with ``r`` near 1 at
low sigma carries the noise to the end, and more, smaller steps only follow that trajectory more
faithfully.  Few DDPM steps jump from sigma ~0.3 to the denoised estimate and never ask it.

The noise carried to the end shows as level too (issue #21's overshoot): the generated features
have the real clips' mean level but a wider spread over mel bins, so their loudest bins sit far
above any real clip's.  The level columns give the median over clips of the per-clip peak of the
natural-log mel and the mean spread (std) over mel bins.  The last table sends real test clips
through the model (SDEdit, Meng et al. 2022): noised to ``sigma``, then DPM-Solver++(2M) on the
model's 100-step ladder down to 0 with the conditional denoiser.  A denoiser that removes what was
added returns clips at the real peak; one that leaves noise in returns louder peaks, the more the
higher the start.

    .venv/bin/python benchmarks/bench_denoising.py --model sfx --model music --out benchmarks/results/overshoot.md
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from common import REPO_ROOT, benchmark_main, markdown_table, repeated_option

RESULTS = REPO_ROOT / "benchmarks" / "results" / "denoising.md"
SIGMAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
SAMPLERS = (("ddpm", 5), ("ddim", 10), ("dpmpp_2m", 25), ("dpmpp_2m", 100))
#: the noise levels the SDEdit rows start from
SDEDIT_SIGMAS = (0.3, 1.0, 4.0)
#: the recipe's data settings (recipes/<domain>/conf/train.yaml): every recipe crops at the start,
#: trims silence 40 dB below the peak and normalises loudness to -20 dBFS
DATA = {"speech": "data/speech/manifest.jsonl", "music": "data/music/manifest.jsonl", "sfx": "data/sfx/manifest.jsonl"}
FULL = {"clips": 200, "generated": 100, "models": ["speech"]}
QUICK = {"clips": 32, "generated": 16, "models": ["speech"]}


def clean_features(model: Any, manifest: Path, split: str, n: int) -> tuple[torch.Tensor, list[str]]:
    """``(n, *sample_shape)`` clean features of ``n`` clips of ``split`` drawn with a fixed seed, and their prompts."""
    from audiodiff.data import AudioDataset, read_manifest

    items = read_manifest(manifest, split=split)
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(0))[:n].tolist()
    data = AudioDataset([items[i] for i in order], sample_rate=model.sample_rate, seconds=model.seconds,
                        crop="start", loudness_normalize=-20, trim_silence_db=40)
    rows = [data[i] for i in range(len(data))]
    source = next((c.source for c in model.conditioners.values()), None)
    prompts = [str(r[source]) if source else "" for r in rows]
    with torch.inference_mode():
        return model.encode(torch.stack([r["waveform"] for r in rows])), prompts


def denoising_ratio(model: Any, x0: torch.Tensor, prompts: list[str], sigma: float, batch: int = 50) -> float:
    """``mean((D(x0 + sigma eps) - x0)^2) / sigma^2`` with the conditional denoiser and a fixed noise draw."""
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(x0), batch):
            clean, eps = x0[i:i + batch], noise[i:i + batch]
            inputs = model.encode_prompts(prompts[i:i + batch]) if model.is_conditional else {}
            s = torch.full((len(clean),), sigma)
            total += (model.denoise(clean + sigma * eps, s, **inputs) - clean).pow(2).sum().item()
    return total / x0.numel() / sigma**2


def training_share(schedule: Any, lo: float, hi: float, draws: int = 200_000) -> float:
    """Share of the schedule's training noise levels in ``[lo, hi)``."""
    sigmas = schedule.sample_sigmas(draws, torch.Generator().manual_seed(0))
    return ((sigmas >= lo) & (sigmas < hi)).float().mean().item()


def texture(model: Any, x: torch.Tensor, floor: float) -> tuple[float, ...]:
    """Mean |frame-to-frame change|, share of features at the floor (within 0.02) and below it (by > 0.05),
    and :func:`level`."""
    rough = (x[..., 1:] - x[..., :-1]).abs().mean().item()
    return (rough, (x - floor).abs().le(0.02).float().mean().item(), (x < floor - 0.05).float().mean().item(),
            *level(model, x))


def level(model: Any, x: torch.Tensor) -> tuple[float, float]:
    """Median over clips of the per-clip peak of the natural-log mel, and its mean std over mel bins."""
    with torch.inference_mode():
        log_mel = model.representation.to_log_mel(model.from_net_layout(x)).float()  # (B, n_mels, frames)
    return log_mel.amax(dim=(1, 2)).median().item(), log_mel.std(dim=1).mean().item()


def sdedit(model: Any, x0: torch.Tensor, prompts: list[str], sigma: float) -> torch.Tensor:
    """``x0`` noised to ``sigma`` (fixed draw), then DPM-Solver++(2M) down the model's 100-step ladder to 0."""
    from audiodiff.sampling import conditioned_denoiser, inference_sigmas, resolve_sampler, run_sampler

    ladder = inference_sigmas(model, 100, None, None)
    sigmas = torch.cat([torch.tensor([sigma]), ladder[ladder < sigma]])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        denoise_fn = conditioned_denoiser(model, prompts if model.is_conditional else [""] * len(prompts), None, 1.0)
        return run_sampler(model, x0 + sigma * noise, sigmas, resolve_sampler("dpmpp_2m", model), None, None, denoise_fn)


def generated(model: Any, prompts: list[str], frames: int, spec: str, steps: int, seed: int) -> torch.Tensor:
    """Features sampled by ``spec`` in ``steps`` steps at the model's default guidance."""
    from audiodiff.sampling import conditioned_denoiser, inference_sigmas, initial_noise, make_generators, resolve_sampler, run_sampler

    sampler, sigmas = resolve_sampler(spec, model), inference_sigmas(model, steps, None)
    generators = make_generators(list(range(seed, seed + len(prompts))))
    with torch.inference_mode():
        denoise_fn = conditioned_denoiser(model, prompts if model.is_conditional else [""] * len(prompts), None,
                                          float(model.config["guidance_scale"]), 0.0)
        x = initial_noise(model, frames, float(sigmas[0]), generators).to(model.device)
        return run_sampler(model, x, sigmas, sampler, generators, None, denoise_fn)


def model_report(name: str, settings: dict) -> str:
    import audiodiff

    model = audiodiff.load(name).float().eval()
    domain = next((d for d in DATA if d in Path(str(name)).name or d == model.config.get("name")), "speech")
    manifest = REPO_ROOT / DATA[domain]
    train, train_prompts = clean_features(model, manifest, "train", settings["clips"])
    test, test_prompts = clean_features(model, manifest, "test", settings["clips"])
    edges = (0.0,) + tuple((a * b) ** 0.5 for a, b in zip(SIGMAS, SIGMAS[1:])) + (float("inf"),)
    rows = []
    for i, sigma in enumerate(SIGMAS):
        rows.append([f"{sigma:g}", f"{denoising_ratio(model, train, train_prompts, sigma):.3f}",
                     f"{denoising_ratio(model, test, test_prompts, sigma):.3f}",
                     f"{training_share(model.schedule, edges[i], edges[i + 1]):.3f}"])
    floor = float(test.amin())
    real = texture(model, test, floor)
    tex_rows = [["real test clips"] + [f"{v:.3f}" for v in real[:3]] + [f"{v:.2f}" for v in real[3:]]]
    n = settings["generated"]
    prompts = [test_prompts[i % len(test_prompts)] for i in range(n)]
    for spec, steps in SAMPLERS:
        cells = [texture(model, generated(model, prompts, test.shape[-1], spec, steps, seed), floor) for seed in (0, 1)]
        tex_rows.append([f"{spec} {steps} steps"] + [f"{cells[0][k]:.3f} / {cells[1][k]:.3f}" for k in range(3)]
                        + [f"{cells[0][k]:.2f} / {cells[1][k]:.2f}" for k in range(3, 5)])
    real_n = level(model, test[:n])
    sde_rows = [["0 (the clips themselves)", f"{real_n[0]:.2f}", "+0.00", f"{real_n[1]:.2f}"]]
    for sigma in SDEDIT_SIGMAS:
        peak, spread = level(model, sdedit(model, test[:n], test_prompts[:n], sigma))
        sde_rows.append([f"{sigma:g}", f"{peak:.2f}", f"{peak - real_n[0]:+.2f}", f"{spread:.2f}"])
    schedule = model.config["schedule"]
    return "\n\n".join([
        f"## `{name}`",
        f"{model.config['net']['name']}, {model.num_parameters():,} parameters, {model.config['preconditioning']['name']}"
        f"-prediction, {schedule['name']} schedule, training noise levels: {schedule.get('train_sigmas', 'uniform')}"
        + (f" (P_mean {schedule['p_mean']}, P_std {schedule['p_std']})" if schedule.get("train_sigmas") == "lognormal" else "")
        + f"; {settings['clips']} train and {settings['clips']} test clips of `{DATA[domain]}`.",
        markdown_table(["sigma", "mse / sigma^2, train clips", "test clips", "share of training draws near this sigma"], rows),
        f"Generated features ({n} clips per seed, seeds 0 / 1, guidance {model.config['guidance_scale']}); "
        f"the data's floor is {floor:.3f} in normalised units.",
        markdown_table(["features", "roughness (mean abs frame-to-frame change)", "share at the floor", "share below the floor",
                        "per-clip peak of the log-mel (median)", "std over mel bins"], tex_rows),
        f"Real test clips sent through the model ({n} clips, guidance 1): noised to sigma, then DPM-Solver++(2M) to 0.",
        markdown_table(["starting sigma", "per-clip peak of the log-mel (median)", "against the clips'", "std over mel bins"],
                       sde_rows),
    ])


def run(settings: dict) -> str:
    return "\n\n".join(model_report(name, settings) for name in settings["models"])


def main(argv: list[str] | None = None) -> int:
    full, quick = dict(FULL), dict(QUICK)
    argv = repeated_option(argv, "--model", (full, quick), "models")
    return benchmark_main("Denoising error per noise level, and what samplers leave", RESULTS, run, full, quick, argv,
                          description=__doc__.splitlines()[0], quick_help="32 clips, 16 generated per seed; print only")


if __name__ == "__main__":
    sys.exit(main())
