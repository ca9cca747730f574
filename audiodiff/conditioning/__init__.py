"""Conditioning: conditioners turn raw inputs (text, labels, audio) into ``Cond(emb, mask)``."""

from .base import Cond

__all__ = ["Cond"]
