"""Train the speech model (spoken digits, label-conditioned, with condition dropout for guidance).

    python recipes/speech/train.py                        # the shipped model
    python recipes/speech/train.py experiment=debug       # tiny, a few steps (what the tests run)
    torchrun --nproc_per_node=2 recipes/speech/train.py   # data parallel
"""

import sys
from pathlib import Path

import hydra

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import main_wrapper, run_train  # noqa: E402


@hydra.main(config_path="conf", config_name="train", version_base=None)
def main(cfg):
    main_wrapper(run_train)(cfg)


if __name__ == "__main__":
    main()
