"""Diffusion vs GANs vs VAEs on spoken digits: the same data, vocoder, judge, metrics and training time.

The lecture the library starts from closes with two questions: how do diffusion models compare to
GANs in training stability and output diversity, and what are the trade-offs between diffusion and
VAEs?  This benchmark answers them with numbers on one dataset.

On FSDD spoken digits (the speech recipe's data: 8 kHz, 64-bin mel, 1 s windows, 10 labels; crop,
trimming and loudness from ``recipes/_common.dataset``), three label-conditioned families are trained
from scratch, each for the same wall-clock budget on the same threads, with the same mel
normalisation statistics (fitted once on the training clips and given to all three):

- **diffusion**: the speech recipe's model (``recipes/speech/conf/train.yaml``: unet1d, cosine
  schedule, v-prediction, label embedding with condition dropout), sampled with the recipe's
  defaults (sampler, steps, guidance);
- **gan**: :class:`audiodiff.generators.MelGAN` (SpecGAN-style generator, spectral-norm projection
  discriminator, hinge loss) trained by :func:`audiodiff.training.train_gan`;
- **vae**: :class:`audiodiff.generators.MelCVAE` (conditional VAE on the mel autoencoder's blocks)
  trained by :func:`audiodiff.training.train_vae` on its negative ELBO.

Each family trains with every seed in ``--seeds``, in ``legs`` equal slices of the budget (each slice
is a resumed run with a time limit); after every slice the run is evaluated on ``leg_clips`` clips,
which gives FD against training time.  After the last slice a larger evaluation measures:

- quality: the speech judge's accuracy on the prompted digit, and Frechet distance of judge
  embeddings to the FSDD test clips;
- diversity: IS, modified IS (Gurumurthy et al. 2017), NDB/k (Richardson & Weiss 2018), and the mean
  pairwise judge-embedding distance between clips of the same digit (real test clips give the scale);
- likelihood: the diffusion model's variational bound (Ho et al. 2020, eq. 5; ``vlb_steps`` importance-
  sampled terms) and the VAE's negative ELBO, both in bits/dim of the normalised log-mel with the
  same discretisation bin (:data:`audiodiff.likelihood.DEFAULT_BIN_WIDTH`), conditioned on the digit,
  on the same test clips; a GAN defines no likelihood;
- cost: sampling time (mel + vocoder) per clip and real-time factor, and training time to reach a
  given FD;
- stability: loss curves, the spread of final FD over seeds, and runs that diverged (non-finite
  training) or collapsed (same-digit diversity below half the real clips').

Every family decodes through the shipped ``speech`` model's trained vocoder.  Runs live in
``--work`` (default ``runs/families``); a run whose ``final.json`` exists is reused, a stopped one
resumes, so an interrupted benchmark picks up where it stopped.  Plots (FD against training time;
loss curves) are written beside the report.

    .venv/bin/python benchmarks/bench_families.py                 # full: writes benchmarks/results/families.md + PNGs
    .venv/bin/python benchmarks/bench_families.py --quick         # tiny nets, seconds of training, prints only
    .venv/bin/python benchmarks/bench_families.py --budget 600 --seeds 0 1 2 --work runs/families-600
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

common.configure_environment(int(os.environ.get("AUDIODIFF_BENCH_THREADS", common.DEFAULT_THREADS)))

import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "families.md"
FAMILIES = ("diffusion", "gan", "vae")
LABELS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: the log keys drawn as loss curves, per family
LOSS_KEYS = {"diffusion": ("loss",), "gan": ("loss_g", "loss_d"), "vae": ("loss",)}
log = logging.getLogger("bench_families")


@dataclass(frozen=True)
class Settings:
    """What a run trains and measures; ``--quick`` shrinks it."""

    budget: float = 300.0  # training seconds per run (every family, every seed)
    legs: int = 4  # evaluations along the way (the budget in equal slices)
    seeds: tuple[int, ...] = (0, 1, 2)
    families: tuple[str, ...] = FAMILIES
    clips: int = 200  # final evaluation, per run (an equal share per digit)
    leg_clips: int = 100  # evaluations along the way
    likelihood_clips: int = 100  # test clips for bits/dim
    vlb_steps: int = 100  # importance-sampled KL terms of the diffusion bound
    batch_size: int = 32
    max_items: int | None = None  # training clips (None: all)
    max_reference: int | None = None  # test clips for FD (None: all)
    tiny: bool = False  # tiny nets (the quick mode the tests run)
    work: str = "runs/families"
    fd_target: float | None = 100.0  # "time to FD" (None: the worst family's median final FD)
    reference_model: str | None = "speech"  # a trained diffusion model scored the same way, for scale (None: none)


QUICK = Settings(budget=6.0, legs=2, seeds=(0,), clips=20, leg_clips=10, likelihood_clips=4, vlb_steps=4,
                 batch_size=8, max_items=48, max_reference=40, tiny=True, work="", reference_model=None)

#: net sizes of the quick mode (the speech recipe's debug experiment for diffusion)
TINY = {"diffusion": ["experiment=debug"],
        "gan": {"latent_dim": 16, "channels": 8},
        "vae": {"latent_dim": 8, "channels": 8}}


# -- data ----------------------------------------------------------------------------------------
@dataclass
class Data:
    """The recipe config, the training set, the reference (test) clips and the shared mel."""

    cfg: Any
    train: Any
    test_waves: torch.Tensor  # (N, 1, S) at 8 kHz, the recipe's windows
    test_labels: list[str]
    mel: Any  # audiodiff Mel with the shared statistics


def load_data(settings: Settings, work: Path) -> Data:
    """Prepare the FSDD manifest (once), fit the shared mel statistics on the training clips."""
    import audiodiff

    rc = common.recipe_common()
    overrides = TINY["diffusion"] if settings.tiny else []
    cfg = common.speech_recipe_config(work / "data" / "manifest.jsonl", overrides=overrides)
    cfg.data.max_items = settings.max_items
    if not Path(cfg.data.manifest).is_file():
        rc.run_prepare(cfg)
    model = audiodiff.DiffusionModel(rc.to_dict(cfg.model))
    train = rc.dataset(cfg, "train", model.representation)
    test = rc.dataset(cfg, "test", model.representation)
    picks = even_picks(len(test), settings.max_reference)
    items = [test[i] for i in picks]
    mel = model.representation
    stats = work / "data" / "mel_stats.pt"
    if stats.is_file():
        mel.load_state_dict(torch.load(stats, weights_only=True))
    else:
        fit_shared_stats(mel, train, settings.batch_size)
        torch.save(mel.state_dict(), stats)
    return Data(cfg, train, torch.stack([it["waveform"][:1] for it in items]), [it["label"] for it in items], mel)


def even_picks(n: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over ``range(n)`` (all when ``limit`` is None or >= n)."""
    if limit is None or limit >= n:
        return list(range(n))
    return [round(i * (n - 1) / max(1, limit - 1)) for i in range(limit)]


