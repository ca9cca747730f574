"""Registry of named components, and entry-point plugins.

Every configurable component (net, schedule, preconditioning, sampler, conditioner,
representation, vocoder, embedder, autoencoder, generator) registers under a ``kind`` and a ``name``::

    @register("sampler", "euler")
    @dataclass(frozen=True)
    class Euler: ...

Configs then name components instead of import paths, e.g. ``{"name": "unet1d", "channels": 64}``,
and :func:`build` turns such a config into an object.  Third-party packages add components with an
entry point in the group ``audiodiff.<kind>``::

    [project.entry-points."audiodiff.sampler"]
    my_sampler = "my_pkg.samplers:MySampler"

and the name then works wherever a built-in one does (``build``, ``generate``, the CLI, recipes).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping, TypeVar

from .errors import ConfigError

log = logging.getLogger(__name__)

KINDS = (
    "net",
    "schedule",
    "preconditioning",
    "sampler",
    "conditioner",
    "representation",
    "vocoder",
    "embedder",
    "autoencoder",
    "generator",
)

# Modules whose import registers the built-in components of each kind.
_BUILTIN_MODULES = {
    "net": ("audiodiff.nets",),
    "schedule": ("audiodiff.diffusion.schedules",),
    "preconditioning": ("audiodiff.diffusion.preconditioning",),
    "sampler": ("audiodiff.diffusion.samplers",),
    "conditioner": ("audiodiff.conditioning",),
    "representation": ("audiodiff.audio",),
    "vocoder": ("audiodiff.vocoders",),
    "embedder": ("audiodiff.evaluation",),
    "autoencoder": ("audiodiff.audio",),
    "generator": ("audiodiff.generators",),
}

_registry: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in KINDS}
_plugins_loaded: set[str] = set()

T = TypeVar("T")


def _check_kind(kind: str) -> None:
    if kind not in _registry:
        raise ConfigError(f"unknown component kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def register(kind: str, name: str) -> Callable[[T], T]:
    """Class (or factory) decorator that registers ``obj`` as ``kind``/``name``.

    The registered object gets a ``registry_name`` attribute so that it can write its own config.
    """
    _check_kind(kind)

    def decorator(obj: T) -> T:
        table = _registry[kind]
        if name in table and table[name] is not obj:
            raise ConfigError(f"{kind} {name!r} is already registered by {table[name]!r}")
        table[name] = obj  # type: ignore[assignment]
        try:
            obj.registry_name = name  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # builtins or frozen objects
            pass
        return obj

    return decorator


def _load(kind: str) -> None:
    """Import the built-in modules of ``kind`` and, once, its entry-point plugins."""
    for module in _BUILTIN_MODULES[kind]:
        importlib.import_module(module)
    if kind in _plugins_loaded:
        return
    _plugins_loaded.add(kind)
    for ep in entry_points(group=f"audiodiff.{kind}"):
        if ep.name in _registry[kind]:
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break the library
            log.warning("could not load audiodiff.%s plugin %r (%s): %s", kind, ep.name, ep.value, exc)
            continue
        register(kind, ep.name)(obj)


def names(kind: str) -> list[str]:
    """Sorted names registered for ``kind`` (built-ins and plugins)."""
    _check_kind(kind)
    _load(kind)
    return sorted(_registry[kind])


def get(kind: str, name: str) -> Callable[..., Any]:
    """The class or factory registered as ``kind``/``name``; the error lists the valid names."""
    _check_kind(kind)
    _load(kind)
    try:
        return _registry[kind][name]
    except KeyError:
        valid = ", ".join(sorted(_registry[kind])) or "(none)"
        raise ConfigError(f"unknown {kind} {name!r}; valid names: {valid}") from None


def accepted_keywords(factory: Callable[..., Any]) -> list[str] | None:
    """Keyword names ``factory`` accepts, or ``None`` if it takes ``**kwargs`` it does not name (a factory
    that forwards ``**kwargs`` names them in a ``forwarded_keywords`` attribute, e.g. the mel settings)."""
    params = inspect.signature(factory).parameters.values()
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        forwarded = getattr(factory, "forwarded_keywords", None)
        return None if forwarded is None else named + list(forwarded)
    return named


def build(kind: str, cfg: str | Mapping[str, Any], **extra: Any) -> Any:
    """Build a component from a config.

    Args:
        kind: one of :data:`KINDS`.
        cfg: a name, or a mapping with a ``"name"`` key and the constructor's keyword arguments.
        **extra: keyword arguments the caller supplies (e.g. sizes derived from other components);
            they override values of the same name in ``cfg``.
    """
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if not isinstance(cfg, Mapping) or "name" not in cfg:
        raise ConfigError(f"a {kind} config must be a name or a mapping with a 'name' key, got {cfg!r}")
    factory = get(kind, str(cfg["name"]))
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    kwargs.update(extra)
    valid = accepted_keywords(factory)
    if valid is not None:
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ConfigError(
                f"{kind} {cfg['name']!r} got unknown keyword(s) {', '.join(unknown)}; "
                f"valid keywords: {', '.join(valid) or '(none)'}"
            )
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build {kind} {cfg['name']!r}: {exc}") from exc
