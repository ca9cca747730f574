"""Conditioning: conditioners turn prompts (labels, text) into ``Cond(emb, mask)``.

Built-ins: ``label`` (class embedding), ``tokens`` (a small character-level encoder trained with
the model) and ``text`` (a frozen pretrained sentence encoder; ``text`` extra).
"""

from .base import (CROSS_ROUTES, GLOBAL_ROUTES, ROUTES, Cond, Conditioner, concat_net_inputs, drop_prompts, keep_mask,
                   net_inputs)
from .label import LabelConditioner
from .text import TextConditioner
from .tokens import TokenConditioner

__all__ = ["CROSS_ROUTES", "GLOBAL_ROUTES", "ROUTES", "Cond", "Conditioner", "LabelConditioner", "TextConditioner",
           "TokenConditioner", "concat_net_inputs", "drop_prompts", "keep_mask", "net_inputs"]