def fit_shared_stats(mel, dataset, batch_size: int, batches: int = 20) -> None:
    """Per-bin mean and std of the log-mels of up to ``batches * batch_size`` training clips."""
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(dataset), generator=g)[: batches * batch_size].tolist()
    with torch.no_grad():
        chunks = (mel.log_mel(torch.stack([dataset[i]["waveform"] for i in order[s : s + batch_size]]))
                  for s in range(0, len(order), batch_size))
        mel.fit_stats(chunks)


# -- the three families ----------------------------------------------------------------------------
class Family:
    """How one family is built, trained for a slice of time, loaded and sampled."""

    name = ""

    def __init__(self, data: Data, settings: Settings) -> None:
        self.data, self.settings = data, settings

    def train_settings(self, seed: int, seconds: float) -> dict[str, Any]:
        """The settings every family shares: constant LR after a short warm-up, checkpoint at the
        time limit only, the recipe's batch and loader."""
        return {"steps": 10**8, "batch_size": self.settings.batch_size, "seed": seed, "time_limit": seconds,
                "checkpoint_every": 10**8, "keep_last": 1, "log_every": 5 if self.settings.tiny else 25,
                "num_workers": 0 if self.settings.tiny else 1, "progress": False, "warmup_steps": 0 if self.settings.tiny else 100}

    def train(self, run: Path, seed: int, seconds: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def load(self, run: Path):  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, model, labels: list[str], seed: int, vocoder) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def bits_per_dim(self, model, x0: torch.Tensor, labels: list[str], seed: int) -> float | None:
        return None

    def parameters(self, model) -> int:
        return sum(p.numel() for p in model.parameters())

    def share_stats(self, mel) -> None:
        """Give ``mel`` (a fresh model's) the shared statistics."""
        mel.load_state_dict(self.data.mel.state_dict())


