"""Train the judges that ``audiodiff.evaluation.evaluate`` uses, and ship them in ``audiodiff/pretrained/judges/``.

    python recipes/judges.py speech --out audiodiff/pretrained/judges/speech
    python recipes/judges.py music --out audiodiff/pretrained/judges/music --fp16
    python recipes/judges.py sfx --out audiodiff/pretrained/judges/sfx --fp16

``speech``: a spoken-digit classifier on the Free Spoken Digit Dataset (CC BY-SA 4.0; takes 10-49
train, takes 5-9 pick the best step, takes 0-4 are the held-out test split it is scored on), at
the 8 kHz of the speech model.  FSDD has six speakers; ``--espeak-voices N`` adds the ten words from
espeak-ng (``apt-get install espeak-ng``) in up to 203 voices (7 English accents x 29 variants),
each at its own pitch and rate (rendered once into ``data/judges/espeak``; a fifth of the variants
are held out with the valid clips), and ``--set KEY=VALUE`` changes a :class:`JudgeTrainConfig`
field, e.g. ``--set noise_prob=0 --set speed_range=[0.85,1.15]``.  A judge trained that way
(``benchmarks/results/speech_judge_candidate.md``) was no harder to fool than the shipped one, so the shipped
judge is still FSDD alone with white-noise augmentation.

``music``: the General MIDI family of single notes (a caption-pattern target, :data:`GM_FAMILY_TARGET`:
``"a flute playing C5"`` is ``pipe``; its ``notes`` pattern, :data:`NOTE_CAPTION`, gives pitch accuracy), on the music recipe's data: the GM notes rendered with FluidSynth (run
``recipes/music/prepare.py`` first) and the Salamander piano notes (family ``piano``), with the
manifest's splits, at the music model's 16 kHz mel settings and 1 s window.

``sfx``: the caption of Berklee sound effects (target ``caption``), over the captions that have at
least 3 clips (``--min-clips``); with the sfx recipe's stratified split each of them has one clip
in the test split and, from 4 clips, one in valid.  16 kHz mel settings of the sfx model, 2 s
window.  Its embedding also ranks captions for caption retrieval.

The script prints the held-out test accuracy and saves the judge folder (``config.json`` +
``model.safetensors``; the training report is stored in the config).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audiodiff.data import prepare  # noqa: E402
from audiodiff.data.manifest import ManifestItem  # noqa: E402
from audiodiff import checks  # noqa: E402
from audiodiff.errors import ConfigError  # noqa: E402
from audiodiff.data.notes import GM_FAMILIES, INSTRUMENT_PROGRAMS, gm_family  # noqa: E402
from audiodiff.evaluation.judge import judge_clips, load_clips, window_batch  # noqa: E402
from audiodiff.evaluation.targets import check_target  # noqa: E402
from audiodiff.training.judge import JudgeTrainConfig, train_judge  # noqa: E402

#: the speech recipe's classes: the ten spoken digits (FSDD's and Speech Commands' words)
DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: how the music recipe captions a note: "a flute playing C5", "a piano playing D#4", NSynth's "a bass playing C3 softly"
NOTE_CAPTION = (r"(?i)^\s*(?:(?:a|an|the)\s+)?(?P<instrument>.+?)\s+playing\s+(?P<note>[A-Ga-g](?:#|b|s)?-?\d)\b")
#: the music judge's classes: the GM family of the instrument a note caption names ("a flute playing C5" -> "pipe")
GM_FAMILY_TARGET: dict[str, Any] = {"pattern": NOTE_CAPTION, "group": "instrument",
                                    "classes": {name: gm_family(program) for name, program in INSTRUMENT_PROGRAMS.items()}}

SHARED = REPO.parent / "shared" / "data"
MEL16K = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 256, "n_mels": 80, "f_min": 30.0, "f_max": 8000.0}
JUDGES: dict[str, dict[str, Any]] = {
    "speech": {
        "sources": [("fsdd", SHARED / "fsdd", {"valid_from_train": True})],
        "target": "label",
        "labels": list(DIGIT_WORDS),
        "mel": {"sample_rate": 8000, "n_fft": 256, "hop_length": 80, "n_mels": 40, "f_min": 20.0, "f_max": 4000.0},
        "seconds": 1.0,
        "steps": 1200,
        "espeak": True,
    },
    "music": {  # recipes/music/conf: data.sources, model/representation/mel16k.yaml, model.seconds
        "sources": [("gm_notes", REPO / "data" / "music" / "gm", {}), ("salamander", SHARED / "salamander", {})],
        "target": GM_FAMILY_TARGET,
        "notes": NOTE_CAPTION,
        "mel": MEL16K,
        "seconds": 1.0,
        "steps": 600,
    },
    "sfx": {  # recipes/sfx/conf: data.sources, model/representation/mel16k.yaml, model.seconds
        "sources": [("berklee", SHARED / "berklee", {"stratify": True})],
        "target": "caption",
        "min_clips": 3,
        "mel": MEL16K,
        "seconds": 2.0,
        "steps": 700,
    },
}


#: espeak-ng voices and variants that the speech judge hears besides FSDD's six speakers
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
                   "adam", "Andy", "annie", "aunty", "belinda", "benjamin", "david", "ed", "john", "linda", "max",
                   "quincy", "steph", "travis")


def _draw(key: str, low: int, high: int) -> int:
    """A value in ``[low, high]`` fixed by ``key`` (the same on every machine)."""
    return low + int(hashlib.sha256(key.encode()).hexdigest(), 16) % (high - low + 1)


def espeak_voices(limit: int | None = None) -> list[tuple[str, str]]:
    """``(accent, variant)`` pairs: every accent with every variant, or the first ``limit`` of them."""
    voices = [(accent, variant) for accent in ESPEAK_ACCENTS for variant in ESPEAK_VARIANTS]
    return voices if limit is None else voices[:limit]


def espeak_digits(root: Path, voices: list[tuple[str, str]], words=DIGIT_WORDS) -> list[ManifestItem]:
    """Each digit word spoken by espeak-ng in each ``(accent, variant)`` voice, as WAVs cached in ``root``.

    Each voice gets its own pitch (30-70) and rate (130-190 words per minute); a fifth of the
    variants (by hash) are the ``valid`` split, the rest ``train``.
    """
    if shutil.which("espeak-ng") is None:
        raise ConfigError("the speech judge needs espeak-ng for its extra voices: apt-get install espeak-ng")
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for accent, variant in voices:
        voice = f"{accent}+{variant}"
        pitch, rate = _draw(voice + "/pitch", 30, 70), _draw(voice + "/rate", 130, 190)
        split = "valid" if _draw(variant, 0, 4) == 0 else "train"
        for word in words:
            path = root / f"{word}_{accent}_{variant}.wav"
            if not path.is_file():
                tmp = path.with_suffix(".tmp.wav")
                subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(rate), "-w", str(tmp), word],
                               check=True, capture_output=True)
                tmp.replace(path)
            items.append(ManifestItem(str(path), 0.0, 22050, caption=word, label=word, split=split))
    return items


def class_of(target: Any, item) -> str | None:
    """The class of a manifest item under a judge ``target`` (as :meth:`MelClassifier.target_of`, before labels exist)."""
    target = check_target(target)
    if target == "label":
        return item.label
    return item.caption if target == "caption" else target(item.caption)


def choose_labels(spec: dict[str, Any], items: list, min_clips: int | None) -> list[str]:
    """The judge's classes: the spec's list; GM families present, in GM order; or captions with >= ``min_clips`` clips."""
    if "labels" in spec:
        return list(spec["labels"])
    names = Counter(class_of(spec["target"], item) for item in items)
    names.pop(None, None)
    if spec["target"] is GM_FAMILY_TARGET:
        return [family for family in GM_FAMILIES if family in names]
    return sorted(name for name, count in names.items() if count >= min_clips)


def test_accuracy(judge, items) -> float:
    """Accuracy on ``items`` (clips cut or padded to the judge's window)."""
    waves = window_batch(load_clips([item.path for item in items], judge.sample_rate), judge.num_samples)
    _, probs = judge_clips(judge, waves)
    targets = judge.label_indices([judge.target_of(item.caption, item.label) for item in items])
    return float((probs.argmax(dim=1) == targets).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("judge", choices=sorted(JUDGES))
    parser.add_argument("--out", required=True, help="folder to write the judge to")
    parser.add_argument("--root", default=None, help="dataset folder of a one-source judge (default: the recipe's)")
    parser.add_argument("--min-clips", type=int, default=None, help="sfx: captions with at least this many clips (default 3)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--espeak-voices", type=int, default=0,
                        help="speech: espeak-ng voices besides FSDD's six speakers (at most 203; default 0)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=checks.key_value_arg,
                        help="a JudgeTrainConfig field (JSON value), e.g. noise_prob=0 (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--fp16", action="store_true", help="store the weights as float16")
    args = parser.parse_args(argv)
    unknown = sorted({key for key, _ in args.set} - {f.name for f in fields(JudgeTrainConfig)} | ({"steps", "seed"} & {k for k, _ in args.set}))
    if unknown:
        parser.error(f"--set: not a judge training setting here: {', '.join(unknown)} (steps and seed have their own options)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    spec = JUDGES[args.judge]
    items = []
    for layout, root, options in spec["sources"]:
        items += prepare(layout, args.root if args.root and len(spec["sources"]) == 1 else root, **options)
    voices = espeak_voices(args.espeak_voices) if spec.get("espeak") and args.espeak_voices > 0 else []
    if voices:
        items += espeak_digits(REPO / "data" / "judges" / "espeak", voices)
    labels = choose_labels(spec, items, args.min_clips or spec.get("min_clips"))
    items = [item for item in items if class_of(spec["target"], item) in labels]
    split = {name: [i for i in items if i.split == name] for name in ("train", "valid", "test")}
    print(f"{args.judge}: {len(labels)} classes; {len(split['train'])} train, {len(split['valid'])} valid, "
          f"{len(split['test'])} test clips")
    start = time.perf_counter()
    judge, report = train_judge(split["train"], split["valid"], labels_of=lambda item: class_of(spec["target"], item),
                                mel=spec["mel"], seconds=spec["seconds"], steps=args.steps or spec["steps"],
                                labels=labels, judge_kwargs={"target": spec["target"], "notes": spec.get("notes")}, seed=args.seed,
                                **dict(args.set))
    report["test_accuracy"] = test_accuracy(judge, split["test"])
    report["num_espeak_voices"] = len(voices)
    report["num_test"] = len(split["test"])
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    folder = judge.save(args.out, dtype=torch.float16 if args.fp16 else None, training=report)
    size = (folder / "model.safetensors").stat().st_size
    print(f"trained in {report['seconds']:.0f} s ({report['steps']} steps, {args.threads} thread(s)); "
          f"valid accuracy {report['valid_accuracy']:.4f} (step {report['best_step']}); "
          f"held-out test accuracy {report['test_accuracy']:.4f} on {len(split['test'])} clips")
    print(f"saved {folder} ({size / 1024:.0f} KiB of weights, {sum(p.numel() for p in judge.parameters()):,} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
