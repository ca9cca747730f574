"""How easily the speech judge is fooled: its accuracy and Frechet distance on clean, grainy and generated digits.

    .venv/bin/python recipes/speech/prepare.py
    .venv/bin/python benchmarks/bench_speech_judge.py                         # the shipped judge
    .venv/bin/python benchmarks/bench_speech_judge.py --judge speech --judge runs/judge-speech-new
    .venv/bin/python benchmarks/bench_speech_judge.py --quick                 # 40 clips; print only

A judge guides the work only if what sounds worse scores worse.  For each judge, on the same clips:

- real FSDD test clips (takes 0-4), and the same clips resynthesised through the speech model's mel
  and vocoder with Gaussian "grain" of std 0.1 and 0.3 added to the normalised log-mel (what a
  denoiser that stops denoising leaves, ``benchmarks/results/denoising.md``);
- clips of the shipped speech model at its default sampler, at 25 DPM-Solver++(2M) steps down to
  the schedule's smallest noise level (grainy), and at 25 steps ending at sigma 0.6.

Accuracy is on the prompted (or true) digit; the Frechet distance is to the real test clips, in
the judge's own embedding, so it is comparable down a column, not across judges.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import REPO_ROOT, benchmark_main, markdown_table, repeated_option

RESULTS = REPO_ROOT / "benchmarks" / "results" / "speech_judge.md"
MANIFEST = REPO_ROOT / "data" / "speech" / "manifest.jsonl"
FULL = {"clips": 200, "judges": ["speech"]}
QUICK = {"clips": 40, "judges": ["speech"]}
GENERATED = (("default (DDPM 5 steps)", {}),
             ("DPM-Solver++(2M) 25 steps, trailing, to sigma_min 0.0064", {"sampler": "dpmpp_2m", "steps": 25,
                                                                             "spacing": "trailing"}),
             ("DPM-Solver++(2M) 25 steps, karras, to sigma 0.6", {"sampler": "dpmpp_2m", "steps": 25,
                                                                 "spacing": "karras", "sigma_min": 0.6}))


def real_clips(model, n: int) -> tuple[torch.Tensor, list[str]]:
    """``(n, 1, S)`` FSDD test clips spread over the split (the model's window), and their digits."""
    from audiodiff.data import read_manifest
    from audiodiff.evaluation.evaluate import select_reference
    from audiodiff.evaluation.judge import load_clips, window_batch

    items = select_reference(read_manifest(MANIFEST, split="test"), n)
    return window_batch(load_clips([i.path for i in items], model.sample_rate), round(model.seconds * model.sample_rate)), \
        [i.label for i in items]


def grainy(model, waves: torch.Tensor, std: float) -> torch.Tensor:
    """The clips through the model's mel, plus noise of ``std`` on the normalised log-mel, and its vocoder."""
    from audiodiff.sampling import resolve_vocoder

    vocoder = resolve_vocoder(model)
    with torch.inference_mode():
        x = model.encode(waves)
        noise = torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(0))  # one draw, shared by every clip
        return model.decode(x + std * noise, vocoder).float()


def run(settings: dict) -> str:
    import audiodiff
    from audiodiff.metrics import frechet_distance
    from audiodiff.evaluation import judge_clips, load_judge
    from audiodiff.evaluation.evaluate import accuracy, generate_waves

    model = audiodiff.load("speech").eval()
    n = settings["clips"]
    waves, digits = real_clips(model, n)
    sets = [("real test clips", waves, digits)]
    sets += [(f"real clips, mel + grain {std}", grainy(model, waves, std), digits) for std in (0.1, 0.3)]
    prompts = [digits[i % len(digits)] for i in range(n)]
    for label, kwargs in GENERATED:
        sets.append((f"generated: {label}", generate_waves(model, 1, prompts, seed=0, **kwargs)[0], prompts))
    judges = [(name, load_judge(name)) for name in settings["judges"]]
    reference = {name: judge_clips(judge, waves, model.sample_rate)[0] for name, judge in judges}
    rows = []
    for label, clips, names in sets:
        row = [label]
        for name, judge in judges:
            emb, probs = judge_clips(judge, clips, model.sample_rate)
            fd = "-" if clips is waves else f"{frechet_distance(emb, reference[name]):.1f}"
            row.append(f"{100 * accuracy(probs, names, judge)[0]:.1f}% / {fd}")
        rows.append(row)
    header = ["clips"] + [f"`{name}`: accuracy / FD" for name, _ in judges]
    return "\n\n".join([f"{n} clips per row; generated clips prompt the test clips' digits in turn, seed 0 + i.",
                        markdown_table(header, rows)])


def main(argv: list[str] | None = None) -> int:
    full, quick = dict(FULL), dict(QUICK)
    argv = repeated_option(argv, "--judge", (full, quick), "judges")
    return benchmark_main("How easily the speech judge is fooled", RESULTS, run, full, quick, argv,
                          description=__doc__.splitlines()[0], quick_help="40 clips per row; print only")


if __name__ == "__main__":
    sys.exit(main())
