"""Distil the music model into a few-step student: guidance folded into one pass, then halving rounds.

    python recipes/music/distill.py                                   # 4 steps from the shipped model
    python recipes/music/distill.py distill.methods=[guidance]       # only fold guidance in
    python recipes/music/distill.py distill.time_limit=1800          # in legs: rerun resumes
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, run_distill  # noqa: E402

if __name__ == "__main__":
    entry(__file__, "train", run_distill)
