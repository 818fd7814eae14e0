"""Sweeps over datasets × transforms × train rules × long-tail instances → one tidy table.

GIT's experiment (Zhou et al., ICLR 2022, Sec. 3–4; REFERENCE §6), for each cell of the grid:

1. cut a long-tailed train split and a balanced test split from the dataset; instance ``i``
   only changes which class gets which rank (seeded :func:`class_rank_permutation`);
2. apply the nuisance transform once to every stored train and test image (GIT's setting: the
   nuisance is part of the data);
3. train a classifier with the train rule (ERM, resampling, DRS, reweighting, DRW), and, for
   reference, the *oracle* of that rule: the same rule on the clean images with the true
   transform applied on the fly, fresh parameters for every batch (GIT's upper bound: CE+DRS is
   bounded by CE+DRS+oracle, not by an ERM oracle). Its rows are named ``"<rule>+oracle"``
   (:func:`oracle_name`), e.g. ``"drs+oracle"``; and, with ``git=(rules)``, the same rule with
   GIT's augmentation — half of every batch from the first lr step translated by a single-domain
   MUNIT trained on this split's transformed training images (:func:`train_augmenter`; Zhou et
   al. Sec. 4), rows ``"<rule>+git"`` (:func:`git_name`), column ``git=True``;
4. evaluate accuracy on the transformed test split, and eKLD per class on the *clean* test
   images (x clean, x' = T(x) — the pairing of :func:`mil_core.metrics.ekld`), with the
   confidence summaries that eKLD depends on (entropy and largest probability of p(·|x) and
   p(·|x'), accuracy on x and x'; :data:`mil_core.metrics.ekld.CONFIDENCE_COLUMNS`).

:func:`run_sweep` returns one row per (dataset, transform, instance, rule, class): the class's
training size and rank, its eKLD with a bootstrap CI, argmax consistency, the confidence
summaries and test accuracy, and the run's accuracy and balanced accuracy — the tidy format
seaborn plots directly (``train_rule`` and ``oracle`` split a rule name such as
``"drs+oracle"`` for ``hue`` / ``style``). :func:`trend_table` summarises each (dataset,
transform, rule) by the rank correlation between log class size and eKLD (negative: small
classes are less invariant).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.longtail import get_longtail_spec, make_long_tailed
from ..data.mnist_like import FILE_DATASETS, ImageSet, load_git_dataset
from ..data.nuisance import get_transform, to_float, transform_dataset
from ..errors import ConfigError, DataError
from ..metrics.ekld import ekld
from ..models.munit import MUNIT, MUNITConfig
from ..models.munit_train import train_munit
from ..profiles import Profile, get_profile
from ..runtime import progress
from .trainer import RULES, ClassifierConfig, evaluate, recompute_bn_stats, train_classifier

__all__ = ["LongTailSplit", "make_split", "run_sweep", "trend_table", "slope_table", "ORACLE",
           "BN_STATS", "EKLD_FLOOR", "oracle_name", "sweep_runs", "GIT", "git_name",
           "train_augmenter", "classifier_recipe", "munit_recipe"]

ORACLE = "oracle"   # the tag of the oracle rows: rule "<train rule>+oracle", column oracle=True
GIT = "git"         # the tag of GIT's rows: rule "<train rule>+git", column git=True
BN_STATS = ("running", "instance")   # run_sweep(bn_stats=...): see its docstring
EKLD_FLOOR = 1e-6   # eKLD below this is taken as this before a logarithm (slope_table)


@dataclass
class LongTailSplit:
    """One dataset × transform × instance: clean and transformed splits and the class sizes."""
    train_clean: ImageSet      # long-tailed train split, no nuisance
    train: ImageSet            # the same images with one stored transform each
    test_clean: ImageSet       # balanced held-out split, no nuisance (eKLD's images)
    test: ImageSet             # the same with one stored transform each (accuracy)
    sizes: list[int]           # training images of class c
    ranks: list[int]           # rank of class c (1 = head)
    dataset: str = ""          # the dataset's name ("digits", "cifar10", …): its recipes


def make_split(dataset: str | ImageSet, transform: str, instance: int, seed: int = 0, *,
               root: str | None = None, test: ImageSet | None = None) -> LongTailSplit:
    """The long-tailed splits of ``dataset`` (a preset name of :data:`LONGTAIL_PRESETS` or an
    ImageSet whose ``name`` is one) for ``transform`` and ``instance`` (REFERENCE §6).

    Datasets read from files (K49, CIFAR-10/100: :data:`~mil_core.data.mnist_like.FILE_DATASETS`)
    are found under ``root``. Their presets hold out no test images: the balanced test split is
    the dataset's official one, ``test`` when given, else read from ``root`` (split "test").
    """
    if isinstance(dataset, str):
        ds = load_git_dataset(dataset, **({"root": root} if dataset in FILE_DATASETS else {}))
    else:
        ds = dataset
    get_transform(transform)                                        # fail early on a typo
    spec = get_longtail_spec(ds.name)
    train, test_cut, sizes = make_long_tailed(ds, spec, instance, seed)
    if spec.n_test_per_class > 0:
        test = test_cut
    elif test is None:
        if root is None or ds.name not in FILE_DATASETS:
            raise DataError(f"make_split({ds.name!r}): its long-tail preset holds out no test "
                            "images (the official test set is used); pass test= (the "
                            f"dataset's test split) or root= (the folder of its files)")
        test = load_git_dataset(ds.name, root=root, split="test")
    if test.classes != ds.classes or test.images.shape[1:] != ds.images.shape[1:]:
        raise DataError(f"make_split({ds.name!r}): test set {test.name!r} "
                        f"({test.n_classes} classes, {tuple(test.images.shape[1:])}) does not "
                        f"match the dataset ({ds.n_classes}, {tuple(ds.images.shape[1:])})")
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
    return LongTailSplit(train, tr, test, te, list(sizes), ranks, ds.name)


# What the papers' recipes change for CIFAR-LT against the K49 defaults (REFERENCE §6): lr steps
# at 160/180 of 200 epochs, ResNet-32, random crop + flip; MUNIT 140k iterations. Sizes and step
# counts only at the ``paper`` profile; the code path (crop and flip, the step fractions) in all.
_CIFAR = ("cifar10", "cifar100")


def classifier_recipe(dataset: str, profile: str | Profile) -> dict[str, Any]:
    """:class:`ClassifierConfig` overrides of ``dataset``'s recipe at ``profile`` (empty for the
    K49-like gray datasets, whose recipe is the default)."""
    if dataset not in _CIFAR:
        return {}
    out: dict[str, Any] = {"lr_steps": (0.8, 0.9), "crop_flip": True}
    if get_profile(profile).name == "paper":
        out.update(model="resnet32", epochs=200)
    return out


def munit_recipe(dataset: str, profile: str | Profile) -> dict[str, Any]:
    """:class:`MUNITConfig` overrides of ``dataset``'s recipe at ``profile`` (CIFAR at ``paper``:
    GIT's 140k iterations, the checkpoint its classifier loads)."""
    if dataset in _CIFAR and get_profile(profile).name == "paper":
        return {"iters": 140_000}
    return {}


