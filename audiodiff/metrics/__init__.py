"""Metrics for generated audio: pure score functions of embeddings, probabilities and audio.

Distribution metrics over a judge's outputs (the SC09 protocol of DiffWave, Kong et al. 2021):
:func:`frechet_distance`, :func:`classifier_accuracy`, :func:`inception_score`,
:func:`modified_inception_score`, :func:`am_score`, :func:`ndb`.  Paired-audio distances:
:func:`log_mel_l1`, :func:`mr_stft_distance`.  Text-audio: :func:`caption_retrieval`.

The judges that give those embeddings and probabilities, and :func:`audiodiff.evaluation.evaluate`
which puts it all together for a model, live in :mod:`audiodiff.evaluation`.
"""

from .classifier import am_score, classifier_accuracy, inception_score, modified_inception_score
from .frechet import frechet_distance, frechet_distance_from_stats, gaussian_stats
from .ndb import ndb
from .retrieval import caption_retrieval
from .spectral import log_mel_l1, mr_stft_distance, stft_distance

__all__ = [
    "am_score",
    "caption_retrieval",
    "classifier_accuracy",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "inception_score",
    "log_mel_l1",
    "modified_inception_score",
    "mr_stft_distance",
    "ndb",
    "stft_distance",
]
