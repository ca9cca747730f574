"""What the one-shot baselines (a GAN and a VAE of normalised log-mels) share: sampling, vocoding, folders.

A diffusion model turns noise into a mel in many denoiser calls; a :class:`MelGenerator` does it in
one: ``sample_mels(labels)`` maps a fresh latent ``z ~ N(0, I)`` and a class label to a normalised
log-mel ``(B, n_mels, frames)`` in one network pass.  They exist so that diffusion can be compared with
the other two families of deep generative models on the same data and metrics
(``benchmarks/bench_families.py``).  Both are label-conditioned (a learned embedding per class name,
as :class:`~audiodiff.conditioning.LabelConditioner` is for diffusion), own the
:class:`~audiodiff.audio.mel.Mel` they were trained on (settings and normalisation statistics), and
decode through any vocoder with the same mel settings.

A generator is a folder like every model of the library: ``config.json`` (registry name ``"generator"``
kind, constructor keywords, mel settings, library version) + ``model.safetensors``;
:func:`load_generator` builds it by registry name and never unpickles anything.
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

from ..audio.mel import Mel
from ..checkpoint import load_built_folder, model_folder, save_folder
from ..errors import ConfigError, ModelLoadError

#: config keys of a saved generator folder that describe it rather than build it
METADATA_KEYS = ("audiodiff_version", "training")


def mel_from_config(mel: Mapping[str, Any] | None) -> Mel:
    """A :class:`Mel` from a representation config (``name`` may be absent or ``"mel"``)."""
    cfg = dict(mel or {})
    if cfg.pop("name", "mel") != "mel":
        raise ConfigError(f"a mel generator needs a 'mel' representation config, got {dict(mel or {})['name']!r}")
    return Mel(**cfg)


def check_labels(labels: Sequence[str]) -> list[str]:
    """The class names as a list: at least one, all distinct non-empty strings."""
    labels = [str(label) for label in labels]
    if not labels or len(set(labels)) != len(labels) or not all(labels):
        raise ConfigError(f"a generator needs distinct, non-empty class labels, got {labels!r}")
    return labels


class MelGenerator(nn.Module):
    """Base class of one-shot, label-conditioned generators of normalised log-mels.

    Subclasses call ``super().__init__(mel, labels, seconds)`` and implement
    :meth:`decode_latents` ``(z (B, ...), label indices (B,)) -> (B, n_mels, frames)`` and :meth:`config`.
    """

    def __init__(self, mel: Mapping[str, Any] | None, labels: Sequence[str], seconds: float) -> None:
        """Set :attr:`mel` (from its config), :attr:`labels`, :attr:`clip_seconds` and :attr:`frames`,
        the ``mel.frames_for(seconds)`` frames every generated clip has."""
        super().__init__()
        self.mel = mel_from_config(mel)
        self.labels = check_labels(labels)
        self.clip_seconds = float(seconds)
        if not (math.isfinite(self.clip_seconds) and self.clip_seconds > 0):
            raise ConfigError(f"a generator's seconds must be a positive number, got {seconds!r}")
        self.frames = self.mel.frames_for(self.clip_seconds)

    # -- description ----------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def seconds(self) -> float:
        return self.mel.seconds_for(self.frames)

    @property
    def representation(self) -> Mel:
        """The :class:`Mel` the model generates in (named as a diffusion model's, for clip writers)."""
        return self.mel

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def config(self) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def latent_shape(self) -> tuple[int, ...]:  # pragma: no cover - interface
        """The shape of one latent ``z`` (without the batch axis)."""
        raise NotImplementedError

    def label_indices(self, labels: Sequence[str]) -> torch.Tensor:
        """Class names -> indices ``(B,)`` on the model's device; an unknown name is a one-line error."""
        index = {name: i for i, name in enumerate(self.labels)}
        unknown = sorted({str(n) for n in labels if n not in index})
        if unknown:
            raise ConfigError(f"unknown label(s) {', '.join(map(repr, unknown))}; this model knows "
                              f"{', '.join(self.labels)}")
        return torch.tensor([index[n] for n in labels], dtype=torch.long, device=self.device)

    @torch.no_grad()
    def batch_mels(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Normalised log-mels ``(B, n_mels, frames)`` of a data batch, exactly :attr:`frames` long: its
        ``"waveform"`` ``(B, 1, S)`` cut, or padded with silence, to :attr:`clip_seconds` and encoded, or
        its cached log-mel ``"features"`` ``(B, n_mels, T)`` cut or padded with the silence level."""
        mel, frames, device = self.mel, self.frames, self.mel.mean.device
        if "features" in batch:
            log_mel = batch["features"][..., :frames].to(device)  # (B, n_mels, T) -> (B, n_mels, <= frames)
            silence = math.log(mel.log_floor)
            return mel.normalize(F.pad(log_mel, (0, frames - log_mel.shape[-1]), value=silence))
        samples = round(self.clip_seconds * mel.sample_rate)  # mel.frames_for_samples(samples) == frames
        wave = batch["waveform"][..., :samples]  # (B, 1, S) -> (B, 1, <= samples)
        wave = F.pad(wave, (0, samples - wave.shape[-1]))  # -> (B, 1, samples)
        return mel.encode(wave.to(device, non_blocking=True))

    # -- sampling -------------------------------------------------------------------------------
    def decode_latents(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def sample_mels(self, labels: Sequence[str], generator: torch.Generator | None = None) -> torch.Tensor:
        """One normalised log-mel ``(B, n_mels, frames)`` per class name, from ``z ~ N(0, I)`` drawn
        on the CPU ``generator`` (so a seed gives the same clips on any device)."""
        index = self.label_indices(list(labels))
        z = torch.randn((len(index), *self.latent_shape()), generator=generator)
        return self.decode_latents(z.to(self.device), index).float()

    def check_vocoder(self, vocoder: nn.Module) -> None:
        """A trained vocoder's mel settings must be the model's (:class:`SettingsMismatchError`)."""
        from ..vocoders import check_mel_settings

        if hasattr(vocoder, "mel_settings"):
            check_mel_settings(vocoder.mel_settings, self.mel.settings())

    @torch.no_grad()
    def generate(self, labels: Sequence[str], vocoder: nn.Module, seed: int | None = None) -> torch.Tensor:
        """Waveforms ``(B, 1, S)`` at :attr:`sample_rate`: :meth:`sample_mels` decoded by ``vocoder``
        (whose mel settings must match the model's)."""
        self.check_vocoder(vocoder)
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        return self.mel.decode(self.sample_mels(labels, generator), vocoder)

    @torch.no_grad()
    def generate_clips(self, labels: Sequence[str], vocoder: nn.Module, seed: int = 0,
                       batch_size: int = 50) -> list:
        """One :class:`~audiodiff.audio.clip.Audio` per class name: clip ``i`` is drawn from seed ``seed + i``
        (so any clip can be made again alone), decoded by ``vocoder``, clamped to [-1, 1], with its
        normalised log-mel as ``features`` and a sidecar saying how it was made."""
        from ..audio.clip import Audio

        self.check_vocoder(vocoder)
        labels, clips = list(labels), []
        index = self.label_indices(labels)  # checks every label before any work
        for start in range(0, len(labels), batch_size):
            rows = range(start, min(start + batch_size, len(labels)))
            z = torch.stack([torch.randn(self.latent_shape(), generator=torch.Generator().manual_seed(seed + i))
                             for i in rows])  # (b, *latent_shape)
            mels = self.decode_latents(z.to(self.device), index[list(rows)]).float()  # (b, n_mels, frames)
            waves = self.mel.decode(mels, vocoder).float().clamp(-1, 1).cpu()  # (b, 1, S)
            for i, mel, wave in zip(rows, mels.cpu(), waves):
                meta = {"index": i, "prompt": labels[i], "seed": seed + i, "model": self.config()["name"],
                        "source": getattr(self, "source", None), "seconds": self.seconds,
                        "vocoder": getattr(vocoder, "config", lambda: type(vocoder).__name__)()}
                clips.append(Audio(wave, self.sample_rate, mel, meta))
        return clips

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None,
             metadata: Mapping[str, Any] | None = None) -> Path:
        """Write ``config.json`` (:meth:`config` plus ``metadata``) + ``model.safetensors``."""
        from .._version import __version__

        config = {**copy.deepcopy(dict(metadata or {})), **self.config(), "audiodiff_version": __version__}
        return save_folder(folder, config, self.state_dict(), dtype)


def is_generator_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` (or its ``model/``) holds a saved generator (its config names a registered one)."""
    from ..checkpoint import CONFIG_NAME, read_config
    from ..registry import names

    folder = model_folder(folder)
    if not (folder / CONFIG_NAME).is_file():
        return False
    try:
        return read_config(folder).get("name") in names("generator")
    except ModelLoadError:  # an unreadable config is the diffusion loader's error to report
        return False


def load_generator(folder: str | os.PathLike) -> MelGenerator:
    """A generator saved by :meth:`MelGenerator.save` (any registered ``generator``), in eval mode.

    ``folder`` may also be a training run folder (its ``model/``).  Every problem (missing folder,
    bad config, an unknown name, weights that do not fit) is a one-line :class:`ModelLoadError`.
    """
    return load_built_folder("generator", folder, METADATA_KEYS)
