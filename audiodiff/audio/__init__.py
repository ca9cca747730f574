"""Audio space: file I/O, resampling and the representations diffusion runs in.

A representation (registry kind ``representation``) has ``sample_rate``, ``shape_per_frame``,
``frames_for(seconds)``, ``seconds_for(frames)``, ``encode(wave (B, 1, S)) -> (B, *shape_per_frame,
frames)``, ``decode(x, vocoder) -> (B, 1, S)``, ``settings()`` (what a vocoder must share) and
``config()`` (the keywords that rebuild it).  ``Mel`` is the log-mel itself; ``Latent`` the scaled
latents of a frozen ``MelAutoencoder`` (latent diffusion, Rombach et al. 2022).
"""

from .io import load_audio, resample, save_audio, to_mono
from .settings import MEL_SETTING_KEYS, MelSettings
from .mel import Mel
from .autoencoder import MelAutoencoder, load_autoencoder
from .latent import Latent

__all__ = ["load_audio", "save_audio", "resample", "to_mono", "Mel", "MelSettings", "MEL_SETTING_KEYS", "MelAutoencoder",
           "load_autoencoder", "Latent"]
