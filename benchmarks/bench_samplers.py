"""Sampler quality against steps on a speech model: Frechet distance, prompt accuracy and time per clip.

For every sampler (``ddim``, ``ddpm``, ``euler_ancestral``, ``heun``, ``dpmpp_2m``, ``dpmpp_2m_sde``,
``sde``, ``langevin``, with their registry defaults) at 5, 10, 20, 50, 100 and 200 steps (and 1000
for ``ddpm``), N clips are generated with :func:`audiodiff.generate` (the model's guidance scale,
spacing and vocoder) from the same prompts (the ten digit labels in turn) and the same seeds
(clip ``i`` uses seed ``seed + i``) in every cell.  The shipped speech judge
(``audiodiff.evaluation.load_judge("speech")``) embeds and classifies them, as
:func:`audiodiff.evaluation.evaluate` does (the SC09 protocol of DiffWave, Kong et al. 2021):

- the Frechet distance of the judge's embeddings to those of the FSDD test clips (takes 0-4, 300
  clips; Heusel et al. 2017);
- prompt accuracy: how often the judge hears the digit that was asked for;
- wall time per clip of ``generate`` (sampling, guidance, the model's vocoder; not the judge);
- NFE: denoiser calls per clip, counted with a forward hook on the net (each call is one batched
  pair of conditional and unconditional passes for classifier-free guidance).

With few clips the Frechet distance is biased upwards, so the report also gives floors at the same
number of clips: the distance between two disjoint sets of N reference clips (mean of 10 random
splits), and of N real held-out clips (FSDD takes 5-9, which the speech recipe keeps out of
training; 10 random draws, whose range shows the noise of the estimate) and N of them resynthesized
through the model's mel and vocoder, to the reference.

Run from the repository root::

    .venv/bin/python benchmarks/bench_samplers.py           # full run (about 1 hour on 2 cores), writes benchmarks/results/samplers.md
    .venv/bin/python benchmarks/bench_samplers.py --quick   # 20 clips, 5-50 steps, 6 samplers; prints only

Nothing is asserted; the report states whether DPM-Solver++(2M) at 10 steps comes within 10% of
DDIM at 200 steps on the Frechet distance.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

THREADS = int(os.environ.get("AUDIODIFF_BENCH_THREADS", common.DEFAULT_THREADS))
common.configure_environment(THREADS)  # thread and OpenMP settings must be in the env before torch loads

import numpy as np  # noqa: E402
import torch  # noqa: E402

import audiodiff  # noqa: E402
from audiodiff.data import prepare_fsdd  # noqa: E402
from audiodiff.metrics import frechet_distance  # noqa: E402
from audiodiff.evaluation import judge_clips, load_judge  # noqa: E402
from audiodiff.evaluation.evaluate import accuracy, generate_waves, model_labels, resynthesize_waves, select_reference  # noqa: E402
from audiodiff.evaluation.judge import load_clips, window_batch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "samplers.md"
SAMPLERS = ("ddim", "ddpm", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "sde", "langevin")
STEPS = (5, 10, 20, 50, 100, 200)
#: the issue's aim: (sampler, steps) that should come within AIM_TOLERANCE of the (sampler, steps) baseline
AIM, AIM_BASELINE, AIM_TOLERANCE = ("dpmpp_2m", 10), ("ddim", 200), 0.10
OTHER_WORK = ("recipes/speech/train.py", "bench_training.py")  # processes that would share the cores


@dataclass(frozen=True)
class Settings:
    """What a run measures; ``--quick`` shrinks it."""

    num_samples: int = 50  # 100 takes about 80 min on 2 cores; 50 keeps `make bench` near an hour
    samplers: tuple[str, ...] = SAMPLERS
    steps: tuple[int, ...] = STEPS
    extra_cells: tuple[tuple[str, int], ...] = (("ddpm", 1000),)
    aim: bool = True  # add the aim's two cells if the grid lacks them
    batch_size: int = 25
    seed: int = 0
    floor_splits: int = 10
    guidance_scale: float | None = None  # None: the model's
    spacing: str | None = None  # None: the model's
    sigma_min: float | None = None  # None: the model's

    def cells(self) -> list[tuple[str, int]]:
        """``(sampler, steps)`` in run order: the grid, the extra cells, then the aim's cells."""
        cells = [(s, n) for s in self.samplers for n in self.steps]
        cells += [c for c in self.extra_cells if c[0] in self.samplers]
        if self.aim:
            cells += [AIM, AIM_BASELINE]
        return list(dict.fromkeys(cells))


