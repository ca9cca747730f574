"""Build the sound-effect manifest from the Berklee clips (captions from their names); ESC-50 and caption-table layouts too.

    python recipes/sfx/prepare.py
    python recipes/sfx/prepare.py 'data.sources=[{layout: esc50, root: /data/ESC-50}]'
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, run_prepare  # noqa: E402

if __name__ == "__main__":
    entry(__file__, "train", run_prepare)
