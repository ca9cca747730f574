"""Train the shipped models in one short session on a lent GPU machine.

The GPU machine has PyTorch but none of librosa, Hydra or the sentence encoder's weights, and it
cannot reach the network, so the work is cut in two:

``pack`` (here, with the recipes' Hydra configs and data)
    composes each job's config, materialises its training clips exactly as the recipe's
    ``AudioDataset`` would give them (``crop: start`` makes them deterministic) into one FLAC per
    domain, saves the sentence encoder's outputs for every caption (``TextConditioner.save_cache``)
    and writes everything to ``.gpu/bundle``.

``run`` (there)
    trains every job at once, one process each, under a shared time budget: each process times a
    few training steps first and sets its step count so the cosine schedule ends inside the budget
    (``TrainConfig.time_limit`` is the safety net), then exports the EMA weights (fp16) and tars
    each result into ``$OUT``.

    python tools/train_shipped.py pack
    python tools/train_shipped.py run --budget 400 --out $OUT     # on the GPU machine
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
BUNDLE = Path(os.environ.get("AUDIODIFF_GPU_BUNDLE", REPO / ".gpu" / "bundle"))  # the tests point it elsewhere
log = logging.getLogger("gpu")

#: name -> (recipe, hydra overrides) of the diffusion models trained there
DIFFUSION_JOBS = {
    "speech-teacher": ("speech", ["experiment=teacher"]),  # issue #24: wider nets, log-normal sigmas
    "music-teacher": ("music", ["experiment=teacher"]),
    "music": ("music", []),
    "sfx": ("sfx", []),
    "sfx-uncond": ("sfx", ["experiment=unconditional"]),
}
#: vocoder name -> the domain whose clips it trains on
VOCODER_JOBS = {"speech": "speech", "music": "music", "sfx": "sfx"}
#: domains stored as Ogg Vorbis rather than FLAC, to keep the bundle under the machine's 64 MiB
LOSSY = {"sfx"}
VOCODER_TRAIN = {"device": "cuda", "progress": False, "steps": 8000, "batch_size": 32, "num_workers": 0,
                 "checkpoint_every": 1000, "keep_last": 1, "log_every": 100}
#: the latent-diffusion comparison (issue #7): both speech models get the same batch and step budget
SPEECH_BUDGET = {"batch_size": 32, "steps": 6000}
AE_SHARE = 0.3  # share of the latent job's time for its autoencoder
GPU_TRAIN = {"batch_size": 64, "lr": 4e-4, "warmup_steps": 300, "checkpoint_every": 500, "keep_last": 1,
             "log_every": 100, "num_workers": 0, "progress": False, "device": "cuda", "fit_stats_batches": 20}


# -- pack (here) ---------------------------------------------------------------------------------
def compose(recipe: str, overrides: list[str]) -> dict:
    """The recipe's ``train`` config with ``overrides``, resolved."""
    return compose_file(recipe, "train", overrides)


def compose_file(recipe: str, name: str, overrides: list[str] | None = None) -> dict:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(REPO / "recipes" / recipe / "conf"), version_base=None):
        cfg = hydra_compose(name, overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)


def materialise(recipe_cfg: dict, split: str = "train") -> tuple[np.ndarray, list[dict], int]:
    """The recipe's training clips as an ``(N, S)`` int16 array, their metadata and sample rate."""
    from audiodiff.data import AudioDataset, read_manifest

    data, model = recipe_cfg["data"], recipe_cfg["model"]
    items = read_manifest(REPO / data["manifest"], split=split)
    rate = int(model["representation"]["sample_rate"])
    clips = AudioDataset(items, sample_rate=rate, seconds=float(model["seconds"]), crop=data["crop"],
                         loudness_normalize=data.get("loudness_db"), trim_silence_db=data.get("trim_db"))
    waves, meta = [], []
    for i in range(len(clips)):
        ex = clips[i]
        waves.append((ex["waveform"][0].clamp(-1, 1) * 32767).round().short().numpy())
        meta.append({"caption": ex["caption"], "label": ex["label"]})
    return np.stack(waves), meta, rate


