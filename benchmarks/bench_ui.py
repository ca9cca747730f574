"""Click to sound on the web page (``audiodiff ui``) for every shipped model, against the CLI and the API.

For each shipped model, one clip at the model's defaults (its example prompt, its window length,
sampler, steps, guidance and vocoder) with seeds 0, 1, ... is made three ways:

- **page**: headless Chromium (Selenium) on the page served on 127.0.0.1; the time from the click
  on Generate to the ``playing`` event of the first clip's player (the page autoplays it), on the
  browser's clock.  The model was loaded when it was picked, as a person picks it before clicking.
  The server's own time for the job (generation, WAV, sidecar and mel PNG) is reported beside it,
  so the rest is the page's overhead: queue, file transfer, rendering, decoding, starting playback.
- **API**: ``audiodiff.generate`` on the loaded model and ``Audio.save`` of the WAV, sidecar and mel
  PNG: the same work the page's server does.
- **CLI**: the ``audiodiff generate ... --plot`` command the page shows for that clip, run as a new
  process: Python start-up, imports and model loading included, as a person running it pays.

The three clips of each seed must be the same bytes (the page's promise); the report says whether
they were.  Medians over the repeats after a warm-up; torch on 1 thread (the page, the API and the
CLI alike), since the machines we run on are often busy with training.

    python benchmarks/bench_ui.py [--quick] [--out FILE]
"""

from __future__ import annotations

import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

RESULTS = Path(__file__).resolve().parent / "results" / "ui.md"
sys.path.insert(0, str(common.REPO_ROOT / "tests"))  # the browser driver the end-to-end test uses


@dataclass(frozen=True)
class Settings:
    repeats: int = 3
    warmup: int = 1
    threads: int = 1


QUICK = Settings(repeats=1, warmup=0)


def page_clip(page, out: Path, seed: int) -> tuple[float, float, Path]:
    """Generate on the page with ``seed``: (click-to-sound s, server job s, the clip's WAV)."""
    page.fill("seed", seed)
    status, seconds = page.run("generate-button")
    job = float(re.search(r" in ([0-9.]+) s,", status).group(1))
    folder = max(out.glob("*-generate"), key=lambda p: p.stat().st_mtime)
    (wav,) = folder.glob("*.wav")
    return seconds, job, wav


def api_clip(model, meta: dict, out: Path) -> tuple[float, Path]:
    """The same clip through ``audiodiff.generate`` and ``Audio.save`` (WAV, sidecar, mel PNG)."""
    import audiodiff

    start = time.perf_counter()
    (clip,) = audiodiff.generate(model, prompt=meta.get("prompt") or None, seed=meta["seed"], steps=meta["steps"],
                                 seconds=meta["seconds"], guidance_scale=meta.get("guidance_scale"), batch_size=1)
    log_mel = model.representation.to_log_mel(clip.features[None])[0]  # (1, n_mels, T) -> (n_mels, T)
    path = clip.save(out / f"api_{meta['seed']}.wav", plot=True, log_mel=log_mel,
                     hop_length=model.representation.hop_length)
    return time.perf_counter() - start, path


def cli_clip(command: str, out: Path, threads: int) -> tuple[float, Path]:
    """The page's command for the clip, as a new process."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    argv = [sys.executable, "-m", "audiodiff", *shlex.split(command)[1:], "--out", str(out), "--quiet"]
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600, env=env)
    seconds = time.perf_counter() - start
    (wav,) = out.glob("*.wav")
    return seconds, wav


def measure(page, name: str, settings: Settings, work: Path) -> dict:
    """Page, API and CLI times for one model; whether their clips were the same bytes."""
    from audiodiff.ui import Studio

    page.choose_model(name)
    model = Studio(work).model(name)  # the page's server holds its own copy, loaded by choose_model
    prompts = model.demo_prompts(1)
    if prompts:  # an unconditional model's prompt box is emptied and locked by the page
        page.fill("prompt", prompts[0])
    times: dict[str, list[float]] = {"page": [], "job": [], "api": [], "cli": []}
    same, first = True, None
    for seed in range(settings.warmup + settings.repeats):
        clicked, job, page_wav = page_clip(page, work / "page", seed)
        meta = json.loads(page_wav.with_suffix(".json").read_text())
        api, api_wav = api_clip(model, meta, work)
        cli, cli_wav = cli_clip(meta["command"], work / f"cli-{name}-{seed}", settings.threads)
        same &= page_wav.read_bytes() == api_wav.read_bytes() == cli_wav.read_bytes()
        first = clicked if first is None else first
        if seed >= settings.warmup:
            for key, value in zip(times, (clicked, job, api, cli)):
                times[key].append(value)
    sampler = model.config["sampler"]
    return {"name": name, "sampler": sampler["name"] if isinstance(sampler, dict) else sampler,
            "steps": model.config["steps"], "seconds": model.seconds, "same": same, "first": first,
            **{key: statistics.median(values) for key, values in times.items()},
            "page_spread": f"{min(times['page']):.2f}-{max(times['page']):.2f}"}


def run(settings: Settings) -> str:
    from ui_browser import Page, chromium, find_browser, serve

    import audiodiff

    common.setup_threads(settings.threads)  # benchmark_main set 2
    if find_browser() is None:
        raise SystemExit("bench_ui needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    names = sorted(audiodiff.list_models())
    rows = []
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp) / "page", names) as url, chromium() as driver:
        page = Page(driver, url, timeout=600)
        page.open()
        page.open_sampling()
        for name in names:
            r = measure(page, name, settings, Path(tmp))
            rows.append([f"`{r['name']}`", f"{r['sampler']}, {r['steps']} steps", f"{r['seconds']:g} s",
                         f"{r['first']:.2f} s", f"**{r['page']:.2f} s** ({r['page_spread']})", f"{r['job']:.2f} s",
                         f"{r['page'] - r['job']:.2f} s", f"{r['api']:.2f} s", f"{r['cli']:.2f} s",
                         f"{r['page'] / r['api']:.2f}x", "yes" if r["same"] else "**no**"])
    table = common.markdown_table(
        ["model", "sampling", "clip", "page: first click", "page: click to sound (min-max)", "page: server's job",
         "page overhead",
         "API", "CLI (new process)", "page / API", "same bytes"], rows)
    load = os.getloadavg()
    return (f"## One clip per click at each model's defaults, median of {settings.repeats} "
            f"(after {settings.warmup} warm-up), torch on {settings.threads} thread(s)\n\n{table}\n\n"
            "page: click on Generate to the first clip's `playing` event in headless Chromium; first click: the "
            "first one after picking the model (the warm-up). server's job: the "
            "job's time as the page reports it (generation + WAV + sidecar + mel PNG). API: `audiodiff.generate` + "
            "`Audio.save(plot=True)` on the loaded model. CLI: the page's command for the clip in a new process "
            "(start-up and model loading included). same bytes: the page's, the API's and the CLI's WAVs of every "
            f"seed were identical.\n\nLoad average (1, 5, 15 min) at the end: {load[0]:.2f}, {load[1]:.2f}, "
            f"{load[2]:.2f} on {os.cpu_count()} cores.")


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main("Web page: click to sound", RESULTS, run, Settings(), QUICK, argv,
                                 __doc__.split("\n\n")[0], "one repeat, no warm-up; prints only")


if __name__ == "__main__":
    sys.exit(main())
