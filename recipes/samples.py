"""Regenerate ``samples/``: for every shipped model a few WAVs, their mel PNGs and JSON sidecars.

    make samples            # or: python recipes/samples.py --out samples
    python recipes/samples.py --models speech   # only these models' folders (the index lists all)

Sidecars carry the command, seed, sampler, prompt and the git commit the clips were made at.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

import audiodiff
from audiodiff.audio.clip import write_clips
from audiodiff.files import check_out_dir
from audiodiff.files import write_json

REPO = Path(__file__).resolve().parents[1]


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "samples"))
    parser.add_argument("--prompts", type=int, default=4, help="prompts per conditional model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=None, help="only these shipped models (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    shipped = audiodiff.list_models()
    if not shipped:
        print("no shipped models: nothing to do", file=sys.stderr)
        return 1
    unknown = sorted(set(args.models or []) - set(shipped))
    if unknown:
        print(f"not shipped: {', '.join(unknown)} (shipped: {', '.join(shipped)})", file=sys.stderr)
        return 2
    commit = git_commit()
    for name in args.models or shipped:
        model = audiodiff.load(name)
        prompts = list(dict.fromkeys(model.demo_prompts(args.prompts) or [])) or None
        clips = audiodiff.generate(model, prompt=prompts, num_samples=1 if prompts else args.prompts, seed=args.seed)
        for clip in clips:
            clip.metadata.update(commit=commit, command=" ".join(["python", "recipes/samples.py", *(argv or sys.argv[1:])]))
        out = check_out_dir(Path(args.out) / name)
        for old in out.glob("*"):
            old.unlink()
        for path in write_clips(clips, model, out, name, plot=True):
            print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    index = {name: sorted(p.name for p in (Path(args.out) / name).glob("*.wav")) for name in shipped}
    write_json(Path(args.out) / "index.json", index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
