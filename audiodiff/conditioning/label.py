"""``label``: a learned embedding per class name (plus one for the null condition)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ConfigError, shorten
from ..registry import register
from .base import Cond, Conditioner, check_route


@register("conditioner", "label")
class LabelConditioner(Conditioner):
    """Class-index embedding: ``labels[i]`` -> row ``i``; ``""`` -> the learned null row.

    Args:
        labels: the class names, in a fixed order (saved in the config).
        dim: embedding size.
        route: ``"global"`` (default) or ``"cross"`` (a one-token sequence).
        source: the data field it reads in training (``"label"`` or ``"caption"``).
    """

    def __init__(self, labels: Sequence[str], dim: int = 128, route: str = "global", source: str = "label") -> None:
        super().__init__()
        labels = [str(x) for x in labels]
        if not labels or len(set(labels)) != len(labels) or "" in labels:
            raise ValueError("labels must be a non-empty list of distinct, non-empty names")
        self.labels, self.dim, self.route, self.source = labels, int(dim), check_route(route), source
        self.index = {name: i for i, name in enumerate(labels)}
        self.embedding = nn.Embedding(len(labels) + 1, self.dim)  # last row: null
        nn.init.normal_(self.embedding.weight, std=1.0)

    def config(self) -> dict[str, Any]:
        return {"name": "label", "labels": self.labels, "dim": self.dim, "route": self.route, "source": self.source}

    def demo_prompts(self) -> list[str]:
        return list(self.labels)

    def forward(self, prompts: Sequence[str]) -> Cond:
        """``B`` label names (or ``""``) -> ``Cond(emb (B, dim))``."""
        unknown = sorted({p for p in prompts if p and p not in self.index})
        if unknown:
            shown = ", ".join(self.labels[:20]) + (", ..." if len(self.labels) > 20 else "")
            raise ConfigError(f"unknown label(s) {', '.join(map(shorten, unknown[:5]))}; this model knows: {shown}")
        idx = torch.tensor([self.index.get(p, len(self.labels)) for p in prompts], device=self.embedding.weight.device)
        return Cond(self.embedding(idx))  # (B, dim)
