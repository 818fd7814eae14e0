"""Robust image loading: a corpus of awkward and broken files generated in tmp_path."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mil_core.data import images
from mil_core.data.images import (list_images, load_folder, load_image, load_image_uint8,
                                  places50_dir)
from mil_core.errors import DataError, OfflineError


def _rgb_noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _check(t: torch.Tensor, h: int, w: int) -> None:
    assert t.dtype == torch.float32
    assert tuple(t.shape) == (3, h, w)
    assert float(t.min()) >= -1.0 and float(t.max()) <= 1.0


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- good files, odd modes

def test_rgb_jpeg_and_png(tmp_path):
    arr = _rgb_noise(30, 40)
    Image.fromarray(arr).save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    _check(t, 30, 40)
    back = np.rint((t.permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)
    assert np.array_equal(back, arr)                       # exact round trip for 8-bit PNG
    assert np.array_equal(load_image_uint8(tmp_path / "a.png"), arr)
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    _check(load_image(tmp_path / "a.jpg"), 30, 40)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    g = np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    Image.fromarray(g > 100).save(tmp_path / "b.png")     # 1-bit
    for name in ("g.png", "b.png"):
        t = load_image(tmp_path / name)
        _check(t, 30, 40)
        assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])
    t = load_image(tmp_path / "g.png")
    assert t[0, 0, 0] == -1.0 and t[0, 0, -1] > 0.8        # the ramp survives


def test_rgba_composited_over_white(tmp_path):
    a = np.zeros((20, 30, 4), dtype=np.uint8)
    a[..., 0] = 255                                          # red ...
    a[:, :15, 3] = 255                                       # ... opaque on the left half only
    Image.fromarray(a, mode="RGBA").save(tmp_path / "rgba.png")
    t = load_image(tmp_path / "rgba.png")
    _check(t, 20, 30)
    assert torch.allclose(t[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))   # opaque red
    assert torch.allclose(t[:, 0, -1], torch.ones(3))                    # transparent → white
    la = np.stack([np.full((20, 30), 0, np.uint8), np.full((20, 30), 0, np.uint8)], -1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")             # fully transparent
    assert torch.allclose(load_image(tmp_path / "la.png"), torch.ones(3, 20, 30))


def test_palette_with_and_without_transparency(tmp_path):
    arr = _rgb_noise(24, 32, seed=1)
    p = Image.fromarray(arr).quantize(colors=16)
    p.save(tmp_path / "p.png")
    t = load_image(tmp_path / "p.png")
    _check(t, 24, 32)
    assert not torch.equal(t[0], t[1])                       # stays colour
    p.info["transparency"] = int(np.asarray(p)[0, 0])
    p.save(tmp_path / "pt.png", transparency=int(np.asarray(p)[0, 0]))
    with Image.open(tmp_path / "pt.png") as check:
        assert check.mode == "P" and "transparency" in check.info
    t = load_image(tmp_path / "pt.png")
    _check(t, 24, 32)
    assert torch.allclose(t[:, 0, 0], torch.ones(3))         # the transparent index → white
    Image.fromarray(arr).quantize(colors=8).save(tmp_path / "p.gif")
    _check(load_image(tmp_path / "p.gif"), 24, 32)


def test_cmyk_jpeg(tmp_path):
    Image.fromarray(_rgb_noise(20, 24)).convert("CMYK").save(tmp_path / "c.jpg")
    with Image.open(tmp_path / "c.jpg") as check:
        assert check.mode == "CMYK"
    _check(load_image(tmp_path / "c.jpg"), 20, 24)


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (8, 1))  # (8, 64)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as check:
        assert check.mode.startswith("I")
    t = load_image(tmp_path / "g16.png")
    _check(t, 8, 64)
    row = t[0, 0]
    expected = torch.linspace(-1, 1, 64)
    assert torch.allclose(row, expected, atol=1e-4)          # a ramp in [-1, 1], not clipped
    assert (row > 0.99).sum() == 1                           # only the last pixel is white
    assert float(row[32]) == pytest.approx(float(expected[32]), abs=1e-4)


def test_exif_rotated_jpeg(tmp_path):
    img = Image.fromarray(_rgb_noise(20, 40))                # stored 20 high, 40 wide
    exif = Image.Exif()
    exif[0x0112] = 6                                         # orientation: rotate 90° CW
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    before = _sha(tmp_path / "rot.jpg")
    _check(load_image(tmp_path / "rot.jpg"), 40, 20)         # H and W swapped
    assert _sha(tmp_path / "rot.jpg") == before


# ----------------------------------------------------------------------------- bad files

def _bad_corpus(tmp: Path) -> dict[str, Path]:
    good = tmp / "good.jpg"
    Image.fromarray(_rgb_noise(64, 64)).save(good, quality=90)
    data = good.read_bytes()
    files = {
        "random": (tmp / "random.jpg", np.random.default_rng(0).bytes(2000)),
        "truncated": (tmp / "truncated.jpg", data[: len(data) // 2]),
        "empty": (tmp / "empty.png", b""),
        "text": (tmp / "notes.png", b"this is a text file, not a png\n" * 10),
    }
    for path, content in files.values():
        path.write_bytes(content)
    return {k: v[0] for k, v in files.items()}


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "text"])
def test_bad_files_raise_one_clear_error(tmp_path, kind):
    path = _bad_corpus(tmp_path)[kind]
    before = _sha(path)
    with pytest.raises(DataError) as info:
        load_image(path)
    assert path.name in str(info.value)
    if kind == "empty":
        assert "empty" in str(info.value)
    assert _sha(path) == before                              # source never modified


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.jpg"):
        load_image(tmp_path / "nope.jpg")


def test_too_small_names_size_and_minimum(tmp_path):
    Image.fromarray(_rgb_noise(20, 30)).save(tmp_path / "small.png")
    _check(load_image(tmp_path / "small.png", min_size=20), 20, 30)
    with pytest.raises(DataError) as info:
        load_image(tmp_path / "small.png", min_size=25)
    msg = str(info.value)
    assert "small.png" in msg and "25" in msg and "20×30" in msg


def test_sources_unchanged_after_loading_folder(tmp_path):
    for i, mode in enumerate(["RGB", "L", "RGBA", "CMYK"]):
        Image.fromarray(_rgb_noise(30, 30, i)).convert(mode).save(
            tmp_path / f"{i}.{'jpg' if mode in ('RGB', 'CMYK') else 'png'}")
    hashes = {p: _sha(p) for p in tmp_path.iterdir()}
    out = load_folder(tmp_path)
    assert [n for n, _ in out] == ["0", "1", "2", "3"]
    assert {p: _sha(p) for p in tmp_path.iterdir()} == hashes


# ----------------------------------------------------------------------------- folders

def test_natural_order_and_filters(tmp_path):
    for name in ["10.jpg", "2.JPG", "1.png", "b.webp", "a.Tiff", ".hidden.jpg", "x.txt"]:
        path = tmp_path / name
        if name.endswith(".txt"):
            path.write_text("not an image")
        else:
            Image.fromarray(_rgb_noise(8, 8)).save(
                path, format={"jpg": "JPEG", "png": "PNG", "webp": "WEBP",
                              "tiff": "TIFF"}[name.rsplit(".", 1)[1].lower()])
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["1.png", "2.JPG", "10.jpg", "a.Tiff", "b.webp"]
    assert [n for n, _ in load_folder(tmp_path, limit=2)] == ["1", "2"]


def test_duplicate_stems_keep_file_names(tmp_path):
    Image.fromarray(_rgb_noise(8, 8)).save(tmp_path / "a.png")
    Image.fromarray(_rgb_noise(8, 8)).save(tmp_path / "a.jpg")
    assert sorted(n for n, _ in load_folder(tmp_path)) == ["a.jpg", "a.png"]


def test_empty_folder(tmp_path):
    (tmp_path / ".DS_Store").write_bytes(b"x")             # hidden files do not count
    with pytest.raises(DataError, match="is empty"):
        list_images(tmp_path)


def test_folder_without_images_lists_what_it_found(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    (tmp_path / "labels.csv").write_text("a,b")
    with pytest.raises(DataError) as info:
        load_folder(tmp_path)
    msg = str(info.value)
    assert "no image files" in msg and "readme.txt" in msg and "labels.csv" in msg


def test_missing_folder_and_file_as_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(DataError, match="not a folder"):
        list_images(tmp_path / "f.png")


def test_bad_file_in_folder_is_named(tmp_path):
    Image.fromarray(_rgb_noise(8, 8)).save(tmp_path / "1.png")
    (tmp_path / "2.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="2.png"):
        load_folder(tmp_path)


# ----------------------------------------------------------------------------- Places-50

def test_download_is_opt_in_and_offline_error_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("MIL_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        images.download_places50(tmp_path / "p50")
    assert "places_50/1.jpg" in str(info.value)
    assert not list(tmp_path.rglob("*.jpg"))                 # nothing half-written


def test_places50_dir_prefers_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MIL_PLACES50", str(tmp_path))
    assert places50_dir() == tmp_path.resolve()


def _shared_places50() -> Path | None:
    root = images.repo_root()
    p = root.parent / "shared" / "data" / "places50" if root is not None else None
    return p if p is not None and p.is_dir() else None


@pytest.mark.skipif(_shared_places50() is None, reason="../shared/data/places50 is absent")
def test_places50_beside_the_project(monkeypatch):
    monkeypatch.delenv("MIL_PLACES50", raising=False)
    folder = places50_dir()
    assert folder is not None and folder == _shared_places50().resolve()
    paths = list_images(folder)
    assert len(paths) == 49
    assert [p.stem for p in paths[:3]] == ["1", "2", "3"]
    assert "18" not in {p.stem for p in paths}
    t = load_image(paths[0], min_size=25)
    assert t.shape[0] == 3 and float(t.min()) >= -1 and float(t.max()) <= 1
