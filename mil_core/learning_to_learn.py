"""Is it learning to learn? Thrun & Pratt's criterion, measured (notebook 11).

The ICLR 2023 blog post on Zhou et al. (ICLR 2022) reads GIT as meta-learning: the classes are
the tasks, and a single-domain MUNIT, trained over all of them, learns the one thing they share —
the nuisance transform. Its criterion is Thrun & Pratt's (1998): *an algorithm learns to learn
if its performance at each task improves with experience and with the number of tasks.* This
module measures that for three learners:

- the **classifier** (CE, and CE+GIT): one rare class at the floor size, K other classes with
  the same nuisance; does the rare class get more invariant (lower eKLD) and more accurate as K
  grows? (:func:`tasks_experiment`);
- the **MUNIT**, trained on the rare class and K others: does its style code hold the transform
  on classes it never saw (linear read-out R² of the transform's parameter, the fidelity of its
  swaps) better as K grows? (same runs);
- MIL's **hyper-GAN**: quality on unseen images and on a fixed training image against the number
  of training images, from notebook 07's table (:func:`hypergan_by_tasks`).

:func:`verdict_table` fits each learner's measure against log₂ K and says, with a bootstrap
interval over seeds, whether it improves with the number of tasks. Task sets are nested and
seeded (:func:`nested_task_classes`), and each class's images and their stored transforms depend
only on (seed, class) (:func:`task_split`), so the rare class is the same for every K.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .classify.sweep import LongTailSplit, train_augmenter
from .classify.trainer import ClassifierConfig, train_classifier
from .data.mnist_like import ImageSet, load_git_dataset
from .data.nuisance import get_transform, to_float, transform_dataset
from .errors import ConfigError, DataError
from .invariance_transfer import content_kept, transform_targets, transformed_styles
from .metrics.ekld import ekld
from .metrics.fidelity import fidelity, linear_readout
from .profiles import get_profile

__all__ = ["nested_task_classes", "task_split", "class_subset", "tasks_experiment",
           "munit_measures", "load_feedforward_quality", "hypergan_by_tasks", "verdict_table",
           "d_steps_probe", "LEARNERS"]

_TAG = 0x7A5C   # mixed into the seeds of the task draw and the per-class shuffles

# learner -> (column, "lower" / "higher" is better, label) of the measures the verdict reads
LEARNERS: dict[str, list[tuple[str, str, str]]] = {
    "classifier (CE)": [("rare_ekld", "lower", "rare-class eKLD"),
                        ("rare_vs_other_ekld", "lower", "rare / other classes' eKLD"),
                        ("rare_acc", "higher", "rare-class accuracy")],
    "classifier (CE+GIT)": [("rare_ekld", "lower", "rare-class eKLD"),
                            ("rare_vs_other_ekld", "lower", "rare / other classes' eKLD"),
                            ("rare_acc", "higher", "rare-class accuracy")],
    "MUNIT": [("style_r2_unseen", "higher", "style R² of the transform, unseen classes"),
              ("fidelity_unseen", "lower", "swap fidelity distance, unseen classes")],
    "hyper-GAN": [("test_swd", "lower", "SWD ×10³ on unseen images"),
                  ("train_swd", "lower", "SWD ×10³ on a fixed training image")],
}


def nested_task_classes(n_classes: int, ks: Sequence[int], n_unseen: int = 0, seed: int = 0
                        ) -> tuple[int, dict[int, list[int]], list[int]]:
    """``(rare, {K: classes}, unseen)``: a seeded rare class, then nested task sets — the rare
    class first, then the first K of one seeded order of the other classes — and ``n_unseen``
    classes that no task set ever contains (MUNIT's unseen classes)."""
    ks = [int(k) for k in ks]
    if not ks or any(k < 1 for k in ks) or ks != sorted(set(ks)):
        raise ConfigError(f"nested_task_classes: ks must be increasing positive ints, got {ks}")
    if ks[-1] + 1 + n_unseen > n_classes:
        raise ConfigError(f"nested_task_classes: K = {ks[-1]} other classes + the rare one + "
                          f"{n_unseen} unseen need {ks[-1] + 1 + n_unseen} classes; the data "
                          f"has {n_classes}. Lower ks or n_unseen.")
    order = np.random.default_rng([int(seed), _TAG]).permutation(n_classes).tolist()
    rare, unseen, others = order[0], order[1:1 + n_unseen], order[1 + n_unseen:]
    return rare, {k: [rare] + others[:k] for k in ks}, unseen


def _class_images(ds: ImageSet, c: int, n: int, offset: int, seed: int) -> torch.Tensor:
    idx = np.flatnonzero(ds.labels.numpy() == c)
    idx = idx[np.random.default_rng([int(seed), _TAG, c]).permutation(len(idx))]
    if len(idx) < offset + n:
        raise DataError(f"task_split: class {c} of {ds.name!r} has {len(idx)} images, needs "
                        f"{offset + n}; lower the per-class sizes")
    return ds.images[torch.from_numpy(idx[offset:offset + n])]


def task_split(dataset: ImageSet, classes: Sequence[int], rare_size: int, other_size: int,
               n_test: int, transform: str, seed: int = 0) -> LongTailSplit:
    """Train / test splits of ``classes`` (relabelled 0..len−1; class 0 is the rare one, with
    ``rare_size`` training images, the others ``other_size``), ``n_test`` held-out images per
    class; every image carries one stored ``transform``. A class's images and their transform
    parameters depend only on (``seed``, class), never on which other classes are present."""
    tfm = get_transform(transform)
    parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {k: [] for k in
                                                                 ("tr", "trc", "te", "tec")}
    for j, c in enumerate(classes):
        n_train = rare_size if j == 0 else other_size
        test = _class_images(dataset, c, n_test, 0, seed)
        train = _class_images(dataset, c, n_train, n_test, seed)
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), _TAG, c, 1])
                                              .generate_state(1)[0]))
        lab = lambda n: torch.full((n,), j, dtype=torch.int64)   # noqa: E731
        parts["trc"].append((train, lab(n_train)))
        parts["tr"].append((transform_dataset(train, tfm, g), lab(n_train)))
        parts["tec"].append((test, lab(n_test)))
        parts["te"].append((transform_dataset(test, tfm, g), lab(n_test)))
    names = [dataset.classes[c] for c in classes]

    def cat(key: str, suffix: str) -> ImageSet:
        return ImageSet(torch.cat([p[0] for p in parts[key]]), torch.cat([p[1] for p in parts[key]]),
                        names, f"{dataset.name}-tasks{len(classes)}-{suffix}")

    sizes = [rare_size] + [other_size] * (len(classes) - 1)
    ranks = [len(classes)] + list(range(1, len(classes)))
    return LongTailSplit(cat("trc", "train"), cat("tr", f"train-{transform}"), cat("tec", "test"),
                         cat("te", f"test-{transform}"), sizes, ranks, dataset.name)