def write_clips(domain: str, waves: np.ndarray, rate: int) -> Path:
    """``(N, S)`` int16 clips -> one FLAC (or Ogg Vorbis for :data:`LOSSY` domains), written in pieces."""
    import soundfile as sf

    lossy = domain in LOSSY
    path = BUNDLE / f"{domain}.{'ogg' if lossy else 'flac'}"
    kind = dict(format="OGG", subtype="VORBIS", compression_level=0.4) if lossy else dict(format="FLAC", subtype="PCM_16")
    flat = waves.reshape(-1)  # (N, S) -> (N * S,)
    with sf.SoundFile(path, "w", rate, 1, **kind) as f:
        for i in range(0, len(flat), rate * 20):
            f.write(flat[i : i + rate * 20])
    return path


def pack() -> None:
    import audiodiff

    BUNDLE.mkdir(parents=True, exist_ok=True)
    jobs, domains = [], {}
    for name, (recipe, overrides) in DIFFUSION_JOBS.items():
        cfg = compose(recipe, overrides)
        domains.setdefault(recipe, cfg)
        job = {"kind": "diffusion", "name": name, "domain": recipe, "model": cfg["model"],
               "train": {**cfg["train"], **GPU_TRAIN}}
        prompt = cfg["model"].get("conditioning", {}).get("prompt", {})
        if prompt.get("name") == "text":
            job["text_cache"] = f"{recipe}-text.safetensors"
        jobs.append(job)
    speech = compose("speech", [])
    domains.setdefault("speech", speech)
    jobs.append({"kind": "diffusion", "name": "speech-mel", "domain": "speech", "model": speech["model"],
                 "train": {**speech["train"], **GPU_TRAIN, **SPEECH_BUDGET}, "fixed_steps": True})
    ae = compose("speech", ["model/representation=latent"])
    ae_cfg = compose_file("speech", "autoencoder")
    jobs.append({"kind": "latent", "name": "speech-latent", "domain": "speech", "model": ae["model"], "fixed_steps": True,
                 "train": {**ae["train"], **GPU_TRAIN, **SPEECH_BUDGET},
                 "autoencoder": {**ae_cfg["autoencoder"], "mel": speech["model"]["representation"]},
                 "ae_train": {**ae_cfg["ae_train"], "device": "cuda", "progress": False, "num_workers": 0,
                              "batch_size": 64, "steps": 100_000, "checkpoint_every": 1000, "keep_last": 1}})
    for domain, cfg in domains.items():
        if (BUNDLE / f"{domain}.json").is_file():
            log.info("%s: already packed", domain)
            continue
        waves, meta, rate = materialise(cfg)
        path = write_clips(domain, waves, rate)
        (BUNDLE / f"{domain}.json").write_text(json.dumps({"sample_rate": rate, "shape": list(waves.shape),
                                                           "file": path.name, "items": meta}))
        log.info("%s: %d clips of %d samples, %.1f MB", domain, *waves.shape, path.stat().st_size / 1e6)
    for job in jobs:
        if "text_cache" in job:
            model = audiodiff.DiffusionModel(job["model"])
            conditioner = model.conditioners["prompt"]
            captions = sorted({m["caption"] for m in json.loads((BUNDLE / f"{job['domain']}.json").read_text())["items"]})
            conditioner.encode_text(captions + conditioner.demo_prompts())
            conditioner.save_cache(BUNDLE / job["text_cache"])
    for vocoder, domain in VOCODER_JOBS.items():
        mel = {k: v for k, v in domains[domain]["model"]["representation"].items() if k != "name"}
        jobs.append({"kind": "vocoder", "name": f"vocoder-{vocoder}", "domain": domain,
                     "vocoder": {"name": "vocos", **mel}, "train": VOCODER_TRAIN})
    (BUNDLE / "jobs.json").write_text(json.dumps(jobs, indent=1))
    log.info("packed %d jobs into %s", len(jobs), BUNDLE)


