"""Drift metrics on binned counts, and their expected value when nothing drifted (see the package docs)."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "EPSILON",
    "Z_GUARD",
    "js_distance",
    "js_divergence",
    "js_noise",
    "linf",
    "linf_excess",
    "occupied_bins",
    "psi",
    "psi_noise",
    "rate_excess",
    "smoothed",
]

EPSILON = 1e-4
"""Additive smoothing of PSI proportions: an empty bin would make ln(q/p) infinite."""
Z_GUARD = 3.0
"""Standard errors subtracted from share differences before judging them (3: ~0.1% one-sided false alarms)."""
_LN2 = math.log(2.0)


def _shares(counts: np.ndarray) -> np.ndarray:
    """Return counts as proportions (all zeros when the total is zero)."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else np.zeros_like(c)


def smoothed(counts: np.ndarray, eps: float = EPSILON) -> np.ndarray:
    """Return ``(p_i + eps) / (1 + B * eps)``: proportions kept positive and summing to one."""
    p = _shares(counts)
    return (p + eps) / (1.0 + p.size * eps)


def psi(ref: np.ndarray, cur: np.ndarray, eps: float = EPSILON) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` over smoothed proportions (natural log)."""
    p, q = smoothed(ref, eps), smoothed(cur, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def js_divergence(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits: ``(KL(p||m) + KL(q||m)) / 2``, ``m = (p + q) / 2``, 0 log 0 = 0."""
    p, q = _shares(ref), _shares(cur)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0)
        kq = np.where(q > 0, q * np.log2(q / m), 0.0)
    # Rounding can leave a tiny negative value for identical inputs.
    return float(min(max(0.5 * (kp.sum() + kq.sum()), 0.0), 1.0))


def js_distance(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance: square root of the base-2 divergence, in [0, 1]."""
    return math.sqrt(js_divergence(ref, cur))


def linf(ref: np.ndarray, cur: np.ndarray) -> float:
    """L-infinity distance ``max_i |p_i - q_i|`` between the frequency vectors (as TFDV)."""
    p, q = _shares(ref), _shares(cur)
    return float(np.max(np.abs(p - q))) if p.size else 0.0


def occupied_bins(ref: np.ndarray, cur: np.ndarray) -> int:
    """Return the number of bins holding a value on either side (the B of the noise formulas)."""
    return int(np.count_nonzero((np.asarray(ref) > 0) | (np.asarray(cur) > 0)))


def psi_noise(bins: int, n_ref: int, n_cur: int) -> float:
    """Expected PSI of two same-distribution samples: ``(B - 1) * (1/n_ref + 1/n_cur)``."""
    # PSI is the symmetric KL divergence; to second order it is Pearson's chi-square statistic of a
    # two-sample test scaled by (1/n_ref + 1/n_cur), whose mean under no drift is B - 1.
    if n_ref <= 0 or n_cur <= 0:
        return 0.0
    return max(bins - 1, 0) * (1.0 / n_ref + 1.0 / n_cur)


def js_noise(bins: int, n_ref: int, n_cur: int) -> float:
    """Expected base-2 JS *divergence* of two same-distribution samples: ``psi_noise / (8 ln 2)``."""
    # To second order JSD (nats) = sum((p - q)^2 / m) / 8 while PSI = sum((p - q)^2 / m).
    return psi_noise(bins, n_ref, n_cur) / (8.0 * _LN2)


def linf_excess(ref: np.ndarray, cur: np.ndarray, z: float = Z_GUARD) -> float:
    """Return ``max_i max(0, |p_i - q_i| - z * se_i)``, ``se_i`` the two-sample standard error of bin i."""
    r, c = np.asarray(ref, np.float64), np.asarray(cur, np.float64)
    n_ref, n_cur = r.sum(), c.sum()
    if n_ref <= 0 or n_cur <= 0 or r.size == 0:
        return 0.0
    pooled = (r + c) / (n_ref + n_cur)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    return float(np.max(np.maximum(np.abs(r / n_ref - c / n_cur) - z * se, 0.0)))


def rate_excess(rate_ref: float, n_ref: int, rate_cur: float, n_cur: int, z: float = Z_GUARD) -> float:
    """Return ``max(0, |a - b| - z * se)`` for two proportions, ``se`` from their pooled rate."""
    if n_ref <= 0 or n_cur <= 0:
        return 0.0
    pooled = (rate_ref * n_ref + rate_cur * n_cur) / (n_ref + n_cur)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    return max(abs(rate_cur - rate_ref) - z * se, 0.0)
