"""What every recipe does, configured by Hydra: prepare a manifest, train, generate.

The domain scripts (``recipes/<domain>/{prepare,train,train_autoencoder,generate}.py``) are thin Hydra
entry points over these functions.  Only ``cfg.model`` is saved with the weights; the library never sees Hydra.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import audiodiff
from audiodiff.data import AudioDataset, FeatureCache, prepare, read_manifest, write_manifest
from audiodiff.training import TrainConfig, checkpoint_step, fit, latest_checkpoint

log = logging.getLogger("recipes")
REPO = Path(__file__).resolve().parents[1]


def resolve(path: str | os.PathLike) -> Path:
    """Paths in configs are relative to the repository root (not to Hydra's working folder)."""
    path = Path(os.path.expandvars(str(path))).expanduser()
    return path if path.is_absolute() else REPO / path


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def run_prepare(cfg: DictConfig) -> Path:
    """Build the manifest from each source in ``cfg.data.sources`` (``layout``, ``root``, options)."""
    items = []
    for source in cfg.data.sources:
        source = to_dict(source)
        layout, root = source.pop("layout"), resolve(source.pop("root"))
        root = public_data(layout, root)
        found = prepare(layout, root, **source)
        log.info("%s: %d clips from %s", layout, len(found), root)
        items.extend(found)
    manifest = resolve(cfg.data.manifest)
    write_manifest(items, manifest)
    log.info("wrote %d items to %s", len(items), manifest)
    return manifest


def public_data(layout: str, root: Path) -> Path:
    """For a public dataset (fsdd, salamander, berklee): ``root``, else $AUDIODIFF_DATA/<name> or ../shared/data/<name>,
    else downloaded into ``root``; any other layout: ``root``."""
    from audiodiff.data.download import SOURCES, ensure

    return ensure(layout, root) if layout in SOURCES else root


def dataset(cfg: DictConfig, split: str, representation: Any) -> AudioDataset | FeatureCache:
    """The split's clips at ``representation``'s rate; with ``data.cache_dir`` set, their log-mels cached on disk."""
    manifest = resolve(cfg.data.manifest)
    if not manifest.is_file():
        run_prepare(cfg)
    items = read_manifest(manifest, split=split)
    if cfg.data.get("max_items"):
        items = items[: int(cfg.data.max_items)]
    clips = AudioDataset(items, sample_rate=representation.sample_rate, seconds=float(cfg.model.seconds), crop=cfg.data.crop,
                         loudness_normalize=cfg.data.get("loudness_db"), trim_silence_db=cfg.data.get("trim_db"),
                         seed=int(cfg.train.seed))
    if cfg.data.get("cache_dir"):
        return FeatureCache(clips, representation, resolve(cfg.data.cache_dir))
    return clips


def run_train(cfg: DictConfig) -> Path:
    """Train ``cfg.model`` on the manifest's train split; export to ``cfg.export_to`` if set."""
    torch.set_num_threads(int(cfg.get("threads", 2)))
    torch.manual_seed(int(cfg.train.seed))  # the initial weights too: two fresh runs with one seed are identical
    model = audiodiff.DiffusionModel(model_config(cfg))
    train = to_dict(cfg.train)
    if cfg.get("init_from"):
        init_weights(model, resolve(cfg.init_from))
        train["fit_stats_batches"] = 0  # keep the statistics the weights were trained with
    data = dataset(cfg, "train", model.representation)
    log.info("model: %s parameters; data: %s", f"{model.num_parameters():,}", data.summary())
    run_dir = resolve(cfg.run_dir)
    ema = fit(model, data, run_dir, TrainConfig.from_dict(train))
    if cfg.get("export_to"):
        target = resolve(cfg.export_to)
        ema.save(target, dtype=torch.float16)
        log.info("exported the EMA model (fp16) to %s", target)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None and checkpoint_step(ckpt) >= int(cfg.train.steps):
        run_eval(cfg, ema, run_dir / "eval")
    elif int((cfg.get("eval") or {}).get("num_samples") or 0) > 0:
        log.info("training stopped before step %d: evaluation runs after the last leg", int(cfg.train.steps))
    return run_dir / "model"


def run_distill(cfg: DictConfig) -> Path:
    """Distil ``cfg.distill.teacher`` on the manifest's train split (the teacher's own data settings) into a
    ``cfg.distill.steps``-step student (:func:`audiodiff.distill.distill`); rounds resume in ``cfg.distill.work_dir``."""
    from audiodiff.distill import DistillConfig, distill

    torch.set_num_threads(int(cfg.get("threads", 2)))
    d = cfg.distill
    teacher = audiodiff.load(resolve(d.teacher))
    train = {**to_dict(cfg.train), **to_dict(d.train), "steps": int(d.round_steps)}
    config = DistillConfig(steps=int(d.steps), start_steps=int(d.start_steps), methods=tuple(d.methods),
                           guidance_range=tuple(d.guidance_range) if d.guidance_range else None,
                           spacing=d.get("spacing"), sigma_min=d.get("sigma_min"), train=train,
                           time_limit=float(d.time_limit))
    out = resolve(d.out)
    try:
        distill(teacher, dataset(cfg, "train", teacher.representation), resolve(d.work_dir), config, out=out)
    except TimeoutError as exc:
        log.warning("%s", exc)
        return out
    log.info("student written to %s", out)
    return out


def run_eval(cfg: DictConfig, model: Any, out_dir: Path) -> Path | None:
    """``audiodiff eval`` of ``model`` against the manifest's ``cfg.eval.split`` clips, as ``cfg.eval`` says:
    ``report.json`` and ``report.md`` in ``out_dir``.  ``eval.num_samples: 0`` skips it."""
    from audiodiff.evaluation.evaluate import evaluate_manifest
    from audiodiff.evaluation.report import write_report

    settings = to_dict(cfg.eval) if cfg.get("eval") is not None else {}
    num_samples = int(settings.get("num_samples") or 0)
    if num_samples <= 0:
        return None
    manifest, split = resolve(cfg.data.manifest), settings.get("split", "test")
    log.info("evaluating %d generated clips against the %s clips of %s", num_samples, split, manifest)
    try:
        report = evaluate_manifest(model, manifest, num_samples, split, judge=settings.get("judge"),
                                   prompts=settings.get("prompts") if model.is_conditional else None,
                                   max_reference=settings.get("max_reference"),
                                   batch_size=int(settings.get("batch_size", 16)))
    except audiodiff.ConfigError as err:  # the trained model is saved already; say why and go on
        log.warning("evaluation skipped: %s", err)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = write_report(report, out_dir / "report.json", out_dir / "report.md")
    generated = report["generated"]
    log.info("evaluation: Frechet distance %.2f, accuracy on the prompt %s; %s", generated["frechet_distance"],
             "-" if generated.get("prompt_accuracy") is None else f"{generated['prompt_accuracy']:.3f}", md_path)
    return json_path


def init_weights(model: audiodiff.DiffusionModel, folder: Path) -> None:
    """Start from a saved model's weights (fine-tuning, or going on from an exported model).

    The net must match, except that ``model`` may add a global conditioning input the source lacks
    (e.g. the source's text conditioner routed ``cross`` and ours ``both``): that input's projection
    starts at zero, so training starts from exactly the source model's predictions.
    """
    source = audiodiff.load(folder)
    ours, theirs = dict(model.config["net"]), dict(source.config["net"])
    adds_cond = theirs.get("cond_dim") is None and ours.get("cond_dim") is not None
    if adds_cond:
        ours.pop("cond_dim")
    if ours != theirs or source.representation.config() != model.representation.config():
        raise audiodiff.ConfigError(f"init_from {folder}: its net or representation differs from cfg.model")
    result = model.load_weights_from(source, skip_mismatched=False, zero_new=adds_cond)
    if (result.new and not adds_cond) or result.skipped:
        raise audiodiff.ConfigError(f"init_from {folder}: weights do not match cfg.model ({len(result.new)} "
                                    f"missing, {len(result.skipped)} unexpected)")
    log.info("initialised from %s%s", folder, " (the new global conditioning input starts at zero)" if result.new else "")


def model_config(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.model`` as a dict; a latent representation's autoencoder folder is resolved like other paths."""
    model = to_dict(cfg.model)
    rep = model.get("representation")
    if isinstance(rep, dict) and isinstance(rep.get("autoencoder"), str):
        rep["autoencoder"] = str(resolve(rep["autoencoder"]))
    return model


def run_train_autoencoder(cfg: DictConfig) -> Path:
    """Stage 1 of latent diffusion: train ``cfg.autoencoder`` on the train split's log-mels (mel settings
    from ``cfg.model.representation``) with ``cfg.ae_train``; the autoencoder lands in ``ae_run_dir/model``."""
    from audiodiff.training.autoencoder import AutoencoderTrainConfig, train_autoencoder

    torch.set_num_threads(int(cfg.get("threads", 2)))
    mel = to_dict(cfg.model.representation)
    if mel.get("name") != "mel":
        raise audiodiff.ConfigError(f"the autoencoder is trained on a mel representation, not {mel.get('name')!r}; "
                                    "use the default model/representation")
    torch.manual_seed(int(cfg.ae_train.get("seed", 0)))  # reproducible initial weights
    autoencoder = audiodiff.build("autoencoder", {**to_dict(cfg.autoencoder), "mel": mel})
    data = dataset(cfg, "train", autoencoder.mel)
    run_dir = resolve(cfg.ae_run_dir)
    log.info("autoencoder: %s; data: %s", autoencoder.extra_repr(), data.summary())
    train_autoencoder(autoencoder, data, run_dir, AutoencoderTrainConfig.from_dict(to_dict(cfg.ae_train)))
    return run_dir / "model"


def run_generate(cfg: DictConfig) -> list[Path]:
    """Generate ``num_samples`` clips per prompt from ``cfg.model_path`` (folder or shipped name)."""
    torch.set_num_threads(int(cfg.get("threads", 2)))
    from audiodiff.audio.clip import write_clips
    from audiodiff.files import check_out_dir

    name = cfg.model_path
    model = audiodiff.load(resolve(name) if resolve(name).is_dir() else name)
    prompt = cfg.get("prompt")
    prompts = list(prompt) if OmegaConf.is_list(prompt) else ([str(prompt)] if prompt else None)
    clips = audiodiff.generate(model, num_samples=int(cfg.num_samples), prompt=prompts, seed=cfg.get("seed"),
                               steps=cfg.get("steps"), sampler=cfg.get("sampler"),
                               guidance_scale=cfg.get("guidance_scale"), seconds=cfg.get("seconds"))
    out = check_out_dir(resolve(cfg.out_dir))
    paths = write_clips(clips, model, out, cfg.get("prefix", "clip"), bool(cfg.get("plot", False)),
                        bool(cfg.get("overwrite", False)))
    for p in paths:
        print(p)
    return paths


def entry(script: str, config_name: str, fn) -> None:
    """Run ``fn(cfg)`` as a Hydra app configured by ``<script folder>/conf/<config_name>.yaml``.

    A user error (bad path, unknown label, ...) is one line on stderr and exit code 2.
    """
    import sys

    import hydra

    def run(cfg: DictConfig) -> None:
        try:
            fn(cfg)
        except audiodiff.AudiodiffError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    conf = Path(script).resolve().parent / "conf"
    hydra.main(config_path=str(conf), config_name=config_name, version_base=None)(run)()
