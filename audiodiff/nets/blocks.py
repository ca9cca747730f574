"""Building blocks shared by the U-Nets, generic over ``dims`` (1 or 2 spatial axes).

Feature maps are ``(B, C, *spatial)``: ``(B, C, frames)`` for ``dims=1`` and
``(B, C, n_mels, frames)`` for ``dims=2``.

* :class:`NoiseEmbedding`: sinusoidal embedding of the noise level (Vaswani et al. 2017,
  "Attention is all you need", sec. 3.5; as used for timesteps by Ho et al. 2020, "Denoising
  diffusion probabilistic models", appendix B) followed by an MLP; an optional global
  conditioning vector is added through a linear layer.
* :class:`ResBlock`: GroupNorm -> SiLU -> conv, twice, with the embedding applied as a FiLM
  scale-shift after the second GroupNorm ("AdaGN", Dhariwal & Nichol 2021, "Diffusion models
  beat GANs on image synthesis", sec. 3).
* :class:`SelfAttention`, :class:`CrossAttention`: multi-head attention over all positions
  (Vaswani et al. 2017), and over a padded token sequence (Rombach et al. 2022, "High-resolution
  image synthesis with latent diffusion models", sec. 3.3).
* :class:`Downsample`, :class:`Upsample`: strided conv, and nearest-neighbour upsampling + conv.

The U-Net that assembles them is :class:`audiodiff.nets.unet.UNet`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_nd(dims: int, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Module:
    """A ``dims``-D convolution with "same" padding for odd ``kernel_size`` (before striding)."""
    conv = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
    return conv(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)


def zero_init(module: nn.Module) -> nn.Module:
    """Set all parameters of ``module`` to zero and return it (the module then outputs 0)."""
    for param in module.parameters():
        nn.init.zeros_(param)
    return module


def sinusoidal_embedding(c_noise: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of a scalar per sample (Vaswani et al. 2017, sec. 3.5).

    Frequencies are geometric from 1 down to ``1 / max_period``, so inputs from about 1e-2 (EDM's
    ``log(sigma) / 4``) up to thousands (DDPM timesteps in [0, 1000)) are all resolved.

    Args:
        c_noise: ``(B,)`` noise-level input.
        dim: number of features.

    Returns:
        ``(B, dim)`` float32: ``[cos(c * f_k), sin(c * f_k)]`` (zero-padded if ``dim`` is odd).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=c_noise.device) / half)  # (half,)
    args = c_noise.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2 * half)
    return F.pad(emb, (0, dim - 2 * half))  # (B, dim)


class NoiseEmbedding(nn.Module):
    """Noise level (+ optional global conditioning vector and guidance scale) -> embedding ``(B, emb_dim)``.

    Sinusoidal features of ``c_noise`` go through Linear -> SiLU -> Linear (Ho et al. 2020); a
    conditioning vector, if given, is mapped by a linear layer and added to the result.  With
    ``guidance``, sinusoidal features of the classifier-free guidance scale ``w`` go through their own
    MLP and are added too (Meng et al. 2023, sec. 4.1: one pass of a student stands for two of its
    teacher); its last layer starts at zero, so a student copied from its teacher starts as the
    teacher's conditional denoiser.
    """

    def __init__(self, channels: int, emb_dim: int, cond_dim: int | None = None, guidance: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.cond_proj = nn.Linear(cond_dim, emb_dim) if cond_dim is not None else None
        self.guidance_mlp = (nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), zero_init(nn.Linear(emb_dim, emb_dim)))
                             if guidance else None)

    def forward(self, c_noise: Tensor, cond: Tensor | None = None, guidance: Tensor | None = None) -> Tensor:
        """``c_noise (B,)``, ``cond (B, cond_dim)`` or None, ``guidance (B,)`` or None -> ``(B, emb_dim)``."""
        features = sinusoidal_embedding(c_noise, self.channels).to(self.mlp[0].weight.dtype)
        emb = self.mlp(features)  # (B, emb_dim)
        if cond is not None and self.cond_proj is not None:
            emb = emb + self.cond_proj(cond.to(emb.dtype))
        if self.guidance_mlp is not None:
            if guidance is None:
                raise ValueError("this net takes the guidance scale as an input: pass guidance (B,)")
            emb = emb + self.guidance_mlp(sinusoidal_embedding(guidance, self.channels).to(emb.dtype))
        elif guidance is not None:
            raise ValueError("this net has no guidance input (it was not guidance-distilled)")
        return emb


class ResBlock(nn.Module):
    """Residual block with AdaGN (Dhariwal & Nichol 2021, sec. 3).

    ``h = conv(SiLU(GN(x)))``; ``h = conv(dropout(SiLU(GN(h) * (1 + scale) + shift)))`` with
    ``(scale, shift)`` a linear map of the embedding; output ``skip(x) + h``.  The last conv is
    zero-initialised, so the block starts as its skip path.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        dropout: float = 0.0,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            nn.GroupNorm(norm_groups, in_channels), nn.SiLU(), conv_nd(dims, in_channels, out_channels, 3)
        )
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_channels))
        self.out_norm = nn.GroupNorm(norm_groups, out_channels)
        self.out_layers = nn.Sequential(
            nn.SiLU(), nn.Dropout(dropout), zero_init(conv_nd(dims, out_channels, out_channels, 3))
        )
        self.skip = (
            nn.Identity() if in_channels == out_channels else conv_nd(dims, in_channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """``x (B, in_channels, *S)``, ``emb (B, emb_dim)`` -> ``(B, out_channels, *S)``."""
        h = self.in_layers(x)  # (B, out, *S)
        film = self.emb_proj(emb)  # (B, 2 * out)
        film = film.reshape(*film.shape, *([1] * (x.ndim - 2)))  # (B, 2 * out, 1, ...)
        scale, shift = film.chunk(2, dim=1)  # (B, out, 1, ...) each
        h = self.out_norm(h) * (1 + scale) + shift
        return self.skip(x) + self.out_layers(h)


def _split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(B, N, C)`` -> ``(B, heads, N, C / heads)``."""
    batch, length, channels = x.shape
    x = x.reshape(batch, length, num_heads, channels // num_heads)  # (B, N, heads, d)
    return x.transpose(1, 2)  # (B, heads, N, d)


def _merge_heads(x: Tensor) -> Tensor:
    """``(B, heads, N, d)`` -> ``(B, N, heads * d)``."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)  # (B, N, C)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all spatial positions, with a residual connection.

    GroupNorm, then ``softmax(q k^T / sqrt(d)) v`` per head (Vaswani et al. 2017, eq. 1) via
    :func:`torch.nn.functional.scaled_dot_product_attention`; the output projection is
    zero-initialised (Dhariwal & Nichol 2021).
    """

    def __init__(self, channels: int, num_heads: int = 4, norm_groups: int = 8) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero_init(nn.Linear(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, C, *S)`` -> ``(B, C, *S)``."""
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C), N = prod(S)
        q, k, v = (_split_heads(t, self.num_heads) for t in self.qkv(tokens).chunk(3, dim=-1))
        h = _merge_heads(F.scaled_dot_product_attention(q, k, v))  # (B, N, C)
        h = self.proj(h).transpose(1, 2).reshape(x.shape)  # (B, C, *S)
        return x + h


class CrossAttention(nn.Module):
    """Multi-head cross-attention from spatial positions to a token sequence, with a residual.

    Queries come from the GroupNorm-ed feature map, keys and values from ``context``
    (Rombach et al. 2022, sec. 3.3).  Padding tokens (``context_mask`` False) are ignored; a
    sample with no valid token gets a zero update.  The output projection is zero-initialised.
    """

    def __init__(self, channels: int, context_dim: int, num_heads: int = 4, norm_groups: int = 8) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = zero_init(nn.Linear(channels, channels))

    def forward(self, x: Tensor, context: Tensor | None, context_mask: Tensor | None = None) -> Tensor:
        """``x (B, C, *S)``, ``context (B, L, context_dim)``, ``context_mask (B, L)`` bool -> ``(B, C, *S)``.

        With ``context=None`` the block is the identity.
        """
        if context is None:
            return x
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
        q = _split_heads(self.q(tokens), self.num_heads)  # (B, heads, N, d)
        k, v = (_split_heads(t, self.num_heads) for t in self.kv(context.to(x.dtype)).chunk(2, dim=-1))
        attn_mask, has_tokens = _attention_mask(context_mask)
        h = _merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask))  # (B, N, C)
        h = self.proj(h)  # (B, N, C)
        if has_tokens is not None:
            h = h * has_tokens[:, None, None].to(h.dtype)  # zero update where no token is valid
        return x + h.transpose(1, 2).reshape(x.shape)  # (B, C, *S)


