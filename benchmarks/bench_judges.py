"""The music and sfx judges and what real held-out clips score through them (the ceilings of issues #8/#9).

    .venv/bin/python recipes/music/prepare.py && .venv/bin/python recipes/sfx/prepare.py
    .venv/bin/python benchmarks/bench_judges.py          # writes benchmarks/results/judges.md
    .venv/bin/python benchmarks/bench_judges.py --quick  # 24 reference clips each; prints only

For each shipped judge: its classes, the clips it was trained on and its held-out accuracy (from
the training report saved in its ``config.json``).  Then the ``reference`` section of
``audiodiff eval`` (:func:`audiodiff.evaluation.evaluate.reference_report`) on the test split of each
recipe's manifest: the family judge's accuracy and pYIN pitch accuracy of real notes (music), the
caption judge's accuracy and caption retrieval with caption prototypes from the train split (sfx),
and the Frechet distance between two halves of the test clips (the floor at that sample size).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from common import REPO_ROOT, benchmark_main, markdown_table

RESULTS = REPO_ROOT / "benchmarks" / "results" / "judges.md"
FULL = {"max_reference": None}
QUICK = {"max_reference": 24}


HOW_TO = """## How these were made, and how to measure the models

```sh
.venv/bin/python recipes/music/prepare.py            # data/music/manifest.jsonl: 688 train / 34 valid / 48 test
.venv/bin/python recipes/sfx/prepare.py              # data/sfx/manifest.jsonl: 1244 / 105 / 202 (stratified split)
.venv/bin/python recipes/judges.py music --out audiodiff/pretrained/judges/music --fp16   # 600 steps
.venv/bin/python recipes/judges.py sfx --out audiodiff/pretrained/judges/sfx --fp16       # 700 steps
.venv/bin/python benchmarks/bench_judges.py          # this file
# the models (issues #8/#9), once trained and shipped:
audiodiff eval --model music --reference data/music/manifest.jsonl -n 192 --prompts captions --resynthesize --out out/eval-music
audiodiff eval --model sfx --reference data/sfx/manifest.jsonl -n 404 --prompts captions --resynthesize --out out/eval-sfx
audiodiff eval --model sfx-uncond --reference data/sfx/manifest.jsonl -n 404 --out out/eval-sfx-uncond
```

