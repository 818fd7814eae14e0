"""Figures shared by the notebooks: image grids, pyramids, class-size bars, transform grids,
training curves.

Each function returns a matplotlib ``Figure``; save it with :func:`mil_core.figures.save_figure`.
Images are torch tensors, either RGB ``(3, H, W)`` in [-1, 1] (MIL side) or grayscale uint8
``(H, W)`` (GIT side).
"""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .errors import ConfigError
from .frontier import TOLERANCE, frontier_points

__all__ = ["to_display", "image_grid", "pyramid_figure", "class_size_figure", "transform_grid",
           "training_curves", "ekld_size_figure", "slope_summary_figure", "frontier_figure",
           "leakage_heatmaps", "scale_curves", "slope_curves", "mean_curves", "loss_curves",
           "bilevel_diagram", "true_size_grid", "head_size_figure"]


def to_display(img: torch.Tensor) -> np.ndarray:
    """A tensor image as an array ``imshow`` understands (RGB in [0, 1], or gray uint8)."""
    img = img.detach().cpu()
    if img.dtype == torch.uint8:
        return img.numpy() if img.dim() == 2 else img.permute(1, 2, 0).numpy()
    if img.dim() == 3 and img.shape[0] in (1, 3):  # (C, H, W) in [-1, 1]
        arr = ((img.float() + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
        return arr[..., 0] if arr.shape[-1] == 1 else arr
    return img.float().numpy()


def image_grid(images: Sequence[torch.Tensor], titles: Sequence[str] | None = None,
               ncols: int = 6, size: float = 2.0, suptitle: str | None = None) -> plt.Figure:
    """A grid of images with optional titles; keeps each image's aspect ratio."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            arr = to_display(images[i])
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0,
                      vmax=255 if arr.dtype == np.uint8 else 1, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def pyramid_figure(scales: Sequence[torch.Tensor], title: str = "") -> plt.Figure:
    """Every scale of a pyramid side by side, drawn at its true relative size."""
    widths = [s.shape[-1] for s in scales]
    fig, axes = plt.subplots(1, len(scales), figsize=(min(2 + 0.012 * sum(widths), 18), 2.6),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, s in zip(axes.flat, scales):
        ax.imshow(to_display(s), interpolation="nearest")
        ax.set_title(f"{s.shape[-2]}×{s.shape[-1]}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def true_size_grid(rows: dict[str, Sequence[torch.Tensor]], titles: Sequence[str] | None = None,
                   inch_per_px: float = 0.03, suptitle: str | None = None) -> plt.Figure:
    """Rows of images drawn at their true relative sizes (a retargeting grid: a 1 × 2 sample is
    twice as wide as the training-size one). ``rows``: label → images (3, H, W); ``titles``: one
    per column (the first row's order). ``inch_per_px``: the drawing scale."""
    if not rows:
        raise ConfigError("true_size_grid: no rows to draw")
    labels = list(rows)
    gap, left = 0.12, 1.0                                     # inches between images; for labels
    top = 0.3 + (0.4 if suptitle else 0)                       # inches for the titles
    widths = [sum(im.shape[-1] * inch_per_px + gap for im in rows[r]) for r in labels]
    heights = [max(im.shape[-2] for im in rows[r]) * inch_per_px for r in labels]
    fig_w = left + max(widths) + gap
    fig_h = top + sum(h + gap for h in heights) + gap
    fig = plt.figure(figsize=(fig_w, fig_h))
    y = fig_h - top
    for r, (label, row_h) in enumerate(zip(labels, heights)):
        y -= row_h
        x = left
        for c, im in enumerate(rows[label]):
            h, w = im.shape[-2] * inch_per_px, im.shape[-1] * inch_per_px
            ax = fig.add_axes([x / fig_w, (y + row_h - h) / fig_h, w / fig_w, h / fig_h])
            ax.imshow(to_display(im), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and titles is not None and c < len(titles):
                ax.set_title(titles[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
            x += w + gap
        y -= gap
    if suptitle:
        fig.suptitle(suptitle, y=1 - 0.05 / fig_h, va="top")
    return fig


def class_size_figure(sizes_by_name: dict[str, Sequence[int]], log: bool = True) -> plt.Figure:
    """Class sizes sorted by rank, one panel per dataset (log scale, as in GIT's Figure 2)."""
    fig, axes = plt.subplots(1, len(sizes_by_name), figsize=(4.2 * len(sizes_by_name), 3.2),
                             squeeze=False)
    for ax, (name, sizes) in zip(axes.flat, sizes_by_name.items()):
        ranked = sorted(sizes, reverse=True)
        ax.bar(np.arange(1, len(ranked) + 1), ranked, color="tab:blue")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("class rank")
        ax.set_ylabel("training images")
        ax.set_title(f"{name}: {sum(ranked):,} images, imbalance {ranked[0] / ranked[-1]:.0f}")
    fig.tight_layout()
    return fig


def transform_grid(rows: dict[str, torch.Tensor], size: float = 1.1,
                   title: str | None = None) -> plt.Figure:
    """One row per label (e.g. "original", "ROT"), each a batch ``(N, H, W)`` of uint8 images,
    under an optional figure ``title`` (set before the layout, so it never overprints a row)."""
    names = list(rows)
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), n, figsize=(size * n + 1.2, size * len(names)),
                             squeeze=False)
    for r, name in enumerate(names):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(rows[name]):
                ax.imshow(to_display(rows[name][c]), cmap="gray", vmin=0, vmax=255,
                          interpolation="nearest")
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, Sequence[dict]],
                    keys: Sequence[tuple[str, str, bool]] = (
                        ("rec_loss", "reconstruction MSE", True),
                        ("wasserstein", "critic's Wasserstein estimate", False)),
                    title: str = "") -> plt.Figure:
    """Curves of logged training rows (``model.history``), one line per run, scales in turn.

    ``keys``: (column, panel title, log y-axis). Rows need ``scale`` and ``iter``; a row's x is
    its iteration counted over all scales. Dotted vertical lines mark the start of each scale.
    """
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 3.2), squeeze=False)
    for name, rows in histories.items():
        rows = list(rows)
        if not rows:
            continue
        per_scale = max(r["iter"] for r in rows) + 1
        x = [r["iter"] + r["scale"] * per_scale for r in rows]
        for ax, (key, label, log) in zip(axes[0], keys):
            ax.plot(x, [r[key] for r in rows], label=name, lw=1.2)
            ax.set(title=label, xlabel="iteration (scales in turn)", yscale="log" if log else "linear")
        for ax in axes[0]:
            for s in range(1, max(r["scale"] for r in rows) + 1):
                ax.axvline(s * per_scale, color="0.8", ls=":", lw=0.8)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def ekld_size_figure(table: pd.DataFrame, slopes: pd.DataFrame, rule: str = "erm",
                     floor: float = 1e-6) -> plt.Figure:
    """The blog's figure for one train ``rule``: eKLD against class size (log–log), one panel per
    (dataset, transform), every (instance, class) as a point coloured by instance, and the
    fitted line of ``slopes`` (:func:`mil_core.classify.sweep.slope_table`) with its slope and
    interval in the panel title. Each panel has its own y range; eKLD below ``floor`` is drawn
    at ``floor`` (the value the fit used)."""
    rows = table[table["rule"] == rule]
    if rows.empty:
        raise ConfigError(f"ekld_size_figure: no rows with rule {rule!r}; the table has "
                         f"{sorted(table['rule'].unique())}")
    datasets = list(dict.fromkeys(rows["dataset"]))
    transforms = list(dict.fromkeys(rows["transform"]))
    fig, axes = plt.subplots(len(datasets), len(transforms),
                             figsize=(3.4 * len(transforms), 2.9 * len(datasets)), squeeze=False)
    for r, d in enumerate(datasets):
        for c, t in enumerate(transforms):
            ax = axes[r, c]
            g = rows[(rows["dataset"] == d) & (rows["transform"] == t)]
            for inst, gi in g.groupby("instance"):
                ax.scatter(gi["class_size"], np.maximum(gi["ekld"], floor), s=14, alpha=0.7,
                           label=f"instance {inst}")
            fit = slopes[(slopes["dataset"] == d) & (slopes["transform"] == t)
                         & (slopes["rule"] == rule)]
            if len(fit) and np.isfinite(fit["slope"].iloc[0]):
                f = fit.iloc[0]
                xs = np.geomspace(g["class_size"].min(), g["class_size"].max(), 50)
                ax.plot(xs, 10 ** (f["intercept"] + f["slope"] * np.log10(xs)), "k-", lw=1.5)
                ax.set_title(f"{d} {t.upper()}: slope {f['slope']:+.2f} "
                             f"[{f['ci low']:+.2f}, {f['ci high']:+.2f}]", fontsize=9)
            else:
                ax.set_title(f"{d} {t.upper()}", fontsize=9)
            ax.set(xscale="log", yscale="log")
            if r == len(datasets) - 1:
                ax.set_xlabel("training images of the class")
            if c == 0:
                ax.set_ylabel(f"eKLD ({rule.upper()})")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def slope_summary_figure(slopes: pd.DataFrame) -> plt.Figure:
    """Slope of log eKLD against log class size per train rule, with its interval
    (:func:`mil_core.classify.sweep.slope_table`): one panel per dataset, transforms along x,
    rules side by side. Below the dashed zero line, rare classes are less invariant."""
    datasets = list(dict.fromkeys(slopes["dataset"]))
    rules = list(dict.fromkeys(slopes["rule"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 3.4),
                             squeeze=False, sharey=True)
    width = 0.8 / len(rules)
    for ax, d in zip(axes[0], datasets):
        g = slopes[slopes["dataset"] == d]
        transforms = list(dict.fromkeys(g["transform"]))
        for k, rule in enumerate(rules):
            gr = g[g["rule"] == rule].set_index("transform").reindex(transforms)
            x = np.arange(len(transforms)) - 0.4 + width * (k + 0.5)
            err = np.vstack([gr["slope"] - gr["ci low"], gr["ci high"] - gr["slope"]])
            ax.errorbar(x, gr["slope"], yerr=err, fmt="o", capsize=2, ms=4, label=rule)
        ax.axhline(0, color="k", ls="--", lw=0.8)
        ax.set_xticks(np.arange(len(transforms)), [t.upper() for t in transforms])
        ax.set_title(d)
    axes[0, 0].set_ylabel("slope of log eKLD vs log class size")
    axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def frontier_figure(table: pd.DataFrame, x: str = "norm min/image") -> plt.Figure:
    """Quality against cost (``benchmarks/bench_frontier.py``'s table): patch SWD and layout
    against ``x`` (log), one line per series (method; MIL per number of training images), one
    point per budget (mean over the images measured, labelled with its iterations per scale),
    ablation variants as open markers, and the published SinGAN / ConSinGAN samples of the same
    images as dotted lines (target 1's 1.25× band of published SinGAN dashed), one panel pair per
    image size. Lower is better on both axes."""
    need = {"method", "size", "iters/scale", "SWD ×1e3", "layout", x}
    if missing := need - set(table.columns):
        raise ConfigError(f"frontier_figure: the table lacks {sorted(missing)}; pass the CSV "
                          f"of benchmarks/bench_frontier.py")
    table = table.assign(**{k: table[k] if k in table.columns else 1
                            for k in ("channels", "train images")})
    table = table.assign(image=table["image"] if "image" in table.columns else "?")
    points = frontier_points(table)
    sizes = sorted(points["size"].unique(), reverse=True)       # the targets' size (largest) first
    fig, axes = plt.subplots(len(sizes), 2, figsize=(11, 3.8 * len(sizes)), squeeze=False)
    palette = ["tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:cyan", "tab:pink",
               "tab:olive", "tab:gray"]                       # red / green: the published lines
    colors = dict(zip(points["series"].unique(), palette * 4))
    for r, size in enumerate(sizes):
        at = points[points["size"] == size]
        rows = table[table["size"] == size]
        for c, (col, label) in enumerate((("SWD ×1e3", "patches: SWD ×10³"),
                                          ("layout", "layout: 6×8 thumbnail MSE"))):
            ax = axes[r, c]
            for series, g in at.groupby("series", sort=False):
                g = g.sort_values(x)
                ablation = (g["variant"] != "default").all()
                ax.plot(g[x], g[col], "o" if ablation else "o-", label=series,
                        color=colors[series], mfc="none" if ablation else colors[series])
                for _, p in g.iterrows():
                    ax.annotate(f"{int(p['iters/scale'])}", (p[x], p[col]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
            for pub, color in (("SinGAN", "tab:red"), ("ConSinGAN", "tab:green")):
                name = f"pub {pub} {'SWD' if col == 'SWD ×1e3' else 'layout'}"
                if name in rows:
                    ref = rows.drop_duplicates("image")[name].mean()
                    ax.axhline(ref, color=color, ls=":", label=f"published {pub}")
                    if pub == "SinGAN":
                        ax.axhline(TOLERANCE * ref, color=color, ls="--", lw=0.8,
                                   label=f"{TOLERANCE}× published SinGAN")
            ax.set(xscale="log", xlabel=x, ylabel=label, title=f"{label.split(':')[0]}, {size} px")
            ax.set_ylim(bottom=0)
    legend: dict[str, object] = {}
    for ax in axes[:, 0]:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(name, handle)
    labels = list(legend)
    fig.legend(list(legend.values()), labels, loc="lower center", ncol=4, fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.02 * (len(labels) // 4), 1, 1))
    return fig


def leakage_heatmaps(matrices: dict[str, torch.Tensor], names: Sequence[str],
                     title: str = "") -> plt.Figure:
    """One heat map per run of a leakage matrix (:class:`mil_core.metrics.Leakage`): row ``i``
    the samples of image ``i``, column ``j`` the share of their patches nearest to image ``j``
    (the diagonal is what stays home). Every cell is annotated; one colour scale for all."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.3 * len(matrices) + 0.6, 3.4),
                             squeeze=False)
    im = None
    for ax, (label, m) in zip(axes[0], matrices.items()):
        m = m.detach().cpu().float().numpy()
        im = ax.imshow(m, vmin=0, vmax=1, cmap="magma")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if m[i, j] > 0.6 else "white")
        ticks = range(len(names))
        ax.set_xticks(ticks, [n[:10] for n in names], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(ticks, [n[:10] for n in names] if ax is axes[0][0] else [], fontsize=7)
        leak = 1 - float(np.diag(m).mean())
        ax.set_title(f"{label}\nleakage {leak:.2f}", fontsize=9)
        ax.set_xlabel("nearest real patch's image", fontsize=8)
    axes[0][0].set_ylabel("samples of image", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="share of patches")
    if title:
        fig.suptitle(title)
    return fig


def scale_curves(rows: pd.DataFrame, columns: Sequence[tuple[str, str]],
                 refs: dict[str, Sequence[tuple[str, str]]] | None = None, by: str = "variant",
                 title: str = "") -> plt.Figure:
    """Per-scale measures of several runs: one panel per ``(column, label)``, one line per
    ``by`` value (mean over seeds, a band from the lowest to the highest seed) and, in the panel
    of column ``c``, dashed reference lines for ``refs[c]`` = ``[(column, label)]`` (their mean
    over runs)."""
    fig, axes = plt.subplots(1, len(columns), figsize=(5.2 * len(columns), 3.3), squeeze=False)
    for ax, (col, label) in zip(axes[0], columns):
        for key, grp in rows.groupby(by, sort=False):
            g = grp.groupby("scale")[col]
            x, m = g.mean().index, g.mean().values
            line, = ax.plot(x, m, "o-", label=str(key), lw=1.4, ms=4)
            if grp["seed"].nunique() > 1:
                ax.fill_between(x, g.min().values, g.max().values, color=line.get_color(),
                                alpha=0.18, lw=0)
        for k, (ref, ref_label) in enumerate((refs or {}).get(col, ())):
            mean = rows.groupby("scale")[ref].mean()
            ax.plot(mean.index, mean.values, ls=("--", ":", "-.")[k % 3], color="0.35", lw=1,
                    label=ref_label)
        ax.set(title=label, xlabel="scale (coarse → fine)")
        ax.set_xticks(sorted(rows["scale"].unique()))
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def slope_curves(rows: pd.DataFrame, title: str = "") -> plt.Figure:
    """Appendix F's plot from :func:`mil_core.interpolation.smoothness` rows: one panel per
    method, the slope against α, one line per switch scale (the mean over pairs and seeds) and a
    band between its 25th and 75th percentiles."""
    methods = list(dict.fromkeys(rows["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(5.4 * len(methods), 3.4), squeeze=False,
                             sharey=True)
    cmap = plt.get_cmap("viridis")
    switches = sorted(rows["switch"].unique())
    for ax, method in zip(axes[0], methods):
        sub = rows[rows["method"] == method]
        for k, n in enumerate(switches):
            g = sub[sub["switch"] == n].groupby("alpha")["slope"]
            colour = cmap(k / max(1, len(switches) - 1))
            ax.plot(g.mean().index, g.mean().values, color=colour, lw=1.5, label=f"scales ≥ {n}")
            ax.fill_between(g.mean().index, g.quantile(0.25).values, g.quantile(0.75).values,
                            color=colour, alpha=0.15, lw=0)
        ax.set(title=f"{method} interpolation", xlabel="α", yscale="log")
    axes[0][0].set_ylabel("slope ‖Δx‖₁ / (Δα · size)")
    axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def mean_curves(rows: pd.DataFrame, x: str, columns: Sequence[tuple[str, str]], by: str,
                title: str = "", xlabel: str | None = None, logx: bool = False) -> plt.Figure:
    """One panel per ``(column, label)``: the mean of ``column`` against ``x``, one line per
    ``by`` value, with a band between the 25th and 75th percentiles of the rows at each ``x``
    (the spread over images, say). Used for metrics against the training-set size N and
    against the adaptation steps K (notebook 07)."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4.6 * len(columns), 3.3), squeeze=False)
    for ax, (col, label) in zip(axes[0], columns):
        for key, grp in rows.groupby(by, sort=False):
            g = grp.groupby(x)[col]
            xs = g.mean().index
            line, = ax.plot(xs, g.mean().values, "o-", label=str(key), lw=1.5, ms=4)
            ax.fill_between(xs, g.quantile(0.25).values, g.quantile(0.75).values,
                            color=line.get_color(), alpha=0.18, lw=0)
        ax.set(title=label, xlabel=xlabel or x)
        if logx:
            ax.set_xscale("symlog", linthresh=max(1.0, float(rows[x][rows[x] > 0].min())))
        ax.set_xticks(sorted(rows[x].unique()))
        ax.set_xticklabels([str(v) for v in sorted(rows[x].unique())])
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def loss_curves(histories: dict[str, Sequence[dict]], keys: Sequence[tuple[str, str]],
                title: str = "", smooth: int = 10) -> plt.Figure:
    """Logged losses of single-stage runs (e.g. MUNIT's ``history``): one panel per ``(column,
    title)``, x = ``iter``, one line per run, a running mean over ``smooth`` logged rows."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.0), squeeze=False)
    for name, rows in histories.items():
        df = pd.DataFrame(list(rows))
        for ax, (col, label) in zip(axes[0], keys):
            y = df[col].rolling(max(1, smooth), min_periods=1).mean()
            ax.plot(df["iter"], y, label=str(name), lw=1.3)
            ax.set(title=label, xlabel="iteration")
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bilevel_diagram() -> plt.Figure:
    """The blog's reading drawn: the general bi-level meta-learning problem (left) beside
    single-domain MUNIT's objective (right), with arrows from each term to its counterpart."""
    fig, ax = plt.subplots(figsize=(12.5, 5.2))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    box = dict(boxstyle="round,pad=0.6", fc="#f4f6fb", ec="#3a4a6b", lw=1.2)
    ax.text(0.23, 0.95, "meta-learning (bi-level form)", ha="center", fontsize=13,
            weight="bold")
    ax.text(0.77, 0.95, "single-domain MUNIT (GIT)", ha="center", fontsize=13, weight="bold")
    left = [(0.74, r"outer: $\theta^* = \arg\min_\theta \sum_{i=1}^{M}"
                   r"\mathcal{L}^{meta}(\phi_i^*(\theta), \theta;\ \mathcal{D}_i^{val})$"),
            (0.47, r"inner: $\phi_i^*(\theta) = \arg\min_\phi "
                   r"\mathcal{L}^{task}(\phi, \theta;\ \mathcal{D}_i^{tr})$"),
            (0.2, "tasks $i = 1..M$, each with its own data $\\mathcal{D}_i$;\n"
                  "$\\theta$: what is shared (the meta-knowledge)")]
    right = [(0.74, r"outer: $G^* = \arg\min_{E_c, E_s, Dec}\ \lambda_x\mathcal{L}_{rec}^{x}"
                    r" + \lambda_c\mathcal{L}_{rec}^{c} + \lambda_s\mathcal{L}_{rec}^{s}"
                    r" + \mathcal{L}_{GAN}(G, D^*)$"),
             (0.47, r"inner: $D^*(G) = \arg\max_D\ \mathcal{L}_{GAN}(G, D)$"),
             (0.2, "tasks: the classes of one long-tailed set (both 'domains');\n"
                   "shared: the style space $s \\sim N(0, I)$ = the nuisance $T(\\cdot|x)$")]
    for (y, t), (_, u) in zip(left, right):
        ax.text(0.23, y, t, ha="center", va="center", fontsize=10.5, bbox=box)
        ax.text(0.77, y, u, ha="center", va="center", fontsize=10.5, bbox=box)
        ax.annotate("", xy=(0.53, y), xytext=(0.47, y),
                    arrowprops=dict(arrowstyle="<->", color="#b5482f", lw=1.5))
    ax.text(0.5, 0.04, "Where the map is loose (our reading): a meta-learner solves one inner problem "
            "per task; MUNIT's inner critic is shared by all classes, and no term rewards doing "
            "better on a task because other tasks were seen.", ha="center", fontsize=9.5,
            style="italic", wrap=True)
    fig.tight_layout()
    return fig


def head_size_figure(table: pd.DataFrame, columns: Sequence[tuple[str, str]] = (
        ("SWD ×1e3", "patches: SWD ×1e3 (lower is better)"),
        ("layout", "layout distance (lower is better)"),
        ("diversity", "diversity")), reference: str | None = None) -> plt.Figure:
    """Quality against head size (12): one panel per column of ``table`` (rows: variants with
    ``G head params/scale`` and ``encoder``), x on a log scale, frozen-encoder rows hollow, and
    a dotted line at the ``reference`` row (default: the first)."""
    need = {"G head params/scale", "encoder", *(c for c, _ in columns)}
    if not need <= set(table.columns):
        raise ConfigError(f"head_size_figure: table needs columns {sorted(need)}, got "
                          f"{sorted(table.columns)}")
    ref = table.index[0] if reference is None else reference
    fig, axes = plt.subplots(1, len(columns), figsize=(4.6 * len(columns), 3.6), squeeze=False)
    for ax, (col, label) in zip(axes[0], columns):
        for name, row in table.iterrows():
            frozen = row["encoder"] == "frozen"
            ax.scatter(row["G head params/scale"], row[col], s=46, marker="s" if frozen else "o",
                       facecolors="none" if frozen else "C0", edgecolors="C3" if frozen else "C0")
        ax.axhline(table.loc[ref, col], ls=":", c="0.4", lw=1)
        ax.set_xscale("log")
        _label_clusters(ax, table["G head params/scale"], table[col])
        ax.set_xlabel("G head parameters per scale")
        ax.set_title(label, fontsize=10)
    keys = [plt.Line2D([], [], marker="o", ls="", c="C0", label="trained encoder"),
            plt.Line2D([], [], marker="s", ls="", mfc="none", c="C3", label="frozen encoder"),
            plt.Line2D([], [], ls=":", c="0.4", label=str(ref))]
    fig.legend(handles=keys, fontsize=8, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _label_clusters(ax: plt.Axes, xs: pd.Series, ys: pd.Series, decade: float = 0.1) -> None:
    """Name each point of a log-x scatter: a lone point beside itself, the points of a cluster
    (x within ``decade`` decades of each other) in a column to its right, spread apart in y and
    joined to their points, so that the labels of equal-size heads do not overlap."""
    order = np.argsort(np.log10(xs.to_numpy(float)))
    clusters: list[list[int]] = []
    for i in order:
        if clusters and math.log10(xs.iloc[i]) - math.log10(xs.iloc[clusters[-1][0]]) < decade:
            clusters[-1].append(i)
        else:
            clusters.append([i])
    lo, hi = ax.get_ylim()
    gap = 0.075 * (hi - lo)
    right = xs.max()
    for members in clusters:
        if len(members) == 1:
            i = members[0]
            ax.annotate(str(xs.index[i]), (xs.iloc[i], ys.iloc[i]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
            continue
        members = sorted(members, key=lambda i: ys.iloc[i])
        want = np.array([ys.iloc[i] for i in members], float)
        place = want.copy()
        for k in range(1, len(place)):                    # push up until gap apart ...
            place[k] = max(place[k], place[k - 1] + gap)
        place -= max(0.0, (place.mean() - want.mean()))   # ... then recentre on the points,
        place += max(0.0, lo + gap / 2 - place[0])         # inside the axes where they fit:
        place -= min(max(0.0, place[-1] - (hi - gap / 2)),  # down by the overflow at the top,
                     max(0.0, place[0] - (lo + gap / 2)))   # as far as the room at the bottom
        lo, hi = min(lo, place[0] - gap / 2), max(hi, place[-1] + gap / 2)
        x_text = max(xs.iloc[i] for i in members) * 1.6
        right = max(right, x_text * 9)
        for i, y in zip(members, place):
            ax.annotate(str(xs.index[i]), (xs.iloc[i], ys.iloc[i]), xytext=(x_text, y),
                        textcoords="data", fontsize=7, va="center",
                        arrowprops=dict(arrowstyle="-", lw=0.5, color="0.55"))
    ax.set_xlim(right=right)
    ax.set_ylim(lo, hi)
