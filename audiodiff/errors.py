"""Errors that audiodiff raises on purpose.

Every error a user can cause (a bad name, a bad keyword, a missing or corrupt model folder, a bad
argument) is an :class:`AudiodiffError` with a one-line message.  The CLI prints that line and exits
with status 2; Python callers can catch the class (or the builtin it also derives from).
"""

from __future__ import annotations


class AudiodiffError(Exception):
    """Base class for errors caused by user input; the message is one line that names the problem."""


class ConfigError(AudiodiffError, ValueError):
    """A configuration names something unknown or passes an invalid value."""


class ModelLoadError(AudiodiffError, OSError):
    """A model folder is missing, incomplete, corrupt, or does not match its config."""


class AdapterError(ModelLoadError):
    """A LoRA adapter folder is missing, corrupt, or made for another model."""


class AudioError(AudiodiffError, OSError):
    """An audio file cannot be read or written."""


class DownloadError(AudiodiffError, OSError):
    """A dataset cannot be downloaded (offline, HTTP error, cut connection, checksum mismatch)."""


class SettingsMismatchError(AudiodiffError, ValueError):
    """Two components disagree on settings they must share (e.g. a vocoder's mel settings)."""


class TrainingError(AudiodiffError):
    """Training cannot go on (e.g. the loss keeps being NaN); the message says what to try."""


class OutputError(AudiodiffError, OSError):
    """An output file cannot be written (no space, no permission, a symlink in the way, ...)."""


class OutputExistsError(OutputError, FileExistsError):
    """An output file already exists and replacing it was not asked for (``--overwrite``)."""


def shorten(text: object, limit: int = 80) -> str:
    """``repr(text)`` cut to about ``limit`` characters, for naming user input in a one-line error."""
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[:limit - 20]}...({len(shown)} characters)"


def first_line(exc: object, limit: int | None = None) -> str:
    """The first line of ``exc``'s message (at most ``limit`` characters), or its type's name when the
    message is empty (an ``EOFError()`` from a truncated file has none)."""
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line[:limit] if limit is not None else line
