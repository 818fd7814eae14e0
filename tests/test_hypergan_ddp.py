"""The hyper-GAN's DDP contract (mil_core.models.hypergan_train), checked without Adam.

What K processes must guarantee, each checked exactly or to float tolerance at fixed weights
(tests/ddp_worker.py records it for 2 scales × 2 global batches, no optimizer step):

1. the sampler gives each process its share of every global batch, and the shares' union, in
   rank order, is the one-process batch;
2. every process makes the same random draws: its noise maps and penalty ε are its share of the
   one-process draws, and its generator ends in the same state;
3. σ_n is the one-process value of the global batch;
4. after DDP's all-reduce, the processes hold bit-identical gradients, equal to the one-process
   gradient of the same global batch to float tolerance (1e-4 of each tensor's largest entry,
   see GRAD_RTOL), and the processes' mean loss equals the one-process loss;
5. only process 0 writes checkpoints.

A trajectory comparison (parameters after several Adam steps) is not a contract: float
summation order differs between one and two processes, and Adam turns gradient differences of
~1e-9 on near-zero elements into ±lr steps whose pattern depends on the CPU's vector kernels.
So the end-to-end run at the bottom checks only what is robust. The contract test is shown to
catch two planted bugs (no gradient averaging; a process taking the wrong share).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mil_core.models.hypergan import HyperGAN
from mil_core.models.hypergan_train import CHECKPOINT_NAME

WORKER = Path(__file__).with_name("ddp_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MIL_OFFLINE": "1", "MIL_PROGRESS": "0"}
# Gradients agree to float tolerance *relative to each tensor's scale*: |a − b| ≤ 1e-4·max|b| +
# 1e-7 on every element. A weight's gradient is a sum over images and pixels, and the two
# processes sum in another order (half the images per convolution, then the all-reduce), so an
# element's rounding error scales with the summands, not with the element: elements that cancel
# to near zero carry errors of ~1e-6 of the tensor's largest entry (measured: at most 1.9e-6),
# which a per-element rtol would call a failure. A planted bug moves gradients by O(1).
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-7


def _gloo_or_skip() -> None:
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")


def _launch(out: Path, world: int, *extra: str) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    launcher = ([] if world == 1 else
                ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world)])
    return subprocess.Popen([sys.executable, *launcher, *extra], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]


def _read(folder: Path, rank: int) -> tuple[dict[str, torch.Tensor], dict]:
    return (load_file(str(folder / f"rank{rank}.safetensors")),
            json.loads((folder / f"rank{rank}.json").read_text()))


def contract_violations(one: Path, many: Path, world: int) -> list[str]:
    """Every way the ``world``-process records in ``many`` break the contract against the
    one-process records in ``one`` (an empty list when it holds)."""
    ref, ref_j = _read(one, 0)
    ranks = [_read(many, r) for r in range(world)]
    bad: list[str] = []
    if sorted(ranks[0][0]) != sorted(ref):
        return [f"recorded tensors differ: {sorted(set(ref) ^ set(ranks[0][0]))[:5]}"]
    for step in sorted(k[:-len(".idx")] for k in ref if k.endswith(".idx")):
        union = torch.cat([t[f"{step}.idx"] for t, _ in ranks])
        if not torch.equal(union, ref[f"{step}.idx"]):
            bad.append(f"{step}: the processes' shares {union.tolist()} are not the global "
                       f"batch {ref[f'{step}.idx'].tolist()}")
        for key in sorted(k for k in ref if k.startswith(step + ".") and
                          (".noise_" in k or k.endswith(".eps"))):
            if not torch.equal(torch.cat([t[key] for t, _ in ranks]), ref[key]):
                bad.append(f"{key}: the processes' draws are not shares of the global draw")
        for r, (t, j) in enumerate(ranks):
            if not torch.equal(t[f"{step}.gen_state"], ref[f"{step}.gen_state"]):
                bad.append(f"{step}: rank {r}'s generator state differs from one process's")
            if j[f"{step}.amp"] != pytest.approx(ref_j[f"{step}.amp"], rel=1e-5):
                bad.append(f"{step}: rank {r}'s sigma_n {j[f'{step}.amp']} != "
                           f"{ref_j[f'{step}.amp']}")
            for key in (k for k in ref if k.startswith(step + ".grad_")):
                diff = (t[key] - ref[key]).abs().max().item()
                scale = ref[key].abs().max().item()
                if diff > GRAD_RTOL * scale + GRAD_ATOL:
                    bad.append(f"{key}: rank {r}'s gradient differs from the one-process "
                               f"gradient by up to {diff:.3g} (largest entry {scale:.3g})")
                if r > 0 and not torch.equal(t[key], ranks[0][0][key]):
                    bad.append(f"{key}: ranks 0 and {r} hold different gradients after the "
                               "all-reduce")
        for name in ("d_loss", "g_loss"):
            mean = sum(j[f"{step}.{name}"] for _, j in ranks) / world
            if mean != pytest.approx(ref_j[f"{step}.{name}"], rel=1e-4, abs=1e-7):
                bad.append(f"{step}: mean {name} over processes {mean} != {ref_j[f'{step}.{name}']}")
    saves = [j["saves"] for _, j in ranks]
    if saves != [1] + [0] * (world - 1):
        bad.append(f"checkpoint writes per rank {saves}; only rank 0 may write")
    if not (many / "ckpt" / CHECKPOINT_NAME).is_file():
        bad.append("no checkpoint was written")
    return bad


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """The one-process reference and the correct and broken two-process records (4 launches,
    two at a time: ~30 s on 2 cores)."""
    _gloo_or_skip()
    root = tmp_path_factory.mktemp("ddp")
    runs = {"one": (1, "none"), "two": (2, "none"), "no-allreduce": (2, "no-allreduce"),
            "wrong-share": (2, "wrong-share")}
    names = list(runs)
    for pair in (names[:2], names[2:]):
        procs = [_launch(root / k, runs[k][0], str(WORKER), "--out", str(root / k),
                         "--break", runs[k][1]) for k in pair]
        for p in procs:
            _wait(p)
    return root


def test_two_processes_have_one_process_gradients(ddp_runs):
    assert contract_violations(ddp_runs / "one", ddp_runs / "two", 2) == []


def test_contract_holds_for_the_reference_against_itself(ddp_runs):
    assert contract_violations(ddp_runs / "one", ddp_runs / "one", 1) == []


@pytest.mark.parametrize("bug, symptom", [("no-allreduce", "gradient differs"),
                                          ("wrong-share", "are not the global batch")])
def test_contract_catches_planted_bugs(ddp_runs, bug, symptom):
    problems = contract_violations(ddp_runs / "one", ddp_runs / bug, 2)
    assert any(symptom in p for p in problems), problems


def test_two_process_training_end_to_end(tmp_path):
    """The command line under torchrun finishes and agrees with one process on what does not
    depend on float summation order: world size, images, scales, z*, the logged steps, and the
    losses of the first step (computed before any update)."""
    _gloo_or_skip()
    args = ["-m", "mil_core.models.hypergan_train", "--images", "bundled", "--limit", "4",
            "--profile", "smoke", "--set", "iters_per_scale=3", "--set", "log_every=1",
            "--threads", "1"]
    one, two = tmp_path / "one", tmp_path / "two"
    procs = [_launch(one, 1, *args, "--out", str(one)), _launch(two, 2, *args, "--out", str(two))]
    for p in procs:
        _wait(p)
    a, b = HyperGAN.load(one / CHECKPOINT_NAME), HyperGAN.load(two / CHECKPOINT_NAME)
    assert (a.timings["world_size"], b.timings["world_size"]) == (1, 2)
    assert a.timings["n_images"] == b.timings["n_images"] == 4
    assert a.n_trained == b.n_trained == 3
    assert torch.equal(a.z_star, b.z_star)                  # drawn from the shared generator
    assert a.noise_amps[0] == b.noise_amps[0] == 1.0
    assert [r["step"] for r in a.history] == [r["step"] for r in b.history] == list(range(1, 10))
    first_a, first_b = a.history[0], b.history[0]
    for key in ("d_loss", "wasserstein", "gp"):            # the critic's first loss: no update yet
        assert first_a[key] == pytest.approx(first_b[key], rel=1e-4, abs=1e-6), key
    for key in ("g_adv", "rec_loss"):                      # after one critic step (Adam ±lr)
        assert first_a[key] == pytest.approx(first_b[key], rel=1e-2, abs=1e-4), key
    assert all(torch.isfinite(p).all() for p in b.parameters())
