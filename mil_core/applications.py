"""SinGAN's single-image applications, for SinGAN and for one image of a hyper-GAN alike.

SinGAN (Shaham et al., ICCV 2019, Sec. 4) and MIL (Bensadoun et al., NeurIPS 2021, App. D–E,
"in the same exact way") define every application on the residual chain
``x_s = G_s(σ_s z_s + ↑x_{s−1}) + ↑x_{s−1}``, coarse (s = 0) to fine:

- **any size / aspect** (:func:`sample`): every scale's noise map scaled by one ratio;
- **injection** (:func:`inject`): an image resized to scale ``s − 1`` stands for ``x_{s−1}``;
  scales ``s …`` run with fresh noise, so structure coarser than ``s`` comes from the image;
- **harmonization / editing** (:func:`harmonize`): inject the naive paste (or the edit), then
  keep the output inside the mask and the input outside (SinGAN's ``(1−m)·real + m·out``);
- **paint-to-image** (:func:`paint_to_image`): inject a flat-colour paint at a coarse scale;
- **super-resolution** (:func:`super_resolve`): upsample by the pyramid's factor and refine with
  the finest generator, repeated until the requested factor is reached;
- **animation** (:func:`animate`): a random walk of the coarsest noise around the reconstruction
  noise z* (SinGAN's ``generate_gif``: α = 0.1 pull to z*, β = 0.9 momentum), finer scales with
  one fixed noise draw, written as a GIF by :func:`save_gif`.

A model is seen through a :class:`Chain` (:func:`as_chain`: a SinGAN, or a HyperGAN and the image
whose generator it emits). Inputs a user can make without an image editor are in
:mod:`mil_core.application_inputs`; the numbers beside the pictures (patch statistics of a
region against the background, frame-to-frame change) are at the end of this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .data.pyramid import resize_to
from .errors import ConfigError, DataError
from .metrics.swd import sliced_wasserstein

__all__ = ["Chain", "as_chain", "sample", "inject", "harmonize", "paint_to_image", "training_view", "run_all",
           "super_resolve", "animate", "save_gif", "region_swd", "patch_swd", "frame_changes",
           "default_scale", "check_mask"]


@dataclass
class Chain:
    """One single-image generator as the applications drive it."""
    shapes: list[tuple[int, int]]     # (H, W) per trained scale, coarse → fine
    noise_amps: list[float]           # σ_s per scale
    z_star: torch.Tensor              # (1, 3, H_0, W_0) the reconstruction noise at scale 0
    run: Callable[..., torch.Tensor]  # run(noise, shapes=, start=, x=, reconstruct=) → (B, 3, H, W)
    scaled_shapes: Callable[[tuple[int, int]], list[tuple[int, int]]]  # the model's own: per-scale
    #                                   shapes for another finest (H, W), every scale × one ratio
    name: str                         # "SinGAN" or "hyper-GAN" (figures, errors)

    @property
    def n_scales(self) -> int:
        return len(self.shapes)

    def noise(self, n: int, shapes: list[tuple[int, int]],
              generator: torch.Generator | None) -> list[torch.Tensor]:
        return [torch.randn(n, 3, *s, generator=generator) for s in shapes]


def as_chain(model: Any, image: torch.Tensor | None = None) -> Chain:
    """The :class:`Chain` of a trained SinGAN, or of a HyperGAN for ``image`` (the image whose
    generator the hyper-network emits; it may be one it never saw)."""
    from .models.hypergan import HyperGAN
    from .models.singan import SinGAN

    if isinstance(model, SinGAN):
        if image is not None:
            raise ConfigError("as_chain: a SinGAN models its own training image; pass no image")
        n = model.n_trained
        if n == 0:
            raise ConfigError("as_chain: this SinGAN has no trained scale yet")
        return Chain(list(model.shapes[:n]), list(model.noise_amps[:n]), model.z_star.cpu(),
                     model.run_scales, model.scaled_shapes, "SinGAN")
    if isinstance(model, HyperGAN):
        if image is None:
            raise ConfigError("as_chain: a HyperGAN needs the image whose generator to use "
                              "(as_chain(model, image))")
        weights = model.generator_weights(model.embed([image]))
        n = model.n_trained

        def run(noise, *, shapes=None, start=0, x=None, reconstruct=False):
            b = (noise[start].shape[0] if noise is not None else
                 x.shape[0] if x is not None else 1)
            with torch.no_grad():
                return model.run_scales(weights, b, shapes=shapes, noise=noise, start=start,
                                        x=None if x is None else x.to(model.device),
                                        reconstruct=reconstruct)
        return Chain(list(model.shapes[:n]), list(model.noise_amps[:n]), model.z_star.cpu(),
                     run, model.scaled_shapes, "hyper-GAN")
    raise ConfigError(f"as_chain: expected a SinGAN or a HyperGAN, got {type(model).__name__}")


def _check_n(n: Any, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{what}: n must be a positive integer, got {n!r}")


def _check_scale(chain: Chain, scale: Any, what: str) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale < chain.n_scales:
        raise ConfigError(f"{what}: injection scale must be an integer in [1, "
                          f"{chain.n_scales - 1}] (0 is the coarsest, whose input is always 0; "
                          f"{chain.n_scales - 1} the finest), got {scale!r}")
    return scale


def _check_image(x: Any, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3 \
            or not x.is_floating_point():
        raise DataError(f"{what} must be a float image (3, H, W) in [-1, 1], got "
                        f"{getattr(x, 'dtype', type(x).__name__)} "
                        f"{tuple(getattr(x, 'shape', ()))}; load it with mil_core.data.load_image")
    return x.detach().float().cpu().clamp(-1, 1)


def default_scale(chain: Chain, application: str) -> int:
    """The injection scale used when none is given. SinGAN leaves it to the user and reports
    coarse scales for paint-to-image and middle scales for harmonization and editing (its
    Figs. 9–11); in this indexing (0 = coarsest): paint 1, harmonization and editing
    ``n_scales // 2``, never below 1."""
    if application == "paint":
        return 1
    if application in ("harmonization", "editing"):
        return max(1, chain.n_scales // 2)
    raise ConfigError(f"default_scale: unknown application {application!r}")


def sample(chain: Chain, n: int = 1, size: tuple[int, int] | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` random samples (n, 3, H, W) in [-1, 1], at the training size or at ``size`` (any
    size and aspect: the noise maps change shape, the nets are fully convolutional)."""
    _check_n(n, "sample")
    shapes = chain.shapes if size is None else chain.scaled_shapes(tuple(size))
    return chain.run(chain.noise(n, shapes, generator), shapes=shapes).clamp(-1, 1).cpu()


def inject(chain: Chain, image: torch.Tensor, scale: int, n: int = 1,
           generator: torch.Generator | None = None, *, zero_noise: bool = False
           ) -> torch.Tensor:
    """``image`` injected as ``x_{scale−1}``: resized (bicubic) to scale ``scale − 1``'s shape,
    then upsampled by the chain itself as every ``x_{scale−1}`` is (SinGAN's reference code
    resizes its input to scale n − 1 and up again the same way); scales ``scale …`` finest run
    with fresh noise (``zero_noise``: none). So injecting the model's own output of scale
    ``scale − 1`` continues its chain exactly. (n, 3, H_N, W_N)."""
    image = _check_image(image, "inject: image")
    _check_scale(chain, scale, "inject")
    _check_n(n, "inject")
    x = resize_to(image, chain.shapes[scale - 1]).unsqueeze(0).expand(n, -1, -1, -1)
    fresh = chain.noise(n, chain.shapes[scale:], generator)     # drawn for the scales that run
    noise = [None] * scale + [torch.zeros_like(z) if zero_noise else z for z in fresh]
    return chain.run(noise, start=scale, x=x.contiguous()).clamp(-1, 1).cpu()


def check_mask(mask: Any, image: torch.Tensor, what: str = "mask") -> torch.Tensor:
    """A mask (1, H, W) or (H, W) of exactly 0s and 1s, the image's size → float (1, H, W)."""
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3) \
            or (mask.dim() == 3 and mask.shape[0] != 1):
        raise DataError(f"{what} must be a tensor (H, W) or (1, H, W), got "
                        f"{tuple(getattr(mask, 'shape', ())) or type(mask).__name__}")
    m = mask.detach().float().cpu().reshape(1, *mask.shape[-2:])
    if tuple(m.shape[-2:]) != tuple(image.shape[-2:]):
        raise DataError(f"{what} is {tuple(m.shape[-2:])} but the image is "
                        f"{tuple(image.shape[-2:])}; make them the same size (resize the mask "
                        "with nearest-neighbour interpolation)")
    if not bool(((m == 0) | (m == 1)).all()):
        raise DataError(f"{what} is not binary (values {sorted(set(m.unique().tolist()))[:5]}…);"
                        " threshold it, e.g. (mask > 0.5).float()")
    if float(m.sum()) == 0:
        raise DataError(f"{what} is empty (no pixel is 1); nothing would change")
    return m


def harmonize(chain: Chain, composite: torch.Tensor, mask: torch.Tensor,
              scale: int | None = None, n: int = 1, generator: torch.Generator | None = None,
              application: str = "harmonization") -> torch.Tensor:
    """Harmonization (a naive paste) or editing (a copy-move or any edit), SinGAN Sec. 4:
    inject ``composite`` at ``scale`` (default :func:`default_scale`), then keep the output
    inside ``mask`` and ``composite`` outside. The output has the training image's size, so
    ``composite`` and ``mask`` are resized to it. (n, 3, H_N, W_N)."""
    composite = _check_image(composite, f"{application}: composite")
    mask = check_mask(mask, composite, f"{application}: mask")
    scale = default_scale(chain, application) if scale is None else scale
    out = inject(chain, composite, scale, n, generator)
    shape = chain.shapes[-1]
    comp = resize_to(composite, shape)
    m = (F.interpolate(mask[None], size=shape, mode="nearest")[0] > 0.5).float()
    return m * out + (1 - m) * comp


def paint_to_image(chain: Chain, paint: torch.Tensor, scale: int | None = None, n: int = 1,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Paint-to-image: a flat-colour paint injected at a coarse ``scale`` (default 1)."""
    return inject(chain, paint, default_scale(chain, "paint") if scale is None else scale, n,
                  generator)


def super_resolve(chain: Chain, image: torch.Tensor, factor: float,
                  generator: torch.Generator | None = None, zero_noise: bool = False
                  ) -> torch.Tensor:
    """SinGAN's super-resolution: ``k = ceil(log factor / log r)`` times, upsample by the
    pyramid's finest ratio r (bicubic) and refine with the finest generator (noise at its σ),
    then resize to exactly ``factor`` × the input. (1, 3, round(factor·H), round(factor·W))."""
    image = _check_image(image, "super_resolve: image")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1:
        raise ConfigError(f"super_resolve: factor must be a number > 1, got {factor!r}")
    if chain.n_scales < 2:
        raise ConfigError("super_resolve needs a model with at least 2 scales (the upsampling "
                          "ratio is the pyramid's)")
    r = chain.shapes[-1][0] / chain.shapes[-2][0]
    steps = max(1, math.ceil(math.log(factor) / math.log(r) - 1e-9))
    target = (round(image.shape[1] * factor), round(image.shape[2] * factor))
    x = image[None]
    last = chain.n_scales - 1
    for _ in range(steps):
        shape = (round(x.shape[2] * r), round(x.shape[3] * r))
        up = F.interpolate(x, size=shape, mode="bicubic", align_corners=False).clamp(-1, 1)
        shapes = list(chain.shapes[:last]) + [shape]
        noise = chain.noise(1, shapes, generator)
        if zero_noise:
            noise = [torch.zeros_like(z) for z in noise]
        # start at the finest scale with ↑x = up: run() upsamples x to shapes[last] (identity)
        x = chain.run(noise, shapes=shapes, start=last, x=up).clamp(-1, 1).cpu()
    return resize_to(x[0], target).unsqueeze(0).clamp(-1, 1)


def animate(chain: Chain, n_frames: int = 24, alpha: float = 0.1, beta: float = 0.9,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """SinGAN's animation: ``z_t = α z* + (1 − α)(z_{t−1} + β (z_{t−1} − z_{t−2}) + (1 − β) ε)``
    at the coarsest scale (a momentum random walk pulled towards the reconstruction noise z*),
    the finer scales with one fixed noise draw. (n_frames, 3, H_N, W_N) in [-1, 1]."""
    _check_n(n_frames, "animate")
    if not (0 <= alpha <= 1 and 0 <= beta <= 1):
        raise ConfigError(f"animate: alpha and beta must lie in [0, 1], got {alpha}, {beta}")
    fixed = chain.noise(1, chain.shapes, generator)
    z_star = chain.z_star / max(chain.noise_amps[0], 1e-12)   # run() multiplies by σ_0 again
    z_prev = z_prev2 = 0.95 * z_star + 0.05 * torch.randn(z_star.shape, generator=generator)
    frames = []
    for _ in range(n_frames):
        eps = torch.randn(z_star.shape, generator=generator)
        z = alpha * z_star + (1 - alpha) * (z_prev + beta * (z_prev - z_prev2) + (1 - beta) * eps)
        frames.append(chain.run([z] + fixed[1:]).clamp(-1, 1).cpu())
        z_prev2, z_prev = z_prev, z
    return torch.cat(frames)


def save_gif(frames: torch.Tensor, path: str | Path, fps: float = 10.0) -> Path:
    """Write ``frames`` (T, 3, H, W) in [-1, 1] as a looping GIF (atomically); returns the
    path."""
    from PIL import Image

    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
        raise DataError(f"save_gif: frames must be (T, 3, H, W), got "
                        f"{tuple(getattr(frames, 'shape', ()))}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(a) for a in arr]
    tmp = path.with_suffix(".gif.tmp")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(round(1000 / fps)), loop=0)
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- numbers

def _patches(x: torch.Tensor, k: int = 7) -> torch.Tensor:
    return F.unfold(x[None].double(), k).squeeze(0).t()                  # (L, 3·k·k)


def _normalised(image: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (image - ref.mean((1, 2), keepdim=True)) / ref.std((1, 2), keepdim=True).clamp_min(1e-6)


def region_swd(image: torch.Tensor, mask: torch.Tensor, n_projections: int = 256,
               seed: int = 0) -> float:
    """How far the patch statistics inside ``mask`` are from the rest of the image: the sliced
    Wasserstein distance (×10³) between the 7×7 patches whose centre lies inside the mask and
    those whose centre lies outside, channels normalised by the image's own mean and std (the
    every-patch SWD's convention 3, at one level). 0: the region is statistically background."""
    image = _check_image(image, "region_swd: image")
    m = check_mask(mask, image, "region_swd: mask")
    k = 7
    if min(image.shape[1:]) < k + 2:
        raise DataError(f"region_swd needs an image of at least {k + 2} px a side")
    p = _patches(_normalised(image, image), k)
    centre = m[0, k // 2: image.shape[1] - k // 2, k // 2: image.shape[2] - k // 2].reshape(-1)
    inside, outside = p[centre > 0.5], p[centre <= 0.5]
    if len(inside) == 0 or len(outside) == 0:
        raise DataError("region_swd: the mask leaves no patch centre inside or none outside "
                        "(away from the 3-px border)")
    g = torch.Generator().manual_seed(int(seed))
    return 1e3 * sliced_wasserstein(inside, outside, n_projections, generator=g)


def patch_swd(real: torch.Tensor, fake: torch.Tensor, n_projections: int = 256,
              seed: int = 0) -> float:
    """SWD ×10³ between every 7×7 patch of ``real`` and of ``fake``, two images of any sizes
    (a retargeted sample against its training image), at one level: the raw patches, channels
    normalised by ``real``'s mean and std. Unlike :func:`mil_core.metrics.swd.swd_per_sample`
    it needs no common Laplacian pyramid, so sizes and aspects may differ freely."""
    real = _check_image(real, "patch_swd: real")
    fake = _check_image(fake, "patch_swd: fake")
    if min(*real.shape[1:], *fake.shape[1:]) < 7:
        raise DataError("patch_swd needs images of at least 7 px a side (the patch size)")
    g = torch.Generator().manual_seed(int(seed))
    return 1e3 * sliced_wasserstein(_patches(_normalised(real, real)),
                                    _patches(_normalised(fake, real)), n_projections, generator=g)


def frame_changes(frames: torch.Tensor) -> dict[str, float]:
    """An animation's numbers: mean absolute change between consecutive frames and the drift of
    the last frame from the first (both on [-1, 1] pixels), and the largest drift."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[0] < 2:
        raise DataError("frame_changes needs at least 2 frames (T, 3, H, W)")
    step = (frames[1:] - frames[:-1]).abs().mean((1, 2, 3))
    drift = (frames - frames[:1]).abs().mean((1, 2, 3))
    return {"frame change": float(step.mean()), "drift last": float(drift[-1]),
            "drift max": float(drift.max())}


# ----------------------------------------------------------------------------- the whole suite

def training_view(chain: Chain, image: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
    """``image`` centre-cropped to the chain's aspect and resized to ``factor`` × its finest
    shape: at 1, the frame in which the applications' inputs are made (a hyper-GAN crops every
    image to its canonical aspect); above 1, the same view at a higher resolution, the ground
    truth that super-resolving the training view is compared with."""
    from .data.pyramid import center_crop_to_aspect

    image = _check_image(image, "training_view: image")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
        raise ConfigError(f"training_view: factor must be a positive number, got {factor!r}")
    h, w = chain.shapes[-1]
    shape = (round(h * factor), round(w * factor))
    view = center_crop_to_aspect(image, h / w)
    if factor > 1 and (view.shape[1] < shape[0] or view.shape[2] < shape[1]):
        raise DataError(f"training_view: the image's {chain.name} view is {tuple(view.shape[1:])}"
                        f", smaller than {factor:g} × the training size {shape}; there is no "
                        "ground truth at that resolution (use a larger photo or a smaller "
                        "sr_factor)")
    return resize_to(view, shape)


def run_all(chain: Chain, image: torch.Tensor, other: torch.Tensor, *, seed: int = 0,
            n_frames: int = 16, sr_factor: float = 2.0, paint_colours: int = 5
            ) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Every application on ``chain``'s image with inputs made in code (notebook 08):

    - harmonization: a crop of ``other`` pasted into the lower middle (a quarter of each side);
    - editing: the upper-left quarter copied to the lower right;
    - paint-to-image: ``image`` quantised to ``paint_colours`` flat colours;
    - super-resolution: the training view super-resolved by ``sr_factor`` beyond the model's
      training size (SinGAN's protocol: the model was trained on the low-resolution image), against
      bicubic, both compared with ``image`` itself at that resolution (so ``image`` must be at
      least ``sr_factor`` × the training size: a known downscale);
    - animation: ``n_frames`` frames.

    Returns ``(pictures, rows)``: the inputs and outputs by name, and one row per application
    with its number before and after (region patch SWD for harmonization and editing; per-sample
    SWD ×10³ to the real image for paint and super-resolution, and RMSE on 0–255 for
    super-resolution; frame change and drift for the animation)."""
    from .application_inputs import copy_move, naive_paste, quantize_paint
    from .metrics.swd import swd_per_sample

    real = training_view(chain, image)
    truth = training_view(chain, image, sr_factor)                     # (3, f·H, f·W)
    h, w = real.shape[1:]
    g = lambda k: torch.Generator().manual_seed(int(seed) + k)   # noqa: E731
    bh, bw = max(4, h // 4), max(4, w // 4)
    obj = training_view(chain, other)[:, h // 3: h // 3 + bh, w // 3: w // 3 + bw]
    comp, m_paste = naive_paste(real, obj, (h - bh - h // 8, (w - bw) // 2, bh, bw))
    harm = harmonize(chain, comp, m_paste, generator=g(1))[0]
    edited, m_edit = copy_move(real, (h // 8, w // 8, bh, bw), (h - bh - h // 8, w - bw - w // 8))
    edit = harmonize(chain, edited, m_edit, generator=g(2), application="editing")[0]
    paint = quantize_paint(real, paint_colours, seed=seed)
    painted = paint_to_image(chain, paint, generator=g(3))[0]
    sr = super_resolve(chain, real, sr_factor, generator=g(4))[0]
    bicubic = resize_to(real, tuple(truth.shape[1:]))
    frames = animate(chain, n_frames, generator=g(5))
    swd_to_real = lambda x: swd_per_sample(real, x[None])["mean"]   # noqa: E731
    swd_hr = lambda x: swd_per_sample(truth, x[None])["mean"]       # noqa: E731
    rmse = lambda x, y: float(127.5 * (x - y).pow(2).mean().sqrt())  # noqa: E731
    ch = frame_changes(frames)
    rows = [
        {"application": "harmonization", "measure": "region patch SWD ×10³ (pasted vs rest)",
         "input": region_swd(comp, m_paste, seed=seed), "output": region_swd(harm, m_paste, seed=seed),
         "scale": default_scale(chain, "harmonization")},
        {"application": "editing", "measure": "region patch SWD ×10³ (moved vs rest)",
         "input": region_swd(edited, m_edit, seed=seed), "output": region_swd(edit, m_edit, seed=seed),
         "scale": default_scale(chain, "editing")},
        {"application": "paint-to-image", "measure": "SWD ×10³ to the real image",
         "input": swd_to_real(paint), "output": swd_to_real(painted),
         "scale": default_scale(chain, "paint")},
        {"application": "super-resolution", "measure": f"SWD ×10³ to the ×{sr_factor:g} real image (input: bicubic)",
         "input": swd_hr(bicubic), "output": swd_hr(sr), "scale": chain.n_scales - 1},
        {"application": "super-resolution", "measure": f"RMSE (0–255) to the ×{sr_factor:g} real image (input: bicubic)",
         "input": rmse(bicubic, truth), "output": rmse(sr, truth), "scale": chain.n_scales - 1},
        {"application": "animation", "measure": "frame change / drift of the last frame",
         "input": ch["frame change"], "output": ch["drift last"], "scale": 0},
    ]
    pictures = {"real": real, "paste": comp, "harmonized": harm, "edit input": edited,
                "edited": edit, "paint": paint, "painted": painted, "high-res truth": truth,
                "bicubic": bicubic, "super-resolved": sr, "frames": frames}
    for r in rows:
        r["model"] = chain.name
    return pictures, rows
