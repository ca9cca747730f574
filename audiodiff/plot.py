"""Mel-spectrogram pictures (matplotlib, from the ``plot`` extra)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import AudiodiffError


def save_mel_png(log_mel: torch.Tensor, path: str | os.PathLike, sample_rate: int, hop_length: int,
                 title: str | None = None) -> Path:
    """Save a ``(n_mels, frames)`` log-mel as a PNG with time (s) and mel-bin axes."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise AudiodiffError("plots need matplotlib: pip install 'audiodiff[plot]'") from None
    data = log_mel.detach().float().cpu().numpy()
    seconds = data.shape[1] * hop_length / sample_rate
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    image = ax.imshow(data, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, data.shape[0]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="log magnitude")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
