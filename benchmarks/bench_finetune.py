"""Fine-tuning the shipped music model on an instrument it never saw: LoRA (and full) before vs after.

The shipped ``music`` model was trained on ten GM programs (``audiodiff.data.render.GM_INSTRUMENTS``) and
the Salamander piano.  This renders notes of another GM program (default 104, sitar) with the recipe's
FluidSynth path (TimGM6mb), fine-tunes on ``--train-clips`` of them through the command line
(``audiodiff finetune``, wall time on the threads given), and measures on the other pitches:

- held-out loss: the model's own denoising loss on the held-out notes at fixed noise draws
  (:func:`audiodiff.finetune.held_out_loss`), before (base) and after (adapter);
- judge FD: Frechet distance of the shipped music judge's embeddings between clips generated from the
  held-out notes' captions and those notes;
- forgetting: both measures on notes of the base's own instruments, adapter at strength 0 and 1.

    .venv/bin/python benchmarks/bench_finetune.py [--work runs/bench-finetune] [--steps 300] [--full] [--replay]

``--quick``: 30 steps, LoRA only, printed.  ``--results FILE``: the report of a saved ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__:
    from . import common
else:
    import common

common.configure_environment()

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "finetune.md"
KNOWN = [(73, "flute"), (56, "trumpet"), (40, "violin"), (0, "piano")]


def render(folder: Path, program: int, name: str, pitches: list[int]) -> list[tuple[Path, str]]:
    """Notes of ``program`` (velocity 100, 0.75 s + 0.25 s release, 16 kHz) as WAVs with captions."""
    import torch

    from audiodiff.audio.io import save_audio
    from audiodiff.data.prepare import midi_to_note_name
    from audiodiff.data.render import _synth, find_soundfont, render_note

    folder.mkdir(parents=True, exist_ok=True)
    synth = None
    out = []
    for pitch in pitches:
        path = folder / f"{name.replace(' ', '_')}_{pitch:03d}.wav"
        if not path.is_file():
            synth = synth or _synth(16000, find_soundfont())
            wave = render_note(*synth, program, pitch, 100, 0.75, 0.25, 16000)
            save_audio(path, torch.as_tensor(wave, dtype=torch.float32), 16000)
        out.append((path, f"a {name} playing {midi_to_note_name(pitch)}"))
    return out


def write_table(rows: list[tuple[Path, str]], path: Path) -> Path:
    path.write_text("path,caption\n" + "".join(f"{p},{c}\n" for p, c in rows))
    return path


def judge_fd(model, rows: list[tuple[Path, str]], judge, seed: int = 0) -> float:
    """FD of judge embeddings: clips generated from the rows' captions vs the rows' audio."""
    import audiodiff
    from audiodiff.metrics import frechet_distance
    from audiodiff.evaluation.judge import judge_clips, load_clips, window_batch

    clips = audiodiff.generate(model, prompt=[c for _, c in rows], seed=seed)
    fake = window_batch([c.waveform[0] for c in clips], judge.num_samples)
    real = window_batch(load_clips([p for p, _ in rows], judge.sample_rate), judge.num_samples)
    return frechet_distance(judge_clips(judge, fake, clips[0].sample_rate)[0], judge_clips(judge, real)[0])


def measures(model, rows, judge, conditional: bool = True) -> dict[str, float]:
    from audiodiff.data.sources import read_data
    from audiodiff.finetune import held_out_loss
    from audiodiff.training.folder import dataset

    table = write_table(rows, Path(os.environ["BENCH_WORK"]) / "_measure.csv")
    data = dataset(read_data(table), model)
    return {"held_out_loss": held_out_loss(model, data, conditional=conditional), "judge_fd": judge_fd(model, rows, judge)}


def log_progress(results: dict) -> None:
    print(json.dumps(results), file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bench-finetune")
    parser.add_argument("--out", type=Path, default=None, help=f"markdown file (default: {RESULTS.name} in results/)")
    parser.add_argument("--quick", action="store_true", help="30 steps, LoRA only; prints only")
    parser.add_argument("--results", type=Path, default=None, help="report a saved results.json instead of running")
    parser.add_argument("--program", type=int, default=104)
    parser.add_argument("--instrument", default="sitar")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--full", action="store_true", help="also fine-tune every weight")
    parser.add_argument("--replay", action="store_true",
                        help="also a LoRA run whose data adds notes of the base's own instruments (other pitches)")
    args = parser.parse_args()
    if args.results is not None:
        common.emit_report(report(json.loads(args.results.read_text()), None), args.out)
        return
    if args.quick:
        args.steps, args.full, args.replay = 30, False, False
    start = time.perf_counter()
    results = measure(args)
    common.emit_report(report(results, time.perf_counter() - start), args.out or (None if args.quick else RESULTS))


def measure(args: argparse.Namespace) -> dict:
    """Render, fine-tune and measure; the results (also written to ``WORK/results.json``)."""
    import torch

    import audiodiff
    from audiodiff.lora import set_strength
    from audiodiff.evaluation.judge import load_judge

    torch.set_num_threads(2)
    work = Path(args.work).absolute()
    os.environ["BENCH_WORK"] = str(work)
    pitches = list(range(48, 85))
    held = [p for p in pitches if p % 4 == 2]  # 9 pitches, spread over the range
    train = [p for p in pitches if p % 4 != 2][:30]
    new_train = render(work / "new", args.program, args.instrument, train)
    new_held = render(work / "new", args.program, args.instrument, held)
    known = [row for program, name in KNOWN for row in render(work / "known", program, name, held[::2])]
    table = write_table(new_train, work / "train.csv")
    replay = [row for program, name in KNOWN for row in render(work / "known", program, name, train[::4])]
    replay_table = write_table(new_train + replay, work / "train_replay.csv")
    judge = load_judge("music")
    results: dict = {"instrument": args.instrument, "program": args.program, "train_clips": len(new_train),
                     "held_out_clips": len(new_held), "known_clips": len(known), "steps": args.steps, "rank": args.rank}
    base = audiodiff.load("music")
    results["base"] = {"new": measures(base, new_held, judge), "known": measures(base, known, judge)}
    log_progress(results)
    for kind in ["lora"] + (["full"] if args.full else []) + (["lora_replay"] if args.replay else []):
        out = work / kind
        data = replay_table if kind == "lora_replay" else table
        cmd = [sys.executable, "-m", "audiodiff", "finetune", "--model", "music", "--data", str(data), "--out", str(out),
               "--steps", str(args.steps), "--lora-rank", str(args.rank), "-q"] + (["--full"] if kind == "full" else [])
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        wall = time.perf_counter() - start
        entry = {"command": " ".join(["audiodiff", *cmd[3:]]), "wall_s": wall}
        if kind.startswith("lora"):
            adapted = audiodiff.load("music", lora=[out / "model"])
            entry["size_bytes"] = (out / "model" / "adapter.safetensors").stat().st_size
            for strength in (1.0, 0.5, 0.0):
                set_strength(adapted, "model", strength)
                entry[f"new_strength_{strength:g}"] = measures(adapted, new_held, judge)
                entry[f"known_strength_{strength:g}"] = measures(adapted, known, judge)
        else:
            tuned = audiodiff.load(out / "model")
            entry["size_bytes"] = (out / "model" / "model.safetensors").stat().st_size
            entry["new"], entry["known"] = measures(tuned, new_held, judge), measures(tuned, known, judge)
        results[kind] = entry
        log_progress(results)
    results["base_size_bytes"] = (audiodiff.hub.resolve("music") / "model.safetensors").stat().st_size
    results["base_parameters"] = base.num_parameters()
    (work / "results.json").write_text(json.dumps(results, indent=2))
    return results


def report(results: dict, seconds: float | None) -> str:
    """The markdown report: set-up, one row per model and strength, the commands."""
    header = common.report_header("audiodiff fine-tuning on an instrument the music model never saw", seconds)
    base, rows = results["base"], []

    def row(name: str, entry: dict | None, new: dict, known: dict) -> list:
        size = f"{entry['size_bytes']:,} B ({100 * entry['size_bytes'] / results['base_size_bytes']:.1f}%)" if entry else \
            "the same adapter" if "strength" in name else f"{results['base_size_bytes']:,} B"
        wall = f"{entry['wall_s']:.0f} s" if entry else "-"
        return [name, wall, size, f"{new['held_out_loss']:.3f}", f"{new['judge_fd']:.0f}",
                f"{known['held_out_loss']:.3f}", f"{known['judge_fd']:.0f}"]

    rows.append(row("base (`music`)", None, base["new"], base["known"]))
    for kind in ("lora", "lora_replay"):
        if kind in results:
            e = results[kind]
            for strength in ("1", "0.5", "0"):
                name = f"{'LoRA' if kind == 'lora' else 'LoRA + replay'} rank {results['rank']}, strength {strength}"
                rows.append(row(name, e if strength == "1" else None, e[f"new_strength_{strength}"],
                                e[f"known_strength_{strength}"]))
    if "full" in results:
        rows.append(row("full fine-tuning", results["full"], results["full"]["new"], results["full"]["known"]))
    table = common.markdown_table(["model", "wall time", "size (% of base file)", f"{results['instrument']} loss",
                                   f"{results['instrument']} FD", "known loss", "known FD"], rows)
    commands = "\n".join(results[k]["command"] for k in ("lora", "full", "lora_replay") if k in results)
    return (f"{header}\n\n## {results['train_clips']} notes of GM program {results['program']} ({results['instrument']}), "
            f"{results['steps']} steps; {results['held_out_clips']} held-out pitches; {results['known_clips']} notes of the "
            f"base's instruments\n\n{table}\n\nLoss: the model's own training loss at fixed noise draws "
            "(`audiodiff.finetune.held_out_loss`); FD: the shipped music judge's embeddings of clips generated from the "
            "clips' captions against the clips (few clips: biased upwards, compare rows only). 'replay': the training "
            "data also holds notes of the base's own instruments at other pitches."
            f"\n\n```sh\n{commands}\n```")


if __name__ == "__main__":
    main()
