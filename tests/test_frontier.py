"""mil_core.frontier: the frontier table's points and the targets' outcomes."""
import math

import pandas as pd
import pytest

from mil_core import frontier as F
from mil_core.errors import DataError


def _rows():
    rows = []
    for method, iters, cost, swd, lay, n_train in (("singan", 100, 1.0, 200.0, 0.10, 1),
                                                   ("singan", 300, 3.0, 100.0, 0.04, 1),
                                                   ("mil", 600, 0.5, 120.0, 0.045, 10),
                                                   ("mil", 600, 0.2, 110.0, 0.20, 49)):
        for k, img in enumerate("123"):
            rows.append({"method": method, "size": 128, "iters/scale": iters, "channels": 16,
                         "train images": n_train, "image": img, "SWD ×1e3": swd + k - 1,
                         "layout": lay, "norm min/image": cost, "pub SinGAN SWD": 90.0,
                         "pub SinGAN layout": 0.05})
    return pd.DataFrame(rows)


def test_points_average_images_and_label_mil_by_its_training_set():
    pts = F.frontier_points(_rows())
    assert len(pts) == 4 and set(pts["images"]) == {3}
    assert list(pts["series"]) == ["SinGAN", "SinGAN", "MIL, 10 images", "MIL, 49 images"]
    assert pts.loc[1, "SWD ×1e3"] == pytest.approx(100.0)        # mean of 99, 100, 101
    assert set(pts["variant"]) == {"default"}


def test_targets_compare_singan_with_published_and_mil_with_singan():
    t = F.target_table(F.frontier_points(_rows()), size=128)
    one = t[t["target"] == 1].reset_index(drop=True)
    assert len(one) == 2
    assert one.loc[1, "SWD ratio"] == pytest.approx(100 / 90)
    assert one.loc[1, "layout ratio"] == pytest.approx(0.8)
    assert list(one["met"]) == [False, True]
    two = t[t["target"] == 2].set_index(["ours", "reference"])
    # MIL on 10 images against SinGAN-300: 1.2× SWD, 1.125× layout, 6× fewer minutes: met
    hit = two.loc[("MIL, 10 images, 600 steps", "our SinGAN, 300 it")]
    assert hit["speedup"] == pytest.approx(6.0) and bool(hit["met"])
    # on 49 images it is 15× cheaper but its layout is 5× worse: not met
    miss = two.loc[("MIL, 49 images, 600 steps", "our SinGAN, 300 it")]
    assert miss["layout ratio"] == pytest.approx(5.0) and not bool(miss["met"])
    assert math.isnan(one.loc[0, "speedup"])


def test_ablation_variants_stay_out_of_the_targets():
    rows = _rows()
    rows["variant"] = "default"
    extra = rows[rows["method"] == "mil"].assign(variant="noise_amp_factor=0.1", layout=0.01)
    pts = F.frontier_points(pd.concat([rows, extra]))
    assert "MIL, 10 images [noise_amp_factor=0.1]" in set(pts["series"])
    t = F.target_table(pts, size=128)
    assert len(t[t["target"] == 2]) == 4                          # 2 MIL × 2 SinGAN, no variants


def test_load_frontier_names_the_missing_file_and_columns(tmp_path):
    with pytest.raises(DataError, match="bench_frontier"):
        F.load_frontier(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"method": ["mil"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="layout"):
        F.load_frontier(bad)


def test_the_committed_table_loads():
    if not F.FRONTIER_CSV.is_file():
        pytest.skip("no committed frontier table")
    table = F.load_frontier()
    assert {"singan", "consingan", "mil"} <= set(table["method"])
    assert (table["norm min/image"] > 0).all()


def test_ablation_rows_sit_beside_the_default_of_the_same_budget():
    rows = _rows()
    extra = rows[(rows["method"] == "mil") & (rows["train images"] == 10)].assign(
        variant="noise_amp_factor=0.1", layout=0.03, **{"norm min/image": 0.55})
    orphan = extra.assign(**{"iters/scale": 999})                 # no default run at 999 steps
    fewer = extra.assign(variant="batch_size=3", **{"train images": 3})
    table = F.ablation_table(F.frontier_points(pd.concat([rows, extra, orphan, fewer])))
    assert len(table) == 2
    assert list(table["images default"]) == [10, 10] and list(table["images variant"]) == [10, 3]
    row = table.iloc[0]
    assert row["variant"] == "noise_amp_factor=0.1"
    assert (row["layout default"], row["layout variant"]) == (pytest.approx(0.045), 0.03)
    assert row["cost ratio"] == pytest.approx(1.1)


def test_a_notebook_run_becomes_frontier_rows():
    per_image = pd.DataFrame([{"method": m, "image": i, "SWD ×1e3": 1.0, "layout": 0.1,
                               "diversity": 0.3, "min/image": 2.0}
                              for m in ("SinGAN", "published SinGAN") for i in "12"])
    rows = F.run_rows(per_image, {"SinGAN": {"method": "singan", "iters/scale": 400,
                                             "channels": 16, "train images": 1}},
                      size=64, peak=50.0)
    assert len(rows) == 2 and set(rows["variant"]) == {"this run"}
    assert (rows["norm min/image"] == 1.0).all()                 # 2 min at 50 / 100 GFLOP/s
    assert list(F.frontier_points(rows)["series"]) == ["SinGAN [this run]"]


def test_kept_samples_load_back_in_range(tmp_path):
    import torch

    kept = {"budget": {"method": "mil"}, "images": ["1"],
            "reals": torch.tensor([0, 255], dtype=torch.uint8).reshape(1, 1, 1, 2).expand(1, 3, 1, 2),
            "samples": torch.zeros(1, 2, 3, 1, 2, dtype=torch.uint8)}
    torch.save(kept, tmp_path / "k.pt")
    back = F.load_samples(tmp_path / "k.pt")
    assert back["reals"].min() == -1.0 and back["reals"].max() == 1.0
    assert back["samples"].shape == (1, 2, 3, 1, 2)
    with pytest.raises(DataError, match="save-samples"):
        F.load_samples(tmp_path / "none.pt")


def test_saved_samples_round_trip_to_uint8_precision(tmp_path):
    import torch

    real = torch.linspace(-1, 1, 3 * 4 * 5).reshape(3, 4, 5)
    fakes = torch.stack([real, -real])
    path = F.save_samples({"7": (real, fakes)}, {"method": "mil"}, tmp_path / "s" / "k.pt")
    back = F.load_samples(path)
    assert back["images"] == ["7"] and back["budget"] == {"method": "mil"}
    assert back["samples"].shape == (1, 2, 3, 4, 5)
    assert (back["reals"][0] - real).abs().max() <= 1 / 127.5
    assert F.normalised_minutes(2.0, 50.0) == 1.0
