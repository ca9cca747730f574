"""Build the speech manifest (FSDD by default; Speech Commands/SC09 and LJSpeech layouts too).

    python recipes/speech/prepare.py
    python recipes/speech/prepare.py 'data.sources=[{layout: sc09, root: /data/sc09}]' data.manifest=data/sc09.jsonl
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, run_prepare  # noqa: E402

if __name__ == "__main__":
    entry(__file__, "train", run_prepare)
