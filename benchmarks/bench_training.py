"""Training benchmarks of audiodiff on CPU: data parallelism and the mel front end, side by side in one run.

The model is the speech recipe's default, composed with ``hydra.compose`` from
``recipes/speech/conf/train.yaml`` (no overrides; ``cfg.model`` is passed to ``DiffusionModel`` as
the recipe does), trained on the FSDD train split with the recipe's data settings (the dataset is
built by ``recipes/_common.dataset``, so crop, trimming and loudness are the recipe's).  Every
configuration is a fresh ``fit`` in its own run folder (``fit`` would resume otherwise), in its own
process, for ``warmup + measured`` optimizer steps; only the measured steps count.

1. Data parallelism: 1 process (2 torch threads, batch 32) against 2 DDP processes under
   ``python -m torch.distributed.run --standalone --nproc_per_node=2`` (1 thread each, gloo, batch
   16 each, so the same global batch of 32), each with 0 and with 1 data-loader worker.
2. Mel front end: on-the-fly batched mels in the train step (the library's default) against
   :class:`audiodiff.data.FeatureCache` (the recipe's ``data.cache_dir``), cold (the first epoch,
   which computes and writes each clip's log-mel in the loader) and warm (a second run reading
   the filled cache), with 0 and 1 workers; plus the front end's pieces timed alone on a batch of
   32 clips (``model.encode``, per-clip ``log_mel``, loading clips, loading cached features).

Throughput comes from the run's ``log.jsonl`` (``log_every=1``: per step ``samples_per_s`` and
``data_wait``, the share of the step spent waiting for the loader) and, as an independent check,
from wall-clock timestamps taken by a global optimizer-step hook.

Run from the repository root::

    .venv/bin/python benchmarks/bench_training.py           # full run, writes benchmarks/results/training.md
    .venv/bin/python benchmarks/bench_training.py --quick   # a few steps, prints only

Speeds are reported as ratios against a baseline measured in the same run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

#: threads of this process; the parent sets 1 for the DDP workers it launches
THREADS = int(os.environ.get("AUDIODIFF_BENCH_THREADS", common.DEFAULT_THREADS))
common.configure_environment(THREADS)  # thread and OpenMP settings must be in the env before torch loads

import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "training.md"
GLOBAL_BATCH = 32
TRAINING_PATTERN = "recipes/speech/train.py"  # another training sharing the machine


@dataclass(frozen=True)
class Settings:
    """What a run measures; ``--quick`` shrinks it."""

    warmup: int = 5  # optimizer steps not counted (>= fit_stats_batches, see below)
    measured: int = 30
    fit_stats_batches: int = 2  # the cache's cold run must not be pre-filled by fit's statistics pass
    repeats: int = 10  # of the front-end micro timings
    threads: int = common.DEFAULT_THREADS  # in total: 1 process uses them all, each of 2 DDP processes half


QUICK = Settings(warmup=2, measured=4, fit_stats_batches=1, repeats=2)


# -- the recipe ---------------------------------------------------------------------------------
recipe_common = common.recipe_common


def recipe_config(manifest: Path, cache_dir: str | None = None):
    """The speech recipe's config with the manifest (and cache) moved (:func:`common.speech_recipe_config`)."""
    return common.speech_recipe_config(manifest, cache_dir)


def build(cfg):
    """``(model, dataset)`` exactly as ``recipes/_common.run_train`` builds them."""
    import audiodiff

    rc = recipe_common()
    model = audiodiff.DiffusionModel(rc.to_dict(cfg.model))
    return model, rc.dataset(cfg, "train", model.representation)


def cache_needs_shim(model) -> bool:
    """True when ``model.conditioning_inputs`` cannot read a cached-feature batch (no ``"waveform"``).

    audiodiff 0.1.0 counts the batch with ``len(batch["waveform"])``, so a conditional model trained
    on a :class:`FeatureCache` stops with ``KeyError: 'waveform'``; the benchmark then patches the
    instance (see :func:`shim_conditioning`) and says so in the report.
    """
    batch = {"features": torch.zeros(2, 4, 3), "label": ["", ""], "caption": ["", ""]}
    try:
        model.conditioning_inputs(batch, train=False)
    except KeyError:
        return True
    return False


