"""Notes and General MIDI: MIDI numbers <-> scientific pitch names, GM programs and their families.

The 16 program families are those of the General MIDI 1 sound set (MIDI Manufacturers Association,
"General MIDI System Level 1", 1991): program ``p`` (0-127) belongs to family ``p // 8``.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

NOTE_NAMES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: a note name: letter, optional accidental (``s`` or ``#`` sharp, ``b`` flat), octave
NOTE_NAME = re.compile(r"^([A-Ga-g])(s|#|b)?(-?\d)$")


def midi_to_note_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI note with sharps: ``60 -> "C4"``, ``21 -> "A0"``, ``70 -> "A#4"``."""
    pitch = int(pitch)
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def note_name_to_midi(name: str) -> int | None:
    """``"C4" -> 60``, ``"Ds1"``/``"D#1" -> 27``, ``"Bb2" -> 46``; ``None`` if not a note name."""
    match = NOTE_NAME.match(name)
    if match is None:
        return None
    letter, accidental, octave = match.groups()
    offset = {"s": 1, "#": 1, "b": -1}.get(accidental or "", 0)
    return (int(octave) + 1) * 12 + NOTE_NAMES.index(letter.upper()) + offset


#: GM program -> (instrument name used in captions, NSynth-like family)
GM_INSTRUMENTS: dict[int, tuple[str, str]] = {
    0: ("piano", "keyboard"),
    12: ("marimba", "mallet"),
    19: ("organ", "organ"),
    24: ("guitar", "guitar"),
    33: ("bass", "bass"),
    40: ("violin", "string"),
    56: ("trumpet", "brass"),
    71: ("clarinet", "reed"),
    73: ("flute", "flute"),
    80: ("synth lead", "synth_lead"),
}

#: the 16 General MIDI program families (GM 1 sound set), eight programs each: program // 8 indexes this
GM_FAMILIES: tuple[str, ...] = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects",
)

#: instrument name in captions -> GM program (the Salamander notes are captioned "a piano playing ...")
INSTRUMENT_PROGRAMS: dict[str, int] = {name: program for program, (name, _) in GM_INSTRUMENTS.items()}

def gm_family(program: int) -> str:
    """The GM family of a program number 0-127: ``0 -> "piano"``, ``73 -> "pipe"`` (flute), ``80 -> "synth lead"``."""
    if not 0 <= int(program) <= 127:
        raise ConfigError(f"GM program numbers are 0-127, got {program}")
    return GM_FAMILIES[int(program) // 8]

def instrument_family(instrument: str) -> str | None:
    """The GM family of an instrument named in captions (``"flute" -> "pipe"``), ``None`` if unknown."""
    program = INSTRUMENT_PROGRAMS.get(" ".join(instrument.lower().split()))
    return None if program is None else gm_family(program)