QUICK = Settings(num_samples=20, samplers=("ddim", "ddpm", "heun", "dpmpp_2m", "dpmpp_2m_sde", "sde"),
                 steps=(5, 10, 20, 50), extra_cells=())


def expected_nfe(sampler: str, steps: int) -> int | None:
    """Denoiser calls per clip of the registry defaults (``None``: unknown sampler)."""
    if sampler in ("ddim", "ddpm", "euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde"):
        return steps
    if sampler == "heun":  # 2 per step, Euler on the last
        return 2 * steps - 1
    if sampler == "sde":  # predictor + 1 corrector per step, the last returns the denoised estimate
        return 2 * steps - 1
    if sampler == "langevin":  # 5 Langevin steps per level, one final denoising call
        return 5 * steps + 1
    return None


# -- inputs -----------------------------------------------------------------------------------
def default_model() -> str:
    """The shipped ``speech`` model if there is one, else the speech recipe's run folder."""
    return "speech" if "speech" in audiodiff.list_models() else str(common.REPO_ROOT / "runs" / "speech" / "model")


class CallCounter:
    """A forward hook that counts the calls of a module."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self._handle = module.register_forward_hook(self._count)

    def _count(self, module, args, output) -> None:
        self.calls += 1

    def remove(self) -> None:
        self._handle.remove()


@dataclass
class Reference:
    """The judge's view of the real clips."""

    emb: torch.Tensor  # (R, D) test clips
    accuracy: float | None
    floors: dict[str, dict] = field(default_factory=dict)


def judge_files(judge, items) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings and probabilities of manifest items' files, each cut or padded to the judge's window."""
    waves = window_batch(load_clips([item.path for item in items], judge.sample_rate), judge.num_samples)
    return judge_clips(judge, waves)


def spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def halves_floor(emb: torch.Tensor, size: int, splits: int, seed: int) -> dict:
    """Frechet distance between two disjoint random sets of ``size`` rows of ``emb``, over ``splits`` splits."""
    size = min(size, len(emb) // 2)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(splits):
        perm = torch.as_tensor(rng.permutation(len(emb)))
        values.append(frechet_distance(emb[perm[:size]], emb[perm[size : 2 * size]]))
    return {"size": size, **spread(values)}


def subset_floor(emb: torch.Tensor, ref_emb: torch.Tensor, size: int, splits: int, seed: int) -> dict:
    """Frechet distance of random sets of ``size`` rows of ``emb`` to all of ``ref_emb``, over ``splits`` draws."""
    size = min(size, len(emb))
    rng = np.random.default_rng(seed)
    values = [frechet_distance(emb[torch.as_tensor(rng.choice(len(emb), size, replace=False))], ref_emb)
              for _ in range(splits)]
    return {"size": size, **spread(values)}


def reference(model, judge, settings: Settings) -> Reference:
    """Judge the FSDD test clips, and the floors at ``settings.num_samples`` clips."""
    fsdd = common.shared_data() / "fsdd"
    test = [item for item in prepare_fsdd(fsdd) if item.split == "test"]
    emb, probs = judge_files(judge, test)
    ref = Reference(emb, accuracy(probs, [item.label for item in test], judge)[0])
    ref.floors["halves"] = halves_floor(emb, settings.num_samples, settings.floor_splits, settings.seed)
    valid = [item for item in prepare_fsdd(fsdd, valid_from_train=True) if item.split == "valid"]
    h_emb, h_probs = judge_files(judge, valid)
    ref.floors["held_out"] = {**subset_floor(h_emb, emb, settings.num_samples, settings.floor_splits, settings.seed),
                              "accuracy": accuracy(h_probs, [item.label for item in valid], judge)[0]}
    held_out = select_reference(valid, settings.num_samples)  # evenly spread over the (label-sorted) list
    labels = [item.label for item in held_out]
    r_emb, r_probs = judge_clips(judge, resynthesize_waves(model, [item.path for item in held_out]), model.sample_rate)
    ref.floors["resynthesized"] = {"size": len(held_out), "fd": frechet_distance(r_emb, emb),
                                   "accuracy": accuracy(r_probs, labels, judge)[0]}
    return ref


# -- one cell ---------------------------------------------------------------------------------
def run_cell(model, judge, ref: Reference, prompts: list[str], sampler: str, steps: int, settings: Settings) -> dict:
    """Generate the clips of one ``(sampler, steps)`` cell and score them."""
    counter = CallCounter(model.net)
    try:
        start = time.perf_counter()
        waves, _ = generate_waves(model, len(prompts), prompts, steps=steps, sampler=sampler, seed=settings.seed,
                                  batch_size=settings.batch_size, guidance_scale=settings.guidance_scale,
                                  spacing=settings.spacing, sigma_min=settings.sigma_min)
        seconds = time.perf_counter() - start
    finally:
        counter.remove()
    batches = math.ceil(len(prompts) / settings.batch_size)
    cell = {"sampler": sampler, "steps": steps, "seconds": seconds, "per_clip": seconds / len(prompts),
            "nfe": counter.calls / batches, "fd": None, "accuracy": None, "finite": bool(torch.isfinite(waves).all())}
    if cell["finite"]:
        emb, probs = judge_clips(judge, waves, model.sample_rate)
        cell["fd"] = frechet_distance(emb, ref.emb)
        cell["accuracy"] = accuracy(probs, prompts, judge)[0]
    return cell


# -- report -----------------------------------------------------------------------------------
def grid(cells: list[dict], key: str, fmt) -> str:
    """A sampler x steps markdown table of ``cell[key]`` formatted by ``fmt`` (``-``: not run)."""
    samplers = list(dict.fromkeys(c["sampler"] for c in cells))
    steps = sorted({c["steps"] for c in cells})
    index = {(c["sampler"], c["steps"]): c for c in cells}
    rows = [[f"`{s}`"] + [fmt(index[(s, n)]) if (s, n) in index else "-" for n in steps] for s in samplers]
    return common.markdown_table(["sampler \\ steps", *map(str, steps)], rows)


def fd_text(c: dict) -> str:
    return f"{c['fd']:.2f}" if c["finite"] else "diverged (non-finite audio)"


def acc_text(c: dict) -> str:
    return f"{100 * c['accuracy']:.0f}%" if c["finite"] else "-"


def aim_line(cells: list[dict]) -> str:
    """The issue's aim, answered from the cells (or why it cannot be)."""
    index = {(c["sampler"], c["steps"]): c for c in cells}
    label = "DPM-Solver++(2M) at 10 steps within 10% of DDIM at 200 on Frechet distance"
    aim, base = index.get(AIM), index.get(AIM_BASELINE)
    if aim is None or base is None or aim["fd"] is None or base["fd"] is None:
        return f"{label}: not measured in this run"
    met = aim["fd"] <= (1 + AIM_TOLERANCE) * base["fd"]
    return f"{label}: {'yes' if met else 'no'} ({aim['fd']:.2f} vs {base['fd']:.2f})"


