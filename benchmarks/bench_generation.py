"""Generation speed and peak memory of every shipped model, vocoder included, at its default settings.

Each model generates ``seconds`` of audio (longer than its window: overlapping windows, as
``audiodiff generate --seconds 10`` does) with its default sampler, steps, guidance and vocoder, in
a fresh process, so that the peak resident memory (``ru_maxrss``) is that model's alone.  A process
that only imports torch and audiodiff is the baseline memory.  Speed is seconds of audio per second
of wall time (x real time), 2 threads.

    .venv/bin/python benchmarks/bench_generation.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

common.configure_environment()

RESULTS = Path(__file__).resolve().parent / "results" / "generation.md"

CHILD = r"""
import json, resource, sys, time
import torch
import audiodiff
name, seconds, repeats = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
if name == "-":
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    sys.exit(0)
def vocoder_name(v):
    return v.get("name", "?") if isinstance(v, dict) else type(v).__name__
model = audiodiff.load(name)
prompts = model.demo_prompts(1)
times = []
for i in range(repeats + 1):
    start = time.perf_counter()
    clip = audiodiff.generate(model, num_samples=1, prompt=prompts, seconds=seconds, seed=i)[0]
    times.append(time.perf_counter() - start)
timed = sorted(times[1:])
print(json.dumps({"seconds": clip.waveform.shape[-1] / clip.sample_rate, "wall": timed[len(timed) // 2],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "sampler": model.config["sampler"], "steps": model.config["steps"],
                  "vocoder": vocoder_name(model.default_vocoder),
                  "window": model.config["seconds"]}))
"""


@dataclass(frozen=True)
class Settings:
    seconds: float = 10.0
    repeats: int = 3


QUICK = Settings(seconds=2.0, repeats=1)


def measure(name: str, settings: Settings) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(settings.seconds), str(settings.repeats)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(settings: Settings) -> str:
    import audiodiff

    base = measure("-", settings)
    rows = []
    for name in sorted(audiodiff.list_models()):
        r = measure(name, settings)
        sampler = r["sampler"]["name"] if isinstance(r["sampler"], dict) else r["sampler"]
        rows.append([f"`{name}`", f"{sampler}, {r['steps']} steps", r["vocoder"], f"{r['seconds']:.1f} s",
                     f"{r['wall']:.2f} s", f"{r['seconds'] / r['wall']:.1f}x", f"{r['rss_mb']:.0f} MB",
                     f"{r['rss_mb'] - base['rss_mb']:.0f} MB"])
    table = common.markdown_table(["model", "sampler", "vocoder", "audio", "wall (median)", "x real time",
                                   "peak RSS", "RSS above import"], rows)
    return (f"## {settings.seconds:g} s of audio per model, default settings, one clip, 2 threads\n\n{table}\n\n"
            f"Baseline: a process that imports torch and audiodiff peaks at {base['rss_mb']:.0f} MB. "
            "Clips longer than a model's window are generated in overlapping windows; the timing includes "
            "the vocoder and classifier-free guidance (two net passes per step for prompted models).")


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main("audiodiff generation speed and memory", RESULTS, run, Settings(), QUICK, argv,
                                 __doc__.split("\n\n")[0], "2 s of audio, one repeat; prints only")


if __name__ == "__main__":
    sys.exit(main())
