"""The quality–cost frontier: reading the table of ``benchmarks/bench_frontier.py``.

MIL's headline (Bensadoun et al. 2021, Table 1) is equal quality at a fraction of the cost per
image: 5 min/image for the dataset model against 60 for SinGAN on Places-50. The benchmark trains
SinGAN, ConSinGAN and the MIL dataset model at several budgets, one process per budget, and
appends one row per (run, image) to ``benchmarks/results/frontier.csv``; this module turns that
table into points (one per budget, the mean over the images measured) and into the outcome of the
three targets of the frontier:

1. our SinGAN within ``TOLERANCE`` (1.25×) of the published SinGAN samples on both axes;
2. the MIL dataset model within ``TOLERANCE`` of our SinGAN on both axes at ≥ ``SPEEDUP`` (5×)
   fewer normalised CPU minutes per image;
3. samples that keep their image's layout (a figure, read by eye; see notebook 03).

Cost is ``norm min/image``: minutes × the 3×3 convolution peak measured at the start of the run
/ 100 GFLOP/s, so pieces run while the machine drifts stay comparable.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from .errors import DataError

__all__ = ["FRONTIER_CSV", "SAMPLES_DIR", "REFERENCE_GFLOPS", "TOLERANCE", "SPEEDUP", "load_frontier",
           "label_series", "frontier_points", "target_table", "ablation_table", "run_rows",
           "normalised_minutes", "save_samples", "load_samples"]

FRONTIER_CSV = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "frontier.csv"
SAMPLES_DIR = FRONTIER_CSV.parent / "samples"   # bench_frontier.py --save-samples K
TOLERANCE = 1.25     # "within 1.25×" of the reference, on each quality axis
SPEEDUP = 5.0        # target 2: at least this many times fewer minutes per image than SinGAN
COST = "norm min/image"
REFERENCE_GFLOPS = 100.0   # COST = minutes × the run's conv peak / this: minutes at 100 GFLOP/s
NEEDED = ("method", "size", "iters/scale", "channels", "train images", "image", "SWD ×1e3",
          "layout", COST)
BUDGET = ["series", "method", "variant", "size", "iters/scale", "channels", "train images",
          "embed dim"]


def load_frontier(path: str | Path | None = None) -> pd.DataFrame:
    """The benchmark's table with a ``variant`` (``"default"`` unless an ablation) and a
    ``series`` label per row: the method, and for MIL the number of training images."""
    path = Path(path) if path is not None else FRONTIER_CSV
    if not path.is_file():
        raise DataError(f"frontier table {path} not found; run benchmarks/bench_frontier.py "
                        "(see its docstring) or pass the path of a table it wrote")
    table = pd.read_csv(path)
    if missing := [c for c in NEEDED if c not in table.columns]:
        raise DataError(f"{path} lacks the column(s) {missing}; it is not a table written by "
                        "benchmarks/bench_frontier.py")
    return label_series(table)


def label_series(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``variant`` (filled with ``"default"``) and ``series`` to a copy of ``table``."""
    table = table.copy()
    table["variant"] = (table["variant"].fillna("default") if "variant" in table.columns
                        else "default")
    if "embed dim" not in table.columns:
        table["embed dim"] = float("nan")          # MIL's embedding width; none for baselines
    names = {"singan": "SinGAN", "consingan": "ConSinGAN", "hpvaegan": "HP-VAE-GAN",
             "mil": "MIL"}
    series = []
    for _, r in table.iterrows():
        label = names.get(r["method"], str(r["method"]))
        if r["method"] == "mil":
            label += f", {int(r['train images'])} images"
            if pd.notna(r["embed dim"]):
                label += f", {int(r['embed dim'])}-d"
        if r["variant"] != "default":
            label += f" [{r['variant']}]"
        series.append(label)
    table["series"] = series
    return table


