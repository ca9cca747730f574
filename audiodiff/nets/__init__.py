"""Denoiser networks; importing this package registers them as ``net`` components.

* ``unet1d`` (:class:`UNet1D`): mel bins as channels, conv over frames, ``x (B, n_mels, frames)``.
* ``unet2d`` (:class:`UNet2D`): mel as an image, ``x (B, 1, n_mels, frames)``.

Both share :class:`~audiodiff.nets.unet.UNet` and its forward signature
``net(x, c_noise, cond=None, context=None, context_mask=None)``.
"""

from .unet import UNet
from .unet1d import UNet1D
from .unet2d import UNet2D

__all__ = ["UNet", "UNet1D", "UNet2D"]
