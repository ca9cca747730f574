"""Generate spoken digits.

    python recipes/speech/generate.py prompt=seven num_samples=4 out_dir=out/
    python recipes/speech/generate.py model_path=runs/speech/model 'prompt=[one,two]'
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, run_generate  # noqa: E402

if __name__ == "__main__":
    entry(__file__, "generate", run_generate)