class Diffusion(Family):
    name = "diffusion"

    def build(self):
        import audiodiff

        model = audiodiff.DiffusionModel(common.recipe_common().to_dict(self.data.cfg.model))
        self.share_stats(model.representation)
        model.fits_statistics = False
        return model

    def train(self, run: Path, seed: int, seconds: float) -> None:
        from audiodiff.training import fit

        torch.manual_seed(seed)
        cfg = {**common.recipe_common().to_dict(self.data.cfg.train), **self.train_settings(seed, seconds),
               "lr_schedule": "constant", "demo_every": 0}
        fit(self.build(), self.data.train, run, cfg)

    def load(self, run: Path):
        import audiodiff

        return audiodiff.load(run / "model")

    def sample(self, model, labels: list[str], seed: int, vocoder) -> torch.Tensor:
        import audiodiff

        clips = audiodiff.generate(model, num_samples=1, prompt=labels, seed=seed, vocoder=vocoder, batch_size=50)
        return torch.stack([c.waveform[:1] for c in clips])  # N x (1, S) -> (N, 1, S)

    def bits_per_dim(self, model, x0: torch.Tensor, labels: list[str], seed: int) -> float:
        from audiodiff.likelihood import bits_per_dim_vlb

        g = torch.Generator().manual_seed(seed)
        bpd = bits_per_dim_vlb(model, model.to_net_layout(x0), steps=self.settings.vlb_steps, generator=g,
                               net_kwargs=model.encode_prompts(labels))
        return float(bpd.mean())


class OneShot(Family):
    """What the GAN and the VAE share: a :class:`~audiodiff.generators.MelGenerator` folder."""

    def build_kwargs(self) -> dict[str, Any]:
        kwargs = {"mel": self.data.mel.config(), "labels": list(LABELS), "seconds": float(self.data.cfg.model.seconds)}
        return {**kwargs, **(TINY[self.name] if self.settings.tiny else {})}

    def parts(self):  # pragma: no cover - interface
        """``(generator class, its training function)``."""
        raise NotImplementedError

    def train(self, run: Path, seed: int, seconds: float) -> None:
        model_class, train_fn = self.parts()
        torch.manual_seed(seed)
        model = model_class(**self.build_kwargs())
        self.share_stats(model.mel)
        train_fn(model, self.data.train, run, self.train_settings(seed, seconds), fit_stats=False)

    def load(self, run: Path):
        from audiodiff.generators import load_generator

        return load_generator(run / "model")

    def sample(self, model, labels: list[str], seed: int, vocoder) -> torch.Tensor:
        out, step = [], 50
        for i in range(0, len(labels), step):
            out.append(model.generate(labels[i : i + step], vocoder, seed=seed + i).float().cpu())
        return torch.cat(out).clamp(-1, 1)  # as audiodiff.generate writes clips


class GAN(OneShot):
    name = "gan"

    def parts(self):
        from audiodiff.generators import MelGAN
        from audiodiff.training import train_gan

        return MelGAN, train_gan


class VAE(OneShot):
    name = "vae"

    def parts(self):
        from audiodiff.generators import MelCVAE
        from audiodiff.training import train_vae

        return MelCVAE, train_vae

    def bits_per_dim(self, model, x0: torch.Tensor, labels: list[str], seed: int) -> float:
        from audiodiff.likelihood import DEFAULT_BIN_WIDTH

        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            out = model.elbo(x0, model.label_indices(labels), generator=g, bin_width=DEFAULT_BIN_WIDTH)
        return float(out["bits_per_dim"].mean())


