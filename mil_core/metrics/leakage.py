"""Patch leakage between the images of one model (MIL Sec. 4.2, Prop. 2, Fig. 3).

A hyper-GAN trained over several images gives every image its own generator. With one ordinary
critic for all images (the shared-discriminator ablation) nothing tells the generator of image
``i`` that image ``j``'s patches are wrong for it: a critic that cannot see *which* image it
judges accepts any real patch, so samples of ``i`` may carry ``j``'s patches. This module counts
them.

For every patch of a sample of image ``i`` (``size × size``, on a ``stride`` grid, as
:func:`mil_core.metrics.patches.extract_patches`), its nearest patch among *all* the real
images' patches (every position) names an owner ``j``. ``matrix[i, j]`` is the share of image
``i``'s sample patches owned by ``j`` (rows sum to 1); image ``i``'s **leakage** is
``1 − matrix[i, i]``. Two reference points make the number readable:

- **chance** ``(N − 1) / N``: the leakage of patches that belong to no image in particular;
- **floor**: the leakage of a mirror image of the real image ``i`` itself — new patches made of
  nothing but image ``i`` — which is where "no leakage" really is for these images (above 0
  when two images have similar patches, e.g. two skies).

Confidence intervals come from a bootstrap over each image's patches (:func:`leakage`): a
stratified one (every image keeps its patch count), where :func:`mil_core.metrics.bootstrap_ci`
resamples one flat set of values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ConfigError, DataError
from .patches import extract_patches

__all__ = ["Leakage", "patch_owners", "leakage", "leakage_floor"]


@dataclass(frozen=True)
class Leakage:
    """Leakage of a set of samples; see the module docstring."""
    matrix: torch.Tensor      # (N, N): share of image i's sample patches nearest to image j's
    per_image: torch.Tensor   # (N,): 1 − matrix[i, i]
    mean: float               # mean of per_image
    ci: tuple[float, float]   # bootstrap 95 % interval of ``mean`` (over each image's patches)
    chance: float             # (N − 1) / N

    def as_row(self) -> dict[str, float]:
        """``{"leakage", "ci low", "ci high", "chance"}`` for a results table."""
        return {"leakage": self.mean, "ci low": self.ci[0], "ci high": self.ci[1],
                "chance": self.chance}


def _check_reals(reals: Sequence[torch.Tensor], size: int) -> list[torch.Tensor]:
    reals = list(reals)
    if len(reals) < 2:
        raise DataError(f"leakage needs at least 2 real images, got {len(reals)}.")
    for k, r in enumerate(reals):
        if not isinstance(r, torch.Tensor) or r.dim() != 3 or r.shape[0] != 3:
            raise DataError(f"reals[{k}] must be an image (3, H, W).")
        if min(r.shape[-2:]) < size:
            raise DataError(f"reals[{k}] ({r.shape[-2]}×{r.shape[-1]}) is smaller than the "
                            f"patch size {size}.")
    return reals


def _reference(reals: list[torch.Tensor], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every patch of every real image ``(L, D)`` and its owner ``(L,)``."""
    patches = [extract_patches(r.float(), size, 1) for r in reals]
    owners = torch.cat([torch.full((len(p),), k, dtype=torch.long) for k, p in enumerate(patches)])
    return torch.cat(patches), owners


def _owners_of(query: torch.Tensor, ref: torch.Tensor, ref_owner: torch.Tensor) -> torch.Tensor:
    chunk = max(1, min(1024, (1 << 24) // max(1, ref.shape[0])))
    return torch.cat([ref_owner[torch.cdist(q, ref).argmin(dim=1)] for q in query.split(chunk)])


def patch_owners(samples: torch.Tensor, reals: Sequence[torch.Tensor], size: int = 7,
                 stride: int = 2, max_patches: int = 4096,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Owner (index into ``reals``) of the nearest real patch of each patch of ``samples``.

    ``samples``: ``(k, 3, H, W)`` or ``(3, H, W)``; at most ``max_patches`` patches in all are
    kept, a random subset drawn with ``generator`` (default seeded 0). Returns ``(P,)`` long.
    """
    reals = _check_reals(reals, size)
    if not isinstance(samples, torch.Tensor) or samples.dim() not in (3, 4) \
            or samples.shape[-3] != 3:
        raise DataError("samples must be a tensor (k, 3, H, W) or (3, H, W).")
    if not isinstance(max_patches, int) or max_patches < 1:
        raise ConfigError(f"max_patches must be a positive integer, got {max_patches!r}.")
    gen = torch.Generator().manual_seed(0) if generator is None else generator
    q = extract_patches(samples.float(), size, stride)
    q = q.reshape(-1, q.shape[-1])                                     # (P, D)
    if q.shape[0] > max_patches:
        q = q[torch.randperm(q.shape[0], generator=gen)[:max_patches]]
    ref, ref_owner = _reference(reals, size)
    return _owners_of(q, ref, ref_owner)


def leakage(samples: Sequence[torch.Tensor], reals: Sequence[torch.Tensor], size: int = 7,
            stride: int = 2, max_patches: int = 4096, n_boot: int = 1000,
            generator: torch.Generator | None = None) -> Leakage:
    """Leakage of ``samples[i]`` (``(k, 3, H, W)``: samples of image ``i``) against ``reals``.

    The bootstrap resamples each image's patch owners with replacement ``n_boot`` times and
    reports the 2.5 / 97.5 percentiles of the mean leakage over images.
    """
    reals = _check_reals(reals, size)
    samples = list(samples)
    if len(samples) != len(reals):
        raise DataError(f"leakage: {len(samples)} sample sets for {len(reals)} real images; "
                        "pass one set of samples per real image, in the same order.")
    gen = torch.Generator().manual_seed(0) if generator is None else generator
    n = len(reals)
    owners = [patch_owners(s, reals, size, stride, max_patches, gen) for s in samples]
    matrix = torch.stack([torch.bincount(o, minlength=n).float() / len(o) for o in owners])
    per_image = 1.0 - matrix.diagonal()
    boots = torch.zeros(n_boot)
    for i, o in enumerate(owners):
        leak = (o != i).float()                                        # (P_i,)
        idx = torch.randint(len(leak), (n_boot, len(leak)), generator=gen)
        boots += leak[idx].mean(dim=1) / n
    lo, hi = torch.quantile(boots, torch.tensor([0.025, 0.975])).tolist()
    return Leakage(matrix=matrix, per_image=per_image, mean=float(per_image.mean()),
                   ci=(lo, hi), chance=(n - 1) / n)


def leakage_floor(reals: Sequence[torch.Tensor], **kwargs) -> Leakage:
    """:func:`leakage` of each real image's mirror image, used as its only sample: new patches
    made of nothing but that image. Keyword arguments are passed on."""
    reals = list(reals)
    return leakage([r.flip(-1)[None] for r in reals], reals, **kwargs)
