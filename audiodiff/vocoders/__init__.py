"""Vocoders: natural-log magnitude mels back to waveforms, behind one interface."""

from .base import Vocoder, build_vocoder, check_mel_settings, list_shipped_vocoders, load_vocoder_folder, save_vocoder_folder
from .griffinlim import GriffinLim
from .vocos import Vocos

__all__ = [
    "Vocoder", "GriffinLim", "Vocos", "build_vocoder", "check_mel_settings", "load_vocoder_folder",
    "save_vocoder_folder", "list_shipped_vocoders",
]
