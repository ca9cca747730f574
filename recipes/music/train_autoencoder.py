"""Train the mel autoencoder of the music latent diffusion model (stage 1; Rombach et al. 2022).

    python recipes/music/train_autoencoder.py                      # -> runs/music-ae/model
    python recipes/music/train_autoencoder.py experiment=debug     # tiny, a few steps (what the tests run)
    python recipes/music/train.py model/representation=latent      # stage 2: diffusion on its latents
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, run_train_autoencoder  # noqa: E402

if __name__ == "__main__":
    entry(__file__, "autoencoder", run_train_autoencoder)
