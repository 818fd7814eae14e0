"""Expected KL divergence (eKLD): how invariant a classifier is to a nuisance, per class.

Generative Invariance Transfer (Zhou et al., ICLR 2022, Sec. 3; REFERENCE §6) measures a
classifier's invariance to a nuisance transform T for every class c as

    eKLD_c = E_{x ∈ class c, x' ~ T(·|x)} KL( p(·|x) ‖ p(·|x') ),

where p(·|x) is the classifier's predicted class distribution and x' is a transformed copy of the
**same** image x. The paper plots eKLD_c against the training size of class c (invariance is
learnt from the head classes and missing in the tail). Official protocol: 40 images per class,
100 transform samples per image.

The official code paired each image with the transform of a *different* image (an index
mismatch, REFERENCE §6), which measures how different two images of a class look to the
classifier rather than its invariance. Here every transformed copy carries the index of its own
image: p(·|x) is computed once per image and gathered for its copies with that index, never by
lining up positions of two separately ordered lists.

Conventions chosen here:

- **Model interface.** ``model_or_fn`` maps a float batch ``(B, 1, H, W)`` in [0, 1] (the
  :func:`~mil_core.data.nuisance.to_float` scale, on ``device``) to scores ``(B, K)``. A
  ``torch.nn.Module`` is run in eval mode under ``torch.no_grad()`` and put back in the mode it
  was in; any other callable is run under ``torch.no_grad()`` as it is. Wrap the model in a
  ``lambda`` if it expects another input normalisation.
- **What the scores are** is stated with ``inputs`` (in :func:`ekld` and :func:`kl_from_logits`):
  ``"logits"`` (the default; unnormalised, log-probabilities are fine too since ``log_softmax``
  leaves them unchanged), ``"log_probs"`` or ``"probs"``. Under ``"logits"``, scores in which
  every row is non-negative and sums to 1 within 1e-4 (K ≥ 2) are refused as probabilities:
  a softmax over probabilities gives a much smaller, silently wrong KL. ``"log_probs"`` rows
  must have ``logsumexp`` 0 and ``"probs"`` rows must be non-negative and sum to 1 (both within
  1e-4). Probabilities become ``log p`` (``log 0 = −inf``, see the next item); every kind is
  then renormalised with ``log_softmax``.
- **KL** in float64 from the log-probabilities: ``Σ_k p_k (log p_k − log q_k)`` with terms where
  ``p_k = 0`` counted as 0 (no ``log(0)``, no epsilon); ``+inf`` where ``q_k = 0 < p_k``.
- **Images.** Up to ``images_per_class`` images per class are drawn without replacement (a
  seeded ``randperm``) from the set passed in, whichever it is: the clean held-out split (before
  its nuisance transform) or the training images. Passing the *transformed* test split measures
  invariance to T applied on top of T, which for BG is nearly a no-op (no pixel is 0 any more).
- **Draw order** (all from one CPU ``torch.Generator``, default seed 0): the image choice class
  by class, then the parameters of all ``n_pairs`` transforms at once, image-major (the copies of
  image i are pairs ``i·T … i·T + T − 1``). So ``batch_size`` and ``device`` never change which
  pairs are drawn.
- **Per-class value** = mean over images of the per-image mean over its T copies (equal to the
  mean over pairs, every image having T copies). Confidence intervals resample **images**
  (:func:`bootstrap_ci`), because the T copies of one image are not independent.
- **Argmax consistency** = fraction of pairs with ``argmax p(·|x) == argmax p(·|x')``.
- **Confidence beside invariance.** eKLD also depends on how confident the classifier is: a
  classifier that spreads p(·|x) over the same head classes for x and x' (as ERM does on tail
  images it never predicts) has a small KL without being invariant in any useful sense, and a
  confident one has a large KL for the same change of argmax. So every class also gets the mean
  predictive entropy ``H(p) = −Σ_k p_k log p_k`` (nats, float64, ``0 · log 0 = 0``; 0 for a
  one-hot p, ``log K`` for a uniform one; :func:`predictive_entropy`) and the mean largest
  probability ``max_k p_k``, on the clean images (``entropy_clean``, ``max_prob_clean``) and on
  their transformed copies (``entropy_transformed``, ``max_prob_transformed``, means over
  pairs), and the accuracy of the argmax against the image's label on both (``acc_clean``: per
  image; ``acc_transformed``: per pair; output k is taken to mean class k).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ..data.mnist_like import ImageSet
from ..data.nuisance import NuisanceTransform, get_transform, to_float
from ..errors import ConfigError, DataError

__all__ = ["EKLDResult", "ekld", "bootstrap_ci", "kl_from_logits", "predictive_entropy",
           "INPUT_KINDS", "CONFIDENCE_COLUMNS"]

ModelFn = Callable[[torch.Tensor], torch.Tensor]

# What model outputs (or the tensors given to kl_from_logits) are; see the module docstring.
INPUT_KINDS = ("logits", "log_probs", "probs")
_PROB_TOL = 1e-4   # |row sum − 1| (probabilities) or |logsumexp| (log-probabilities) allowed
# the per-class confidence summaries of EKLDResult, in the order EKLDResult.to_frame writes them
CONFIDENCE_COLUMNS = ("entropy_clean", "entropy_transformed", "max_prob_clean",
                      "max_prob_transformed", "acc_clean", "acc_transformed")


# -----------------------------------------------------------------------------
# building blocks

def kl_from_logits(logits_p: torch.Tensor, logits_q: torch.Tensor, *, inputs: str = "logits"
                   ) -> torch.Tensor:
    """``KL(p ‖ q)`` per row, in float64, for ``p = softmax(logits_p)``, ``q = softmax(logits_q)``.

    Args:
        logits_p, logits_q: ``(B, K)`` scores of the kind ``inputs`` says.
        inputs: ``"logits"`` (default; log-probabilities are fine too), ``"log_probs"`` or
            ``"probs"`` (see the module docstring).

    Returns:
        ``(B,)`` float64, ≥ 0 up to rounding; ``+inf`` where q gives 0 to a class p does not.

    Raises:
        ConfigError: unknown ``inputs``.
        DataError: not ``(B, K)`` float tensors of the same shape, or scores that are not of the
            kind ``inputs`` says (e.g. probabilities passed as logits).
    """
    _check_input_kind(inputs, "kl_from_logits")
    for name, t in (("logits_p", logits_p), ("logits_q", logits_q)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or not t.is_floating_point():
            raise DataError(f"kl_from_logits: {name} must be a float (B, K) tensor, got "
                            f"{getattr(t, 'dtype', type(t))} {tuple(getattr(t, 'shape', ()))}.")
    if logits_p.shape != logits_q.shape:
        raise DataError(f"kl_from_logits: logits_p and logits_q must have the same shape, got "
                        f"{tuple(logits_p.shape)} and {tuple(logits_q.shape)}.")
    logp = _to_log_probs(logits_p, inputs, "kl_from_logits", "logits_p")      # (B, K)
    logq = _to_log_probs(logits_q, inputs, "kl_from_logits", "logits_q")      # (B, K)
    return _kl_from_logp(logp, logq)


def _check_input_kind(inputs: object, where: str) -> None:
    if inputs not in INPUT_KINDS:
        raise ConfigError(f"{where}: inputs must be one of {', '.join(map(repr, INPUT_KINDS))} "
                          f"(what the scores are), got {inputs!r}.")


def _to_log_probs(scores: torch.Tensor, inputs: str, where: str, what: str,
                  detect_probs: bool = True) -> torch.Tensor:
    """float64 log-probabilities ``(B, K)`` from scores of kind ``inputs``, checked.

    ``detect_probs``: under ``inputs="logits"``, refuse scores whose every row looks like a
    probability vector (K ≥ 2).
    """
    x = scores.to(torch.float64)                                              # (B, K)
    if inputs == "logits":
        if detect_probs and x.numel() and x.shape[1] >= 2 and bool(
                torch.isfinite(x).all() and (x >= 0).all()
                and ((x.sum(dim=1) - 1.0).abs() <= _PROB_TOL).all()):
            raise DataError(
                f"{where}: {what} look like probabilities (every row is non-negative and sums "
                f"to 1 within {_PROB_TOL:g}), but {where} expects logits (unnormalised scores) "
                "unless told otherwise; a softmax over probabilities gives a silently wrong KL. "
                "Pass inputs=\"probs\" for probabilities (or inputs=\"log_probs\" for "
                "log-probabilities); if these really are logits, add a constant to them (the "
                "softmax is unchanged).")
        return torch.log_softmax(x, dim=1)
    if inputs == "log_probs":
        if x.numel() and (torch.isnan(x).any() or (x > _PROB_TOL).any()
                          or ((torch.logsumexp(x, dim=1)).abs() > _PROB_TOL).any()):
            raise DataError(f"{where}: inputs=\"log_probs\" but {what} are not log-probabilities "
                            f"(every row must be <= 0 with logsumexp 0 within {_PROB_TOL:g}); "
                            "pass inputs=\"logits\" for unnormalised scores or inputs=\"probs\" "
                            "for probabilities.")
        return torch.log_softmax(x, dim=1)
    if x.numel() and (not torch.isfinite(x).all() or (x < 0).any()
                      or ((x.sum(dim=1) - 1.0).abs() > _PROB_TOL).any()):
        raise DataError(f"{where}: inputs=\"probs\" but {what} are not probabilities (every row "
                        f"must be non-negative, finite and sum to 1 within {_PROB_TOL:g}); pass "
                        "inputs=\"logits\" for unnormalised scores or inputs=\"log_probs\" for "
                        "log-probabilities.")
    return torch.log_softmax(torch.log(x), dim=1)       # log 0 = −inf: a class with p = 0


def _kl_from_logp(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """``Σ_k p_k (log p_k − log q_k)`` with ``0 · anything = 0``; rows of ``(B, K)`` → ``(B,)``."""
    p = logp.exp()
    terms = torch.where(p > 0, p * (logp - logq), torch.zeros_like(p))      # (B, K)
    return terms.sum(dim=1)


def predictive_entropy(scores: torch.Tensor, *, inputs: str = "logits") -> torch.Tensor:
    """Entropy ``H(p) = −Σ_k p_k log p_k`` per row, in nats and float64.

    Args:
        scores: ``(B, K)`` scores of the kind ``inputs`` says (see the module docstring).
        inputs: ``"logits"`` (default), ``"log_probs"`` or ``"probs"``.

    Returns:
        ``(B,)`` float64 in ``[0, log K]``: 0 for a one-hot p (terms with ``p_k = 0`` count 0),
        ``log K`` for the uniform p.

    Raises:
        ConfigError: unknown ``inputs``.
        DataError: not a float ``(B, K)`` tensor, or scores not of the kind ``inputs`` says.
    """
    _check_input_kind(inputs, "predictive_entropy")
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or not scores.is_floating_point():
        raise DataError(f"predictive_entropy: scores must be a float (B, K) tensor, got "
                        f"{getattr(scores, 'dtype', type(scores))} "
                        f"{tuple(getattr(scores, 'shape', ()))}.")
    return _entropy_from_logp(_to_log_probs(scores, inputs, "predictive_entropy", "scores"))


def _entropy_from_logp(logp: torch.Tensor) -> torch.Tensor:
    """``−Σ_k p_k log p_k`` with ``0 · log 0 = 0``; rows of ``(B, K)`` → ``(B,)``."""
    p = logp.exp()
    terms = torch.where(p > 0, p * logp, torch.zeros_like(p))               # (B, K)
    return -terms.sum(dim=1)


def bootstrap_ci(values: torch.Tensor | np.ndarray | Sequence[float], n_boot: int = 1000,
                 level: float = 0.95, generator: torch.Generator | None = None
                 ) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    Resamples the values (for eKLD: the per-image means, so images, not pairs) with replacement
    ``n_boot`` times and returns the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles (linear
    interpolation) of the resampled means. One value gives ``(v, v)``.

    Args:
        values: 1-D, at least one finite value.
        n_boot: bootstrap resamples, ≥ 1.
        level: coverage in (0, 1).
        generator: CPU ``torch.Generator``; default seeded 0, so the interval is reproducible.

    Raises:
        DataError: ``values`` is empty, not 1-D, or holds NaN / inf.
        ConfigError: bad ``n_boot``, ``level`` or ``generator``.
    """
    v = torch.as_tensor(np.asarray(values, dtype=np.float64))                 # (n,)
    if v.dim() != 1 or v.numel() == 0:
        raise DataError(f"bootstrap_ci: values must be a non-empty 1-D array, got shape "
                        f"{tuple(v.shape)}.")
    if not torch.isfinite(v).all():
        raise DataError("bootstrap_ci: values hold NaN or inf; drop them first.")
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise ConfigError(f"bootstrap_ci: n_boot must be an int >= 1, got {n_boot!r}.")
    if not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ConfigError(f"bootstrap_ci: level must lie in (0, 1), got {level!r}.")
    generator = _cpu_generator(generator, "bootstrap_ci")
    n = v.numel()
    if n == 1:
        return float(v[0]), float(v[0])
    rows = max(1, 2_000_000 // n)                      # bound the (rows, n) index block in memory
    means = []
    for start in range(0, n_boot, rows):
        k = min(rows, n_boot - start)
        idx = torch.randint(0, n, (k, n), generator=generator)                 # (k, n)
        means.append(v[idx].mean(dim=1))                                        # (k,)
    boot = torch.cat(means)                                                     # (n_boot,)
    alpha = (1.0 - float(level)) / 2.0
    lo, hi = torch.quantile(boot, torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
    return float(lo), float(hi)


def _cpu_generator(generator: torch.Generator | None, where: str) -> torch.Generator:
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ConfigError(f"{where}: generator must be a CPU torch.Generator (draws are made on "
                          f"the CPU so a seed gives the same result on every device), got "
                          f"{generator!r}.")
    return generator


# -----------------------------------------------------------------------------
# result

@dataclass
class EKLDResult:
    """Per-class eKLD of one classifier and one transform (arrays indexed by class, ``(C,)``).

    Classes without images have ``n_images == 0`` and NaN ``ekld`` / ``consistency``.
    """
    transform: str                      # name of the nuisance transform
    classes: list[str]                  # class names; class c is classes[c]
    ekld: np.ndarray                    # (C,) float64, mean KL(p(·|x) ‖ p(·|x')) over pairs
    consistency: np.ndarray             # (C,) float64, fraction of pairs with the same argmax
    n_images: np.ndarray                # (C,) int64, images used = min(images_per_class, size)
    n_pairs: np.ndarray                 # (C,) int64, n_images · n_transforms
    per_image: list[np.ndarray]         # C arrays (n_images[c],): per-image mean KL over copies
    per_image_consistency: list[np.ndarray]   # C arrays (n_images[c],): per-image agreement
    image_index: list[np.ndarray]       # C arrays (n_images[c],): rows of the given set used
    n_transforms: int                   # transform samples per image
    images_per_class: int               # the cap that was asked for
    class_sizes: np.ndarray | None = None   # (C,) training size of each class, when given
    extra: dict = field(default_factory=dict)   # free-form metadata (e.g. model / split names)
    # confidence beside invariance (module docstring), (C,) float64, NaN for a class without
    # images; None in a result built without them
    entropy_clean: np.ndarray | None = None        # mean H(p(·|x)) over the class's images, nats
    entropy_transformed: np.ndarray | None = None  # mean H(p(·|x')) over its pairs, nats
    max_prob_clean: np.ndarray | None = None       # mean max_k p(k|x) over its images
    max_prob_transformed: np.ndarray | None = None  # mean max_k p(k|x') over its pairs
    acc_clean: np.ndarray | None = None            # fraction of its images with argmax = label
    acc_transformed: np.ndarray | None = None      # fraction of its pairs with argmax(x') = label

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def mean_ekld(self) -> float:
        """Class-balanced mean of the per-class eKLD (classes without images ignored)."""
        valid = self.n_images > 0
        return float(self.ekld[valid].mean()) if valid.any() else math.nan

    def confidence_intervals(self, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                             ) -> tuple[np.ndarray, np.ndarray]:
        """Per-class percentile-bootstrap CIs of the eKLD mean, resampling images.

        Class c uses its own generator seeded ``seed + c``, so one class's interval does not
        depend on the others. NaN for classes without images.
        """
        low = np.full(self.n_classes, np.nan)
        high = np.full(self.n_classes, np.nan)
        for c, values in enumerate(self.per_image):
            if len(values):
                gen = torch.Generator().manual_seed(int(seed) + c)
                low[c], high[c] = bootstrap_ci(values, n_boot=n_boot, level=level, generator=gen)
        return low, high

    def to_frame(self, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
        """One row per class: ``class_index, class, class_size, n_images, n_pairs, ekld,
        consistency, ci_low, ci_high`` (CIs from :meth:`confidence_intervals`), then the
        confidence summaries ``entropy_clean, entropy_transformed, max_prob_clean,
        max_prob_transformed, acc_clean, acc_transformed`` (NaN when the result has none).

        ``class_size`` is the nullable ``Int64`` training size, ``<NA>`` when none was given.
        """
        low, high = self.confidence_intervals(n_boot=n_boot, level=level, seed=seed)
        sizes = (pd.array(self.class_sizes, dtype="Int64") if self.class_sizes is not None
                 else pd.array([pd.NA] * self.n_classes, dtype="Int64"))
        return pd.DataFrame({
            "class_index": np.arange(self.n_classes),
            "class": list(self.classes),
            "class_size": sizes,
            "n_images": self.n_images,
            "n_pairs": self.n_pairs,
            "ekld": self.ekld,
            "consistency": self.consistency,
            "ci_low": low,
            "ci_high": high,
            **{name: (getattr(self, name) if getattr(self, name) is not None
                      else np.full(self.n_classes, np.nan)) for name in CONFIDENCE_COLUMNS},
        })


# -----------------------------------------------------------------------------
# input checks

def _as_images_labels(images: ImageSet | tuple, class_sizes: object
                      ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(uint8 (N, H, W), int64 (N,), class names) from an ImageSet or an (images, labels) pair."""
    if isinstance(images, ImageSet):
        return images.images, images.labels, list(images.classes)
    if not isinstance(images, (tuple, list)) or len(images) != 2:
        raise DataError("ekld: images must be an ImageSet or a pair (images uint8 (N, H, W), "
                        f"labels int (N,)), got {type(images).__name__}.")
    x, y = images
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 3:
        raise DataError(f"ekld: images must be uint8 (N, H, W), got "
                        f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}.")
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.dtype.is_floating_point \
            or y.dtype == torch.bool:
        raise DataError(f"ekld: labels must be integers of shape ({x.shape[0]},) (one per image),"
                        f" got {y.dtype} {tuple(y.shape)}.")
    y = y.to(torch.int64)
    if y.numel() and int(y.min()) < 0:
        raise DataError(f"ekld: labels must be >= 0, got {int(y.min())}.")
    n_classes = int(y.max()) + 1 if y.numel() else 0
    if class_sizes is not None:
        n_classes = max(n_classes, len(np.asarray(class_sizes).reshape(-1)))
    return x, y, [str(c) for c in range(n_classes)]


def _check_class_sizes(class_sizes: object, n_classes: int) -> np.ndarray | None:
    if class_sizes is None:
        return None
    sizes = np.asarray(class_sizes.cpu() if isinstance(class_sizes, torch.Tensor)
                       else class_sizes)
    if sizes.ndim != 1 or sizes.shape[0] != n_classes or sizes.dtype.kind not in "iu" \
            or (sizes < 0).any():
        raise ConfigError(f"ekld: class_sizes must be {n_classes} non-negative integers (one per "
                          f"class), got {sizes.dtype} {sizes.shape}.")
    return sizes.astype(np.int64)


def _positive_int(value: object, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"ekld: {name} must be an int >= 1, got {value!r}.")
    return int(value)


def _resolve_device(model_or_fn: object, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(model_or_fn, nn.Module):
        for t in model_or_fn.parameters():
            return t.device
        for t in model_or_fn.buffers():
            return t.device
    return torch.device("cpu")


class _EvalMode:
    """Eval mode + no_grad for a Module (its previous mode restored), no_grad for a callable."""

    def __init__(self, model_or_fn: object) -> None:
        self.module = model_or_fn if isinstance(model_or_fn, nn.Module) else None
        self.modes: list[tuple[nn.Module, bool]] = []
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        if self.module is not None:
            self.modes = [(m, m.training) for m in self.module.modules()]
            self.module.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.no_grad.__exit__(*exc)
        for m, training in self.modes:    # per submodule: a frozen part stays frozen
            m.training = training


def _log_probs(model_or_fn: ModelFn, x: torch.Tensor, n_classes_out: int | None,
               inputs: str = "logits", detect_probs: bool = False) -> torch.Tensor:
    """float64 log-probabilities ``(B, K)`` from the model's outputs for ``x`` ``(B, 1, H, W)``,
    which are of kind ``inputs`` (probabilities given as logits refused when ``detect_probs``)."""
    out = model_or_fn(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0] \
            or out.shape[1] < 1 or not out.is_floating_point():
        raise DataError(f"ekld: model_or_fn must return float logits ({x.shape[0]}, K) for a "
                        f"batch of {x.shape[0]}, got {getattr(out, 'dtype', type(out))} "
                        f"{tuple(getattr(out, 'shape', ()))}.")
    if n_classes_out is not None and out.shape[1] != n_classes_out:
        raise DataError(f"ekld: model_or_fn returned {out.shape[1]} logits per image after "
                        f"{n_classes_out} for an earlier batch.")
    logp = _to_log_probs(out, inputs, "ekld", "the outputs of model_or_fn", detect_probs)
    if torch.isnan(logp).any():
        raise DataError("ekld: model_or_fn returned NaN (or +inf) logits.")
    return logp


# -----------------------------------------------------------------------------
# eKLD

def ekld(model_or_fn: nn.Module | ModelFn, images: ImageSet | tuple[torch.Tensor, torch.Tensor],
         transform: str | NuisanceTransform, *, images_per_class: int = 40,
         n_transforms: int = 100, generator: torch.Generator | None = None,
         batch_size: int = 2048, device: str | torch.device | None = None,
         class_sizes: Sequence[int] | np.ndarray | torch.Tensor | None = None,
         inputs: str = "logits") -> EKLDResult:
    """Per-class eKLD and argmax consistency of a classifier under a nuisance transform.

    Args:
        model_or_fn: ``nn.Module`` or callable, float ``(B, 1, H, W)`` in [0, 1] → scores
            ``(B, K)`` of the kind ``inputs`` says (see the module docstring; a Module runs in
            eval mode, restored after).
        images: an :class:`ImageSet`, or ``(images uint8 (N, H, W), labels int (N,))`` whose
            classes are ``0..max(labels)`` (or ``0..len(class_sizes) − 1``). Use clean images.
        transform: a name ("rot", "bg", "dil", "identity") or a :class:`NuisanceTransform`.
        images_per_class: cap on images per class (official 40); smaller classes use all.
        n_transforms: transformed copies per image (official 100).
        generator: CPU ``torch.Generator`` for every draw; default seeded 0.
        batch_size: image pairs (and clean images) per forward pass; does not change the result.
        device: where the transforms and the model run; default the Module's device, else CPU.
        class_sizes: ``(C,)`` training size of each class, stored for plots against class size.
        inputs: what ``model_or_fn`` returns: ``"logits"`` (default; log-probabilities are fine
            too), ``"log_probs"`` or ``"probs"``. Under ``"logits"``, outputs that look like
            probabilities (the first batch's rows all ≥ 0 and summing to 1) are refused.

    Returns:
        :class:`EKLDResult` (per-class eKLD, consistency, counts, per-image values, and the
        confidence summaries: entropy, max probability and accuracy on clean and transformed
        images).

    Raises:
        ConfigError: unknown transform, a count < 1, bad ``class_sizes``, ``generator`` or
            ``inputs``.
        DataError: malformed images / labels, or model outputs that are not ``(B, K)`` scores of
            the kind ``inputs`` says (e.g. probabilities while ``inputs="logits"``).
    """
    tfm = get_transform(transform) if isinstance(transform, str) else transform
    if not isinstance(tfm, NuisanceTransform):
        raise ConfigError(f"ekld: transform must be a name or a NuisanceTransform, got "
                          f"{type(transform).__name__}.")
    if not callable(model_or_fn):
        raise ConfigError(f"ekld: model_or_fn must be an nn.Module or a callable returning "
                          f"logits, got {type(model_or_fn).__name__}.")
    _check_input_kind(inputs, "ekld")
    images_per_class = _positive_int(images_per_class, "images_per_class")
    n_transforms = _positive_int(n_transforms, "n_transforms")
    batch_size = _positive_int(batch_size, "batch_size")
    generator = _cpu_generator(generator, "ekld")
    x_all, y_all, classes = _as_images_labels(images, class_sizes)
    sizes = _check_class_sizes(class_sizes, len(classes))
    device = _resolve_device(model_or_fn, device)
    T = n_transforms

    # 1. Images: up to images_per_class per class, a seeded choice, class by class.
    chosen: list[torch.Tensor] = []                                             # C × (n_c,)
    for c in range(len(classes)):
        idx = torch.nonzero(y_all == c).squeeze(1)                                # (size_c,)
        k = min(images_per_class, idx.numel())
        chosen.append(idx[torch.randperm(idx.numel(), generator=generator)[:k]])
    sel = torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.int64)   # (S,)
    S = sel.numel()
    if S == 0:
        raise DataError("ekld: the image set is empty; nothing to evaluate.")
    sel_images = x_all.index_select(0, sel).to(device)                          # (S, H, W) uint8

    # 2. All transform parameters at once, image-major: pair j is a copy of image j // T.
    params = tfm.sample_params(S * T, generator)
    pair_image = torch.arange(S, device=device).repeat_interleave(T)           # (S·T,)

    kl = torch.empty(S * T, dtype=torch.float64, device=device)                # (S·T,)
    agree = torch.empty(S * T, dtype=torch.bool, device=device)                # (S·T,)
    ent_t = torch.empty(S * T, dtype=torch.float64, device=device)             # (S·T,)
    maxp_t = torch.empty(S * T, dtype=torch.float64, device=device)            # (S·T,)
    hit_t = torch.empty(S * T, dtype=torch.bool, device=device)                # (S·T,)
    sel_labels = y_all.index_select(0, sel).to(device)                         # (S,)
    with _EvalMode(model_or_fn):
        # 3. p(·|x) once per clean image.
        logp_chunks, k_out = [], None
        for start in range(0, S, batch_size):
            x = to_float(sel_images[start:start + batch_size])                    # (b, 1, H, W)
            logp_chunks.append(_log_probs(model_or_fn, x, k_out, inputs, start == 0))
            k_out = logp_chunks[-1].shape[1]
        logp_x = torch.cat(logp_chunks)                                           # (S, K)
        top_x = logp_x.argmax(dim=1)                                              # (S,)

        # 4. p(·|x') for every transformed copy; x's row gathered by the copy's image index.
        for start in range(0, S * T, batch_size):
            stop = min(start + batch_size, S * T)
            img = pair_image[start:stop]                                          # (b,)
            x = to_float(sel_images.index_select(0, img))                         # (b, 1, H, W)
            x_t = tfm.apply(x, {k: v[start:stop] for k, v in params.items()})
            logq = _log_probs(model_or_fn, x_t, k_out, inputs)                    # (b, K)
            kl[start:stop] = _kl_from_logp(logp_x.index_select(0, img), logq)
            top_q = logq.argmax(dim=1)                                            # (b,)
            agree[start:stop] = top_x.index_select(0, img) == top_q
            ent_t[start:stop] = _entropy_from_logp(logq)
            maxp_t[start:stop] = logq.max(dim=1).values.exp()
            hit_t[start:stop] = top_q == sel_labels.index_select(0, img)

    # 5. Per image, then per class.
    kl_img = kl.view(S, T).mean(dim=1).cpu().numpy()                            # (S,)
    agree_img = agree.view(S, T).to(torch.float64).mean(dim=1).cpu().numpy()   # (S,)
    counts = np.array([len(c) for c in chosen], dtype=np.int64)                 # (C,)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    per_image = [kl_img[bounds[c]:bounds[c + 1]] for c in range(len(classes))]
    per_cons = [agree_img[bounds[c]:bounds[c + 1]] for c in range(len(classes))]
    ekld_c = np.array([v.mean() if len(v) else np.nan for v in per_image])
    cons_c = np.array([v.mean() if len(v) else np.nan for v in per_cons])

    # 6. Confidence beside invariance: per image (clean) and per pair (transformed), per class.
    def per_class(per_img: torch.Tensor) -> np.ndarray:                      # (S,) -> (C,)
        v = per_img.to(torch.float64).cpu().numpy()
        return np.array([v[bounds[c]:bounds[c + 1]].mean() if counts[c] else np.nan
                         for c in range(len(classes))])

    def pair_mean(per_pair: torch.Tensor) -> torch.Tensor:                   # (S·T,) -> (S,)
        return per_pair.to(torch.float64).view(S, T).mean(dim=1)

    confidence = {
        "entropy_clean": per_class(_entropy_from_logp(logp_x)),
        "entropy_transformed": per_class(pair_mean(ent_t)),
        "max_prob_clean": per_class(logp_x.max(dim=1).values.exp()),
        "max_prob_transformed": per_class(pair_mean(maxp_t)),
        "acc_clean": per_class(top_x == sel_labels),
        "acc_transformed": per_class(pair_mean(hit_t)),
    }
    return EKLDResult(
        transform=getattr(tfm, "name", type(tfm).__name__), classes=classes, ekld=ekld_c,
        consistency=cons_c, n_images=counts, n_pairs=counts * T, per_image=per_image,
        per_image_consistency=per_cons, image_index=[c.numpy() for c in chosen],
        n_transforms=T, images_per_class=images_per_class, class_sizes=sizes, **confidence)
