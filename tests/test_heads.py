"""Projection-head variants and the frozen encoder (MIL Sec. 6's limitation, Appendix C):
exact weight shapes per variant, closed-form parameter counts, rank-r heads reproducing linear
heads, a frozen encoder that stays bit-identical, and loading encoder weights from a hyper-GAN
checkpoint or a torchvision-format ResNet file."""
from __future__ import annotations

import pytest
import torch

from mil_core import heads as HS
from mil_core.errors import ConfigError
from mil_core.heads import rank_for_fraction
from mil_core.models.hypergan import HyperGAN, HyperGANConfig, load_encoder_weights
from mil_core.models.hypergan_train import train_hypergan
from mil_core.models.hypernet import PrimarySpec, ProjectionHeads
from mil_core.models.resnet import (IMAGENET_MEAN, IMAGENET_STD, ResNetEncoder,
                                    backbone_config, load_torchvision_resnet)

GEN = PrimarySpec(in_ch=3, channels=8, out_ch=3, tail="tanh")
CRITIC = PrimarySpec(in_ch=3, channels=8, out_ch=1, tail="none")
VARIANTS = [(1, 0), (3, 0), (5, 0), (1, 4), (3, 4), (1, 16)]   # (layers, rank)


def images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 40), torch.linspace(-1, 1, 52), indexing="ij")
    a = torch.stack([0.8 * torch.sin(6 * xx), 0.9 * yy, 0.5 * torch.cos(4 * yy)])
    return [a, torch.rand(3, 40, 52, generator=g) * 2 - 1, -a.flip(-1)]


def cfg(**kw) -> HyperGANConfig:
    return HyperGANConfig.from_profile("smoke", "minibatch", 2, **kw)


def train(imgs, config, **kw):
    return train_hypergan(imgs, config, seed=0, device="cpu", show_progress=False, **kw)


# --- shapes and counts --------------------------------------------------------------------------
@pytest.mark.parametrize("layers,rank", VARIANTS)
@pytest.mark.parametrize("spec", [GEN, CRITIC], ids=["generator", "critic"])
def test_every_variant_emits_the_primary_nets_exact_shapes(spec, layers, rank):
    torch.manual_seed(0)
    heads = ProjectionHeads(spec, 16, layers, rank)
    weights = heads(torch.randn(3, 16))
    assert [(tuple(w.shape), tuple(b.shape)) for w, b in weights] == \
        [((3, o, i, 3, 3), (3, o)) for o, i in spec.layer_shapes]
    assert sum(p.numel() for p in heads.parameters()) == \
        ProjectionHeads.count(spec, 16, layers, rank)


def test_parameter_formulas_at_the_papers_size():
    spec = PrimarySpec()                                   # 64 channels: 114,307 numbers
    assert ProjectionHeads.count(spec, 512) == 58_639_491   # Sec. 6: "58.6 M per scale"
    assert ProjectionHeads.count(spec, 512, layers=3) == 58_639_491 + 2 * (512 * 512 + 512)
    assert ProjectionHeads.count(spec, 512, rank=32) == 32 * 512 + 33 * 114_307
    with torch.device("meta"):
        for layers, rank in [(3, 0), (1, 32), (5, 8)]:
            heads = ProjectionHeads(spec, 512, layers, rank)
            assert sum(p.numel() for p in heads.parameters()) == \
                ProjectionHeads.count(spec, 512, layers, rank)
    # the 1/8 goal: rank r ≤ 62 at D = 512 (rank·(D + N) + N ≤ (D + 1)·N / 8)
    assert rank_for_fraction(spec, 512, 1 / 8) == 62
    assert ProjectionHeads.count(spec, 512, rank=62) <= 58_639_491 / 8
    assert ProjectionHeads.count(spec, 512, rank=63) > 58_639_491 / 8
    assert rank_for_fraction(spec, 512, 1e-9) == 1
    with pytest.raises(ConfigError, match="fraction must be in"):
        rank_for_fraction(spec, 512, 0)


def test_deeper_and_compact_heads_start_with_the_linear_heads_scale():
    # the normalisation of hypernet.py assumes raw head outputs of one fixed scale
    torch.manual_seed(0)
    e = torch.randn(256, 64)
    with torch.no_grad():
        std = {v: torch.cat([w.flatten(1) for w, _ in ProjectionHeads(GEN, 64, *v)(e)], 1).std()
               for v in [(1, 0), (3, 0), (5, 0), (1, 8)]}
    for v, s in std.items():
        assert 0.6 < float(s / std[(1, 0)]) < 1.6, std


