"""Build the music manifest: General MIDI notes rendered with FluidSynth plus the Salamander piano notes.

    python recipes/music/prepare.py
    python recipes/music/prepare.py 'data.sources=[{layout: nsynth, root: /data/nsynth-train}]'
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, run_prepare  # noqa: E402

if __name__ == "__main__":
    entry(__file__, "train", run_prepare)
