"""Mel-spectrogram pictures (matplotlib, from the ``plot`` extra)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from .errors import AudiodiffError


def mel_png_bytes(log_mel: torch.Tensor, sample_rate: int, hop_length: int, title: str | None = None) -> bytes:
    """A ``(n_mels, frames)`` log-mel drawn as a PNG with time (s) and mel-bin axes, as bytes."""
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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def save_mel_png(log_mel: torch.Tensor, path: str | os.PathLike, sample_rate: int, hop_length: int,
                 title: str | None = None, overwrite: bool = True) -> Path:
    """Save a ``(n_mels, frames)`` log-mel as a PNG (atomically, see :mod:`audiodiff.files`)."""
    from .files import atomic_write_bytes

    return atomic_write_bytes(path, mel_png_bytes(log_mel, sample_rate, hop_length, title), overwrite)
