"""Generate spoken digits.

    python recipes/speech/generate.py prompt=seven num_samples=4 out_dir=out/
    python recipes/speech/generate.py model_path=runs/speech/model 'prompt=[one,two]'
"""

import sys
from pathlib import Path

import hydra

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import main_wrapper, run_generate  # noqa: E402


@hydra.main(config_path="conf", config_name="generate", version_base=None)
def main(cfg):
    main_wrapper(run_generate)(cfg)


if __name__ == "__main__":
    main()
