"""Generation speed of distilled students beside their teachers, timed side by side in one run.

Each model makes a batch of one-window clips at its own default settings (sampler, steps, guidance,
vocoder included), the prompts its conditioners demo in turn.  Teacher and student alternate
(A B A B ...), so the machine's drift hits both alike; the speed is seconds of audio per second of
wall time (x real time, median of the repeats), and the ratio student / teacher is the claim.

    .venv/bin/python benchmarks/bench_students.py [--pair speech=runs/speech-guided ...] [--quick]

Without ``--pair`` it times every shipped student beside its shipped teacher.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

common.configure_environment()

RESULTS = Path(__file__).resolve().parent / "results" / "students.md"


def clips_per_second(model, clips: int, seed: int) -> float:
    """Seconds of audio per wall second for ``clips`` one-window clips at the model's defaults."""
    import audiodiff

    prompts = model.demo_prompts(clips)
    start = time.perf_counter()
    out = audiodiff.generate(model, num_samples=clips, prompt=prompts, seed=seed)
    wall = time.perf_counter() - start
    return sum(c.waveform.shape[-1] / c.sample_rate for c in out) / wall


def describe(model) -> str:
    sampler = model.config["sampler"]
    name = sampler.get("name") if isinstance(sampler, dict) else sampler
    passes = 1 if (model.takes_guidance or not model.is_conditional) else 2
    return f"{name}, {model.config['steps']} steps, {passes} pass{'es' if passes > 1 else ''}"


def run(pairs: list[tuple[str, str]], clips: int, repeats: int) -> str:
    import audiodiff

    rows = []
    for teacher_name, student_name in pairs:
        teacher, student = audiodiff.load(teacher_name), audiodiff.load(student_name)
        clips_per_second(teacher, 2, 0), clips_per_second(student, 2, 0)  # warm-up
        speeds: dict[str, list[float]] = {"teacher": [], "student": []}
        for r in range(repeats):
            speeds["teacher"].append(clips_per_second(teacher, clips, r))
            speeds["student"].append(clips_per_second(student, clips, r))
        t, s = statistics.median(speeds["teacher"]), statistics.median(speeds["student"])
        rows.append([f"`{teacher_name}`", describe(teacher), f"{t:.1f}x", f"`{student_name}`", describe(student),
                     f"{s:.1f}x", f"{s / t:.2f}"])
    table = common.markdown_table(["teacher", "its defaults", "x real time", "student", "its defaults", "x real time",
                                   "student / teacher"], rows)
    return (f"## {clips} one-window clips per call, default settings, 2 threads, median of {repeats} alternating "
            f"repeats\n\n{table}\n\nThe timing includes the vocoder and, for a teacher with prompts, classifier-free "
            "guidance's two net passes per step; a guidance-distilled student makes one.")


def shipped_pairs() -> list[tuple[str, str]]:
    """(teacher, student) for every shipped model whose config names a shipped teacher."""
    import json

    import audiodiff
    from audiodiff.hub import resolve

    names = audiodiff.list_models()
    pairs = []
    for name in names:
        config = json.loads((Path(resolve(name)) / "config.json").read_text())
        teacher = (config.get("distillation") or {}).get("teacher")
        if teacher in names:
            pairs.append((teacher, name))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", action="append", default=[], metavar="TEACHER=STUDENT",
                        help="a teacher and its student (names or folders); repeatable (default: the shipped students)")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="4 clips, one repeat; prints only")
    parser.add_argument("--out", type=Path, default=None, help=f"markdown file (default: {RESULTS.name} in results/)")
    args = parser.parse_args(argv)
    pairs = [tuple(p.split("=", 1)) for p in args.pair] or shipped_pairs()
    if any(len(p) != 2 for p in pairs):
        parser.error("--pair must be TEACHER=STUDENT")
    if not pairs:
        print("no shipped model is a student of a shipped teacher; pass --pair TEACHER=STUDENT")
        return 0
    common.setup_threads()
    clips, repeats = (4, 1) if args.quick else (args.clips, args.repeats)
    common.timed_report("audiodiff students against their teachers", RESULTS, lambda: run(pairs, clips, repeats),
                        args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
