"""Evaluate a model against real clips through a judge: the SC09 protocol of DiffWave, for any model.

:func:`evaluate` generates clips (one per prompt in turn when prompts are given), passes them and
real reference clips through a judge (:class:`~audiodiff.evaluation.judge.MelClassifier`) and reports,
for the generated clips, the Frechet distance of the judge's embeddings to the reference clips'
(Heusel et al. 2017; Kilgour et al. 2019), the accuracy of the judge against the prompts, IS
(Salimans et al. 2016), mIS (Gurumurthy et al. 2017), AM (Zhou et al. 2018) and NDB/k (Richardson &
Weiss 2018), as DiffWave does for SC09 (Kong et al. 2021, table 3).  The same figures for the
reference clips themselves say what "real" looks like to this judge: its accuracy on held-out real
clips, and the Frechet distance and NDB/k between two halves of the reference set (the floor at
that sample size).  With ``resynthesize``, the reference clips are also passed through the model's
own representation and vocoder: the best a model of this representation can score.

Which class a prompt or a reference clip should get is the judge's business
(:meth:`~audiodiff.evaluation.judge.MelClassifier.target_of`): the label (spoken digits), the caption
(sound effects) or the General MIDI family of the instrument a note caption names (music notes).
Prompts may be ``"captions"``: the reference clips' own captions.  Two figures are added where they
apply: pitch accuracy (:mod:`audiodiff.evaluation.pitch`, pYIN) when every prompt names a note (the judge's ``notes`` pattern),
and caption retrieval (:mod:`audiodiff.metrics.retrieval`) when ``caption_items`` give each caption
an embedding (the mean judge embedding of its clips).

:func:`audiodiff.evaluation.report.write_report` writes the report as JSON and as a markdown table.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .._version import __version__
from ..checkpoint import read_config
from ..data.manifest import ManifestItem, read_manifest
from ..errors import ConfigError
from ..model import DiffusionModel
from ..metrics.classifier import am_score, inception_score, modified_inception_score
from ..metrics.frechet import frechet_distance
from ..metrics.ndb import ndb
from ..metrics.retrieval import caption_bank, retrieval_scores
from .judge import MelClassifier, judge_clips, list_judges, load_clips, load_judge, window_batch
from .pitch import caption_pitch_accuracy
from .targets import caption_pitch

log = logging.getLogger(__name__)

#: a ``prompts`` value that means "each of the judge's labels in turn"
LABEL_PROMPTS = "labels"
#: a ``prompts`` value that means "the reference clips' captions"
CAPTION_PROMPTS = "captions"


# -- inputs -------------------------------------------------------------------------------------
def model_labels(model: DiffusionModel) -> list[str]:
    """The labels of the model's label conditioners (empty for unconditional or text models)."""
    return [str(x) for c in model.conditioners.values() for x in (getattr(c, "labels", None) or [])]


def resolve_judge(judge: MelClassifier | str | None, model: DiffusionModel) -> MelClassifier:
    """``judge`` loaded (folder, shipped name or object); for ``None``, the shipped judge whose labels are the
    model's, else the shipped judge named like the model (``"sfx"`` for models named ``sfx`` or ``sfx-uncond``)."""
    if judge is not None:
        return load_judge(judge)
    labels = set(model_labels(model))
    shipped = list_judges()
    for folder in shipped.values():
        if labels and set(read_config(folder).get("labels", [])) == labels:
            return load_judge(folder)
    name = str(model.config.get("name") or "")
    for candidate in (name, name.split("-")[0]):
        if candidate in shipped:
            return load_judge(shipped[candidate])
    shipped = ", ".join(list_judges()) or "none"
    raise ConfigError(f"no judge given and no shipped judge knows this model's labels; pass a judge folder "
                      f"or a shipped judge name (shipped judges: {shipped})")


def select_reference(items: Sequence[ManifestItem], max_items: int | None) -> list[ManifestItem]:
    """``items``, or ``max_items`` of them evenly spread over the list (manifests are often sorted by label)."""
    items = list(items)
    if not items:
        raise ConfigError("no reference clips: the manifest (or split) is empty")
    if max_items is None or max_items >= len(items):
        return items
    if max_items < 1:
        raise ConfigError(f"max_reference must be >= 1, got {max_items}")
    picks = np.linspace(0, len(items) - 1, max_items).round().astype(int)
    return [items[i] for i in picks]


