"""The vocoder interface: natural-log magnitude mels ``(B, n_mels, frames)`` -> waveforms ``(B, 1, S)``.

A vocoder carries the mel settings it was made for (``mel_settings``); using it with a model whose
representation has other settings is an error (:func:`check_mel_settings`), never silent noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ConfigError, SettingsMismatchError, first_line


class Vocoder(nn.Module):
    """Base class of vocoders; subclasses implement :meth:`forward`."""

    #: the mel settings (see ``audiodiff.audio.Mel.settings``) this vocoder expects
    mel_settings: dict[str, Any]

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """``(B, n_mels, frames)`` natural-log magnitude mel -> ``(B, 1, S)`` waveform."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Constructor keywords that rebuild this vocoder (with ``"name"``)."""
        raise NotImplementedError


def check_mel_settings(vocoder_settings: Mapping[str, Any], model_settings: Mapping[str, Any], what: str = "vocoder") -> None:
    """Raise :class:`SettingsMismatchError` naming every mel setting that differs."""
    diffs = [
        f"{k}={vocoder_settings.get(k)!r} vs {model_settings.get(k)!r}"
        for k in sorted(set(vocoder_settings) | set(model_settings))
        if _differs(vocoder_settings.get(k), model_settings.get(k))
    ]
    if diffs:
        raise SettingsMismatchError(f"{what} mel settings differ from the model's: {'; '.join(diffs)}")


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) > 1e-6 * max(1.0, abs(float(a)))
    return a != b


#: trained vocoders shipped on their own (not as a model's ``vocoder/``), by name: ``vocos-sfx``, ...
SHIPPED_VOCODERS_DIR = Path(__file__).resolve().parent.parent / "pretrained" / "vocoders"


def list_shipped_vocoders() -> dict[str, Path]:
    """Names of the vocoders shipped in ``audiodiff/pretrained/vocoders`` and their folders."""
    if not SHIPPED_VOCODERS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(SHIPPED_VOCODERS_DIR.iterdir()) if (p / "config.json").is_file()}


def build_vocoder(spec: Any, mel_settings: Mapping[str, Any]) -> Vocoder:
    """A vocoder for a model whose representation has ``mel_settings``.

    ``spec`` is a registry name or config (e.g. ``"griffinlim"``, ``{"name": "griffinlim",
    "n_iter": 64}``), a path to a saved vocoder folder (``config.json`` + ``model.safetensors``), the
    name of a shipped vocoder (:func:`list_shipped_vocoders`, e.g. ``"vocos-sfx"``), or a
    ready :class:`Vocoder`.  Settings-free vocoders (Griffin-Lim) are built for ``mel_settings``;
    trained ones must match them (:class:`SettingsMismatchError` otherwise).
    """
    from ..registry import accepted_keywords, build, get, names

    unregistered = isinstance(spec, str) and spec not in names("vocoder")
    shipped = list_shipped_vocoders() if unregistered else {}
    if isinstance(spec, Vocoder):
        vocoder = spec
    elif isinstance(spec, (str, Path)) and Path(spec).is_dir():
        vocoder = load_vocoder_folder(spec)
    elif unregistered and spec in shipped:
        vocoder = load_vocoder_folder(shipped[spec])
    elif isinstance(spec, (str, Mapping)):
        if unregistered:
            raise ConfigError(f"unknown vocoder {spec!r}: not a folder, a registry name ({', '.join(names('vocoder'))}) "
                              f"or a shipped vocoder ({', '.join(shipped) or 'none'})")
        cfg = {"name": spec} if isinstance(spec, str) else dict(spec)
        keywords = accepted_keywords(get("vocoder", cfg.get("name", "")))
        takes_settings = keywords is None or "n_mels" in keywords
        settings = {k: v for k, v in mel_settings.items() if k not in cfg} if takes_settings else {}
        vocoder = build("vocoder", {**cfg, **settings})
    else:
        raise ConfigError(f"vocoder must be a registry name, a config mapping, a vocoder folder or an "
                          f"audiodiff.vocoders.Vocoder, got {type(spec).__name__}")
    check_mel_settings(vocoder.mel_settings, mel_settings)
    return vocoder


def save_vocoder_folder(vocoder: Vocoder, folder: Any, dtype: torch.dtype | None = None) -> Any:
    """Write a trained vocoder as ``config.json`` (its :meth:`Vocoder.config`) + ``model.safetensors``
    (floats cast to ``dtype`` if given, e.g. fp16); :func:`load_vocoder_folder` reads it back."""
    from ..checkpoint import save_folder

    return save_folder(folder, vocoder.config(), vocoder.state_dict(), dtype)


def load_vocoder_folder(folder: Any) -> Vocoder:
    """Load a trained vocoder saved as ``config.json`` (with its registry ``name``) + ``model.safetensors``."""
    from ..checkpoint import read_config, read_tensors
    from ..errors import ModelLoadError
    from ..registry import build

    config = read_config(folder)
    vocoder = build("vocoder", config)
    try:
        vocoder.load_state_dict(read_tensors(folder))
    except RuntimeError as exc:
        raise ModelLoadError(f"vocoder weights in {folder} do not match its config.json: {first_line(exc)}") from None
    return vocoder.eval()
