"""Long-tailed training sets as GIT builds them (REFERENCE §6).

A balanced dataset is cut down class by class: the class of rank ``k`` (1 = head) keeps
``size_k`` images, with

- **zipf** (GIT, K49): ``size_k = max(⌊n_max · k^−α⌋, n_min)``; K49 uses n_max 4800, α 2, n_min 5,
  giving 4800, 1200, 533, 300, 192, 133, … with 21 of 49 classes at 5 (7,822 images);
- **exponential** (CIFAR-LT, Cao et al. 2019): ``n_i = ⌊n_max · ρ^(−i/(C−1))⌋``, i = 0..C−1.

Which class gets which rank is a seeded permutation; GIT's 30 "instances" differ only in that
permutation (the official shuffle is unseeded; here instance ``i`` is reproducible). Before the
cut, ``n_test_per_class`` images per class are held out as a balanced test split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from ..errors import ConfigError, DataError
from .mnist_like import ImageSet

__all__ = ["zipf_sizes", "exponential_sizes", "LongTailSpec", "LONGTAIL_PRESETS",
           "get_longtail_spec", "class_rank_permutation", "make_long_tailed",
           "class_balanced_weights", "class_balanced_sampler"]

# Relative slack so that a size that is an integer in exact arithmetic (4800 / 20² = 12) is not
# floored to the integer below by a rounding error of the float computation.
_EPS = 1e-9
# Tag mixed into the within-class shuffle's seed so it never shares a stream with the ranks'.
_SHUFFLE_TAG = 0x5EED


def _floor(v: float) -> int:
    return int(math.floor(v * (1.0 + _EPS) + _EPS))


def zipf_sizes(n_classes: int, n_max: int, alpha: float, n_min: int) -> list[int]:
    """Images of the class of rank k = 1..C: ``max(⌊n_max · k^−alpha⌋, n_min)`` (REFERENCE §6).

    Equal to GIT's ``max(int(n_max · zipf.pmf(k, α) / zipf.pmf(1, α)), n_min)``.
    """
    if n_classes < 1 or n_max < 1 or n_min < 0 or alpha < 0:
        raise ConfigError(f"zipf_sizes: need n_classes >= 1, n_max >= 1, n_min >= 0, alpha >= 0; "
                          f"got n_classes={n_classes}, n_max={n_max}, n_min={n_min}, "
                          f"alpha={alpha}.")
    return [max(_floor(n_max / k ** alpha), n_min) for k in range(1, n_classes + 1)]


def exponential_sizes(n_classes: int, n_max: int, imbalance: float) -> list[int]:
    """CIFAR-LT profile: ``⌊n_max · imbalance^(−i/(C−1))⌋`` for i = 0..C−1 (head first)."""
    if n_classes < 1 or n_max < 1 or imbalance < 1:
        raise ConfigError(f"exponential_sizes: need n_classes >= 1, n_max >= 1, imbalance >= 1; "
                          f"got n_classes={n_classes}, n_max={n_max}, imbalance={imbalance}.")
    if n_classes == 1:
        return [int(n_max)]
    return [_floor(n_max * imbalance ** (-i / (n_classes - 1))) for i in range(n_classes)]


@dataclass(frozen=True)
class LongTailSpec:
    """How to cut a balanced dataset into a long-tailed train split plus a balanced test split."""
    profile: str = "zipf"          # "zipf" (GIT K49) or "exponential" (CIFAR-LT)
    n_max: int = 4800              # images of the head class (rank 1)
    alpha: float = 2.0             # zipf exponent (profile "zipf" only)
    imbalance: float = 100.0       # head / tail size ratio ρ (profile "exponential" only)
    n_min: int = 5                 # floor on any class's size (both profiles)
    n_test_per_class: int = 0      # images per class held out first as a balanced test split
    allow_repeat: bool = False     # cycle a short class's images instead of raising (GIT's K49
                                   # script does this: image i % n_available)

    def __post_init__(self) -> None:
        if self.profile not in ("zipf", "exponential"):
            raise ConfigError(f"LongTailSpec.profile must be 'zipf' or 'exponential', got "
                              f"{self.profile!r}.")
        if self.n_test_per_class < 0:
            raise ConfigError(f"LongTailSpec.n_test_per_class must be >= 0, got "
                              f"{self.n_test_per_class}.")

    def sizes(self, n_classes: int) -> list[int]:
        """Train images per rank (index 0 = head class)."""
        if self.profile == "zipf":
            return zipf_sizes(n_classes, self.n_max, self.alpha, self.n_min)
        return [max(s, self.n_min) for s in exponential_sizes(n_classes, self.n_max,
                                                              self.imbalance)]


LONGTAIL_PRESETS: dict[str, LongTailSpec] = {
    # GIT's K49-LT (§6): 4800/k², floor 5. The test split is K49's own test set (load it with
    # split="test"), and K49's train classes are themselves unequal, so a small class drawn as
    # head is cycled through, as the official script does.
    "k49": LongTailSpec("zipf", n_max=4800, alpha=2.0, n_min=5, n_test_per_class=0,
                        allow_repeat=True),
    # CIFAR-LT (ρ = 100); the balanced official test set (1000 / 100 per class) is used as is.
    "cifar10-lt": LongTailSpec("exponential", n_max=5000, imbalance=100.0, n_min=1),
    "cifar100-lt": LongTailSpec("exponential", n_max=500, imbalance=100.0, n_min=1),
    # scikit-learn digits: the smallest class has 174 images; 30 test + 140 head = 170 fits every
    # class. α 1.5 keeps a visible tail on 10 classes: 140, 49, 26, 17, 12, 9, 7, 6, 5, 5
    # (imbalance 28).
    "digits": LongTailSpec("zipf", n_max=140, alpha=1.5, n_min=5, n_test_per_class=30),
    # animal silhouettes (1000 per class): 200 test + 800 head = 1000 exactly; α 2 as in GIT:
    # 800, 200, 88, 50, 32, 22, 16, 12, 9, 8 (imbalance 100, like CIFAR-LT).
    "animals": LongTailSpec("zipf", n_max=800, alpha=2.0, n_min=5, n_test_per_class=200),
}


# a dataset's name → its preset, where they differ (CIFAR's cut is named after the benchmark)
PRESET_OF_DATASET = {"cifar10": "cifar10-lt", "cifar100": "cifar100-lt"}


def get_longtail_spec(name: str) -> LongTailSpec:
    """The named preset of :data:`LONGTAIL_PRESETS`, or a dataset's preset
    (:data:`PRESET_OF_DATASET`: "cifar10" → "cifar10-lt")."""
    try:
        return LONGTAIL_PRESETS[PRESET_OF_DATASET.get(name, name)]
    except KeyError:
        raise ConfigError(f"Unknown long-tail preset {name!r}; choose one of "
                          f"{sorted(LONGTAIL_PRESETS)}.") from None


def class_rank_permutation(n_classes: int, instance: int, seed: int = 0) -> np.ndarray:
    """Which class gets which rank in long-tail instance ``instance``: rank r → class ``perm[r]``.

    Seeded by ``np.random.default_rng([seed, instance])``: reproducible, and different for each
    instance (REFERENCE §6: GIT's 30 instances differ only in this assignment).
    """
    if n_classes < 1 or instance < 0 or seed < 0:
        raise ConfigError(f"class_rank_permutation: need n_classes >= 1, instance >= 0, seed >= 0;"
                          f" got n_classes={n_classes}, instance={instance}, seed={seed}.")
    return np.random.default_rng([seed, instance]).permutation(n_classes).astype(np.int64)


def make_long_tailed(dataset: ImageSet, spec: LongTailSpec | str, instance: int, seed: int = 0
                     ) -> tuple[ImageSet, ImageSet, list[int]]:
    """Cut ``dataset`` into a long-tailed train split and a balanced test split.

    Per class c, its images are shuffled with a generator seeded by (``seed``, c) only, so the
    test split is the same for every instance. The first ``spec.n_test_per_class`` go to the test
    split, the next ``size[rank of c]`` to train (rank from :func:`class_rank_permutation`).

    Returns:
        (train, test, sizes_per_class): both splits sorted by class; ``sizes_per_class[c]`` is the
        number of train images of class c. ``dataset`` is never modified.

    Raises:
        DataError: a class has fewer images than ``n_test_per_class`` + its train size (and
            ``spec.allow_repeat`` is off).
    """
    if isinstance(spec, str):
        spec = get_longtail_spec(spec)
    C = dataset.n_classes
    by_rank = spec.sizes(C)
    perm = class_rank_permutation(C, instance, seed)
    sizes_per_class = [0] * C
    for r, c in enumerate(perm):
        sizes_per_class[int(c)] = by_rank[r]

    labels = dataset.labels.cpu().numpy()
    n_test = spec.n_test_per_class
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for c in range(C):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.random.default_rng([seed, _SHUFFLE_TAG, c]).permutation(len(idx))]
        n_train = sizes_per_class[c]
        need = n_test + n_train
        if len(idx) < need and not (spec.allow_repeat and len(idx) > n_test):
            rank = int(np.flatnonzero(perm == c)[0]) + 1
            raise DataError(
                f"make_long_tailed({dataset.name!r}, instance={instance}): class {c} "
                f"({dataset.classes[c]!r}, rank {rank}) has {len(idx)} images but needs {need} "
                f"({n_test} test + {n_train} train). Lower LongTailSpec.n_max or "
                f"LongTailSpec.n_test_per_class, or set allow_repeat=True to cycle its images.")
        test_idx.append(idx[:n_test])
        rest = idx[n_test:]
        train_idx.append(rest[np.arange(n_train) % len(rest)] if n_train else rest[:0])

    def split(parts: list[np.ndarray], suffix: str) -> ImageSet:
        index = torch.from_numpy(np.concatenate(parts).astype(np.int64))
        return dataset.subset(index, name=f"{dataset.name}-lt{instance}-{suffix}")

    return split(train_idx, "train"), split(test_idx, "test"), sizes_per_class


def class_balanced_weights(labels: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """Per-sample weights ``1 / n_{y_i}`` (``(N,)`` float64): each class gets equal total mass."""
    labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
    if labels.dim() != 1 or labels.numel() == 0:
        raise DataError(f"class_balanced_weights: labels must be a non-empty 1-D tensor, got shape "
                        f"{tuple(labels.shape)}.")
    counts = torch.bincount(labels, minlength=n_classes or 0).to(torch.float64)   # (C,)
    return 1.0 / counts[labels]                                                    # (N,)


def class_balanced_sampler(labels: torch.Tensor, num_samples: int | None = None,
                           generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """A sampler drawing (with replacement) classes uniformly, then an image within the class.

    Used for class-balanced resampling and DRS (REFERENCE §6). ``num_samples`` defaults to
    ``len(labels)`` (one "epoch").
    """
    weights = class_balanced_weights(labels)
    n = len(weights) if num_samples is None else int(num_samples)
    return WeightedRandomSampler(weights, num_samples=n, replacement=True, generator=generator)
