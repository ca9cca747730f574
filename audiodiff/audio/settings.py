"""The mel settings a representation and a vocoder must share: one frozen dataclass, one list of fields.

``Mel`` (:mod:`audiodiff.audio.mel`), the vocoders (``GriffinLim``, ``Vocos``) and the judges take
these as keywords and keep a :class:`MelSettings`; a model's and its vocoder's settings are compared
key by key (:func:`audiodiff.vocoders.base.check_mel_settings`), so a mismatch is an error, not silence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class MelSettings:
    """STFT -> mel filterbank -> log settings.

    Attributes:
        sample_rate: audio rate in Hz.
        n_fft, hop_length, win_length: STFT size, hop and window (Hann) length in samples
            (``win_length`` None: ``n_fft``).
        n_mels, f_min, f_max: mel filterbank (``f_max`` None: ``sample_rate / 2``).
        power: 1 for a magnitude mel, 2 for a power mel.
        mel_scale, mel_norm: ``"slaney"``/``"htk"`` scale and ``"slaney"``/``None`` filter norm.
        log_floor: magnitudes are clamped to this before the log.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int | None = None
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    power: float = 1.0
    mel_scale: str = "slaney"
    mel_norm: str | None = "slaney"
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        fill = {"sample_rate": int(self.sample_rate), "n_fft": int(self.n_fft), "hop_length": int(self.hop_length),
                "win_length": int(self.win_length or self.n_fft), "n_mels": int(self.n_mels),
                "f_min": float(self.f_min),
                "f_max": float(self.f_max) if self.f_max is not None else self.sample_rate / 2,
                "power": float(self.power), "log_floor": float(self.log_floor)}
        for name, value in fill.items():
            object.__setattr__(self, name, value)  # frozen: normalised once, here

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict in :data:`MEL_SETTING_KEYS` order (what configs store)."""
        return asdict(self)

    def check(self) -> "MelSettings":
        """``self`` if a mel filterbank can be built from it, else a one-line :class:`ConfigError`."""
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ConfigError("mel sample_rate, n_fft, hop_length and n_mels must be positive")
        if self.win_length > self.n_fft:
            raise ConfigError(f"mel win_length {self.win_length} is larger than n_fft {self.n_fft}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2 + 1e-6:
            raise ConfigError(f"mel needs 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, f_max={self.f_max}")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ConfigError(f"n_mels {self.n_mels} is more than the {self.n_fft // 2 + 1} STFT bins")
        if not self.log_floor > 0 or not math.isfinite(self.log_floor):
            raise ConfigError("mel log_floor must be a positive number")
        return self


#: the mel settings, in order: the keys of ``Mel.settings()`` that a vocoder must share with the model
MEL_SETTING_KEYS: tuple[str, ...] = tuple(f.name for f in fields(MelSettings))
