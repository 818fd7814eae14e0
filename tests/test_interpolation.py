"""Interpolation between images' generators (mil_core.interpolation): exact endpoints, switch
scale 0 = full interpolation, the slope of a known path, clear errors."""
import pytest
import torch

from mil_core.errors import ConfigError
from mil_core.interpolation import blended_weights, interpolation_path, path_slopes, smoothness


@pytest.fixture
def trained(tiny_hypergan):
    model, imgs, _ = tiny_hypergan
    return model, model.embed(imgs)


def _equal(wa, wb):
    return all(torch.equal(x, y) for (a, b), (c, d) in zip(wa, wb) for x, y in ((a, c), (b, d)))


@pytest.mark.parametrize("method", ["embedding", "weights"])
def test_the_endpoints_are_the_images_own_generators(trained, method):
    model, e = trained
    own_a, own_b = model.generator_weights(e[:1]), model.generator_weights(e[1:])
    for s, (wa, wb) in enumerate(zip(blended_weights(model, e[0], e[1], 0.0, 0, method),
                                     blended_weights(model, e[0], e[1], 1.0, 0, method))):
        assert _equal(wa, own_a[s])
        assert all(torch.allclose(x, y, atol=1e-6) for (a, b), (c, d) in zip(wb, own_b[s])
                   for x, y in ((a, c), (b, d)))
    path = interpolation_path(model, e[0], e[1], [0.0, 1.0], 0, method, seed=3)
    noise = torch.Generator().manual_seed(3)
    shapes = model.shapes
    z = [torch.randn(1, 3, *s, generator=noise) for s in shapes]
    with torch.no_grad():
        a = model.run_scales(own_a, 1, noise=z).clamp(-1, 1)[0]
    assert torch.equal(path[0], a)


def test_a_late_switch_keeps_image_as_coarse_scales(trained):
    model, e = trained
    n = model.n_trained - 1
    w = blended_weights(model, e[0], e[1], 0.7, n)
    own_a = model.generator_weights(e[:1])
    assert all(_equal(w[s], own_a[s]) for s in range(n))
    assert not _equal(w[n], own_a[n])
    full = blended_weights(model, e[0], e[1], 0.7, 0)
    mixed = model.generator_weights(torch.lerp(e[:1], e[1:], 0.7))
    assert all(_equal(full[s], mixed[s]) for s in range(model.n_trained))


def test_path_slope_of_a_linear_path_is_its_mean_absolute_direction():
    v = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(1))
    alphas = [0.0, 0.1, 0.25, 0.7, 1.0]
    path = torch.stack([a * v for a in alphas])
    assert torch.allclose(path_slopes(path, alphas), torch.full((4,), float(v.abs().mean())),
                          rtol=1e-5)
    with pytest.raises(ConfigError, match="increase"):
        path_slopes(path, [0.0, 0.5, 0.4, 0.7, 1.0])


def test_smoothness_rows_cover_pairs_seeds_switches_and_steps(trained):
    model, e = trained
    df = smoothness(model, e, [(0, 1)], [0, 1], [0.0, 0.5, 1.0], [0, 1])
    assert len(df) == 1 * 2 * 2 * 2 and set(df["switch"]) == {0, 1}
    assert (df["slope"] >= 0).all()


def test_bad_arguments_are_named(trained):
    model, e = trained
    with pytest.raises(ConfigError, match="alpha"):
        blended_weights(model, e[0], e[1], 1.5)
    with pytest.raises(ConfigError, match="switch scale"):
        blended_weights(model, e[0], e[1], 0.5, model.n_trained)
    with pytest.raises(ConfigError, match="e_b must be one embedding"):
        blended_weights(model, e[0], e[1, :3], 0.5)
    with pytest.raises(ConfigError, match="method"):
        blended_weights(model, e[0], e[1], 0.5, 0, "pixels")


def test_the_explorer_builds_without_a_browser_and_its_callback_draws(trained):
    import matplotlib
    matplotlib.use("Agg")
    import ipywidgets
    from mil_core.explorer import interpolation_explorer, render

    model, e = trained
    img = render(model, e, 0, 1, 0.5, 0)
    assert img.shape == (3, *model.shapes[model.n_trained - 1])
    assert img.abs().max() <= 1.0
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 30, 40, generator=g) * 2 - 1 for _ in range(2)]
    box = interpolation_explorer(model, imgs, ["a", "b"], interactive=True)
    assert isinstance(box, ipywidgets.VBox)
    fig = interpolation_explorer(model, imgs, ["a", "b"], interactive=False)
    assert len([ax for ax in fig.axes if ax.get_images()]) == 5 * len({0, (model.n_trained - 1) // 2,
                                                                       model.n_trained - 1})
    with pytest.raises(ConfigError, match="image index b"):
        render(model, e, 0, 2, 0.5, 0)


def test_weight_and_embedding_interpolation_agree_because_the_heads_are_affine(trained):
    model, e = trained
    for alpha in (0.3, 0.5):
        wa = blended_weights(model, e[0], e[1], alpha, 0, "embedding")
        wb = blended_weights(model, e[0], e[1], alpha, 0, "weights")
        assert all(torch.allclose(x, y, atol=1e-5) for s in range(model.n_trained)
                   for (a, b), (c, d) in zip(wa[s], wb[s]) for x, y in ((a, c), (b, d)))


def test_the_cross_fade_slope_is_the_endpoints_distance(trained):
    model, e = trained
    df = smoothness(model, e, [(0, 1)], [0], [0.0, 0.5, 1.0], [0])
    path = interpolation_path(model, e[0], e[1], [0.0, 1.0], 0, "embedding", 0)
    assert df["cross-fade slope"].iloc[0] == pytest.approx(float((path[1] - path[0]).abs().mean()),
                                                           rel=1e-5)
    assert df["slope"].mean() >= df["cross-fade slope"].iloc[0] * (1 - 1e-5)  # triangle ineq.
