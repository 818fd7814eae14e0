"""One process of the DDP contract check (tests/test_hypergan_ddp.py); not collected by pytest.

Run alone (the one-process reference) or under ``python -m torch.distributed.run
--nproc_per_node K``. Every process builds the trainer's seeded model, then for scales 0 and 1
and two global batches each (dataset regime, so the sampler's permutation matters) it goes
through the trainer's own phases — ``_prepare_scale`` (DDP wrapping), ``_share`` of the
sampler's indices, ``_draw`` of the noise, ``_noise_amp``, ``_critic_backward`` and
``_generator_backward`` — and records, *without* taking an optimizer step (so that every process
and the reference see the same weights and no trajectory amplifies float noise):

- its share of the batch indices, noise maps and penalty-mixing ε;
- the generator's state after the draws;
- σ_n, the per-process losses, and every parameter's gradient after the backward pass (after
  DDP's all-reduce);
- how many times it wrote a checkpoint through the trainer's ``_save``.

Results go to ``OUT/rank<r>.safetensors`` (+ ``OUT/rank<r>.json``). ``--break`` plants a known
bug in the trainer, to show that the contract test catches it: ``no-allreduce`` (DDP wrapping
skipped, so each process keeps its local gradient) or ``wrong-share`` (every process takes the
first share of each global batch).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from mil_core.data.bundled import load_collection
from mil_core.models import hypergan_train as T
from mil_core.models.hypergan import HyperGAN, HyperGANConfig
from mil_core.runtime import set_threads

N_IMAGES, BATCH, SCALES, STEPS, SEED = 6, 4, (0, 1), 2, 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--break", dest="bug", default="none",
                    choices=("none", "no-allreduce", "wrong-share"))
    args = ap.parse_args()
    set_threads(1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    rank, world = T._dist()
    if args.bug == "no-allreduce":
        T._wrap_ddp = lambda module, dev, world: module
    if args.bug == "wrong-share":
        T._share = lambda values, run: values[:run.local]
    saves: list[int] = []
    real_save = HyperGAN.save
    HyperGAN.save = lambda self, path, **kw: (saves.append(rank), real_save(self, path, **kw))

    images = [img for _, img in load_collection("bundled", limit=N_IMAGES)]
    cfg = HyperGANConfig.from_profile("smoke", "dataset", N_IMAGES, batch_size=BATCH)
    model, gen, reals, emb, _ = T._init_run(images, cfg, SEED)
    sampler = T.BatchSampler(N_IMAGES, BATCH, SEED)
    run = T._Run(gen=gen, rank=rank, local=BATCH // world, world=world)
    dev = torch.device("cpu")
    out: dict[str, torch.Tensor] = {}
    losses: dict[str, float] = {}
    for n in SCALES:
        if n > 0:
            model.noise_amps.append(1.0)
        g_run, d_run, g_train = T._prepare_scale(model, n, dev, world)
        g_names = {id(p): k for k, p in model.G.named_parameters()}
        for t in range(STEPS):
            key = f"s{n}.t{t}"
            idx = T._share(sampler.next(), run)
            batch = T._batch(reals, emb, idx, n, dev)
            with torch.no_grad():
                _, w_now = model.G(batch.emb, n + 1)
            amp = T._noise_amp(model, batch, w_now, n, 1.0, run)
            amps = list(model.noise_amps[:n]) + [amp]
            noise_d = T._draw(model, n, run)
            eps = T._share(torch.rand(run.batch, generator=run.gen), run)
            model.zero_grad(set_to_none=True)
            d_loss, _ = T._critic_backward(model, d_run, batch, w_now, amps, noise_d, eps)
            for k, p in model.D.named_parameters():
                out[f"{key}.grad_d.{k}"] = p.grad.detach().clone()
            noise_g = T._draw(model, n, run)
            model.zero_grad(set_to_none=True)
            g_loss, _, _, _ = T._generator_backward(model, g_run, batch, n, amps, noise_g)
            for p in g_train:
                out[f"{key}.grad_g.{g_names[id(p)]}"] = p.grad.detach().clone()
            out[f"{key}.idx"] = idx.clone()
            out[f"{key}.eps"] = eps.clone()
            for s, (a, b) in enumerate(zip(noise_d, noise_g)):
                out[f"{key}.noise_d.{s}"], out[f"{key}.noise_g.{s}"] = a.clone(), b.clone()
            out[f"{key}.gen_state"] = gen.get_state()
            losses.update({f"{key}.amp": amp, f"{key}.d_loss": float(d_loss),
                           f"{key}.g_loss": float(g_loss)})
    T._save(model, Path(args.out) / "ckpt" / T.CHECKPOINT_NAME, rank, world, {"seed": SEED})
    save_file(out, str(Path(args.out) / f"rank{rank}.safetensors"))
    (Path(args.out) / f"rank{rank}.json").write_text(json.dumps(
        {"world": world, "saves": len(saves), **losses}))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
