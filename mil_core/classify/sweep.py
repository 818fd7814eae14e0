"""Sweeps over datasets × transforms × train rules × long-tail instances → one tidy table.

GIT's experiment (Zhou et al., ICLR 2022, Sec. 3–4; REFERENCE §6), for each cell of the grid:

1. cut a long-tailed train split and a balanced test split from the dataset; instance ``i``
   only changes which class gets which rank (seeded :func:`class_rank_permutation`);
2. apply the nuisance transform once to every stored train and test image (GIT's setting: the
   nuisance is part of the data);
3. train a classifier with the train rule (ERM, resampling, DRS, reweighting, DRW), and, for
   reference, an *oracle* trained on the clean images with a fresh transform on every batch;
4. evaluate accuracy on the transformed test split, and eKLD per class on the *clean* test
   images (x clean, x' = T(x) — the pairing of :func:`mil_core.metrics.ekld`).

:func:`run_sweep` returns one row per (dataset, transform, instance, rule, class): the class's
training size and rank, its eKLD with a bootstrap CI, argmax consistency and test accuracy, and
the run's accuracy and balanced accuracy — the tidy format seaborn plots directly.
:func:`trend_table` summarises each (dataset, transform, rule) by the rank correlation between
log class size and eKLD (negative: small classes are less invariant).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.longtail import get_longtail_spec, make_long_tailed
from ..data.mnist_like import ImageSet, load_git_dataset
from ..data.nuisance import get_transform, transform_dataset
from ..errors import ConfigError
from ..metrics.ekld import ekld
from ..profiles import Profile, get_profile
from ..runtime import progress
from .trainer import RULES, ClassifierConfig, train_classifier

__all__ = ["LongTailSplit", "make_split", "run_sweep", "trend_table", "ORACLE"]

ORACLE = "oracle"   # the rule name of the oracle rows


@dataclass
class LongTailSplit:
    """One dataset × transform × instance: clean and transformed splits and the class sizes."""
    train_clean: ImageSet      # long-tailed train split, no nuisance
    train: ImageSet            # the same images with one stored transform each
    test_clean: ImageSet       # balanced held-out split, no nuisance (eKLD's images)
    test: ImageSet             # the same with one stored transform each (accuracy)
    sizes: list[int]           # training images of class c
    ranks: list[int]           # rank of class c (1 = head)


def make_split(dataset: str | ImageSet, transform: str, instance: int, seed: int = 0
               ) -> LongTailSplit:
    """The long-tailed splits of ``dataset`` (a preset name of :data:`LONGTAIL_PRESETS` or an
    ImageSet whose ``name`` is one) for ``transform`` and ``instance`` (REFERENCE §6)."""
    ds = load_git_dataset(dataset) if isinstance(dataset, str) else dataset
    get_transform(transform)                                        # fail early on a typo
    train, test, sizes = make_long_tailed(ds, get_longtail_spec(ds.name), instance, seed)
    gen_train = torch.Generator().manual_seed(int(seed) * 1000 + 2 * int(instance) + 1)
    gen_test = torch.Generator().manual_seed(int(seed) * 1000 + 2 * int(instance) + 2)
    tr = ImageSet(transform_dataset(train.images, transform, gen_train), train.labels.clone(),
                  list(train.classes), f"{train.name}-{transform}")
    te = ImageSet(transform_dataset(test.images, transform, gen_test), test.labels.clone(),
                  list(test.classes), f"{test.name}-{transform}")
    order = sorted(range(len(sizes)), key=lambda c: -sizes[c])
    ranks = [0] * len(sizes)
    for r, c in enumerate(order):
        ranks[c] = r + 1
    return LongTailSplit(train, tr, test, te, list(sizes), ranks)


def run_sweep(profile: str | Profile, *, datasets: Sequence[str] | None = None,
              transforms: Sequence[str] = ("rot", "bg", "dil"),
              rules: Sequence[str] = ("erm", "resample", "drs", "reweight", "drw"),
              oracle: bool = True, oracle_rule: str = "erm", instances: int | None = None,
              loss: str = "ce", seed: int = 0, device: str | torch.device | None = None,
              show_progress: bool = True, **config_overrides: Any) -> pd.DataFrame:
    """Train and measure every cell of the grid; one row per class (see the module docstring).

    ``profile`` gives the datasets (``git.datasets``), epochs, batch size, classifier, the number
    of instances (``git.n_instances``) and the eKLD protocol (``git.ekld_images_per_class`` ×
    ``git.ekld_transforms``); arguments override them. ``config_overrides`` go to
    :class:`ClassifierConfig`. Instance ``i`` trains with seed ``seed + i``.
    """
    prof = get_profile(profile)
    datasets = list(prof.git.datasets if datasets is None else datasets)
    n_inst = prof.git.n_instances if instances is None else int(instances)
    if n_inst < 1:
        raise ConfigError(f"run_sweep: instances must be >= 1, got {instances!r}")
    bad = [r for r in rules if r not in RULES]
    if bad or oracle_rule not in RULES:
        raise ConfigError(f"run_sweep: unknown rule(s) {bad or [oracle_rule]}; choose from {RULES}")
    for t in transforms:
        get_transform(t)
    jobs = [(d, t, i) for d in datasets for t in transforms for i in range(n_inst)]
    runs = [(r, None) for r in rules] + ([(ORACLE, None)] if oracle else [])
    bar = progress(jobs, total=len(jobs), desc="sweep") if show_progress else jobs
    frames: list[pd.DataFrame] = []
    cache: dict[str, ImageSet] = {}
    for d, t, i in bar:
        if d not in cache:
            cache[d] = load_git_dataset(d)
        split = make_split(cache[d], t, i, seed)
        for rule, _ in runs:
            is_oracle = rule == ORACLE
            cfg = ClassifierConfig.from_profile(
                prof, **{"rule": oracle_rule if is_oracle else rule, "loss": loss,
                         "seed": int(seed) + i, "eval_every": 0,
                         "oracle": t if is_oracle else None, **config_overrides})
            run = train_classifier(split.train_clean if is_oracle else split.train, split.test,
                                   cfg, device=device)
            res = ekld(run.model, split.test_clean, t,
                       images_per_class=prof.git.ekld_images_per_class,
                       n_transforms=prof.git.ekld_transforms,
                       generator=torch.Generator().manual_seed(int(seed) + i),
                       class_sizes=split.sizes, device=device)
            frame = res.to_frame(seed=int(seed) + i)
            frame.insert(0, "rule", rule)
            frame.insert(0, "instance", i)
            frame.insert(0, "transform", t)
            frame.insert(0, "dataset", d)
            frame["class_rank"] = [split.ranks[c] for c in frame["class_index"]]
            frame["class_acc"] = run.per_class_acc
            frame["acc"] = run.acc
            frame["balanced_acc"] = run.balanced_acc
            frame["loss"] = loss
            frame["seconds"] = run.timings["seconds"]
            frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["class_size"] = table["class_size"].astype("int64")
    return table


def trend_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, transform, rule): mean over instances of the Spearman correlation between
    log class size and eKLD, the eKLD of the smallest and of the largest class, their ratio,
    and the mean accuracy / balanced accuracy. A negative correlation and a ratio above 1 mean
    that rare classes are less invariant (GIT's finding)."""
    rows = []
    for (d, t, r), g in table.groupby(["dataset", "transform", "rule"], sort=False):
        rhos, small, large = [], [], []
        for _, gi in g.groupby("instance"):
            rho = _spearman(np.log(gi["class_size"].to_numpy(float)), gi["ekld"].to_numpy(float))
            rhos.append(rho)
            small.append(gi.loc[gi["class_size"].idxmin(), "ekld"])
            large.append(gi.loc[gi["class_size"].idxmax(), "ekld"])
        s, lg = float(np.mean(small)), float(np.mean(large))
        runs = g.drop_duplicates("instance")
        rows.append({"dataset": d, "transform": t, "rule": r,
                     "spearman(log size, eKLD)": (float(np.nanmean(rhos))
                                                  if np.isfinite(rhos).any() else math.nan),
                     "eKLD smallest class": s, "eKLD largest class": lg,
                     "smallest / largest": s / lg if lg > 0 else math.inf,
                     "acc": float(runs["acc"].mean()),
                     "balanced acc": float(runs["balanced_acc"].mean())})
    return pd.DataFrame(rows)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when a side is constant."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return math.nan
    rx = pd.Series(x).rank().to_numpy()
    ry = pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])
