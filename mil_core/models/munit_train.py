"""Training GIT's single-domain MUNIT: class-balanced sides, LSGAN, checkpoints, exact resume.

Objective (Huang et al. 2018, Sec. 3.2, with the LSGAN of NVlabs' code; Zhou et al. 2022, Sec. 4
and REFERENCE §6 for the weights). Both "domains" are the same long-tailed training set; each
step draws a batch ``x_a`` and a batch ``x_b`` from two independent class-balanced streams and
fresh styles ``s_a, s_b ~ N(0, I_8)``. With ``(c_i, s'_i) = (E^c(x_i), E^s(x_i))``:

- image reconstruction  ``L^x_i = ‖G(c_i, s'_i) − x_i‖₁``
- translations          ``x_ba = G(c_b, s_a)``, ``x_ab = G(c_a, s_b)``
- latent reconstruction ``L^c_a = ‖E^c(x_ab) − c_a‖₁``,  ``L^s_b = ‖E^s(x_ab) − s_b‖₁`` (and a↔b)
- cycle (weight 0 in GIT) ``L^cyc_a = ‖G(E^c(x_ab), s'_a) − x_a‖₁``
- LSGAN critic          ``L_D = Σ_i E[(D(x_i) − 1)²] + E[D(x_ji)²]``  (x_ji: x_ba or x_ab)
- LSGAN generator       ``L_GAN = Σ_i E[(D(x_ji) − 1)²]``
- total                 ``L_G = w_gan·L_GAN + λ_x·ΣL^x + λ_s·ΣL^s + λ_c·ΣL^c + λ_cyc·ΣL^cyc``

with weights gan 1, λ_x 10, λ_s 1, λ_c 1, λ_cyc 0, every term summed over the two sides a and b.
One discriminator step then one generator step per iteration, as in NVlabs' loop; Adam (lr 1e-4,
betas (0.5, 0.999), L2 weight decay 1e-4) for both, the lr × 0.5 every 100k steps
(:func:`lr_at`; K49's 10k steps never reach a decay).

The two sides run as one concatenated batch of 2B images: every layer works per image
(InstanceNorm, LayerNorm, AdaIN, the critic; nothing takes batch statistics), so this is the two
passes of the equations in one, and a side sum ``Σ_i mean_i`` is ``2 · mean`` over the batch.

Reproducibility: the weights are initialised under ``torch.random.fork_rng`` with
``manual_seed(seed)``; every style draw comes from one CPU generator, and each side's indices
from its own seeded :class:`BalancedSampler`. A checkpoint (``checkpoint_dir/munit.safetensors``,
atomic, never pickled) holds the weights, both Adam states, every generator state, the samplers'
positions, the history and the step, so ``resume=True`` continues a CPU run bit-for-bit as if it
had never stopped.
"""
from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..checkpoint import OTHER_RUN_HINT, check_same_run, load_checkpoint, prepare_checkpoint_path
from ..data.longtail import class_balanced_weights
from ..data.mnist_like import ImageSet
from ..data.nuisance import to_float
from ..errors import CheckpointError, ConfigError, DataError, TrainingError
from ..levers import adam_impl
from ..runtime import get_device, progress
from .blocks import stream_seed
from .munit import MUNIT, MUNITConfig, check_images

