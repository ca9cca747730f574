"""Evaluation of a model: judges, pitch, and :func:`evaluate` (generation + metrics + reports).

Judges are embedders (registry kind ``embedder``): ``embed(wave (B, 1, S)) -> (B, D)``.  The built-in
one is :class:`MelClassifier` (``"judge"``); :func:`audiodiff.training.train_judge` trains one on a
manifest and :func:`load_judge` loads a saved or shipped one.  What a judge's classes are, and which
note a caption names, come from its config (:mod:`audiodiff.evaluation.targets`), never from a
recipe's caption format.  :func:`audiodiff.evaluation.evaluate.evaluate` generates clips and scores them with the pure score
functions of :mod:`audiodiff.metrics` (the SC09 protocol of DiffWave, Kong et al. 2021).
"""

from .judge import JUDGES_DIR, MelClassifier, judge_clips, list_judges, load_judge
from .targets import CaptionPattern, caption_pitch

__all__ = ["JUDGES_DIR", "CaptionPattern", "MelClassifier", "caption_pitch", "judge_clips", "list_judges", "load_judge"]
