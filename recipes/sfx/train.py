"""Train the sound-effect model (text-conditioned through a frozen sentence encoder, so paraphrases work).

    python recipes/sfx/train.py
    python recipes/sfx/train.py experiment=debug
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, run_train  # noqa: E402

if __name__ == "__main__":
    entry(__file__, "train", run_train)
