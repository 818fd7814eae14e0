"""GIT's nuisance transforms, batched in torch, with exactly the distributions of REFERENCE §6.

- **rot**: angle θ ~ U(−180°, 180°), bicubic rotation about the image centre, zero padding;
  positive θ turns the content counter-clockwise (as PIL's ``rotate`` that GIT calls).
- **bg**: every pixel equal to 0 is set to one intensity v/255, v ~ U{0..99}, per image.
- **dil**: with p = 0.6 dilate with a k×k square, k ~ U{2,3,4}, else erode with k ~ U{1,2}
  (k = 1 is the identity). Even k is anchored as OpenCV's ``cv2.dilate``/``cv2.erode`` (which
  GIT calls) anchor it: the window covers ⌊k/2⌋ pixels before and ⌊(k−1)/2⌋ after, so a 2×2
  dilation spreads a pixel down and to the right. The border never adds or removes ink.
- **identity**: returns its input (a control for tests and eKLD).

Images are float tensors ``(B, 1, H, W)`` in [0, 1] (uint8 / 255). Parameters are sampled on the
CPU from a ``torch.Generator`` (:meth:`NuisanceTransform.sample_params`), so a seed gives the same
transforms on CPU and GPU; :meth:`NuisanceTransform.apply` runs on ``x``'s device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .mnist_like import ImageSet

__all__ = ["NuisanceTransform", "Identity", "Rotation", "Background", "DilateErode",
           "TRANSFORMS", "get_transform", "dilate", "erode", "to_float", "to_uint8", "transform_dataset",
           "make_transformed_test_split"]

Params = dict[str, torch.Tensor]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 gray ``(N, H, W)`` → float32 ``(N, 1, H, W)`` in [0, 1]; uint8 colour
    ``(N, 3, H, W)`` (CIFAR) → float32 ``(N, 3, H, W)``."""
    x = images.to(torch.float32).div(255.0)
    return x.unsqueeze(1) if images.dim() == 3 else x


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float ``(N, 1, H, W)`` in [0, 1] → uint8 ``(N, H, W)`` (rounded); float
    ``(N, 3, H, W)`` → uint8 ``(N, 3, H, W)``: the inverse of :func:`to_float`."""
    x = x.squeeze(1) if x.dim() == 4 and x.shape[1] == 1 else x
    return x.mul(255.0).round().clamp(0, 255).to(torch.uint8)


def _check_generator(generator: torch.Generator | None) -> None:
    if generator is not None and generator.device.type != "cpu":
        raise ConfigError("Nuisance parameters are sampled on the CPU so that a seed gives the "
                          "same transforms on every device: pass a CPU torch.Generator, got one "
                          f"on {generator.device}.")


def _check_batch(x: torch.Tensor, params: Params, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise DataError(f"{name}: x must be a float tensor (B, 1, H, W) in [0, 1], got "
                        f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}; "
                        "convert uint8 images with to_float().")
    for key, value in params.items():
        if value.shape[0] != x.shape[0]:
            raise DataError(f"{name}: params[{key!r}] holds {value.shape[0]} values for a batch "
                            f"of {x.shape[0]}; sample them with sample_params({x.shape[0]}).")


class NuisanceTransform:
    """A random image transform T(·|x): ``sample_params`` (CPU, seeded) then ``apply``."""
    name: str = "base"

    def sample_params(self, n: int, generator: torch.Generator | None = None) -> Params:
        """Draw the parameters of ``n`` transforms on the CPU (one per image)."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Transform ``x`` ``(B, 1, H, W)`` with ``params`` (from ``sample_params(B)``)."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        return self.apply(x, self.sample_params(x.shape[0], generator))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(NuisanceTransform):
    """No nuisance: returns its input unchanged (draws nothing from the generator)."""
    name = "identity"

    def sample_params(self, n: int, generator: torch.Generator | None = None) -> Params:
        _check_generator(generator)
        return {}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        _check_batch(x, params, self.name)
        return x