def oracle_name(rule: str) -> str:
    """The rule name of the oracle of train rule ``rule`` in a sweep table: ``"drs+oracle"``."""
    return f"{rule}+{ORACLE}"


def git_name(rule: str) -> str:
    """The rule name of train rule ``rule`` with GIT's augmentation: ``"drs+git"``."""
    return f"{rule}+{GIT}"


def train_augmenter(split: LongTailSplit, profile: str | Profile, seed: int = 0,
                    device: str | torch.device | None = None, show_progress: bool = False,
                    **munit_overrides: Any) -> MUNIT:
    """GIT's generative model for one split: a single-domain MUNIT
    (:func:`mil_core.models.munit_train.train_munit`, the profile's config) trained on the
    split's *transformed* long-tailed training images, both sides class-balanced."""
    x = to_float(split.train.images) * 2 - 1                         # (N, C, H, W) in [-1, 1]
    cfg = MUNITConfig.from_profile(profile, **{"in_channels": split.train.channels,
                                               "image_size": split.train.image_size[0],
                                               **munit_recipe(split.dataset, profile),
                                               **munit_overrides})
    return train_munit(x, split.train.labels, cfg, seed=seed, device=device,
                       show_progress=show_progress)


def sweep_runs(rules: Sequence[str], oracle: bool | Sequence[str] = True,
               oracle_rule: str | None = None) -> list[tuple[str, str, bool]]:
    """The classifiers :func:`run_sweep` trains per cell: ``(name, train rule, oracle?)``.

    ``rules`` first, in order; then one oracle per rule of ``rules`` (``oracle=True``), per rule
    of the sequence ``oracle`` (any rules of :data:`~mil_core.classify.trainer.RULES`), or none
    (``oracle=False``). ``oracle_rule`` is the old single-oracle argument: ``oracle_rule="erm"``
    means ``oracle=("erm",)``. Raises :class:`ConfigError` on an unknown or repeated rule.
    """
    rules = list(rules)
    if isinstance(oracle, str):
        raise ConfigError(f"run_sweep: oracle must be True, False or a sequence of rules, got "
                          f"the string {oracle!r}; write oracle=({oracle!r},)")
    if oracle_rule is not None:
        if not oracle:
            raise ConfigError("run_sweep: oracle_rule was given with oracle=False; drop one")
        oracle = (oracle_rule,)
    oracle_rules = list(rules if oracle is True else (oracle or ()))
    bad = [r for r in rules + oracle_rules if r not in RULES]
    if bad:
        raise ConfigError(f"run_sweep: unknown rule(s) {bad}; choose from {RULES} (oracles: "
                          "oracle=True for one per rule, or a sequence of rules)")
    for what, names in (("rules", rules), ("oracle", oracle_rules)):
        if len(set(names)) != len(names):
            raise ConfigError(f"run_sweep: {what} repeats a rule: {names}")
    return [(r, r, False) for r in rules] + [(oracle_name(r), r, True) for r in oracle_rules]


