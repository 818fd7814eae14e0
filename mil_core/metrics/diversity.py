"""Sample diversity of a single-image GAN (Shaham et al. 2019 "SinGAN", §4; REFERENCE §5).

SinGAN's definition (no official code): the standard deviation of each pixel across generated
samples, averaged over pixels, divided by the standard deviation of the real image's pixels. The
MIL paper uses 150 samples. Conventions chosen here (unspecified upstream):

- per-pixel std across the N samples with ddof = 0 (population std), for every channel
  separately, then averaged over ALL pixels AND channels (``std(dim=0).mean()``);
- the real image's std over all its pixels and channels pooled together, ddof = 0;
- images in [-1, 1] (the ratio is scale-free: the same value in [0, 1] or [0, 255]);
- samples must have the real image's size (3, H, W).

So 0 means all samples are identical, and the value is close to 1 when every pixel of the
samples is an independent draw from the real image's pixel distribution; the paper reports about
0.5 (REFERENCE §4 table).
"""
from __future__ import annotations

import torch

from ..errors import DataError

__all__ = ["diversity"]


def diversity(samples, real: torch.Tensor) -> float:
    """``mean_{c,y,x} std_n(samples[n, c, y, x]) / std(real)`` (both ddof = 0), as a float.

    Args:
        samples: ``(N, 3, H, W)`` tensor or a list of ``(3, H, W)``, N ≥ 2.
        real: ``(3, H, W)``, the image the samples were generated from.

    Raises:
        DataError: N < 2, shapes disagree, or the real image is constant (std 0).
    """
    if not isinstance(samples, torch.Tensor):
        samples = list(samples)
        if not samples or any(not isinstance(s, torch.Tensor) for s in samples):
            raise DataError("samples must be an (N, 3, H, W) tensor or a list of (3, H, W) "
                            "tensors.")
        if len({tuple(s.shape) for s in samples}) > 1:
            shapes = sorted({tuple(s.shape) for s in samples})
            raise DataError(f"samples have different shapes {shapes}; diversity needs samples "
                            "of one size.")
        samples = torch.stack(samples)
    if not isinstance(real, torch.Tensor) or real.dim() != 3:
        raise DataError(f"real must be one image (3, H, W), got "
                        f"{tuple(real.shape) if isinstance(real, torch.Tensor) else type(real)}.")
    if samples.dim() != 4:
        raise DataError(f"samples must be (N, 3, H, W), got shape {tuple(samples.shape)}.")
    if samples.shape[0] < 2:
        raise DataError(f"diversity needs at least 2 samples, got {samples.shape[0]} (the paper "
                        "uses 150).")
    if samples.shape[1:] != real.shape:
        raise DataError(f"samples are {tuple(samples.shape[1:])} but real is {tuple(real.shape)};"
                        " generate samples at the real image's size.")
    s = samples.double()
    real_std = real.double().std(unbiased=False)
    if real_std.item() == 0.0:
        raise DataError("real image is constant (std 0); diversity is undefined for it.")
    pixel_std = s.std(dim=0, unbiased=False)                               # (3, H, W)
    return float(pixel_std.mean() / real_std)
