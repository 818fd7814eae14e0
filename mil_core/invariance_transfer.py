"""Does GIT's generative model hold the nuisance, and only the nuisance? (Zhou et al. Sec. 4)

Shared experiment code of notebook 10. GIT assumes the style code of its single-domain MUNIT
carries the nuisance transform ``T(·|x)`` and the content code the class. Because the true
transforms here are known (:mod:`mil_core.data.nuisance`), both halves can be measured:

- :func:`style_readout` — transform clean images with parameters we draw, encode the styles,
  and ask how much of the parameter a *linear* read-out of the 8-d style recovers (held-out R²;
  ROT: the angle's (sin, cos), BG: the level, DIL: the signed kernel size, −size for erosion) and
  how much of the class (held-out nearest-class-mean accuracy against chance) — beyond the
  paper, :func:`mil_core.metrics.linear_readout`, :func:`mil_core.metrics.class_readout`;
- :func:`content_kept` — a classifier's accuracy on style-swapped images against its accuracy on
  the real ones, per class: a swap that destroys the class shows up as a drop.
"""
from __future__ import annotations

from typing import Any

import torch

from .classify.trainer import evaluate
from .data.mnist_like import ImageSet
from .data.nuisance import get_transform, to_float, to_uint8
from .errors import ConfigError, DataError
from .metrics.fidelity import angle_targets, class_readout, linear_readout

__all__ = ["transform_targets", "style_readout", "content_kept"]


def transform_targets(transform: str, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(N, k)`` float64 regression targets of a transform's parameters (module docstring)."""
    if transform == "rot":
        return angle_targets(params["angle"])                                  # (N, 2)
    if transform == "bg":
        return params["value"].to(torch.float64)[:, None]                      # (N, 1)
    if transform == "dil":
        size = params["size"].to(torch.float64)
        return torch.where(params["dilate"], size, -size)[:, None]             # (N, 1)
    raise ConfigError(f"transform_targets: no parameter targets for {transform!r}; use 'rot', "
                      "'bg' or 'dil'")


@torch.no_grad()
def style_readout(munit: Any, clean: ImageSet, transform: str, *, seed: int = 0,
                  train_fraction: float = 0.5) -> dict[str, float]:
    """Encode the styles of ``clean``'s images each transformed once with known parameters and
    read the parameters and the class out of them: ``{"param R²", "class accuracy", "chance",
    "n"}``. ``munit``: anything with ``encode(x) -> (content, style)`` on (B, 1, H, W) in
    [-1, 1]."""
    if not isinstance(clean, ImageSet) or len(clean) < 4:
        raise DataError("style_readout needs an ImageSet of at least 4 clean images")
    tfm = get_transform(transform)
    gen = torch.Generator().manual_seed(int(seed))
    x = to_float(clean.images)                                                 # (N, 1, H, W)
    params = tfm.sample_params(x.shape[0], gen)
    xt = tfm.apply(x, params)
    styles = torch.cat([munit.encode(xt[i:i + 256] * 2 - 1)[1].cpu()
                        for i in range(0, xt.shape[0], 256)])                  # (N, style_dim)
    r2 = linear_readout(styles, transform_targets(transform, params),
                        train_fraction=train_fraction, seed=seed)
    cls = class_readout(styles, clean.labels, train_fraction=train_fraction, seed=seed)
    return {"param R²": float(r2), "class accuracy": float(cls.accuracy),
            "chance": float(cls.chance), "n": int(x.shape[0])}


def content_kept(munit: Any, classifier: torch.nn.Module, data: ImageSet, *,
                 seed: int = 0) -> dict[str, Any]:
    """``classifier``'s accuracy on ``data`` and on one style swap of every image of it
    (``munit.translate``, s ~ N(0, I), labels kept): ``{"acc real", "acc translated",
    "per class real", "per class translated"}``."""
    if not isinstance(data, ImageSet) or len(data) == 0:
        raise DataError("content_kept needs a non-empty ImageSet")
    x = to_float(data.images) * 2 - 1                                          # (N, 1, H, W)
    fake = munit.translate(x, generator=torch.Generator().manual_seed(int(seed)))
    swapped = ImageSet(to_uint8((fake.cpu() + 1) / 2), data.labels.clone(), list(data.classes),
                       f"{data.name}-translated")
    real, trans = evaluate(classifier, data), evaluate(classifier, swapped)
    return {"acc real": real["acc"], "acc translated": trans["acc"],
            "per class real": real["per_class_acc"],
            "per class translated": trans["per_class_acc"]}
