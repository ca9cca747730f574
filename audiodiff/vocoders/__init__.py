"""Vocoders: natural-log magnitude mels back to waveforms, behind one interface."""

from .base import Vocoder, build_vocoder, check_mel_settings, load_vocoder_folder
from .griffinlim import GriffinLim

__all__ = ["Vocoder", "GriffinLim", "build_vocoder", "check_mel_settings", "load_vocoder_folder"]