def test_bad_head_arguments_are_refused():
    with pytest.raises(ConfigError, match="layers must be an integer >= 1"):
        ProjectionHeads(GEN, 16, layers=0)
    with pytest.raises(ConfigError, match="rank must be an integer >= 0"):
        ProjectionHeads(GEN, 16, rank=-1)
    with pytest.raises(ConfigError, match="head_layers"):
        cfg(head_layers=0)
    with pytest.raises(ConfigError, match="head_rank"):
        cfg(head_rank=2.5)
    with pytest.raises(ConfigError, match="encoder_frozen"):
        cfg(encoder_frozen=True, extractor="shared-g")


# --- rank-r heads reproduce linear heads ----------------------------------------------------------
def test_full_rank_heads_reproduce_linear_heads():
    torch.manual_seed(0)
    linear, compact = ProjectionHeads(GEN, 12), ProjectionHeads(GEN, 12, rank=12)
    with torch.no_grad():
        compact.coefficients.weight.copy_(torch.eye(12))                 # c = e
        for src, dst in zip([*linear.weight_heads, *linear.bias_heads],
                            [*compact.weight_heads, *compact.bias_heads]):
            dst.load_state_dict(src.state_dict())
    e = torch.randn(5, 12)
    for (wa, ba), (wb, bb) in zip(linear(e), compact(e)):
        assert torch.allclose(wa, wb, atol=1e-6) and torch.allclose(ba, bb, atol=1e-6)


def test_a_rank_r_linear_head_is_reproduced_by_its_factorisation():
    # W = U·V of rank 3 in a linear head; the rank-3 head with the factors gives the same nets
    torch.manual_seed(1)
    linear, compact = ProjectionHeads(GEN, 10), ProjectionHeads(GEN, 10, rank=3)
    assert compact.coefficient_scale == pytest.approx(10 / 3)       # the maps read (D/r)·c
    v = torch.randn(3, 10)
    with torch.no_grad():
        compact.coefficients.weight.copy_(v)
        for src, dst in zip([*linear.weight_heads, *linear.bias_heads],
                            [*compact.weight_heads, *compact.bias_heads]):
            u = torch.randn(src.out_features, 3)
            src.weight.copy_(u @ v)
            dst.weight.copy_(u / compact.coefficient_scale)
            dst.bias.copy_(src.bias)
    e = torch.randn(4, 10)
    for (wa, ba), (wb, bb) in zip(linear(e), compact(e)):
        assert torch.allclose(wa, wb, atol=1e-5) and torch.allclose(ba, bb, atol=1e-5)