@dataclass(frozen=True)
class Rotation(NuisanceTransform):
    """ROT (REFERENCE §6): angle ~ U(−max_degrees, max_degrees), bicubic, zero padding."""
    max_degrees: float = 180.0   # GIT: angles uniform in (−180°, 180°)
    name = "rot"

    def sample_params(self, n: int, generator: torch.Generator | None = None) -> Params:
        _check_generator(generator)
        u = torch.rand(n, generator=generator, dtype=torch.float64)              # (n,)
        return {"angle": (2.0 * u - 1.0) * self.max_degrees}                    # degrees

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        _check_batch(x, params, self.name)
        B, _, H, W = x.shape
        rad = params["angle"].to(torch.float64) * (math.pi / 180.0)             # (B,)
        cos, sin = torch.cos(rad), torch.sin(rad)
        # affine_grid maps output to input coordinates, normalised to [-1, 1] per axis. In
        # pixel units (y down) the content turns by +θ counter-clockwise when the input is read
        # at [[cos, -sin], [sin, cos]] · p_out; rescaling the axes gives the entries below.
        theta = torch.zeros(B, 2, 3, dtype=torch.float64)                          # (B, 2, 3)
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = -sin * (H / W)
        theta[:, 1, 0] = sin * (W / H)
        theta[:, 1, 1] = cos
        theta = theta.to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)           # (B, H, W, 2)
        out = F.grid_sample(x, grid, mode="bicubic", padding_mode="zeros", align_corners=False)
        return out.clamp_(0.0, 1.0)                                                # (B, 1, H, W)


@dataclass(frozen=True)
class Background(NuisanceTransform):
    """BG (REFERENCE §6): pixels equal to 0 become v/255, v ~ U{0..max_value}, one v per image."""
    max_value: int = 99          # GIT: np.random.randint(0, 100), i.e. 0..99 of 255
    name = "bg"

    def sample_params(self, n: int, generator: torch.Generator | None = None) -> Params:
        _check_generator(generator)
        return {"value": torch.randint(0, self.max_value + 1, (n,), generator=generator)}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        _check_batch(x, params, self.name)
        v = params["value"].to(device=x.device, dtype=x.dtype).div(255.0)         # (B,)
        return torch.where(x == 0, v.view(-1, 1, 1, 1), x)                         # (B, 1, H, W)


def _pad_before_after(k: int) -> tuple[int, int]:
    """OpenCV's default anchor (k // 2): the k×k window spans [p − k//2, p + (k−1)//2]."""
    return k // 2, (k - 1) // 2


def dilate(x: torch.Tensor, k: int) -> torch.Tensor:
    """Grey dilation with a k×k square (max filter), anchored as OpenCV; border adds nothing."""
    if k == 1:
        return x.clone()
    b, a = _pad_before_after(k)
    xp = F.pad(x, (b, a, b, a), value=float("-inf"))                               # (B, C, H+k-1, W+k-1)
    return F.max_pool2d(xp, kernel_size=k, stride=1)                               # (B, C, H, W)


def erode(x: torch.Tensor, k: int) -> torch.Tensor:
    """Grey erosion with a k×k square (min filter), anchored as OpenCV; border removes nothing."""
    if k == 1:
        return x.clone()
    b, a = _pad_before_after(k)
    xp = F.pad(-x, (b, a, b, a), value=float("-inf"))                              # pad x with +inf
    return -F.max_pool2d(xp, kernel_size=k, stride=1)                              # (B, C, H, W)


