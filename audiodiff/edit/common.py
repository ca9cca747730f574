"""What every edit starts from and ends with: its input clip, the region it changes, the shared set-up
(:func:`~audiodiff.sampling.prepare_run`) and the decoding of its result into clips with sidecars."""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from .. import checks
from ..audio.clip import Audio
from ..audio.io import load_audio, resample, to_mono
from ..errors import AudioError, ConfigError
from ..model import DiffusionModel
from ..sampling.core import to_audio
from ..sampling.run import SamplingRun, prepare_run
from ..sampling.windows import seam_score

AudioInput = Audio | torch.Tensor | str | os.PathLike
#: the most clips one edit call makes (they are made in one batch)
MAX_EDIT_CLIPS = 256


def fraction(name: str, value: Any, low: float, high: float, closed_high: bool = False) -> float:
    """``value`` in ``(low, high)`` (or ``(low, high]``), else a one-line error."""
    return checks.number(name, value, low, high, low_open=True, high_open=not closed_high)


def load_input(model: DiffusionModel, audio: AudioInput) -> tuple[torch.Tensor, str | None]:
    """Clean samples ``(1, *net_shape_per_frame, frames)`` of a clip, and its path (if it came from one).

    ``audio`` is a file path (read with :func:`~audiodiff.audio.load_audio` at the model's rate), a
    waveform ``(S,)`` or ``(C, S)`` at the model's rate, or an :class:`Audio` (its ``features`` are
    used as they are when they fit the model, so a generated clip is edited without re-encoding).
    """
    source = None
    if isinstance(audio, (str, os.PathLike)):
        source = str(audio)
        wave, _ = load_audio(audio, model.sample_rate)  # (1, S)
    elif isinstance(audio, Audio):
        feats = audio.features
        if feats is not None and tuple(feats.shape[:-1]) == tuple(model.representation.shape_per_frame):
            return model.to_net_layout(feats[None].to(model.device, torch.float32)), None  # (1, *shape, T)
        wave = resample(to_mono(audio.waveform), audio.sample_rate, model.sample_rate)
    elif isinstance(audio, torch.Tensor) and audio.dim() in (1, 2) and audio.is_floating_point():
        wave = to_mono(audio if audio.dim() == 2 else audio[None])  # (S,) or (C, S) -> (1, S)
    else:
        raise ConfigError(f"audio must be a path, a float waveform (S,) or (C, S), or an Audio, got "
                          f"{_describe(audio)}")
    if not torch.isfinite(wave).all():
        raise AudioError(f"input audio{' ' + source if source else ''} holds NaN or inf samples")
    if wave.shape[-1] < model.representation.hop_length:
        raise ConfigError(f"input audio{' ' + source if source else ''} is too short ({wave.shape[-1]} samples)")
    with torch.inference_mode():
        return model.encode(wave[None].to(model.device, torch.float32)), source  # (1, 1, S) -> (1, *net, T)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def check_length(model: DiffusionModel, x0: torch.Tensor, what: str) -> None:
    """An error if clean samples ``x0`` are longer than one window of the model (``max_seconds``)."""
    seconds = model.representation.seconds_for(x0.shape[-1])
    if seconds > model.max_seconds + 1e-6:
        raise ConfigError(f"{what} works on clips of at most {model.max_seconds:g} s (this model's window); "
                          f"the input is {seconds:.2f} s")


