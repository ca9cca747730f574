"""What a judge's classes are, and which note a caption asks for: read from captions by patterns that
a judge's config carries, so the library knows no recipe's caption format.

A judge's ``target`` is ``"label"`` (a manifest item's label; a prompt stands for its label),
``"caption"`` (the caption itself, e.g. ``"door slam"``), or a :class:`CaptionPattern` config
``{"pattern": REGEX, "group": NAME, "classes": {TEXT: CLASS}}``: the named group of the regular
expression's match in a caption, lower-cased with its spaces collapsed, looked up in ``classes``.
Its ``notes`` (optional) is a regular expression whose group ``note`` is a note name (``"C5"``,
``"D#4"``, ``"Bb2"``; :func:`audiodiff.data.notes.note_name_to_midi`): the pitch a caption asks for.
The recipe that trains a judge writes both into its config (``recipes/judges.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..data.notes import note_name_to_midi
from ..errors import ConfigError

#: the targets named by a string
NAMED_TARGETS: tuple[str, ...] = ("label", "caption")


def _compile(pattern: Any, groups: tuple[str, ...], what: str) -> re.Pattern:
    """``pattern`` compiled; an error unless it is a valid regular expression with the named ``groups``."""
    if not isinstance(pattern, str):
        raise ConfigError(f"{what} must be a regular expression string, got {type(pattern).__name__}")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{what} is not a valid regular expression: {exc}") from None
    missing = [g for g in groups if g not in compiled.groupindex]
    if missing:
        raise ConfigError(f"{what} needs the named group(s) {', '.join(missing)}")
    return compiled


@dataclass(frozen=True)
class CaptionPattern:
    """A class read from a caption: the ``group`` of ``pattern``'s match, normalised, looked up in ``classes``."""

    pattern: str
    group: str
    classes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _compile(self.pattern, (self.group,), "a judge target's pattern")

    def __call__(self, caption: str | None) -> str | None:
        """The class of ``caption``; ``None`` when the pattern does not match or the text has no class."""
        match = re.match(self.pattern, caption or "")
        if match is None:
            return None
        return self.classes.get(" ".join(match.group(self.group).lower().split()))

    def config(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "group": self.group, "classes": dict(self.classes)}


def check_target(target: Any) -> str | CaptionPattern:
    """A judge target: one of :data:`NAMED_TARGETS` or a :class:`CaptionPattern` (from its config)."""
    if isinstance(target, CaptionPattern) or target in NAMED_TARGETS:
        return target
    if isinstance(target, Mapping):
        try:
            return CaptionPattern(**target)
        except TypeError as exc:
            raise ConfigError(f"a caption-pattern judge target takes pattern, group and classes: {exc}") from None
    raise ConfigError(f"unknown judge target {target!r}; valid: {', '.join(NAMED_TARGETS)} or "
                      "{'pattern': ..., 'group': ..., 'classes': {...}}")


def check_notes(notes: Any) -> str | None:
    """``notes``: ``None`` or a regular expression with a group ``note``."""
    if notes is not None:
        _compile(notes, ("note",), "a judge's notes pattern")
    return notes


def caption_pitch(caption: str | None, notes: str | None) -> int | None:
    """The MIDI pitch a caption asks for under the ``notes`` pattern; ``None`` if it names no note."""
    if notes is None:
        return None
    match = re.match(notes, caption or "")
    return None if match is None else note_name_to_midi(match.group("note"))