def _fit(heads: ProjectionHeads, e: torch.Tensor, steps: int = 30) -> float:
    """Fraction of a least-squares loss left after ``steps`` Adam steps that fit the generated
    numbers of 4 images to fixed random targets."""
    def flat() -> torch.Tensor:
        return torch.cat([w.flatten(1) for w, _ in heads(e)], 1)
    with torch.no_grad():
        target = torch.randn(flat().shape, generator=torch.Generator().manual_seed(5)) * 0.2
        start = float((flat() - target).pow(2).mean())
    opt = torch.optim.Adam(heads.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        (flat() - target).pow(2).mean().backward()
        opt.step()
    with torch.no_grad():
        return float((flat() - target).pow(2).mean()) / start


def test_fan_in_scale_keeps_the_function_and_fits_like_linear_heads():
    e = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    heads = {}
    for name, kw in (("linear", {}), ("scaled", {"rank": 4}),
                     ("plain", {"rank": 4, "fan_in_scale": False})):
        torch.manual_seed(2)
        heads[name] = ProjectionHeads(GEN, 64, **kw)
    with torch.no_grad():                                  # same function at initialisation
        for (wa, ba), (wb, bb) in zip(heads["scaled"](e), heads["plain"](e)):
            assert torch.allclose(wa, wb, atol=1e-6) and torch.allclose(ba, bb, atol=1e-6)
    left = {k: _fit(h, e) for k, h in heads.items()}
    # measured: linear 0.28, scaled 0.43, plain 0.89 of the loss left after 30 steps
    assert left["linear"] < left["scaled"] < 0.6 < left["plain"], left
    with pytest.raises(ConfigError, match="head_fan_in_scale"):
        cfg(head_fan_in_scale="yes")


def test_model_head_parameters_follow_the_config():
    for layers, rank in [(1, 0), (3, 0), (1, 4)]:
        model = HyperGAN(cfg(head_layers=layers, head_rank=rank))
        for _ in range(3):
            model.G.add_head()
        want = ProjectionHeads.count(model.config.g_spec, model.config.embed_dim, layers, rank)
        assert model.head_parameters() == [want] * 3
        assert sum(p.numel() for p in model.D.heads.parameters()) == ProjectionHeads.count(
            model.config.d_spec, model.config.embed_dim, layers, rank)
    assert cfg().head == "linear" and cfg(head_layers=3).head == "3-layer"
    assert cfg(head_rank=8).head == "rank 8" and cfg(head_layers=3, head_rank=8).head == \
        "3-layer rank 8"


# --- training with each variant -------------------------------------------------------------------
@pytest.mark.parametrize("layers,rank", [(3, 0), (1, 4)])
def test_variants_train_save_and_load(layers, rank, tmp_path):
    model = train(images()[:2], cfg(head_layers=layers, head_rank=rank, iters_per_scale=3))
    out = model.generate(images()[:2], 2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 2, 3, *model.shapes[-1]) and torch.isfinite(out).all()
    loaded = HyperGAN.load(model.save(tmp_path / "m.safetensors"))
    assert loaded.config.head_layers == layers and loaded.config.head_rank == rank
    assert torch.equal(loaded.generate(images()[:2], 2, generator=torch.Generator().manual_seed(0)),
                       out)


def test_compact_heads_reconstruction_loss_falls():
    model = train(images()[:2], cfg(head_rank=4, iters_per_scale=60))
    first = [r["rec_loss"] for r in model.history if r["scale"] == 0]
    assert first[-1] < 0.7 * first[0], first


# --- the frozen encoder ---------------------------------------------------------------------------
def test_frozen_encoder_stays_bit_identical_and_gets_no_gradient():
    torch.manual_seed(0)
    ref = HyperGAN(cfg(encoder_frozen=True)).G.encoder.state_dict()
    seen = []

    def on_step(model, step):
        seen.append(all(p.grad is None for p in model.G.encoder.parameters()))

    model = train(images()[:2], cfg(encoder_frozen=True, iters_per_scale=5), step_callback=on_step)
    after = model.G.encoder.state_dict()
    assert all(seen) and len(seen) == 5 * model.n_scales
    assert all(torch.equal(ref[k], after[k]) for k in ref)          # seeded init, never moved
    # the control: an end-to-end run moves the encoder
    moved = train(images()[:2], cfg(iters_per_scale=5)).G.encoder.state_dict()
    assert not all(torch.equal(ref[k], moved[k]) for k in ref)
    # the heads and the critic did train
    assert any(r["scale"] == model.n_scales - 1 for r in model.history)


def test_frozen_batchnorm_encoder_keeps_its_statistics():
    model = train(images()[:2], cfg(encoder_frozen=True, norm="batch", iters_per_scale=3))
    fresh = HyperGAN(cfg(encoder_frozen=True, norm="batch"))
    bn = model.G.encoder.stem[1]
    assert torch.equal(bn.running_mean, fresh.G.encoder.stem[1].running_mean)
    assert int(bn.num_batches_tracked) == 0
    model.G.train()
    assert not model.G.encoder.training and model.G.heads.training


def test_encoder_from_another_hyper_gans_checkpoint(tmp_path):
    donor = train(images()[1:], cfg(iters_per_scale=4))          # trained on other images
    path = donor.save(tmp_path / "donor.safetensors")
    model = train(images()[:2], cfg(encoder_frozen=True, encoder_weights=str(path),
                                    iters_per_scale=3))
    a, b = donor.G.encoder.state_dict(), model.G.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = HyperGAN(cfg(embed_dim=24)).G.encoder
    with pytest.raises(ConfigError, match="does not fit this config"):
        load_encoder_weights(other, path)
    with pytest.raises(ConfigError, match="no file at"):
        train(images()[:2], cfg(encoder_weights=str(tmp_path / "missing.pth")))


def _torchvision_like(encoder: ResNetEncoder, generator: torch.Generator) -> dict:
    """A state dict in torchvision's names for ``encoder``'s architecture (random values)."""
    names = {"stem.0": "conv1", "stem.1": "bn1"}
    out = {}
    for key, v in encoder.state_dict().items():
        if key.startswith("fc."):
            continue
        tv = key
        for a, b in names.items():
            tv = tv.replace(a, b) if tv.startswith(a) else tv
        if tv.startswith("stages."):
            _, stage, block, *rest = tv.split(".")
            rest = ["downsample", *rest[1:]] if rest[0] == "shortcut" else rest
            rest = ["bn" + rest[0][4:], *rest[1:]] if rest[0].startswith("norm") else rest
            tv = ".".join([f"layer{int(stage) + 1}", block, *rest])
        val = (torch.rand(v.shape, generator=generator) + 0.5 if "running_var" in key
               else torch.randn(v.shape, generator=generator) * 0.1) if v.is_floating_point() \
            else v.clone()
        out[tv] = val
    out["fc.weight"], out["fc.bias"] = torch.zeros(1000, 128), torch.zeros(1000)
    return out


def test_torchvision_format_weights_load_with_the_input_change_folded_in(tmp_path):
    enc = ResNetEncoder(backbone_config("resnet-small", "batch"), 16).eval()
    tv = _torchvision_like(enc, torch.Generator().manual_seed(0))
    torch.save(tv, tmp_path / "resnet.pth")
    load_encoder_weights(enc, tmp_path / "resnet.pth")
    assert torch.equal(enc.stages[2][0].shortcut[0].weight, tv["layer3.0.downsample.0.weight"])
    assert torch.equal(enc.stages[0][0].norm2.running_var, tv["layer1.0.bn2.running_var"])
    # the folded stem on x ∈ [-1, 1] equals torchvision's stem on ((x + 1)/2 − mean)/std
    raw = ResNetEncoder(backbone_config("resnet-small", "batch"), 16).eval()
    with torch.no_grad():
        raw.stem[0].weight.copy_(tv["conv1.weight"])
        for k in ("weight", "bias", "running_mean", "running_var"):
            getattr(raw.stem[1], k).copy_(tv[f"bn1.{k}"])
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1)
    with torch.no_grad():
        ours = enc.stem[1](enc.stem[0](x))
        theirs = raw.stem[1](raw.stem[0](((x + 1) / 2 - mean) / std))
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))    # the padding differs
    assert torch.allclose(ours[inner], theirs[inner], atol=1e-4)