def class_subset(dataset: ImageSet, classes: Sequence[int], name: str) -> ImageSet:
    """Every image of ``classes`` (labels kept), e.g. MUNIT's never-seen classes."""
    idx = [torch.from_numpy(np.flatnonzero(dataset.labels.numpy() == c)) for c in classes]
    return dataset.subset(torch.cat(idx), name)


def load_feedforward_quality(profile: Any) -> pd.DataFrame:
    """Notebook 07's per-image table (``figures/07_feedforward/quality_per_image.csv``), checked
    to come from ``profile``: its training-set sizes must be the profile's
    ``image.feedforward_train_sizes`` (those that fit). Raises DataError naming the fix."""
    from .figures import figures_dir

    prof = get_profile(profile)
    path = figures_dir("07_feedforward") / "quality_per_image.csv"
    if not path.is_file():
        raise DataError(f"{path} is missing: run notebook 07 at the {prof.name!r} profile first "
                        f"(python -m mil_core.reproduce --profile {prof.name} --only 07), "
                        "which writes it")
    quality = pd.read_csv(path)
    sizes = sorted(int(n) for n in quality.get("N", pd.Series(dtype=int)).unique())
    want = list(prof.image.feedforward_train_sizes)
    if not sizes or sizes != want[:len(sizes)]:
        raise DataError(f"{path} holds training-set sizes {sizes}, not the {prof.name!r} "
                        f"profile's {want}: it comes from another profile's run of notebook 07; "
                        f"re-run notebook 07 at {prof.name!r}")
    return quality


