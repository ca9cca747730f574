"""The conditioning value every conditioner returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Cond:
    """A batch of conditioning embeddings.

    ``emb`` is ``(B, D)`` for a global vector or ``(B, L, D)`` for a token sequence; ``mask`` is
    ``None`` or a bool ``(B, L)`` with True for tokens to attend to.
    """

    emb: torch.Tensor
    mask: torch.Tensor | None = None

    @property
    def is_sequence(self) -> bool:
        return self.emb.dim() == 3
