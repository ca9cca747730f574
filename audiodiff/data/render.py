"""Render an NSynth-like set of single notes from a General MIDI soundfont with FluidSynth.

Each note is instrument x pitch x velocity, held for ``hold`` seconds then released, written as a
mono WAV, with captions such as "a flute playing C5" and the instrument family as label.  Needs
the ``pyfluidsynth`` package and the FluidSynth library (Debian: ``libfluidsynth3``) plus a GM
soundfont (Debian: ``timgm6mb-soundfont`` or ``fluid-soundfont-gm``).  Rendering is cached: files
already present are not rendered again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..audio.io import save_audio
from ..errors import AudiodiffError, ConfigError
from .manifest import ManifestItem, hash_split
from .notes import GM_INSTRUMENTS, midi_to_note_name

log = logging.getLogger(__name__)

SOUNDFONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2",
              "/usr/share/sounds/sf2/default-GM.sf2")


def find_soundfont(path: str | None = None) -> str:
    """``path`` if given, else the first Debian GM soundfont installed."""
    candidates = [path] if path else list(SOUNDFONTS)
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise ConfigError(f"no General MIDI soundfont found (tried {', '.join(candidates)}); "
                      "install one: apt-get install timgm6mb-soundfont")


def _synth(sample_rate: int, soundfont: str):
    try:
        import fluidsynth
    except (ImportError, OSError) as exc:
        raise AudiodiffError(f"rendering notes needs pyfluidsynth and libfluidsynth "
                             f"(pip install pyfluidsynth; apt-get install libfluidsynth3): {exc}") from None
    synth = fluidsynth.Synth(samplerate=float(sample_rate), gain=0.6)
    return synth, synth.sfload(soundfont)


def render_note(synth, sfid: int, program: int, pitch: int, velocity: int, hold: float, release: float,
                sample_rate: int) -> np.ndarray:
    """One note as mono float32 ``(round((hold + release) * sample_rate),)``."""
    synth.program_select(0, sfid, 0, program)
    synth.noteon(0, pitch, velocity)
    held = synth.get_samples(round(hold * sample_rate))
    synth.noteoff(0, pitch)
    tail = synth.get_samples(round(release * sample_rate))
    synth.system_reset()
    stereo = np.concatenate([held, tail]).reshape(-1, 2).astype(np.float32) / 32768.0  # interleaved -> (T, 2)
    return stereo.mean(axis=1)


def prepare_gm_notes(
    root: str | os.PathLike,
    programs: Sequence[int] = tuple(GM_INSTRUMENTS),
    pitches: Sequence[int] = tuple(range(48, 85)),
    velocities: Sequence[int] = (70, 110),
    hold: float = 0.75,
    release: float = 0.25,
    sample_rate: int = 16000,
    soundfont: str | None = None,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> list[ManifestItem]:
    """Render (once) and list GM notes under ``root/notes/``; split by a hash of the note's name."""
    unknown = sorted(set(programs) - set(GM_INSTRUMENTS))
    if unknown:
        raise ConfigError(f"no caption for GM program(s) {unknown}; known: {sorted(GM_INSTRUMENTS)}")
    folder = Path(root) / "notes"
    folder.mkdir(parents=True, exist_ok=True)
    synth = None
    items = []
    for program in programs:
        name, family = GM_INSTRUMENTS[program]
        for pitch in pitches:
            for velocity in velocities:
                stem = f"{family}_{program:03d}_{pitch:03d}_{velocity:03d}"
                path = folder / f"{stem}.wav"
                if not path.is_file():
                    if synth is None:
                        synth = _synth(sample_rate, find_soundfont(soundfont))
                    wave = render_note(*synth, program, pitch, velocity, hold, release, sample_rate)
                    save_audio(path, torch.as_tensor(wave, dtype=torch.float32), sample_rate)  # atomic: no half note
                items.append(ManifestItem(
                    path=str(path.resolve()), duration=hold + release, sample_rate=sample_rate,
                    caption=f"a {name} playing {midi_to_note_name(pitch)}", label=family,
                    split=hash_split(stem, valid_fraction, test_fraction)))
    if synth is not None:
        synth[0].delete()
    log.info("GM notes: %d clips in %s", len(items), folder)
    return items
