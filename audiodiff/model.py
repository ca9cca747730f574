"""``DiffusionModel``: representation + net + preconditioning + schedule, built from registry names.

The model is an ordinary ``torch.nn.Module``.  Its config (a JSON-able dict of registry names and
keyword arguments) is exactly what :meth:`DiffusionModel.save` writes to ``config.json``; the
weights (net parameters and the representation's normalisation statistics) go to
``model.safetensors``.  :func:`load` rebuilds a model from such a folder without unpickling
anything and without the recipe that trained it.

Tensor layouts: the representation encodes waveforms ``(B, 1, S)`` into features
``(B, *shape_per_frame, frames)`` (a mel: ``(B, n_mels, frames)``).  A 1D net sees them as
``(B, prod(shape_per_frame), frames)``, a 2D net as ``(B, C, H, frames)`` (a mel: ``C = 1``).
Samples inside the diffusion process are always in the net's layout.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from . import checks
from ._version import __version__
from .checkpoint import CONFIG_NAME, path_in_folder, read_config, read_tensors, save_folder
from .errors import ConfigError, ModelLoadError, SettingsMismatchError, first_line, shorten
from .conditioning import CROSS_ROUTES, GLOBAL_ROUTES, concat_net_inputs, drop_prompts, keep_mask, net_inputs
from .diffusion.variance import EpsSquareTable, hybrid_vlb_term, variance_fraction
from .registry import build

DEFAULT_CONFIG: dict[str, Any] = {
    "representation": {"name": "mel"},
    "net": {"name": "unet1d"},
    # v-prediction on the cosine schedule: with eps-prediction on DDPM's linear schedule a briefly
    # trained model's samples blow up at the largest sigma (x0 = x - sigma * eps, sigma ~ 157)
    "schedule": {"name": "cosine"},
    "preconditioning": {"name": "v"},
    "vocoder": {"name": "griffinlim"},
    "sampler": {"name": "ddim"},
    "steps": 50,
    "spacing": "trailing",
    # the last noise level of the inference ladder before its final step to 0 (None: the schedule's)
    "sigma_min": None,
    "seconds": 1.0,
    "conditioning": {},
    "cond_dropout": 0.1,
    "guidance_scale": 3.0,
}

#: top-level config keys; anything else is an error (typos must not be ignored)
CONFIG_KEYS = set(DEFAULT_CONFIG) | {"max_seconds", "audiodiff_version", "name", "description", "training",
                                     "sigmas", "distillation", "variance", "analytic_variance", "adapters"}
#: the reverse variance a model's net may learn (``"variance"`` in its config; absent means fixed)
VARIANCES = ("fixed", "learned")
COMPONENT_KEYS = ("representation", "net", "schedule", "preconditioning", "vocoder", "sampler")
#: subfolder of a model folder holding a trained vocoder (config.json + model.safetensors) that is its default
VOCODER_DIR = "vocoder"


def component_config(obj: Any) -> dict[str, Any]:
    """``{"name": registry_name, **fields}`` of a registered frozen dataclass."""
    return {"name": obj.registry_name, **dataclasses.asdict(obj)}


class DiffusionModel(nn.Module):
    """A denoising diffusion model of audio features.

    Args:
        config: registry configs for ``representation``, ``net``, ``schedule``, ``preconditioning``
            and the default ``vocoder`` and ``sampler``; ``steps`` and ``spacing`` (default inference
            ladder), ``seconds`` (the training window) and ``max_seconds`` (the longest clip
            :func:`audiodiff.generate` makes; defaults to ``seconds``).  Missing keys take
            :data:`DEFAULT_CONFIG`.  A distilled student (:mod:`audiodiff.distill`) also carries
            ``sigmas``, the exact ladder it was trained to walk (its default when ``steps`` is
            not changed), and ``distillation``, a record of its teacher and training.
            ``"variance": "learned"`` gives the net a second output per element, the reverse
            variance's interpolation (:mod:`audiodiff.diffusion.variance`; Nichol & Dhariwal 2021);
            ``analytic_variance`` holds the statistic of the ``ddpm`` sampler's ``variance="analytic"``
            (:mod:`audiodiff.variance`).
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        config = _complete_config(config or {})
        self.learns_variance = config.get("variance", "fixed") == "learned"
        self.representation = build("representation", config["representation"])
        self.conditioners = nn.ModuleDict(
            {key: build("conditioner", cfg) for key, cfg in config["conditioning"].items()})
        net_cfg = dict(config["net"])
        self.net_shape_per_frame = _net_shape_per_frame(self.representation.shape_per_frame, _net_dims(net_cfg))
        for key, value in self._derived_net_sizes().items():
            if net_cfg.setdefault(key, value) != value:
                raise ConfigError(f"net {key} {net_cfg[key]} does not match the {value} that the model derives")
        self.net = build("net", net_cfg)
        self.schedule = build("schedule", config["schedule"])
        self.preconditioning = build("preconditioning", config["preconditioning"])
        config["net"] = net_cfg
        config["representation"] = self.representation.config()
        config["schedule"] = component_config(self.schedule)
        config["preconditioning"] = component_config(self.preconditioning)
        config["conditioning"] = {key: c.config() for key, c in self.conditioners.items()}
        self.config = config

    def _derived_net_sizes(self) -> dict[str, int | None]:
        """``in_channels`` from the representation; ``cond_dim``/``context_dim`` from the conditioners."""
        sizes: dict[str, int | None] = {"in_channels": self.net_shape_per_frame[0]}
        if self.learns_variance:
            sizes["out_channels"] = 2 * self.net_shape_per_frame[0]  # the mean, then the variance's raw output
        global_dims = [c.dim for c in self.conditioners.values() if c.route in GLOBAL_ROUTES]
        cross_dims = {c.dim for c in self.conditioners.values() if c.route in CROSS_ROUTES}
        if len(cross_dims) > 1:
            raise ConfigError(f"cross-attention conditioners must share one dim, got {sorted(cross_dims)}")
        if global_dims:
            sizes["cond_dim"] = sum(global_dims)
        if cross_dims:
            sizes["context_dim"] = cross_dims.pop()
        return sizes

    # -- sizes and layouts --------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.representation.sample_rate)

    @property
    def seconds(self) -> float:
        return float(self.config["seconds"])

    @property
    def max_seconds(self) -> float:
        return float(self.config.get("max_seconds", self.config["seconds"]))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        """Trainable parameters (net and conditioners; a frozen pretrained text encoder is not counted)."""
        return sum(p.numel() for p in self.parameters())

    def sample_shape(self, frames: int) -> tuple[int, ...]:
        """Shape of one sample in the net's layout for ``frames`` frames."""
        return (*self.net_shape_per_frame, int(frames))

    def to_net_layout(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, *shape_per_frame, T) -> (B, *net_shape_per_frame, T)``."""
        return feats.reshape(feats.shape[0], *self.net_shape_per_frame, feats.shape[-1])

    def from_net_layout(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *net_shape_per_frame, T) -> (B, *shape_per_frame, T)``."""
        return x.reshape(x.shape[0], *self.representation.shape_per_frame, x.shape[-1])

    # -- audio <-> samples ----------------------------------------------------------------------
    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(B, 1, S)`` at the model's rate -> clean samples ``(B, *net_shape_per_frame, T)``."""
        return self.to_net_layout(self.representation.encode(wave))

    def encode_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Clean samples from a data batch: its ``"waveform"`` ``(B, 1, S)``, or cached log-mel
        ``"features"`` ``(B, n_mels, frames)`` (see :class:`audiodiff.data.FeatureCache`)."""
        if "features" in batch:
            return self.to_net_layout(self.representation.normalize(batch["features"].to(self.device)))
        return self.encode(batch["waveform"].to(self.device, non_blocking=True))

    def decode(self, x: torch.Tensor, vocoder: nn.Module) -> torch.Tensor:
        """Samples ``(B, *net_shape_per_frame, T)`` -> waveforms ``(B, 1, S)`` through ``vocoder``."""
        return self.representation.decode(self.from_net_layout(x), vocoder)

    # -- diffusion --------------------------------------------------------------------------
    @property
    def takes_guidance(self) -> bool:
        """True for a guidance-distilled student: its net takes the guidance scale, one pass stands for two."""
        return bool(getattr(self.net, "guidance_input", False))

    def net_output(self, x: torch.Tensor, sigma: torch.Tensor, guidance: float | torch.Tensor | None = None,
                   **net_kwargs: Any) -> torch.Tensor:
        """The raw net output at ``x`` ``(B, ...)`` and ``sigma`` ``(B,)``; ``guidance`` (a scale, or ``(B,)``,
        default 1) reaches only a net that takes it (:attr:`takes_guidance`)."""
        if self.takes_guidance:
            scale = torch.as_tensor(1.0 if guidance is None else guidance, dtype=torch.float32, device=x.device)
            net_kwargs["guidance"] = scale.expand(x.shape[0]) if scale.ndim == 0 else scale
        return self.net(self.preconditioning.net_input(x, sigma), self.schedule.c_noise(sigma), **net_kwargs)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, guidance: float | torch.Tensor | None = None,
                **net_kwargs: Any) -> torch.Tensor:
        """The denoiser ``D(x, sigma)``: ``x`` ``(B, ...)`` in sigma space, ``sigma`` ``(B,)``.

        ``net_kwargs`` (``cond``, ``context``, ``context_mask``) go to the net unchanged; ``guidance`` see
        :meth:`net_output`.
        """
        out = self.net_output(x, sigma, guidance, **net_kwargs)
        return self.preconditioning.denoised(x, sigma, out.chunk(2, dim=1)[0] if self.learns_variance else out)

    def denoise_with_variance(self, x: torch.Tensor, sigma: torch.Tensor, guidance: float | torch.Tensor | None = None,
                              **net_kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D(x, sigma), v)`` of a learned-variance model: ``v`` like ``x``, in ``(0, 1)``, the weight of
        ``log beta`` in the reverse variance (:func:`~audiodiff.diffusion.variance.learned_log_variance`)."""
        if not self.learns_variance:
            raise ConfigError("this model has a fixed reverse variance; only a model trained with "
                              "\"variance\": \"learned\" predicts one")
        mean_out, raw = self.net_output(x, sigma, guidance, **net_kwargs).chunk(2, dim=1)  # (B, 2C, ...) -> 2 x (B, C, ...)
        return self.preconditioning.denoised(x, sigma, mean_out), variance_fraction(raw)

    def eps_square_table(self) -> EpsSquareTable | None:
        """Analytic-DPM's stored ``Gamma(sigma)`` table (``analytic_variance`` in the config), or ``None``."""
        stats = self.config.get("analytic_variance")
        if not isinstance(stats, Mapping) or "eps_sq" not in stats:
            return None
        try:
            return EpsSquareTable.from_pairs(stats["eps_sq"])
        except ValueError as exc:
            raise ConfigError(f"the model's analytic_variance: {exc}") from None

    def noised(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Training noise levels ``sigma`` ``(B,)`` from the schedule, ``noise`` like ``x0``, and
        ``x = x0 + sigma * noise`` (Ho et al. 2020, alg. 1, in sigma space)."""
        sigma = self.schedule.sample_sigmas(x0.shape[0], generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        return sigma, noise, x0 + sigma.reshape(-1, *([1] * (x0.dim() - 1))) * noise

    def loss(self, x0: torch.Tensor, generator: torch.Generator | None = None, **net_kwargs: Any) -> torch.Tensor:
        """Scalar training loss on clean samples ``x0`` ``(B, ...)`` (Ho et al. 2020, alg. 1)."""
        sigma, noise, x = self.noised(x0, generator)
        out = self.net_output(x, sigma, **net_kwargs)
        if not self.learns_variance:
            return self.preconditioning.loss(out, x0, noise, sigma).mean()
        mean_out, raw = out.chunk(2, dim=1)  # (B, 2C, ...) -> 2 x (B, C, ...)
        simple = self.preconditioning.loss(mean_out, x0, noise, sigma).mean()
        denoised = self.preconditioning.denoised(x, sigma, mean_out.detach())  # the VLB term trains only the variance
        return simple + hybrid_vlb_term(self.schedule, x0, x, sigma, denoised, variance_fraction(raw))

    def forward(self, x0: torch.Tensor, generator: torch.Generator | None = None, **net_kwargs: Any) -> torch.Tensor:
        """The training loss (so that DDP and hooks see an ordinary ``forward``); see :meth:`loss`."""
        return self.loss(x0, generator=generator, **net_kwargs)

    # -- conditioning --------------------------------------------------------------------------
    @property
    def is_conditional(self) -> bool:
        return len(self.conditioners) > 0

    @property
    def can_run_unconditionally(self) -> bool:
        """True for unconditional models and for conditional ones trained with condition dropout."""
        return not self.is_conditional or float(self.config["cond_dropout"]) > 0

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """``B`` prompts (``""`` = null condition) -> the net's ``cond``/``context``/``context_mask`` inputs."""
        return net_inputs([(c(prompts), c.route) for c in self.conditioners.values()])

    def conditioning_inputs(self, batch: Mapping[str, Any], train: bool = False,
                            generator: torch.Generator | None = None) -> dict[str, Any]:
        """Net inputs for a data batch: each conditioner reads its ``source`` field (caption or label);
        in training each example is dropped to the null condition with probability ``cond_dropout``."""
        if not self.is_conditional:
            return {}
        return self.batch_inputs(batch, keep_mask(len(batch["index"]), float(self.config["cond_dropout"]) if train else 0.0,
                                                  generator))

    def batch_inputs(self, batch: Mapping[str, Any], keep: list[bool]) -> dict[str, Any]:
        """Net inputs for a data batch with the examples where ``keep`` is False dropped to the null condition."""
        return net_inputs([(c(drop_prompts([str(t or "") for t in batch[c.source]], keep)), c.route)
                           for c in self.conditioners.values()])

    def demo_prompts(self, n: int) -> list[str] | None:
        """``n`` prompts this model understands (cycling through its conditioners' examples)."""
        examples = [p for c in self.conditioners.values() for p in c.demo_prompts()]
        return [examples[i % len(examples)] for i in range(n)] if examples else None

    def guided_inputs(self, prompts: list[str], negative: list[str] | None) -> tuple[dict, dict]:
        """Net inputs for the conditional and the unconditional (or negative-prompt) pass."""
        return self.encode_prompts(prompts), self.encode_prompts(negative or [""] * len(prompts))

    @staticmethod
    def paired_inputs(cond: dict, uncond: dict) -> dict:
        """One batch ``(2B, ...)``: conditional rows first, then unconditional ones."""
        return concat_net_inputs(cond, uncond)

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (floats cast to ``dtype`` if given, e.g. fp16),
        and the trained vocoder, if the model holds one, into ``vocoder/``."""
        config = copy.deepcopy(self.config)
        config["audiodiff_version"] = __version__
        path = save_folder(folder, config, self.state_dict(), dtype)
        if self.trained_vocoder is not None:
            from .vocoders import save_vocoder_folder

            save_vocoder_folder(self.trained_vocoder, Path(folder) / VOCODER_DIR, dtype)
        return path

    @property
    def trained_vocoder(self) -> nn.Module | None:
        """The trained vocoder of the model's folder or of :meth:`set_vocoder`, else ``None``."""
        return self.__dict__.get("trained_vocoder")

    @property
    def default_vocoder(self) -> Any:
        """The vocoder used unless one is named: the trained one (see :meth:`set_vocoder`), else the config's."""
        trained = self.trained_vocoder
        return trained if trained is not None else self.config["vocoder"]

    def set_vocoder(self, vocoder: nn.Module | None) -> None:
        """Make a trained vocoder (e.g. :class:`~audiodiff.vocoders.Vocos`) the default, or ``None`` for the
        config's.  Its mel settings must match the representation's (:class:`SettingsMismatchError`).
        It is kept outside the module tree, so it is not part of :meth:`state_dict`."""
        if vocoder is not None:
            from .vocoders import check_mel_settings

            check_mel_settings(vocoder.mel_settings, self.representation.settings())
        self.__dict__["trained_vocoder"] = vocoder

    @torch.no_grad()
    def load_weights_from(self, other: nn.Module, skip_mismatched: bool = True, zero_new: bool = False) -> WeightTransfer:
        """Copy every tensor of ``other``'s state dict whose name and shape match one of ours (cast to our dtype).

        Args:
            other: a model (or any module) to start from, e.g. a saved model being fine-tuned.
            skip_mismatched: skip tensors whose shape differs; ``False``: that is a :class:`ConfigError`.
            zero_new: zero our tensors that ``other`` lacks (a new input's projection then starts at
                zero, so the model starts from exactly ``other``'s predictions).

        Returns:
            a :class:`WeightTransfer` naming what was loaded, skipped (``other``'s tensors we did not
            take) and new (ours that ``other`` lacks).
        """
        ours, theirs = self.state_dict(), other.state_dict()
        loaded = [k for k in ours if k in theirs and ours[k].shape == theirs[k].shape]
        mismatched = [k for k in ours if k in theirs and ours[k].shape != theirs[k].shape]
        if mismatched and not skip_mismatched:
            raise ConfigError(f"{len(mismatched)} weight(s) differ in shape, e.g. {mismatched[0]} "
                              f"{tuple(theirs[mismatched[0]].shape)} vs ours {tuple(ours[mismatched[0]].shape)}")
        for key in loaded:
            ours[key].copy_(theirs[key])
        new = [k for k in ours if k not in theirs]
        if zero_new:
            for key in new:
                ours[key].zero_()
        return WeightTransfer(loaded, mismatched + [k for k in theirs if k not in ours], new)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "DiffusionModel":
        """Rebuild a model saved by :meth:`save`; every problem is a one-line :class:`ModelLoadError`."""
        config = read_config(folder)
        tensors = read_tensors(folder)
        config, encoder_paths = _confine_paths(config, folder)
        try:
            model = cls(config)
        except (ConfigError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ModelLoadError(f"{Path(folder) / 'config.json'}: {first_line(exc)}") from None
        for key, path in encoder_paths.items():
            model.conditioners[key].encoder_path = path
        expected = model.state_dict()
        _check_weights(folder, expected, tensors)
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
        model.source = str(folder)
        _load_trained_vocoder(model, folder)
        return model.eval()


@dataclasses.dataclass(frozen=True)
class WeightTransfer:
    """What :meth:`DiffusionModel.load_weights_from` did: tensor names loaded, skipped (the other model's,
    not taken: a shape mismatch or a name we lack) and new (ours that the other model lacks)."""

    loaded: list[str]
    skipped: list[str]
    new: list[str]


def _confine_paths(config: dict[str, Any], folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """The paths a model folder's config names, kept inside the folder (:func:`path_in_folder`).

    A latent representation's ``autoencoder`` folder is resolved against the model folder (not the
    current directory).  A text conditioner's ``model`` is the bundled encoder's name or a folder
    inside the model folder; returns the config with the autoencoder path resolved and, per text
    conditioner, the folder its encoder loads from.
    """
    from .conditioning.text import is_bundled
    from .network import ALLOW_HUB_ENV, hub_allowed

    config = copy.deepcopy(config)
    representation = config.get("representation")
    if isinstance(representation, dict) and isinstance(representation.get("autoencoder"), str):
        representation["autoencoder"] = str(path_in_folder(folder, representation["autoencoder"], "autoencoder"))
    encoder_paths = {}
    conditioning = config.get("conditioning")
    for key, cond in (conditioning.items() if isinstance(conditioning, dict) else ()):
        if isinstance(cond, dict) and cond.get("name") == "text" and "model" in cond:
            name = cond["model"]
            if not isinstance(name, str):
                raise ModelLoadError(f"{Path(folder) / CONFIG_NAME}: text encoder must be a name, got {shorten(name)}")
            if is_bundled(name):
                continue
            path = path_in_folder(folder, name, "text encoder")
            if path.is_dir():
                encoder_paths[key] = str(path)
            elif not hub_allowed():
                raise ModelLoadError(f"{Path(folder) / CONFIG_NAME}: text encoder {shorten(name)} is neither the bundled "
                                     f"encoder nor a folder inside the model folder (a Hub name needs {ALLOW_HUB_ENV}=1)")
    return config, encoder_paths


def _load_trained_vocoder(model: DiffusionModel, folder: str | os.PathLike) -> None:
    """Make ``folder/vocoder/`` (config.json + model.safetensors), if present, the model's default vocoder."""
    vocoder_dir = path_in_folder(folder, VOCODER_DIR, "vocoder")
    if not (vocoder_dir / "config.json").is_file():
        return
    from .vocoders import load_vocoder_folder

    try:
        model.set_vocoder(load_vocoder_folder(vocoder_dir))
    except (ConfigError, SettingsMismatchError) as exc:
        raise ModelLoadError(f"{vocoder_dir}: {exc}") from None


def _complete_config(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"unknown model config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(CONFIG_KEYS))}")
    out = copy.deepcopy(DEFAULT_CONFIG)
    out.update(copy.deepcopy(dict(config)))
    for key in COMPONENT_KEYS:
        if isinstance(out[key], str):
            out[key] = {"name": out[key]}
        if not isinstance(out[key], Mapping) or not isinstance(out[key].get("name"), str):
            raise ConfigError(f"model config {key!r} must be a registry name or a mapping with a string 'name', "
                              f"got {shorten(out[key])}")
        out[key] = dict(out[key])
    checks.integer("model config 'steps'", out["steps"], 1)
    checks.number("model config 'guidance_scale'", out["guidance_scale"])
    checks.number("model config 'cond_dropout'", out["cond_dropout"], 0.0, 1.0)
    if not isinstance(out["spacing"], str):
        raise ConfigError(f"model config 'spacing' must be a name, got {shorten(out['spacing'])}")
    if not isinstance(out["conditioning"], Mapping):
        raise ConfigError("model config 'conditioning' must map names to conditioner configs")
    if not all(isinstance(v, (str, Mapping)) for v in out["conditioning"].values()):
        raise ConfigError("model config 'conditioning' must map names to conditioner configs")
    out["conditioning"] = {k: ({"name": v} if isinstance(v, str) else dict(v)) for k, v in out["conditioning"].items()}
    checks.number("model config 'seconds'", out["seconds"], 0.0, low_open=True)
    if out.get("variance", "fixed") not in VARIANCES:
        raise ConfigError(f"model config 'variance' must be one of {', '.join(VARIANCES)}, got {shorten(out['variance'])}")
    if "max_seconds" in out:
        checks.number("model config 'max_seconds'", out["max_seconds"], out["seconds"])
    return out


def _net_dims(net_cfg: Mapping[str, Any]) -> int:
    from .registry import get

    dims = getattr(get("net", net_cfg.get("name", "")), "dims", None)
    if dims not in (1, 2):
        raise ConfigError(f"net {net_cfg.get('name')!r} must declare dims = 1 or 2")
    return dims


def _net_shape_per_frame(shape_per_frame: tuple[int, ...], dims: int) -> tuple[int, ...]:
    """How one frame of features is laid out for a ``dims``-D net (without the time axis)."""
    if dims == 1:
        return (math.prod(shape_per_frame),)  # (C, H) -> (C*H,)
    if len(shape_per_frame) == 1:
        return (1, *shape_per_frame)  # (n_mels,) -> (1, n_mels): a 1-channel image
    if len(shape_per_frame) == 2:
        return tuple(shape_per_frame)
    raise ConfigError(f"cannot lay out features of shape {shape_per_frame} for a 2D net")


def _check_weights(folder, expected: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(expected[k].shape) != tuple(tensors[k].shape))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        problems.append(f"{len(wrong)} of the wrong shape (e.g. {k}: {tuple(tensors[k].shape)} vs {tuple(expected[k].shape)})")
    if problems:
        raise ModelLoadError(f"weights in {folder} do not match its config.json: {'; '.join(problems)} tensors")