def vocoder_label(model) -> str:
    """The vocoder ``generate`` uses by default: the model's trained one, else its config's."""
    if model.trained_vocoder is not None:
        return f"`{type(model.trained_vocoder).__name__.lower()}` (its trained `vocoder/`)"
    return f"`{model.config['vocoder']['name']}`"


def time_fit(cells: list[dict]) -> tuple[float, float] | None:
    """Least-squares ``seconds per clip = a + b * NFE`` over the cells: fixed cost ``a`` and cost per call ``b``."""
    if len({c["nfe"] for c in cells}) < 2:
        return None
    nfe = np.array([c["nfe"] for c in cells])
    per_clip = np.array([c["per_clip"] for c in cells])
    b, a = np.polyfit(nfe, per_clip, 1)
    return float(a), float(b)


def full_run_estimate(fit: tuple[float, float], setup_seconds: float) -> float:
    """Seconds a default full run would take on this machine, from the fit of this run."""
    full = Settings()
    a, b = fit
    generate = sum(full.num_samples * (a + b * expected_nfe(s, n)) for s, n in full.cells())
    return generate + setup_seconds


def report(model_name: str, model, judge, ref: Reference, cells: list[dict], settings: Settings,
           setup_seconds: float, quick: bool) -> str:
    floors = ref.floors
    halves, held, resyn = floors["halves"], floors["held_out"], floors["resynthesized"]
    n = settings.num_samples
    fit = time_fit([c for c in cells if c["finite"]])
    mismatched = [f"{c['sampler']}@{c['steps']}: {c['nfe']:g} (expected {expected_nfe(c['sampler'], c['steps'])})"
                  for c in cells if expected_nfe(c["sampler"], c["steps"]) not in (None, c["nfe"])]
    parts = [
        f"Model `{model_name}` ({model.num_parameters() / 1e6:.2f} M parameters, {model.sample_rate} Hz, "
        f"{model.seconds:g} s clips, guidance scale {settings.guidance_scale if settings.guidance_scale is not None else model.config['guidance_scale']}, "
        f"`{settings.spacing or model.config['spacing']}` spacing, ladder down to sigma "
        f"{settings.sigma_min or model.config.get('sigma_min') or 'the schedule minimum'} before the last step, "
        f"vocoder {vocoder_label(model)}). Judge `speech` "
        f"(`{common.repo_relative(getattr(judge, 'source', 'shipped'))}`). {n} clips per cell: prompts the ten digits in turn, clip i seed "
        f"{settings.seed} + i, the same in every cell; generated in batches of {settings.batch_size}. Reference: "
        f"{len(ref.emb)} FSDD test clips (takes 0-4); the judge's accuracy on them is "
        f"{100 * ref.accuracy:.1f}%.",
        "",
        f"**{aim_line(cells)}**",
        "",
        f"## Frechet distance to the FSDD test clips (judge embedding, {n} clips; lower is better)",
        "",
        grid(cells, "fd", fd_text),
        "",
        f"Floors at this sample size (the estimate is biased upwards with few clips, so compare against these, "
        f"not against 0):",
        "",
        common.markdown_table(["real clips", "clips", "Frechet distance", "judge accuracy"], [
            [f"two disjoint random sets of the test clips (mean of {settings.floor_splits} splits, min-max)",
             halves["size"], f"{halves['mean']:.2f} ({halves['min']:.2f}-{halves['max']:.2f})", "-"],
            [f"held-out real clips (FSDD takes 5-9, not trained on) vs the test clips (mean of {settings.floor_splits} "
             "random draws, min-max)", held["size"], f"{held['mean']:.2f} ({held['min']:.2f}-{held['max']:.2f})",
             f"{100 * held['accuracy']:.0f}%"],
            ["held-out clips evenly spread over the digits, resynthesized through the model's mel + vocoder, vs the "
             "test clips", resyn["size"], f"{resyn['fd']:.2f}", f"{100 * resyn['accuracy']:.0f}%"],
        ]),
        "",
        "The held-out rows are measured exactly like a generated cell (N clips against all test clips): their "
        "range is how much the distance of N clips moves with the choice of clips alone (the cells share prompts "
        "and seeds, so part of that noise is common to all of them). The resynthesized row is about the best a "
        "model of this representation and vocoder can score.",
        "",
        "## Prompt accuracy (the judge hears the digit asked for; higher is better)",
        "",
        grid(cells, "accuracy", acc_text),
        "",
        "## Wall time per clip (s) of `generate` (sampling with guidance + vocoder; judge excluded)",
        "",
        grid(cells, "per_clip", lambda c: f"{c['per_clip']:.3f}"),
        "",
        "## Denoiser calls per clip (NFE)",
        "",
        grid(cells, "nfe", lambda c: f"{c['nfe']:g}"),
        "",
        "Counted with a forward hook on the net; each call is one batch of conditional and unconditional rows "
        "(classifier-free guidance). `heun` costs 2 per step but the last (2n - 1), `sde` 1 + `corrector_steps` (1) "
        "per step but the last (2n - 1), `langevin` `n_steps_each` (5) per level plus a final denoising call "
        "(5n + 1); the others one per step."
        + (f" **Counts differing from these formulas:** {'; '.join(mismatched)}." if mismatched else ""),
    ]
    if fit is not None:
        a, b = fit
        estimate = full_run_estimate(fit, setup_seconds)
        parts += ["", f"Time model fitted over the cells: seconds per clip = {a:.3f} + {b * 1e3:.2f} ms x NFE "
                      f"(fixed cost: prompt encoding, vocoder, overhead). A default full run "
                      f"({Settings().num_samples} clips, {len(Settings().cells())} cells) would take about "
                      f"{estimate / 60:.0f} min on this machine."]
    if quick:
        parts += ["", f"`--quick`: {n} clips, steps {', '.join(map(str, settings.steps))}, samplers "
                      f"{', '.join(settings.samplers)}, plus the aim's cells. With {n} clips the Frechet distance is "
                      "noisy (see the held-out floor's range): read only large differences."]
    return "\n".join(parts)


