"""Robust image loading: a corpus of awkward and broken files generated in tmp_path."""
from __future__ import annotations

import hashlib
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from mil_core.data import images
from mil_core.data.images import (list_images, load_folder, load_image, load_image_uint8,
                                  places50_dir)
from mil_core.errors import ConfigError, DataError, OfflineError


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


# ----------------------------------------------------------------------------- 16-bit colour, float

def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered(img: np.ndarray) -> bytes:
    """PNG scanlines of uint16 ``(h, w, c)``, big-endian, filter type ``row % 5`` (all five)."""
    bpp = 2 * img.shape[2]
    out, prev = bytearray(), bytes(img.shape[1] * bpp)
    for y in range(img.shape[0]):
        row = img[y].astype(">u2").tobytes()
        kind = y % 5
        out.append(kind)
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            out.append((x - (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]) % 256)
        prev = row
    return bytes(out)


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))   # (x0, y0, dx, dy) of the seven passes


def _write_png16(path: Path, img: np.ndarray, interlace: bool = False,
                 trns: tuple[int, int, int] | None = None) -> None:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour): uint16 ``(h, w, c)``,
    c = 2 (grey + alpha), 3 (RGB) or 4 (RGBA); Adam7-interlaced when asked."""
    h, w, c = img.shape
    colour_type = {2: 4, 3: 2, 4: 6}[c]
    if interlace:
        passes = [img[y0::dy, x0::dx] for x0, y0, dx, dy in _ADAM7]
        data = b"".join(_filtered(p) for p in passes if p.size)
    else:
        data = _filtered(img)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type,
                                                             0, 0, int(interlace)))
    if trns is not None:
        png += _chunk(b"tRNS", struct.pack(">HHH", *trns))
    path.write_bytes(png + _chunk(b"IDAT", zlib.compress(data)) + _chunk(b"IEND", b""))


def _u16(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, (h, w, c), dtype=np.uint16)


@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_rgb_png_keeps_all_16_bits(tmp_path, interlace):
    img = _u16(13, 11, 3)
    img[0, 0] = (65535, 32768, 0)
    path = tmp_path / "rgb16.png"
    _write_png16(path, img, interlace=interlace)
    with Image.open(path) as check:                          # what Pillow alone gives
        assert check.mode == "RGB" and np.asarray(check)[0, 0].tolist() == [255, 128, 0]
    before = _sha(path)
    t = load_image(path)
    _check(t, 13, 11)
    assert ((t[:, 0, 0] + 1) / 2).tolist() == pytest.approx([1.0, 0.5, 0.0], abs=1e-4)
    assert float(t[1, 0, 0]) == pytest.approx(0.0, abs=1e-4)  # not 128/255 · 2 − 1 = 0.0039
    expected = torch.from_numpy(img.astype(np.float32) / 65535.0).permute(2, 0, 1) * 2 - 1
    assert torch.allclose(t, expected, atol=1e-6)            # every pixel, every bit
    assert np.array_equal(load_image_uint8(path), np.rint(img / 65535.0 * 255).astype(np.uint8))
    assert _sha(path) == before


def test_16bit_colour_in_an_unknown_layout_is_refused_not_cut(tmp_path, monkeypatch):
    """If Pillow ever describes 16-bit colour in a layout the low-byte decode does not know, the
    file is refused (naming it) instead of silently read at 8 bits."""
    img = _u16(6, 7, 3)
    path = tmp_path / "rgb16.png"
    _write_png16(path, img)
    before = _sha(path)
    monkeypatch.setattr("mil_core.data.images._LOW_BYTE_RAWMODE", {})
    with pytest.raises(DataError, match=r"rgb16\.png stores 16-bit colour.*cut it to 8 bits"):
        load_image(path)
    assert _sha(path) == before


def test_16bit_rgba_and_grey_alpha_png_composited_over_white(tmp_path):
    rgba = _u16(9, 10, 4, seed=1)
    rgba[0, 0] = (65535, 32768, 0, 65535)                    # opaque
    rgba[0, 1] = (0, 0, 0, 0)                                # fully transparent → white
    _write_png16(tmp_path / "rgba16.png", rgba)
    t = load_image(tmp_path / "rgba16.png")
    _check(t, 9, 10)
    v = rgba.astype(np.float64) / 65535.0
    want = v[..., :3] * v[..., 3:] + (1 - v[..., 3:])
    assert torch.allclose(t, torch.from_numpy(want * 2 - 1).float().permute(2, 0, 1), atol=1e-6)
    assert t[:, 0, 0].tolist() == pytest.approx([1.0, 0.0, -1.0], abs=1e-4)
    assert t[:, 0, 1].tolist() == [1.0, 1.0, 1.0]
    la = _u16(7, 8, 2, seed=2)
    la[0, 0] = (32768, 65535)
    _write_png16(tmp_path / "la16.png", la, interlace=True)
    t = load_image(tmp_path / "la16.png")
    v = la.astype(np.float64) / 65535.0
    grey = v[..., 0] * v[..., 1] + (1 - v[..., 1])
    assert torch.allclose(t, torch.from_numpy(grey * 2 - 1).float().expand(3, -1, -1), atol=1e-6)
    assert float(t[0, 0, 0]) == pytest.approx(0.0, abs=1e-4)


def test_16bit_rgb_png_colour_key_transparency(tmp_path):
    img = np.full((4, 5, 3), 1000, dtype=np.uint16)
    img[0, 0] = (513, 2, 3)            # same high bytes as the key, other low bytes: opaque
    img[1, 1] = (512, 2, 3)            # exactly the key: transparent
    _write_png16(tmp_path / "key.png", img, trns=(512, 2, 3))
    t = load_image(tmp_path / "key.png")
    assert t[:, 1, 1].tolist() == [1.0, 1.0, 1.0]
    assert t[:, 0, 0].tolist() == pytest.approx([513 / 65535 * 2 - 1, 2 / 65535 * 2 - 1,
                                                 3 / 65535 * 2 - 1], abs=1e-6)


@pytest.mark.parametrize("variant", ["little-endian", "big-endian", "deflate", "rotated"])
def test_16bit_rgb_tiff_keeps_all_16_bits(tmp_path, variant):
    tifffile = pytest.importorskip("tifffile")
    img = _u16(12, 9, 3, seed=3)
    img[0, 0] = (65535, 32768, 0)
    path = tmp_path / "rgb16.tif"
    kw = dict(photometric="rgb", rowsperstrip=5)
    if variant == "big-endian":
        kw["byteorder"] = ">"
    if variant == "deflate":
        kw["compression"] = "zlib"
    if variant == "rotated":
        kw["extratags"] = [(274, "H", 1, 6, True)]         # orientation: rotate 90° clockwise
    tifffile.imwrite(path, img, **kw)
    t = load_image(path)
    want = img if variant != "rotated" else np.rot90(img, k=-1)
    _check(t, *want.shape[:2])
    expected = torch.from_numpy(want.astype(np.float32) / 65535.0).permute(2, 0, 1) * 2 - 1
    assert torch.allclose(t, expected, atol=1e-6)


def test_float_tiff_in_unit_range_is_read_exactly(tmp_path):
    v = np.linspace(0.0, 1.0, 20, dtype=np.float32).reshape(4, 5)
    Image.fromarray(v, mode="F").save(tmp_path / "f.tif")
    with Image.open(tmp_path / "f.tif") as check:
        assert check.mode == "F"
    t = load_image(tmp_path / "f.tif")
    _check(t, 4, 5)
    want = torch.from_numpy(v) * 2 - 1
    assert all(torch.equal(t[c], want) for c in range(3))


@pytest.mark.parametrize("values, shown", [
    ([0.0, 2.0], "[0, 2]"),
    ([-0.5, 0.5], "[-0.5, 0.5]"),
    ([0.0, 0.5, float("nan")], "[0, 0.5] and NaN"),
    ([0.25, float("inf")], "[0.25, 0.25] and inf"),
])
def test_float_tiff_outside_unit_range_is_refused(tmp_path, values, shown):
    v = np.resize(np.array(values, dtype=np.float32), (4, 5))
    path = tmp_path / "f.tif"
    Image.fromarray(v, mode="F").save(path)
    before = _sha(path)
    with pytest.raises(DataError) as info:
        load_image(path)
    assert str(info.value) == (
        f"Image {path} holds floating-point pixels in {shown}, but float images must lie in "
        "[0, 1] (their scale is not guessed). Rescale the values to [0, 1], or save the image as "
        "8- or 16-bit integers.")
    assert _sha(path) == before


def test_32bit_integer_beyond_16_bits_is_refused(tmp_path):
    path = tmp_path / "i32.tif"
    Image.fromarray(np.array([[0, 70000], [5, 6]], dtype=np.int32)).save(path)
    with Image.open(path) as check:
        assert check.mode == "I"
    with pytest.raises(DataError) as info:
        load_image(path)
    assert str(info.value) == (
        f"Image {path} holds 32-bit integer pixels in [0, 70000], outside 0…65535, so it cannot "
        "be mapped to [0, 1] without guessing a scale; save it as an 8- or 16-bit image.")


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


# ----------------------------------------------------------------------------- size limits

def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header claims w×h 8-bit RGB but holds no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b""))


def test_pixel_limit_refuses_from_the_header_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "s.png"
    Image.fromarray(_rgb_noise(100, 100)).save(path)
    before = _sha(path)
    decoded, load = [], ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or load(self))
    with pytest.raises(DataError) as info:
        load_image(path, max_pixels=1000)
    assert str(info.value) == (
        f"Image {path} is 100×100 (H×W) = 10,000 pixels, above the decoding limit of 1,000 "
        "pixels (max_pixels=1000). Downscale the file (e.g. to a long side of 2000 px), or raise "
        "the limit with max_pixels=... or the MIL_MAX_PIXELS environment variable.")
    assert decoded == []                                     # refused from the header alone
    assert _sha(path) == before
    monkeypatch.setenv("MIL_MAX_PIXELS", "1000")
    with pytest.raises(DataError, match=r"1,000 pixels \(MIL_MAX_PIXELS=1000\)"):
        load_image_uint8(path)
    with pytest.raises(DataError, match="10,000 pixels"):
        load_folder(tmp_path)
    _check(load_image(path, max_pixels=10_000), 100, 100)   # the argument wins; at the limit
    monkeypatch.setenv("MIL_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="MIL_MAX_PIXELS must be a positive integer"):
        load_image(path)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ConfigError, match="max_pixels"):
            load_image(path, max_pixels=bad)


def test_default_pixel_limit_and_pillow_bomb_checks_give_one_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MIL_MAX_PIXELS", raising=False)
    assert images.MAX_PIXELS == 50_000_000
    path = tmp_path / "huge.png"
    _png_header_only(path, 10_000, 10_000)     # 100 MP: above MAX_PIXELS and Pillow's warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # any warning would fail the test
        with pytest.raises(DataError) as info:
            load_image(path)
    assert str(info.value) == (
        f"Image {path} is 10000×10000 (H×W) = 100,000,000 pixels, above the decoding limit of "
        "50,000,000 pixels (the default MAX_PIXELS=50_000_000). Downscale the file (e.g. to a "
        "long side of 2000 px), or raise the limit with max_pixels=... or the MIL_MAX_PIXELS "
        "environment variable.")
    # Pillow's own DecompressionBombError (above twice PIL.Image.MAX_IMAGE_PIXELS)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    small = tmp_path / "small.png"
    Image.fromarray(_rgb_noise(100, 100)).save(small)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError) as info:
            load_image(small, max_pixels=10**6)
    assert not isinstance(info.value, Image.DecompressionBombError)
    assert str(info.value).startswith(f"Image {small} is too large to decode (Image size (10000 "
                                      "pixels) exceeds limit of 2000 pixels")
    assert "raise PIL.Image.MAX_IMAGE_PIXELS and max_pixels" in str(info.value)
    # Pillow's DecompressionBombWarning (between 1× and 2× its limit) is not shown
    Image.fromarray(_rgb_noise(40, 40)).save(small)         # 1600 px
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check(load_image(small, max_pixels=10**6), 40, 40)


def _gradient(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 255 // (h + w - 2)],
                    axis=-1).astype(np.uint8)


def test_max_size_decodes_a_large_jpeg_at_reduced_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_gradient(3000, 4000)).save(path, quality=90)
    before = _sha(path)
    with pytest.raises(DataError) as info:                   # 12 MP in full: over this limit
        load_image(path, max_pixels=1_000_000)
    assert "or pass max_size (e.g. max_size=250) to decode this JPEG at reduced size" in str(
        info.value)
    # ... but the 1/8-scale decode (500×375) fits: the limit counts what is decoded
    t = load_image(path, max_size=250, max_pixels=1_000_000)
    _check(t, 188, 250)
    assert 250 <= max(t.shape[1:]) < 1000
    with pytest.raises(DataError) as info:
        load_image(path, max_size=250, max_pixels=100_000)
    assert str(info.value).startswith(
        f"Image {path} is 3000×4000 (H×W) = 12,000,000 pixels, 375×500 = 187,500 pixels even "
        "when decoded at reduced size for max_size, above the decoding limit of 100,000 pixels")
    assert _sha(path) == before


def test_max_size_reduction_matches_a_downscaled_full_decode(tmp_path):
    full = _gradient(800, 1200)
    Image.fromarray(full).save(tmp_path / "g.jpg", quality=95)
    Image.fromarray(full).save(tmp_path / "g.png")
    ref = load_image(tmp_path / "g.jpg")                     # full resolution
    small = load_image(tmp_path / "g.jpg", max_size=100)     # 1/8 JPEG decode: 100×150
    _check(small, 100, 150)
    ref8 = ref.reshape(3, 100, 8, 150, 8).mean(dim=(2, 4))
    assert float((small - ref8).abs().mean()) < 0.02
    # other formats: full decode, then the mean of factor×factor boxes (factor 1200 // 100 = 12)
    t = load_image(tmp_path / "g.png", max_size=100)
    _check(t, 67, 100)                                       # ceil(800 / 12) = 67: partial boxes
    png = load_image(tmp_path / "g.png")
    assert torch.allclose(t[:, :66], png[:, :792].reshape(3, 66, 12, 100, 12).mean(dim=(2, 4)),
                          atol=1e-5)
    assert torch.allclose(t[:, 66], png[:, 792:].reshape(3, 8, 100, 12).mean(dim=(1, 3)),
                          atol=1e-5)
    # below 2 · max_size nothing changes; max_size is checked
    assert torch.equal(load_image(tmp_path / "g.png", max_size=601), png)
    assert tuple(load_image(tmp_path / "g.png", max_size=600).shape) == (3, 400, 600)
    with pytest.raises(ConfigError, match="max_size"):
        load_image(tmp_path / "g.png", max_size=0)
    with pytest.raises(DataError) as info:                   # min_size is checked on the result
        load_image(tmp_path / "g.png", max_size=100, min_size=80)
    assert "67×100 (H×W) once reduced for max_size=100 (the file is 800×1200 H×W as stored)" in \
        str(info.value)
    names = [n for n, _ in load_folder(tmp_path, max_size=100)]
    assert names == ["g.jpg", "g.png"]
    assert [tuple(t.shape) for _, t in load_folder(tmp_path, max_size=100)] == [(3, 100, 150),
                                                                               (3, 67, 100)]


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


def test_folder_with_only_a_broken_link_names_it_and_its_target(tmp_path):
    (tmp_path / "a.jpg").symlink_to(tmp_path / "gone" / "a.jpg")
    with pytest.raises(DataError) as info:
        list_images(tmp_path)
    assert str(info.value) == (
        f"Image folder {tmp_path}: a.jpg is a broken link (pointing to {tmp_path}/gone/a.jpg, "
        "which does not exist). Fix the link or remove it.")
    with pytest.raises(DataError) as info:
        load_image(tmp_path / "a.jpg")
    assert str(info.value) == (
        f"Image file {tmp_path}/a.jpg is a broken link (pointing to {tmp_path}/gone/a.jpg, which "
        "does not exist); fix the link or remove it.")


def test_broken_link_among_good_images_is_an_error_not_skipped(tmp_path):
    Image.fromarray(_rgb_noise(8, 8)).save(tmp_path / "1.png")
    (tmp_path / "2.png").symlink_to(tmp_path / "1.png")     # a good link is an image
    (tmp_path / "3.jpg").symlink_to("missing/3.jpg")        # relative target, shown as stored
    (tmp_path / "4.JPG").symlink_to("4.JPG")                # a link to itself (a loop)
    (tmp_path / "notes.txt").symlink_to("nowhere.txt")      # not an image: ignored
    before = _sha(tmp_path / "1.png")
    for call in (list_images, load_folder):
        with pytest.raises(DataError) as info:
            call(tmp_path)
        assert str(info.value) == (
            f"Image folder {tmp_path}: 3.jpg is a broken link (pointing to missing/3.jpg, which "
            "does not exist); 4.JPG is a broken link (pointing to 4.JPG, which does not exist). "
            "Fix the links or remove them.")
    (tmp_path / "3.jpg").unlink()
    (tmp_path / "4.JPG").unlink()
    assert [p.name for p in list_images(tmp_path)] == ["1.png", "2.png"]
    out = dict(load_folder(tmp_path))
    assert torch.equal(out["1"], out["2"])
    assert _sha(tmp_path / "1.png") == before


def test_folder_without_images_marks_broken_links(tmp_path):
    (tmp_path / "readme.txt").symlink_to("gone.txt")
    with pytest.raises(DataError, match=r"found only: readme.txt \(broken link\)\."):
        list_images(tmp_path)


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