FAMILY_CLASSES = {"diffusion": Diffusion, "gan": GAN, "vae": VAE}


# -- evaluation ----------------------------------------------------------------------------------
@dataclass
class Judged:
    emb: torch.Tensor  # (N, dim)
    probs: torch.Tensor  # (N, classes)
    labels: list[str]


def prompts(n: int) -> list[str]:
    """``n`` digit names, the digits in turn (an equal share each when ``n`` is a multiple of 10)."""
    return [LABELS[i % len(LABELS)] for i in range(n)]


def judge_waves(judge, waves: torch.Tensor, labels: list[str], sample_rate: int) -> Judged:
    from audiodiff.evaluation.judge import judge_clips

    emb, probs = judge_clips(judge, waves, sample_rate)
    return Judged(emb, probs, labels)


def same_label_distance(judged: Judged) -> float:
    """Mean pairwise L2 distance of judge embeddings between clips of the same label, averaged over labels."""
    means = []
    for label in sorted(set(judged.labels)):
        rows = judged.emb[[i for i, name in enumerate(judged.labels) if name == label]]
        if len(rows) >= 2:
            means.append(float(torch.pdist(rows.double()).mean()))
    return statistics.fmean(means) if means else float("nan")


def scores(judged: Judged, ref: Judged, judge, seed: int, full: bool) -> dict[str, Any]:
    """Accuracy and FD (and, when ``full``, IS, mIS, NDB/k and same-digit distance) of ``judged``."""
    from audiodiff.evaluation.evaluate import ndb_bins
    from audiodiff.metrics import frechet_distance, inception_score, modified_inception_score, ndb

    targets = judge.label_indices(judged.labels)
    out = {"accuracy": float((judged.probs.argmax(1) == targets).float().mean()),
           "fd": frechet_distance(judged.emb, ref.emb)}
    if full:
        k = ndb_bins(len(ref.emb), 20)
        out.update({"is": inception_score(judged.probs), "mis": modified_inception_score(judged.probs),
                    "ndb": ndb(ref.emb, judged.emb, k=k, seed=seed) if k is not None else None,
                    "same_digit_distance": same_label_distance(judged)})
    return out


@dataclass
class Context:
    data: Data
    settings: Settings
    judge: Any
    vocoder: Any
    ref: Judged
    real: dict[str, Any]


def sample_and_score(ctx: Context, family: Family, model, seed: int, n: int, full: bool) -> dict[str, Any]:
    """Generate ``n`` clips (the digits in turn) from seed ``10000 (seed + 1)`` and score them; with ``full``,
    every diversity figure, the generation speed and the parameter count too."""
    labels = prompts(n)
    start = time.perf_counter()
    waves = family.sample(model, labels, 10_000 * (seed + 1), ctx.vocoder)
    seconds = time.perf_counter() - start
    out = scores(judge_waves(ctx.judge, waves, labels, ctx.data.mel.sample_rate), ctx.ref, ctx.judge, seed, full)
    if full:
        audio = waves.shape[-1] / ctx.data.mel.sample_rate * len(waves)
        out.update({"sample_seconds_per_clip": seconds / len(waves), "real_time_factor": audio / seconds,
                    "parameters": family.parameters(model)})
    return out


def evaluate_run(ctx: Context, family: Family, model, seed: int, n: int, full: bool) -> dict[str, Any]:
    """:func:`sample_and_score`; with ``full``, also bits/dim on the test clips (shared statistics)."""
    out = sample_and_score(ctx, family, model, seed, n, full)
    if full:
        picks = even_picks(len(ctx.data.test_waves), min(ctx.settings.likelihood_clips, len(ctx.data.test_waves)))
        with torch.no_grad():
            x0 = ctx.data.mel.encode(ctx.data.test_waves[picks])  # (m, n_mels, frames), shared statistics
        out["bits_per_dim"] = family.bits_per_dim(model, x0, [ctx.data.test_labels[i] for i in picks], seed)
    return out


