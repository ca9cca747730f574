"""1D U-Net over time: mel bins are channels, convolutions run along frames.

Input ``(B, n_mels, frames)`` (``in_channels = n_mels``); the architecture is the generic
:class:`~audiodiff.nets.unet.UNet` (Ho et al. 2020; Dhariwal & Nichol 2021) with ``dims = 1``.
"""

from __future__ import annotations

from ..registry import register
from .unet import UNet


@register("net", "unet1d")
class UNet1D(UNet):
    """U-Net with 1D convolutions over frames; ``x`` is ``(B, in_channels, frames)``.

    Any number of frames works (padded to a multiple of ``2 ** (len(channel_mults) - 1)``
    internally).  See :class:`~audiodiff.nets.unet.UNet` for the keyword arguments.
    """

    dims = 1