def in_batches(edit: Callable[..., list[Audio]], model: DiffusionModel, num_samples: int = 1,
               seed: int | None = None, batch_size: int = 16, **kwargs: Any) -> Iterator[Audio]:
    """The clips of ``edit(model, num_samples=num_samples, seed=seed, **kwargs)`` (``inpaint``,
    ``continue_audio``, ``variation``, ``loop``), made ``batch_size`` at a time and handed out as each
    batch is done: memory stays bounded for any ``num_samples``.  Clip ``i`` uses ``seed + i`` and has
    index ``i``, as in one call; a step's ``total`` counts the steps of every batch."""
    num_samples = checks.integer("num_samples", num_samples, 1, checks.MAX_CLIPS)
    batch_size = checks.integer("batch_size", batch_size, 1, MAX_EDIT_CLIPS)
    seed = checks.seed(seed, num_samples)
    callback, batches = kwargs.pop("callback", None), -(-num_samples // batch_size)
    if callback is not None:  # an edit's steps do not depend on its number of clips
        kwargs["callback"] = lambda info: callback({**info, "total": info["total"] * batches} if "total" in info else info)

    def clips() -> Iterator[Audio]:
        for start in range(0, num_samples, batch_size):
            for clip in edit(model, num_samples=min(batch_size, num_samples - start), seed=seed + start, **kwargs):
                clip.metadata["index"] += start
                yield clip

    return clips()


def mel_centres(representation: Any) -> torch.Tensor:
    """``(n_mels,)`` centre frequencies in Hz of a mel representation's filters."""
    import librosa

    htk = getattr(representation, "mel_scale", "slaney") == "htk"
    points = librosa.mel_frequencies(representation.n_mels + 2, fmin=representation.f_min,
                                     fmax=representation.f_max, htk=htk)  # filter edges and centres
    return torch.from_numpy(points[1:-1]).double()


def mel_band(representation: Any, fmin: float | None, fmax: float | None) -> tuple[int, int] | None:
    """The mel bins ``[lo, hi)`` whose filter centres lie in ``[fmin, fmax]`` Hz; ``None`` for all bins."""
    if fmin is None and fmax is None:
        return None
    if not all(hasattr(representation, k) for k in ("f_min", "f_max", "n_mels")):
        raise ConfigError("a frequency band (fmin/fmax) needs a mel representation")
    lo_hz = representation.f_min if fmin is None else checks.number("fmin", fmin)
    hi_hz = representation.f_max if fmax is None else checks.number("fmax", fmax)
    if not representation.f_min <= lo_hz < hi_hz <= representation.f_max:
        raise ConfigError(f"need {representation.f_min:g} <= fmin < fmax <= {representation.f_max:g} Hz "
                          f"(the model's mel range), got fmin={lo_hz:g}, fmax={hi_hz:g}")
    centres = mel_centres(representation)
    inside = ((centres >= lo_hz) & (centres <= hi_hz)).nonzero()
    if len(inside) == 0:
        raise ConfigError(f"the band {lo_hz:g}-{hi_hz:g} Hz holds no mel bin centre; widen it")
    return int(inside[0]), int(inside[-1]) + 1


def time_frames(representation: Any, start: float, end: float, frames: int) -> tuple[int, int]:
    """Frames ``[a, b)`` whose centres lie in ``[start, end]`` seconds of a clip of ``frames`` frames."""
    start, end = checks.number("start", start), checks.number("end", end)
    hop = representation.seconds_for(2) - representation.seconds_for(1)  # seconds per frame (a latent's span several hops)
    length = representation.seconds_for(frames)
    if not 0 <= start < end <= length + hop:
        raise ConfigError(f"need 0 <= start < end <= {length:.3f} s (the clip's length), "
                          f"got start={start:g}, end={end:g}")
    a, b = math.ceil(start / hop - 1e-6), min(frames, math.floor(end / hop + 1e-6) + 1)
    if b <= a:
        raise ConfigError(f"the range {start:g}-{end:g} s holds no mel frame (frames are {hop * 1000:.1f} ms apart)")
    return a, b


def context_window(frames: int, a: int, b: int, window: int) -> tuple[int, int]:
    """A slice ``[w0, w1)`` of at most ``window`` frames around ``[a, b)``: the inpainting context."""
    if frames <= window:
        return 0, frames
    if b - a > window:
        raise ConfigError(f"the range to inpaint ({b - a} frames) is longer than this model's window ({window} frames)")
    w0 = min(max(0, (a + b) // 2 - window // 2), frames - window)
    return w0, w0 + window


def prepare(model: DiffusionModel, num_samples: int = 1, prompt: str | None = None, negative_prompt: str | None = None,
            guidance_scale: float | None = None, steps: int | None = None, sampler: Any = None,
            spacing: str | None = None, seed: int | None = None, vocoder: Any = None) -> SamplingRun:
    """The shared set-up of an edit: :func:`~audiodiff.sampling.prepare_run` (no rescale, the model's ladder end),
    at most :data:`MAX_EDIT_CLIPS` clips."""
    return prepare_run(model, num_samples, prompt, negative_prompt, guidance_scale, 0.0, steps, sampler, spacing, None,
                       seed, vocoder, max_clips=MAX_EDIT_CLIPS)


def _seconds(model: DiffusionModel, x: torch.Tensor) -> float:
    return model.representation.seconds_for(x.shape[-1])


def finish(model: DiffusionModel, run: SamplingRun, x: torch.Tensor, edit: Mapping[str, Any],
            seams: Sequence[int] = ()) -> list[Audio]:
    """Decode ``x`` ``(B, ...)`` into clips with sidecars (and the seams' ``seam_ratio`` when there are seams)."""
    fields = {"seconds": _seconds(model, x), "edit": dict(edit)}
    if model.is_conditional:
        fields["guidance_scale"] = run.scale
    metas = run.metadata(0, min(len(x), len(run.prompts)), fields)
    feats = model.from_net_layout(x).float().cpu()  # (B, *shape_per_frame, T)
    for meta, f in zip(metas, feats):
        if seams:
            meta.update(seams=list(seams), seam_ratio=seam_score(f, seams))
    return to_audio(model, x, run.vocoder, metas)
