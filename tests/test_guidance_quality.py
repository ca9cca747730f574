"""Classifier-free guidance makes the prompted class, end to end on real audio (slow).

A tiny ``label``-conditioned model (``unet1d``, 0.36 M parameters, condition dropout 0.1) is
trained with :func:`audiodiff.training.fit` for 1000 steps on two classes of Salamander piano notes
that a simple feature tells apart: ``"low"`` (MIDI pitch below C4 = 60) and ``"high"`` (C5 = 72
and above).  It then generates 8 clips per prompt with guidance and classifies each by its
mel-weighted spectral centroid, thresholded midway between the two classes' median centroids on
real clips.  The prompted class must clearly win, and guidance must push the classes further apart
than the plain conditional denoiser (scale 1) does.

The Salamander folder has only 30 notes (13 low, 13 high, 4 in between), so the training set is
the first 0.75 s of each of the 26 notes, loudness-normalised, seen through 0.5 s windows that
start at a random point of the first 0.25 s (the onset is always in), each note repeated 8 times an
epoch.  Audio is 8 kHz with 32 mels (hop 128: 32 frames per window).  The model predicts ``v``:
with ``eps`` prediction a model this undertrained samples wild features (std ~100 instead of ~1).
"""

from __future__ import annotations

import statistics

import pytest
import torch
from torch.utils.data import Dataset

import audiodiff
from audiodiff import DiffusionModel
from audiodiff.data import AudioDataset, midi_to_note_name, normalize_loudness, prepare_salamander
from audiodiff.training import TrainConfig, fit

SAMPLE_RATE = 8000
MEL = {"name": "mel", "sample_rate": SAMPLE_RATE, "n_fft": 512, "hop_length": 128, "n_mels": 32}
WINDOW = 0.5  # seconds per training window and generated clip
HEAD = 0.75  # seconds kept from the start of each note
LOW_BELOW, HIGH_FROM = 60, 72  # MIDI: low < C4, high >= C5
PITCH = {midi_to_note_name(p): p for p in range(128)}  # note name (the Salamander label) -> MIDI pitch

MODEL_CONFIG = {
    "representation": MEL,
    "net": {"name": "unet1d", "channels": 32, "channel_mults": [1, 2], "num_res_blocks": 1,
            "attention_levels": [], "norm_groups": 8},
    "preconditioning": {"name": "v"},
    "conditioning": {"label": {"name": "label", "labels": ["low", "high"], "dim": 32, "route": "global"}},
    "cond_dropout": 0.1,
    "seconds": WINDOW,
}
TRAIN = TrainConfig(steps=1000, batch_size=16, lr=1e-3, warmup_steps=20, ema_decay=0.99, num_workers=0,
                    progress=False, checkpoint_every=1000, log_every=100, fit_stats_batches=4, seed=0)
GUIDANCE_SCALE = 3.0
CLIPS_PER_PROMPT = 8
MIN_ACCURACY = 0.75


def load_note_heads(root) -> tuple[torch.Tensor, list[str]]:
    """The first ``HEAD`` s of every low and high note, ``(N, 1, S)`` at -20 dBFS RMS, and their class names."""
    items = [item for item in prepare_salamander(root)
             if PITCH[item.label] < LOW_BELOW or PITCH[item.label] >= HIGH_FROM]
    heads = AudioDataset(items, SAMPLE_RATE, HEAD, crop="start")
    waves = [normalize_loudness(heads[i]["waveform"], -20.0) for i in range(len(heads))]
    waves = torch.stack(waves)  # N x (1, S) -> (N, 1, S)
    classes = ["low" if PITCH[item.label] < LOW_BELOW else "high" for item in heads.items]
    return waves, classes


class OnsetWindows(Dataset):
    """``WINDOW`` s crops of in-memory notes, starting anywhere in the first ``HEAD - WINDOW`` s.

    Each note appears ``repeats`` times an epoch; crop offsets depend on ``(epoch, index)`` only.
    """

    def __init__(self, waves: torch.Tensor, classes: list[str], repeats: int) -> None:
        self.waves, self.classes, self.repeats = waves, classes, repeats
        self.length = round(WINDOW * SAMPLE_RATE)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.waves) * self.repeats

    def __getitem__(self, index: int) -> dict:
        note = index % len(self.waves)
        g = torch.Generator().manual_seed(self.epoch * 100_003 + index)
        offset = int(torch.randint(0, self.waves.shape[-1] - self.length + 1, (1,), generator=g))
        label = self.classes[note]
        return {"waveform": self.waves[note, :, offset:offset + self.length], "label": label, "caption": label,
                "index": index}


