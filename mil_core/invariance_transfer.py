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

__all__ = ["transform_targets", "transformed_styles", "style_readout", "content_kept", "file_benchmarks", "FILE_BENCHMARKS"]


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
def transformed_styles(munit: Any, clean: ImageSet, transform: str,
                       generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor],
                                                            torch.Tensor]:
    """``clean``'s images each transformed once with parameters drawn from ``generator``, and
    their styles: ``(xt (N, 1, H, W) in [0, 1], params, styles (N, style_dim))``."""
    tfm = get_transform(transform)
    x = to_float(clean.images)                                                 # (N, 1, H, W)
    params = tfm.sample_params(x.shape[0], generator)
    xt = tfm.apply(x, params)
    styles = torch.cat([munit.encode(xt[i:i + 256] * 2 - 1)[1].cpu()
                        for i in range(0, xt.shape[0], 256)])                  # (N, style_dim)
    return xt, params, styles


def style_readout(munit: Any, clean: ImageSet, transform: str, *, seed: int = 0,
                  train_fraction: float = 0.5) -> dict[str, float]:
    """Encode the styles of ``clean``'s images each transformed once with known parameters and
    read the parameters and the class out of them: ``{"param R²", "class accuracy", "chance",
    "n"}``. ``munit``: anything with ``encode(x) -> (content, style)`` on (B, 1, H, W) in
    [-1, 1]."""
    if not isinstance(clean, ImageSet) or len(clean) < 4:
        raise DataError("style_readout needs an ImageSet of at least 4 clean images")
    _, params, styles = transformed_styles(munit, clean, transform,
                                           torch.Generator().manual_seed(int(seed)))
    r2 = linear_readout(styles, transform_targets(transform, params),
                        train_fraction=train_fraction, seed=seed)
    cls = class_readout(styles, clean.labels, train_fraction=train_fraction, seed=seed)
    return {"param R²": float(r2), "class accuracy": float(cls.accuracy),
            "chance": float(cls.chance), "n": len(clean)}


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


# -----------------------------------------------------------------------------
# the paper's own benchmarks, for users who have the files

# Paper's rows (Zhou et al. Table 2, REFERENCE §6): CE+DRS+GIT top-1 error (%), ρ = 100.
_PAPER_NAMES = {"cifar10": "CIFAR-10-LT", "cifar100": "CIFAR-100-LT"}
FILE_BENCHMARKS = ("k49", "cifar10", "cifar100")


def file_benchmarks(profile: Any, root: str | None, datasets: tuple[str, ...] = FILE_BENCHMARKS,
                    *, seed: int = 0, device: Any = None, show_progress: bool = False
                    ) -> tuple[Any, dict[str, str]]:
    """CE, CE+DRS and CE+DRS+GIT on GIT's benchmarks read from files under ``root``: K49-LT
    with ROT / BG / DIL (and the DRS oracle), CIFAR-10/100-LT with their natural nuisances only
    (transform "identity"; CIFAR's recipe, :func:`mil_core.classify.sweep.classifier_recipe`).

    Returns ``(table, skipped)``: one row per (dataset, transform, rule) with accuracy, balanced
    accuracy, top-1 error in % and the paper's error where it reports one; ``skipped`` maps each
    dataset whose files are not under ``root`` (or ``root`` is None) to the loader's message.
    """
    import pandas as pd

    from .classify.sweep import run_sweep
    from .data.mnist_like import load_git_dataset
    from .paper import GIT_CIFAR_LT_ERROR

    unknown = [d for d in datasets if d not in FILE_BENCHMARKS]
    if unknown:
        raise ConfigError(f"file_benchmarks: unknown dataset(s) {unknown}; choose from "
                          f"{list(FILE_BENCHMARKS)}")
    skipped: dict[str, str] = {}
    frames = []
    for d in datasets:
        try:
            load_git_dataset(d, root=root, split="test")
        except DataError as exc:
            skipped[d] = str(exc)
            continue
        cifar = d.startswith("cifar")
        table = run_sweep(profile, datasets=[d],
                          transforms=["identity"] if cifar else ["rot", "bg", "dil"],
                          rules=["erm", "drs"], oracle=False if cifar else ("drs",),
                          git=["drs"], instances=1, seed=seed, device=device,
                          data_root=root, show_progress=show_progress)
        frames.append(table.drop_duplicates(["dataset", "transform", "instance", "rule"]))
    columns = ["dataset", "transform", "rule", "acc", "balanced_acc", "error %", "paper error %"]
    if not frames:
        return pd.DataFrame(columns=columns), skipped
    runs = pd.concat(frames, ignore_index=True)
    out = runs.groupby(["dataset", "transform", "rule"], sort=False)[
        ["acc", "balanced_acc"]].mean().reset_index()
    out["error %"] = 100 * (1 - out["acc"])
    paper = {(k, "drs+git"): GIT_CIFAR_LT_ERROR[v] for k, v in _PAPER_NAMES.items()}
    out["paper error %"] = [paper.get((d, r), float("nan")) for d, r in
                            zip(out["dataset"], out["rule"])]
    return out[columns], skipped
