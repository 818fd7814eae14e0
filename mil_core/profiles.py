"""Run profiles: one set of sizes and step counts per machine budget.

Every experiment in the notebook series reads its sizes from a :class:`Profile`, so the same code
runs in three budgets (DEVELOPERS.md, "CPU first, GPU ready"):

- ``smoke`` — seconds to a few minutes on a 2-core CPU; CI executes every notebook with it.
  Numbers are meaningless, but every code path runs.
- ``cpu``   — at most ~30 minutes per notebook on 2 cores; big enough to show the papers' effects.
- ``paper`` — the papers' own settings (REFERENCE §2, §4, §6); meant for a GPU.

Profiles change sizes and step counts, never code paths. Use::

    from mil_core.profiles import get_profile
    prof = get_profile("cpu", **{"gan.iters_per_scale": 100})   # dotted overrides
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["ImageConfig", "GanConfig", "GitConfig", "Profile", "PROFILES", "get_profile",
           "profile_names"]


@dataclass(frozen=True)
class ImageConfig:
    """Image sizes and the pyramid of the single-image / MIL GANs (REFERENCE §2, §4)."""
    max_size: int = 250          # long side of the finest scale, pixels (MIL `img_size`)
    min_size: int = 25           # short side of the coarsest scale, pixels
    scale_factor: float = 0.75   # nominal factor between scales (SinGAN `scale_factor`)
    n_scales: int = 7            # number of scales of the MIL hyper-GAN (SinGAN derives its own)
    aspect: float = 0.75         # forced height/width of MIL's images (SinGAN keeps the image's)
    embed_size: int = 128        # side of the fixed-size copy the hyper-network embeds (MIL: 128)
    n_images: int = 50           # images per dataset experiment (Places-50: 50)
    n_baseline_images: int = 50  # images each single-image baseline (SinGAN, ConSinGAN) trains on
    n_samples: int = 100         # generated samples per image for SIFID / mSIFID
    n_diversity: int = 150       # generated samples per image for diversity (MIL paper: 150)
    minibatch_sizes: tuple[int, ...] = (1, 2, 3, 4, 5)  # fixed mini-batches of Table 2 (MIL: 1–5)
    n_seeds: int = 3             # training seeds per setting where a notebook shows error bars
    n_ablation_seeds: int = 3    # seeds per variant of the failure ablations (04, 05): CIs need 3
    feedforward_train_sizes: tuple[int, ...] = (10, 20, 40)  # training-set sizes N of the
    #                              Table 3 analog (07); paper: 500, 2500, 5000 Valley images
    n_test_images: int = 9       # held-out images the feed-forward models never see (07)
    hpvae_min_size: int = 32     # HP-VAE-GAN's coarsest short side, px (official `min_size` 32)
    hpvae_max_size: int = 256    # HP-VAE-GAN's finest long side, px (official `max_size` 256)
    heads_n_images: int = 50     # Places-50 images of the head / frozen-encoder study (12;
    #                              Appendix C: Places-50)


@dataclass(frozen=True)
class GanConfig:
    """Optimisation of the GANs (SinGAN, ConSinGAN, MIL); REFERENCE §2–§4."""
    iters_per_scale: int = 2000   # SinGAN / single-image iterations per scale
    dataset_iters_per_scale: int = 4000  # MIL dataset training per scale (Places-50: 4000)
    ablation_iters_per_scale: int = 2000  # per scale in the failure ablations (04, 05), which
    #                                       train several variants × seeds per notebook
    feedforward_iters_per_scale: int = 4000  # per scale for every N of the Table 3 analog
    #                                          (07): the same steps whatever the data set size
    adapt_steps: tuple[int, ...] = (0, 100, 500, 2000)  # fine-tuning steps per scale K at
    #                                          which feed-forward-then-adapt is measured (07)
    batch_size: int = 16          # images per MIL mini-batch
    steps_d: int = 3              # discriminator steps per iteration (SinGAN 3, MIL 1)
    steps_g: int = 3              # generator steps per iteration (SinGAN 3, MIL 1)
    channels: int = 32            # SinGAN `nfc`; MIL's primary networks use 64
    checkpoint_every: int = 500   # steps between atomic checkpoints in long runs
    mil_channels: int = 64        # channels of MIL's generated primary G and D (REFERENCE §4: 64)
    embed_dim: int = 512          # MIL embedding size that every projection head reads (512)
    backbone: str = "resnet34"    # MIL image encoder: "resnet34" (paper) or "resnet-small"
    mil_lr: float = 5e-5          # MIL Adam lr of G and D (paper 5e-5 for 2000+ steps/scale; the
    #                               short cpu/smoke budgets need a larger step to get anywhere)
    hpvae_iters_per_scale: int = 50_000  # HP-VAE-GAN iterations per scale, official `niter`
    #                               (25x SinGAN's 2000; kept as the official value, REFERENCE §3b;
    #                               budget it down with an override for a matched comparison)
    hpvae_channels: int = 64      # HP-VAE-GAN `nfc` of encoder, decoder, body blocks and critic
    hpvae_latent_dim: int = 128   # channels of HP-VAE-GAN's spatial latent, official `latent_dim`
    hpvae_hidden_layers: int = 5  # hidden 3x3 convs between head and tail, official `num_layer`
    #                               (so 7 convs per net; smoke/cpu: 3, i.e. SinGAN's 5 convs)
    heads_iters_per_scale: int = 4000  # per scale for every variant of the head study (12),
    #                               which trains ~10 hyper-GANs (Places-50 dataset training: 4000)


@dataclass(frozen=True)
class GitConfig:
    """Long-tailed classification, eKLD and MUNIT of Generative Invariance Transfer (§6)."""
    image_size: int = 28          # side of the GIT images (K49 and animal silhouettes: 28)
    datasets: tuple[str, ...] = ("digits", "animals")   # which offline datasets to run
    epochs: int = 50              # classifier epochs (K49: 50, lr steps at 30/40)
    batch_size: int = 128         # classifier batch size
    n_instances: int = 30         # long-tail instances (class-rank permutations); paper: 30
    ekld_images_per_class: int = 40   # images per class for eKLD (official: 40)
    ekld_transforms: int = 100    # transform samples per image for eKLD (official: 100)
    munit_iters: int = 10_000     # MUNIT iterations (K49: 10k)
    munit_dim: int = 64           # MUNIT width: first conv of both encoders and of the critic
    munit_n_res: int = 4          # MUNIT residual blocks in the content encoder and the decoder
    munit_mlp_dim: int = 256      # hidden width of MUNIT's style MLP (s -> AdaIN parameters)
    munit_datasets: tuple[str, ...] = ("digits", "animals")  # datasets of notebook 10, one
    #                               MUNIT per dataset × transform (instance 0)
    classifier: str = "resnet20"  # "resnet20" (K49, §6), "resnet32" (CIFAR) or "smallcnn" (fast)


@dataclass(frozen=True)
class Profile:
    """A named budget. Nested configs are frozen; derive variants with :meth:`override`."""
    name: str                     # "smoke", "cpu" or "paper"
    description: str              # one line for reports
    image: ImageConfig = field(default_factory=ImageConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    git: GitConfig = field(default_factory=GitConfig)
    notebook_timeout_min: float = 600.0  # per-notebook wall-clock limit used by the runner

    def override(self, **changes: Any) -> "Profile":
        """Return a copy with dotted-key changes, e.g. ``override(**{"gan.batch_size": 4})``.

        Unknown keys raise :class:`ConfigError` naming the key and the valid ones, so a typo never
        silently runs the default.
        """
        prof = self
        for key, value in changes.items():
            section, _, attr = key.partition(".")
            _check_field(Profile, section, key)
            if attr:  # "gan.batch_size": replace inside the frozen section
                sub = getattr(prof, section)
                if not dataclasses.is_dataclass(sub):
                    raise ConfigError(f"profile override {key!r}: {section!r} is not a section")
                _check_field(type(sub), attr, key)
                value = dataclasses.replace(sub, **{attr: value})
            prof = dataclasses.replace(prof, **{section: value})
        return prof

    def as_dict(self) -> dict[str, Any]:
        """Plain nested dict (for reports, JSON and checkpoint metadata)."""
        return dataclasses.asdict(self)


def _check_field(cls: type, name: str, key: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    if name not in names:
        raise ConfigError(f"unknown profile setting {key!r}; {cls.__name__} has: {', '.join(names)}")


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI: every code path in seconds; numbers are not meaningful",
        image=ImageConfig(max_size=32, min_size=12, n_scales=3, embed_size=32, n_images=3,
                          n_baseline_images=2, n_samples=4, n_diversity=4,
                          minibatch_sizes=(1, 2), n_seeds=1, n_ablation_seeds=1,
                          feedforward_train_sizes=(2, 4), n_test_images=2,
                          hpvae_min_size=12, hpvae_max_size=32, heads_n_images=3),
        gan=GanConfig(iters_per_scale=20, dataset_iters_per_scale=20, ablation_iters_per_scale=20,
                      feedforward_iters_per_scale=10, adapt_steps=(0, 3),
                      batch_size=2, steps_d=1,
                      steps_g=1, channels=8, checkpoint_every=10, mil_channels=8,
                      embed_dim=16, backbone="resnet-small", mil_lr=5e-4,
                      hpvae_iters_per_scale=20, hpvae_channels=8, hpvae_latent_dim=8,
                      hpvae_hidden_layers=1, heads_iters_per_scale=10),
        git=GitConfig(image_size=28, epochs=2, batch_size=64, n_instances=1,
                      ekld_images_per_class=4, ekld_transforms=4, munit_iters=20,
                      munit_dim=8, munit_n_res=1, munit_mlp_dim=16, munit_datasets=("digits",),
                      classifier="smallcnn"),
        notebook_timeout_min=10.0,
    ),
    "cpu": Profile(
        name="cpu",
        description="laptop: ~30 minutes per notebook on 2 cores; shows the papers' effects",
        image=ImageConfig(max_size=64, min_size=16, n_scales=5, embed_size=64, n_images=10,
                          n_baseline_images=3, n_samples=20, n_diversity=20,
                          minibatch_sizes=(1, 3, 5), n_seeds=2, hpvae_min_size=16,
                          hpvae_max_size=64, heads_n_images=8),
        gan=GanConfig(iters_per_scale=400, dataset_iters_per_scale=600,
                      ablation_iters_per_scale=300, feedforward_iters_per_scale=400,
                      adapt_steps=(0, 25, 100, 250), batch_size=4, steps_d=1,
                      steps_g=1, channels=16, checkpoint_every=100, mil_channels=16,
                      embed_dim=256, backbone="resnet-small", mil_lr=2.5e-4,
                      hpvae_iters_per_scale=400, hpvae_channels=16, hpvae_latent_dim=16,
                      hpvae_hidden_layers=3, heads_iters_per_scale=150),
        # HP-VAE-GAN at SinGAN's cpu budget (400 iterations per scale, 16 channels, 5 convs per
        # net) so that notebook 01 compares the three baselines at equal cost
        # embed_dim 256, not 64: on the frontier's ablation (RESULTS.md, "Quality–cost
        # frontier") the wider embedding cut the MIL model's layout distance by 16 % at 600
        # steps per scale, and the fused-Adam / channels-last levers pay for its extra cost
        git=GitConfig(image_size=28, epochs=15, batch_size=32, n_instances=3,
                      ekld_images_per_class=20, ekld_transforms=20, munit_iters=2000,
                      munit_dim=32, munit_n_res=2, munit_mlp_dim=64, munit_datasets=("digits",),
                      classifier="smallcnn"),
        notebook_timeout_min=45.0,
    ),
    "paper": Profile(
        name="paper",
        description="the papers' settings (REFERENCE §2, §4, §6); needs a GPU",
        image=ImageConfig(),
        gan=GanConfig(),
        git=GitConfig(),
        notebook_timeout_min=24 * 60.0,
    ),
}


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str | Profile, **overrides: Any) -> Profile:
    """Look up a profile by name (``smoke``, ``cpu``, ``paper``) and apply dotted overrides."""
    if isinstance(name, Profile):
        prof = name
    else:
        key = str(name).strip().lower()
        if key not in PROFILES:
            raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
                              "(PROFILE=... in make, --profile in mil_core.reproduce)")
        prof = PROFILES[key]
    return prof.override(**overrides) if overrides else prof