def clip_prompts(prompts: Sequence[str] | str | None, num_samples: int, judge: MelClassifier,
                 reference_items: Sequence[ManifestItem] = ()) -> list[str] | None:
    """One prompt per clip, cycling through ``prompts`` (``"labels"``: the judge's labels; ``"captions"``: the
    captions of ``reference_items``, evenly spread over them when there are more than ``num_samples``), or ``None``."""
    if prompts is None:
        return None
    if isinstance(prompts, str) and prompts == CAPTION_PROMPTS:
        prompts = [item.caption for item in select_reference(reference_items, num_samples) if item.caption]
        if not prompts:
            raise ConfigError("prompts 'captions': the reference clips have no captions")
    elif isinstance(prompts, str):
        prompts = judge.labels if prompts == LABEL_PROMPTS else [prompts]
    prompts = [str(p) for p in prompts]
    if not prompts:
        raise ConfigError("prompts is an empty list")
    return [prompts[i % len(prompts)] for i in range(num_samples)]


# -- generation and judging ------------------------------------------------------------------------
def generate_waves(model: DiffusionModel, num_samples: int, prompts: list[str] | None,
                   **generate_kwargs: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """``(N, 1, S)`` generated clips at the model's rate, and the first clip's metadata."""
    from ..generate import generate

    if prompts is None:
        clips = generate(model, num_samples=num_samples, **generate_kwargs)
    else:
        clips = generate(model, num_samples=1, prompt=prompts, **generate_kwargs)
    return torch.stack([c.waveform[:1] for c in clips]), clips[0].metadata  # N x (1, S) -> (N, 1, S)


@torch.no_grad()
def resynthesize_waves(model: DiffusionModel, paths: Sequence[str], vocoder: Any = None,
                       batch_size: int = 16) -> torch.Tensor:
    """``(N, 1, S)``: each file at the model's rate and window, encoded by the model's representation and
    decoded with ``vocoder`` (default: the model's)."""
    from ..vocoders import build_vocoder

    voc = build_vocoder(vocoder or model.default_vocoder, model.representation.settings()).to(model.device)
    waves = window_batch(load_clips(paths, model.sample_rate), round(model.seconds * model.sample_rate))
    out = [model.decode(model.encode(waves[i : i + batch_size].to(model.device)), voc).float().cpu()
           for i in range(0, len(waves), batch_size)]
    return torch.cat(out)


def accuracy(probs: torch.Tensor, names: Sequence[str | None], judge: MelClassifier) -> tuple[float | None, int]:
    """Judge accuracy against ``names`` over the rows whose name the judge knows; ``(None, 0)`` if none."""
    known = [i for i, n in enumerate(names) if n in judge.labels]
    if not known:
        return None, 0
    targets = judge.label_indices([names[i] for i in known])
    return float((probs[known].argmax(dim=1) == targets).float().mean()), len(known)


def per_label_accuracy(probs: torch.Tensor, names: Sequence[str], judge: MelClassifier) -> dict[str, float]:
    """``{label: accuracy}`` over the rows intended as each label the judge knows."""
    out = {}
    for label in dict.fromkeys(n for n in names if n in judge.labels):
        rows = [i for i, n in enumerate(names) if n == label]
        out[label] = float((probs[rows].argmax(dim=1) == judge.labels.index(label)).float().mean())
    return out


def label_counts(probs: torch.Tensor, judge: MelClassifier) -> dict[str, int]:
    """How many clips the judge puts in each class."""
    counts = torch.bincount(probs.argmax(dim=1), minlength=len(judge.labels)).tolist()
    return dict(zip(judge.labels, counts))


def ndb_bins(num_reference: int, requested: int) -> int | None:
    """NDB's ``k``: ``requested``, but at most one bin per 10 reference clips; ``None`` below 2 bins."""
    k = min(int(requested), num_reference // 10)
    return k if k >= 2 else None


def distribution_scores(emb: torch.Tensor, probs: torch.Tensor, ref_emb: torch.Tensor, ref_probs: torch.Tensor,
                        k: int | None, seed: int) -> dict[str, Any]:
    """Frechet distance, IS, mIS, AM and NDB/k of one set of clips against the reference set."""
    return {
        "frechet_distance": frechet_distance(emb, ref_emb),
        "inception_score": inception_score(probs),
        "modified_inception_score": modified_inception_score(probs),
        "am_score": am_score(probs, ref_probs),
        "ndb": ndb(ref_emb, emb, k=k, seed=seed) if k is not None else None,
    }


def item_targets(items: Sequence[ManifestItem], judge: MelClassifier) -> list[str | None]:
    """The judge's class of each manifest item (``None`` where it has none)."""
    return [judge.target_of(item.caption, item.label) for item in items]


def reference_scores(emb: torch.Tensor, probs: torch.Tensor, names: Sequence[str | None], judge: MelClassifier,
                     requested_bins: int, seed: int) -> dict[str, Any]:
    """The reference set's own figures: judge accuracy, IS, mIS, AM, and FD/NDB between its two halves."""
    acc, count = accuracy(probs, names, judge)
    out = {"accuracy": acc, "accuracy_clips": count, "inception_score": inception_score(probs),
           "modified_inception_score": modified_inception_score(probs), "am_score": am_score(probs, probs),
           "frechet_distance_halves": None, "ndb_halves": None}
    if len(emb) >= 4:
        a, b = emb[0::2], emb[1::2]  # alternate rows, so both halves cover every label of a sorted manifest
        out["frechet_distance_halves"] = frechet_distance(a, b)
        k = ndb_bins(len(a), requested_bins)
        out["ndb_halves"] = ndb(a, b, k=k, seed=seed) if k is not None else None
    return out


# -- the public function --------------------------------------------------------------------------
def evaluate(
    model: DiffusionModel,
    reference_items: Sequence[ManifestItem],
    num_samples: int,
    prompts: Sequence[str] | str | None = None,
    judge: MelClassifier | str | None = None,
    steps: int | None = None,
    seed: int = 0,
    guidance_scale: float | None = None,
    sampler: Any = None,
    vocoder: Any = None,
    batch_size: int = 16,
    max_reference: int | None = None,
    ndb_k: int = 50,
    resynthesize: bool = False,
    device: torch.device | str | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    caption_items: Sequence[ManifestItem] | None = None,
    pitch: bool | None = None,
    spacing: str | None = None,
    sigma_min: float | None = None,
) -> dict[str, Any]:
    """Generate ``num_samples`` clips from ``model`` and score them against ``reference_items`` with a judge.

    Args:
        model: the model to evaluate.
        reference_items: real clips (e.g. ``read_manifest(path, "test")``); the judge's class of each
            (its label, caption or instrument family: ``judge.target_of``) gives the accuracy on real audio.
        num_samples: clips to generate (in all).
        prompts: prompts used in turn (clip ``i`` gets ``prompts[i % len(prompts)]``); ``"labels"``
            means the judge's labels; ``"captions"`` the reference clips' captions (evenly spread over
            them when there are more clips than ``num_samples``); ``None`` generates unconditionally.
        judge: a judge, its folder or a shipped judge name; ``None`` picks the shipped judge whose
            labels are the model's, else the one named like the model.
        steps, seed, guidance_scale, sampler, vocoder, batch_size, device, callback, spacing, sigma_min:
            passed to :func:`audiodiff.generate` (clip ``i`` uses seed ``seed + i``).
        max_reference: use at most this many reference clips, evenly spread over the list.
        ndb_k: NDB bins (fewer when there are under ``10 * ndb_k`` reference clips).
        resynthesize: also score the reference clips passed through the model's representation and vocoder.
        caption_items: clips (e.g. the train split) whose mean judge embedding per caption is that
            caption's embedding for caption retrieval (clips that are also reference clips are left
            out); ``None``: no retrieval.
        pitch: pYIN pitch accuracy against note captions; ``None``: when every prompt is a note caption.

    Returns:
        A JSON-able dict: ``settings``, ``generated`` (``frechet_distance``, ``prompt_accuracy``,
        ``inception_score``, ``modified_inception_score``, ``am_score``, ``ndb``, ``label_counts``,
        and where they apply ``pitch_accuracy`` and ``retrieval_top1``/``retrieval_top5`` with their
        ``retrieval_chance_*``), ``reference`` (``accuracy``, ``inception_score``, ...,
        ``frechet_distance_halves``, ``ndb_halves``, and the same pitch and retrieval figures for the
        real clips), optionally ``resynthesized``, and ``timing`` in seconds.
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
    judge = resolve_judge(judge, model)
    refs = select_reference(reference_items, max_reference)
    prompt_list = clip_prompts(prompts, num_samples, judge, refs)
    if pitch is None:
        pitch = prompt_list is not None and all(caption_pitch(p, judge.notes) is not None for p in prompt_list)
    timing: dict[str, float] = {}

    start = time.perf_counter()  # the reference first, so a bad file fails before the long part
    bank = _caption_bank(judge, caption_items, refs, prompt_list) if caption_items is not None else None
    _, ref_emb, ref_probs, reference = _score_reference(judge, refs, bank, pitch, ndb_k, seed)
    timing["reference"] = time.perf_counter() - start

    start = time.perf_counter()
    gen_waves, meta = generate_waves(model, num_samples, prompt_list, steps=steps, seed=seed, sampler=sampler,
                                     spacing=spacing, sigma_min=sigma_min,
                                     guidance_scale=guidance_scale, vocoder=vocoder, batch_size=batch_size,
                                     device=device, callback=callback)
    timing["generate"] = time.perf_counter() - start

    start = time.perf_counter()
    gen_emb, gen_probs = judge_clips(judge, gen_waves, model.sample_rate)
    k = ndb_bins(len(refs), ndb_k)
    generated = distribution_scores(gen_emb, gen_probs, ref_emb, ref_probs, k, seed)
    generated.update(_prompt_scores(gen_probs, prompt_list, judge))
    generated["label_counts"] = label_counts(gen_probs, judge)
    if bank is not None:
        generated.update(_retrieval(gen_emb, prompt_list, bank))
    if pitch:
        generated.update(_pitch(gen_waves, model.sample_rate, prompt_list, judge.notes))
    timing["judge"] = time.perf_counter() - start

    report = {"settings": _settings(model, judge, refs, num_samples, prompts, prompt_list, meta, seed, k),
              "generated": generated, "reference": reference}
    if resynthesize:
        start = time.perf_counter()
        report["resynthesized"] = _resynthesized_scores(model, refs, judge, ref_emb, ref_probs, k, seed, vocoder,
                                                        bank, pitch)
        timing["resynthesize"] = time.perf_counter() - start
    report["timing"] = {key: round(value, 2) for key, value in timing.items()}
    return report


def evaluate_manifest(model: DiffusionModel, manifest: str | Path, num_samples: int, split: str | None = "test",
                      judge: MelClassifier | str | None = None, **kwargs: Any) -> dict[str, Any]:
    """:func:`evaluate` against a manifest's ``split`` clips (``None``: all), as ``audiodiff eval`` and the
    recipes run it: a judge of captions ranks captions by the mean embedding of their clips in the
    manifest's train split.  ``kwargs`` go to :func:`evaluate`."""
    reference = read_manifest(manifest, split=split)
    if not reference:
        raise ConfigError(f"manifest {manifest} has no {split or 'usable'} clips")
    judge = resolve_judge(judge, model)
    caption_items = read_manifest(manifest, split="train") if judge.target == "caption" else None
    return evaluate(model, reference, num_samples, judge=judge, caption_items=caption_items, **kwargs)


def reference_report(reference_items: Sequence[ManifestItem], judge: MelClassifier | str,
                     caption_items: Sequence[ManifestItem] | None = None, pitch: bool | None = None,
                     max_reference: int | None = None, ndb_k: int = 50, seed: int = 0) -> dict[str, Any]:
    """The ``reference`` section of :func:`evaluate` alone, without a model: what real clips score (the
    ceilings a model is measured against).  ``pitch=None``: when some reference caption is a note caption."""
    judge = load_judge(judge)
    refs = select_reference(reference_items, max_reference)
    if pitch is None:
        pitch = any(caption_pitch(item.caption, judge.notes) is not None for item in refs)
    bank = _caption_bank(judge, caption_items, refs, None) if caption_items is not None else None
    section = _score_reference(judge, refs, bank, pitch, ndb_k, seed)[3]
    section["num_reference"] = len(refs)
    return section


def _score_reference(judge: MelClassifier, refs: Sequence[ManifestItem], bank, pitch: bool, ndb_k: int,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """``(N, 1, S)`` reference clips at the judge's rate and window, their ``(N, D)`` embeddings and
    ``(N, C)`` probabilities, and the reference section of the report."""
    waves = window_batch(load_clips([item.path for item in refs], judge.sample_rate), judge.num_samples)
    emb, probs = judge_clips(judge, waves)
    section = reference_scores(emb, probs, item_targets(refs, judge), judge, ndb_k, seed)
    captions = [item.caption for item in refs]
    if bank is not None:
        section.update(_retrieval(emb, captions, bank))
    if pitch:
        section.update(_pitch(waves, judge.sample_rate, captions, judge.notes))
    return waves, emb, probs, section


def _prompt_scores(probs: torch.Tensor, prompts: list[str] | None, judge: MelClassifier) -> dict[str, Any]:
    """Prompt accuracy (overall and per label) over the clips whose prompt has a class of the judge
    (:meth:`~audiodiff.evaluation.judge.MelClassifier.target_of`); ``None`` when no prompt has one."""
    targets = [judge.target_of(p) for p in prompts] if prompts is not None else []
    acc, count = accuracy(probs, targets, judge)
    if acc is None:
        return {"prompt_accuracy": None}
    known = [i for i, t in enumerate(targets) if t is not None]
    return {"prompt_accuracy": acc, "prompt_accuracy_clips": count,
            "prompt_accuracy_per_label": per_label_accuracy(probs[known], [targets[i] for i in known], judge)}


def _caption_bank(judge: MelClassifier, caption_items: Sequence[ManifestItem], refs: Sequence[ManifestItem],
                  prompts: list[str] | None) -> tuple[list[str], torch.Tensor] | None:
    """Mean judge embedding of each caption of the prompts or the reference clips, over ``caption_items``
    (reference clips left out); ``None`` when none of those captions has such a clip."""
    wanted = set(prompts or []) | {item.caption for item in refs if item.caption}
    held_out = {item.path for item in refs}
    items = [item for item in caption_items if item.caption in wanted and item.path not in held_out]
    if not items:
        return None
    waves = window_batch(load_clips([item.path for item in items], judge.sample_rate), judge.num_samples)
    emb, _ = judge_clips(judge, waves)
    return caption_bank(emb, [item.caption for item in items])


def _retrieval(emb: torch.Tensor, captions: Sequence[str | None] | None,
               bank: tuple[list[str], torch.Tensor] | None) -> dict[str, Any]:
    """Caption retrieval figures, or ``retrieval_top1: None`` when they do not apply."""
    scores = retrieval_scores(emb, captions, bank) if captions is not None and bank is not None else None
    return scores or {"retrieval_top1": None}


def _pitch(waves: torch.Tensor, sample_rate: int, captions: Sequence[str | None] | None,
           notes: str | None) -> dict[str, Any]:
    """Pitch accuracy against the notes captions name (``notes``: the judge's pattern), or
    ``pitch_accuracy: None`` when none names one."""
    scores = caption_pitch_accuracy(waves, sample_rate, captions, notes) if captions is not None else None
    return scores or {"pitch_accuracy": None}


def _resynthesized_scores(model, refs, judge, ref_emb, ref_probs, k, seed, vocoder, bank, pitch) -> dict[str, Any]:
    waves = resynthesize_waves(model, [item.path for item in refs], vocoder)
    emb, probs = judge_clips(judge, waves, model.sample_rate)
    out = distribution_scores(emb, probs, ref_emb, ref_probs, k, seed)
    out["accuracy"], out["accuracy_clips"] = accuracy(probs, item_targets(refs, judge), judge)
    captions = [item.caption for item in refs]
    if bank is not None:
        out.update(_retrieval(emb, captions, bank))
    if pitch:
        out.update(_pitch(waves, model.sample_rate, captions, judge.notes))
    return out


def _settings(model, judge, refs, num_samples, prompts, prompt_list, meta, seed, k) -> dict[str, Any]:
    return {
        "model": getattr(model, "source", None),
        "judge": getattr(judge, "source", None),
        "judge_labels": list(judge.labels),
        "num_samples": num_samples,
        "num_reference": len(refs),
        "prompts": list(dict.fromkeys(prompt_list)) if prompt_list is not None else None,
        "prompt_mode": prompts if prompts in (LABEL_PROMPTS, CAPTION_PROMPTS) else ("prompts" if prompt_list else "unconditional"),
        "seed": seed,
        "steps": meta.get("steps"),
        "sampler": meta.get("sampler"),
        "spacing": meta.get("spacing"),
        "sigma_min": meta.get("sigma_min"),
        "guidance_scale": meta.get("guidance_scale"),
        "seconds": meta.get("seconds"),
        "ndb_k": k,
        "audiodiff_version": __version__,
    }
