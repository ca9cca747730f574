"""Caption retrieval: does a clip's embedding find its own caption among all captions?

The audio-to-text recall@k of CLAP-style joint embeddings (Elizalde et al. 2023, "CLAP: learning
audio concepts from natural language supervision", sec. 4.2; Wu et al. 2023, table 2): clip ``i``
is a hit when caption ``i`` is among the ``k`` captions most cosine-similar to it.  Chance level
for ``N`` distinct captions is ``k / N``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def caption_retrieval(audio_emb: Any, text_emb: Any, k: int = 5) -> tuple[float, float]:
    """Audio-to-text recall@k and its chance level.

    Args:
        audio_emb: ``(N, D)`` clip embeddings.
        text_emb: ``(N, D)`` caption embeddings in the same space; row ``i`` is clip ``i``'s caption.
        k: how many of the nearest captions count.

    Returns:
        ``(recall, chance)``: the fraction of clips whose own caption is among their ``k`` most
        cosine-similar captions, and ``min(k, N) / N``.
    """
    audio = torch.as_tensor(audio_emb, dtype=torch.float32)
    text = torch.as_tensor(text_emb, dtype=torch.float32)
    if audio.dim() != 2 or audio.shape != text.shape or audio.shape[0] == 0:
        raise ConfigError(f"caption_retrieval needs two (N, D) embeddings of one shape, got {tuple(audio.shape)} and {tuple(text.shape)}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    n = audio.shape[0]
    sim = F.normalize(audio, dim=1) @ F.normalize(text, dim=1).T  # (N, N) cosine similarities
    top = sim.topk(min(k, n), dim=1).indices  # (N, k)
    hits = (top == torch.arange(n)[:, None]).any(dim=1)
    return float(hits.float().mean()), min(k, n) / n
