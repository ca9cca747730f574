"""Checks of user-supplied arguments: the one place that says what a valid number, count or seed is.

Every public function (``generate``, the edits, ``likelihood``) checks its arguments here, and the CLI
passes its options straight through, so the API and the command line refuse the same values with
the same one-line :class:`~audiodiff.errors.ConfigError` (a ``ValueError``).

Seeds are integers in ``[0, 2**64)``, the range of ``torch.Generator.manual_seed``; clip ``i`` of a
call uses ``seed + i``, which must stay in that range.  Values are never wrapped or truncated: ``2.7``
steps or a seed of ``2**70`` is an error, not 2 steps or another seed.
"""

from __future__ import annotations

import json
import math
import operator
import random
from typing import Any

from .errors import ConfigError, first_line, shorten

#: device types that can run a model and hand audio back (not ``meta``)
RUN_DEVICES = ("cpu", "cuda", "mps", "xpu")
#: the most clips one call makes (they stream to disk, but each needs its seed, prompt and sidecar)
MAX_CLIPS = 1_000_000
#: the most clips sampled together in one batch
MAX_BATCH = 1024
#: seeds are in [0, SEED_LIMIT)
SEED_LIMIT = 2**64
#: the largest magnitude accepted for an unbounded real option (a guidance scale, a sampler option):
#: far beyond any useful value, small enough that float32 arithmetic cannot overflow with it
MAX_MAGNITUDE = 1000.0


def number(name: str, value: Any, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float if it is a finite real number within ``[low, high]`` (ends open if asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {shorten(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise ConfigError(f"{name} must be a finite number, got {shorten(value)}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    too_low = low is not None and (value < low or (low_open and value == low))
    too_high = high is not None and (value > high or (high_open and value == high))
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ConfigError(f"{name} must be in {left}{lo}, {hi}{right}, got {value:g}")
    return value


def bounded(name: str, value: Any) -> float:
    """A finite number of magnitude at most :data:`MAX_MAGNITUDE` (options without a natural range)."""
    return number(name, value, -MAX_MAGNITUDE, MAX_MAGNITUDE)


def integer(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` if it is an integer (not a bool, not a float such as ``2.7``) in ``[minimum, maximum]``."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be an integer, got {shorten(value)}") from None
    if value < minimum or (maximum is not None and value > maximum):
        limit = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ConfigError(f"{name} must be an integer {limit}, got {value}")
    return value


def seed(value: Any, count: int = 1) -> int:
    """The base seed of ``count`` clips: ``value`` (an integer with ``value + count - 1 < 2**64``) or,
    for ``None``, a random one in ``[0, 2**31)``."""
    if value is None:
        return random.randrange(2**31)
    return integer("seed", value, 0, SEED_LIMIT - count)


def device(name: Any) -> str:
    """A torch device that can run a model here (default: ``cuda`` if available, else ``cpu``)."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(name).type
        if kind not in RUN_DEVICES:
            raise RuntimeError(f"audio cannot be made on a {kind} device; use one of {', '.join(RUN_DEVICES)}")
        torch.empty(0, device=name)
    except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
        raise ConfigError(f"device {shorten(str(name))} is not available: {first_line(exc)}") from None
    return str(name)


def key_value(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)`` with VALUE read as JSON (``eta=0.5``, ``r=[1,2]``); a bare word stays a string."""
    key, sep, raw = str(text).partition("=")
    if not sep or not key:
        raise ConfigError(f"expected KEY=VALUE, got {shorten(text)}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def key_value_arg(text: str) -> tuple[str, Any]:
    """:func:`key_value` as an argparse ``type``: a bad ``KEY=VALUE`` is argparse's usage error."""
    import argparse

    try:
        return key_value(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