def munit_measures(munit: Any, clean: ImageSet, transform: str, seed: int = 0) -> dict[str, float]:
    """How well ``munit``'s style holds ``transform`` on the clean images ``clean``: the linear
    read-out R² of the parameter (:func:`~mil_core.invariance_transfer.style_readout`) and the
    first distance of :func:`~mil_core.metrics.fidelity.fidelity` (swaps of transformed images
    against the true transform), as :func:`~mil_core.invariance_transfer.style_readout` does
    but without its class read-out, so that one class is enough."""
    if not isinstance(clean, ImageSet) or len(clean) < 4:
        raise DataError("munit_measures needs an ImageSet of at least 4 clean images")
    xt, params, styles = transformed_styles(munit, clean, transform,         # the data's look
                                            torch.Generator().manual_seed(int(seed) + 1))
    r2 = linear_readout(styles, transform_targets(transform, params), seed=seed)
    swap = (munit.translate(xt * 2 - 1, generator=torch.Generator().manual_seed(int(seed)))
            .cpu() + 1) / 2
    ref = get_transform(transform)(to_float(clean.images),
                                   torch.Generator().manual_seed(int(seed) + 2))
    fid = fidelity(transform, xt, swap, ref)
    return {"r2": float(r2), "fidelity": next(iter(fid.values()))}


def tasks_experiment(profile: Any, *, dataset: str = "digits", transform: str = "bg",
                     ks: Sequence[int] = (1, 3, 7), seeds: Sequence[int] = (0, 1, 2),
                     rare_size: int = 5, other_size: int = 100, n_test: int = 30,
                     n_unseen: int = 2, git: bool = True, git_seeds: Sequence[int] | None = None,
                     munit_iters: int | None = None, device: Any = None) -> pd.DataFrame:
    """One row per (learner, K, seed): the rare class's eKLD and accuracy for the classifiers
    (CE; CE+GIT with a MUNIT trained on the same K + 1 classes) — also relative to the other
    classes' mean eKLD in the same classifier, since eKLD's scale moves with the number of
    classes (``rare_vs_other_ekld``) — and for that MUNIT its style
    read-out R² and swap fidelity on ``n_unseen`` never-seen classes and on the rare class.
    ``git_seeds`` (default: ``seeds``) limits the MUNIT runs; ``munit_iters`` overrides the
    profile's MUNIT length."""
    prof = get_profile(profile)
    ds = load_git_dataset(dataset)
    rows: list[dict[str, Any]] = []
    git_seeds = list(seeds if git_seeds is None else git_seeds)
    overrides = {} if munit_iters is None else {"iters": int(munit_iters)}
    for seed in seeds:
        rare, tasks, unseen = nested_task_classes(ds.n_classes, ks, n_unseen, seed)
        unseen_clean = class_subset(ds, unseen, f"{ds.name}-unseen") if unseen else None
        for k, classes in tasks.items():
            split = task_split(ds, classes, rare_size, other_size, n_test, transform, seed)
            base = {"K": k, "seed": seed, "rare_class": ds.classes[rare],
                    "train_images": len(split.train)}
            learners = [("classifier (CE)", None)]
            if git and seed in git_seeds:
                munit = train_augmenter(split, prof, seed, device, **overrides)
                m_rare = munit_measures(munit, split.test_clean.subset(
                    torch.arange(n_test)), transform, seed)
                row = {"learner": "MUNIT", **base, "style_r2_rare": m_rare["r2"],
                       "fidelity_rare": m_rare["fidelity"],
                       "seconds": munit.timings.get("total_seconds", float("nan"))}
                if unseen_clean is not None:
                    m_un = munit_measures(munit, unseen_clean, transform, seed)
                    row.update(style_r2_unseen=m_un["r2"], fidelity_unseen=m_un["fidelity"])
                rows.append(row)
                learners.append(("classifier (CE+GIT)", munit))
            for name, aug in learners:
                cfg = ClassifierConfig.from_profile(prof, eval_every=0, seed=int(seed),
                                                    git_fraction=0.5 if aug is not None else 0.0)
                run = train_classifier(split.train, split.test, cfg, device=device,
                                       augmenter=aug)
                res = ekld(run.model, split.test_clean, transform,
                           images_per_class=min(prof.git.ekld_images_per_class, n_test),
                           n_transforms=prof.git.ekld_transforms,
                           generator=torch.Generator().manual_seed(int(seed)), device=device)
                e = np.asarray(res.ekld, dtype=float)
                acc = np.asarray(run.per_class_acc, dtype=float)
                rows.append({"learner": name, **base, "rare_ekld": float(e[0]),
                             "rare_acc": float(acc[0]), "other_ekld": float(e[1:].mean()),
                             "rare_vs_other_ekld": float(e[0] / max(e[1:].mean(), 1e-12)),
                             "other_acc": float(acc[1:].mean()),
                             "seconds": run.timings["seconds"]})
    return pd.DataFrame(rows)