def mel_centroid(mel, log_mel: torch.Tensor) -> torch.Tensor:
    """Mel-weighted spectral centroid in Hz of natural-log mels ``(B, n_mels, frames)`` -> ``(B,)``.

    Each mel bin counts at its filter's centre frequency, weighted by its magnitude over the clip.
    """
    freqs = torch.linspace(0, mel.sample_rate / 2, mel.filterbank.shape[1])  # (freqs,)
    centres = (mel.filterbank * freqs).sum(1) / mel.filterbank.sum(1)  # (n_mels,)
    magnitude = log_mel.exp()
    return (magnitude * centres[:, None]).sum((1, 2)) / magnitude.sum((1, 2))


def real_centroids(mel, waves: torch.Tensor, classes: list[str]) -> dict[str, list[float]]:
    """Centroids of real windows at the start, middle and end of the crop range, per class."""
    length, spare = round(WINDOW * SAMPLE_RATE), waves.shape[-1] - round(WINDOW * SAMPLE_RATE)
    out: dict[str, list[float]] = {"low": [], "high": []}
    for offset in (0, spare // 2, spare):
        with torch.no_grad():
            centroid = mel_centroid(mel, mel.log_mel(waves[:, :, offset:offset + length]))
        for name, value in zip(classes, centroid.tolist()):
            out[name].append(value)
    return out


def generated_centroids(model: DiffusionModel, scale: float) -> dict[str, list[float]]:
    """Centroids of ``CLIPS_PER_PROMPT`` generated clips per prompt at guidance ``scale`` (seed 0)."""
    clips = audiodiff.generate(model, num_samples=CLIPS_PER_PROMPT, prompt=["low", "high"], guidance_scale=scale,
                               steps=25, seed=0)
    features = torch.stack([clip.features for clip in clips])  # B x (n_mels, frames) -> (B, n_mels, frames)
    centroid = mel_centroid(model.representation, model.representation.to_log_mel(features)).tolist()
    return {"low": centroid[:CLIPS_PER_PROMPT], "high": centroid[CLIPS_PER_PROMPT:]}


def accuracies(centroids: dict[str, list[float]], threshold: float) -> dict[str, float]:
    """Fraction of each class on its side of ``threshold`` (low below, high at or above)."""
    return {"low": sum(c < threshold for c in centroids["low"]) / len(centroids["low"]),
            "high": sum(c >= threshold for c in centroids["high"]) / len(centroids["high"])}


def gap(centroids: dict[str, list[float]]) -> float:
    return statistics.median(centroids["high"]) - statistics.median(centroids["low"])


@pytest.mark.slow
def test_guidance_makes_the_prompted_piano_register(shared_data, tmp_path):
    waves, classes = load_note_heads(shared_data / "salamander")
    assert classes.count("low") == 13 and classes.count("high") == 13
    torch.manual_seed(0)
    model = fit(DiffusionModel(MODEL_CONFIG), OnsetWindows(waves, classes, repeats=8), tmp_path, TRAIN)

    real = real_centroids(model.representation, waves, classes)
    threshold = (statistics.median(real["low"]) + statistics.median(real["high"])) / 2
    real_accuracy = accuracies(real, threshold)
    assert min(real_accuracy.values()) >= 0.9, f"the centroid does not separate real notes: {real_accuracy}"

    plain = generated_centroids(model, 1.0)
    guided = generated_centroids(model, GUIDANCE_SCALE)
    accuracy = accuracies(guided, threshold)
    summary = (f"threshold {threshold:.0f} Hz; real {real_accuracy}; scale 1 {accuracies(plain, threshold)}; "
               f"scale {GUIDANCE_SCALE} {accuracy}; gap {gap(plain):.0f} -> {gap(guided):.0f} Hz")
    print(summary)  # shown with pytest -s (and in the report of a failure)
    assert min(accuracy.values()) >= MIN_ACCURACY, summary
    assert gap(guided) > gap(plain), f"guidance should push the classes apart: {summary}"
