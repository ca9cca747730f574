"""Model folders (``config.json`` + ``model.safetensors``) written atomically and read without pickle.

A folder is written file by file with :func:`audiodiff.files.atomic_write_bytes` (a temporary file
in the same folder, ``fsync``, ``os.replace``), so a crash never leaves a half-written file under the
final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import ModelLoadError, first_line, shorten
from .files import atomic_write_bytes, json_bytes

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def tensors_to_bytes(tensors: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> bytes:
    """Serialise tensors with safetensors; floating tensors are cast to ``dtype`` when given."""
    out = {}
    for k, v in tensors.items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous().clone()
    return st_save(out)


def write_config(folder: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """Atomically write ``folder/config.json``."""
    return atomic_write_bytes(Path(folder) / CONFIG_NAME, json_bytes(config))


def save_folder(folder: str | os.PathLike, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor],
                dtype: torch.dtype | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``folder`` (weights first, config last)."""
    folder = Path(folder)
    atomic_write_bytes(folder / WEIGHTS_NAME, tensors_to_bytes(tensors, dtype))
    write_config(folder, config)
    return folder


def path_in_folder(folder: str | os.PathLike, value: str | os.PathLike, what: str) -> Path:
    """The path ``value`` named in a model folder's config, resolved against ``folder`` (symlinks
    followed); a :class:`ModelLoadError` if it leads outside the folder.  The one check that keeps
    a model folder self-contained: a downloaded config cannot reach ``../../etc`` or ``/home``."""
    root = Path(folder).resolve()
    target = (root / Path(value).expanduser()).resolve()
    if not target.is_relative_to(root):
        raise ModelLoadError(f"{Path(folder) / CONFIG_NAME}: {what} path {shorten(str(value))} leads outside the "
                             "model folder; a model folder may only name files inside itself or shipped names")
    return target


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """Read ``folder/config.json``; a missing or invalid file is a :class:`ModelLoadError`."""
    path = Path(folder) / CONFIG_NAME
    if not Path(folder).is_dir():
        raise ModelLoadError(f"model folder not found: {folder}")
    if not path.is_file():
        raise ModelLoadError(f"model folder {folder} has no {CONFIG_NAME}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return config


def read_tensors(folder: str | os.PathLike, name: str = WEIGHTS_NAME) -> dict[str, torch.Tensor]:
    """Read ``folder/model.safetensors`` (no pickle); a missing or corrupt file is a :class:`ModelLoadError`."""
    path = Path(folder) / name
    if not path.is_file():
        raise ModelLoadError(f"model folder {folder} has no {name}")
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path} is not a valid safetensors file: {first_line(exc)}") from None


def model_folder(folder: str | os.PathLike) -> Path:
    """``folder``, or its ``model/`` when ``folder`` is a training run's folder (no config of its own)."""
    if not (Path(folder) / CONFIG_NAME).is_file() and (Path(folder) / "model" / CONFIG_NAME).is_file():
        return Path(folder) / "model"
    return Path(folder)


def load_built_folder(kind: str, folder: str | os.PathLike, metadata_keys: tuple[str, ...]) -> torch.nn.Module:
    """The module of registry ``kind`` saved in ``folder`` (or in a run folder's ``model/``), in eval mode.

    Builds it by the registry name in ``config.json`` (the keys in ``metadata_keys`` describe it and
    are dropped) and loads its weights, cast to the built module's dtypes.  Every problem (missing
    folder, bad config, an unknown name, weights that do not fit) is a one-line :class:`ModelLoadError`.
    """
    from .errors import ConfigError
    from .registry import build

    folder = model_folder(folder)
    config = {k: v for k, v in read_config(folder).items() if k not in metadata_keys}
    tensors = read_tensors(folder)
    try:
        module = build(kind, config)
    except ConfigError as exc:
        raise ModelLoadError(f"{Path(folder) / CONFIG_NAME}: {exc}") from None
    expected = module.state_dict()
    if set(expected) != set(tensors) or any(expected[k].shape != tensors[k].shape for k in expected):
        raise ModelLoadError(f"weights in {folder} do not match its config.json")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    module.source = str(folder)
    return module.eval()