def _attention_mask(context_mask: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """Key padding mask ``(B, L)`` -> SDPA mask ``(B, 1, 1, L)`` and ``has_tokens (B,)``.

    Rows with no True entry are replaced by all-True (their output is zeroed by the caller), so
    that the softmax never sees an all ``-inf`` row (which would give NaN).
    """
    if context_mask is None:
        return None, None
    has_tokens = context_mask.any(dim=-1)  # (B,)
    safe = context_mask | ~has_tokens[:, None]  # (B, L)
    return safe[:, None, None, :], has_tokens  # (B, 1, 1, L), (B,)


class Downsample(nn.Module):
    """Halve every spatial axis with a stride-2 3-conv (Dhariwal & Nichol 2021)."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.conv = conv_nd(dims, channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, *S)`` with even ``S`` -> ``(B, C, *S / 2)``."""
        return self.conv(x)


class Upsample(nn.Module):
    """Double every spatial axis: nearest-neighbour interpolation, then a 3-conv."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.conv = conv_nd(dims, channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, *S)`` -> ``(B, C, *2S)``."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class CondSequential(nn.Sequential):
    """A sequence of blocks; each gets the inputs it needs (embedding, context, mask)."""

    def forward(  # type: ignore[override]
        self, x: Tensor, emb: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None
    ) -> Tensor:
        """``x (B, C, *S)``, ``emb (B, emb_dim)`` -> ``(B, C', *S')``."""
        for block in self:
            if isinstance(block, ResBlock):
                x = block(x, emb)
            elif isinstance(block, CrossAttention):
                x = block(x, context, context_mask)
            else:
                x = block(x)
        return x
