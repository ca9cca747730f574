"""``judge``: a small log-mel CNN classifier whose penultimate layer is the embedding for metrics.

Generated audio is judged the way DiffWave judges SC09 digits (Kong et al. 2021, sec. 5.3): a
classifier trained on real clips gives class probabilities (for accuracy, IS, mIS, AM) and an
embedding (for the Frechet distance and NDB).  The network follows the usual small keyword-spotting
recipe: a 1D convolution stack over log-mel frames with mel bins as channels (TC-ResNet, Choi et
al. 2019), residual dilated blocks (as in WaveNet, van den Oord et al. 2016), BatchNorm (Ioffe &
Szegedy 2015) and GELU (Hendrycks & Gimpel 2016), global mean + max pooling over time, and an MLP
head.  ``embed`` returns the head's hidden layer ``(B, embed_dim)``.

Input audio is resampled to the judge's own rate and cut or zero-padded (at the end) to its
window, so every caller sees the same preprocessing.  Log-mels are taken relative to each clip's
loudest bin and clipped at ``dynamic_range_db`` below it, so the judge ignores overall gain.

What a judge's classes are is its ``target``: ``"label"`` (a manifest item's label, e.g. the spoken
digit), ``"caption"`` (the caption itself, e.g. ``"door slam"``) or a caption pattern its config
carries (:mod:`audiodiff.evaluation.targets`; the music judge's reads the General MIDI family of the
instrument a note caption names); :meth:`MelClassifier.target_of` maps a prompt or a manifest item
to its class.  Its optional ``notes`` pattern says which pitch a caption asks for.

A judge is a folder, like a model: ``config.json`` (``"name": "judge"`` and the constructor
keywords) and ``model.safetensors``; :func:`load_judge` reads it without unpickling anything.
Judges shipped with the library live in ``audiodiff/pretrained/judges/<name>/``.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._version import __version__
from ..audio.io import load_audio, resample
from ..audio.mel import Mel
from ..checkpoint import read_config, read_tensors, save_folder
from ..data.dataset import crop_or_pad
from ..errors import ConfigError, ModelLoadError
from ..registry import register
from .targets import CaptionPattern, check_notes, check_target

JUDGES_DIR = Path(__file__).resolve().parents[1] / "pretrained" / "judges"
DEFAULT_MEL: dict[str, Any] = {"sample_rate": 16000, "n_fft": 512, "hop_length": 160, "n_mels": 64}
#: config.json keys that describe a saved judge but are not constructor keywords
METADATA_KEYS = ("name", "audiodiff_version", "training")


class ResBlock(nn.Module):
    """``x + GELU(BN(Conv1d_dilated(x)))`` over ``(B, C, T)``."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.norm(self.conv(x)))


