"""Metrics for generated audio, and the judges (classifiers) that some of them need.

Distribution metrics over a judge's outputs (the SC09 protocol of DiffWave, Kong et al. 2021):
:func:`frechet_distance`, :func:`classifier_accuracy`, :func:`inception_score`,
:func:`modified_inception_score`, :func:`am_score`, :func:`ndb`.  Paired-audio distances:
:func:`log_mel_l1`, :func:`mr_stft_distance`.  Text-audio: :func:`caption_retrieval`.

Judges are embedders (registry kind ``embedder``): ``embed(wave (B, 1, S)) -> (B, D)``.  The built-in
one is :class:`MelClassifier` (``"judge"``); :func:`audiodiff.training.train_judge` trains one on a manifest and
:func:`load_judge` loads a saved or shipped one.  :func:`evaluate` (in
:mod:`audiodiff.metrics.evaluate`) puts it all together for a model.
"""

from .classifier import am_score, classifier_accuracy, inception_score, modified_inception_score
from .frechet import frechet_distance, frechet_distance_from_stats, gaussian_stats
from .judge import JUDGES_DIR, MelClassifier, judge_clips, list_judges, load_judge
from .ndb import ndb
from .retrieval import caption_retrieval
from .spectral import log_mel_l1, mr_stft_distance, stft_distance

__all__ = [
    "JUDGES_DIR",
    "MelClassifier",
    "am_score",
    "caption_retrieval",
    "classifier_accuracy",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "inception_score",
    "judge_clips",
    "list_judges",
    "load_judge",
    "log_mel_l1",
    "modified_inception_score",
    "mr_stft_distance",
    "ndb",
    "stft_distance",
]
