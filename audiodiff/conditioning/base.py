"""The conditioning value every conditioner returns, and the pieces shared by all conditioners.

A conditioner (registry kind ``conditioner``) is an ``nn.Module`` that maps a list of ``B``
prompt strings to a :class:`Cond`.  The empty string is the null condition (a learned embedding),
which is what classifier-free guidance's unconditional pass and training-time condition dropout
use (Ho & Salimans 2022, sec. 3.2).  Its ``route`` says where the net receives it: ``"global"``
(a vector added to the noise embedding, so it scales and shifts every residual block), ``"cross"``
(a token sequence for cross-attention, only at the net's attention levels) or ``"both"`` (the
sequence for cross-attention and its masked mean as the global vector).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

ROUTES = ("global", "cross", "both")
GLOBAL_ROUTES = ("global", "both")  # routes that feed the net's ``cond`` vector
CROSS_ROUTES = ("cross", "both")  # routes that feed its cross-attention ``context``


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


class Conditioner(nn.Module):
    """Base class: ``forward(prompts: list[str]) -> Cond`` with ``dim`` features, routed by ``route``."""

    dim: int
    route: str

    def config(self) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def demo_prompts(self) -> list[str]:
        """A few prompts this conditioner understands (for demos); empty if it cannot tell."""
        return []


def check_route(route: str) -> str:
    if route not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
    return route


def keep_mask(n: int, p: float, generator: torch.Generator | None = None) -> list[bool]:
    """Condition dropout for classifier-free guidance: which of ``n`` examples keep their condition
    (each is dropped to the null condition with probability ``p``)."""
    if p <= 0:
        return [True] * n
    return (torch.rand(n, generator=generator) >= p).tolist()


def drop_prompts(prompts: Sequence[str], keep: Sequence[bool]) -> list[str]:
    """``prompts`` with the dropped ones (``keep`` False) replaced by the null prompt ``""``."""
    return [text if k else "" for text, k in zip(prompts, keep)]


def net_inputs(conds: Sequence[tuple[Cond, str]]) -> dict[str, torch.Tensor]:
    """Combine routed conditions into the nets' keyword inputs ``cond``, ``context``, ``context_mask``.

    Global vectors are concatenated along features ``(B, sum D)`` (a sequence on a global route
    gives its masked mean); token sequences along the sequence ``(B, sum L, D)`` with their masks
    (a vector on a cross route is a one-token sequence).  Route ``"both"`` feeds both.
    """
    globals_ = [c.emb if not c.is_sequence else _pool(c) for c, route in conds if route in GLOBAL_ROUTES]
    seqs = [c for c, route in conds if route in CROSS_ROUTES]
    out: dict[str, torch.Tensor] = {}
    if globals_:
        out["cond"] = torch.cat(globals_, dim=-1)
    if seqs:
        seqs = [c if c.is_sequence else Cond(c.emb[:, None]) for c in seqs]  # (B, D) -> (B, 1, D)
        out["context"] = torch.cat([c.emb for c in seqs], dim=1)
        out["context_mask"] = torch.cat([_mask(c) for c in seqs], dim=1)
    return out


def concat_net_inputs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stack two batches of net inputs ``(B, ...)`` + ``(B', ...)`` -> ``(B + B', ...)``, padding token sequences."""
    out = {}
    if "cond" in a:
        out["cond"] = torch.cat([a["cond"], b["cond"]])
    if "context" in a:
        length = max(a["context"].shape[1], b["context"].shape[1])
        out["context"] = torch.cat([_pad_seq(a["context"], length), _pad_seq(b["context"], length)])
        out["context_mask"] = torch.cat([_pad_seq(a["context_mask"], length), _pad_seq(b["context_mask"], length)])
    return out


def _pad_seq(t: torch.Tensor, length: int) -> torch.Tensor:
    """Pad ``(B, L, ...)`` with zeros (False for masks) to ``(B, length, ...)``."""
    extra = length - t.shape[1]
    if extra == 0:
        return t
    pad = t.new_zeros((t.shape[0], extra, *t.shape[2:]))
    return torch.cat([t, pad], dim=1)


def _mask(c: Cond) -> torch.Tensor:
    if c.mask is not None:
        return c.mask
    return torch.ones(c.emb.shape[:2], dtype=torch.bool, device=c.emb.device)


def _pool(c: Cond) -> torch.Tensor:
    """Masked mean of a sequence ``(B, L, D) -> (B, D)``."""
    m = _mask(c).to(c.emb.dtype)[..., None]  # (B, L, 1)
    return (c.emb * m).sum(1) / m.sum(1).clamp(min=1)
