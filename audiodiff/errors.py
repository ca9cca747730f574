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


class AudioError(AudiodiffError, OSError):
    """An audio file cannot be read or written."""


class SettingsMismatchError(AudiodiffError, ValueError):
    """Two components disagree on settings they must share (e.g. a vocoder's mel settings)."""