def hypergan_by_tasks(quality: pd.DataFrame) -> pd.DataFrame:
    """Notebook 07's per-image table (``set``, ``N``, ``image``, ``SWD ×1e3``, …) as rows of
    learner "hyper-GAN": K = N training images, one row per (N, unseen image) with its
    ``test_swd`` and ``test_rec`` (rec / grey), and per N the fixed training image (the one in
    every nested training set that comes first) as ``train_swd`` / ``train_rec``. ``seed`` is
    the unseen image's index (the band is over images: notebook 07 runs one seed)."""
    need = {"set", "N", "image", "SWD ×1e3", "rec / grey"}
    if not isinstance(quality, pd.DataFrame) or not need <= set(quality.columns):
        raise DataError(f"hypergan_by_tasks needs notebook 07's quality_per_image table with "
                        f"columns {sorted(need)}; run notebook 07 at the same profile first")
    train = quality[quality["set"] == "train"]
    sizes = sorted(train["N"].unique())
    common = set(train[train["N"] == sizes[0]]["image"])
    for n in sizes[1:]:
        common &= set(train[train["N"] == n]["image"])
    fixed = [im for im in train[train["N"] == sizes[0]]["image"] if im in common][0]
    rows = []
    for n in sizes:
        f = train[(train["N"] == n) & (train["image"] == fixed)].iloc[0]
        test = quality[(quality["set"] == "test") & (quality["N"] == n)].reset_index(drop=True)
        for i, t in test.iterrows():
            rows.append({"learner": "hyper-GAN", "K": int(n), "seed": int(i),
                         "test_swd": float(t["SWD ×1e3"]), "test_rec": float(t["rec / grey"]),
                         "train_swd": float(f["SWD ×1e3"]), "train_rec": float(f["rec / grey"]),
                         "fixed_image": fixed})
    return pd.DataFrame(rows)


def _slope(k: np.ndarray, v: np.ndarray) -> float:
    x = np.log2(k.astype(float))
    if np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, v.astype(float), 1)[0])


