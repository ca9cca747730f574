"""The reverse variance on audio: fixed (beta_tilde, beta), analytic and learned, measured (#22).

For each model (a folder that carries an analytic-variance table, from ``audiodiff variance``) it runs
``audiodiff eval`` with DDPM at each step count under each reverse variance (``--sampler-arg
variance=...``), and with DDIM and DPM-Solver++ at the same steps, for each seed; and the VLB
bits/dim of held-out clips (``audiodiff likelihood --variance``) under each variance.  Every cell is
a separate CLI run, so its report folder can be reused (``--work``: cells whose ``report.json``
exists are read, not rerun) and any one can be rerun by hand.

    .venv/bin/python benchmarks/bench_variance.py --model speech=runs/var/speech-analytic \\
        --reference data/speech/manifest.jsonl --steps 10 25 100 --seeds 0 1 -n 200
    .venv/bin/python benchmarks/bench_variance.py --model fixed=runs/lv-fixed/analytic \\
        --model learned=runs/lv-learned/analytic --variances posterior beta analytic learned ...

Writes ``benchmarks/results/variance.md`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

common.configure_environment(threads=1)

RESULTS = Path(__file__).resolve().parent / "results" / "variance.md"


def cli(*args: str) -> None:
    """Run ``audiodiff ARGS`` in a new process (1 torch thread); raise with its last line on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "audiodiff", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"audiodiff {' '.join(args)}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")


def eval_cell(work: Path, label: str, model: str, reference: str, sampler: str, variance: str | None, steps: int,
              seed: int, clips: int) -> dict:
    """``generated`` of one ``audiodiff eval`` report (run unless its folder already holds one)."""
    name = f"{label}-{variance or sampler}-{steps}-s{seed}"
    out = work / name
    if not (out / "report.json").is_file():
        args = ["eval", "--model", model, "--reference", reference, "--prompts", "labels", "-n", str(clips),
                "--sampler", sampler, "--steps", str(steps), "--seed", str(seed), "--out", str(out), "--quiet",
                "--overwrite"]
        cli(*args, *(["--sampler-arg", f"variance={variance}"] if variance else []))
    return json.loads((out / "report.json").read_text())["generated"]


def bits_cell(work: Path, label: str, model: str, files: list[str], variance: str, steps: int) -> float:
    """Mean VLB bits/dim of ``files`` under ``variance`` (one ``audiodiff likelihood`` run)."""
    out = work / f"{label}-bpd-{variance}-{steps}.json"
    if not out.is_file():
        cli("likelihood", *files, "--model", model, "--variance", variance, "--steps", str(steps), "--json", str(out),
            "--overwrite")
    rows = json.loads(out.read_text())
    return sum(r["bits_per_dim"] for r in rows) / len(rows)


def test_files(reference: str, count: int) -> list[str]:
    """The first ``count`` test-split clips of a manifest, as absolute paths."""
    from audiodiff.data import read_manifest

    return [str(Path(item.path)) for item in read_manifest(reference, split="test")[:count]]


def pair(text: str) -> tuple[str, str]:
    label, _, folder = text.partition("=")
    if not folder:
        raise argparse.ArgumentTypeError("expected LABEL=MODEL_FOLDER")
    return label, folder


def learns_variance(model: str) -> bool:
    """Whether the model folder was trained with a learned reverse variance (else ``learned`` is skipped)."""
    config = Path(model) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("variance") == "learned"


def fmt(values: list[float], spec: str) -> str:
    return " / ".join(format(v, spec) for v in values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=pair, action="append", required=True, help="LABEL=FOLDER (repeatable)")
    parser.add_argument("--reference", required=True, help="manifest of real clips (test split scored)")
    parser.add_argument("--variances", nargs="+", default=["posterior", "beta", "analytic"])
    parser.add_argument("--baselines", nargs="*", default=["ddim", "dpmpp_2m"], help="samplers without a variance")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("-n", "--num-samples", type=int, default=200)
    parser.add_argument("--bpd-clips", type=int, default=64, help="test clips scored by the VLB (0: none)")
    parser.add_argument("--bpd-steps", type=int, default=200, help="VLB terms sampled per clip")
    parser.add_argument("--work", default="runs/eval", help="folder of the per-cell reports (reused)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    lines = [common.report_header("The reverse variance: fixed, analytic and learned"), "",
             f"{args.num_samples} clips per cell (the ten digits in turn), seeds {fmt(args.seeds, 'd')}; "
             "each cell reads FD / judge accuracy, one figure per seed. Lower FD is better.", ""]
    for label, model in args.model:
        rows = []
        variances = [v for v in args.variances if v != "learned" or learns_variance(model)]
        for steps in args.steps:
            for variance in variances:
                cells = [eval_cell(work, label, model, args.reference, "ddpm", variance, steps, s, args.num_samples)
                         for s in args.seeds]
                rows.append([f"ddpm, {variance}", steps, fmt([c["frechet_distance"] for c in cells], ".1f"),
                             fmt([100 * c["prompt_accuracy"] for c in cells], ".1f")])
            for sampler in args.baselines:
                cells = [eval_cell(work, label, model, args.reference, sampler, None, steps, s, args.num_samples)
                         for s in args.seeds]
                rows.append([sampler, steps, fmt([c["frechet_distance"] for c in cells], ".1f"),
                             fmt([100 * c["prompt_accuracy"] for c in cells], ".1f")])
        lines += [f"## `{label}` ({model})", "",
                  common.markdown_table(["sampler, variance", "steps", "FD", "accuracy %"], rows), ""]
        if args.bpd_clips:
            files = test_files(args.reference, args.bpd_clips)
            bpd = [[v, f"{bits_cell(work, label, model, files, v, args.bpd_steps):.4f}"] for v in variances]
            lines += [f"VLB bits/dim of {len(files)} test clips ({args.bpd_steps} terms sampled per clip, bin width 2/255):",
                      "", common.markdown_table(["reverse variance", "bits/dim"], bpd), ""]
    common.emit_report("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
