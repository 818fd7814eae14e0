"""Train and evaluate GIT's long-tail classifiers (REFERENCE §6).

The recipe is Cao et al.'s (2019) LDAM-DRW code, which GIT builds on: SGD (lr 0.1, momentum 0.9,
weight decay 2e-4, batch 128), a linear warm-up over the first 5 epochs, then the learning rate
times 0.01 and 1e-4 of its base value at two steps (K49: epochs 30 and 40 of 50, CIFAR: 160 and
180 of 200). The learning rate is set once per epoch, as in that code.

Train rules (what changes at the first lr step is Cao et al.'s "deferred" schedule):

- ``erm``      — uniform batches, unweighted loss;
- ``resample`` — a class-balanced sampler (:func:`~mil_core.data.longtail.class_balanced_sampler`)
  every epoch: N draws with replacement, sample weight ∝ 1/n_c, so every class is equally
  likely (N = training images, the length of an ERM epoch);
- ``drs``      — uniform batches until the first lr step, class-balanced sampling from it on;
- ``reweight`` — effective-number class weights (β = 0.9999) in the loss from the start;
- ``drw``      — the same weights only from the first lr step.

The deferred rules switch at :func:`switch_epoch` (the first lr step) and therefore act only at
``lr · lr_factors[0]`` (1e-3) and after it; the schedule runs on unchanged through the switch (the
lr is a pure function of the epoch, the optimizer and its momentum are never rebuilt). How much
they can do is set by the budget: :func:`schedule_phases` counts the SGD steps of every phase
(the ``cpu`` profile at batch 128: 9 steps at 1e-3 on the 276 digits, 30 on the 1,237 animal
silhouettes, then 3 epochs at 1e-5 in which the weights no longer move; K49: 620).

BatchNorm and the sampler: the running statistics follow the batches at any lr (momentum 0.1),
so after the DRS switch they become those of class-balanced batches within ~10 steps, while the
weights were trained for most of the run under the statistics of instance-balanced batches (on a
long tail, mostly the head class). The statistics depend on the class mix of the batch, not only
on the images (an ERM model's balanced accuracy also falls when they are re-estimated on the
balanced *test* split), and at 1e-3 the weights re-adapt to the new mix slowly (the train loss
jumps at the switch). On small long-tailed sets DRS's balanced accuracy can then fall below
ERM's although its weights are better: :func:`recompute_bn_stats` re-estimates the statistics
from the instance-balanced stream and tells the two apart. Cao et al.'s recipe keeps the running
statistics (the default here).

Losses: ``ce``, ``focal`` (γ = 1) and ``ldam`` (max_m 0.5, s 30; with a cosine classifier head, as
Cao et al.'s code sets ``use_norm=True`` for LDAM). ``oracle``: the name of a nuisance transform
(:mod:`mil_core.data.nuisance`) applied on the fly to every training batch with fresh parameters —
GIT's upper bound, where the true transform replaces the generative model.

GIT (Zhou et al. Sec. 4): with ``git_fraction`` > 0 and a trained generative model passed as
``train_classifier(..., augmenter=munit)`` (anything with ``translate(x, generator=...)`` on
images in [-1, 1], e.g. :class:`mil_core.models.munit.MUNIT`), from :func:`git_epoch` on — the
first lr step, where GIT's code switches it on (``delayed_munit``) — ``round(git_fraction · b)``
randomly chosen images of every batch of b are replaced by ``decode(content(x), s)``, s ~ N(0, I),
labels kept, generated without gradients in one batched call. With ``git_threshold`` = thr, a
chosen image of class c is replaced only with probability ``max((thr − n_c)/(thr − n_min), 0)``
(n_c its class's training images, n_min the smallest class's): generation for the small classes.

Images: the stored uint8 images become floats in [0, 1] (:func:`~mil_core.data.nuisance.to_float`);
the models map them to [-1, 1] themselves (:mod:`mil_core.models.classifiers`). No other data
augmentation is used, except CIFAR's random crop and flip when ``crop_flip`` is on
(:func:`crop_flip`, before the oracle's transform and GIT's translations).

Reproducibility: every random draw comes from explicit CPU ``torch.Generator`` objects derived from
``cfg.seed`` — one for the batch order and the sampler, one for the oracle's transform parameters
(so switching the oracle on does not change the batch order), and the weight init runs under
``torch.random.fork_rng`` with ``manual_seed``. A CPU run with one thread is bit-for-bit
reproducible. After every epoch the model, the optimizer, both generators and the history go to
``checkpoint_dir/classifier.safetensors`` (:mod:`mil_core.checkpoint`: atomic, never pickled);
``resume=True`` continues from there exactly as if never interrupted, and a checkpoint found
there without ``resume`` is only replaced with ``overwrite=True``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import OTHER_RUN_HINT, load_checkpoint, prepare_checkpoint_path, save_checkpoint
from ..data.longtail import class_balanced_sampler
from ..data.mnist_like import ImageSet
from ..data.nuisance import TRANSFORMS, get_transform, to_float
from ..errors import CheckpointError, ConfigError, DataError, TrainingError
from ..models.classifiers import CLASSIFIERS, make_classifier
from ..profiles import Profile, get_profile
from ..runtime import get_device, progress
from .losses import LOSSES, effective_number_weights, make_loss

__all__ = ["ClassifierConfig", "ClassifierRun", "RULES", "CHECKPOINT_NAME", "step_epochs",
           "warmup_length", "lr_at_epoch", "switch_epoch", "epoch_plan", "schedule_phases",
           "epoch_indices", "crop_flip", "git_epoch", "git_keep_probability", "git_augment", "train_classifier", "evaluate", "predict_proba",
           "recompute_bn_stats"]

RULES = ("erm", "resample", "drs", "reweight", "drw")
CHECKPOINT_NAME = "classifier.safetensors"   # written in ``checkpoint_dir`` after every epoch
_ORACLE_TAG = 0x0AC1E                        # mixed into the oracle generator's seed
_GIT_TAG = 0x617                             # mixed into the GIT augmentation's seed
_CROP_TAG = 0xC207                           # mixed into the crop-and-flip seed
_KIND = "classifier"                         # state["kind"] of the checkpoint
_STATE_VERSION = 1                           # state["version"]; newer ones are refused


@dataclass(frozen=True)
class ClassifierConfig:
    """One long-tail classification run (defaults: GIT's K49 recipe, REFERENCE §6)."""
    model: str = "resnet20"                      # "resnet20" (K49), "resnet32" (CIFAR), "smallcnn"
    epochs: int = 50                             # K49: 50; CIFAR: 200
    batch_size: int = 128                        # SGD batch size
    lr: float = 0.1                              # base learning rate
    momentum: float = 0.9                        # SGD momentum
    weight_decay: float = 2e-4                   # L2 penalty on every parameter
    warmup_epochs: int = 5                       # linear warm-up: lr·(e+1)/W in epoch e < W
                                                 # (clipped to the first lr step and to epochs)
    lr_steps: tuple[float, ...] = (0.6, 0.8)     # lr steps as fractions of epochs (K49: 30, 40)
    lr_factors: tuple[float, ...] = (0.01, 1e-4)  # lr = base·factor from each step on
    rule: str = "erm"                            # "erm", "resample", "drs", "reweight", "drw"
    loss: str = "ce"                             # "ce", "focal", "ldam"
    beta: float = 0.9999                         # effective-number β of "reweight" / "drw"
    focal_gamma: float = 1.0                     # focal exponent γ (Lin et al.; GIT: 1)
    ldam_max_m: float = 0.5                      # LDAM's largest margin (Cao et al.)
    ldam_s: float = 30.0                         # LDAM's logit scale (Cao et al.)
    oracle: str | None = None                    # nuisance applied to every training batch
                                                 # ("rot", "bg", "dil", "identity"), or None
    git_fraction: float = 0.0                    # GIT: share of each batch replaced by the
                                                 # augmenter's translations (GIT: 0.5; 0: off)
    git_threshold: int | None = None             # GIT's per-class keep rule thr (None: every
                                                 # class may be replaced)
    crop_flip: bool = False                      # CIFAR's standard augmentation (Cao et al.,
                                                 # GIT's CIFAR runs): 4-px zero-padded random
                                                 # 32×32 crop and horizontal flip per image
    eval_every: int = 1                          # test-set evaluation every k epochs (0: only
                                                 # after the last; the last is always evaluated)
    seed: int = 0                                # seeds init, batch order, sampler and oracle

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) \
                and not isinstance(v, bool) and math.isfinite(float(v))

        if self.model not in CLASSIFIERS:
            raise ConfigError(f"ClassifierConfig.model must be one of {', '.join(CLASSIFIERS)}, "
                              f"got {self.model!r}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not is_int(v) or v < 1:
                raise ConfigError(f"ClassifierConfig.{name} must be a positive integer, got {v!r}")
        for name in ("warmup_epochs", "eval_every", "seed"):
            v = getattr(self, name)
            if not is_int(v) or v < 0:
                raise ConfigError(f"ClassifierConfig.{name} must be an integer >= 0, got {v!r}")
        if not is_num(self.lr) or self.lr <= 0:
            raise ConfigError(f"ClassifierConfig.lr must be a positive number, got {self.lr!r}")
        if not is_num(self.momentum) or not 0 <= self.momentum < 1:
            raise ConfigError(f"ClassifierConfig.momentum must be in [0, 1), got "
                              f"{self.momentum!r}")
        if not is_num(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"ClassifierConfig.weight_decay must be >= 0, got "
                              f"{self.weight_decay!r}")
        steps, factors = tuple(self.lr_steps), tuple(self.lr_factors)
        if len(steps) != len(factors) or not all(is_num(s) and 0 < s <= 1 for s in steps) \
                or any(b <= a for a, b in zip(steps, steps[1:])) \
                or not all(is_num(f) and f > 0 for f in factors):
            raise ConfigError("ClassifierConfig.lr_steps must be increasing fractions in (0, 1] "
                              "and lr_factors as many positive numbers, got lr_steps="
                              f"{self.lr_steps!r}, lr_factors={self.lr_factors!r} (K49: (0.6, "
                              "0.8) and (0.01, 1e-4))")
        merged = [(a, b) for a, b in zip(steps, steps[1:])
                  if int(round(a * self.epochs)) == int(round(b * self.epochs)) < self.epochs]
        if merged:
            a, b = merged[0]
            raise ConfigError(f"ClassifierConfig.lr_steps {a} and {b} of {self.epochs} epochs "
                              f"both round to epoch {int(round(a * self.epochs))}, so the lr "
                              "phase between them (and with it the deferred DRS/DRW phase at "
                              "lr·lr_factors[0]) vanishes; use more epochs or steps further "
                              "apart")
        if self.rule not in RULES:
            raise ConfigError(f"ClassifierConfig.rule must be one of {', '.join(RULES)}, got "
                              f"{self.rule!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"ClassifierConfig.loss must be one of {', '.join(LOSSES)}, got "
                              f"{self.loss!r}")
        if not is_num(self.beta) or not 0 <= self.beta < 1:
            raise ConfigError(f"ClassifierConfig.beta must be in [0, 1), got {self.beta!r} "
                              "(GIT: 0.9999)")
        if not is_num(self.focal_gamma) or self.focal_gamma < 0:
            raise ConfigError(f"ClassifierConfig.focal_gamma must be >= 0, got "
                              f"{self.focal_gamma!r}")
        if not is_num(self.ldam_max_m) or self.ldam_max_m < 0 or not is_num(self.ldam_s) \
                or self.ldam_s <= 0:
            raise ConfigError("ClassifierConfig: ldam_max_m must be >= 0 and ldam_s > 0, got "
                              f"{self.ldam_max_m!r} and {self.ldam_s!r}")
        if not is_num(self.git_fraction) or not 0 <= self.git_fraction <= 1:
            raise ConfigError(f"ClassifierConfig.git_fraction must be in [0, 1], got "
                              f"{self.git_fraction!r} (GIT: 0.5)")
        if self.git_threshold is not None and (not is_int(self.git_threshold)
                                               or self.git_threshold < 1):
            raise ConfigError(f"ClassifierConfig.git_threshold must be None or a positive "
                              f"integer (a class size), got {self.git_threshold!r}")
        if self.oracle is not None and self.oracle not in TRANSFORMS:
            raise ConfigError(f"ClassifierConfig.oracle must be None or one of "
                              f"{', '.join(sorted(TRANSFORMS))}, got {self.oracle!r}")
        if not isinstance(self.crop_flip, bool):
            raise ConfigError(f"ClassifierConfig.crop_flip must be True or False, got "
                              f"{self.crop_flip!r}")

    @classmethod
    def from_profile(cls, profile: str | Profile, **overrides: Any) -> "ClassifierConfig":
        """The config of ``profile``'s GIT section (epochs, batch_size, classifier) + overrides.

        Unknown override names raise :class:`ConfigError` listing the valid ones.
        """
        git = get_profile(profile).git
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ConfigError(f"ClassifierConfig.from_profile: unknown setting(s) {unknown}; "
                              f"valid ones: {', '.join(names)}")
        base = dict(model=git.classifier, epochs=git.epochs, batch_size=git.batch_size)
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -----------------------------------------------------------------------------
# schedule: learning rate and what the train rule does in each epoch

def step_epochs(cfg: ClassifierConfig) -> tuple[int, ...]:
    """The (0-based) epochs from which each lr factor applies: ``round(fraction · epochs)``.

    K49 (50 epochs, (0.6, 0.8)): (30, 40); CIFAR (200, (0.8, 0.9)): (160, 180). A step at
    ``epochs`` never happens.
    """
    return tuple(int(round(f * cfg.epochs)) for f in cfg.lr_steps)


def warmup_length(cfg: ClassifierConfig) -> int:
    """Warm-up epochs: ``warmup_epochs``, clipped to the first lr step and to ``epochs``."""
    first = step_epochs(cfg)[0] if cfg.lr_steps else cfg.epochs
    return min(cfg.warmup_epochs, first, cfg.epochs)


def lr_at_epoch(cfg: ClassifierConfig, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``: ``lr·(epoch+1)/W`` in the warm-up, then base·factor.

    As Cao et al.'s ``adjust_learning_rate``: K49 gives 0.02, 0.04, …, 0.1 over epochs 0–4, 0.1
    until epoch 29, 1e-3 for epochs 30–39 and 1e-5 for 40–49.
    """
    w = warmup_length(cfg)
    if epoch < w:
        return cfg.lr * (epoch + 1) / w
    lr = cfg.lr
    for start, factor in zip(step_epochs(cfg), cfg.lr_factors):
        if epoch >= start:
            lr = cfg.lr * factor
    return lr


def switch_epoch(cfg: ClassifierConfig) -> int | None:
    """The (0-based) epoch from which ``drs`` / ``drw`` balance: the first lr step (Cao et al.).

    K49 (50 epochs): 30; CIFAR (200, (0.8, 0.9)): 160; the ``cpu`` profile (15): 9. None when
    the run ends before its first lr step (then DRS and DRW are ERM; a one-epoch run).
    """
    first = step_epochs(cfg)[0] if cfg.lr_steps else cfg.epochs
    return first if first < cfg.epochs else None


def epoch_plan(cfg: ClassifierConfig, epoch: int) -> dict[str, Any]:
    """What (0-based) ``epoch`` does: ``lr``, ``balanced_sampling`` and ``class_weights`` (bools).

    ``drs`` / ``drw`` switch on at :func:`switch_epoch`, the first lr step (Cao et al.'s
    deferred schedule).
    """
    first = switch_epoch(cfg)
    deferred = first is not None and epoch >= first
    return {"lr": lr_at_epoch(cfg, epoch),
            "balanced_sampling": cfg.rule == "resample" or (cfg.rule == "drs" and deferred),
            "class_weights": cfg.rule == "reweight" or (cfg.rule == "drw" and deferred)}


def schedule_phases(cfg: ClassifierConfig, n_train: int) -> list[dict[str, Any]]:
    """The run cut into phases of constant plan (epochs of one warm-up or lr value, sampling and
    weighting), each with its SGD steps on ``n_train`` images.

    One dict per phase: ``first_epoch``, ``last_epoch`` (0-based, inclusive), ``epochs``,
    ``lr`` (of the phase's first epoch; the warm-up is one phase with ``warmup=True``),
    ``balanced_sampling``, ``class_weights`` and ``steps`` (``epochs · ⌈n_train / batch⌉``, an
    epoch of either sampler drawing ``n_train`` images). Shows what a budget leaves the deferred
    rules: the ``cpu`` profile's DRS on the 276 digits balances for 9 steps at lr 1e-3.
    """
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or n_train < 1:
        raise ConfigError(f"schedule_phases: n_train must be a positive integer, got "
                          f"{n_train!r}")
    per_epoch = math.ceil(int(n_train) / cfg.batch_size)
    w = warmup_length(cfg)
    phases: list[dict[str, Any]] = []
    for epoch in range(cfg.epochs):
        plan = epoch_plan(cfg, epoch)
        key = (epoch < w, None if epoch < w else plan["lr"], plan["balanced_sampling"],
               plan["class_weights"])
        if phases and phases[-1]["_key"] == key:
            phases[-1]["last_epoch"] = epoch
            continue
        phases.append({"_key": key, "first_epoch": epoch, "last_epoch": epoch,
                       "lr": plan["lr"], "warmup": epoch < w,
                       "balanced_sampling": plan["balanced_sampling"],
                       "class_weights": plan["class_weights"]})
    for ph in phases:
        del ph["_key"]
        ph["epochs"] = ph["last_epoch"] - ph["first_epoch"] + 1
        ph["steps"] = ph["epochs"] * per_epoch
    return phases


def epoch_indices(labels: torch.Tensor, balanced: bool, generator: torch.Generator
                  ) -> torch.Tensor:
    """The order of training images in one epoch, ``(N,)`` int64.

    ``balanced``: N draws with replacement from the class-balanced sampler (every class equally
    likely); else a random permutation of the N images.
    """
    n = int(labels.shape[0])
    if balanced:
        sampler = class_balanced_sampler(labels, num_samples=n, generator=generator)
        return torch.tensor(list(iter(sampler)), dtype=torch.int64)
    return torch.randperm(n, generator=generator)


def git_epoch(cfg: ClassifierConfig) -> int | None:
    """The (0-based) epoch from which GIT replaces images: the first lr step (GIT's
    ``delayed_munit``; :func:`switch_epoch`), or None when off or the run ends before it."""
    return switch_epoch(cfg) if cfg.git_fraction > 0 else None


def git_keep_probability(sizes: list[int], threshold: int | None) -> torch.Tensor:
    """``(C,)``: per class, the probability that a chosen image is replaced,
    ``max((thr − n_c)/(thr − n_min), 0)`` (GIT's optional rule), or all ones without ``thr``."""
    n = torch.tensor(sizes, dtype=torch.float64)
    if threshold is None:
        return torch.ones_like(n)
    n_min = float(n[n > 0].min())
    if threshold <= n_min:
        raise ConfigError(f"git_threshold {threshold} must exceed the smallest class's size "
                          f"{int(n_min)}, or no class would ever be augmented")
    return ((threshold - n) / (threshold - n_min)).clamp(min=0.0, max=1.0)


@torch.no_grad()
def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """CIFAR's standard training augmentation (He et al. 2016, §4.2; Cao et al.'s LDAM-DRW
    code, which GIT uses): each image of ``x`` (b, C, H, W) zero-padded by ``pad`` pixels, an
    H×W window at a random offset in 0..2·pad cut out, then mirrored left-right with
    probability 1/2. Offsets and flips come from ``generator`` (CPU); ``x`` is not modified."""
    b, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)           # (b,)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)           # (b,)
    flip = torch.rand(b, generator=generator) < 0.5                          # (b,)
    rows = dy[:, None] + torch.arange(h)                                     # (b, H)
    cols = dx[:, None] + torch.arange(w)                                     # (b, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    xp = F.pad(x, (pad, pad, pad, pad))                                      # (b, C, H+2p, W+2p)
    rows, cols = rows.to(x.device), cols.to(x.device)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (b, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()                              # (b, C, H, W)


@torch.no_grad()
def git_augment(x: torch.Tensor, y: torch.Tensor, augmenter: Any, fraction: float,
                keep: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """GIT's batch: ``round(fraction · b)`` random images of ``x`` (b, 1, H, W) in [0, 1] chosen
    (each then kept for generation with probability ``keep[y]``) and replaced by
    ``augmenter.translate`` of them; returns the new batch and the number replaced. ``x`` is not
    modified."""
    b = x.shape[0]
    k = int(round(fraction * b))
    if k == 0:
        return x, 0
    idx = torch.randperm(b, generator=generator)[:k]                          # (k,)
    p = keep.to(torch.float64)[y.cpu()[idx]]                                  # (k,)
    idx = idx[torch.rand(k, generator=generator, dtype=torch.float64) < p]
    if idx.numel() == 0:
        return x, 0
    idx = idx.to(x.device)
    fake = augmenter.translate(x.index_select(0, idx) * 2 - 1, generator=generator)
    out = x.clone()
    out[idx] = ((fake.to(x.device, x.dtype) + 1) / 2).clamp(0, 1)
    return out, int(idx.numel())


def _augmenter_fingerprint(augmenter: Any) -> str | None:
    if augmenter is None:
        return None
    h = hashlib.sha256()
    for name, t in sorted(augmenter.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# -----------------------------------------------------------------------------
# evaluation

def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _as_float_batch(images: torch.Tensor, who: str) -> torch.Tensor:
    """uint8 (N, H, W) / (N, 1, H, W) / (N, 3, H, W) or float (N, C, H, W) in [0, 1] → float
    (N, C, H, W)."""
    if not isinstance(images, torch.Tensor):
        raise DataError(f"{who}: images must be a torch tensor, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        if images.dim() == 4 and images.shape[1] == 1:
            images = images[:, 0]
        if not (images.dim() == 3 or (images.dim() == 4 and images.shape[1] == 3)):
            raise DataError(f"{who}: uint8 images must be (N, H, W) or (N, 3, H, W), got "
                            f"{tuple(images.shape)}")
        return to_float(images)
    if not images.is_floating_point() or images.dim() != 4:
        raise DataError(f"{who}: images must be uint8 (N, H, W) or float (N, C, H, W) in [0, 1], "
                        f"got {images.dtype} {tuple(images.shape)}")
    return images


@torch.no_grad()
def predict_proba(model: nn.Module, images: torch.Tensor, batch_size: int = 512,
                  device: str | torch.device | None = None, log: bool = False) -> torch.Tensor:
    """Class probabilities ``(N, C)`` (float32, on the CPU) of ``images``.

    ``images``: uint8 ``(N, H, W)`` or float ``(N, 1, H, W)`` in [0, 1]. The model runs in eval
    mode without gradients (its previous mode is restored) on ``device`` (default: where the
    model is; another device moves the model there). ``log=True`` returns log-probabilities
    (exact ``log_softmax``, for KL terms).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"predict_proba: batch_size must be a positive integer, got "
                          f"{batch_size!r}")
    x_all = _as_float_batch(images, "predict_proba")
    dev = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    try:
        if dev != _model_device(model):
            model.to(dev)
        out = []
        for start in range(0, x_all.shape[0], batch_size):
            x = x_all[start:start + batch_size].to(dev, torch.float32)        # (b, 1, H, W)
            logp = torch.log_softmax(model(x).float(), dim=1)                 # (b, C)
            out.append((logp if log else logp.exp()).cpu())
    finally:
        model.train(was_training)
    if not out:
        n_classes = getattr(model, "n_classes", 0)
        return torch.zeros(0, n_classes)
    return torch.cat(out)                                                     # (N, C)


def evaluate(model: nn.Module, data: ImageSet, batch_size: int = 512,
             device: str | torch.device | None = None) -> dict[str, Any]:
    """Accuracy, balanced accuracy and per-class accuracy of ``model`` on ``data``.

    ``balanced_acc`` is the mean of the per-class accuracies over the classes present in
    ``data``; ``per_class_acc[c]`` is NaN for a class without images. Also returns ``n`` and
    ``n_per_class``.
    """
    if not isinstance(data, ImageSet):
        raise DataError(f"evaluate: data must be an ImageSet, got {type(data).__name__}")
    if len(data) == 0:
        raise DataError(f"evaluate: {data.name!r} holds no images")
    prob = predict_proba(model, data.images, batch_size, device)              # (N, C)
    if prob.shape[1] != data.n_classes:
        raise DataError(f"evaluate: the model predicts {prob.shape[1]} classes but "
                        f"{data.name!r} has {data.n_classes}")
    correct = (prob.argmax(1) == data.labels).to(torch.float64)               # (N,)
    counts = data.class_counts()                                              # (C,)
    hits = torch.zeros(data.n_classes, dtype=torch.float64).index_add_(0, data.labels, correct)
    per_class = torch.where(counts > 0, hits / counts.clamp(min=1), torch.nan)
    present = counts > 0
    return {"acc": float(correct.mean()),
            "balanced_acc": float(per_class[present].mean()),
            "per_class_acc": per_class.tolist(),
            "n": len(data),
            "n_per_class": counts.tolist()}


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, data: ImageSet, *, balanced: bool = False,
                       batch_size: int = 128, transform: str | None = None,
                       generator: torch.Generator | None = None,
                       device: str | torch.device | None = None) -> nn.Module:
    """Re-estimate every BatchNorm layer's running statistics from one epoch of ``data``, in place.

    The epoch is the trainer's (:func:`epoch_indices`): a permutation of the images
    (``balanced=False``, the instance-balanced stream ERM trains on) or N class-balanced draws
    with replacement (``balanced=True``, the stream of resampling / DRS after the switch), in
    batches of ``batch_size``, the model in train mode without gradients; ``transform`` (a
    nuisance name, as ``ClassifierConfig.oracle``) is applied to every batch with fresh
    parameters, as the oracle trains. Each layer's statistics become the average of its
    per-batch mean and variance over the epoch (PyTorch's cumulative average,
    ``momentum=None``); the weights are not touched, and the model's modes and the layers'
    momenta are restored. ``generator``: CPU generator of the order, then of the transform's
    parameters (default seeded 0). Returns ``model``; ``copy.deepcopy`` it first to keep the
    old statistics.

    Not part of Cao et al.'s recipe; a diagnostic: the running statistics follow the batches at
    any learning rate, so a rule that changes the sampler late (DRS) changes them even when the
    lr is too small to change the weights (module docstring).
    """
    if not isinstance(data, ImageSet) or len(data) == 0:
        raise DataError(f"recompute_bn_stats: data must be a non-empty ImageSet, got "
                        f"{type(data).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"recompute_bn_stats: batch_size must be a positive integer, got "
                          f"{batch_size!r}")
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
              and m.track_running_stats]
    if not layers:
        return model
    tfm = get_transform(transform) if transform is not None else None
    dev = torch.device(device) if device is not None else _model_device(model)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    modes = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for m in layers]
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None                     # cumulative average over the epoch's batches
        model.train()
        order = epoch_indices(data.labels, balanced, gen)                          # (N,)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]                                  # (b,)
            x = to_float(data.images.index_select(0, idx)).to(dev)                 # (b, 1, H, W)
            if tfm is not None:
                x = tfm.apply(x, tfm.sample_params(x.shape[0], gen))
            model(x)
    finally:
        for m, momentum in momenta:
            m.momentum = momentum
        for m, training in modes:
            m.training = training
    return model


# -----------------------------------------------------------------------------
# training

@dataclass
class ClassifierRun:
    """The result of :func:`train_classifier`."""
    model: nn.Module                     # the trained classifier, in eval mode
    config: ClassifierConfig             # the config it was trained with
    history: list[dict[str, Any]]        # one row per epoch: epoch (0-based), lr, train_loss,
                                         # train_acc, acc, balanced_acc (None when not evaluated),
                                         # balanced_sampling, class_weights, generated
                                         # (images replaced by GIT), seconds
    per_class_acc: list[float]           # final test accuracy per class (NaN: no test image)
    class_sizes: list[int]               # training images per class
    timings: dict[str, Any] = field(default_factory=dict)   # seconds, train_seconds,
                                                            # epochs_per_second, steps_per_second,
                                                            # device, threads

    @property
    def acc(self) -> float | None:
        """Final test accuracy (None without a test set)."""
        return self.history[-1]["acc"] if self.history else None

    @property
    def balanced_acc(self) -> float | None:
        """Final balanced (per-class mean) test accuracy (None without a test set)."""
        return self.history[-1]["balanced_acc"] if self.history else None


def _derive_seed(seed: int, tag: int) -> int:
    """An independent 63-bit seed for the stream ``tag`` of run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(tag)]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


def _fingerprint(data: ImageSet) -> str:
    h = hashlib.sha256()
    h.update(f"{tuple(data.images.shape)};{data.n_classes};".encode())
    h.update(data.images.contiguous().cpu().numpy().tobytes())
    h.update(data.labels.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _check_data(train: ImageSet, test: ImageSet | None, cfg: ClassifierConfig) -> list[int]:
    if not isinstance(train, ImageSet):
        raise DataError(f"train_classifier: train must be an ImageSet (mil_core.data), got "
                        f"{type(train).__name__}")
    if len(train) == 0:
        raise DataError(f"train_classifier: the training set {train.name!r} is empty")
    if min(train.image_size) < 4:
        raise DataError(f"train_classifier: images of {train.name!r} are "
                        f"{tuple(train.images.shape[1:])}; need at least 4×4 (GIT uses 28×28)")
    if test is not None:
        if not isinstance(test, ImageSet):
            raise DataError(f"train_classifier: test must be an ImageSet or None, got "
                            f"{type(test).__name__}")
        if test.classes != train.classes or test.images.shape[1:] != train.images.shape[1:]:
            raise DataError(f"train_classifier: test set {test.name!r} ({test.n_classes} classes, "
                            f"{tuple(test.images.shape[1:])}) does not match the training set "
                            f"{train.name!r} ({train.n_classes} classes, "
                            f"{tuple(train.images.shape[1:])}); pass both splits of one "
                            "make_long_tailed call")
        if len(test) == 0:
            raise DataError(f"train_classifier: the test set {test.name!r} is empty; pass "
                            "test=None to skip evaluation")
    sizes = train.class_counts().tolist()
    needs_all = cfg.rule != "erm" or cfg.loss == "ldam"
    empty = [c for c, n in enumerate(sizes) if n == 0]
    if needs_all and empty:
        raise DataError(f"train_classifier: rule {cfg.rule!r} with loss {cfg.loss!r} needs at "
                        f"least one training image per class, but classes {empty[:10]} of "
                        f"{train.name!r} have none; drop them or use rule='erm', loss='ce'")
    return sizes


def _resume_state(path: Path, cfg: ClassifierConfig, fingerprint: str) -> dict[str, Any]:
    state = load_checkpoint(path)
    if state.get("kind") != _KIND:
        raise CheckpointError(f"{path} is not a classifier checkpoint; {OTHER_RUN_HINT}")
    if int(state.get("version", 0)) > _STATE_VERSION:
        raise CheckpointError(f"{path} was written by a newer mil_core (classifier state "
                              f"version {state['version']} > {_STATE_VERSION}); upgrade "
                              "mil_core to resume it")
    if state.get("config") != cfg.to_dict():
        raise CheckpointError(f"{path} was written with another ClassifierConfig "
                              f"({state.get('config')}); {OTHER_RUN_HINT}")
    if state.get("data") != fingerprint:
        raise CheckpointError(f"{path} was trained on other data; {OTHER_RUN_HINT}")
    return state


def train_classifier(train: ImageSet, test: ImageSet | None, cfg: ClassifierConfig | None = None,
                     *, device: str | torch.device | None = None,
                     checkpoint_dir: str | Path | None = None, resume: bool = False,
                     overwrite: bool = False, show_progress: bool = False,
                     callback: Callable[[dict[str, Any]], None] | None = None,
                     augmenter: Any = None) -> ClassifierRun:
    """Train ``cfg.model`` on the long-tailed ``train`` split with ``cfg.rule`` and ``cfg.loss``.

    ``test`` (or None) is evaluated every ``cfg.eval_every`` epochs and after the last.
    ``checkpoint_dir``: everything needed to continue is saved atomically to
    ``checkpoint_dir/classifier.safetensors`` after every epoch; with ``resume=True`` a run found
    there (same config and data) continues exactly. Without ``resume`` an existing checkpoint
    raises CheckpointError unless ``overwrite=True``, which replaces it when the first new epoch
    is saved (:func:`mil_core.checkpoint.prepare_checkpoint_path`). ``callback(row)`` runs after
    every epoch (after its checkpoint) with that epoch's history row. ``augmenter``: GIT's
    trained generative model (module docstring), required when ``cfg.git_fraction`` > 0.

    Raises ConfigError / DataError for bad input and CheckpointError for a checkpoint of another
    run, all before any training, and TrainingError when the loss becomes NaN or infinite.
    """
    cfg = ClassifierConfig() if cfg is None else cfg
    if not isinstance(cfg, ClassifierConfig):
        raise ConfigError(f"train_classifier: cfg must be a ClassifierConfig, got "
                          f"{type(cfg).__name__}")
    cfg.validate()
    sizes = _check_data(train, test, cfg)
    if cfg.git_fraction > 0 and not callable(getattr(augmenter, "translate", None)):
        raise ConfigError("train_classifier: ClassifierConfig.git_fraction > 0 needs a trained "
                          "augmenter with translate(x, generator=...), e.g. "
                          "train_classifier(..., augmenter=train_munit(...))")
    keep = git_keep_probability(sizes, cfg.git_threshold)
    dev = torch.device(device) if device is not None else get_device()
    ckpt = prepare_checkpoint_path(checkpoint_dir, CHECKPOINT_NAME, resume=resume,
                                   overwrite=overwrite)
    fingerprint = _fingerprint(train)
    if cfg.git_fraction > 0:
        fingerprint += ";augmenter=" + str(_augmenter_fingerprint(augmenter))

    # model (init seeded without touching the caller's global RNG) and optimizer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = make_classifier(cfg.model, train.n_classes, in_ch=train.channels,
                                cosine_head=cfg.loss == "ldam")
    model.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=lr_at_epoch(cfg, 0), momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    order_gen = torch.Generator().manual_seed(cfg.seed)
    oracle_gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, _ORACLE_TAG))
    git_gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, _GIT_TAG))
    crop_gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, _CROP_TAG))
    git_from = git_epoch(cfg)
    oracle = get_transform(cfg.oracle) if cfg.oracle is not None else None
    weights = effective_number_weights(sizes, cfg.beta) if cfg.rule in ("reweight", "drw") \
        else None

    history: list[dict[str, Any]] = []
    start_epoch, seconds_before, train_seconds, steps_done = 0, 0.0, 0.0, 0
    final_per_class: list[float] | None = None
    ours = False             # does ckpt hold this run (resumed or written)? not the overwritten one
    if ckpt is not None and resume and ckpt.exists():
        state = _resume_state(ckpt, cfg, fingerprint)
        ours = True
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        order_gen.set_state(state["generators"]["order"])
        oracle_gen.set_state(state["generators"]["oracle"])
        if "git" in state["generators"]:
            git_gen.set_state(state["generators"]["git"])
        if "crop" in state["generators"]:
            crop_gen.set_state(state["generators"]["crop"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        seconds_before = float(state["seconds"])
        train_seconds = float(state["train_seconds"])
        steps_done = int(state["steps"])

    images = train.images.to(dev)                                   # (N, [3,] H, W) uint8
    labels = train.labels.to(dev)                                   # (N,)
    epochs = range(start_epoch, cfg.epochs)
    bar = progress(epochs, desc=f"{cfg.model} {cfg.rule}/{cfg.loss}") if show_progress \
        else epochs
    t_run = time.perf_counter()
    for epoch in bar:
        t0 = time.perf_counter()
        plan = epoch_plan(cfg, epoch)
        for group in opt.param_groups:
            group["lr"] = plan["lr"]
        criterion = make_loss(cfg.loss, sizes, weights if plan["class_weights"] else None,
                              gamma=cfg.focal_gamma, max_m=cfg.ldam_max_m, s=cfg.ldam_s).to(dev)
        order = epoch_indices(train.labels, plan["balanced_sampling"], order_gen)   # (N,)
        model.train()
        loss_sum, hit_sum, seen, generated = 0.0, 0, 0, 0
        augment = git_from is not None and epoch >= git_from
        for step, start in enumerate(range(0, len(order), cfg.batch_size)):
            idx = order[start:start + cfg.batch_size].to(dev)       # (b,)
            x = to_float(images.index_select(0, idx))               # (b, C, H, W) in [0, 1]
            y = labels.index_select(0, idx)                         # (b,)
            if cfg.crop_flip:
                x = crop_flip(x, crop_gen)
            if oracle is not None:
                x = oracle.apply(x, oracle.sample_params(x.shape[0], oracle_gen))
            if augment:
                x, n_gen = git_augment(x, y, augmenter, cfg.git_fraction, keep, git_gen)
                generated += n_gen
            logits = model(x)                                       # (b, C)
            loss = criterion(logits, y)
            if not torch.isfinite(loss):
                where = (f"the last good checkpoint is {ckpt} ({len(history)} epochs done)"
                         if ckpt is not None and ours else "no checkpoint was written")
                raise TrainingError(f"classifier training diverged: loss {loss.item()} at epoch "
                                    f"{epoch}, step {step} (lr {plan['lr']:g}); {where}. Lower "
                                    "ClassifierConfig.lr or check the images.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * y.shape[0]
            hit_sum += int((logits.detach().argmax(1) == y).sum())
            seen += y.shape[0]
            steps_done += 1

        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        train_seconds += time.perf_counter() - t0
        last = epoch == cfg.epochs - 1
        row: dict[str, Any] = {"epoch": epoch, "lr": plan["lr"], "train_loss": loss_sum / seen,
                               "train_acc": hit_sum / seen, "acc": None, "balanced_acc": None,
                               "balanced_sampling": plan["balanced_sampling"],
                               "class_weights": plan["class_weights"], "generated": generated}
        if test is not None and (last or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)):
            metrics = evaluate(model, test, device=dev)
            row["acc"], row["balanced_acc"] = metrics["acc"], metrics["balanced_acc"]
            final_per_class = metrics["per_class_acc"]
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=row["acc"], refresh=False)
        if ckpt is not None:
            state = {"kind": _KIND, "version": _STATE_VERSION, "config": cfg.to_dict(),
                     "data": fingerprint, "epoch": epoch + 1, "steps": steps_done,
                     "seconds": seconds_before + time.perf_counter() - t_run,
                     "train_seconds": train_seconds,
                     "model": model.state_dict(), "optimizer": opt.state_dict(),
                     "generators": {"order": order_gen.get_state(),
                                    "oracle": oracle_gen.get_state(),
                                    "git": git_gen.get_state(),
                                    "crop": crop_gen.get_state()},
                     "history": history, "class_sizes": sizes}
            save_checkpoint(ckpt, state, {"kind": _KIND, "epoch": epoch + 1,
                                          "model": cfg.model, "rule": cfg.rule,
                                          "loss": cfg.loss})
            ours = True
        if callback is not None:
            callback(row)

    seconds = seconds_before + time.perf_counter() - t_run
    model.eval()
    if final_per_class is None:   # resumed from a finished run: evaluate it once more
        final_per_class = evaluate(model, test, device=dev)["per_class_acc"] \
            if test is not None else []
    timings = {"seconds": seconds,   # wall time of all epochs (training + evaluation)
               "train_seconds": train_seconds,   # the optimisation steps only
               "epochs_per_second": cfg.epochs / seconds if seconds > 0 else 0.0,
               "steps_per_second": steps_done / train_seconds if train_seconds > 0 else 0.0,
               "device": str(dev), "threads": torch.get_num_threads()}
    return ClassifierRun(model, cfg, history, final_per_class, sizes, timings)
