import dataclasses

import pytest

from mil_core.errors import ConfigError
from mil_core.profiles import PROFILES, get_profile


def test_three_profiles_same_fields_growing_budgets():
    smoke, cpu, paper = (get_profile(n) for n in ("smoke", "cpu", "paper"))
    # profiles change sizes and step counts, never the structure
    assert dataclasses.fields(smoke.image) == dataclasses.fields(paper.image)
    for section in ("image", "gan", "git"):
        s, c, p = (dataclasses.asdict(getattr(x, section)) for x in (smoke, cpu, paper))
        assert s.keys() == c.keys() == p.keys()
    assert smoke.gan.iters_per_scale < cpu.gan.iters_per_scale < paper.gan.iters_per_scale
    assert smoke.image.max_size < cpu.image.max_size < paper.image.max_size
    assert smoke.notebook_timeout_min < cpu.notebook_timeout_min < paper.notebook_timeout_min


def test_paper_profile_matches_reference_settings():
    p = get_profile("paper")
    # REFERENCE §2 and §4
    assert (p.image.max_size, p.image.min_size, p.image.scale_factor) == (250, 25, 0.75)
    assert (p.image.n_scales, p.image.aspect, p.image.embed_size) == (7, 0.75, 128)
    assert (p.gan.iters_per_scale, p.gan.dataset_iters_per_scale, p.gan.batch_size) == (2000, 4000, 16)
    # REFERENCE §6
    assert (p.git.epochs, p.git.batch_size, p.git.n_instances) == (50, 128, 30)
    assert (p.git.ekld_images_per_class, p.git.ekld_transforms) == (40, 100)


def test_lookup_is_case_insensitive_and_unknown_names_fail_clearly():
    assert get_profile(" CPU ").name == "cpu"
    with pytest.raises(ConfigError, match="unknown profile 'gpu'.*smoke, cpu, paper"):
        get_profile("gpu")


def test_dotted_overrides_copy_and_validate():
    p = get_profile("smoke", **{"gan.batch_size": 7, "image.n_scales": 4})
    assert p.gan.batch_size == 7 and p.image.n_scales == 4
    assert PROFILES["smoke"].gan.batch_size != 7  # the registry is untouched
    with pytest.raises(ConfigError, match="unknown profile setting 'gan.batchsize'"):
        get_profile("smoke", **{"gan.batchsize": 3})
    with pytest.raises(ConfigError, match="'nope.x'"):
        get_profile("smoke", **{"nope.x": 3})