With `--prompts captions` the prompts are the test clips' own captions, in turn (so `-n` a multiple
of the 48 music or 202 sfx test clips prompts each equally).  The music report adds pitch accuracy
for the generated notes and the real ones; its judge accuracy row is the instrument family.  The
sfx report adds caption retrieval: each generated clip's judge embedding against the prototypes of
the prompted captions (187 of the 202 test captions have train clips; chance@5 = 5/187).  Compare
the Frechet distance row of the `sfx` and `sfx-uncond` reports (same judge, same 202 reference
clips).  The training runs above shared the 2-core machine with other work (one thread each)."""


def fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def judges_table() -> str:
    from audiodiff.evaluation import list_judges, load_judge

    rows = []
    for name in ("music", "sfx"):
        judge = load_judge(list_judges()[name])
        t = judge.training_report or {}
        size = (Path(judge.source) / "model.safetensors").stat().st_size / 1024
        rows.append([name, judge.target, len(judge.labels), f"{1 / len(judge.labels):.3f}",
                     f"{t.get('num_train')} / {t.get('num_valid')} / {t.get('num_test')}",
                     f"{t.get('steps')} steps, {t.get('seconds', 0):.0f} s", fmt(t.get("valid_accuracy")),
                     fmt(t.get("test_accuracy")), f"{size:.0f} KiB"])
    return markdown_table(["judge", "target", "classes", "chance", "train / valid / test clips", "training (1 thread)",
                           "valid accuracy", "held-out test accuracy", "weights (fp16)"], rows)


def pitch_misses(items) -> list[str]:
    """``caption: estimate`` of the real test notes pYIN does not put within a semitone."""
    from audiodiff.data.notes import midi_to_note_name
    from audiodiff.evaluation import caption_pitch, load_judge
    from audiodiff.evaluation.judge import load_clips, window_batch
    from audiodiff.evaluation.pitch import estimate_pitch, pitch_hits

    pattern = load_judge("music").notes  # how the music recipe's captions name notes
    notes = [(item, caption_pitch(item.caption, pattern)) for item in items]
    notes = [(item, n) for item, n in notes if n is not None]
    waves = window_batch(load_clips([item.path for item, _ in notes], 16000), 16000)
    estimates = estimate_pitch(waves, 16000)
    hits = pitch_hits(estimates, [n for _, n in notes])
    return [f"{item.caption} -> {'unvoiced' if est != est else midi_to_note_name(round(est))} ({est:.1f})"
            for (item, _), est, hit in zip(notes, estimates, hits) if not hit]


def run(settings: dict[str, Any]) -> str:
    from audiodiff.data import read_manifest
    from audiodiff.evaluation.evaluate import reference_report

    music_manifest, sfx_manifest = REPO_ROOT / "data/music/manifest.jsonl", REPO_ROOT / "data/sfx/manifest.jsonl"
    for path, recipe in ((music_manifest, "music"), (sfx_manifest, "sfx")):
        if not path.is_file():
            sys.exit(f"{path} not found: run recipes/{recipe}/prepare.py first")
    music_test = read_manifest(music_manifest, split="test")
    music = reference_report(music_test, "music", max_reference=settings["max_reference"])
    sfx = reference_report(read_manifest(sfx_manifest, split="test"), "sfx",
                           caption_items=read_manifest(sfx_manifest, split="train"),
                           max_reference=settings["max_reference"], pitch=False)
    misses = pitch_misses(music_test if settings["max_reference"] is None else music_test[: settings["max_reference"]])
    rows = [
        ["music", "instrument family judged correctly (judge vs caption's GM family)",
         f"{fmt(music['accuracy'])} ({music['accuracy_clips']} clips)", ">= 0.5 of generated notes"],
        ["music", "pitch within one semitone of the caption's note (pYIN median f0)",
         f"{fmt(music['pitch_accuracy'])} ({music['pitch_clips']} clips, {music['pitch_unvoiced']} unvoiced)",
         ">= 0.7 of generated notes"],
        ["music", "Frechet distance between two halves of the test clips (judge embedding)",
         fmt(music["frechet_distance_halves"], 2), "-"],
        ["sfx", "caption judged correctly (the judge's captions)",
         f"{fmt(sfx['accuracy'])} ({sfx['accuracy_clips']} clips)", "-"],
        ["sfx", "caption retrieval recall@1 (chance)",
         f"{fmt(sfx['retrieval_top1'])} ({fmt(sfx['retrieval_chance_top1'], 4)})", "-"],
        ["sfx", "caption retrieval recall@5 (chance)",
         f"{fmt(sfx['retrieval_top5'])} ({fmt(sfx['retrieval_chance_top5'], 4)}; "
         f"{sfx['retrieval_clips']} clips, {sfx['retrieval_captions']} captions)",
         f">= 5 x chance = {5 * sfx['retrieval_chance_top5']:.3f} for generated clips"],
        ["sfx", "Frechet distance between two halves of the test clips (judge embedding)",
         fmt(sfx["frechet_distance_halves"], 2), "text model < unconditional model"],
    ]
    return "\n\n".join([
        "## Judges", judges_table(),
        "## Real held-out clips (test split) through the judges: the ceilings",
        f"{music['num_reference']} music test clips (data/music/manifest.jsonl), "
        f"{sfx['num_reference']} sfx test clips (data/sfx/manifest.jsonl); sfx caption prototypes are the mean "
        "judge embedding of each caption's train-split clips.",
        markdown_table(["recipe", "measure", "real test clips", "floor for the model (issues #8/#9)"], rows),
        "Real notes pYIN misses: " + ("; ".join(misses) if misses else "none") + ".",
        HOW_TO,
    ])


def main(argv: list[str] | None = None) -> int:
    return benchmark_main("Music and sfx judges, and real-clip ceilings", RESULTS, run, FULL, QUICK, argv,
                          description=__doc__.splitlines()[0], quick_help="24 reference clips per recipe; print only")


if __name__ == "__main__":
    sys.exit(main())
