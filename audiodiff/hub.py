"""Finding models: shipped ones by name, local folders, and (for users with a network) the Hub.

``load("speech")`` loads the model shipped in ``audiodiff/pretrained/speech``; ``load("path/to/dir")``
a folder written by ``DiffusionModel.save``; ``load("hf://org/repo")`` downloads a snapshot of a
Hugging Face Hub repository with ``huggingface_hub`` (optional) and loads it the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from . import checks
from .checkpoint import CONFIG_NAME
from .errors import ModelLoadError, first_line
from .model import DiffusionModel
from .network import require_hub

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
HUB_PREFIX = "hf://"


def list_models() -> dict[str, Path]:
    """Shipped model names and their folders."""
    if not PRETRAINED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(PRETRAINED_DIR.iterdir()) if (p / CONFIG_NAME).is_file()}


def resolve(name_or_dir: str | os.PathLike) -> Path:
    """The local folder of a shipped model name, a folder path, or an ``hf://org/repo[@revision]``.

    A shipped name wins over a folder of the same name in the current directory (a ``./speech``
    folder must not shadow the shipped ``speech`` model): write ``./speech`` to mean the folder.
    """
    text = str(name_or_dir)
    if text.startswith(HUB_PREFIX):
        return download(text[len(HUB_PREFIX):])
    shipped = list_models()
    path = Path(text).expanduser()
    if text in shipped and (isinstance(name_or_dir, str) or not path.is_dir()):
        return shipped[text]
    if path.is_dir():
        return path
    if path.exists():
        raise ModelLoadError(f"model path {path} is not a folder")
    names = ", ".join(shipped) or "none yet"
    raise ModelLoadError(f"no model folder or shipped model named {text!r} (shipped models: {names})")


def download(repo: str) -> Path:
    """Download ``org/repo[@revision]`` from the Hugging Face Hub and return the local snapshot."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelLoadError("loading hf:// models needs huggingface_hub: pip install huggingface_hub") from None
    repo_id, _, revision = repo.partition("@")
    kwargs = {"repo_id": repo_id, "revision": revision or None, "allow_patterns": ["*.json", "*.safetensors"]}
    try:  # a snapshot already in the local cache needs no network
        return Path(snapshot_download(**kwargs, local_files_only=True))
    except Exception:
        pass
    require_hub(repr(repo))  # offline: one line now, not a minute of retries
    try:
        return Path(snapshot_download(**kwargs))
    except Exception as exc:  # network, auth, missing repo: one line for the user
        raise ModelLoadError(f"cannot download {repo!r} from the Hugging Face Hub: {first_line(exc)}") from None


def load(name_or_dir: str | os.PathLike, device: Any = None, lora: Sequence[Any] = ()) -> DiffusionModel:
    """Load a model by shipped name, folder or ``hf://`` id; in eval mode, on ``device`` if given.

    ``lora``: adapters to apply, each ``"DIR[:STRENGTH]"`` or ``(DIR, STRENGTH)`` (:mod:`audiodiff.lora`);
    an adapter folder given as the model loads the base model it names with that adapter.
    """
    from .lora import adapter_base, apply_adapters

    folder = resolve(name_or_dir)
    base = adapter_base(folder)
    if base is not None:
        return load(base, device, [folder, *(lora or ())])
    model = DiffusionModel.from_folder(folder)
    model.source = str(name_or_dir)
    if lora:
        apply_adapters(model, [lora] if isinstance(lora, (str, os.PathLike)) else lora)
    return model.to(checks.device(device)) if device is not None else model