def shim_conditioning(model) -> None:
    """Let ``model.conditioning_inputs`` count a cached batch by its features (no compute added)."""
    original = model.conditioning_inputs

    def conditioning_inputs(batch, train=False, generator=None):
        if "waveform" not in batch and "features" in batch:
            batch = {**batch, "waveform": batch["features"]}  # only its length is read
        return original(batch, train=train, generator=generator)

    model.conditioning_inputs = conditioning_inputs


# -- one training run (a child process; under torchrun one per rank) ---------------------------
def worker(spec_path: Path) -> None:
    """Train as ``spec`` says; write the optimizer-step timestamps of this rank next to the spec."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from audiodiff.training import TrainConfig, fit

    spec = json.loads(spec_path.read_text())
    torch.set_num_threads(THREADS)
    cfg = recipe_config(Path(spec["manifest"]), spec["cache_dir"])
    model, data = build(cfg)
    shimmed = spec["cache_dir"] is not None and cache_needs_shim(model)
    if shimmed:
        shim_conditioning(model)
    train = {**recipe_common().to_dict(cfg.train), "steps": spec["steps"], "batch_size": spec["batch_size"],
             "num_workers": spec["num_workers"], "checkpoint_every": 10 * spec["steps"], "log_every": 1,
             "fit_stats_batches": spec["fit_stats_batches"], "demo_every": 0, "progress": False, "device": "cpu"}
    stamps: list[float] = []
    hook = register_optimizer_step_post_hook(lambda *args: stamps.append(time.perf_counter()))
    try:
        fit(model, data, spec["run_dir"], TrainConfig.from_dict(train))
    finally:
        hook.remove()
    rank = int(os.environ.get("RANK", 0))
    out = {"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", 1)), "threads": torch.get_num_threads(),
           "stamps": stamps, "shimmed": shimmed, "params": model.num_parameters(), "clips": len(data)}
    Path(f"{spec_path}.rank{rank}.json").write_text(json.dumps(out))


@dataclass(frozen=True)
class Case:
    """One training configuration."""

    label: str
    procs: int = 1
    num_workers: int = 1
    cache: str | None = None  # None: on-the-fly mels; else the name of a cache folder (cold on first use)

    def threads(self, total: int) -> int:
        return max(1, total // self.procs)

    @property
    def batch_size(self) -> int:
        return GLOBAL_BATCH // self.procs


def run_case(case: Case, tmp: Path, manifest: Path, settings: Settings, index: int) -> dict:
    """Run ``case`` in a fresh run folder (in a child process, or two under torchrun); return its figures."""
    run_dir = tmp / f"run{index:02d}"
    spec = {"manifest": str(manifest), "run_dir": str(run_dir), "num_workers": case.num_workers,
            "cache_dir": str(tmp / case.cache) if case.cache else None, "batch_size": case.batch_size,
            "steps": settings.warmup + settings.measured, "fit_stats_batches": settings.fit_stats_batches}
    spec_path = tmp / f"spec{index:02d}.json"
    spec_path.write_text(json.dumps(spec))
    script = str(Path(__file__).resolve())
    if case.procs == 1:
        cmd = [sys.executable, script, "--worker", str(spec_path)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={case.procs}",
               script, "--worker", str(spec_path)]
    threads = str(case.threads(settings.threads))
    env = {**os.environ, "AUDIODIFF_BENCH_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=common.REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{case.label} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    ranks = [json.loads(Path(f"{spec_path}.rank{r}.json").read_text()) for r in range(case.procs)]
    return {"case": case, "wall": wall, "ranks": ranks, **summarize(run_dir / "log.jsonl", ranks[0]["stamps"],
                                                                      settings)}


def summarize(log_path: Path, stamps: list[float], settings: Settings) -> dict:
    """Throughput and data-wait share of the measured steps, from ``log.jsonl`` and the step timestamps."""
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    measured = [r for r in lines if r["step"] > settings.warmup]
    if len(measured) != settings.measured:
        raise RuntimeError(f"expected {settings.measured} measured log lines, got {len(measured)} in {log_path}")
    times = [GLOBAL_BATCH / r["samples_per_s"] for r in measured]  # seconds of each step, data wait included
    waits = [t * r["data_wait"] for t, r in zip(times, measured)]
    # wall clock between optimizer steps: from the end of the last warm-up step to the end of the last one
    wall = stamps[settings.warmup + settings.measured - 1] - stamps[settings.warmup - 1]
    return {
        "samples_per_s": GLOBAL_BATCH * len(times) / sum(times),
        "wall_samples_per_s": GLOBAL_BATCH * settings.measured / wall,
        "data_wait": sum(waits) / sum(times),
        "step_ms": 1e3 * statistics.median(times),
        "compute_ms": 1e3 * statistics.median(t - w for t, w in zip(times, waits)),
        "wait_ms": 1e3 * sum(waits) / len(waits),
        "loss": statistics.fmean(r["loss"] for r in measured),
    }


# -- the front end alone ------------------------------------------------------------------------
def bench_front_end(manifest: Path, tmp: Path, settings: Settings) -> dict:
    """Seconds per batch of 32 of each piece of the mel front end, in this process (2 threads)."""
    from audiodiff.checkpoint import atomic_write_bytes, tensors_to_bytes
    from audiodiff.data import FeatureCache, collate

    cfg = recipe_config(manifest)
    model, data = build(cfg)
    model.eval()
    indices = list(range(GLOBAL_BATCH))
    cache = FeatureCache(data, model.representation, tmp / "front-end-cache")

    def load_clips():
        return collate([data[i] for i in indices])

    batch = load_clips()
    wave = batch["waveform"]  # (32, 1, S)

    def encode():
        with torch.no_grad():
            return model.encode(wave)

    def per_clip_log_mel():
        with torch.no_grad():
            return [model.representation.log_mel(wave[i][None]) for i in indices]  # 32 x (1, 1, S)

    def cache_cold():
        for path in cache.folder.glob("*.safetensors"):
            path.unlink()
        return collate([cache[i] for i in indices])

    cache_cold()  # fill it for the warm reads

    def cache_warm():
        return collate([cache[i] for i in indices])

    features = cache_warm()
    write_dir = tmp / "front-end-writes"
    mels = [features["features"][i].clone() for i in indices]  # 32 x (n_mels, frames)

    def write_files():
        for i, mel in enumerate(mels):
            atomic_write_bytes(write_dir / f"{i}.safetensors", tensors_to_bytes({"features": mel}))

    def encode_cached():
        with torch.no_grad():
            return model.encode_batch(features)

    pieces = {
        "load 32 clips (`AudioDataset[i]`: decode, trim, loudness, crop) + collate": load_clips,
        f"batched mels in the step: `model.encode` on {tuple(wave.shape)}": encode,
        "per-clip `log_mel`, 32 times (what a cold cache computes in the loader)": per_clip_log_mel,
        "cold cache: 32 x `FeatureCache[i]` (load, per-clip mel, write) + collate": cache_cold,
        "writing 32 feature files (`atomic_write_bytes`: fsync file and folder), part of the cold cache": write_files,
        "warm cache: 32 x `FeatureCache[i]` (read safetensors) + collate": cache_warm,
        "cached batch in the step: `model.encode_batch` (normalise only)": encode_cached,
    }
    return {"timings": {name: common.time_call(fn, repeats=settings.repeats, warmup=1) for name, fn in pieces.items()},
            "shape": tuple(wave.shape), "mel_shape": tuple(encode().shape)}


# -- the run ------------------------------------------------------------------------------------
DDP_CASES = [
    Case("1 process x 2 threads, batch 32, workers 0", num_workers=0),
    Case("1 process x 2 threads, batch 32, workers 1", num_workers=1),
    Case("2 DDP processes x 1 thread, batch 2x16, workers 0", procs=2, num_workers=0),
    Case("2 DDP processes x 1 thread, batch 2x16, workers 1 each", procs=2, num_workers=1),
]
CACHE_CASES = [
    Case("FeatureCache cold (first epoch), workers 0", num_workers=0, cache="cache-w0"),
    Case("FeatureCache warm (reading it), workers 0", num_workers=0, cache="cache-w0"),
    Case("FeatureCache cold (first epoch), workers 1", num_workers=1, cache="cache-w1"),
    Case("FeatureCache warm (reading it), workers 1", num_workers=1, cache="cache-w1"),
]
BASELINE_AGAIN = Case("1 process x 2 threads, batch 32, workers 1 (baseline again, last)", num_workers=1)


def other_training() -> list[str]:
    """Command lines of other speech trainings running now (they share the cores)."""
    found = subprocess.run(["pgrep", "-af", TRAINING_PATTERN], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if str(os.getpid()) != line.split()[0]]


def busy_processes(seconds: float = 2.0, threshold: float = 0.2) -> list[tuple[float, str]]:
    """Other processes using more than ``threshold`` of a core over ``seconds`` (from ``/proc``):
    ``(cores, command line)``, busiest first."""

    def cpu_times() -> dict[int, tuple[float, str]]:
        ticks = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            ticks[int(stat.parent.name)] = (int(fields[11]) + int(fields[12]), cmd)  # utime + stime
        return ticks

    if not Path("/proc/self/stat").exists():
        return []
    hz = os.sysconf("SC_CLK_TCK")
    before = cpu_times()
    time.sleep(seconds)
    after = cpu_times()
    busy = []
    for pid, (ticks, cmd) in after.items():
        used = (ticks - before.get(pid, (ticks, ""))[0]) / hz / seconds
        if used >= threshold and pid != os.getpid():
            busy.append((used, cmd[:80]))
    return sorted(busy, reverse=True)


def describe_busy(busy: list[tuple[float, str]]) -> str:
    return "; ".join(f"`{cores:.1f} cores: {cmd}`" for cores, cmd in busy) or "none"


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def run(settings: Settings) -> tuple[str, dict]:
    """Run everything; return the markdown body and the raw figures."""
    with tempfile.TemporaryDirectory(prefix="bench-training-") as name:
        tmp = Path(name)
        manifest = tmp / "manifest.jsonl"
        recipe_common().run_prepare(recipe_config(manifest))
        front = bench_front_end(manifest, tmp, settings)
        results = []
        for i, case in enumerate(DDP_CASES + CACHE_CASES + [BASELINE_AGAIN]):
            print(f"[{time.strftime('%H:%M:%S')}] {case.label} ...", file=sys.stderr, flush=True)
            before = busy_processes(1.0)
            results.append(run_case(case, tmp, manifest, settings, i))
            r = results[-1]
            r["others"] = (sum(c for c, _ in before), sum(c for c, _ in busy_processes(1.0)))
            print(f"    {r['samples_per_s']:.1f} samples/s (wall {r['wall_samples_per_s']:.1f}), "
                  f"data wait {100 * r['data_wait']:.1f}%, process wall {r['wall']:.0f} s", file=sys.stderr, flush=True)
        cfg = recipe_config(manifest)
        clips = results[0]["ranks"][0]["clips"]
        recipe_epochs = int(cfg.train.steps) * int(cfg.train.batch_size) / clips
    raw = {"results": results, "front": front, "recipe_epochs": recipe_epochs}
    return report(results, front, settings), raw


def report(results: list[dict], front: dict, settings: Settings) -> str:
    by = {r["case"].label: r for r in results}
    base = by[DDP_CASES[1].label]
    first = results[0]["ranks"][0]
    shimmed = any(rank["shimmed"] for r in results for rank in r["ranks"])

    def row(r: dict, same_workers: dict) -> list[str]:
        return [r["case"].label, fmt(r["samples_per_s"]), fmt(r["wall_samples_per_s"]), fmt(r["step_ms"], 0),
                fmt(r["compute_ms"], 0), fmt(r["wait_ms"], 0), f"{100 * r['data_wait']:.1f}%",
                f"{r['samples_per_s'] / base['samples_per_s']:.2f}x",
                f"{r['samples_per_s'] / same_workers['samples_per_s']:.2f}x",
                f"{r['others'][0]:.1f} / {r['others'][1]:.1f}"]

    headers = ["configuration", "samples/s (log)", "samples/s (wall)", "median step ms", "median compute ms",
               "mean wait ms", "data wait", "vs 1 proc w1", "vs same-workers baseline", "others' cores before / after"]
    single = {c.num_workers: by[c.label] for c in DDP_CASES if c.procs == 1}
    ddp_rows = [row(by[c.label], single[c.num_workers]) for c in DDP_CASES] + [row(by[BASELINE_AGAIN.label], base)]
    cache_rows = []
    for workers in (0, 1):
        cache_rows.append(row(single[workers], single[workers]))
        cache_rows += [row(by[c.label], single[workers]) for c in CACHE_CASES if c.num_workers == workers]

    step_s = single[0]["step_ms"] / 1e3  # 1 process, workers 0: the loader's time is all in the wait
    compute_s = single[0]["compute_ms"] / 1e3
    front_rows = [[name, fmt(t.median * 1e3), t.spread(), f"{100 * t.median / compute_s:.1f}%"]
                  for name, t in front["timings"].items()]
    measured = f"{settings.measured} optimizer steps measured after {settings.warmup} warm-up steps"
    parts = [
        f"Model: the speech recipe's default, `hydra.compose(config_name=\"train\")` on "
        f"`recipes/speech/conf` without overrides (`unet1d` channels 64, mults 1-2-2, attention at level 2; "
        f"mel8k: 8 kHz, 64 mels, hop 128; cosine schedule, v-prediction, digit-label conditioning), "
        f"{first['params'] / 1e6:.2f} M parameters. Data: FSDD train split (takes 10-49, {first['clips']} clips), "
        f"1 s clips built by `recipes/_common.dataset` (crop start, trim 40 dB, loudness -20 dBFS). "
        f"Training settings: the recipe's `train` block (lr 3e-4, warm-up 200, EMA 0.999, grad clip 1, fp32 on CPU) "
        f"with `log_every=1`, `checkpoint_every` beyond the run, `fit_stats_batches={settings.fit_stats_batches}`, "
        f"`progress=False`; each configuration is a fresh `fit` in its own run folder and process, {measured}.",
        "",
        "## 1. Data parallelism: 1 process vs 2 DDP processes (global batch 32)",
        "",
        common.markdown_table(headers, ddp_rows),
        "",
        "`samples/s (log)`: from `log.jsonl` (per step `samples_per_s`; samples over the summed step times, "
        "data wait included). `samples/s (wall)`: wall clock between optimizer steps (a global "
        "`register_optimizer_step_post_hook`), on rank 0. `data wait`: `log.jsonl` `data_wait`, the share "
        "of step time the loop waited for the next batch (rank 0). `compute` = step - wait. "
        "Ratios are of `samples/s (log)`; `vs 1 proc w1` is against 1 process with 1 worker (the recipe's "
        "`num_workers`), `vs same-workers baseline` against 1 process with the same number of workers per "
        "process. `others' cores`: CPU used by other processes on the machine (cores, from `/proc` over "
        "1 s) just before and just after the configuration ran; above ~0.2 it shared the cores. "
        "DDP: `python -m torch.distributed.run --standalone --nproc_per_node=2`, gloo, "
        "`OMP_NUM_THREADS=1` and `torch.set_num_threads(1)` per process, batch 16 each. The last row "
        "re-runs the baseline at the end to show drift.",
        "",
        "## 2. Mel front end: on-the-fly batched mels vs `FeatureCache` (1 process, 2 threads, batch 32)",
        "",
        common.markdown_table(headers[:-3] + ["vs 1 proc w1", "vs on-the-fly, same workers", headers[-1]], cache_rows),
        "",
        "Cold: a fresh cache folder, so every clip of the measured steps is decoded, its log-mel computed "
        "per clip and written as safetensors in the loader (the first epoch of a cached run). Warm: a new "
        "run in a fresh run folder on the same, now filled, cache (the same clip order: the sampler's "
        "shuffle depends on the seed and epoch only), which reads features and normalises them in the step. "
        "`fit_stats_batches` is kept below the warm-up so that fit's statistics pass (which reads the "
        "first batches of epoch 0 through the cache) fills only warm-up batches.",
        "",
        "### The front end's pieces alone, per batch of 32 clips (this process, 2 threads)",
        "",
        common.markdown_table(["piece", "median ms", "min-max ms", "of a training step's compute"], front_rows),
        "",
        f"Median of {settings.repeats} after 1 warm-up, on the first 32 clips of the train split "
        f"(waveforms {tuple(front['shape'])} -> mels {tuple(front['mel_shape'])}). The share is of the median "
        f"compute time of a training step of 1 process with workers 0 ({compute_s * 1e3:.0f} ms; "
        f"{step_s * 1e3:.0f} ms with the data wait), which includes the batched mel.",
    ]
    if shimmed:
        parts += [
            "",
            "**Workaround applied:** `DiffusionModel.conditioning_inputs` counts a batch with "
            "`len(batch[\"waveform\"])`, so a conditional model (this one) cannot train on a `FeatureCache` "
            "(`KeyError: 'waveform'` in `_train_step`). For the cache runs the benchmark wraps the model's "
            "`conditioning_inputs` to count the batch by its `features` (no compute added).",
        ]
    return "\n".join(parts)


def conclusions(raw: dict, recipe_epochs: float) -> str:
    """Conclusions computed from the figures (the wording follows the numbers, nothing is assumed)."""
    by = {r["case"].label: r for r in raw["results"]}
    sps = {label: r["samples_per_s"] for label, r in by.items()}
    w0, w1, d0, d1 = (sps[c.label] for c in DDP_CASES)
    drift = abs(sps[BASELINE_AGAIN.label] / w1 - 1)
    best_single, best_ddp = max(w0, w1), max(d0, d1)
    ddp = best_ddp / best_single
    verdict = ("no faster" if abs(ddp - 1) <= max(drift, 0.05) else "faster" if ddp > 1 else "slower")
    lines = ["## Conclusions", "",
             f"Run-to-run drift: the baseline (1 process, 1 worker) re-run at the end gave "
             f"{sps[BASELINE_AGAIN.label] / w1:.2f}x its first figure; differences within about "
             f"{max(100 * drift, 5):.0f}% are not resolved by this run."]
    shared = [r["case"].label for r in raw["results"] if max(r["others"]) > 0.2]
    if shared:
        lines.append(f"**{len(shared)} of {len(raw['results'])} configurations shared the cores with other processes** "
                     f"(column `others' cores`): a ratio between configurations that met different loads says more "
                     f"about the load than about the configurations.")
    lines.append("")
    lines.append(
        f"- **DDP on 2 cores is {verdict}** than one process with 2 threads: the best DDP setting runs at "
        f"{ddp:.2f}x the best single-process setting (with 0 workers {d0 / w0:.2f}x, with 1 worker per process "
        f"{d1 / w1:.2f}x). Both use the same 2 cores for the same global batch; DDP adds a gradient all-reduce "
        f"(gloo) per step, and with workers its 2 loader processes compete with the 2 training processes for "
        f"the cores.")
    lines.append(
        f"- Data-loader workers, 1 process: the loop waits for data {100 * by[DDP_CASES[0].label]['data_wait']:.1f}% "
        f"of a step with 0 workers and {100 * by[DDP_CASES[1].label]['data_wait']:.1f}% with 1 worker; 1 worker gives "
        f"{w1 / w0:.2f}x the throughput of 0 workers.")
    front = raw["front"]["timings"]
    pick = lambda prefix: next(t.median for n, t in front.items() if n.startswith(prefix))  # noqa: E731
    encode, load, per_clip, cold_fill = pick("batched mels"), pick("load 32"), pick("per-clip"), pick("cold cache")
    write = pick("writing 32")
    compute = by[DDP_CASES[0].label]["compute_ms"] / 1e3
    lines.append(
        f"- The batched mel front end (`model.encode`, batch 32) takes {encode * 1e3:.1f} ms, "
        f"{100 * encode / compute:.1f}% of a training step's compute ({compute * 1e3:.0f} ms): the most a warm "
        f"cache can take off the step. Filling the cache costs {cold_fill * 1e3:.0f} ms per 32 clips in the loader, "
        f"against {load * 1e3:.0f} ms for loading the clips, {per_clip * 1e3:.0f} ms for their per-clip mels and "
        f"{write * 1e3:.0f} ms for writing the 32 files on their own (each write fsyncs the file and the folder).")
    for workers in (0, 1):
        otf = (w0, w1)[workers]
        cold, warm = (sps[c.label] for c in CACHE_CASES[2 * workers: 2 * workers + 2])
        total = (1 / cold + (recipe_epochs - 1) / warm) / (recipe_epochs / otf)  # time of a cached run / on-the-fly
        lines.append(
            f"- FeatureCache, {workers} worker{'s' if workers != 1 else ''}: the first (filling) epoch runs at "
            f"{cold / otf:.2f}x and warm epochs at {warm / otf:.2f}x the on-the-fly throughput; over the recipe's "
            f"{recipe_epochs:.0f} epochs a cached run would take {total:.2f}x the time of an on-the-fly one"
            + (" (within the drift)." if abs(warm / otf - 1) <= max(drift, 0.05) else "."))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps and repeats; prints only")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown file to write (default: {RESULTS.relative_to(common.REPO_ROOT)} "
                             "for a full run, none with --quick)")
    parser.add_argument("--threads", type=int, default=common.DEFAULT_THREADS,
                        help="torch threads in total (default 2; other values only for debugging)")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)  # one training run
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.worker)
        return 0
    settings = replace(QUICK if args.quick else Settings(), threads=args.threads)
    common.setup_threads(settings.threads)
    others_before, busy_before = other_training(), busy_processes()
    load_before = os.getloadavg()
    start = time.perf_counter()
    body, raw = run(settings)
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()
    others_after, busy_after = other_training(), busy_processes()
    header = common.report_header("audiodiff training benchmarks" + (" (--quick)" if args.quick else ""), seconds)
    header += f"\n- load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}"
    shared = "yes" if others_before or others_after else "no"
    header += (f"\n- another training (`{TRAINING_PATTERN}`) running at start / end: "
               f"{'yes' if others_before else 'no'} / {'yes' if others_after else 'no'}")
    if shared == "yes":
        header += " -- **it shared the 2 cores: absolute numbers are low and noisy; read the ratios with care**"
    for when, busy in (("start", busy_before), ("end", busy_after)):
        header += f"\n- other busy processes at the {when} (CPU over 2 s): {describe_busy(busy)}"
    text = header + "\n\n" + body + "\n\n" + conclusions(raw, raw["recipe_epochs"])
    common.emit_report(text, args.out or (None if args.quick else RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