def run_sweep(profile: str | Profile, *, datasets: Sequence[str] | None = None,
              transforms: Sequence[str] = ("rot", "bg", "dil"),
              rules: Sequence[str] = ("erm", "resample", "drs", "reweight", "drw"),
              oracle: bool | Sequence[str] = True, oracle_rule: str | None = None,
              instances: int | None = None, loss: str = "ce", seed: int = 0,
              bn_stats: str | Sequence[str] = "running",
              git: Sequence[str] = (), git_fraction: float = 0.5,
              augmenters: dict[tuple[str, str, int], Any] | None = None,
              data_root: str | None = None,
              device: str | torch.device | None = None,
              show_progress: bool = True, **config_overrides: Any) -> pd.DataFrame:
    """Train and measure every cell of the grid; one row per class (see the module docstring).

    ``profile`` gives the datasets (``git.datasets``), epochs, batch size, classifier, the number
    of instances (``git.n_instances``) and the eKLD protocol (``git.ekld_images_per_class`` ×
    ``git.ekld_transforms``); arguments override them. ``oracle``: ``True`` trains the oracle of
    every rule in ``rules`` (``"erm+oracle"``, ``"drs+oracle"``, …), a sequence of rules trains
    the oracles of those only (``oracle=("erm", "drs")``: the paper's CE and CE+DRS bounds),
    ``False`` none (:func:`sweep_runs`). ``config_overrides`` go to :class:`ClassifierConfig`
    (not ``rule`` / ``oracle`` / ``seed``, which the sweep sets). Instance ``i`` trains with
    seed ``seed + i``; a rule and its oracle share the seed, hence the init and the batch
    order (the oracle's transform parameters come from a stream of their own).

    ``bn_stats``: ``"running"`` (Cao et al.'s recipe) evaluates the BatchNorm running
    statistics as training left them; ``"instance"`` re-estimates them first (on a copy of the
    model) from one epoch of the run's training images in instance-balanced order (for an
    oracle: the clean images with the transform on the fly),
    :func:`~mil_core.classify.trainer.recompute_bn_stats`, and re-evaluates; a sequence, e.g.
    ``("running", "instance")``, measures every trained classifier both ways (rows for each;
    the column ``bn_stats`` says which). DRS moves those statistics to the class mix of
    balanced batches at any lr, after weights were trained under the instance-balanced mix,
    which can cost it more balanced accuracy than its re-balanced weights gain (trainer
    docstring).

    ``git``: train rules to run once more with GIT (``git=("drs",)``: the paper's CE+DRS+GIT),
    replacing ``git_fraction`` of every batch from the first lr step; their augmenter for the
    cell ``(dataset, transform, instance)`` is ``augmenters[cell]`` when given (e.g. MUNITs a
    notebook trained and inspected first), else :func:`train_augmenter` with seed
    ``seed + instance``. Instance ``i``'s GIT run shares the seed of its rule.

    ``data_root``: the folder of the file datasets (K49, CIFAR-10/100; their official test sets
    are the balanced splits, :func:`make_split`). CIFAR cells use CIFAR's recipe
    (:func:`classifier_recipe`) and transform ``"identity"`` (natural nuisances only), whose eKLD
    is 0 by construction and is measured with one draw per image.
    """
    prof = get_profile(profile)
    datasets = list(prof.git.datasets if datasets is None else datasets)
    n_inst = prof.git.n_instances if instances is None else int(instances)
    if n_inst < 1:
        raise ConfigError(f"run_sweep: instances must be >= 1, got {instances!r}")
    runs = [(*r, False) for r in sweep_runs(rules, oracle, oracle_rule)]
    git = list(git)
    bad = [r for r in git if r not in RULES]
    if bad or len(set(git)) != len(git):
        raise ConfigError(f"run_sweep: git must be distinct rules of {RULES}, got {git}")
    runs += [(git_name(r), r, False, True) for r in git]
    bn_list = [bn_stats] if isinstance(bn_stats, str) else list(bn_stats)
    if not bn_list or any(b not in BN_STATS for b in bn_list) or len(set(bn_list)) < len(bn_list):
        raise ConfigError(f"run_sweep: bn_stats must be one of {BN_STATS} or a sequence of "
                          f"them, got {bn_stats!r}")
    taken = sorted({"rule", "oracle", "seed"} & set(config_overrides))
    if taken:
        raise ConfigError(f"run_sweep: {taken} are set by the sweep (rules=, oracle=, seed=); "
                          "do not pass them as ClassifierConfig overrides")
    for t in transforms:
        get_transform(t)
    for d in datasets:                                               # fail before any data
        ClassifierConfig.from_profile(prof, loss=loss,
                                      **{**classifier_recipe(d, prof), **config_overrides})
        if d in FILE_DATASETS and data_root is None:
            raise DataError(f"run_sweep: dataset {d!r} is read from files; pass data_root= "
                            "(the folder holding them)")
    jobs = [(d, t, i) for d in datasets for t in transforms for i in range(n_inst)]
    bar = progress(jobs, total=len(jobs), desc="sweep") if show_progress else jobs
    frames: list[pd.DataFrame] = []
    cache: dict[str, ImageSet] = {}
    official: dict[str, ImageSet] = {}
    for d, t, i in bar:
        if d not in cache:
            cache[d] = load_git_dataset(d, **({"root": data_root} if d in FILE_DATASETS
                                              else {}))
            if get_longtail_spec(d).n_test_per_class == 0:            # the official test set
                official[d] = load_git_dataset(d, root=data_root, split="test")
        split = make_split(cache[d], t, i, seed, root=data_root, test=official.get(d))
        augmenter = None
        if git:
            augmenter = (augmenters or {}).get((d, t, i))
            if augmenter is None:
                augmenter = train_augmenter(split, prof, int(seed) + i, device)
        for name, rule, is_oracle, is_git in runs:
            cfg = ClassifierConfig.from_profile(
                prof, **{**classifier_recipe(d, prof),
                         "rule": rule, "loss": loss, "seed": int(seed) + i, "eval_every": 0,
                         "oracle": t if is_oracle else None,
                         "git_fraction": git_fraction if is_git else 0.0, **config_overrides})
            train_set = split.train_clean if is_oracle else split.train
            run = train_classifier(train_set, split.test, cfg, device=device,
                                   augmenter=augmenter if is_git else None)
            for bn in bn_list:
                model, metrics = run.model, {"acc": run.acc, "balanced_acc": run.balanced_acc,
                                             "per_class_acc": run.per_class_acc}
                if bn == "instance":
                    model = recompute_bn_stats(
                        copy.deepcopy(run.model), train_set, balanced=False,
                        batch_size=cfg.batch_size, transform=cfg.oracle,
                        generator=torch.Generator().manual_seed(int(seed) + i), device=device)
                    metrics = evaluate(model, split.test, device=device)
                frame = _measure(model, split, t, prof, int(seed) + i, device)
                for col, value in (("dataset", d), ("transform", t), ("instance", i),
                                   ("rule", name), ("train_rule", rule), ("oracle", is_oracle),
                                   ("git", is_git), ("bn_stats", bn))[::-1]:
                    frame.insert(0, col, value)
                frame["class_acc"] = metrics["per_class_acc"]
                frame["acc"] = metrics["acc"]
                frame["balanced_acc"] = metrics["balanced_acc"]
                frame["loss"] = loss
                frame["seconds"] = run.timings["seconds"]
                frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["class_size"] = table["class_size"].astype("int64")
    return table