# -- run (there) ---------------------------------------------------------------------------------
class PackedClips(torch.utils.data.Dataset):
    """The packed clips of one domain: items like ``AudioDataset``'s (``waveform`` ``(1, S)``, caption, label)."""

    def __init__(self, domain: str) -> None:
        import soundfile as sf

        meta = json.loads((BUNDLE / f"{domain}.json").read_text())
        samples, rate = sf.read(BUNDLE / meta["file"], dtype="float32")
        n, length = meta["shape"]
        self.waves = torch.from_numpy(samples[: n * length].reshape(n, length))  # (N * S,) -> (N, S)
        self.items, self.sample_rate = meta["items"], rate

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        wave = self.waves[index].clamp(-1, 1).unsqueeze(0)  # (S,) -> (1, S)
        return {"waveform": wave, "caption": self.items[index]["caption"], "label": self.items[index]["label"],
                "index": int(index)}

    def summary(self) -> str:
        return f"{len(self)} packed clips at {self.sample_rate} Hz"


def steps_per_second(model, dataset, batch_size: int, device: torch.device, steps: int = 25) -> float:
    """Training steps per second of ``model`` (timed after 5 warm-up steps); the weights change."""
    from audiodiff.data.dataset import collate

    model = model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    for i in range(steps + 5):
        if i == 5:
            torch.cuda.synchronize(device) if device.type == "cuda" else None
            start = time.perf_counter()
        index = torch.randint(0, len(dataset), (batch_size,), generator=generator).tolist()
        batch = collate([dataset[j] for j in index])
        x0 = model.encode_batch(batch)
        loss = model(x0, generator=generator, **model.conditioning_inputs(batch, train=True, generator=generator))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    return steps / (time.perf_counter() - start)


def train_diffusion(job: dict, build, dataset, run_dir: Path, export: Path, started: float, budget: float,
                    device: torch.device, batch_size: int | None) -> None:
    """``fit`` a diffusion model in what is left of ``budget``; steps from a timing unless the job fixes them."""
    from audiodiff.training import TrainConfig, fit

    train = {**job["train"], "device": str(device), **({"batch_size": batch_size} if batch_size else {})}
    rate = None if job.get("fixed_steps") else steps_per_second(build(), dataset, int(train["batch_size"]), device,
                                                                 25 if device.type == "cuda" else 2)
    left = max(30.0, budget - (time.monotonic() - started) - 15)  # fit_stats, checkpoints and export
    if rate is not None:
        train["steps"] = max(100, int(rate * left * 0.9))
        log.info("%s: %.1f steps/s -> %d steps in %.0f s", job["name"], rate, train["steps"], left)
    train["time_limit"] = left
    ema = fit(build(), dataset, run_dir, TrainConfig.from_dict(train))
    ema.save(export, dtype=torch.float16)


def run_job(name: str, budget: float, work: Path, device_name: str, batch_size: int | None = None) -> None:
    """Train one packed job for ``budget`` seconds and export it to ``work/<name>/export``."""
    import audiodiff

    job = next(j for j in json.loads((BUNDLE / "jobs.json").read_text()) if j["name"] == name)
    device = torch.device(device_name)
    started = time.monotonic()
    run_dir, export = work / name, work / name / "export"
    dataset = PackedClips(job["domain"])
    if job["kind"] == "diffusion":
        def build():
            torch.manual_seed(0)
            model = audiodiff.DiffusionModel(job["model"])
            if "text_cache" in job:
                model.conditioners["prompt"].load_cache(BUNDLE / job["text_cache"])
            return model

        train_diffusion(job, build, dataset, run_dir, export, started, budget, device, batch_size)
    elif job["kind"] == "latent":
        from audiodiff.training.autoencoder import AutoencoderTrainConfig, train_autoencoder
        from audiodiff.registry import build as build_component

        torch.manual_seed(0)
        ae_train = {**job["ae_train"], "device": device_name, "time_limit": budget * AE_SHARE,
                    **({"batch_size": batch_size} if batch_size else {})}
        train_autoencoder(build_component("autoencoder", job["autoencoder"]), dataset, run_dir / "ae",
                          AutoencoderTrainConfig.from_dict(ae_train))
        model_cfg = {**job["model"], "representation": {**job["model"]["representation"],
                                                        "autoencoder": str(run_dir / "ae" / "model")}}

        def build():
            torch.manual_seed(0)
            return audiodiff.DiffusionModel(model_cfg)

        train_diffusion(job, build, dataset, run_dir, export, started, budget, device, batch_size)
    elif job["kind"] == "vocoder":
        from audiodiff.registry import build as build_component
        from audiodiff.training.vocoder import VocoderTrainConfig, train_vocoder

        torch.manual_seed(0)
        vocoder = build_component("vocoder", job["vocoder"])
        left = max(30.0, budget - (time.monotonic() - started) - 10)
        cfg = VocoderTrainConfig.from_dict({**job["train"], "device": device_name, "time_limit": left,
                                            **({"batch_size": batch_size} if batch_size else {})})
        trained = train_vocoder(vocoder, dataset, run_dir, cfg)
        from audiodiff.checkpoint import save_folder

        save_folder(export, trained.config(), trained.state_dict(), torch.float16)
    log.info("%s: done in %.0f s", name, time.monotonic() - started)