def test_torchvision_weights_are_refused_with_a_clear_reason(tmp_path):
    enc = ResNetEncoder(backbone_config("resnet-small", "batch"), 16)
    tv = _torchvision_like(enc, torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="norm='batch'"):
        load_torchvision_resnet(ResNetEncoder(backbone_config("resnet-small"), 16), tv)
    bad = dict(tv, **{"layer1.0.conv1.weight": torch.zeros(5, 5, 3, 3)})
    with pytest.raises(ConfigError, match="layer1.0.conv1.weight"):
        load_torchvision_resnet(enc, bad)
    del tv["layer4.0.bn1.weight"]
    with pytest.raises(ConfigError, match="no value for 1 encoder tensors"):
        load_torchvision_resnet(enc, tv)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot be read as plain tensors"):
        load_encoder_weights(enc, tmp_path / "junk.pth")


def test_the_command_line_sets_the_new_fields():
    from mil_core.models.hypergan_train import _parse_override
    assert _parse_override("encoder_frozen=true") == ("encoder_frozen", True)
    assert _parse_override("head_rank=8") == ("head_rank", 8)
    assert _parse_override("encoder_weights=/x/resnet34.pth") == ("encoder_weights",
                                                                  "/x/resnet34.pth")


def test_the_coarse_drift_record_measures_without_changing_training():
    base = cfg(iters_per_scale=5)
    variants = [HS.HeadVariant("e2e", 1), HS.HeadVariant("frozen random", 1,
                                                         encoder="frozen-random")]
    coarse: dict[str, list[float]] = {}
    with_record = HS.run_study(images()[:2], base, variants, coarse=coarse, log=False)
    without = HS.run_study(images()[:2], base, variants[:1], log=False)
    n = with_record["e2e"].n_scales
    assert [len(coarse[v.name]) for v in variants] == [n, n]
    assert len(set(coarse["frozen random"])) == 1          # nothing upstream of scale 0 moves
    assert len(set(coarse["e2e"])) == n                     # the trained encoder does move it
    a, b = with_record["e2e"].G.state_dict(), without["e2e"].G.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)          # measuring is read-only