def _measure(model: torch.nn.Module, split: LongTailSplit, transform: str, prof: Profile,
             seed: int, device: str | torch.device | None) -> pd.DataFrame:
    """eKLD and the confidence summaries of ``model`` per class on the clean test images."""
    res = ekld(model, split.test_clean, transform,
               images_per_class=prof.git.ekld_images_per_class,
               n_transforms=1 if transform == "identity" else prof.git.ekld_transforms,
               generator=torch.Generator().manual_seed(seed), class_sizes=split.sizes,
               device=device)
    frame = res.to_frame(seed=seed)
    frame["class_rank"] = [split.ranks[c] for c in frame["class_index"]]
    return frame


def trend_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, transform, rule): mean over instances of the Spearman correlation between
    log class size and eKLD, the eKLD of the smallest and of the largest class, their ratio,
    and the mean accuracy / balanced accuracy. A negative correlation and a ratio above 1 mean
    that rare classes are less invariant (GIT's finding). A table with a ``bn_stats`` column
    (:func:`run_sweep` writes one) is also split by it, and the result has that column.

    When the table has them (:func:`run_sweep` writes them), the same smallest / largest class
    also gets its test accuracy (``class_acc``) and its mean predictive entropy on clean images
    (``entropy_clean``): a small tail eKLD with a high tail entropy and zero tail accuracy is a
    classifier that never predicts the tail, not an invariant one.
    """
    extra = [(col, label) for col, label in (("class_acc", "acc"), ("entropy_clean", "entropy"))
             if col in table.columns]
    keys = ["dataset", "transform", "rule"] + (["bn_stats"] if "bn_stats" in table.columns
                                               else [])
    rows = []
    for key, g in table.groupby(keys, sort=False):
        d, t, r = key[:3]
        rhos, small, large = [], [], []
        small_x: dict[str, list[float]] = {col: [] for col, _ in extra}
        large_x: dict[str, list[float]] = {col: [] for col, _ in extra}
        for _, gi in g.groupby("instance"):
            rho = _spearman(np.log(gi["class_size"].to_numpy(float)), gi["ekld"].to_numpy(float))
            rhos.append(rho)
            i_small, i_large = gi["class_size"].idxmin(), gi["class_size"].idxmax()
            small.append(gi.loc[i_small, "ekld"])
            large.append(gi.loc[i_large, "ekld"])
            for col, _ in extra:
                small_x[col].append(gi.loc[i_small, col])
                large_x[col].append(gi.loc[i_large, col])
        s, lg = float(np.mean(small)), float(np.mean(large))
        runs = g.drop_duplicates("instance")
        row = {"dataset": d, "transform": t, "rule": r,
               **({"bn_stats": key[3]} if len(keys) > 3 else {}),
               "spearman(log size, eKLD)": (float(np.nanmean(rhos))
                                            if np.isfinite(rhos).any() else math.nan),
               "eKLD smallest class": s, "eKLD largest class": lg,
               "smallest / largest": s / lg if lg > 0 else math.inf,
               "acc": float(runs["acc"].mean()),
               "balanced acc": float(runs["balanced_acc"].mean())}
        for col, label in extra:
            row[f"{label} smallest class"] = float(np.nanmean(small_x[col]))
            row[f"{label} largest class"] = float(np.nanmean(large_x[col]))
        rows.append(row)
    return pd.DataFrame(rows)


def slope_table(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per (dataset, transform, rule[, bn_stats]): the least-squares slope of log10 eKLD against
    log10 class size over every (instance, class) point, with its ``level`` confidence interval
    (Student t, n − 2 degrees of freedom). The blog's figure in one number: eKLD ∝ size^slope,
    so a slope of −1 means ten times more images, ten times more invariant. eKLD values below
    :data:`EKLD_FLOOR` are raised to it before the logarithm.

    Columns: ``slope``, ``ci low``, ``ci high``, ``intercept`` (log10 eKLD at one image),
    ``points``, and ``falls`` — True when the whole interval is below 0 (the curve falls with
    class size at that confidence), False when it is not, NaN for fewer than three points.
    """
    from scipy import stats                    # a dependency of scikit-learn, always present

    if not 0 < level < 1:
        raise ConfigError(f"slope_table: level must be in (0, 1), got {level!r}")
    missing = {"dataset", "transform", "rule", "class_size", "ekld"} - set(table.columns)
    if missing:
        raise ConfigError(f"slope_table: the table lacks the column(s) {sorted(missing)}; pass "
                          f"run_sweep's table")
    keys = ["dataset", "transform", "rule"] + (["bn_stats"] if "bn_stats" in table.columns
                                               else [])
    rows = []
    for key, g in table.groupby(keys, sort=False):
        x = np.log10(g["class_size"].to_numpy(float))
        y = np.log10(np.maximum(g["ekld"].to_numpy(float), EKLD_FLOOR))
        row = dict(zip(keys, key), points=len(x))
        if len(x) < 3 or np.ptp(x) == 0:
            row.update(slope=math.nan, **{"ci low": math.nan, "ci high": math.nan},
                       intercept=math.nan, falls=math.nan)
        else:
            fit = stats.linregress(x, y)
            half = stats.t.ppf(0.5 + level / 2, len(x) - 2) * fit.stderr
            row.update(slope=float(fit.slope), **{"ci low": float(fit.slope - half),
                                                  "ci high": float(fit.slope + half)},
                       intercept=float(fit.intercept), falls=bool(fit.slope + half < 0))
        rows.append(row)
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
