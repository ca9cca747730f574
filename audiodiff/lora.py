"""LoRA adapters: small low-rank changes to a model's weights that load, stack, scale and merge.

LoRA (Hu et al. 2021, eq. 3) keeps a weight ``W`` ``(out, ...)`` frozen and learns ``W + (alpha/r) B A``
with ``A`` ``(r, fan_in)`` (random) and ``B`` ``(out, r)`` (zeros, so training starts from the base model
exactly).  A convolution's kernel ``(out, in, k...)`` is treated as ``(out, in * prod(k))``, which is
PEFT's LoRA for convolutions (a ``k``-kernel conv to ``r`` channels, then a 1x1 conv).  Here every
convolution and linear layer of the net gets one, attention projections (``qkv``, ``q``, ``kv``,
``proj``) included.

The change is a :mod:`torch.nn.utils.parametrize` parametrization (:class:`LoRADelta`) of the weight,
so the model stays an ordinary ``DiffusionModel``: any number of adapters stack (their deltas add), each
with its own ``strength`` (0: the base model exactly), and :func:`merge` bakes them into plain weights.
An adapter may also add labels to a label-conditioned model: their embedding rows (:class:`NewRows`)
are appended before the null row and are the only conditioner weights it trains.

An adapter is a folder: ``config.json`` (``{"kind": "lora", "base": {"name", "checksum"}, "rank",
"alpha", "targets", "new_labels", ...}``) and ``adapter.safetensors`` (``<target>.down``,
``<target>.up``, ``conditioners.<key>.new_rows``).  ``base.checksum`` is :func:`weights_checksum` of the
model it was trained on; loading it onto another model is an :class:`~audiodiff.errors.AdapterError`.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from . import checks
from ._version import __version__
from .checkpoint import CONFIG_NAME, read_config, read_tensors, tensors_to_bytes, write_config
from .errors import AdapterError, ConfigError, ModelLoadError, shorten
from .files import atomic_write_bytes

KIND = "lora"
ADAPTER_WEIGHTS = "adapter.safetensors"
TARGET_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)
_PARAMETRIZED = ".parametrizations."


class LoRADelta(nn.Module):
    """Parametrization ``W -> W + strength * (alpha / rank) * (up @ down).view_as(W)`` (Hu et al. 2021, eq. 3)."""

    def __init__(self, weight: torch.Tensor, rank: int, alpha: float, adapter: str) -> None:
        super().__init__()
        fan_in = weight[0].numel()
        self.down = nn.Parameter(torch.empty(rank, fan_in, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))  # as nn.Linear initialises (and PEFT's A)
        self.up = nn.Parameter(torch.zeros(weight.shape[0], rank, dtype=weight.dtype, device=weight.device))
        self.rank, self.alpha, self.adapter, self.strength = int(rank), float(alpha), adapter, 1.0

    def delta(self) -> torch.Tensor:
        """``(alpha / rank) * up @ down`` ``(out, fan_in)``, without the strength."""
        return (self.alpha / self.rank) * (self.up @ self.down)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.strength == 0:
            return weight
        return weight + self.strength * self.delta().view_as(weight)


class NewRows(nn.Module):
    """Parametrization of a label embedding ``(N + 1, dim)`` whose rows ``start .. start + k`` are the trained
    ``rows`` ``(k, dim)`` of new labels (the other rows, the null one last, stay the base model's)."""

    def __init__(self, rows: torch.Tensor, start: int, adapter: str) -> None:
        super().__init__()
        self.rows = nn.Parameter(rows.detach().clone())
        self.start, self.adapter = int(start), adapter

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        end = self.start + self.rows.shape[0]
        return torch.cat([weight[:self.start], self.rows, weight[end:]])


# -- what an adapter touches ---------------------------------------------------------------------
def target_names(model: nn.Module, prefix: str = "net") -> list[str]:
    """Module names (``net.down.0.0.in_layers.2``, ...) of every convolution and linear layer under ``prefix``."""
    root = model.get_submodule(prefix)
    return [f"{prefix}.{name}" for name, module in root.named_modules() if isinstance(module, TARGET_TYPES)]


def weights_checksum(model: nn.Module) -> str:
    """``sha256:<hex>`` of the model's own weights (names, shapes, float32 values), adapters excluded.

    Stable across save/load in fp16 or fp32 of the same values, so an adapter can name the model it was
    made for.  A model carrying adapters reports the checksum of its base (taken when the first came).
    """
    stored = model.__dict__.get("base_checksum")
    if stored is not None:
        return stored
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        value = value.detach().to("cpu", torch.float32 if value.is_floating_point() else value.dtype).contiguous()
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype}\n".encode())
        digest.update(value.numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def _remember_base(model: nn.Module) -> None:
    if "base_checksum" not in model.__dict__:
        model.__dict__["base_checksum"] = weights_checksum(model)


def parametrizations(model: nn.Module, adapter: str | None = None) -> Iterable[tuple[str, nn.Module]]:
    """``(target module name, LoRADelta or NewRows)`` for each adapter part in ``model`` (of ``adapter`` if given)."""
    for name, module in model.named_modules():
        if isinstance(module, (LoRADelta, NewRows)) and (adapter is None or module.adapter == adapter):
            yield name.split(_PARAMETRIZED)[0], module


def adapter_names(model: nn.Module) -> list[str]:
    """The adapters attached to ``model``, in the order they came."""
    return list(dict.fromkeys(part.adapter for _, part in parametrizations(model)))


def set_strength(model: nn.Module, adapter: str, strength: float) -> None:
    """Scale ``adapter``'s weight changes by ``strength`` (0: as if absent; its new labels stay)."""
    strength = checks.number("adapter strength", strength, -10.0, 10.0)
    parts = [p for _, p in parametrizations(model, adapter) if isinstance(p, LoRADelta)]
    if not parts:
        raise ConfigError(f"no adapter named {shorten(adapter)} on this model (it has: {', '.join(adapter_names(model)) or 'none'})")
    for part in parts:
        part.strength = strength


# -- attaching -----------------------------------------------------------------------------------
def add_lora(model: nn.Module, rank: int = 8, alpha: float | None = None, adapter: str = "adapter",
             targets: Sequence[str] | None = None) -> list[str]:
    """Attach a fresh, trainable LoRA adapter (``up`` at zero: outputs unchanged) to ``targets``
    (default: :func:`target_names`); return the target names.  Only the new parameters require grad."""
    rank = checks.integer("lora rank", rank, 1, 4096)
    alpha = float(rank if alpha is None else checks.number("lora alpha", alpha, 0.0, 1e6))
    if adapter in adapter_names(model):
        raise ConfigError(f"the model already has an adapter named {shorten(adapter)}")
    _remember_base(model)
    model.requires_grad_(False)
    targets = list(targets) if targets is not None else target_names(model)
    for name in targets:
        module = model.get_submodule(name)
        parametrize.register_parametrization(module, "weight", LoRADelta(_base_weight(module), rank, alpha, adapter))
    return targets


def _base_weight(module: nn.Module) -> torch.Tensor:
    """A module's weight before any parametrization."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def add_labels(model: nn.Module, key: str, labels: Sequence[str], adapter: str | None = None) -> list[str]:
    """Give the label conditioner ``key`` the new ``labels`` (appended before the null row, starting at the
    mean of the known labels' rows); with ``adapter``, their rows are that adapter's trainable
    :class:`NewRows`.  Returns the labels that were new.  Updates ``model.config``."""
    cond = model.conditioners[key]
    if getattr(cond, "labels", None) is None:
        raise ConfigError(f"conditioner {key!r} takes {cond.config()['name']} prompts, not labels; only a label model gains labels")
    new = [label for label in dict.fromkeys(map(str, labels)) if label and label not in cond.index]
    if not new:
        return []
    _remember_base(model)
    if parametrize.is_parametrized(cond.embedding, "weight"):
        raise ConfigError(f"conditioner {key!r} is gaining labels through another adapter; train one at a time")
    old = cond.embedding.weight.detach()  # (N + 1, dim): the null row last
    start = old.shape[0] - 1
    rows = old[:-1].mean(0, keepdim=True).expand(len(new), -1)  # (k, dim)
    grown = nn.Embedding(start + len(new) + 1, old.shape[1]).to(old.device, old.dtype)
    with torch.no_grad():
        grown.weight.copy_(torch.cat([old[:-1], rows, old[-1:]]))
    grown.weight.requires_grad_(old.requires_grad)
    cond.embedding = grown
    cond.labels = list(cond.labels) + new
    cond.index = {name: i for i, name in enumerate(cond.labels)}
    model.config["conditioning"][key] = cond.config()
    if adapter is not None:
        grown.weight.requires_grad_(False)
        parametrize.register_parametrization(grown, "weight", NewRows(rows, start, adapter))
    return new


# -- files -----------------------------------------------------------------------------------------
def save_adapter(model: nn.Module, folder: str | os.PathLike, adapter: str = "adapter",
                 base_name: str | None = None, extra: Mapping[str, Any] | None = None,
                 dtype: torch.dtype | None = None) -> Path:
    """Write ``adapter`` of ``model`` as a folder: ``adapter.safetensors`` (floats cast to ``dtype`` if given,
    e.g. fp16 as the shipped models are) then ``config.json``."""
    tensors: dict[str, torch.Tensor] = {}
    targets, new_labels, rank, alpha = [], {}, None, None
    for target, part in parametrizations(model, adapter):
        if isinstance(part, LoRADelta):
            tensors[f"{target}.down"], tensors[f"{target}.up"] = part.down, part.up
            targets.append(target)
            rank, alpha = part.rank, part.alpha
        else:
            key = target.split(".")[1]  # conditioners.<key>.embedding
            tensors[f"conditioners.{key}.new_rows"] = part.rows
            labels = model.conditioners[key].labels
            new_labels[key] = labels[part.start:part.start + part.rows.shape[0]]
    if not targets:
        raise ConfigError(f"no adapter named {shorten(adapter)} on this model")
    config = {"kind": KIND, "audiodiff_version": __version__, "rank": rank, "alpha": alpha, "targets": targets,
              "new_labels": new_labels, "base": {"name": base_name or _source(model), "checksum": weights_checksum(model)},
              **dict(extra or {})}
    folder = Path(folder)
    atomic_write_bytes(folder / ADAPTER_WEIGHTS, tensors_to_bytes(tensors, dtype))
    write_config(folder, config)
    return folder


def _source(model: nn.Module) -> str:
    return str(getattr(model, "source", None) or getattr(model, "config", {}).get("name") or "unnamed")


def is_adapter_folder(folder: str | os.PathLike) -> bool:
    """True for a folder holding an adapter (not a model)."""
    return (Path(folder) / ADAPTER_WEIGHTS).is_file()


def adapter_base(folder: str | os.PathLike) -> str | None:
    """The base model an adapter folder names, or ``None`` when ``folder`` is not an adapter."""
    if not is_adapter_folder(folder) or (Path(folder) / "model.safetensors").is_file():
        return None
    base = read_adapter(folder)[0]["base"].get("name")
    if not isinstance(base, str) or Path(base).resolve() == Path(folder).resolve():
        raise AdapterError(f"adapter {folder} does not name a base model it can be loaded onto; pass --model BASE --lora {folder}")
    return base


def read_adapter(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """An adapter folder's config and tensors, checked for shape and kind; a broken folder is an :class:`AdapterError`."""
    try:
        config = read_config(folder)
        tensors = read_tensors(folder, ADAPTER_WEIGHTS)
    except ModelLoadError as exc:
        raise AdapterError(f"not a usable adapter: {exc}") from None
    where = Path(folder) / CONFIG_NAME
    if config.get("kind") != KIND:
        raise AdapterError(f"{where}: not a LoRA adapter (kind {shorten(config.get('kind'))}); a model folder is loaded with --model")
    try:
        rank, targets = int(config["rank"]), [str(t) for t in config["targets"]]
        config["alpha"], config["base"]["checksum"] = float(config["alpha"]), str(config["base"]["checksum"])
        new_labels = {str(k): [str(x) for x in v] for k, v in dict(config.get("new_labels") or {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise AdapterError(f"{where}: missing or bad field {shorten(str(exc))}") from None
    expected = {f"{t}.{p}" for t in targets for p in ("down", "up")} | {f"conditioners.{k}.new_rows" for k in new_labels}
    if set(tensors) != expected:
        odd = sorted(set(tensors) ^ expected)
        raise AdapterError(f"{Path(folder) / ADAPTER_WEIGHTS} does not match its config.json ({len(odd)} tensors differ, e.g. {odd[0]})")
    if any(tensors[f"{t}.down"].shape[0] != rank or tensors[f"{t}.up"].shape[1] != rank for t in targets):
        raise AdapterError(f"{Path(folder) / ADAPTER_WEIGHTS}: tensors are not of rank {rank}")
    config["new_labels"] = new_labels
    return config, tensors


def load_adapter(model: nn.Module, folder: str | os.PathLike, strength: float = 1.0, adapter: str | None = None) -> str:
    """Attach the adapter in ``folder`` to ``model`` (frozen) at ``strength``; return its name (default: the
    folder's name, made unique).  An adapter made for another model is an :class:`AdapterError`."""
    config, tensors = read_adapter(folder)
    base = config["base"]
    _remember_base(model)
    if base["checksum"] != weights_checksum(model):
        raise AdapterError(f"adapter {folder} was made for model {shorten(base.get('name'))} ({base['checksum'][:19]}...), "
                           f"not this one ({weights_checksum(model)[:19]}...)")
    name = _unique_name(model, adapter or Path(folder).name)
    for key, labels in config["new_labels"].items():
        _add_label_rows(model, key, labels, tensors[f"conditioners.{key}.new_rows"], folder)
    targets = config["targets"]
    try:
        parts = [(model.get_submodule(t), t) for t in targets]
    except AttributeError:
        raise AdapterError(f"adapter {folder} names layers this model lacks (e.g. {targets[0]})") from None
    for module, target in parts:
        weight = _base_weight(module)
        down, up = tensors[f"{target}.down"], tensors[f"{target}.up"]
        if down.shape[1] != weight[0].numel() or up.shape[0] != weight.shape[0]:
            raise AdapterError(f"adapter {folder}: {target} does not fit this model's layer of shape {tuple(weight.shape)}")
        part = LoRADelta(weight, int(config["rank"]), float(config["alpha"]), name).requires_grad_(False)
        with torch.no_grad():
            part.down.copy_(down)
            part.up.copy_(up)
        parametrize.register_parametrization(module, "weight", part)
    set_strength(model, name, strength)
    return name


def _add_label_rows(model: nn.Module, key: str, labels: list[str], rows: torch.Tensor, folder: Any) -> None:
    """Append an adapter's labels with their trained embedding rows (baked in: strength does not scale them)."""
    if key not in model.conditioners or getattr(model.conditioners[key], "labels", None) is None:
        raise AdapterError(f"adapter {folder} adds labels to a conditioner {key!r} this model lacks")
    if rows.shape != (len(labels), model.conditioners[key].dim):
        raise AdapterError(f"adapter {folder}: new label rows of shape {tuple(rows.shape)} do not fit {len(labels)} labels")
    clash = [label for label in labels if label in model.conditioners[key].index]
    if clash:
        raise AdapterError(f"adapter {folder} adds label {shorten(clash[0])}, which the model already has")
    add_labels(model, key, labels)
    embedding = model.conditioners[key].embedding
    with torch.no_grad():
        embedding.weight[-1 - len(labels):-1] = rows.to(embedding.weight)


def _unique_name(model: nn.Module, name: str) -> str:
    taken, candidate, n = set(adapter_names(model)), name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def parse_spec(spec: str | os.PathLike | tuple[str | os.PathLike, float]) -> tuple[Path, float]:
    """``"DIR"``, ``"DIR:STRENGTH"`` or ``(DIR, STRENGTH)`` -> ``(Path(DIR), strength)`` (default 1)."""
    if isinstance(spec, tuple):
        path, strength = spec
        return Path(path), checks.number("adapter strength", strength, -10.0, 10.0)
    text = str(spec)
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return Path(head), checks.number("adapter strength", float(tail), -10.0, 10.0)
        except ValueError:
            pass  # a colon that is part of the path
    return Path(text), 1.0


#: how a model with adapters is named on the web page: ``"speech + runs/ft/model:0.5"``
SPEC_JOIN = " + "


def split_model_spec(text: str) -> tuple[str, list[str]]:
    """``"BASE + DIR[:S] + ..."`` -> ``("BASE", ["DIR[:S]", ...])``."""
    base, *adapters = [part.strip() for part in text.split(SPEC_JOIN.strip())]
    return base, [a for a in adapters if a]


def apply_adapters(model: nn.Module, specs: Iterable[Any]) -> list[str]:
    """Load each adapter (``"DIR[:STRENGTH]"`` or ``(DIR, STRENGTH)``) onto ``model`` in turn; return their names."""
    names = []
    for spec in specs:
        path, strength = parse_spec(spec)
        if not path.is_dir():
            raise AdapterError(f"adapter folder not found: {path}")
        names.append(load_adapter(model, path, strength))
    return names


def merge(model: Any) -> Any:
    """A new ``DiffusionModel`` with every adapter of ``model`` baked into plain weights at its strength;
    its ``config["adapters"]`` records what was merged.  ``model`` is left as it is."""
    record = [{"name": n, "strength": _strength(model, n)} for n in adapter_names(model)]
    config = copy.deepcopy(model.config)
    config.pop("audiodiff_version", None)
    if record:
        config["adapters"] = list(config.get("adapters", [])) + record
    merged = type(model)(config).to(model.device)
    merged.load_state_dict(merged_state(model))
    for key, cond in model.conditioners.items():
        if hasattr(cond, "encoder_path"):
            merged.conditioners[key].encoder_path = cond.encoder_path
    merged.set_vocoder(model.trained_vocoder)
    merged.source = getattr(model, "source", None)
    return merged.eval()


def merged_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict with each parametrized weight replaced by its value (adapters applied)."""
    state = {}
    for key, value in model.state_dict().items():
        if _PARAMETRIZED not in key:
            state[key] = value
        elif key.endswith(".original"):
            module_name, rest = key.split(_PARAMETRIZED)
            tensor_name = rest.split(".")[0]
            state[f"{module_name}.{tensor_name}"] = getattr(model.get_submodule(module_name), tensor_name).detach().clone()
    return state


def _strength(model: nn.Module, adapter: str) -> float:
    parts = [p.strength for _, p in parametrizations(model, adapter) if isinstance(p, LoRADelta)]
    return parts[0] if parts else 1.0


def adapter_size(model: nn.Module, adapter: str) -> int:
    """Parameters of ``adapter`` in ``model``."""
    return sum(p.numel() for _, part in parametrizations(model, adapter) for p in part.parameters())
