"""``tokens``: a small character-level text encoder trained with the model (no extra dependency).

Text is lower-cased and mapped to characters of a fixed alphabet (others become ``?``), embedded
with learned positions and run through a small Transformer encoder (Vaswani et al. 2017).  It
returns the token sequence (route ``"cross"``) or its masked mean (route ``"global"``).  The null
condition ``""`` is one learned token.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..registry import register
from .base import Cond, Conditioner, _pool, check_route

ALPHABET = " abcdefghijklmnopqrstuvwxyz0123456789.,'-!?#"
PAD, NULL, FIRST = 0, 1, 2  # token ids: padding, the null condition, then the alphabet


def tokenize(prompts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``B`` strings -> ids ``(B, L)`` and mask ``(B, L)``; ``""`` becomes the single NULL token."""
    rows = []
    for text in prompts:
        text = text.lower().strip()[:max_length]
        rows.append([FIRST + ALPHABET.index(c) if c in ALPHABET else FIRST + ALPHABET.index("?") for c in text] or [NULL])
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, ids != PAD


@register("conditioner", "tokens")
class TokenConditioner(Conditioner):
    """Character-level Transformer text encoder.

    Args:
        dim: model width (output features).
        layers, heads: Transformer encoder size.
        max_length: characters kept per prompt.
        route: ``"cross"`` (default) or ``"global"``.
        source: data field read in training (``"caption"`` or ``"label"``).
        examples: a few prompts to use for demos (saved in the config).
    """

    def __init__(self, dim: int = 128, layers: int = 2, heads: int = 4, max_length: int = 64, route: str = "cross",
                 source: str = "caption", examples: Sequence[str] = ()) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.dim, self.layers, self.heads, self.max_length = int(dim), int(layers), int(heads), int(max_length)
        self.route, self.source, self.examples = check_route(route), source, [str(e) for e in examples]
        self.embed = nn.Embedding(FIRST + len(ALPHABET), dim, padding_idx=PAD)
        self.position = nn.Parameter(torch.randn(max_length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def config(self) -> dict[str, Any]:
        return {"name": "tokens", "dim": self.dim, "layers": self.layers, "heads": self.heads,
                "max_length": self.max_length, "route": self.route, "source": self.source, "examples": self.examples}

    def demo_prompts(self) -> list[str]:
        return list(self.examples)

    def forward(self, prompts: Sequence[str]) -> Cond:
        """``B`` strings -> ``Cond(emb (B, L, dim), mask (B, L))`` (or ``(B, dim)`` when global)."""
        ids, mask = tokenize(prompts, self.max_length)
        ids, mask = ids.to(self.position.device), mask.to(self.position.device)
        h = self.embed(ids) + self.position[: ids.shape[1]]  # (B, L, dim)
        h = self.norm(self.encoder(h, src_key_padding_mask=~mask))
        cond = Cond(h, mask)
        return Cond(_pool(cond)) if self.route == "global" else cond
