"""Caption retrieval: does a clip's embedding find its own caption among all captions?

The audio-to-text recall@k of CLAP-style joint embeddings (Elizalde et al. 2023, "CLAP: learning
audio concepts from natural language supervision", sec. 4.2; Wu et al. 2023, table 2): clip ``i``
is a hit when caption ``i`` is among the ``k`` captions most cosine-similar to it.  Chance level
for ``N`` distinct captions is ``k / N``.  :func:`recall_at_k` is the same against a bank of ``M``
distinct captions that many clips may share (each clip names its caption's row).

:func:`caption_bank` builds such a bank from an audio embedder alone (the sound-effect judge): a
caption's embedding is the mean embedding of the clips that carry it, the class prototype of
prototypical networks (Snell et al. 2017, "Prototypical networks for few-shot learning", eq. 1).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def recall_at_k(audio_emb: Any, caption_emb: Any, targets: Any, k: int = 5) -> tuple[float, float]:
    """Audio-to-text recall@k against a bank of captions, and its chance level.

    Args:
        audio_emb: ``(N, D)`` clip embeddings.
        caption_emb: ``(M, D)`` embeddings of ``M`` distinct captions, in the same space.
        targets: ``(N,)`` the row of ``caption_emb`` that is each clip's own caption.
        k: how many of the nearest captions count.

    Returns:
        ``(recall, chance)``: the fraction of clips whose own caption is among their ``k`` most
        cosine-similar captions, and ``min(k, M) / M``.
    """
    audio = torch.as_tensor(audio_emb, dtype=torch.float32)
    text = torch.as_tensor(caption_emb, dtype=torch.float32)
    target = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if audio.dim() != 2 or text.dim() != 2 or audio.shape[1] != text.shape[1] or min(audio.shape[0], text.shape[0]) == 0:
        raise ConfigError(f"retrieval needs (N, D) clip and (M, D) caption embeddings, got {tuple(audio.shape)} and {tuple(text.shape)}")
    if target.shape[0] != audio.shape[0] or (target < 0).any() or (target >= text.shape[0]).any():
        raise ConfigError(f"retrieval needs one caption row in [0, {text.shape[0]}) per clip, got {target.shape[0]} for {audio.shape[0]} clips")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    m = text.shape[0]
    sim = F.normalize(audio, dim=1) @ F.normalize(text, dim=1).T  # (N, M) cosine similarities
    top = sim.topk(min(k, m), dim=1).indices  # (N, k)
    hits = (top == target[:, None]).any(dim=1)
    return float(hits.float().mean()), min(k, m) / m


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
    return recall_at_k(audio, text, torch.arange(audio.shape[0]), k)


def caption_bank(embeddings: Any, captions: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """Distinct captions (in order of first appearance) and ``(M, D)`` the mean of the ``(N, D)`` clip
    ``embeddings`` that carry each (row ``i`` carries ``captions[i]``)."""
    emb = torch.as_tensor(embeddings, dtype=torch.float32)
    if emb.dim() != 2 or emb.shape[0] != len(captions) or emb.shape[0] == 0:
        raise ConfigError(f"caption_bank needs one caption per row of (N, D) embeddings, got {len(captions)} for {tuple(emb.shape)}")
    names = list(dict.fromkeys(captions))
    index = {name: i for i, name in enumerate(names)}
    rows = torch.tensor([index[c] for c in captions])
    sums = torch.zeros(len(names), emb.shape[1]).index_add_(0, rows, emb)  # (M, D)
    counts = torch.bincount(rows, minlength=len(names)).clamp(min=1)[:, None].float()  # (M, 1)
    return names, sums / counts


def retrieval_scores(audio_emb: Any, captions: Sequence[str | None], bank: tuple[list[str], torch.Tensor],
                     ks: Sequence[int] = (1, 5)) -> dict[str, Any] | None:
    """Recall@k (and chance) of clips against the bank's captions that occur among ``captions``.

    Clip ``i`` counts when ``captions[i]`` is in the bank; the candidates are the distinct captions of
    those clips.  ``None`` when no clip counts.  Keys: ``retrieval_top{k}``, ``retrieval_chance_top{k}``,
    ``retrieval_clips``, ``retrieval_captions``.
    """
    names, bank_emb = bank
    index = {name: i for i, name in enumerate(names)}
    rows = [i for i, c in enumerate(captions) if c in index]
    if not rows:
        return None
    candidates = list(dict.fromkeys(captions[i] for i in rows))
    emb = torch.as_tensor(audio_emb, dtype=torch.float32)[rows]  # (n, D)
    text = bank_emb[[index[c] for c in candidates]]  # (m, D)
    position = {c: j for j, c in enumerate(candidates)}
    targets = torch.tensor([position[captions[i]] for i in rows])
    out: dict[str, Any] = {"retrieval_clips": len(rows), "retrieval_captions": len(candidates)}
    for k in ks:
        out[f"retrieval_top{k}"], out[f"retrieval_chance_top{k}"] = recall_at_k(emb, text, targets, k)
    return out