# -- runs ------------------------------------------------------------------------------------------
def run_one(ctx: Context, family: Family, seed: int, root: Path) -> dict[str, Any]:
    """Train ``family`` with ``seed`` in legs (resuming a stopped run), evaluating after each; then the
    full evaluation.  Written to ``root/<family>-seed<seed>/final.json``; reused when there."""
    run = root / f"{family.name}-seed{seed}"
    final = run / "final.json"
    if final.is_file():
        return json.loads(final.read_text())
    run.mkdir(parents=True, exist_ok=True)
    curve_path = run / "curve.jsonl"
    curve = [json.loads(line) for line in curve_path.read_text().splitlines()] if curve_path.is_file() else []
    leg_seconds = ctx.settings.budget / ctx.settings.legs
    diverged = None
    for leg in range(len(curve), ctx.settings.legs):
        log.info("%s seed %d: leg %d/%d (%.0f s)", family.name, seed, leg + 1, ctx.settings.legs, leg_seconds)
        start = time.perf_counter()
        try:
            family.train(run, seed, leg_seconds)
        except Exception as exc:  # a diverged run (TrainingError) is a result, not a crash of the benchmark
            from audiodiff.errors import TrainingError

            if not isinstance(exc, TrainingError):
                raise
            diverged = str(exc)
            break
        wall = time.perf_counter() - start
        point = {"leg": leg + 1, "train_seconds": leg_seconds * (leg + 1), "wall_seconds": wall,
                 "step": last_step(run), **evaluate_run(ctx, family, family.load(run), seed, ctx.settings.leg_clips, False)}
        curve.append(point)
        with open(curve_path, "a") as f:
            f.write(json.dumps(point) + "\n")
    result = {"family": family.name, "seed": seed, "curve": curve, "diverged": diverged,
              "losses": read_losses(run, LOSS_KEYS[family.name])}
    if diverged is None:
        result["final"] = evaluate_run(ctx, family, family.load(run), seed, ctx.settings.clips, True)
    final.write_text(json.dumps(result, indent=1))
    return result


def last_step(run: Path) -> int:
    """The optimizer step of the run's newest intact checkpoint (0 before the first)."""
    from audiodiff.training.checkpoints import checkpoint_step, latest_checkpoint

    ckpt = latest_checkpoint(run, needed=())  # the files besides state.pt and config.json differ by family
    return checkpoint_step(ckpt) if ckpt is not None else 0


def read_losses(run: Path, keys: Sequence[str]) -> dict[str, list[list[float]]]:
    """``{key: [[step, value], ...]}`` from the run's ``log.jsonl``."""
    path = run / "log.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return {k: [[r["step"], r[k]] for r in records if isinstance(r.get(k), (int, float))] for k in keys}


def reference(data: Data, judge, vocoder) -> tuple[Judged, dict[str, Any]]:
    """The test clips' judge outputs, and the real clips' own figures (the floor of every metric):
    accuracy, FD between alternate halves, same-digit distance, and the same through the vocoder."""
    from audiodiff.metrics import frechet_distance, inception_score, modified_inception_score

    ref = judge_waves(judge, data.test_waves, data.test_labels, data.mel.sample_rate)
    with torch.no_grad():
        resynth = torch.cat([data.mel.decode(data.mel.encode(data.test_waves[i : i + 50]), vocoder).float()
                             for i in range(0, len(data.test_waves), 50)]).clamp(-1, 1)
    voc = judge_waves(judge, resynth, data.test_labels, data.mel.sample_rate)
    half = lambda j, s: Judged(j.emb[s::2], j.probs[s::2], j.labels[s::2])  # noqa: E731
    real = {"clips": len(ref.emb),
            "accuracy": float((ref.probs.argmax(1) == judge.label_indices(ref.labels)).float().mean()),
            "fd_halves": frechet_distance(ref.emb[0::2], ref.emb[1::2]),
            "is": inception_score(ref.probs), "mis": modified_inception_score(ref.probs),
            "same_digit_distance": same_label_distance(ref),
            "vocoded_accuracy": float((voc.probs.argmax(1) == judge.label_indices(voc.labels)).float().mean()),
            "vocoded_fd_halves": frechet_distance(half(voc, 0).emb, half(ref, 1).emb),
            "vocoded_same_digit_distance": same_label_distance(voc)}
    return ref, real


