"""Frechet distance between Gaussians fitted to two sets of embeddings.

The Frechet (2-Wasserstein) distance between ``N(mu_a, S_a)`` and ``N(mu_b, S_b)`` is

    d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))

(Dowson & Landau 1982).  On Inception embeddings it is the FID (Heusel et al. 2017, "GANs
trained by a two time-scale update rule converge to a local Nash equilibrium", eq. 6); on audio
classifier embeddings it is the Frechet Audio Distance (Kilgour et al. 2019, "Frechet Audio
Distance: a metric for evaluating music enhancement algorithms"), and on an SC09 digit
classifier the FID of DiffWave's table 3 (Kong et al. 2021).

The estimate is biased upwards for small sample counts; compare figures computed with the same
number of samples (the evaluation report also gives the distance between two halves of the
reference set, a floor for that sample size).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import ConfigError
from ._arrays import as_array

log = logging.getLogger(__name__)


def gaussian_stats(emb: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased; zeros for a single sample) of ``(N, D)`` embeddings."""
    x = as_array(emb, 2, "embeddings")
    if x.shape[0] == 0:
        raise ConfigError("cannot fit a Gaussian to zero embeddings")
    mu = x.mean(axis=0)
    if x.shape[0] < 2:
        return mu, np.zeros((x.shape[1], x.shape[1]))
    return mu, np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance_from_stats(mu_a: Any, cov_a: Any, mu_b: Any, cov_b: Any, eps: float = 1e-6) -> float:
    """Frechet distance between ``N(mu_a, cov_a)`` and ``N(mu_b, cov_b)`` (Heusel et al. 2017, eq. 6).

    ``sqrtm(cov_a @ cov_b)`` is computed with :func:`scipy.linalg.sqrtm`; when the product is
    singular (fewer samples than dimensions) or the root is not finite, ``eps * I`` is added to both
    covariances first.  A small imaginary part from rounding is dropped.
    """
    from scipy import linalg

    mu_a, mu_b = as_array(mu_a, 1, "mu_a"), as_array(mu_b, 1, "mu_b")
    cov_a, cov_b = as_array(cov_a, 2, "cov_a"), as_array(cov_b, 2, "cov_b")
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.size, mu_a.size):
        raise ConfigError(f"Frechet distance needs matching shapes, got {mu_a.shape}, {cov_a.shape}, {mu_b.shape}, {cov_b.shape}")
    covmean = _sqrtm_product(cov_a, cov_b, eps, linalg)
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def _sqrtm_product(cov_a: np.ndarray, cov_b: np.ndarray, eps: float, linalg: Any) -> np.ndarray:
    """``(cov_a cov_b)^(1/2)``, regularised with ``eps * I`` when singular; real part."""
    offset = np.eye(cov_a.shape[0]) * eps
    product = cov_a @ cov_b
    if np.linalg.matrix_rank(product) < len(product):  # fewer samples than dimensions
        product = (cov_a + offset) @ (cov_b + offset)
    covmean = linalg.sqrtm(product)
    if not np.isfinite(covmean).all():
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * max(1.0, np.abs(covmean).max())):
            log.warning("Frechet distance: sqrtm has a large imaginary part (%g); using the real part",
                        np.abs(covmean.imag).max())
        covmean = covmean.real
    return covmean


def frechet_distance(emb_a: Any, emb_b: Any, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to ``emb_a`` ``(N, D)`` and ``emb_b`` ``(M, D)``.

    FID (Heusel et al. 2017) / FAD (Kilgour et al. 2019) on whatever embedding is given.  Works
    for any ``N, M >= 1`` (a set of one sample has zero covariance).
    """
    mu_a, cov_a = gaussian_stats(emb_a)
    mu_b, cov_b = gaussian_stats(emb_b)
    if mu_a.shape != mu_b.shape:
        raise ConfigError(f"embeddings differ in size: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    return frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b, eps)