def other_work() -> list[str]:
    """Command lines of trainings or training benchmarks running now (they share the cores)."""
    found = []
    for pattern in OTHER_WORK:
        out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
        found += [line for line in out.splitlines() if line.split()[0] != str(os.getpid())]
    return found


def run(model_name: str, settings: Settings, quick: bool) -> str:
    """Run every cell; return the markdown body."""
    start = time.perf_counter()
    model = audiodiff.load(model_name).eval()
    judge = load_judge("speech")
    labels = list(judge.labels)
    unknown = sorted(set(labels) - set(model_labels(model)))
    if unknown:
        raise SystemExit(f"the model does not know the judge's labels {unknown}: is {model_name} the speech model?")
    prompts = [labels[i % len(labels)] for i in range(settings.num_samples)]
    ref = reference(model, judge, settings)
    # warm-up (untimed): first calls pay for allocations and the vocoder's window
    generate_waves(model, 2, prompts[:2], steps=2, sampler="ddim", seed=settings.seed, guidance_scale=settings.guidance_scale)
    setup = time.perf_counter() - start
    print(f"reference and floors in {setup:.0f} s: halves {ref.floors['halves']['mean']:.2f}, held-out "
          f"{ref.floors['held_out']['mean']:.2f}, resynthesized {ref.floors['resynthesized']['fd']:.2f}",
          file=sys.stderr, flush=True)
    cells = []
    for sampler, steps in settings.cells():
        cells.append(run_cell(model, judge, ref, prompts, sampler, steps, settings))
        c = cells[-1]
        print(f"[{time.strftime('%H:%M:%S')}] {sampler:>15} {steps:>4} steps: FD {fd_text(c)}, accuracy "
              f"{acc_text(c)}, {c['per_clip']:.3f} s/clip, NFE {c['nfe']:g}", file=sys.stderr, flush=True)
    return report(model_name, model, judge, ref, cells, settings, setup, quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None,
                        help="model name or folder (default: the shipped 'speech' if there is one, else runs/speech/model)")
    parser.add_argument("--quick", action="store_true",
                        help="20 clips, steps 5/10/20/50, 6 samplers (plus the aim's cells); prints only")
    parser.add_argument("--num-samples", type=int, default=None, help="clips per cell (default 50; --quick 20)")
    parser.add_argument("--samplers", nargs="+", default=None, help=f"sampler names (default: {' '.join(SAMPLERS)})")
    parser.add_argument("--steps", nargs="+", type=int, default=None,
                        help=f"step counts (default: {' '.join(map(str, STEPS))}, and 1000 for ddpm; "
                             "given steps replace both)")
    parser.add_argument("--no-aim", action="store_true",
                        help="do not add the aim's cells (dpmpp_2m at 10 steps, ddim at 200) to the grid")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per generate batch (default 25)")
    parser.add_argument("--seed", type=int, default=0, help="clip i uses seed + i (default 0)")
    parser.add_argument("--guidance-scale", type=float, default=None, help="default: the model's")
    parser.add_argument("--spacing", default=None, help="noise ladder (default: the model's)")
    parser.add_argument("--sigma-min", type=float, default=None,
                        help="last noise level before the final step (default: the model's)")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads (default 2; others only for debugging)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown file to write (default: {RESULTS.relative_to(common.REPO_ROOT)} "
                             "for a full run, none with --quick)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    overrides = {"num_samples": args.num_samples, "batch_size": args.batch_size,
                 "samplers": tuple(args.samplers) if args.samplers else None,
                 "steps": tuple(args.steps) if args.steps else None,
                 "extra_cells": () if args.steps else None}  # explicit steps: no ddpm at 1000
    settings = replace(settings, seed=args.seed, aim=not args.no_aim, guidance_scale=args.guidance_scale,
                       spacing=args.spacing, sigma_min=args.sigma_min,
                       **{k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(settings.samplers) - set(audiodiff.names("sampler")))
    if unknown or settings.num_samples < 2 or settings.batch_size < 1 or min(settings.steps) < 1:
        parser.error(f"need known samplers (unknown: {unknown}), --num-samples >= 2, --batch-size >= 1, steps >= 1")
    common.setup_threads(args.threads)
    model_name = args.model or default_model()
    others_before, load_before = other_work(), os.getloadavg()
    start = time.perf_counter()
    body = run(model_name, settings, args.quick)
    seconds = time.perf_counter() - start
    others_after, load_after = other_work(), os.getloadavg()
    header = common.report_header("audiodiff sampler benchmarks" + (" (--quick)" if args.quick else ""), seconds)
    header += f"\n- load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}"
    header += (f"\n- training or training benchmark running at start / end: {'yes' if others_before else 'no'} / "
               f"{'yes' if others_after else 'no'}")
    if others_before or others_after:
        header += " -- **it shared the cores: times are high and noisy (quality figures are unaffected)**"
    common.emit_report(header + "\n\n" + body, args.out or (None if args.quick else RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
