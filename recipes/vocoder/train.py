"""Train a Vocos vocoder (Siuzdak 2023) for one domain's mel settings, on that domain's manifest.

    python recipes/vocoder/train.py domain=speech                       # 8 kHz, the speech model's mels
    python recipes/vocoder/train.py domain=music train.device=cuda      # 16 kHz
    python recipes/vocoder/train.py domain=sfx train.time_limit=420
    python recipes/vocoder/train.py domain=speech export_to=audiodiff/pretrained/speech/vocoder
    python recipes/vocoder/train.py domain=sfx init_from=audiodiff/pretrained/music   # fine-tune another domain's
    python recipes/vocoder/train.py experiment=debug                    # tiny, a few steps (the tests)

The mel settings come from the domain recipe's representation config (``mel_config``), or from a
trained model folder (``model_path=...``), so the vocoder always matches the model it serves.  A
model folder with a ``vocoder/`` subfolder uses it by default (``audiodiff generate --vocoder``
overrides).  A rerun with the same ``run_dir`` resumes.  ``init_from`` starts the generator from a
trained vocoder folder (or a model folder's ``vocoder/``) with the same mel settings and size, e.g. to
fine-tune the music vocoder on sound effects; the discriminators start afresh.  A resumed run
continues from its checkpoint instead.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import entry, resolve, run_prepare, to_dict  # noqa: E402

import audiodiff  # noqa: E402
from audiodiff.audio.settings import MEL_SETTING_KEYS  # noqa: E402
from audiodiff.data import AudioDataset, read_manifest  # noqa: E402
from audiodiff.errors import ConfigError  # noqa: E402
from audiodiff.registry import build  # noqa: E402
from audiodiff.vocoders import check_mel_settings, load_vocoder_folder  # noqa: E402
from audiodiff.training.vocoder import VocoderTrainConfig, train_vocoder  # noqa: E402

log = logging.getLogger("recipes")
DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def mel_settings(cfg: DictConfig) -> dict:
    """The mel settings: of ``cfg.model_path``'s representation if set, else of ``cfg.mel_config``."""
    if cfg.get("model_path"):
        name = cfg.model_path
        model = audiodiff.load(resolve(name) if resolve(name).is_dir() else name)
        return model.representation.settings()
    path = resolve(cfg.mel_config)
    if not path.is_file():
        raise ConfigError(f"mel_config {path} not found")
    representation = build("representation", to_dict(OmegaConf.load(path)))
    return {k: v for k, v in representation.settings().items() if k in MEL_SETTING_KEYS}


def dataset(cfg: DictConfig, sample_rate: int) -> AudioDataset:
    """The train split of the domain's manifest (built from ``data.sources`` if missing)."""
    manifest = resolve(cfg.data.manifest)
    if not manifest.is_file():
        run_prepare(cfg)
    items = read_manifest(manifest, split=cfg.data.get("split", "train"))
    if cfg.data.get("max_items"):
        items = items[: int(cfg.data.max_items)]
    return AudioDataset(items, sample_rate=sample_rate, seconds=float(cfg.data.seconds), crop=cfg.data.crop,
                        loudness_normalize=cfg.data.get("loudness_db"), trim_silence_db=cfg.data.get("trim_db"),
                        seed=int(cfg.train.seed))


def init_weights(vocoder: torch.nn.Module, folder: Path) -> None:
    """Copy a trained vocoder's weights (``folder`` or ``folder/vocoder``) into ``vocoder``."""
    if (folder / "vocoder" / "config.json").is_file():
        folder = folder / "vocoder"
    source = load_vocoder_folder(folder)
    check_mel_settings(source.mel_settings, vocoder.mel_settings, what=f"init_from {folder}")
    try:
        vocoder.load_state_dict({k: v.float() for k, v in source.state_dict().items()})
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"init_from {folder}: its weights do not fit cfg.vocoder ({first})") from None
    log.info("generator initialised from %s", folder)


def run_train_vocoder(cfg: DictConfig) -> Path:
    """Train ``cfg.vocoder`` for the domain's mel settings; export to ``cfg.export_to`` if set."""
    torch.set_num_threads(int(cfg.get("threads", 2)))
    settings = mel_settings(cfg)
    vocoder = build("vocoder", {**to_dict(cfg.vocoder), **settings})
    if cfg.get("init_from"):
        init_weights(vocoder, resolve(cfg.init_from))
    data = dataset(cfg, settings["sample_rate"])
    log.info("vocoder %s: %s parameters; data: %s", cfg.vocoder.name,
             f"{sum(p.numel() for p in vocoder.parameters()):,}", data.summary())
    run_dir = resolve(cfg.run_dir)
    trained = train_vocoder(vocoder, data, run_dir, VocoderTrainConfig.from_dict(to_dict(cfg.train)))
    if cfg.get("export_to"):
        if cfg.export_dtype not in DTYPES:
            raise ConfigError(f"export_dtype must be one of {', '.join(DTYPES)}, got {cfg.export_dtype!r}")
        target = resolve(cfg.export_to)
        trained.cpu().save(target, dtype=DTYPES[cfg.export_dtype])
        log.info("exported the vocoder (%s) to %s", cfg.export_dtype, target)
    return run_dir / "vocoder"


if __name__ == "__main__":
    entry(__file__, "vocoder", run_train_vocoder)
