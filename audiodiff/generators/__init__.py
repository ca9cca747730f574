"""One-shot generators of normalised log-mels, the baselines diffusion is measured against:
:class:`MelGAN` (a conditional GAN) and :class:`MelCVAE` (a conditional VAE); see :mod:`.base`."""

from .base import MelGenerator, is_generator_folder, load_generator
from .gan import MelGAN
from .vae import MelCVAE

__all__ = ["MelCVAE", "MelGAN", "MelGenerator", "is_generator_folder", "load_generator"]