@dataclass(frozen=True)
class DilateErode(NuisanceTransform):
    """DIL (REFERENCE §6): p_dilate → dilate, k ~ U(dilate_sizes); else erode, k ~ U(erode_sizes)."""
    p_dilate: float = 0.6                        # GIT: np.random.uniform() < 0.6 → dilate
    dilate_sizes: tuple[int, ...] = (2, 3, 4)    # GIT: np.random.randint(2, 5)
    erode_sizes: tuple[int, ...] = (1, 2)        # GIT: np.random.randint(1, 3); 1 = identity
    name = "dil"

    def sample_params(self, n: int, generator: torch.Generator | None = None) -> Params:
        _check_generator(generator)
        is_dilate = torch.rand(n, generator=generator, dtype=torch.float64) < self.p_dilate
        kd = torch.tensor(self.dilate_sizes)[torch.randint(0, len(self.dilate_sizes), (n,),
                                                           generator=generator)]
        ke = torch.tensor(self.erode_sizes)[torch.randint(0, len(self.erode_sizes), (n,),
                                                          generator=generator)]
        return {"dilate": is_dilate, "size": torch.where(is_dilate, kd, ke).to(torch.int64)}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        _check_batch(x, params, self.name)
        out = x.clone()
        is_dilate, size = params["dilate"].cpu(), params["size"].cpu()
        # One max-pool per (operation, kernel size) group of the batch.
        for op_dilate in (True, False):
            for k in torch.unique(size[is_dilate == op_dilate]).tolist():
                if k == 1:
                    continue
                sel = torch.nonzero((is_dilate == op_dilate) & (size == k)).squeeze(1)
                sel = sel.to(x.device)
                op = dilate if op_dilate else erode
                out[sel] = op(x.index_select(0, sel), int(k))
        return out


TRANSFORMS: dict[str, type[NuisanceTransform]] = {
    "identity": Identity, "rot": Rotation, "bg": Background, "dil": DilateErode}


def get_transform(name: str, **kw: object) -> NuisanceTransform:
    """A transform by name ("rot", "bg", "dil", "identity"); ``kw`` overrides its defaults."""
    try:
        cls = TRANSFORMS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"Unknown nuisance transform {name!r}; choose one of "
                          f"{sorted(TRANSFORMS)}.") from None
    return cls(**kw)   # type: ignore[arg-type]


def transform_dataset(images: torch.Tensor, name: str | NuisanceTransform,
                      generator: torch.Generator | None = None, chunk_size: int = 4096,
                      device: str | torch.device | None = None) -> torch.Tensor:
    """Apply one random transform to each stored uint8 image ``(N, H, W)`` (or colour
    ``(N, 3, H, W)``), as GIT does once for its training and test data (REFERENCE §6). Returns a
    new uint8 tensor of the same shape.

    All parameters are drawn first (on the CPU), so the result depends only on the generator's
    seed, not on ``chunk_size`` or ``device`` (where the work runs; default: the images').
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 \
            or not (images.dim() == 3 or (images.dim() == 4 and images.shape[1] == 3)):
        raise DataError(f"transform_dataset: images must be uint8 (N, H, W) or (N, 3, H, W), got "
                        f"{getattr(images, 'dtype', type(images))} "
                        f"{tuple(getattr(images, 'shape', ()))}.")
    if chunk_size < 1:
        raise ConfigError(f"transform_dataset: chunk_size must be >= 1, got {chunk_size}.")
    tfm = get_transform(name) if isinstance(name, str) else name
    params = tfm.sample_params(images.shape[0], generator)
    device = torch.device(device) if device is not None else images.device
    out = torch.empty_like(images)
    for start in range(0, images.shape[0], chunk_size):
        stop = min(start + chunk_size, images.shape[0])
        x = to_float(images[start:stop].to(device))                                # (b, C, H, W)
        chunk_params = {k: v[start:stop] for k, v in params.items()}
        out[start:stop] = to_uint8(tfm.apply(x, chunk_params)).to(out.device)
    return out


def make_transformed_test_split(test: ImageSet, name: str, seed: int) -> ImageSet:
    """The held-out split with one ``name`` transform per image, seeded by ``seed`` (§6: GIT
    evaluates on a transformed test set)."""
    generator = torch.Generator().manual_seed(seed)
    images = transform_dataset(test.images, name, generator)
    return ImageSet(images, test.labels.clone(), list(test.classes), f"{test.name}-{name}")
