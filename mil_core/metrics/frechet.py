"""The Fréchet distance between two Gaussians, the core of FID and SIFID (REFERENCE §5).

For ``X₁ ~ N(μ₁, Σ₁)`` and ``X₂ ~ N(μ₂, Σ₂)``::

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2})

Conventions (the same as FID / SinGAN's SIFID): the value returned is ``d²`` (not its square
root); statistics are float64 numpy arrays; the covariance is ``np.cov(features, rowvar=False)``
(unbiased, ``N − 1`` in the denominator). ``(Σ₁Σ₂)^{1/2}`` is ``scipy.linalg.sqrtm``; when that
product is singular and the square root is not finite, ``eps·I`` is added to both covariances and
the root is taken again. Rounding leaves a tiny imaginary part, which is dropped; an imaginary
part above ``1e-3`` on the diagonal means the statistics are broken and raises DataError. Rounding
can also make ``d²`` a hair below 0 (≈ −1e-12) for identical statistics; it is returned as is.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from ..errors import DataError

__all__ = ["frechet_distance", "feature_stats"]


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (``np.cov``, rowvar=False) of ``features (N, D)``.

    Accepts a numpy array or a torch tensor; the result is float64.

    Raises:
        DataError: ``features`` is not 2-D, has fewer than 2 samples, or holds NaN/inf.
    """
    if hasattr(features, "detach"):                       # torch tensor → numpy
        features = features.detach().cpu().double().numpy()
    f = np.asarray(features, dtype=np.float64)            # (N, D)
    if f.ndim != 2:
        raise DataError(f"features must be 2-D (N samples, D dims), got shape {f.shape}.")
    if f.shape[0] < 2:
        raise DataError(f"features has {f.shape[0]} sample(s); a covariance needs at least 2 "
                        "(use a larger image or an earlier feature layer).")
    if not np.isfinite(f).all():
        raise DataError("features contain NaN or inf; check the images fed to the extractor.")
    mu = f.mean(axis=0)                                   # (D,)
    sigma = np.atleast_2d(np.cov(f, rowvar=False))        # (D, D)
    return mu, sigma


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy's matrix square root with its 'singular matrix' warning silenced (we check it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return linalg.sqrtm(a)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Squared Fréchet distance ``‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2})`` as a Python float.

    Args:
        mu1, mu2: means ``(D,)``.
        sigma1, sigma2: covariances ``(D, D)`` (symmetric positive semi-definite).
        eps: diagonal offset used only when ``(Σ₁Σ₂)^{1/2}`` is not finite (singular product).

    Raises:
        DataError: shapes disagree, inputs are not finite, or the square root has a large
            imaginary part (statistics that are not valid covariances).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))        # (D,)
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))        # (D,)
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))  # (D, D)
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))  # (D, D)
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise DataError(f"mu1 and mu2 must be vectors of one length, got {mu1.shape} and "
                        f"{mu2.shape}.")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise DataError(f"sigma1 and sigma2 must be ({d}, {d}) to match the means, got "
                        f"{sigma1.shape} and {sigma2.shape}.")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise DataError(f"{name} contains NaN or inf.")

    diff = mu1 - mu2                                              # (D,)
    covmean = _sqrtm(sigma1 @ sigma2)                             # (D, D), maybe complex
    if not np.isfinite(covmean).all():                            # singular product
        offset = np.eye(d) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3:
            raise DataError(f"sqrtm(sigma1 @ sigma2) has an imaginary part of {imag:.3g} on its "
                            "diagonal: the covariances are not valid (too few samples for their "
                            "dimension, or not positive semi-definite).")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