@register("embedder", "judge")
class MelClassifier(nn.Module):
    """Log-mel CNN classifier and embedder.

    Args:
        labels: class names, in output order.
        mel: :class:`audiodiff.audio.Mel` keywords (its ``sample_rate`` is the judge's rate).
        seconds: the window every input is cut or padded to.
        channels: width of the convolution stack.
        depth: residual blocks, with dilations 1, 2, 4, ...
        embed_dim: size of the embedding (the head's hidden layer).
        dropout: dropout before the output layer (training only).
        dynamic_range_db: log-mels are clipped this far below each clip's peak.
        stride: time downsampling of the first convolution.
        target: what the classes are: ``"label"``, ``"caption"`` or a caption pattern's config
            (:class:`~audiodiff.evaluation.targets.CaptionPattern`; see :meth:`target_of`).
        notes: a regular expression whose group ``note`` is the note a caption names (for pitch accuracy).
    """

    def __init__(
        self,
        labels: Sequence[str],
        mel: Mapping[str, Any] | None = None,
        seconds: float = 1.0,
        channels: int = 64,
        depth: int = 4,
        embed_dim: int = 128,
        dropout: float = 0.1,
        dynamic_range_db: float = 80.0,
        stride: int = 2,
        target: str | Mapping[str, Any] = "label",
        notes: str | None = None,
    ) -> None:
        super().__init__()
        self.labels = _check_labels(labels)
        if not seconds > 0 or min(channels, depth, embed_dim, stride) < 1 or not dynamic_range_db > 0:
            raise ConfigError("judge needs seconds > 0, dynamic_range_db > 0 and positive channels, depth, embed_dim, stride")
        self.target = check_target(target)
        self.notes = check_notes(notes)
        self.mel = Mel(**{**DEFAULT_MEL, **dict(mel or {})})
        self.seconds, self.channels, self.depth, self.embed_dim = float(seconds), int(channels), int(depth), int(embed_dim)
        self.dropout_p, self.dynamic_range_db, self.stride = float(dropout), float(dynamic_range_db), int(stride)
        self.stem = nn.Sequential(
            nn.Conv1d(self.mel.n_mels, channels, 5, stride=stride, padding=2, bias=False),
            nn.BatchNorm1d(channels), nn.GELU())
        self.blocks = nn.Sequential(*[ResBlock(channels, 2**i) for i in range(depth)])
        self.head = nn.Sequential(nn.Linear(2 * channels, embed_dim), nn.GELU())
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(embed_dim, len(self.labels))
        self.training_report: dict[str, Any] | None = None  # set by train_judge and from_folder

    # -- description -------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.mel.sample_rate)

    @property
    def num_samples(self) -> int:
        """Samples in the judge's window."""
        return round(self.seconds * self.sample_rate)

    @property
    def dim(self) -> int:
        """Size of :meth:`embed`'s output."""
        return self.embed_dim

    def config(self) -> dict[str, Any]:
        """Constructor keywords (with ``"name": "judge"``) that rebuild this judge."""
        return {"name": "judge", "labels": list(self.labels), "mel": self.mel.settings(), "seconds": self.seconds,
                "channels": self.channels, "depth": self.depth, "embed_dim": self.embed_dim,
                "dropout": self.dropout_p, "dynamic_range_db": self.dynamic_range_db, "stride": self.stride,
                "target": self.target.config() if isinstance(self.target, CaptionPattern) else self.target,
                **({"notes": self.notes} if self.notes is not None else {})}

    def target_of(self, caption: str | None, label: str | None = None) -> str | None:
        """The class a prompt (``caption``) or a manifest item (``caption``, ``label``) should get; ``None`` when
        it is not one of the judge's labels (an unknown label, a caption that names no known instrument, ...)."""
        if self.target == "label":
            name = label if label is not None else caption
        elif self.target == "caption":
            name = caption
        else:
            name = self.target(caption)
        return name if name in self.labels else None

    # -- preprocessing -----------------------------------------------------------------------
    def prepare(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """``(B, 1, S)``, ``(B, S)`` or ``(S,)`` audio at ``sample_rate`` (default: the judge's) ->
        ``(B, 1, num_samples)`` at the judge's rate, cut or zero-padded at the end."""
        wave = torch.as_tensor(wave).float()
        if wave.dim() == 1:
            wave = wave[None, None]  # (S,) -> (1, 1, S)
        elif wave.dim() == 2:
            wave = wave[:, None]  # (B, S) -> (B, 1, S)
        if wave.dim() != 3 or wave.shape[1] != 1:
            raise ConfigError(f"judge expects mono audio (B, 1, S), got {tuple(wave.shape)}")
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            wave = resample(wave, int(sample_rate), self.sample_rate)
        if wave.shape[-1] >= self.num_samples:
            return wave[..., : self.num_samples]
        return F.pad(wave, (0, self.num_samples - wave.shape[-1]))  # (B, 1, S) -> (B, 1, num_samples)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Prepared ``(B, 1, num_samples)`` audio -> ``(B, n_mels, frames)`` log-mels scaled to [-1, 1]
        (1 at the clip's peak, -1 at ``dynamic_range_db`` below it)."""
        log_mel = self.mel.log_mel(wave)  # (B, n_mels, frames)
        span = self.dynamic_range_db * math.log(10) * self.mel.power / 20  # dB -> natural-log units
        rel = log_mel - log_mel.amax(dim=(1, 2), keepdim=True)
        return rel.clamp(min=-span) * (2 / span) + 1

    # -- network -----------------------------------------------------------------------------
    def embed_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, frames)`` features -> ``(B, embed_dim)`` embeddings."""
        h = self.blocks(self.stem(x))  # (B, channels, frames / stride)
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)  # (B, 2 * channels)
        return self.head(pooled)

    def classify_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, frames)`` features -> ``(B, n_classes)`` logits."""
        return self.out(self.dropout(self.embed_features(x)))

    def embed(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Audio ``(B, 1, S)`` at ``sample_rate`` (default: the judge's) -> ``(B, embed_dim)`` embeddings."""
        return self.embed_features(self.features(self.prepare(wave, sample_rate)))

    def logits(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Audio ``(B, 1, S)`` -> ``(B, n_classes)`` logits (in ``labels`` order)."""
        return self.classify_features(self.features(self.prepare(wave, sample_rate)))

    def forward(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Same as :meth:`logits`."""
        return self.logits(wave, sample_rate)

    def embed_and_logits(self, wave: torch.Tensor, sample_rate: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Both ``(B, embed_dim)`` embeddings and ``(B, n_classes)`` logits from one pass."""
        emb = self.embed_features(self.features(self.prepare(wave, sample_rate)))
        return emb, self.out(self.dropout(emb))

    def predict(self, wave: torch.Tensor, sample_rate: int | None = None) -> list[str]:
        """The most likely label of each clip."""
        return [self.labels[i] for i in self.logits(wave, sample_rate).argmax(dim=1).tolist()]

    def label_indices(self, names: Sequence[str]) -> torch.Tensor:
        """``(N,)`` indices of label names; unknown names are a :class:`ConfigError`."""
        index = {name: i for i, name in enumerate(self.labels)}
        unknown = sorted({n for n in names if n not in index})
        if unknown:
            raise ConfigError(f"label(s) {', '.join(map(repr, unknown[:5]))} unknown to the judge (it knows {', '.join(self.labels)})")
        return torch.tensor([index[n] for n in names], dtype=torch.long)

    # -- persistence -------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None,
             training: Mapping[str, Any] | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (floats cast to ``dtype`` if given, e.g. fp16);
        ``training`` (e.g. the report of :func:`train_judge`) is stored in the config as metadata."""
        config = {**self.config(), "audiodiff_version": __version__}
        if training is not None:
            config["training"] = copy.deepcopy(dict(training))
        return save_folder(folder, config, self.state_dict(), dtype)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "MelClassifier":
        """Rebuild a judge saved by :meth:`save` (eval mode); problems are one-line :class:`ModelLoadError`."""
        config = read_config(folder)
        if config.get("name") != "judge":
            raise ModelLoadError(f"{Path(folder) / 'config.json'} is not a judge (name {config.get('name')!r})")
        try:
            judge = cls(**{k: v for k, v in config.items() if k not in METADATA_KEYS})
        except (ConfigError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{Path(folder) / 'config.json'}: {exc}") from None
        _load_weights(judge, read_tensors(folder), folder)
        judge.source = str(folder)
        judge.training_report = config.get("training")
        return judge.eval()


def _check_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise ConfigError("judge labels must be a list of names, not one string")
    names = [str(x) for x in labels]
    if len(names) < 2 or len(set(names)) != len(names) or "" in names:
        raise ConfigError("judge labels must be at least two distinct, non-empty names")
    return names


def _load_weights(judge: MelClassifier, tensors: Mapping[str, torch.Tensor], folder: Any) -> None:
    expected = judge.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise ModelLoadError(f"weights in {folder} do not match its config.json ({len(missing)} missing, "
                             f"{len(unexpected)} unexpected, {len(wrong)} of the wrong shape; e.g. {first})")
    judge.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})


# -- finding judges ------------------------------------------------------------------------------
def list_judges() -> dict[str, Path]:
    """Shipped judge names and their folders (``audiodiff/pretrained/judges/<name>/``)."""
    if not JUDGES_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(JUDGES_DIR.iterdir()) if (p / "config.json").is_file()}


def load_judge(name_or_dir: str | os.PathLike | MelClassifier) -> MelClassifier:
    """A judge from a folder, a shipped judge name (e.g. ``"speech"``), or a judge object (returned as is)."""
    if isinstance(name_or_dir, MelClassifier):
        return name_or_dir
    path = Path(str(name_or_dir)).expanduser()
    if path.is_dir():
        return MelClassifier.from_folder(path)
    shipped = list_judges()
    if str(name_or_dir) in shipped:
        return MelClassifier.from_folder(shipped[str(name_or_dir)])
    names = ", ".join(shipped) or "none"
    raise ModelLoadError(f"no judge folder or shipped judge named {str(name_or_dir)!r} (shipped judges: {names})")


# -- batches of files ----------------------------------------------------------------------------
def load_clips(paths: Sequence[str | os.PathLike], sample_rate: int) -> list[torch.Tensor]:
    """Mono clips ``(T,)`` resampled to ``sample_rate``, one per file (an unreadable file is an ``AudioError``)."""
    return [load_audio(p, sample_rate)[0][0] for p in paths]  # (1, T) -> (T,)


def window_batch(clips: Sequence[torch.Tensor], num_samples: int) -> torch.Tensor:
    """``(B, 1, num_samples)``: each ``(T,)`` clip cut or zero-padded at the end."""
    return torch.stack([crop_or_pad(c[None], num_samples) for c in clips])  # B x (1, S) -> (B, 1, S)


@torch.no_grad()
def judge_clips(judge: MelClassifier, waves: torch.Tensor, sample_rate: int | None = None,
                batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, embed_dim)`` embeddings and ``(N, n_classes)`` probabilities of ``(N, 1, S)`` audio, in batches (eval mode)."""
    if len(waves) == 0:
        raise ConfigError("no clips to judge")
    was_training = judge.training
    judge.eval()
    device = next(judge.parameters()).device
    embs, probs = [], []
    try:
        for start in range(0, len(waves), batch_size):
            emb, logits = judge.embed_and_logits(waves[start : start + batch_size].to(device), sample_rate)
            embs.append(emb.float().cpu())
            probs.append(logits.float().softmax(dim=1).cpu())
    finally:
        judge.train(was_training)
    return torch.cat(embs), torch.cat(probs)