def verdict_table(rows: pd.DataFrame, learners: dict[str, list[tuple[str, str, str]]] | None = None,
                  level: float = 0.95) -> pd.DataFrame:
    """Per learner and measure: its mean at the smallest and largest K, the least-squares slope
    against log₂ K (per doubling of the number of tasks) of each seed, their mean and a
    Student-t interval over seeds (over unseen images for the hyper-GAN; column
    ``replicates``), and the verdict: "improves" when the whole interval lies on
    the better side of 0, "worsens" when on the worse side, else "no clear change". A measure
    that is the same for every seed (one run, e.g. the hyper-GAN's fixed training image) gets
    no interval and a verdict marked "(one run)"."""
    from scipy import stats

    learners = LEARNERS if learners is None else learners
    out = []
    for learner, measures in learners.items():
        g = rows[rows["learner"] == learner]
        for col, better, label in measures:
            if col not in g.columns or g[col].isna().all():
                continue
            d = g[["K", "seed", col]].dropna()
            ks = sorted(d["K"].unique())
            if len(ks) < 2:
                continue
            per_seed = {s: _slope(e["K"].to_numpy(), e[col].to_numpy())
                        for s, e in d.groupby("seed")}
            slopes = np.array([v for v in per_seed.values() if np.isfinite(v)])
            one_run = len(np.unique(np.round(slopes, 12))) == 1 or len(slopes) < 2
            mean = float(slopes.mean())
            if one_run:
                lo = hi = float("nan")
            else:
                half = stats.t.ppf((1 + level) / 2, len(slopes) - 1) * slopes.std(ddof=1) \
                    / np.sqrt(len(slopes))
                lo, hi = mean - half, mean + half
            sign = -1.0 if better == "lower" else 1.0          # gain = sign · slope
            if one_run:
                flat = abs(mean) <= 1e-9 * max(1.0, float(d[col].abs().mean()))
                verdict = ("no change" if flat else "improves" if sign * mean > 0
                           else "worsens") + " (one run)"
            else:
                gain_lo, gain_hi = sorted((sign * lo, sign * hi))
                verdict = "improves" if gain_lo > 0 else "worsens" if gain_hi < 0 \
                    else "no clear change"
            out.append({"learner": learner, "measure": label, "better": better,
                        "K range": f"{ks[0]}–{ks[-1]}",
                        "replicates": 1 if one_run else len(slopes),
                        "at smallest K": float(d[d["K"] == ks[0]][col].mean()),
                        "at largest K": float(d[d["K"] == ks[-1]][col].mean()),
                        "slope per doubling": mean, "ci low": lo, "ci high": hi,
                        "verdict": verdict})
    return pd.DataFrame(out)


def d_steps_probe(profile: Any, split: LongTailSplit, classifier: torch.nn.Module,
                  steps: Sequence[int] = (1, 2, 5), *, transform: str = "bg", seed: int = 0,
                  munit_iters: int | None = None, unseen: ImageSet | None = None,
                  device: Any = None) -> pd.DataFrame:
    """The inner problem's depth: MUNITs with ``d_steps`` discriminator steps per generator step
    (equal generator steps), each scored by its style read-out R² and swap fidelity (on
    ``unseen`` clean images when given, else the split's clean test images) and by the content
    it keeps (``classifier``'s accuracy on swaps of the transformed training images against on
    the images themselves). One row per ``d_steps``."""
    over = {} if munit_iters is None else {"iters": int(munit_iters)}
    clean = unseen if unseen is not None else split.test_clean
    rows = []
    for d in steps:
        munit = train_augmenter(split, profile, seed, device, d_steps=int(d), **over)
        m = munit_measures(munit, clean, transform, seed)
        kept = content_kept(munit, classifier, split.train, seed=seed)
        rows.append({"d_steps": int(d), "style R²": m["r2"], "fidelity": m["fidelity"],
                     "acc real": kept["acc real"], "acc swapped": kept["acc translated"],
                     "minutes": munit.timings.get("total_seconds", float("nan")) / 60})
    return pd.DataFrame(rows)
