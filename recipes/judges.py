"""Train the judges that ``audiodiff.metrics.evaluate`` uses, and ship them in ``audiodiff/pretrained/judges/``.

    python recipes/judges.py speech --out audiodiff/pretrained/judges/speech

``speech``: a spoken-digit classifier on the Free Spoken Digit Dataset (CC BY-SA 4.0; takes 10-49
train, takes 5-9 pick the best step, takes 0-4 are the held-out test split it is scored on), at
the 8 kHz of the speech model.  The script prints the held-out test accuracy and saves the judge
folder (``config.json`` + ``model.safetensors``; the training report is stored in the config).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audiodiff.data import prepare  # noqa: E402
from audiodiff.data.prepare import DIGIT_WORDS  # noqa: E402
from audiodiff.metrics import judge_clips, train_judge  # noqa: E402
from audiodiff.metrics.judge import load_clips, window_batch  # noqa: E402

JUDGES: dict[str, dict[str, Any]] = {
    "speech": {
        "layout": "fsdd",
        "root": REPO.parent / "shared" / "data" / "fsdd",
        "prepare": {"valid_from_train": True},
        "labels": list(DIGIT_WORDS),
        "mel": {"sample_rate": 8000, "n_fft": 256, "hop_length": 80, "n_mels": 40, "f_min": 20.0, "f_max": 4000.0},
        "seconds": 1.0,
        "steps": 1200,
    },
}


def test_accuracy(judge, items) -> float:
    """Accuracy on ``items`` (clips cut or padded to the judge's window)."""
    waves = window_batch(load_clips([item.path for item in items], judge.sample_rate), judge.num_samples)
    _, probs = judge_clips(judge, waves)
    targets = judge.label_indices([item.label for item in items])
    return float((probs.argmax(dim=1) == targets).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("judge", choices=sorted(JUDGES))
    parser.add_argument("--out", required=True, help="folder to write the judge to")
    parser.add_argument("--root", default=None, help="dataset folder (default: the recipe's)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--fp16", action="store_true", help="store the weights as float16")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    spec = JUDGES[args.judge]
    items = prepare(spec["layout"], args.root or spec["root"], **spec["prepare"])
    split = {name: [i for i in items if i.split == name] for name in ("train", "valid", "test")}
    print(f"{args.judge}: {len(split['train'])} train, {len(split['valid'])} valid, {len(split['test'])} test clips")
    start = time.perf_counter()
    judge, report = train_judge(split["train"], split["valid"], mel=spec["mel"], seconds=spec["seconds"],
                                steps=args.steps or spec["steps"], labels=spec["labels"], seed=args.seed)
    report["test_accuracy"] = test_accuracy(judge, split["test"])
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
