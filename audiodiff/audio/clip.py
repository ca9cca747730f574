"""A generated clip (:class:`Audio`) and how clips are written: WAV, JSON sidecar, optional PNG.

File names carry the clip's index, prompt, seed and a short hash of its settings
(:func:`settings_hash`), so runs with other settings never share a name; every file is written
atomically and never through a symlink (:mod:`audiodiff.files`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from ..errors import ConfigError, shorten
from ..files import atomic_write_bytes, check_target, json_bytes
from .io import save_audio


@dataclass
class Audio:
    """A generated clip.

    Attributes:
        waveform: ``(C, S)`` float32 in [-1, 1].
        sample_rate: Hz.
        features: the generated features in the representation's layout, e.g. ``(n_mels, frames)``
            normalised log-mel, or ``None``.
        metadata: everything needed to reproduce the clip (written as the JSON sidecar).
    """

    waveform: torch.Tensor
    sample_rate: int
    features: torch.Tensor | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate

    def save(self, path: str | Path, sidecar: bool = True, plot: bool = False,
             log_mel: torch.Tensor | None = None, hop_length: int | None = None, overwrite: bool = False) -> Path:
        """Write the WAV, its ``.json`` sidecar and, with ``plot``, a ``.png`` of its mel.

        For ``plot``, ``log_mel`` ``(n_mels, frames)`` and ``hop_length`` say what to draw.  Each
        file is written atomically and never through a symlink (:mod:`audiodiff.files`); unless
        ``overwrite``, an existing WAV, sidecar or PNG is an :class:`~audiodiff.errors.OutputExistsError`
        raised before anything is written.
        """
        path = Path(path)
        if plot and (log_mel is None or hop_length is None):
            raise ConfigError("Audio.save(plot=True) needs log_mel and hop_length")
        targets = [path] + [path.with_suffix(s) for s, wanted in ((".json", sidecar), (".png", plot)) if wanted]
        for target in targets:
            check_target(target, overwrite)
        png = None
        if plot:
            from ..plot import mel_png_bytes

            png = mel_png_bytes(log_mel, self.sample_rate, hop_length, title=path.name)
        meta = json_bytes(self.metadata) if sidecar else None
        written: list[Path] = []
        try:
            written.append(save_audio(path, self.waveform, self.sample_rate, overwrite))
            if meta is not None:
                written.append(atomic_write_bytes(path.with_suffix(".json"), meta, overwrite))
            if png is not None:
                written.append(atomic_write_bytes(path.with_suffix(".png"), png, overwrite))
        except BaseException:
            if not overwrite:  # they were new: no WAV is left without its sidecar
                for done in written:
                    done.unlink(missing_ok=True)
            raise
        return path

    def file_name(self, prefix: str = "clip") -> str:
        """``{prefix}_{index:03d}[_{prompt}][_seed{seed}]_{settings}.wav``: ``settings`` is a short hash of
        the sidecar's settings, so runs with other settings never share a name (see :func:`settings_hash`)."""
        check_prefix(prefix)
        meta = self.metadata
        tag = slug(meta.get("prompt") or "")
        seed = meta.get("seed")
        parts = [prefix, f"{int(meta.get('index', 0)):03d}", tag, "" if seed is None else f"seed{seed}",
                 settings_hash(meta)]
        return "_".join(p for p in parts if p) + ".wav"

def check_prefix(prefix: Any) -> str:
    """``prefix`` if it is a plain file name part: no folder (``../x`` would write outside ``--out``), not hidden."""
    if not isinstance(prefix, str) or not prefix or prefix != Path(prefix).name or prefix.startswith("."):
        raise ConfigError(f"a file name prefix must be a plain name (no folder, not hidden), got {shorten(prefix)}")
    return prefix

#: sidecar fields left out of :func:`settings_hash`: provenance and measurements, not settings, and the
#: index and seed (the file name shows them as they are), so the clips of one run share the hash
NOT_SETTINGS = frozenset({"command", "commit", "audiodiff_version", "seams", "seam_ratio", "inversion_error",
                          "index", "seed"})

def settings_hash(metadata: Mapping[str, Any], length: int = 8) -> str:
    """A short hex digest of a sidecar's settings (everything but :data:`NOT_SETTINGS`)."""
    text = json.dumps(_settings(metadata), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]

def _settings(value: Any) -> Any:
    """``value`` without the :data:`NOT_SETTINGS` keys, at every depth (an edit's ``inversion_error``)."""
    if isinstance(value, Mapping):
        return {k: _settings(v) for k, v in value.items() if k not in NOT_SETTINGS}
    return value

def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe short form of a prompt."""
    keep = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in keep.split("-") if part)[:limit]


def write_clips(clips: Iterable, model: Any, out: Path, prefix: str, plot: bool, overwrite: bool = False) -> list[Path]:
    """Save clips, each as it comes (``clips`` may be an iterator), as ``Audio.file_name(prefix)``:
    ``{prefix}_{index:03d}[_{prompt}][_seed{seed}]_{settings hash}.wav`` with sidecars (and PNGs with
    ``plot``).  An existing file is an error unless ``overwrite``."""
    paths = []
    for clip in clips:
        log_mel = model.representation.to_log_mel(clip.features[None])[0] if plot else None  # (1, n_mels, T) -> (n_mels, T)
        paths.append(clip.save(out / clip.file_name(prefix), plot=plot, log_mel=log_mel,
                               hop_length=model.representation.hop_length, overwrite=overwrite))
    return paths

