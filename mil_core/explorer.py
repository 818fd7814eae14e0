"""An interactive interpolation explorer for JupyterLab (notebook 06), with a static fallback.

:func:`interpolation_explorer` shows two image pickers, an α slider, a switch-scale selector and
a method toggle, and redraws the blended generator's sample (:mod:`mil_core.interpolation`) at
every change. Its drawing is the plain function :func:`render`, which a test (or a script) calls
directly. In a batch run — papermill under ``mil_core.reproduce`` (``MIL_BATCH=1``), or
``interactive=False`` — there is no frontend to talk to, and it returns a static figure of the
same view over a few α values instead.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from .errors import ConfigError
from .interpolation import METHODS, interpolation_path
from .models.hypergan import HyperGAN

__all__ = ["render", "interpolation_explorer"]


def render(model: HyperGAN, embeddings: torch.Tensor, a: int, b: int, alpha: float,
           switch: int, method: str = "embedding", seed: int = 0) -> torch.Tensor:
    """The sample ``(3, H, W)`` in [-1, 1] of the blend of images ``a`` and ``b`` (rows of
    ``embeddings`` (N, D)) at ``alpha``, blending scales ``switch`` and above, noise ``seed``."""
    n = embeddings.shape[0]
    for name, k in (("a", a), ("b", b)):
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n:
            raise ConfigError(f"image index {name} must be an integer in [0, {n - 1}], got {k!r}")
    return interpolation_path(model, embeddings[a], embeddings[b], [alpha], switch, method,
                              seed)[0]


def interpolation_explorer(model: HyperGAN, images: Sequence[torch.Tensor], names: Sequence[str],
                           seed: int = 0, interactive: bool | None = None) -> Any:
    """An ipywidgets explorer over ``images`` (their ``names`` label the pickers), or — in a
    batch run or with ``interactive=False`` — a matplotlib figure: rows = switch scales (first,
    middle, last), columns = α in {0, ¼, ½, ¾, 1}, for the first two images."""
    if len(images) < 2 or len(names) != len(images):
        raise ConfigError("interpolation_explorer needs at least 2 images and one name per image")
    emb = model.embed(images)
    if interactive is None:
        interactive = os.environ.get("MIL_BATCH", "") != "1"
    if not interactive:
        return _static(model, emb, names, seed)
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from .plots import to_display

    options = [(str(nm), k) for k, nm in enumerate(names)]
    pick_a = W.Dropdown(options=options, value=0, description="image A")
    pick_b = W.Dropdown(options=options, value=1, description="image B")
    alpha = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="α")
    switch = W.IntSlider(value=0, min=0, max=model.n_trained - 1, description="switch scale")
    method = W.ToggleButtons(options=list(METHODS), value=METHODS[0], description="blend")
    out = W.Output()

    def redraw(_: Any = None) -> None:
        img = render(model, emb, pick_a.value, pick_b.value, alpha.value, switch.value,
                     method.value, seed)
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4, 3.2))
            ax.imshow(to_display(img))
            ax.set_title(f"{names[pick_a.value]} → {names[pick_b.value]}: α={alpha.value:.2f}, "
                         f"scales ≥ {switch.value}", fontsize=9)
            ax.axis("off")
            plt.show()

    for w in (pick_a, pick_b, alpha, switch, method):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([pick_a, pick_b]), alpha, switch, method, out])


def _static(model: HyperGAN, emb: torch.Tensor, names: Sequence[str], seed: int):
    import matplotlib.pyplot as plt
    from .plots import image_grid

    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    last = model.n_trained - 1
    switches = sorted({0, last // 2, last})
    tiles, titles = [], []
    for n in switches:
        tiles += list(interpolation_path(model, emb[0], emb[1], alphas, n, "embedding", seed))
        titles += [f"scales ≥ {n}, α={a:g}" for a in alphas]
    fig = image_grid(tiles, titles, ncols=len(alphas), size=1.9,
                     suptitle=f"{names[0]} → {names[1]} (static view of the explorer)")
    plt.close(fig)          # shown once, as the cell's value, not again by the inline backend
    return fig
