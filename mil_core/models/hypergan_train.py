"""Training MIL's hyper-GAN: three regimes, progressive scales, DDP, checkpoints, exact resume.

Objective of scale ``n`` (MIL Sec. 4, Eq. 12–15; REFERENCE §4), per batch of images ``I``:

- critic:    ``L_D = E[D_I(G_I(z))] − E[D_I(x_n)] + λ·GP``                          (Eq. 12)
- generator: ``L_G = −E[D_I(G_I(z))] + α·‖G_I(z*) − x_n‖²``                          (Eq. 13–14)
  or, with ``rec_mode="accumulated"``, ``α·Σ_{s≤n} ‖G_I(z*)_s − x_s‖²``                 (Eq. 15)

``G_I``/``D_I`` are the primary nets generated for image ``I``; λ = 0.1, α = 50. Adam (lr 5e-5,
betas (0.5, 0.999)) is recreated at every scale, its lr ×0.1 after 80 % of the scale's steps, and
gradient norms are clipped to 1. Scale ``n`` starts with head ``n`` copied from head ``n−1``;
heads ``0 … n−1`` are frozen while the shared encoder keeps training. The noise amplitude of the
scale being trained is ``RMSE(x_n, ↑x̃_{n−1})`` of the current batch, updated every step; when
the scale is finished it is fixed to the value over the whole data set.

Regimes (paper Sec. 5): ``single`` (one image, an ordinary critic), ``minibatch`` (a fixed set
of images, all in every step) and ``dataset`` (batches streamed from a data set) — one code path;
the regime only sets the critic kind and the batch.

Fixes of the reference's bugs: each encoder runs once per step and feeds every head; the encoders
use per-image GroupNorm by default (the reference's BatchNorm in train mode made an image's GAN
depend on its batch); generation always runs in evaluation mode; there is one entry point.

Scale-out: started under ``torchrun`` (``python -m torch.distributed.run --nproc_per_node K -m
mil_core.models.hypergan_train …``), each process takes its share of every global batch, the
encoders and heads are wrapped in DistributedDataParallel (gloo on CPU, nccl on GPU), and every
random draw is made for the whole global batch from one seeded generator, so K processes follow
the same trajectory as one (up to float summation order). Checkpoints are written atomically by
process 0 every ``checkpoint_every`` steps and after every scale; ``resume=True`` continues a run
bit-exactly on the same machine and process count.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import OTHER_RUN_HINT, check_same_run, load_checkpoint, prepare_checkpoint_path
from ..data.pyramid import check_min_size
from ..cli import add_debug_argument, run_main
from ..errors import CheckpointError, ConfigError, DataError, TrainingError
from ..levers import make_adam
from ..losses import critic_loss, reconstruction_loss
from ..novelty import fit_novelty, reconstruction_ratio
from ..runtime import get_device, progress
from .blocks import stream_seed as _stream_seed   # the training stream's seed (no z* replay)
from .hypergan import (HyperGAN, HyperGANConfig, canonical_shapes, critic_parameters,
                       load_encoder_weights)
from .hypernet import primary_forward

__all__ = ["train_hypergan", "BatchSampler", "CHECKPOINT_NAME", "main"]

CHECKPOINT_NAME = "hypergan.safetensors"   # the run's latest checkpoint in ``checkpoint_dir``


class BatchSampler:
    """Indices of every global batch: all images in order when ``batch_size == n_images``
    (single / mini-batch regimes), else a fresh seeded permutation per epoch, full batches only."""

    def __init__(self, n_images: int, batch_size: int, seed: int) -> None:
        self.n, self.b = n_images, batch_size
        self.gen = torch.Generator()
        self.gen.manual_seed(int(seed) + 7919)
        self.perm = torch.arange(n_images)
        self.pos = n_images if batch_size < n_images else 0

    def next(self) -> torch.Tensor:
        if self.b == self.n:
            return torch.arange(self.n)
        if self.pos + self.b > self.n:
            self.perm = torch.randperm(self.n, generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.b]
        self.pos += self.b
        return idx

    def state(self) -> dict[str, Any]:
        return {"perm": self.perm.clone(), "pos": self.pos, "gen": self.gen.get_state()}

    def load(self, state: dict[str, Any]) -> None:
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])
        self.gen.set_state(state["gen"])


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mean_all(values: torch.Tensor, world: int) -> torch.Tensor:
    """Average a tensor over processes (identity for one process)."""
    if world > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= world
    return values


def _prepare_data(model: HyperGAN, images: Sequence[torch.Tensor] | torch.Tensor
                  ) -> tuple[list[torch.Tensor], torch.Tensor, str]:
    reals = model.pyramid(images)                       # [(N, 3, H_s, W_s)]
    emb = model.embed_input(images)                     # (N, 3, S, S)
    digest = hashlib.sha256(reals[-1].contiguous().numpy().tobytes()).hexdigest()
    return reals, emb, digest


def _finest_rmse(model: HyperGAN, reals: list[torch.Tensor], emb: torch.Tensor, n: int,
                 chunk: int) -> float:
    """``RMSE(x_n, ↑x̃_{n−1})`` over the whole data set (the fixed σ_n of a finished scale)."""
    if n == 0:
        return 1.0
    dev, total = model.device, 0.0
    with torch.no_grad():
        was = model.G.training
        model.G.eval()
        for i in range(0, emb.shape[0], chunk):
            _, w = model.G(emb[i:i + chunk].to(dev), n)
            rec = model.run_scales(w, 1, reconstruct=True)
            real = reals[n][i:i + chunk].to(dev)
            total += float(F.mse_loss(F.interpolate(rec, size=real.shape[-2:], mode="bilinear",
                                                    align_corners=False), real,
                                      reduction="sum"))
        model.G.train(was)
    return math.sqrt(total / reals[n].numel())


def _reconstruction_ratios(model: HyperGAN, finest: torch.Tensor, emb: torch.Tensor,
                           chunk: int) -> torch.Tensor:
    """``(N,)``: the novelty reference's reconstruction ratio of every training image
    (:func:`mil_core.novelty.reconstruction_ratio`), evaluation mode."""
    was = model.G.training
    model.G.eval()
    out = []
    with torch.no_grad():
        for i in range(0, emb.shape[0], chunk):
            e = model.G.encoder(emb[i:i + chunk].to(model.device))
            out.append(reconstruction_ratio(model.reconstruct(embeddings=e),
                                            finest[i:i + chunk].to(model.device)))
    model.G.train(was)
    return torch.cat(out)


def _save(model: HyperGAN, path: Path | None, rank: int, world: int, extra: dict[str, Any]) -> None:
    if path is None:
        return
    if rank == 0:
        for p in model.parameters():
            if not bool(torch.isfinite(p).all()):
                raise TrainingError("refusing to checkpoint non-finite weights; the previous "
                                    f"checkpoint {path} is kept")
        model.save(path, extra=extra)
    if world > 1:
        dist.barrier()


def train_hypergan(images: Sequence[torch.Tensor] | torch.Tensor,
                   cfg: HyperGANConfig | None = None, *, seed: int = 0,
                   device: str | torch.device | None = None, show_progress: bool = True,
                   checkpoint_dir: str | Path | None = None, resume: bool = False,
                   overwrite: bool = False,
                   step_callback: Callable[[HyperGAN, int], None] | None = None,
                   scale_callback: Callable[[HyperGAN, int], None] | None = None,
                   names: Sequence[str] | None = None) -> HyperGAN:
    """Train a hyper-GAN on ``images`` (a list of (3, H, W) or a (N, 3, H, W) tensor in [-1, 1]).

    ``cfg.batch_size`` images per step: equal to N for the single-image and mini-batch regimes,
    smaller for dataset training (it must divide by the number of processes). ``seed`` seeds
    every random draw (weights, z*, noise, batches, penalty mixing). ``checkpoint_dir``: the run
    is checkpointed atomically to ``checkpoint_dir/hypergan.safetensors`` every
    ``cfg.checkpoint_every`` steps and after each scale; ``resume=True`` continues from it (same
    images, config and seed). A folder that already holds a checkpoint is refused unless
    ``resume=True`` or ``overwrite=True`` (which replaces it at the first new checkpoint). ``step_callback(model, step)`` runs after every step (after a due
    checkpoint), ``scale_callback(model, n)`` after scale ``n``. ``names`` (one per image, e.g.
    file names) are used in error messages.

    Raises ConfigError/DataError for bad input before any training (an image whose short side is
    below the pyramid's ``min_size`` is refused: enlarging it would train on blur), and
    TrainingError (naming the last good checkpoint) when a loss becomes NaN or infinite.
    """
    cfg = HyperGANConfig() if cfg is None else cfg
    if not isinstance(cfg, HyperGANConfig):
        raise ConfigError(f"train_hypergan: cfg must be a HyperGANConfig, got {type(cfg).__name__}")
    cfg.validate()
    check_min_size(images, cfg.pyramid, names=names)
    ckpt = prepare_checkpoint_path(checkpoint_dir, CHECKPOINT_NAME, resume=resume,
                                   overwrite=overwrite)
    rank, world = _dist()
    if device is None:
        device = (torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
                  if world > 1 and torch.cuda.is_available() else get_device())
    dev = torch.device(device)

    model, gen, reals, emb, digest = _init_run(images, cfg, seed)
    n_img = emb.shape[0]
    if cfg.batch_size > n_img:
        raise ConfigError(f"batch_size {cfg.batch_size} exceeds the {n_img} training images; "
                          "use batch_size <= number of images")
    if world > 1 and cfg.extractor != "separate":
        raise ConfigError(f"extractor={cfg.extractor!r} (one encoder in both players) trains in "
                          "one process only; run it without torch.distributed")
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the {world} "
                          "processes of this distributed run")
    sampler = BatchSampler(n_img, cfg.batch_size, seed)
    run = _Run(gen=gen, rank=rank, local=cfg.batch_size // world, world=world)

    pos = {"scale": 0, "iter": 0, "step": 0, "amp": 1.0}
    opt_states: dict[str, Any] | None = None
    if ckpt is not None and resume and ckpt.exists():
        model, pos, opt_states = _resume(ckpt, cfg, seed, digest, gen, sampler)
    model.to(dev).train()
    model.timings.update(device=str(dev), world_size=world, n_images=n_img)
    last_good = ckpt if (ckpt is not None and resume and ckpt.exists()) else None

    for n in range(pos["scale"], model.n_scales):
        g_run, d_run, g_train = _prepare_scale(model, n, dev, world)
        opt_g = make_adam(g_train, cfg.lr_g, cfg.betas, dev)
        opt_d = make_adam(critic_parameters(model), cfg.lr_d, cfg.betas, dev)
        start_it = pos["iter"] if n == pos["scale"] else 0
        amp = pos["amp"] if n == pos["scale"] else 1.0
        if opt_states is not None and n == pos["scale"]:
            opt_g.load_state_dict(opt_states["g"])
            opt_d.load_state_dict(opt_states["d"])
        decay_at = int(round(cfg.lr_decay_at * cfg.iters_per_scale))
        t0 = time.perf_counter()
        its = range(start_it, cfg.iters_per_scale)
        bar = progress(its, total=cfg.iters_per_scale, desc=f"hyper-GAN scale {n}/"
                       f"{model.n_scales - 1}") if (show_progress and rank == 0) else its
        for it in bar:
            scale = 0.1 if it >= decay_at else 1.0
            for opt, lr in ((opt_g, cfg.lr_g), (opt_d, cfg.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr * scale
            batch = _batch(reals, emb, _share(sampler.next(), run), n, dev)
            amp, row = _iteration(model, (g_run, d_run), (opt_g, opt_d), g_train, batch, n,
                                  amp, run)
            pos["step"] += 1
            if not all(math.isfinite(v) for v in row.values()):
                where = (f"the last good checkpoint is {last_good}" if last_good is not None
                         else "no checkpoint was written (pass checkpoint_dir to keep one)")
                raise TrainingError(f"hyper-GAN training diverged at scale {n}, iteration {it} "
                                    f"(step {pos['step']}): losses {row}; {where}. Lower lr_g/"
                                    "lr_d or grad_clip, or check the images.")
            if it % cfg.log_every == 0 or it == cfg.iters_per_scale - 1:
                model.history.append({"scale": n, "iter": it, "step": pos["step"], **row,
                                      "noise_amp": amp, "lr": cfg.lr_g * scale})
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(rec=f"{row['rec_loss']:.4f}", w=f"{row['wasserstein']:.3f}",
                                    refresh=False)
            done = it + 1 == cfg.iters_per_scale
            if ckpt is not None and pos["step"] % cfg.checkpoint_every == 0 and not done:
                _save(model, ckpt, rank, world, _extra(seed, digest, gen, sampler, n, it + 1,
                                                       pos["step"], amp, opt_g, opt_d))
                last_good = ckpt
            if step_callback is not None:
                step_callback(model, pos["step"])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        model.noise_amps.append(cfg.noise_amp_factor * _finest_rmse(model, reals, emb, n,
                                                                    cfg.batch_size)
                                if n > 0 else 1.0)
        model.timings["seconds_per_scale"].append(time.perf_counter() - t0)
        total = float(sum(model.timings["seconds_per_scale"]))
        model.timings["total_seconds"] = total
        model.timings["iters_per_second"] = (cfg.iters_per_scale * model.n_trained / total
                                             if total > 0 else 0.0)
        model.timings["minutes_per_image"] = total / 60.0 / n_img
        if n + 1 == model.n_scales and n_img > 1:      # kept in the final checkpoint
            model.novelty = fit_novelty(_reconstruction_ratios(model, reals[n], emb,
                                                               cfg.batch_size))
        _save(model, ckpt, rank, world, _extra(seed, digest, gen, sampler, n + 1, 0,
                                               pos["step"], 1.0, None, None))
        last_good = ckpt
        if scale_callback is not None:
            scale_callback(model, n)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@dataclass(frozen=True)
class _Run:
    """Per-run constants of one process: the shared generator of every random draw, this
    process's rank, its share of a global batch and the number of processes."""
    gen: torch.Generator
    rank: int
    local: int       # images per process and step: batch_size // world
    world: int

    @property
    def batch(self) -> int:
        """The global batch size."""
        return self.local * self.world


class _Batch:
    """One process's share of a global batch: the pyramid ``reals`` [(b, 3, H_s, W_s)] up to the
    trained scale and the encoders' input ``emb`` (b, 3, S, S)."""

    def __init__(self, reals: list[torch.Tensor], emb: torch.Tensor) -> None:
        self.reals, self.emb = reals, emb


def _init_run(images: Sequence[torch.Tensor] | torch.Tensor, cfg: HyperGANConfig, seed: int
              ) -> tuple[HyperGAN, torch.Generator, list[torch.Tensor], torch.Tensor, str]:
    """Seeded model (with head 0), the run's generator (after drawing z*), and the data."""
    gen = torch.Generator()                                       # every draw of the run
    gen.manual_seed(_stream_seed(seed))
    with torch.random.fork_rng(devices=[]):                       # seeded init, global RNG kept
        torch.manual_seed(int(seed))
        model = HyperGAN(cfg, torch.zeros(1, 3, *canonical_shapes(cfg.pyramid)[0]))
        model.G.add_head()
    if cfg.encoder_weights:                                        # Appendix C's backbone
        load_encoder_weights(model.G.encoder, cfg.encoder_weights)
    model.z_star.copy_(torch.randn(model.z_star.shape, generator=gen))   # z*, shared by all
    reals, emb, digest = _prepare_data(model, images)
    return model, gen, reals, emb, digest


def _prepare_scale(model: HyperGAN, n: int, dev: torch.device, world: int
                   ) -> tuple[nn.Module, nn.Module, list[nn.Parameter]]:
    """Start scale ``n``: head ``n`` (a copy of head ``n−1``) is the only trainable head, the
    encoders and the critic train; under DDP the generator and critic are wrapped so that their
    gradients are averaged over processes. Returns (G to run, D to run, G's trained params)."""
    if len(model.G.heads) == n:
        model.G.add_head()                       # a copy of head n−1
    model.G.encoder.requires_grad_(not model.config.encoder_frozen)
    for s, head in enumerate(model.G.heads):
        head.requires_grad_(s == n)
    model.D.requires_grad_(True)
    g_train = [p for p in model.G.parameters() if p.requires_grad]
    g_run, d_run = _wrap_ddp(model.G, dev, world), _wrap_ddp(model.D, dev, world)
    return g_run, d_run, g_train


def _wrap_ddp(module: nn.Module, dev: torch.device, world: int) -> nn.Module:
    """``module`` in DistributedDataParallel when several processes train (else itself)."""
    if world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP
    return DDP(module, device_ids=[dev.index] if dev.type == "cuda" else None)


def _share(values: torch.Tensor, run: _Run) -> torch.Tensor:
    """This process's contiguous share of a tensor drawn for the global batch (dim 0)."""
    return values[run.rank * run.local:(run.rank + 1) * run.local]


def _batch(reals: list[torch.Tensor], emb: torch.Tensor, idx: torch.Tensor, n: int,
           dev: torch.device) -> _Batch:
    return _Batch([r[idx].to(dev) for r in reals[:n + 1]], emb[idx].to(dev))


def _draw(model: HyperGAN, n: int, run: _Run) -> list[torch.Tensor]:
    """Noise maps of scales 0…n for the *global* batch from the shared generator, then this
    process's share: every process makes the same draws, whatever its rank."""
    return [_share(torch.randn(run.batch, 3, *s, generator=run.gen), run).to(model.device)
            for s in model.shapes[:n + 1]]


def _noise_amp(model: HyperGAN, batch: _Batch, w_now: list[Any], n: int, amp: float,
               run: _Run) -> float:
    """σ_n of the scale being trained: ``factor · RMSE(x_n, ↑x̃_{n−1})`` over the global batch
    (the processes' equal-size shares are averaged), ``amp`` unchanged at scale 0."""
    if n == 0:
        return amp
    real = batch.reals[n]
    with torch.no_grad():
        rec_prev = model.run_scales(w_now[:n], 1, reconstruct=True)
        mse = F.mse_loss(F.interpolate(rec_prev, size=real.shape[-2:], mode="bilinear",
                                       align_corners=False), real)
    return model.config.noise_amp_factor * math.sqrt(float(_mean_all(mse, run.world)))


def _critic_backward(model: HyperGAN, d_run: nn.Module, batch: _Batch, w_now: list[Any],
                     amps: list[float], noise: list[torch.Tensor], eps: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 12 on this process's share and its backward pass (DDP averages the gradients)."""
    cfg = model.config
    with torch.no_grad():
        fake = model.run_scales(w_now, 1, noise=noise, amps=amps)         # (b, 3, H_n, W_n)
    d_w = d_run(batch.emb)                                                 # one critic per image
    d_loss, parts = critic_loss(lambda x: primary_forward(x, d_w, cfg.d_spec), batch.reals[-1],
                                fake, cfg.lambda_grad, eps=eps)
    d_loss.backward()
    return d_loss, parts


def _generator_backward(model: HyperGAN, g_run: nn.Module, batch: _Batch, n: int,
                        amps: list[float], noise: list[torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Eq. 13–15 on this process's share and its backward pass. Returns (L_G, adv, rec, the
    batch's mean embedding norm ‖e(I)‖ — the collapse measure of Props. 3–4)."""
    cfg = model.config
    e, w = g_run(batch.emb, n + 1)                        # the encoder runs once per step
    fake = model.run_scales(w, 1, noise=noise, amps=amps)
    with torch.no_grad():
        d_w = model.D(batch.emb)                          # the critic is fixed in the G step
    g_adv = -primary_forward(fake, d_w, cfg.d_spec).mean()
    recs = model.run_scales(w, 1, reconstruct=True, keep_all=True)
    if cfg.rec_mode == "accumulated":                      # Eq. 15
        rec_loss = sum(reconstruction_loss(r, x) for r, x in zip(recs, batch.reals))
    else:                                                  # current scale only
        rec_loss = reconstruction_loss(recs[-1], batch.reals[-1])
    g_loss = g_adv + cfg.alpha * rec_loss
    g_loss.backward()
    return g_loss, g_adv, rec_loss, float(e.detach().norm(dim=1).mean())


def _iteration(model: HyperGAN, nets: tuple[nn.Module, nn.Module],
               opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
               g_train: list[nn.Parameter], batch: _Batch, n: int, amp: float, run: _Run
               ) -> tuple[float, dict[str, float]]:
    """One iteration at scale ``n``: σ_n update, ``steps_d`` critic and ``steps_g`` G steps.
    ``nets`` are (G, D) as run (DDP-wrapped when distributed), ``opts`` their optimizers."""
    cfg = model.config
    (g_run, d_run), (opt_g, opt_d) = nets, opts
    with torch.no_grad():                                 # generated weights, no gradients
        _, w_now = model.G(batch.emb, n + 1)
    amp = _noise_amp(model, batch, w_now, n, amp, run)
    amps = list(model.noise_amps[:n]) + [amp]

    for _ in range(cfg.steps_d):
        noise = _draw(model, n, run)
        eps = _share(torch.rand(run.batch, generator=run.gen), run)
        opt_d.zero_grad(set_to_none=True)
        d_loss, parts = _critic_backward(model, d_run, batch, w_now, amps, noise, eps)
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(critic_parameters(model), cfg.grad_clip)
        opt_d.step()

    for _ in range(cfg.steps_g):
        noise = _draw(model, n, run)
        opt_g.zero_grad(set_to_none=True)
        g_loss, g_adv, rec_loss, e_norm = _generator_backward(model, g_run, batch, n, amps,
                                                              noise)
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(g_train, cfg.grad_clip)
        opt_g.step()

    vals = torch.tensor([d_loss.item(), g_loss.item(), g_adv.item(), float(rec_loss.detach()),
                         parts["wasserstein"], parts["gp"], e_norm], dtype=torch.float64)
    vals = _mean_all(vals, run.world).tolist()
    keys = ("d_loss", "g_loss", "g_adv", "rec_loss", "wasserstein", "gp", "embed_norm")
    return amp, dict(zip(keys, vals))


def _extra(seed: int, digest: str, gen: torch.Generator, sampler: BatchSampler, scale: int,
           it: int, step: int, amp: float, opt_g: torch.optim.Optimizer | None,
           opt_d: torch.optim.Optimizer | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"seed": int(seed), "data": digest, "rng": gen.get_state(),
                             "sampler": sampler.state(), "scale": scale, "iter": it,
                             "step": step, "amp": float(amp)}
    if opt_g is not None and opt_d is not None:
        extra["opt"] = {"g": opt_g.state_dict(), "d": opt_d.state_dict()}
    return extra


def _resume(path: Path, cfg: HyperGANConfig, seed: int, digest: str, gen: torch.Generator,
            sampler: BatchSampler) -> tuple[HyperGAN, dict[str, Any], dict[str, Any] | None]:
    state = load_checkpoint(path)
    model = HyperGAN.from_state(state)
    extra = state.get("extra") or {}
    check_same_run(path, "HyperGANConfig", model.config.to_dict(), cfg.to_dict(), extra.get("seed"),
                   int(seed))
    if extra.get("data") != digest:
        raise CheckpointError(f"{path} was trained on other images; {OTHER_RUN_HINT}")
    try:
        gen.set_state(extra["rng"])
        sampler.load(extra["sampler"])
        pos = {k: extra[k] for k in ("scale", "iter", "step", "amp")}
    except KeyError as exc:
        raise CheckpointError(f"{path} lacks the training state {exc} needed to resume") from exc
    return model.train(), pos, extra.get("opt")


# ---------------------------------------------------------------------------------------------
# command line (one process, or several under torchrun)
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m mil_core.models.hypergan_train --images bundled --limit 8 --profile cpu
    --out runs/mil`` (prefix with ``python -m torch.distributed.run --nproc_per_node K`` for
    DDP). Writes ``OUT/hypergan.safetensors``: checkpoints during training, the final model after
    the last scale (``HyperGAN.load`` reads both). An OUT that holds a checkpoint needs
    ``--resume`` or ``--overwrite``. Errors print one line (``--debug``: the traceback)."""
    return run_main(_main, argv)


def _main(argv: list[str] | None) -> int:
    from ..data.bundled import load_collection
    from ..runtime import set_threads

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--images", default="bundled", help="'bundled', 'places50' or a folder")
    ap.add_argument("--limit", type=int, default=None, help="use the first LIMIT images")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--regime", default="dataset", choices=("single", "minibatch", "dataset"))
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a HyperGANConfig field (int/float/str), repeatable")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="checkpoint folder")
    ap.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace the checkpoint in --out (refused without this or --resume)")
    ap.add_argument("--threads", type=int, default=1)
    add_debug_argument(ap)
    args = ap.parse_args(argv)

    set_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        named = load_collection(args.images, limit=args.limit)
        imgs = [img for _, img in named]
        overrides = dict(_parse_override(s) for s in args.set)
        cfg = HyperGANConfig.from_profile(args.profile, args.regime, n_images=len(imgs),
                                          **overrides)
        model = train_hypergan(imgs, cfg, seed=args.seed, checkpoint_dir=args.out,
                               resume=args.resume, overwrite=args.overwrite, show_progress=_dist()[0] == 0,
                               names=[name for name, _ in named])
        if _dist()[0] == 0:          # the last scale's checkpoint is the final model
            print(f"trained {model.n_trained} scales on {len(imgs)} images in "
                  f"{model.timings['total_seconds']:.1f} s; saved {args.out}/{CHECKPOINT_NAME}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--set expects FIELD=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    if value.lower() in ("true", "false"):            # e.g. --set encoder_frozen=true
        return key, value.lower() == "true"
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


if __name__ == "__main__":
    raise SystemExit(main())
