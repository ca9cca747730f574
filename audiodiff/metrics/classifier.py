"""Scores from a classifier's predictions on generated clips: the SC09 protocol of DiffWave.

DiffWave (Kong et al. 2021, "DiffWave: a versatile diffusion model for audio synthesis", sec. 5.3
and table 3) judges unconditional and class-conditional spoken digits with a digit classifier:

- accuracy of the classifier against the intended labels (class-conditional generation);
- IS, the Inception Score (Salimans et al. 2016, "Improved techniques for training GANs", sec. 4):
  ``exp(E_x KL(p(y|x) || p(y)))``: high when each clip is clearly one class and the classes are
  balanced; between 1 and the number of classes;
- mIS, the modified Inception Score (Gurumurthy et al. 2017, "DeLiGAN: generative adversarial
  networks for diverse and limited data", sec. 5.3): ``exp(E_{x_i, x_j} KL(p(y|x_i) || p(y|x_j)))``
  over pairs of clips, which also rewards diversity of predictions within a class;
- AM, the AM score (Zhou et al. 2018, "Activation maximization generative adversarial nets",
  sec. 4.1): ``KL(p_train(y) || p(y)) + E_x H(p(y|x))``, lower is better: the class marginal of
  the generated clips should match the training data's, and each clip should be confidently one
  class.

Probabilities are clipped to ``[eps, 1]`` before logs, so one-hot rows give large finite scores.
NDB is in :mod:`audiodiff.metrics.ndb`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ._arrays import as_array, as_probs

EPS = 1e-12


def classifier_accuracy(logits: Any, targets: Any) -> float:
    """Fraction of rows of ``logits`` ``(N, C)`` whose argmax equals ``targets`` ``(N,)`` (class indices)."""
    scores = as_array(logits, 2, "logits")
    target = np.asarray(targets.cpu() if hasattr(targets, "cpu") else targets).reshape(-1)
    if target.shape[0] != scores.shape[0] or scores.shape[0] == 0:
        raise ConfigError(f"accuracy needs as many targets as rows of logits (> 0), got {target.shape[0]} and {scores.shape[0]}")
    return float((scores.argmax(axis=1) == target).mean())


def _log(p: np.ndarray, eps: float) -> np.ndarray:
    return np.log(np.clip(p, eps, 1.0))


def _entropy_rows(p: np.ndarray, eps: float) -> np.ndarray:
    """``(N,)`` entropies (nats) of the rows of ``p`` ``(N, C)``."""
    return -(p * _log(p, eps)).sum(axis=1)


def inception_score(probs: Any, eps: float = EPS) -> float:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` of ``probs`` ``(N, C)`` (Salimans et al. 2016).

    ``p(y)`` is the mean of the rows.  Uniform rows give 1; confident rows spread evenly over
    ``C`` classes give ``C``.  (One split: DiffWave and SaShiMi report it over all samples.)
    """
    p = as_probs(probs)
    marginal = p.mean(axis=0, keepdims=True)  # (1, C)
    kl = (p * (_log(p, eps) - _log(marginal, eps))).sum(axis=1)  # (N,)
    return float(np.exp(kl.mean()))


def modified_inception_score(probs: Any, eps: float = EPS) -> float:
    """Modified Inception Score ``exp(E_{i,j} KL(p(y|x_i) || p(y|x_j)))`` over all ordered pairs of rows
    of ``probs`` ``(N, C)`` (Gurumurthy et al. 2017), including ``i == j`` as in SaShiMi's sampling of pairs.

    Identical rows give 1; it grows with the disagreement between clips.
    """
    p = as_probs(probs)
    logp = _log(p, eps)  # (N, C)
    self_term = (p * logp).sum(axis=1)  # (N,): sum_c p_i log p_i
    cross = p @ logp.T  # (N, N): sum_c p_i log p_j
    kl = self_term[:, None] - cross  # (N, N): KL(p_i || p_j)
    return float(np.exp(kl.mean()))


def am_score(probs: Any, train_probs: Any, eps: float = EPS) -> float:
    """AM score ``KL(p_train(y) || p(y)) + E_x H(p(y|x))`` (Zhou et al. 2018); lower is better.

    Args:
        probs: ``(N, C)`` the classifier's probabilities on generated clips.
        train_probs: ``(M, C)`` its probabilities on real (training or reference) clips.
    """
    p, q = as_probs(probs), as_probs(train_probs, "train_probs")
    if p.shape[1] != q.shape[1]:
        raise ConfigError(f"probs and train_probs differ in classes: {p.shape[1]} vs {q.shape[1]}")
    marginal, train_marginal = p.mean(axis=0), q.mean(axis=0)
    kl = float((train_marginal * (_log(train_marginal, eps) - _log(marginal, eps))).sum())
    return kl + float(_entropy_rows(p, eps).mean())