def run(budget: float, out: Path, only: list[str] | None, device_name: str, batch_size: int | None = None) -> None:
    """Start every job in its own process, wait, and tar each job's export and log into ``out``."""
    jobs = [j for j in json.loads((BUNDLE / "jobs.json").read_text()) if not only or j["name"] in only]
    work = BUNDLE.parent / "work"
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    procs = {}
    for job in jobs:
        logfile = open(work / f"{job['name']}.log", "w")
        cmd = [sys.executable, __file__, "job", job["name"], "--budget", str(budget), "--work", str(work), "--device", device_name]
        cmd += ["--batch-size", str(batch_size)] if batch_size else []
        procs[job["name"]] = (subprocess.Popen(cmd, env=env, stdout=logfile, stderr=subprocess.STDOUT), logfile)
    for name, (proc, logfile) in procs.items():
        code = proc.wait()
        logfile.close()
        tail = (work / f"{name}.log").read_text().splitlines()[-3:]
        log.info("%s exited with %d:\n  %s", name, code, "\n  ".join(tail))
    groups: dict[str, list[str]] = {}
    for job in jobs:
        groups.setdefault("vocoders" if job["kind"] == "vocoder" else job["name"], []).append(job["name"])
    for group, names in groups.items():
        with tarfile.open(out / f"{group}.tar", "w") as tar:
            for name in names:
                for rel in ("export", "log.jsonl", "ae/log.jsonl"):
                    if (work / name / rel).exists():
                        tar.add(work / name / rel, arcname=f"{name}/{rel}")
                tar.add(work / f"{name}.log", arcname=f"{name}/stdout.log")
    log.info("wrote %s", ", ".join(sorted(p.name for p in out.iterdir())))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pack", help="compose the jobs and pack their data into .gpu/bundle")
    run_p = sub.add_parser("run", help="train every packed job at once on the GPU")
    run_p.add_argument("--budget", type=float, default=400.0, help="seconds of training per job")
    run_p.add_argument("--out", type=Path, default=REPO / ".gpu" / "out")
    run_p.add_argument("--only", nargs="*", help="job names to run (default all)")
    run_p.add_argument("--device", default="cuda")
    run_p.add_argument("--batch-size", type=int, help="override every job's batch size (smoke tests on CPU)")
    job_p = sub.add_parser("job", help="(internal) one job, in its own process")
    job_p.add_argument("name")
    job_p.add_argument("--budget", type=float, required=True)
    job_p.add_argument("--work", type=Path, required=True)
    job_p.add_argument("--device", default="cuda")
    job_p.add_argument("--batch-size", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    torch.set_num_threads(2)
    if args.command == "pack":
        pack()
    elif args.command == "run":
        run(args.budget, args.out, args.only, args.device, args.batch_size)
    else:
        run_job(args.name, args.budget, args.work, args.device, args.batch_size)


if __name__ == "__main__":
    main()
