"""Generate instrument notes.

    python recipes/music/generate.py 'prompt=a flute playing C5' num_samples=2 out_dir=out/
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, run_generate  # noqa: E402

if __name__ == "__main__":
    entry(__file__, "generate", run_generate)
