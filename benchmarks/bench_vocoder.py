"""Vocoder benchmark: how close a resynthesis is to the original, and how fast, on held-out real clips.

For each domain (speech: FSDD digits at 8 kHz; music: General MIDI and Salamander piano notes at
16 kHz; sfx: Berklee sound effects at 16 kHz) the test split of the domain's manifest (or, without
one, the dataset prepared from ``../shared/data``) gives ``clips`` held-out clips, trimmed of
silence, loudness-normalised to -20 dBFS and cut to ``max_seconds``, as the recipes train on.
Each clip goes to a natural-log mel with the domain model's mel settings and back to audio with:

- our trained Vocos vocoders (``--trained DOMAIN=FOLDER``; by default the shipped ones: the vocoder
  trained on the domain, ``audiodiff/pretrained/vocoders/vocos-<domain>``, and the shipped model's
  ``vocoder/``, when they differ; else ``runs/vocoder-<domain>/vocoder``; skipped with a note when
  there is none yet);
- Griffin-Lim through torchaudio (audiodiff's ``griffinlim`` vocoder) at 32 and 100 iterations;
- ``librosa.feature.inverse.mel_to_audio`` (NNLS mel inversion + librosa's Griffin-Lim, 32 iterations).

Scores, against the original clip (lower is better): log-mel L1 (HiFi-GAN's mel distance, Kong et al.
2020) with the domain's mel settings, and the multi-resolution STFT distance of Parallel WaveGAN
(Yamamoto et al. 2020, eq. 6; resolutions 512/1024/2048).  Speed: seconds of audio made per second
of wall time (x real time), one clip at a time, on 2 threads.

Then what users hear: each shipped model that has a trained vocoder generates ``generated`` clips
(prompts: the judge's labels for speech, test captions otherwise; clip ``i`` uses seed ``i``) and
they are decoded by its vocoder, by the shipped vocoder trained on its domain when that is another
one (``vocos-sfx`` for ``sfx``), and by Griffin-Lim (64 iterations) from the same mels; the shipped
judge scores each set as ``audiodiff eval`` does (Frechet distance to the test clips, accuracy on the
prompt, and pYIN pitch accuracy for note prompts).

Run from the repository root::

    .venv/bin/python benchmarks/bench_vocoder.py            # full run, writes benchmarks/results/vocoder.md
    .venv/bin/python benchmarks/bench_vocoder.py --quick    # 3 clips per domain, prints only

Nothing is asserted; the numbers are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from . import common
else:  # run as a script: benchmarks/ is on sys.path
    import common

common.configure_environment()  # thread and OpenMP settings must be in the env before torch loads

import torch  # noqa: E402

from audiodiff.audio.io import load_audio  # noqa: E402
from audiodiff.audio.mel import Mel  # noqa: E402
from audiodiff.data import prepare, read_manifest  # noqa: E402
from audiodiff.data.dataset import normalize_loudness, trim_silence  # noqa: E402
from audiodiff.metrics.spectral import log_mel_l1, mr_stft_distance  # noqa: E402
from audiodiff.vocoders import GriffinLim, list_shipped_vocoders, load_vocoder_folder  # noqa: E402

REPO = common.REPO_ROOT
RESULTS = Path(__file__).resolve().parent / "results" / "vocoder.md"
SHARED = Path(os.environ.get("AUDIODIFF_SHARED_DATA", REPO.parent / "shared" / "data"))


@dataclass(frozen=True)
class Domain:
    name: str
    mel: dict  # the domain model's mel settings (recipes/<domain>/conf/model/representation)
    manifest: str  # the recipe's manifest
    fallback: tuple[str, str]  # (layout, folder under ../shared/data) when the manifest is missing
    max_seconds: float


DOMAINS = (
    Domain("speech", {"sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64, "f_min": 20.0, "f_max": 4000.0},
           "data/speech/manifest.jsonl", ("fsdd", "fsdd"), 1.0),
    Domain("music", {"sample_rate": 16000, "n_fft": 1024, "hop_length": 256, "n_mels": 80, "f_min": 30.0, "f_max": 8000.0},
           "data/music/manifest.jsonl", ("salamander", "salamander"), 2.0),
    Domain("sfx", {"sample_rate": 16000, "n_fft": 1024, "hop_length": 256, "n_mels": 80, "f_min": 30.0, "f_max": 8000.0},
           "data/sfx/manifest.jsonl", ("berklee", "berklee"), 3.0),
)


@dataclass(frozen=True)
class Settings:
    clips: int = 20
    warmup: int = 1
    generated: int = 64  # clips per shipped model and vocoder for the generated-clip table (0: skip it)


QUICK = Settings(clips=3, generated=8)
GENERATED_PROMPTS = {"speech": "labels", "music": "captions", "sfx": "captions"}


def held_out_paths(domain: Domain, n: int) -> list[str]:
    """``n`` test-split clips, evenly spread over the split (sorted by path)."""
    manifest = REPO / domain.manifest
    if manifest.is_file():
        items = read_manifest(manifest, split="test")
    else:
        layout, folder = domain.fallback
        items = [i for i in prepare(layout, SHARED / folder) if i.split == "test"]
    paths = sorted(str(i.path) for i in items)
    if not paths:
        raise SystemExit(f"no test clips for {domain.name} ({manifest} or {SHARED / domain.fallback[1]})")
    step = max(1, len(paths) // n)
    return paths[::step][:n]


def load_clip(path: str, domain: Domain) -> torch.Tensor:
    """``(1, 1, S)``: mono, trimmed at -40 dB, -20 dBFS, at most ``max_seconds``, whole hops."""
    wave, _ = load_audio(path, domain.mel["sample_rate"])
    wave = normalize_loudness(trim_silence(wave.mean(0, keepdim=True), 40), -20)
    hop = domain.mel["hop_length"]
    length = min(wave.shape[-1], int(domain.max_seconds * domain.mel["sample_rate"])) // hop * hop
    wave = wave[:, :length]
    if length < domain.mel["n_fft"]:  # a very short (trimmed) clip: pad to one STFT window
        wave = torch.nn.functional.pad(wave, (0, domain.mel["n_fft"] - length))
    return wave[None]  # (1, S) -> (1, 1, S)


def librosa_vocoder(mel: Mel):
    """``librosa.feature.inverse.mel_to_audio`` with the same mel settings, as a log-mel -> wave function."""
    import librosa

    s = mel.settings()

    def decode(log_mel: torch.Tensor) -> torch.Tensor:
        wave = librosa.feature.inverse.mel_to_audio(
            log_mel[0].exp().numpy(), sr=s["sample_rate"], n_fft=s["n_fft"], hop_length=s["hop_length"],
            win_length=s["win_length"], power=s["power"], fmin=s["f_min"], fmax=s["f_max"],
            htk=s["mel_scale"] == "htk", norm=s["mel_norm"], n_iter=32, length=(log_mel.shape[-1] - 1) * s["hop_length"])
        return torch.from_numpy(wave).float()[None, None]  # (S,) -> (1, 1, S)

    return decode


def trained_folders(domain: str, overrides: dict[str, str]) -> list[Path]:
    """Our trained vocoders for ``domain``: the ``--trained`` one, else the shipped domain vocoder
    (``audiodiff/pretrained/vocoders/vocos-DOMAIN``) and the shipped model's ``vocoder/`` (both when
    they differ, as for sfx, whose model ships the music vocoder), else ``runs/vocoder-DOMAIN/vocoder``."""
    if domain in overrides:
        return [Path(overrides[domain])]
    shipped = (list_shipped_vocoders().get(f"vocos-{domain}"), REPO / "audiodiff" / "pretrained" / domain / "vocoder")
    found = [f for f in shipped if f is not None and (f / "config.json").is_file()]
    run = REPO / "runs" / f"vocoder-{domain}" / "vocoder"
    return found or ([run] if (run / "config.json").is_file() else [])


def vocoders_for(domain: Domain, mel: Mel, overrides: dict[str, str]) -> tuple[dict, list[str]]:
    """``{label: log-mel -> wave}`` and notes (e.g. no trained vocoder yet)."""
    notes, out = [], {}
    folders = trained_folders(domain.name, overrides)
    if not folders:
        notes.append(f"{domain.name}: no trained vocoder yet (train one with `python recipes/vocoder/train.py "
                     f"domain={domain.name}`), skipped")
    for folder in folders:
        vocoder = load_vocoder_folder(folder)
        if vocoder.mel_settings != mel.settings():
            notes.append(f"{domain.name}: {folder} has other mel settings, skipped")
        else:
            rel = os.path.relpath(folder, REPO)
            out[f"Vocos (ours, {sum(p.numel() for p in vocoder.parameters()):,} parameters, `{rel}`)"] = vocoder
    out["Griffin-Lim 32 it. (torchaudio)"] = GriffinLim(n_iter=32, **mel.settings()).eval()
    out["Griffin-Lim 100 it. (torchaudio)"] = GriffinLim(n_iter=100, **mel.settings()).eval()
    out["librosa mel_to_audio (32 it.)"] = librosa_vocoder(mel)
    return out, notes


def score(decode, clips: list[torch.Tensor], mel: Mel, warmup: int) -> tuple[float, float, float]:
    """Mean log-mel L1, mean MR-STFT distance, and x real time over ``clips``."""
    with torch.inference_mode():
        for _ in range(warmup):
            decode(mel.log_mel(clips[0]))
        l1, mrstft, seconds, audio = [], [], 0.0, 0.0
        for clip in clips:
            log_mel = mel.log_mel(clip)  # (1, n_mels, frames)
            start = time.perf_counter()
            wave = decode(log_mel)
            seconds += time.perf_counter() - start
            audio += wave.shape[-1] / mel.sample_rate
            l1.append(log_mel_l1(wave, clip, mel))
            mrstft.append(mr_stft_distance(wave, clip))
    return sum(l1) / len(l1), sum(mrstft) / len(mrstft), audio / seconds


def generated_section(settings: Settings) -> str:
    """Shipped models' generated clips through their trained vocoder and through Griffin-Lim, judged."""
    import audiodiff
    from audiodiff.evaluation.evaluate import evaluate

    rows, notes = [], []
    for name, prompts in GENERATED_PROMPTS.items():
        manifest = REPO / "data" / name / "manifest.jsonl"
        if name not in audiodiff.list_models() or not manifest.is_file():
            notes.append(f"`{name}`: no shipped model or no {manifest.relative_to(REPO)} "
                         f"(`python recipes/{name}/prepare.py`), skipped")
            continue
        model = audiodiff.load(name).eval()
        if model.trained_vocoder is None:
            notes.append(f"`{name}`: ships without a trained vocoder, skipped")
            continue
        reference = read_manifest(manifest, split="test")
        choices = [("Vocos (its `vocoder/`)", None)]
        if f"vocos-{name}" in list_shipped_vocoders():  # a vocoder trained on the domain, shipped on its own
            choices.append((f"Vocos `vocos-{name}`", f"vocos-{name}"))
        for label, vocoder in (*choices, ("Griffin-Lim 64 it.", "griffinlim")):
            start = time.perf_counter()
            report = evaluate(model, reference, settings.generated, prompts=prompts, vocoder=vocoder, seed=0)
            gen = report["generated"]
            s = report["settings"]
            pitch = gen.get("pitch_accuracy")
            rows.append([f"`{name}`", label, f"{(s['sampler'] or {}).get('name', '?')}, {s['steps']} steps", str(settings.generated),
                         f"{gen['frechet_distance']:.1f}", f"{100 * gen['prompt_accuracy']:.1f}%",
                         "-" if pitch is None else f"{100 * pitch:.1f}%"])
            print(f"generated {name} / {label}: FD {gen['frechet_distance']:.1f}, accuracy "
                  f"{gen['prompt_accuracy']:.3f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    parts = ["## Generated clips through each vocoder (shipped models, shipped judges)", "",
             "The same generated mels (same prompts and seeds) decoded by the model's trained vocoder, by the "
             "domain's own shipped vocoder when that is another one, and by Griffin-Lim; scored as `audiodiff eval` scores them. Frechet distance of the judge's embeddings "
             "to the domain's test clips (lower is better), judge accuracy on the prompt (digit, caption or "
             "GM family) and pYIN pitch within a semitone for note prompts (higher is better).", ""]
    if rows:
        parts.append(common.markdown_table(["model", "vocoder", "sampler", "clips", "Frechet distance",
                                            "accuracy on the prompt", "pitch accuracy"], rows))
    if notes:
        parts += ["", *(f"- {n}" for n in notes)]
    return "\n".join(parts)