def frontier_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per budget: the mean over its images of every numeric column, and ``images``,
    the number of images measured. Rows of one budget run twice are averaged together."""
    table = label_series(table)
    by = table.groupby(BUDGET, sort=False, dropna=False)
    points = by.mean(numeric_only=True)
    points["images"] = by["image"].nunique()
    return points.reset_index()


def target_table(points: pd.DataFrame, size: int) -> pd.DataFrame:
    """Targets 1 and 2 at ``size`` px, one row per compared pair (default variants only).

    Target 1 rows compare each SinGAN budget with the published SinGAN samples of the same
    images; target 2 rows compare each MIL budget with each SinGAN budget. Columns: the two
    quality ratios (ours / reference; ≤ ``TOLERANCE`` passes), ``speedup`` (the reference's
    minutes / ours, target 2 only) and ``met``.
    """
    at = points[(points["size"] == size) & (points["variant"] == "default")]
    singan = at[at["method"] == "singan"]
    rows = []
    for _, s in singan.iterrows():
        if "pub SinGAN SWD" not in s or pd.isna(s["pub SinGAN SWD"]):
            continue
        swd, lay = s["SWD ×1e3"] / s["pub SinGAN SWD"], s["layout"] / s["pub SinGAN layout"]
        rows.append({"target": 1, "ours": f"{s['series']}, {int(s['iters/scale'])} it",
                     "reference": "published SinGAN", "SWD ratio": swd, "layout ratio": lay,
                     "speedup": float("nan"),
                     "met": bool(swd <= TOLERANCE and lay <= TOLERANCE)})
    for _, m in at[at["method"] == "mil"].iterrows():
        for _, s in singan.iterrows():
            swd, lay = m["SWD ×1e3"] / s["SWD ×1e3"], m["layout"] / s["layout"]
            speed = s[COST] / m[COST]
            rows.append({"target": 2, "ours": f"{m['series']}, {int(m['iters/scale'])} steps",
                         "reference": f"our SinGAN, {int(s['iters/scale'])} it",
                         "SWD ratio": swd, "layout ratio": lay, "speedup": speed,
                         "met": bool(swd <= TOLERANCE and lay <= TOLERANCE and speed >= SPEEDUP)})
    return pd.DataFrame(rows, columns=["target", "ours", "reference", "SWD ratio",
                                       "layout ratio", "speedup", "met"])


def ablation_table(points: pd.DataFrame) -> pd.DataFrame:
    """Each ablation variant beside the default run of the same budget (same method, size,
    steps per scale and channels; the same training set when there is one, else the first):
    SWD, layout, diversity and cost of both. Variants with no such default are left out; this
    notebook's own runs (variants starting with ``"this run"``) are not ablations."""
    keys = ["method", "size", "iters/scale", "channels"]
    base = points[points["variant"] == "default"].sort_values("embed dim")
    rows = []
    for _, v in points[points["variant"] != "default"].iterrows():
        if str(v["variant"]).startswith("this run"):
            continue
        same = base[(base[keys] == v[keys]).all(axis=1)]
        if same.empty:
            continue
        exact = same[same["train images"] == v["train images"]]
        d = (exact if len(exact) else same).iloc[0]
        rows.append({"budget": f"{d['method']}, {int(v['iters/scale'])} it, {int(v['size'])} px",
                     "variant": v["variant"], "images default": int(d["train images"]),
                     "images variant": int(v["train images"]), "SWD default": d["SWD ×1e3"],
                     "SWD variant": v["SWD ×1e3"], "layout default": d["layout"],
                     "layout variant": v["layout"], "diversity default": d.get("diversity"),
                     "diversity variant": v.get("diversity"), "cost ratio": v[COST] / d[COST]})
    return pd.DataFrame(rows)


def run_rows(per_image: pd.DataFrame, budgets: dict[str, dict], size: int, peak: float,
             variant: str = "this run") -> pd.DataFrame:
    """Rows in the benchmark's format for a notebook's own run, so it can be drawn on the
    frontier beside the committed table. ``per_image``: one row per (image, method) with
    ``SWD ×1e3``, ``layout`` and ``min/image``; ``budgets``: per method label of ``per_image``
    the benchmark's ``method`` key and budget columns (``iters/scale``, ``channels``,
    ``train images``); ``peak``: the 3×3 convolution GFLOP/s measured in the run."""
    rows = []
    for _, r in per_image[per_image["method"].isin(list(budgets))].iterrows():
        rows.append({**budgets[r["method"]], "variant": variant, "size": size, "image": r["image"],
                     "SWD ×1e3": r["SWD ×1e3"], "layout": r["layout"],
                     "diversity": r.get("diversity"), "min/image": r["min/image"],
                     "conv peak GFLOP/s": peak, COST: normalised_minutes(r["min/image"], peak)})
    return pd.DataFrame(rows)


def normalised_minutes(minutes: float, peak: float) -> float:
    """``COST``: minutes on a machine whose 3×3 convolutions run at ``REFERENCE_GFLOPS``, given
    the run's own measured conv peak (GFLOP/s)."""
    return minutes * peak / REFERENCE_GFLOPS


def save_samples(kept: dict[str, tuple[torch.Tensor, torch.Tensor]], budget: dict,
                 path: str | Path) -> Path:
    """Keep a piece's real images and a few samples: ``kept`` maps image name → (real
    (3, H, W), samples (k, 3, H, W)) in [-1, 1]; stored as uint8 in a plain dict of tensors that
    :func:`load_samples` reads back."""
    def to_u8(t: torch.Tensor) -> torch.Tensor:
        return ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"budget": dict(budget), "images": list(kept),
                "reals": torch.stack([to_u8(r) for r, _ in kept.values()]),
                "samples": torch.stack([to_u8(f) for _, f in kept.values()])}, path)
    return path


def load_samples(path: str | Path) -> dict:
    """A piece's kept samples (``bench_frontier.py --save-samples``): ``budget``, ``images``,
    ``reals`` (n, 3, H, W) and ``samples`` (n, k, 3, H, W), both back in [-1, 1]. Loads
    tensors only (``weights_only``), never code."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"samples file {path} not found; run benchmarks/bench_frontier.py with "
                        "--save-samples K")
    kept = torch.load(path, weights_only=True)
    for k in ("reals", "samples"):
        kept[k] = kept[k].float() / 127.5 - 1.0
    return kept
