"""2D U-Net over the mel spectrogram as an image.

Input ``(B, in_channels, n_mels, frames)`` with ``in_channels = 1`` for a mel (more for latents);
the architecture is the generic :class:`~audiodiff.nets.unet.UNet` (Ho et al. 2020; Dhariwal &
Nichol 2021) with ``dims = 2``.
"""

from __future__ import annotations

from ..registry import register
from .unet import UNet


@register("net", "unet2d")
class UNet2D(UNet):
    """U-Net with 2D convolutions over (mel bins, frames); ``x`` is ``(B, in_channels, n_mels, frames)``.

    Any mel and frame count works (both padded to a multiple of ``2 ** (len(channel_mults) - 1)``
    internally).  See :class:`~audiodiff.nets.unet.UNet` for the keyword arguments.
    """

    dims = 2
