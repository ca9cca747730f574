"""The U-Net of Ho et al. 2020 ("Denoising diffusion probabilistic models") with the improvements of
Dhariwal & Nichol 2021 ("Diffusion models beat GANs on image synthesis": attention at several
resolutions, AdaGN, zero-initialised output layers), generic over ``dims`` (1 or 2 spatial axes) and
built from the pieces of :mod:`audiodiff.nets.blocks`.  :class:`~audiodiff.nets.UNet1D` and
:class:`~audiodiff.nets.UNet2D` only set :attr:`UNet.dims`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import (CondSequential, CrossAttention, Downsample, NoiseEmbedding, ResBlock, SelfAttention, Upsample,
                     conv_nd, zero_init)


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _validate_config(
    in_channels: int,
    out_channels: int,
    channels: int,
    channel_mults: Sequence[int],
    num_res_blocks: int,
    attention_levels: Sequence[int],
    num_heads: int,
    dropout: float,
    cond_dim: int | None,
    context_dim: int | None,
    norm_groups: int,
) -> None:
    """Raise ``ValueError`` with a one-line message for an inconsistent U-Net configuration."""
    for name, value in [
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("channels", channels),
        ("num_res_blocks", num_res_blocks),
        ("num_heads", num_heads),
        ("norm_groups", norm_groups),
    ]:
        _check_positive(name, value)
    for name, value in [("cond_dim", cond_dim), ("context_dim", context_dim)]:
        if value is not None:
            _check_positive(name, value)
    if len(channel_mults) == 0:
        raise ValueError("channel_mults must not be empty")
    for mult in channel_mults:
        _check_positive("every entry of channel_mults", mult)
    if channels % norm_groups:
        raise ValueError(f"channels ({channels}) must be divisible by norm_groups ({norm_groups})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    for level in attention_levels:
        if not isinstance(level, int) or not 0 <= level < len(channel_mults):
            raise ValueError(
                f"attention_levels entries must be level indices in [0, {len(channel_mults) - 1}], got {level!r}"
            )
    for level in {*attention_levels, len(channel_mults) - 1}:  # the middle block always attends
        width = channels * channel_mults[level]
        if width % num_heads:
            raise ValueError(f"level {level} has {width} channels, not divisible by num_heads ({num_heads})")


class UNet(nn.Module):
    """U-Net denoiser over ``dims`` spatial axes (Ho et al. 2020; Dhariwal & Nichol 2021).

    Levels ``i = 0 .. len(channel_mults) - 1`` work at ``channels * channel_mults[i]`` channels and
    ``1 / 2**i`` of the input resolution.  Each level has ``num_res_blocks`` residual blocks on the
    way down and ``num_res_blocks + 1`` on the way up (each fed a skip connection); levels in
    ``attention_levels`` add self-attention (and cross-attention to ``context`` when
    ``context_dim`` is set) after each residual block.  The middle block is ResBlock -> attention
    -> ResBlock.  The noise level (plus an optional global ``cond`` vector) enters every residual
    block through AdaGN.  The output layer is zero-initialised, so an untrained net outputs 0.

    Subclasses set :attr:`dims`; use :class:`UNet1D` or :class:`UNet2D`.

    Args:
        in_channels: input channels (n_mels for the 1D net, 1 for a mel image in the 2D net).
        out_channels: output channels; default ``in_channels``.
        channels: base width; must be divisible by ``norm_groups``.
        channel_mults: width multiplier per level; the input is padded to a multiple of
            ``2 ** (len(channel_mults) - 1)`` along every spatial axis.
        num_res_blocks: residual blocks per level on the way down.
        attention_levels: indices of the levels that get (self- and cross-) attention.
        num_heads: attention heads; must divide the width of every attention level.
        dropout: dropout rate inside the residual blocks.
        cond_dim: width of an optional global conditioning vector ``cond``.
        context_dim: width of an optional token sequence ``context`` for cross-attention.
        norm_groups: GroupNorm groups.
        guidance_input: take the classifier-free guidance scale as an input (a guidance-distilled
            student, see :class:`NoiseEmbedding`); ``forward`` then needs ``guidance``.
    """

    dims: ClassVar[int]

    def __init__(
        self,
        in_channels: int = 80,
        out_channels: int | None = None,
        channels: int = 64,
        channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_levels: Sequence[int] = (2,),
        num_heads: int = 4,
        dropout: float = 0.0,
        cond_dim: int | None = None,
        context_dim: int | None = None,
        norm_groups: int = 8,
        guidance_input: bool = False,
    ) -> None:
        super().__init__()
        if getattr(type(self), "dims", None) not in (1, 2):
            raise TypeError(f"{type(self).__name__} must set the class attribute dims to 1 or 2")
        out_channels = in_channels if out_channels is None else out_channels
        channel_mults, attention_levels = tuple(channel_mults), tuple(attention_levels)
        _validate_config(
            in_channels, out_channels, channels, channel_mults, num_res_blocks, attention_levels,
            num_heads, dropout, cond_dim, context_dim, norm_groups,
        )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.cond_dim, self.context_dim = cond_dim, context_dim
        self.multiple = 2 ** (len(channel_mults) - 1)
        self._block_args = dict(num_heads=num_heads, dropout=dropout, norm_groups=norm_groups)
        emb_dim = 4 * channels
        if not isinstance(guidance_input, bool):
            raise ValueError(f"guidance_input must be true or false, got {guidance_input!r}")
        self.guidance_input = guidance_input
        self.embedding = NoiseEmbedding(channels, emb_dim, cond_dim, guidance_input)
        self.input_conv = conv_nd(self.dims, in_channels, channels, 3)
        skip_widths = self._build_down(channels, channel_mults, num_res_blocks, attention_levels, emb_dim)
        width = channels * channel_mults[-1]
        self.middle = CondSequential(
            self._res(width, width, emb_dim), *self._attention(width), self._res(width, width, emb_dim)
        )
        width = self._build_up(width, skip_widths, channels, channel_mults, num_res_blocks, attention_levels, emb_dim)
        self.output = nn.Sequential(
            nn.GroupNorm(norm_groups, width), nn.SiLU(), zero_init(conv_nd(self.dims, width, out_channels, 3))
        )

    # -- construction -------------------------------------------------------------------------

    def _res(self, in_width: int, out_width: int, emb_dim: int) -> ResBlock:
        args = self._block_args
        return ResBlock(self.dims, in_width, out_width, emb_dim, args["dropout"], args["norm_groups"])

    def _attention(self, width: int) -> list[nn.Module]:
        """Self-attention, plus cross-attention when the net takes a context."""
        heads, groups = self._block_args["num_heads"], self._block_args["norm_groups"]
        blocks: list[nn.Module] = [SelfAttention(width, heads, groups)]
        if self.context_dim is not None:
            blocks.append(CrossAttention(width, self.context_dim, heads, groups))
        return blocks

    def _build_down(
        self,
        channels: int,
        channel_mults: tuple[int, ...],
        num_res_blocks: int,
        attention_levels: tuple[int, ...],
        emb_dim: int,
    ) -> list[int]:
        """Create ``self.down``; return the width of every skip connection (input conv first)."""
        self.down = nn.ModuleList()
        width, skip_widths = channels, [channels]
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                blocks = [self._res(width, channels * mult, emb_dim)]
                width = channels * mult
                blocks += self._attention(width) if level in attention_levels else []
                self.down.append(CondSequential(*blocks))
                skip_widths.append(width)
            if level < len(channel_mults) - 1:
                self.down.append(CondSequential(Downsample(self.dims, width)))
                skip_widths.append(width)
        return skip_widths

    def _build_up(
        self,
        width: int,
        skip_widths: list[int],
        channels: int,
        channel_mults: tuple[int, ...],
        num_res_blocks: int,
        attention_levels: tuple[int, ...],
        emb_dim: int,
    ) -> int:
        """Create ``self.up`` (consuming ``skip_widths`` from the end); return the final width."""
        self.up = nn.ModuleList()
        skip_widths = list(skip_widths)
        for level in reversed(range(len(channel_mults))):
            for i in range(num_res_blocks + 1):
                blocks = [self._res(width + skip_widths.pop(), channels * channel_mults[level], emb_dim)]
                width = channels * channel_mults[level]
                blocks += self._attention(width) if level in attention_levels else []
                if level > 0 and i == num_res_blocks:
                    blocks.append(Upsample(self.dims, width))
                self.up.append(CondSequential(*blocks))
        return width

    # -- forward ------------------------------------------------------------------------------

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        cond: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        guidance: Tensor | None = None,
    ) -> Tensor:
        """Denoiser network output.

        Args:
            x: ``(B, in_channels, frames)`` for ``dims=1``, ``(B, in_channels, n_mels, frames)``
                for ``dims=2``; any spatial size (padded internally, output cropped back).
            c_noise: ``(B,)`` (or a scalar, broadcast) noise-level input, e.g. a VP timestep in
                [0, 1000) or EDM's ``log(sigma) / 4``.
            cond: optional ``(B, cond_dim)`` global conditioning vector.
            context: optional ``(B, L, context_dim)`` token sequence for cross-attention.
            context_mask: optional bool ``(B, L)``, True = a real token.  A row with no True
                entry means "no context" for that sample.
            guidance: ``(B,)`` classifier-free guidance scale, for a net built with ``guidance_input``.

        Returns:
            ``(B, out_channels, *spatial)``, the spatial shape of ``x``.
        """
        c_noise = self._check_inputs(x, c_noise, cond, context, context_mask)
        spatial = x.shape[2:]
        h = self.input_conv(self._pad(x))  # (B, channels, *S_padded)
        emb = self.embedding(c_noise, cond, guidance)  # (B, 4 * channels)
        skips = [h]
        for block in self.down:
            h = block(h, emb, context, context_mask)
            skips.append(h)
        h = self.middle(h, emb, context, context_mask)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context, context_mask)
        out = self.output(h)  # (B, out_channels, *S_padded)
        return out[(..., *(slice(0, n) for n in spatial))]  # (B, out_channels, *S)

    def _pad(self, x: Tensor) -> Tensor:
        """Replicate-pad every spatial axis at its end up to a multiple of ``self.multiple``."""
        pad: list[int] = []
        for n in reversed(x.shape[2:]):  # F.pad lists the last axis first
            pad += [0, -n % self.multiple]
        if not any(pad):
            return x
        return F.pad(x, pad, mode="replicate")  # (B, C, *S_padded)

    def _check_inputs(
        self,
        x: Tensor,
        c_noise: Tensor,
        cond: Tensor | None,
        context: Tensor | None,
        context_mask: Tensor | None,
    ) -> Tensor:
        """Raise ``ValueError`` for inputs that do not fit this net; return ``c_noise`` as ``(B,)``."""
        if x.ndim != self.dims + 2 or x.shape[1] != self.in_channels:
            expected = "(B, in_channels, frames)" if self.dims == 1 else "(B, in_channels, n_mels, frames)"
            raise ValueError(f"x must be {expected} with in_channels={self.in_channels}, got {tuple(x.shape)}")
        batch = x.shape[0]
        c_noise = torch.as_tensor(c_noise, device=x.device)
        c_noise = c_noise.expand(batch) if c_noise.ndim == 0 else c_noise
        if c_noise.shape != (batch,):
            raise ValueError(f"c_noise must have shape ({batch},), got {tuple(c_noise.shape)}")
        _check_cond(cond, self.cond_dim, batch)
        _check_context(context, context_mask, self.context_dim, batch)
        return c_noise


def _check_cond(cond: Tensor | None, cond_dim: int | None, batch: int) -> None:
    if cond is None:
        return
    if cond_dim is None:
        raise ValueError("cond was given but this net was built with cond_dim=None")
    if cond.shape != (batch, cond_dim):
        raise ValueError(f"cond must have shape ({batch}, {cond_dim}), got {tuple(cond.shape)}")


def _check_context(context: Tensor | None, mask: Tensor | None, context_dim: int | None, batch: int) -> None:
    if context is None:
        if mask is not None:
            raise ValueError("context_mask was given without context")
        return
    if context_dim is None:
        raise ValueError("context was given but this net was built with context_dim=None")
    if context.ndim != 3 or context.shape[0] != batch or context.shape[2] != context_dim:
        raise ValueError(f"context must have shape ({batch}, L, {context_dim}), got {tuple(context.shape)}")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != context.shape[:2]):
        raise ValueError(
            f"context_mask must be a bool tensor of shape {tuple(context.shape[:2])}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