def run(settings: Settings, work: Path) -> tuple[str, dict[str, Any]]:
    """Train and evaluate every family and seed; return the markdown body and the raw results."""
    import audiodiff
    from audiodiff.evaluation.judge import load_judge

    data = load_data(settings, work)
    vocoder = audiodiff.load("speech").trained_vocoder
    judge = load_judge("speech")
    ref, real = reference(data, judge, vocoder)
    ctx = Context(data, settings, judge, vocoder, ref, real)
    results = {name: [run_one(ctx, FAMILY_CLASSES[name](data, settings), seed, work)
                      for seed in settings.seeds] for name in settings.families}
    raw = {"settings": asdict(settings), "real": real, "results": results,
           "reference_model": score_reference_model(ctx, work) if settings.reference_model else None}
    (work / "results.json").write_text(json.dumps(raw, indent=1))
    return report(raw, settings), raw


def score_reference_model(ctx: Context, work: Path) -> dict[str, Any]:
    """``settings.reference_model`` (e.g. the shipped ``speech``, trained far longer) at its own sampling
    defaults, scored like a family's final evaluation (no bits/dim: its mel statistics are its own).
    Cached in ``work/reference_model.json``."""
    import audiodiff

    path = work / "reference_model.json"
    if path.is_file() and json.loads(path.read_text()).get("name") == ctx.settings.reference_model:
        return json.loads(path.read_text())
    model = audiodiff.load(ctx.settings.reference_model)
    out = sample_and_score(ctx, Diffusion(ctx.data, ctx.settings), model, 0, ctx.settings.clips, True)
    out.update({"name": ctx.settings.reference_model,
                "sampler": f"{model.config['sampler']['name']}, {model.config['steps']} steps, "
                           f"guidance {model.config['guidance_scale']}"})
    path.write_text(json.dumps(out, indent=1))
    return out


# -- report ---------------------------------------------------------------------------------------
def spread(values: Sequence[float | None], digits: int = 1) -> str:
    """``mean ± std (min-max)`` of the finite values, or ``-``."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return "-"
    f = f"{{:.{digits}f}}"
    if len(xs) == 1:
        return f.format(xs[0])
    return f"{f.format(statistics.fmean(xs))} ± {f.format(statistics.stdev(xs))} ({f.format(min(xs))}-{f.format(max(xs))})"


def finals(runs: list[dict], key: str) -> list[float | None]:
    return [r["final"].get(key) for r in runs if r.get("final")]


def fd_target(raw: dict[str, Any], settings: Settings) -> float:
    """The FD each family's time is measured to: ``settings.fd_target`` or the worst family's median final FD."""
    if settings.fd_target is not None:
        return settings.fd_target
    medians = [statistics.median(xs) for xs in (finals(runs, "fd") for runs in raw["results"].values()) if xs]
    return max(medians) if medians else float("nan")


def time_to(curve: list[dict], target: float) -> float | None:
    """Training seconds of the first evaluation with FD at or below ``target``, or None."""
    return next((p["train_seconds"] for p in curve if p["fd"] <= target), None)


def collapsed(run: dict, real: dict) -> bool:
    """Same-digit diversity below half the real clips'."""
    d = (run.get("final") or {}).get("same_digit_distance")
    return d is not None and d < 0.5 * real["same_digit_distance"]


