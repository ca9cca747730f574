"""Train the speech model (spoken digits, label-conditioned, with condition dropout for guidance).

    python recipes/speech/train.py                        # the shipped model
    python recipes/speech/train.py experiment=debug       # tiny, a few steps (what the tests run)
    torchrun --nproc_per_node=2 recipes/speech/train.py   # data parallel
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, run_train  # noqa: E402

if __name__ == "__main__":
    entry(__file__, "train", run_train)
