"""Small helpers shared by the metrics: tensors or arrays in, float64 numpy arrays out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConfigError


def as_array(x: Any, ndim: int, name: str) -> np.ndarray:
    """``x`` (tensor, array or nested list) as a float64 array with ``ndim`` dimensions."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != ndim:
        raise ConfigError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ConfigError(f"{name} has NaN or infinite values")
    return array


def as_probs(probs: Any, name: str = "probs") -> np.ndarray:
    """``(N, C)`` class probabilities (rows summing to 1) as float64; an error otherwise."""
    p = as_array(probs, 2, name)
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise ConfigError(f"{name} is empty: shape {p.shape}")
    if (p < -1e-6).any() or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise ConfigError(f"{name} rows must be probabilities that sum to 1 (pass softmax(logits))")
    return np.clip(p, 0.0, 1.0)