def report(raw: dict[str, Any], settings: Settings) -> str:
    real, results = raw["real"], raw["results"]
    target = fd_target(raw, settings)
    rows = []
    for name, runs in results.items():
        ok = [r for r in runs if r.get("final")]
        times = [time_to(r["curve"], target) for r in ok]
        rows.append([name, f"{ok[0]['final']['parameters'] / 1e6:.2f} M" if ok else "-",
                     spread([100 * a for a in finals(runs, "accuracy")]), spread(finals(runs, "fd")),
                     spread(finals(runs, "is"), 2), spread(finals(runs, "mis"), 2), spread(finals(runs, "ndb"), 2),
                     spread(finals(runs, "same_digit_distance"), 2), spread(finals(runs, "bits_per_dim"), 3),
                     spread([1000 * s for s in finals(runs, "sample_seconds_per_clip")], 1),
                     spread(finals(runs, "real_time_factor"), 0),
                     spread([t for t in times if t is not None], 0) + f" ({sum(t is not None for t in times)}/{len(ok)})",
                     f"{sum(r['diverged'] is not None for r in runs)} / {sum(collapsed(r, real) for r in runs)}"])
    ref_model = raw.get("reference_model")
    if ref_model:
        f = ref_model
        rows.append([f"`{f['name']}` (shipped; trained far longer)", f"{f['parameters'] / 1e6:.2f} M",
                     f"{100 * f['accuracy']:.1f}", f"{f['fd']:.1f}", f"{f['is']:.2f}", f"{f['mis']:.2f}",
                     f"{f['ndb']:.2f}" if f["ndb"] is not None else "-", f"{f['same_digit_distance']:.2f}", "-",
                     f"{1000 * f['sample_seconds_per_clip']:.1f}", f"{f['real_time_factor']:.0f}", "-", "-"])
    s = settings
    body = [
        f"FSDD spoken digits, label-conditioned; every family trained {s.budget:.0f} s of wall clock per seed "
        f"(seeds {', '.join(map(str, s.seeds))}) on the same threads, batch {s.batch_size}, the shared mel statistics; "
        f"evaluated with {s.clips} clips per run (digits in turn), the shipped speech judge and the speech model's vocoder. "
        f"Figures are mean ± std over seeds (min-max).",
        "",
        common.markdown_table(
            ["family", "parameters", "accuracy %", "FD", "IS", "mIS", "NDB/k", "same-digit distance",
             "bits/dim (bound)", "ms per clip", "x real time", f"s to FD <= {target:.1f} (runs)",
             "diverged / collapsed"], rows),
        "",
        f"Real FSDD test clips ({real['clips']}): accuracy {100 * real['accuracy']:.1f}%, FD between halves "
        f"{real['fd_halves']:.1f}, IS {real['is']:.2f}, mIS {real['mis']:.2f}, same-digit distance "
        f"{real['same_digit_distance']:.2f}; through the vocoder: accuracy {100 * real['vocoded_accuracy']:.1f}%, "
        f"FD to the other half {real['vocoded_fd_halves']:.1f}, same-digit distance {real['vocoded_same_digit_distance']:.2f}."
        + (f" The shipped `{ref_model['name']}` row is one run at its own defaults ({ref_model['sampler']}), "
           "for scale: it was not trained under this budget." if ref_model else ""),
        "",
        "FD against training time (each run's evaluations of "
        f"{s.leg_clips} clips after every {s.budget / s.legs:.0f} s):",
        "",
        common.markdown_table(["family", "seed"] + [f"{p:.0f} s" for p in [s.budget * (i + 1) / s.legs for i in range(s.legs)]] + ["steps"],
                              [[name, r["seed"]] + [f"{p['fd']:.1f} ({100 * p['accuracy']:.0f}%)" for p in r["curve"]]
                               + ["-"] * (s.legs - len(r["curve"])) + [r["curve"][-1]["step"] if r["curve"] else 0]
                               for name, runs in results.items() for r in runs]),
        "",
        "Definitions: accuracy is the judge's top class against the prompted digit; FD is the Frechet distance of "
        "judge embeddings to the test clips; NDB/k the share of k-means bins of the test clips whose share differs "
        "significantly; same-digit distance the mean pairwise L2 distance of judge embeddings among clips of one "
        "digit; bits/dim: the diffusion VLB (Ho et al. 2020, eq. 5; "
        f"{s.vlb_steps} importance-sampled terms) and the VAE's negative ELBO, both of p(x | digit) on "
        f"{s.likelihood_clips} test clips, normalised log-mel, bin 2/255 (the GAN has no likelihood); "
        "ms per clip and x real time: generation of the final clips (mel and vocoder); diverged: training stopped on "
        "non-finite losses; collapsed: same-digit distance below half the real clips'.",
    ]
    return "\n".join(body)