__all__ = ["train_munit", "lr_at", "BalancedSampler", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "munit.safetensors"   # the run's latest checkpoint in ``checkpoint_dir``
_SIDE_TAGS = (0x5A, 0xB5)               # mixed into the two samplers' seeds (sides a and b)


def lr_at(step: int, cfg: MUNITConfig) -> float:
    """The learning rate of step ``step`` (0-based): ``lr · lr_gamma ** ⌊step / lr_step_size⌋``
    (NVlabs' ``StepLR``; REFERENCE §6: ×0.5 every 100k iterations)."""
    return cfg.lr * cfg.lr_gamma ** (step // cfg.lr_step_size)


class BalancedSampler:
    """One side's class-balanced index stream (GIT: both MUNIT loaders are class-balanced).

    An "epoch" is N = max(n_images, batch_size) draws with replacement, image i drawn with
    probability ∝ 1/n_{y_i} (every class equally likely, :func:`class_balanced_weights`); batches
    are consecutive slices of it, a new epoch is drawn when the next batch does not fit. The
    state (epoch, position, generator) makes the stream resumable exactly.
    """

    def __init__(self, labels: torch.Tensor, batch_size: int, seed: int) -> None:
        self.weights = class_balanced_weights(labels)                  # (N,) float64
        self.n, self.b = max(len(self.weights), batch_size), batch_size
        self.gen = torch.Generator()
        self.gen.manual_seed(int(seed))
        self.order = torch.zeros(0, dtype=torch.int64)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.b > len(self.order):
            self.order = torch.multinomial(self.weights, self.n, replacement=True,
                                           generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.b]                   # (batch_size,)
        self.pos += self.b
        return idx

    def state(self) -> dict[str, Any]:
        return {"order": self.order.clone(), "pos": self.pos, "gen": self.gen.get_state()}

    def load(self, state: dict[str, Any]) -> None:
        self.order, self.pos = state["order"].clone(), int(state["pos"])
        self.gen.set_state(state["gen"])


def train_munit(images: torch.Tensor | ImageSet, labels: torch.Tensor | None = None,
                cfg: MUNITConfig | None = None, *,
                seed: int = 0,                                  # seeds init, styles, samplers
                device: str | torch.device | None = None,       # None: cuda, mps, else cpu
                show_progress: bool = True,                     # a progress bar over the steps
                checkpoint_dir: str | Path | None = None,       # folder of munit.safetensors
                resume: bool = False,                           # continue its checkpoint
                overwrite: bool = False,                        # replace its checkpoint
                step_callback: Callable[[MUNIT, int], None] | None = None,  # after each step
                ) -> MUNIT:
    """Train a single-domain MUNIT on a (long-tailed) labelled training set.

    ``images``: float (N, C, H, W) in [−1, 1] with ``labels`` (N,) int64, or an
    :class:`~mil_core.data.mnist_like.ImageSet` (uint8, labels inside; mapped to [−1, 1]). The
    labels only drive the class-balanced samplers. ``cfg`` defaults to
    ``MUNITConfig.from_profile("paper")``. With ``checkpoint_dir`` the run is checkpointed
    atomically every ``cfg.checkpoint_every`` steps and at the end; ``resume=True`` continues it
    (same data, config and seed, else CheckpointError); a folder holding a checkpoint is refused
    unless ``resume`` or ``overwrite`` is set. ``step_callback(model, step)`` runs after every
    step (after a due checkpoint). Returns the model in evaluation mode, with ``history`` (a row
    every ``cfg.log_every`` steps) and ``timings``.

    Raises ConfigError / DataError for bad input before any training, and TrainingError, naming
    the last good checkpoint, when a loss becomes NaN or infinite.
    """
    # Initialize
    cfg = MUNITConfig.from_profile("paper") if cfg is None else cfg
    if not isinstance(cfg, MUNITConfig):
        raise ConfigError(f"train_munit: cfg must be a MUNITConfig, got {type(cfg).__name__}")
    cfg.validate()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"train_munit: seed must be a non-negative integer, got {seed!r}")
    x_all, y_all, digest = _prepare_data(images, labels, cfg)
    ckpt = prepare_checkpoint_path(checkpoint_dir, CHECKPOINT_NAME, resume=resume,
                                   overwrite=overwrite)
    dev = torch.device(device) if device is not None else get_device()

    # Construct network, random streams and samplers
    with torch.random.fork_rng(devices=[]):                 # seeded init, global RNG kept
        torch.manual_seed(seed)
        model = MUNIT(cfg)
    gen = torch.Generator()
    gen.manual_seed(stream_seed(seed))                      # every style draw of the run
    samplers = [BalancedSampler(y_all, cfg.batch_size, stream_seed(seed + tag))
                for tag in _SIDE_TAGS]
    step, opt_states, last_good = 0, None, None

    # Resume
    if ckpt is not None and resume and ckpt.exists():
        model, step, opt_states = _resume(ckpt, cfg, seed, digest, gen, samplers)
        last_good = ckpt
    model.to(dev).train()
    x_all = x_all.to(dev)

    # Setup optimizers
    opt_g = _adam(model.G.parameters(), cfg, dev)
    opt_d = _adam(model.D.parameters(), cfg, dev)
    if opt_states is not None:
        opt_g.load_state_dict(opt_states["g"])
        opt_d.load_state_dict(opt_states["d"])

    # Train
    t0, start = time.perf_counter(), step
    steps = range(step, cfg.iters)
    bar = progress(steps, total=cfg.iters, desc="MUNIT") if show_progress else steps
    for it in bar:
        lr = lr_at(it, cfg)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        batches = [x_all[torch.cat([s.next() for s in samplers]).to(dev)]   # (2B, C, H, W):
                   for _ in range(cfg.d_steps)]                              # side a, side b
        row = _iteration(model, opt_g, opt_d, batches, gen)
        step = it + 1
        if not all(math.isfinite(v) for v in row.values()):
            where = (f"the last good checkpoint is {last_good}" if last_good is not None
                     else "no checkpoint was written (pass checkpoint_dir to keep one)")
            raise TrainingError(f"MUNIT training diverged at step {step}: losses {row}; "
                                f"{where}. Lower MUNITConfig.lr or check the images.")
        if it % cfg.log_every == 0 or step == cfg.iters:
            model.history.append({"iter": it, **row, "lr": lr})
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(rec=f"{row['rec_loss']:.4f}", d=f"{row['d_loss']:.3f}",
                                refresh=False)
        if ckpt is not None and step % cfg.checkpoint_every == 0 and step < cfg.iters:
            _save(model, ckpt, _extra(seed, digest, gen, samplers, step, opt_g, opt_d))
            last_good = ckpt
        if step_callback is not None:
            step_callback(model, step)

    # Finish: timings and the final checkpoint (which a later resume=True returns as is)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    sec = time.perf_counter() - t0
    total = float(model.timings.get("total_seconds", 0.0)) + sec
    model.timings.update(device=str(dev), total_seconds=total,
                         iters_per_second=(step - start) / sec if sec > 0 and step > start
                         else model.timings.get("iters_per_second", 0.0))
    if ckpt is not None and step > start:
        _save(model, ckpt, _extra(seed, digest, gen, samplers, step, opt_g, opt_d))
    model.requires_grad_(False)
    return model.eval()


def _iteration(model: MUNIT, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               batches: list[torch.Tensor], gen: torch.Generator) -> dict[str, float]:
    """One discriminator step per batch of ``batches`` (``cfg.d_steps`` of them), then one
    generator step on the last; each batch is x (2B, C, H, W) = [x_a; x_b]."""
    cfg, G, D = model.config, model.G, model.D
    D.requires_grad_(True)
    for x in batches:
        # x_ab = G(c_a, s_b), x_ba = G(c_b, s_a) with s_a, s_b ~ N(0, I): on the concatenated
        # batch, every image's content with a fresh random style
        s_rand = torch.randn(x.shape[0], cfg.style_dim, generator=gen).to(x)   # (2B, S)
        with torch.no_grad():
            fake = G.decode(G.content(x), s_rand)                              # (2B, C, H, W)
        opt_d.zero_grad(set_to_none=True)
        d_loss = cfg.gan_w * _lsgan_d(D, x, fake)
        d_loss.backward()
        opt_d.step()
    x = batches[-1]

    s_rand = torch.randn(x.shape[0], cfg.style_dim, generator=gen).to(x)       # fresh styles
    D.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    c, s_own = G.encode(x)                               # (2B, 4·dim, 7, 7), (2B, S)
    x_rec = G.decode(c, s_own)                           # within-image reconstruction
    x_tr = G.decode(c, s_rand)                           # translations x_ab, x_ba
    c_rec, s_rec = G.encode(x_tr)
    rec_x = 2 * F.l1_loss(x_rec, x)                      # Σ over sides of the side means
    rec_s = 2 * F.l1_loss(s_rec, s_rand)
    rec_c = 2 * F.l1_loss(c_rec, c)
    g_adv = _lsgan_g(D, x_tr)
    g_loss = (cfg.gan_w * g_adv + cfg.recon_x_w * rec_x + cfg.recon_s_w * rec_s
              + cfg.recon_c_w * rec_c)
    row = {}
    if cfg.recon_x_cyc_w > 0:
        rec_cyc = 2 * F.l1_loss(G.decode(c_rec, s_own), x)
        g_loss = g_loss + cfg.recon_x_cyc_w * rec_cyc
        row["rec_cycle"] = float(rec_cyc.detach())
    g_loss.backward()
    opt_g.step()
    D.requires_grad_(True)
    return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()),
            "g_adv": float(g_adv.detach()), "rec_loss": float(rec_x.detach()),
            "rec_style": float(rec_s.detach()), "rec_content": float(rec_c.detach()), **row}


