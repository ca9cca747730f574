"""NDB: the number of statistically different bins (Richardson & Weiss 2018, "On GANs and GMMs", sec. 4).

The real samples are clustered into ``k`` bins with k-means (Lloyd 1982, k-means++ seeding of
Arthur & Vassilvitskii 2007); every real and generated sample falls into the bin of its nearest
centroid; a two-proportion z-test per bin (pooled proportion, two-sided, level ``alpha``) asks
whether the share of generated samples in the bin differs from the share of real ones.  NDB/k is
the fraction of bins that differ: about ``alpha`` for samples from the real distribution, near 1
for a model that misses or over-produces modes.  DiffWave reports NDB/k with k = 50 on SC09
(Kong et al. 2021, table 3).

Embeddings are standardised with the real samples' per-dimension mean and std before clustering,
so that no dimension dominates the distances.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

from ..errors import ConfigError
from ._arrays import as_array


def kmeans(x: np.ndarray, k: int, iters: int = 50, seed: int = 0) -> np.ndarray:
    """``(k, D)`` centroids of ``x`` ``(N, D)`` by Lloyd's algorithm from a k-means++ start."""
    rng = np.random.default_rng(seed)
    centroids = _kmeans_plus_plus(x, k, rng)
    for _ in range(iters):
        assign = nearest(x, centroids)
        moved = centroids.copy()
        for j in range(k):
            members = x[assign == j]
            if len(members):  # an empty bin keeps its centroid
                moved[j] = members.mean(axis=0)
        if np.allclose(moved, centroids):
            break
        centroids = moved
    return centroids


def _kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centre drawn with probability proportional to squared distance."""
    centroids = [x[rng.integers(len(x))]]
    d2 = ((x - centroids[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = d2.sum()
        index = rng.choice(len(x), p=d2 / total) if total > 0 else rng.integers(len(x))
        centroids.append(x[index])
        d2 = np.minimum(d2, ((x - x[index]) ** 2).sum(axis=1))
    return np.stack(centroids)  # k x (D,) -> (k, D)


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``(N,)`` index of the nearest of ``centroids`` ``(k, D)`` for each row of ``x`` ``(N, D)``."""
    d2 = (x**2).sum(1)[:, None] - 2 * x @ centroids.T + (centroids**2).sum(1)[None, :]  # (N, k)
    return d2.argmin(axis=1)


def two_proportion_z(p1: np.ndarray, n1: int, p2: np.ndarray, n2: int) -> np.ndarray:
    """z statistics of the pooled two-proportion test, elementwise (0 where both proportions are 0 or 1)."""
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return np.divide(p1 - p2, se, out=np.zeros_like(se), where=se > 0)


def ndb(real_emb: Any, fake_emb: Any, k: int = 50, alpha: float = 0.05, seed: int = 0) -> float:
    """NDB/k: the fraction of k-means bins (fitted on ``real_emb``) whose share of ``fake_emb`` differs
    significantly (two-sided two-proportion z-test at level ``alpha``) from their share of ``real_emb``.

    Args:
        real_emb: ``(N, D)`` embeddings of real clips, ``N >= k``.
        fake_emb: ``(M, D)`` embeddings of generated clips, ``M >= 1``.
        k: number of bins.
        alpha: significance level of each test.
        seed: seed of the k-means++ start.
    """
    real, fake = as_array(real_emb, 2, "real_emb"), as_array(fake_emb, 2, "fake_emb")
    if real.shape[1] != fake.shape[1]:
        raise ConfigError(f"real and fake embeddings differ in size: {real.shape[1]} vs {fake.shape[1]}")
    if not 2 <= k <= real.shape[0] or fake.shape[0] < 1:
        raise ConfigError(f"NDB needs 2 <= k <= real samples and >= 1 fake sample; got k={k}, "
                          f"{real.shape[0]} real, {fake.shape[0]} fake")
    mean, std = real.mean(axis=0), real.std(axis=0) + 1e-8
    real, fake = (real - mean) / std, (fake - mean) / std
    centroids = kmeans(real, k, seed=seed)
    share_real = np.bincount(nearest(real, centroids), minlength=k) / len(real)
    share_fake = np.bincount(nearest(fake, centroids), minlength=k) / len(fake)
    z = two_proportion_z(share_real, len(real), share_fake, len(fake))
    critical = _normal_quantile(1 - alpha / 2)
    return float((np.abs(z) > critical).mean())


def _normal_quantile(q: float) -> float:
    """Standard normal quantile."""
    return NormalDist().inv_cdf(q)
