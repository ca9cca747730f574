"""The mel front end: our batched ``Mel.log_mel`` against ``librosa.feature.melspectrogram`` per file.

Both compute the same magnitude mel (Slaney scale and norm, centred reflect-padded STFT, Hann
window) of the same held-out real clips; the table gives the time for all clips, the ratio, and
the largest difference of the natural-log mels (clamped at the same floor), which shows they
compute the same features.  2 threads.

    .venv/bin/python benchmarks/bench_frontend.py [--quick]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

common.configure_environment()

import numpy as np  # noqa: E402
import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "frontend.md"
FSDD = common.REPO_ROOT.parent / "shared" / "data" / "fsdd"


@dataclass(frozen=True)
class Settings:
    clips: int = 256
    repeats: int = 5


QUICK = Settings(clips=32, repeats=2)
SETTINGS = {"8 kHz speech (n_fft 512, hop 128, 64 mels)": dict(sample_rate=8000, n_fft=512, hop_length=128, n_mels=64, f_min=20.0, f_max=4000.0),
            "16 kHz (n_fft 1024, hop 256, 80 mels)": dict(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=80, f_min=30.0, f_max=8000.0)}


def clips(n: int, sample_rate: int) -> torch.Tensor:
    """``n`` held-out FSDD clips resampled to ``sample_rate``, cropped/padded to 1 s: ``(n, 1, S)``."""
    from audiodiff.data import AudioDataset, prepare_fsdd

    items = [i for i in prepare_fsdd(FSDD) if i.split == "test"][:n]
    data = AudioDataset(items, sample_rate=sample_rate, seconds=1.0, crop="start")
    return torch.stack([data[i]["waveform"] for i in range(len(data))])


def run(settings: Settings) -> str:
    import librosa

    from audiodiff.audio import Mel

    rows = []
    for title, s in SETTINGS.items():
        waves = clips(settings.clips, s["sample_rate"])
        mel = Mel(**s)
        ours = common.time_call(lambda: mel.log_mel(waves), repeats=settings.repeats)
        arrays = [w[0].numpy() for w in waves]

        def per_file():
            return [librosa.feature.melspectrogram(y=a, sr=s["sample_rate"], n_fft=s["n_fft"], hop_length=s["hop_length"],
                                                   n_mels=s["n_mels"], fmin=s["f_min"], fmax=s["f_max"], power=1.0,
                                                   center=True, pad_mode="reflect") for a in arrays]

        theirs = common.time_call(per_file, repeats=settings.repeats)
        ref = np.log(np.maximum(np.stack(per_file()), mel.log_floor))
        diff = float(np.abs(mel.log_mel(waves).numpy() - ref).max())
        rows.append([title, len(arrays), f"{ours.median * 1e3:.1f}", f"{theirs.median * 1e3:.1f}",
                     f"{theirs.median / ours.median:.1f}x", f"{diff:.1e}"])
    table = common.markdown_table(["mel settings", "clips (1 s)", "ours, batched (ms)", "librosa per file (ms)",
                                   "speed-up", "max |log-mel difference|"], rows)
    return f"## Log-mel of held-out FSDD clips, median of {settings.repeats} repeats, 2 threads\n\n{table}"


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main("audiodiff mel front end vs librosa", RESULTS, run, Settings(), QUICK, argv,
                                 __doc__.split("\n\n")[0], "32 clips, 2 repeats; prints only")


if __name__ == "__main__":
    sys.exit(main())
