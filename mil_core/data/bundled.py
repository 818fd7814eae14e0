"""The ``bundled`` collection: real colour photos that ship inside installed packages.

No machine here can download data sets, but scikit-image, scikit-learn and matplotlib install a
few real photographs with their wheels (REFERENCE §8). They are the offline stand-in for
Places-50 in tests and quick notebook runs. Every photo below was checked to load with the
network blocked (scikit-image 0.26, scikit-learn 1.9, matplotlib 3.11); scikit-image loaders that
download at run time (brain, cells3d, eagle, lily, skin, ...) are deliberately not listed.

Credits and licences are those stated in each package's docstring or README (see data/README.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .images import load_folder, places50_dir

__all__ = ["BundledPhoto", "BUNDLED", "bundled_names", "bundled_info", "load_bundled",
           "load_bundled_collection", "load_collection"]


# ----------------------------------------------------------------------------- loaders
# Each returns uint8 (H, W, 3). Imports are lazy so that ``import mil_core.data`` stays fast.

def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data
        out = getattr(data, name)()
        return out[0] if isinstance(out, tuple) else out   # stereo_motorcycle: left view
    return load


def _sklearn(file: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image
        return load_sample_image(file)
    return load


def _matplotlib(file: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib import cbook
        from .images import load_image_uint8
        return load_image_uint8(cbook.get_sample_data(file, asfileobj=False))
    return load


@dataclass(frozen=True)
class BundledPhoto:
    """One photo of the bundled collection."""
    name: str                            # short name used by load_bundled()
    loader: Callable[[], np.ndarray]     # returns uint8 (H, W, 3); offline
    package: str                         # PyPI package that ships the file
    call: str                            # how the package exposes it
    size: tuple[int, int]                # (H, W) as shipped
    credit: str                          # original author / source
    licence: str                         # licence as stated by the package
    url: str = ""                        # original source page, when the package names one


_SK = "scikit-image"
BUNDLED: dict[str, BundledPhoto] = {p.name: p for p in [
    BundledPhoto("astronaut", _skimage("astronaut"), _SK, "skimage.data.astronaut()", (512, 512),
                 "NASA (Eileen Collins), NASA Great Images database",
                 "public domain (no known copyright restrictions)", "https://flic.kr/p/r9qvLn"),
    BundledPhoto("chelsea", _skimage("chelsea"), _SK, "skimage.data.chelsea()", (300, 451),
                 "Stefan van der Walt", "CC0"),
    BundledPhoto("coffee", _skimage("coffee"), _SK, "skimage.data.coffee()", (400, 600),
                 "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
    BundledPhoto("rocket", _skimage("rocket"), _SK, "skimage.data.rocket()", (427, 640),
                 "SpaceX (DSCOVR launch on Falcon 9)", "public domain (released by SpaceX)",
                 "https://www.flickr.com/photos/spacexphotos/16511594820/"),
    BundledPhoto("hubble_deep_field", _skimage("hubble_deep_field"), _SK,
                 "skimage.data.hubble_deep_field()", (872, 1000),
                 "NASA, Hubble eXtreme Deep Field (HubbleSite)", "public domain (NASA)",
                 "http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/"),
    BundledPhoto("retina", _skimage("retina"), _SK, "skimage.data.retina()", (1411, 1411),
                 "Mikael Häggström (Wikimedia Commons)", "CC0 1.0",
                 "https://commons.wikimedia.org/wiki/"
                 "File:Fundus_photograph_of_normal_left_eye.jpg"),
    BundledPhoto("immunohistochemistry", _skimage("immunohistochemistry"), _SK,
                 "skimage.data.immunohistochemistry()", (512, 512),
                 "Center for Microscopy And Molecular Imaging (CMMI)",
                 "no known copyright restrictions"),
    BundledPhoto("stereo_motorcycle", _skimage("stereo_motorcycle"), _SK,
                 "skimage.data.stereo_motorcycle()[0]", (500, 741),
                 "Middlebury 2014 stereo benchmark (Scharstein et al., GCPR 2014), "
                 "downsampled ×4 by scikit-image",
                 "not stated by scikit-image (Middlebury research data; cite Scharstein et al.)",
                 "http://vision.middlebury.edu/stereo/data/scenes2014/"),
    BundledPhoto("china", _sklearn("china.jpg"), "scikit-learn",
                 "sklearn.datasets.load_sample_image('china.jpg')", (427, 640),
                 "danielbuechele (Flickr), retrieved by Robert Layton", "CC BY 2.0",
                 "https://www.flickr.com/photos/danielbuechele/6061409035/"),
    BundledPhoto("flower", _sklearn("flower.jpg"), "scikit-learn",
                 "sklearn.datasets.load_sample_image('flower.jpg')", (427, 640),
                 "vultilion (Flickr), retrieved by Robert Layton", "CC BY 2.0",
                 "https://www.flickr.com/photos/vultilion/6056698931/"),
    BundledPhoto("grace_hopper", _matplotlib("grace_hopper.jpg"), "matplotlib",
                 "matplotlib.cbook.get_sample_data('grace_hopper.jpg')", (600, 512),
                 "U.S. Navy official photograph of Grace M. Hopper",
                 "public domain (U.S. Government work; matplotlib states no licence)"),
]}


def bundled_names() -> list[str]:
    """Names of the bundled photos, in registry order."""
    return list(BUNDLED)


def bundled_info(name: str) -> BundledPhoto:
    """Registry entry of ``name`` (credit, licence, source)."""
    if name not in BUNDLED:
        raise DataError(f"Unknown bundled photo {name!r}; valid names: "
                        f"{', '.join(BUNDLED)}.")
    return BUNDLED[name]


@lru_cache(maxsize=None)
def _load_uint8(name: str) -> np.ndarray:
    arr = np.asarray(BUNDLED[name].loader())
    if arr.ndim != 3 or arr.shape[2] < 3 or arr.dtype != np.uint8:
        raise DataError(f"Bundled photo {name!r} loaded with unexpected shape/dtype "
                        f"{arr.shape} {arr.dtype}; the installed package may have changed.")
    arr = arr[..., :3].copy()
    arr.setflags(write=False)                                      # cached: keep it immutable
    return arr


def load_bundled(name: str, min_size: int = 0) -> torch.Tensor:
    """Load bundled photo ``name`` as float32 ``(3, H, W)`` in [-1, 1].

    Raises:
        DataError: unknown name (the message lists the valid ones), or short side < ``min_size``.
    """
    info = bundled_info(name)
    arr = _load_uint8(name)                                        # (H, W, 3) uint8
    h, w = arr.shape[:2]
    if min(h, w) < min_size:
        raise DataError(f"Bundled photo {name!r} ({info.call}) is {h}×{w} (H×W); the short side "
                        f"must be at least min_size={min_size} px.")
    t = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1)   # (3, H, W) in [0, 255]
    return (t / 127.5 - 1.0).clamp_(-1.0, 1.0).contiguous()


def load_bundled_collection(names: list[str] | None = None,
                            min_size: int = 0) -> list[tuple[str, torch.Tensor]]:
    """``[(name, (3, H, W) in [-1, 1]), ...]`` for ``names`` (default: every bundled photo)."""
    names = bundled_names() if names is None else list(names)
    for n in names:
        bundled_info(n)                                            # fail early on a typo
    return [(n, load_bundled(n, min_size)) for n in names]


def load_collection(source: str | os.PathLike, min_size: int = 0,
                    limit: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """Load a collection of images by name or folder.

    ``source`` is ``"bundled"`` (the photos above), ``"places50"`` (found by
    :func:`~mil_core.data.images.places50_dir`), or a path to a folder of images.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}.")
    if isinstance(source, str) and source == "bundled":
        return load_bundled_collection(bundled_names()[:limit], min_size=min_size)
    if isinstance(source, str) and source.lower() in {"places50", "places-50"}:
        folder = places50_dir()
        if folder is None:
            raise DataError("Places-50 was not found (looked at $MIL_PLACES50, "
                            "../shared/data/places50 and data/downloads/places50). Set "
                            "MIL_PLACES50 to its folder, or call "
                            "mil_core.data.images.download_places50() when online.")
        return load_folder(folder, min_size=min_size, limit=limit)
    return load_folder(source, min_size=min_size, limit=limit)