def _lsgan_d(D: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Σ_scales ``E[(D(x) − 1)²] + E[D(x̃)²]``, times 2: the sum of the two sides' means."""
    return 2 * sum(((r - 1) ** 2).mean() + (f ** 2).mean()
                   for r, f in zip(D(real), D(fake.detach())))


def _lsgan_g(D: torch.nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """Σ_scales ``E[(D(x̃) − 1)²]``, times 2: the sum of the two sides' means."""
    return 2 * sum(((f - 1) ** 2).mean() for f in D(fake))


def _adam(params: Any, cfg: MUNITConfig, dev: torch.device) -> torch.optim.Adam:
    """Adam with L2 weight decay, in the implementation :func:`mil_core.levers.adam_impl`
    picks for ``dev`` (``make_adam`` takes no weight decay)."""
    options = {"fused": {"fused": True}, "foreach": {"foreach": True},
               "loop": {"foreach": False}}[adam_impl(dev)]
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                            **options)


def _prepare_data(images: torch.Tensor | ImageSet, labels: torch.Tensor | None,
                  cfg: MUNITConfig) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(images (N, C, H, W) in [−1, 1] on the CPU, labels (N,) int64, digest of both)."""
    if isinstance(images, ImageSet):
        if labels is not None:
            raise ConfigError("train_munit: an ImageSet carries its labels; pass labels=None")
        images, labels = to_float(images.images) * 2 - 1, images.labels   # (N, 1, H, W)
    x = check_images(images, cfg, "train_munit").detach().cpu().contiguous()
    if labels is None:
        raise ConfigError("train_munit: labels (N,) are needed for the class-balanced samplers")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 \
            or labels.shape[0] != x.shape[0] or labels.is_floating_point() \
            or labels.dtype == torch.bool:
        got = (f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, torch.Tensor)
               else type(labels).__name__)
        raise DataError(f"train_munit: labels must be an integer tensor ({x.shape[0]},), one "
                        f"per image, got {got}")
    y = labels.detach().cpu().to(torch.int64)
    if int(y.min()) < 0:
        raise DataError(f"train_munit: labels must be >= 0, got {int(y.min())}")
    h = hashlib.sha256(x.numpy().tobytes())
    h.update(y.numpy().tobytes())
    return x, y, h.hexdigest()


def _save(model: MUNIT, path: Path, extra: dict[str, Any]) -> None:
    for p in model.parameters():
        if not bool(torch.isfinite(p).all()):
            raise TrainingError("refusing to checkpoint non-finite weights; the previous "
                                f"checkpoint {path} is kept")
    model.save(path, extra=extra)


def _extra(seed: int, digest: str, gen: torch.Generator, samplers: list[BalancedSampler],
           step: int, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer
           ) -> dict[str, Any]:
    return {"seed": int(seed), "data": digest, "step": int(step), "rng": gen.get_state(),
            "samplers": [s.state() for s in samplers],
            "opt": {"g": opt_g.state_dict(), "d": opt_d.state_dict()}}


def _resume(path: Path, cfg: MUNITConfig, seed: int, digest: str, gen: torch.Generator,
            samplers: list[BalancedSampler]) -> tuple[MUNIT, int, dict[str, Any]]:
    state = load_checkpoint(path)
    model = MUNIT.from_state(state)
    extra = state.get("extra") or {}
    check_same_run(path, "MUNITConfig", model.config.to_dict(), cfg.to_dict(), extra.get("seed"),
                   int(seed))
    if extra.get("data") != digest:
        raise CheckpointError(f"{path} was trained on other images or labels; {OTHER_RUN_HINT}")
    try:
        gen.set_state(extra["rng"])
        for sampler, s in zip(samplers, extra["samplers"], strict=True):
            sampler.load(s)
        return model, int(extra["step"]), extra["opt"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} lacks the training state ({exc}) needed to "
                              "resume") from exc
