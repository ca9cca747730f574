"""Build the speech manifest (FSDD by default; Speech Commands/SC09 and LJSpeech layouts too).

    python recipes/speech/prepare.py
    python recipes/speech/prepare.py 'data.sources=[{layout: sc09, root: /data/sc09}]'
"""

import sys
from pathlib import Path

import hydra

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import main_wrapper, run_prepare  # noqa: E402


@hydra.main(config_path="conf", config_name="train", version_base=None)
def main(cfg):
    main_wrapper(run_prepare)(cfg)


if __name__ == "__main__":
    main()
