"""Training checkpoints: atomic folders, the ``latest`` pointer, checksums, and safe reading back.

Run folder layout (each trainer adds its own exported model folder)::

    run_dir/checkpoints/step_0001000/   the trainer's *.safetensors, config.json, state.pt, checksums.json
    run_dir/checkpoints/latest          name of the newest complete checkpoint

A checkpoint is written into a temporary folder (every file fsynced) and renamed into place; the
``latest`` pointer is replaced atomically after that, so a crash at any moment leaves the last good
checkpoint intact.  ``state.pt`` holds only tensors and plain containers and is read with
``torch.load(weights_only=True)``: no arbitrary unpickling.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from ..checkpoint import CONFIG_NAME, read_tensors, write_config
from ..errors import TrainingError, first_line
from ..files import atomic_write_bytes, fsync_dir

log = logging.getLogger(__name__)

LATEST = "latest"
#: sha256 of every file of a checkpoint folder, written last
CHECKSUMS = "checksums.json"
_STEP_NAME = re.compile(r"step_\d{7,}")


def checkpoint_step(folder: Path) -> int:
    """The optimizer step a checkpoint folder (``step_XXXXXXX``) was written at."""
    return int(Path(folder).name.split("_")[-1])


def write_checkpoint_folder(run_dir: Path, state: dict[str, Any], files: Mapping[str, bytes],
                            config: Mapping[str, Any], keep_last: int) -> Path:
    """Write ``run_dir/checkpoints/step_XXXXXXX`` (``files``, ``config.json`` and ``state`` as ``state.pt``)
    into a temporary folder, rename it into place, then move the ``latest`` pointer and keep the last
    ``keep_last`` checkpoints."""
    ckpt_root = run_dir / "checkpoints"
    name = f"step_{state['step']:07d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    contents = {**files, "state.pt": buffer.getvalue()}
    for file_name, data in contents.items():
        atomic_write_bytes(tmp / file_name, data)
    sums = {file_name: hashlib.sha256(data).hexdigest() for file_name, data in contents.items()}
    sums[CONFIG_NAME] = _sha256(write_config(tmp, config))
    atomic_write_bytes(tmp / CHECKSUMS, (json.dumps(sums, indent=2, sort_keys=True) + "\n").encode())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    fsync_dir(ckpt_root)
    atomic_write_bytes(ckpt_root / LATEST, name.encode())
    for old in sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path, needed: tuple[str, ...] = ("model.safetensors", "ema.safetensors")) -> Path | None:
    """The checkpoint to resume from: the one ``checkpoints/latest`` names if it is intact, else the
    newest intact one (with a warning saying so); ``None`` when there is no ``latest`` (a fresh run).

    ``latest`` must name a ``step_NNNNNNN`` folder directly inside ``checkpoints/`` (no ``..``, no
    link); a checkpoint is intact when it holds ``needed``, ``state.pt`` and ``config.json`` and each
    file matches the sha256 in its ``checksums.json`` (checkpoints written before checksums existed
    are checked for completeness only).  Raises :class:`TrainingError` if none is intact.
    """
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST
    if not pointer.is_file() and not pointer.is_symlink():
        return None
    needed = (*needed, "state.pt", CONFIG_NAME)
    named, problem = _pointer_target(pointer)
    if named is not None:
        problem = checkpoint_problem(named, needed)
        if problem is None:
            return named
    steps = sorted((p for p in root.glob("step_*") if _STEP_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()),
                   key=checkpoint_step, reverse=True)
    for folder in steps:
        if folder != named and checkpoint_problem(folder, needed) is None:
            log.warning("%s; resuming from %s, the newest intact checkpoint", problem, folder)
            return folder
    raise TrainingError(f"{problem}, and no other checkpoint in {root} is intact; "
                        f"remove {pointer} to start over")


def _pointer_target(pointer: Path) -> tuple[Path | None, str]:
    """The step folder ``latest`` names, or ``None`` and why it names none."""
    try:
        name = pointer.read_bytes().decode("ascii").strip() if not pointer.is_symlink() else ""
    except (OSError, UnicodeDecodeError):
        name = ""
    if not _STEP_NAME.fullmatch(name):
        return None, f"{pointer} does not name a step_NNNNNNN folder"
    folder = pointer.parent / name
    if folder.is_symlink() or not folder.is_dir():
        return None, f"checkpoint {folder} named by {pointer} is missing"
    return folder, ""


def checkpoint_problem(folder: Path, needed: tuple[str, ...]) -> str | None:
    """Why checkpoint ``folder`` cannot be resumed from (a missing file, a checksum mismatch), or ``None``."""
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        return f"checkpoint {folder} is incomplete (no {missing[0]})"
    if not (folder / CHECKSUMS).is_file():
        return None  # written before checksums existed
    try:
        sums = json.loads((folder / CHECKSUMS).read_text())
        bad = [name for name, digest in sums.items() if _sha256(folder / name) != digest]
    except (OSError, ValueError, AttributeError, TypeError):
        return f"checkpoint {folder} has an unreadable {CHECKSUMS} or file"
    return f"checkpoint {folder} is corrupt ({bad[0]} does not match its checksum)" if bad else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state(ckpt: Path) -> dict[str, Any]:
    """A checkpoint's ``state.pt`` (tensors and plain containers only: ``weights_only=True``); a broken
    file is a one-line :class:`TrainingError`."""
    try:
        return torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, a pickle of forbidden objects
        raise TrainingError(f"cannot read {ckpt / 'state.pt'}: {first_line(exc, 200)}") from None


@contextlib.contextmanager
def state_errors(ckpt: Path) -> Iterator[None]:
    """Turn a ``state.pt`` that does not fit the run (missing keys, other shapes) into one line."""
    try:
        yield
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError) as exc:
        raise TrainingError(f"{ckpt / 'state.pt'} does not fit this run: {first_line(exc, 200)}") from None


def load_weights(module: torch.nn.Module, ckpt: Path, name: str) -> None:
    """Load ``ckpt/name`` (safetensors) into ``module``; weights of another shape are a one-line error."""
    try:
        module.load_state_dict(read_tensors(ckpt, name))
    except RuntimeError as exc:
        raise TrainingError(f"{ckpt / name} does not fit this model (another config?): "
                            f"{first_line(exc, 200)}") from None