def run(settings: Settings, overrides: dict[str, str]) -> str:
    sections, notes = [], []
    for domain in DOMAINS:
        mel = Mel(**domain.mel)
        paths = held_out_paths(domain, settings.clips)
        clips = [load_clip(p, domain) for p in paths]
        vocoders, domain_notes = vocoders_for(domain, mel, overrides)
        notes += domain_notes
        rows = []
        for label, decode in vocoders.items():
            l1, mrstft, speed = score(decode, clips, mel, settings.warmup)
            rows.append([label, f"{l1:.3f}", f"{mrstft:.3f}", f"{speed:.0f}x"])
            print(f"{domain.name}: {label}: log-mel L1 {l1:.3f}, MR-STFT {mrstft:.3f}, {speed:.0f}x real time",
                  file=sys.stderr, flush=True)
        seconds = sum(c.shape[-1] for c in clips) / mel.sample_rate
        sections.append(f"## {domain.name} ({len(clips)} test clips, {seconds:.1f} s, {mel.sample_rate} Hz, "
                        f"n_fft {mel.n_fft}, hop {mel.hop_length}, {mel.n_mels} mels)\n\n"
                        + common.markdown_table(["vocoder", "log-mel L1", "MR-STFT", "speed (x real time, 2 threads)"], rows))
    body = "\n\n".join(sections)
    if notes:
        body += "\n\nNotes:\n\n" + "\n".join(f"- {n}" for n in notes)
    body += "\n\nLower is better for both distances; identical audio scores 0."
    if settings.generated:
        body += "\n\n" + generated_section(settings)
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.clips} clips per domain, print only")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown file to write (default: {RESULTS.relative_to(REPO)} for a full run, none with --quick)")
    parser.add_argument("--trained", action="append", default=[], metavar="DOMAIN=FOLDER",
                        help="our trained vocoder for a domain (default: audiodiff/pretrained/vocoders/vocos-DOMAIN "
                             "and audiodiff/pretrained/DOMAIN/vocoder, else runs/vocoder-DOMAIN/vocoder)")
    parser.add_argument("--generated", type=int, default=None, metavar="N",
                        help=f"generated clips per shipped model and vocoder (default {Settings().generated}, "
                             f"{QUICK.generated} with --quick; 0 skips that table)")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.trained)
    common.setup_threads()
    load_before = os.getloadavg()
    start = time.perf_counter()
    settings = QUICK if args.quick else Settings()
    if args.generated is not None:
        settings = Settings(settings.clips, settings.warmup, max(0, args.generated))
    body = run(settings, overrides)
    header = common.report_header("Vocoders: resynthesis distance and speed" + (" (--quick)" if args.quick else ""),
                                  time.perf_counter() - start)
    header += f"\n- load average (1 min) before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
    common.emit_report(header + "\n\n" + body, args.out or (None if args.quick else RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
