"""Training a :class:`~audiodiff.evaluation.judge.MelClassifier` judge on labelled clips.

A plain supervised loop: AdamW (Loshchilov & Hutter 2019) with linear warm-up and cosine decay to 0
(:func:`~audiodiff.training.loop.lr_factor`), cross-entropy (label smoothing, Szegedy et al. 2016, is
available but off by default: it caps the judge's confidence, and with it IS, mIS and AM; see
benchmarks/results/speech_judge_candidate.md), and three light augmentations so the judge also copes
with generated audio:

- random time shifts: each clip is placed at a random offset in the window (or randomly cropped);
- SpecAugment-style frequency and time masks (Park et al. 2019, sec. 2), filled with the floor;
- white noise at a random signal-to-noise ratio.

The held-out accuracy is measured every ``eval_every`` steps and the best weights are kept.  A judge
trains in minutes and keeps its best weights rather than its last, so it does without
:func:`~audiodiff.training.loop.run_loop`'s checkpoints and resume.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..data.manifest import ManifestItem
from ..errors import ConfigError
from ..evaluation.judge import MelClassifier, judge_clips, load_clips, window_batch
from .loop import lr_factor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgeTrainConfig:
    """Settings of :func:`fit_judge` (saved in the judge's ``config.json`` under ``training``)."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    label_smoothing: float = 0.0
    eval_every: int = 250
    freq_masks: int = 2
    freq_mask_bins: int = 8
    time_masks: int = 2
    time_mask_frames: int = 10
    noise_prob: float = 0.5
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    speed_range: tuple[float, float] = (1.0, 1.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.eval_every) < 1 or not self.lr > 0 or self.warmup_steps < 0:
            raise ConfigError(f"invalid judge training settings: {self}")
        if not 0.5 <= self.speed_range[0] <= self.speed_range[1] <= 2.0:
            raise ConfigError(f"judge speed_range must satisfy 0.5 <= low <= high <= 2, got {self.speed_range}")


# -- augmentation ------------------------------------------------------------------------------
def shifted_window(clip: torch.Tensor, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    """``(T,) -> (1, num_samples)``: a shorter clip at a random offset in silence, a longer one randomly cropped."""
    spare = abs(num_samples - clip.shape[-1])
    offset = int(torch.randint(0, spare + 1, (1,), generator=generator))
    if clip.shape[-1] >= num_samples:
        return clip[None, offset : offset + num_samples]
    return F.pad(clip, (offset, spare - offset))[None]  # (T,) -> (num_samples,) -> (1, num_samples)


def change_speed(clip: torch.Tensor, speed_range: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """``(T,) -> (T / f,)``: the clip played ``f`` times as fast, ``f`` uniform in ``speed_range`` (linear
    interpolation; at the 0.85-1.15 used for speech its aliasing is far below the signal)."""
    low, high = speed_range
    if high == 1.0 and low == 1.0:
        return clip
    factor = low + (high - low) * float(torch.rand(1, generator=generator))
    length = max(1, round(clip.shape[-1] / factor))
    return F.interpolate(clip[None, None], size=length, mode="linear", align_corners=False)[0, 0]  # (1, 1, T') -> (T',)


def add_noise(wave: torch.Tensor, prob: float, snr_db: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """``(B, 1, S)``: with probability ``prob`` per clip, white noise at an SNR drawn from ``snr_db``."""
    b = wave.shape[0]
    rms = wave.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()  # (B, 1, 1)
    snr = torch.empty(b, 1, 1).uniform_(*snr_db, generator=generator)
    use = (torch.rand(b, 1, 1, generator=generator) < prob).float()
    noise = torch.randn(wave.shape, generator=generator)
    return wave + use * noise * rms * 10 ** (-snr / 20)


def mask_axis(x: torch.Tensor, axis: int, count: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment masks (Park et al. 2019): ``count`` bands of up to ``width`` along ``axis`` (1: mel bins,
    2: frames) of ``(B, n_mels, frames)``, set to -1 (the floor)."""
    b, size = x.shape[0], x.shape[axis]
    for _ in range(count):
        w = torch.randint(0, min(width, size) + 1, (b, 1), generator=generator)
        start = (torch.rand(b, 1, generator=generator) * (size - w + 1)).long()
        pos = torch.arange(size)[None]  # (1, size)
        band = (pos >= start) & (pos < start + w)  # (B, size)
        band = band[:, :, None] if axis == 1 else band[:, None, :]  # (B, size, 1) or (B, 1, size)
        x = x.masked_fill(band, -1.0)
    return x


# -- the loop ------------------------------------------------------------------------------------
def training_batch(judge: MelClassifier, clips: Sequence[torch.Tensor], targets: torch.Tensor,
                   cfg: JudgeTrainConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented ``(B, n_mels, frames)`` features and ``(B,)`` targets of a random batch."""
    index = torch.randint(0, len(clips), (cfg.batch_size,), generator=generator)
    wave = torch.stack([shifted_window(change_speed(clips[i], cfg.speed_range, generator), judge.num_samples, generator)
                        for i in index.tolist()])  # (B, 1, S)
    wave = add_noise(wave, cfg.noise_prob, cfg.noise_snr_db, generator)
    with torch.no_grad():
        x = judge.features(wave)
    x = mask_axis(x, 1, cfg.freq_masks, cfg.freq_mask_bins, generator)
    x = mask_axis(x, 2, cfg.time_masks, cfg.time_mask_frames, generator)
    return x, targets[index]


def accuracy_on(judge: MelClassifier, waves: torch.Tensor, targets: torch.Tensor) -> float:
    """Accuracy of ``judge`` on prepared ``(N, 1, S)`` clips (eval mode)."""
    _, probs = judge_clips(judge, waves)
    return float((probs.argmax(dim=1) == targets).float().mean())


def fit_judge(judge: MelClassifier, train_clips: Sequence[torch.Tensor], train_targets: torch.Tensor,
              valid_waves: torch.Tensor | None = None, valid_targets: torch.Tensor | None = None,
              cfg: JudgeTrainConfig | None = None, callback: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train ``judge`` in place and return a report.

    Args:
        judge: the classifier to train.
        train_clips: ``(T,)`` clips at the judge's rate (any lengths).
        train_targets: ``(N,)`` class indices.
        valid_waves, valid_targets: held-out ``(M, 1, S)`` clips (see :func:`window_batch`) and
            ``(M,)`` indices; the weights with the best held-out accuracy are kept.
        cfg: training settings.
        callback: called with ``{"step", "loss", "valid_accuracy"}`` at every evaluation.

    Returns:
        ``{"steps", "seconds", "train_loss", "valid_accuracy", "best_step", "history", "config"}``.
    """
    cfg = cfg or JudgeTrainConfig()
    if len(train_clips) == 0 or len(train_clips) != len(train_targets):
        raise ConfigError(f"need as many training clips as targets (> 0), got {len(train_clips)} and {len(train_targets)}")
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG: seed it, then restore it
        torch.manual_seed(cfg.seed)
        return _fit(judge, train_clips, train_targets, valid_waves, valid_targets, cfg, callback)


def _fit(judge, train_clips, train_targets, valid_waves, valid_targets, cfg, callback) -> dict[str, Any]:
    """The loop of :func:`fit_judge`."""
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, history, losses, start = (-1.0, 0, None), [], [], time.perf_counter()
    for step in range(cfg.steps):
        judge.train()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg.steps, cfg.warmup_steps)  # cosine decay to 0
        x, y = training_batch(judge, train_clips, train_targets, cfg, generator)
        loss = F.cross_entropy(judge.classify_features(x), y, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            best = _evaluate_step(judge, step + 1, losses, valid_waves, valid_targets, best, history, callback)
    if best[2] is not None:
        judge.load_state_dict(best[2])
    judge.eval()
    return {"steps": cfg.steps, "seconds": round(time.perf_counter() - start, 1), "train_loss": history[-1]["loss"],
            "valid_accuracy": best[0] if valid_waves is not None else None, "best_step": best[1],
            "history": history, "config": asdict(cfg)}


def _evaluate_step(judge, step, losses, valid_waves, valid_targets, best, history, callback):
    """Log one evaluation; return the updated ``(best accuracy, its step, its weights)``."""
    entry = {"step": step, "loss": round(sum(losses[-50:]) / len(losses[-50:]), 4)}
    if valid_waves is not None:
        entry["valid_accuracy"] = accuracy_on(judge, valid_waves, valid_targets)
        if entry["valid_accuracy"] >= best[0]:
            best = (entry["valid_accuracy"], step, copy.deepcopy(judge.state_dict()))
    history.append(entry)
    log.info("judge step %d: %s", step, entry)
    if callback is not None:
        callback(entry)
    return best


def train_judge(
    train_items: Sequence[ManifestItem],
    valid_items: Sequence[ManifestItem] | None = None,
    labels_of: Callable[[ManifestItem], str] | None = None,
    mel: Mapping[str, Any] | None = None,
    seconds: float = 1.0,
    steps: int = 1500,
    labels: Sequence[str] | None = None,
    judge_kwargs: Mapping[str, Any] | None = None,
    callback: Callable[[dict], None] | None = None,
    **train_kwargs: Any,
) -> tuple[MelClassifier, dict[str, Any]]:
    """Train a judge on labelled manifest items.

    Args:
        train_items: training clips (e.g. ``read_manifest(path, "train")``).
        valid_items: held-out clips; their accuracy is reported and picks the best weights.
        labels_of: the class name of an item (default: ``item.label``).
        mel: :class:`audiodiff.audio.Mel` keywords of the judge (its ``sample_rate`` included).
        seconds: the judge's window.
        steps: optimisation steps.
        labels: class names in output order (default: in order of first appearance in ``train_items``).
        judge_kwargs: other :class:`MelClassifier` keywords (``channels``, ``depth``, ``embed_dim``, ...).
        callback: see :func:`fit_judge`.
        **train_kwargs: other :class:`JudgeTrainConfig` fields (``batch_size``, ``lr``, ``seed``, ...).

    Returns:
        ``(judge, report)``; the report (:func:`fit_judge`'s, plus ``labels``, ``num_train``,
        ``num_valid``) is also kept as ``judge.training_report`` and saved with the judge.
    """
    labels_of = labels_of or (lambda item: item.label)
    train_names = [_label(labels_of, item) for item in train_items]
    labels = list(labels) if labels is not None else list(dict.fromkeys(train_names))
    cfg = JudgeTrainConfig(steps=steps, **train_kwargs)
    with torch.random.fork_rng(devices=[]):  # reproducible initial weights; the global RNG is left alone
        torch.manual_seed(cfg.seed)
        judge = MelClassifier(labels, mel=mel, seconds=seconds, **dict(judge_kwargs or {}))
    clips = load_clips([item.path for item in train_items], judge.sample_rate)
    valid_waves = valid_targets = None
    if valid_items:
        valid_waves = window_batch(load_clips([item.path for item in valid_items], judge.sample_rate), judge.num_samples)
        valid_targets = judge.label_indices([_label(labels_of, item) for item in valid_items])
    report = fit_judge(judge, clips, judge.label_indices(train_names), valid_waves, valid_targets, cfg, callback)
    report.update(labels=labels, num_train=len(clips), num_valid=len(valid_items or []))
    judge.training_report = report
    return judge, report


def _label(labels_of: Callable[[ManifestItem], str], item: ManifestItem) -> str:
    name = labels_of(item)
    if not name:
        raise ConfigError(f"manifest item {item.path} has no label")
    return str(name)
