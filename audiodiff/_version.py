"""The library's version: one place, read by the package, the sidecars, saved configs and pyproject.toml."""

__version__ = "0.1.0"