def plots(raw: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    """``<stem>_fd.png`` (FD against training time) and ``<stem>_losses.png`` (loss curves) in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"diffusion": "tab:blue", "gan": "tab:red", "vae": "tab:green"}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in raw["results"].items():
        for i, r in enumerate(runs):
            xs = [p["train_seconds"] for p in r["curve"]]
            ax.plot(xs, [p["fd"] for p in r["curve"]], "o-", color=colors.get(name), alpha=0.7,
                    label=name if i == 0 else None)
    ax.axhline(raw["real"]["fd_halves"], color="gray", ls="--", label="real (halves)")
    ax.set(xlabel="training time (s, 2 threads)", ylabel="FD to FSDD test clips", yscale="log",
           title="FD against training time")
    ax.legend()
    fig.tight_layout()
    paths = [out_dir / f"{stem}_fd.png"]
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)
    names = list(raw["results"])
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for r in raw["results"][name]:
            for key, points in r["losses"].items():
                if points:
                    ax.plot([p[0] for p in points], [p[1] for p in points], label=f"{key} seed {r['seed']}", lw=1)
        ax.set(title=name, xlabel="step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / f"{stem}_losses.png")
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny nets, seconds of training, a few clips; prints only")
    parser.add_argument("--budget", type=float, help="training seconds per run")
    parser.add_argument("--legs", type=int, help="evaluations along the way")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--families", nargs="+", choices=FAMILIES)
    parser.add_argument("--clips", type=int, help="clips of the final evaluation per run")
    parser.add_argument("--fd-target", type=float, help="FD of the 'time to FD' column")
    parser.add_argument("--work", type=Path, help="run folders (default runs/families; --quick: a temporary one)")
    parser.add_argument("--out", type=Path, help="markdown report (default benchmarks/results/families.md; --quick: none)")
    parser.add_argument("--threads", type=int, default=common.DEFAULT_THREADS)
    parser.add_argument("--report-from", type=Path, metavar="RESULTS_JSON",
                        help="only write the report and plots of a finished run's results.json (no training)")
    args = parser.parse_args(argv)
    if args.report_from:
        return rerender(args.report_from, args.out, args.fd_target)
    common.setup_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    settings = QUICK if args.quick else Settings()
    changes = {k: v for k, v in {"budget": args.budget, "legs": args.legs, "clips": args.clips,
                                 "seeds": tuple(args.seeds) if args.seeds else None, "fd_target": args.fd_target,
                                 "families": tuple(args.families) if args.families else None}.items() if v is not None}
    settings = replace(settings, **changes)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-families-") as tmp:
        work = args.work or (Path(tmp) if args.quick else common.REPO_ROOT / settings.work)
        work.mkdir(parents=True, exist_ok=True)
        out = args.out or (None if args.quick else RESULTS)
        raw: dict[str, Any] = {}

        def body() -> str:
            text, raw["value"] = run(settings, work)
            return text

        common.timed_report("Diffusion vs GANs vs VAEs on spoken digits", RESULTS, body, args.quick, out)
        pictures = plots(raw["value"], (out or work / "report.md").parent, (out.stem if out else "families"))
        print("plots: " + ", ".join(str(p) for p in pictures))
    return 0


def rerender(results_json: Path, out: Path | None, target: float | None) -> int:
    """Write the report body and plots of a finished run again (e.g. with another ``--fd-target``), keeping
    the header of the report it came from (``out``, default :data:`RESULTS`)."""
    raw = json.loads(Path(results_json).read_text())
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in raw["settings"].items()}
    settings = replace(Settings(**saved), **({"fd_target": target} if target is not None else {}))
    out = out or RESULTS
    head = out.read_text().split("\n\n")[0] if out.is_file() else "# Diffusion vs GANs vs VAEs on spoken digits"
    head = "\n".join(line for line in head.splitlines() if not line.startswith("- report re-rendered"))
    common.write_report(out, head + f"\n- report re-rendered from `{common.repo_relative(results_json)}`\n\n"
                        + report(raw, settings) + "\n")
    print(out.read_text())
    print("plots: " + ", ".join(str(p) for p in plots(raw, out.parent, out.stem)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
