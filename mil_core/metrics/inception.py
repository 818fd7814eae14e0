"""Inception-v3's first convolutions, the feature extractor of SIFID (REFERENCE §5).

Only the stem of Inception-v3 (Szegedy et al. 2016) is needed for SIFID, so it is written here
instead of importing torchvision (which cannot be imported in this environment, REFERENCE §7)::

    Conv2d_1a_3x3   3 → 32, 3×3, stride 2      ┐
    Conv2d_2a_3x3  32 → 32, 3×3                │ layer="2b": 64 channels, BEFORE the first
    Conv2d_2b_3x3  32 → 64, 3×3, padding 1     ┘ max-pool (SinGAN's code; the DEFAULT)
    max-pool 3×3, stride 2
    Conv2d_3b_1x1  64 → 80, 1×1                ┐ layer="4a": 192 channels, BEFORE the second
    Conv2d_4a_3x3  80 → 192, 3×3               ┘ max-pool (the SinGAN paper's text)

Each block is ``Conv2d(bias=False) → BatchNorm2d(eps=0.001) → ReLU``, with the attribute names of
the official checkpoints (``Conv2d_1a_3x3.conv.weight``, ``Conv2d_1a_3x3.bn.running_mean``, ...),
so the FID weights ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid release) and torchvision's
``inception_v3_google-*.pth`` load directly; all later keys of those files are ignored.
The two files hold DIFFERENT numbers: SinGAN's SIFID script used torchvision's ImageNet weights
(``inception_v3(pretrained=True)``); FID uses the TF-ported ones. Report which file you used.

Input convention: images in [-1, 1] (mil_core's range) are fed AS THEY ARE. This is what the
reference code feeds the network: pytorch-fid / SinGAN take [0, 1] images and apply
``normalize_input`` (``2x − 1``) to reach [-1, 1]. There is NO resizing: SinGAN's SIFID feeds
native sizes (``resize_input=False``), and the output is the spatial map ``(B, C, h, w)``.
The module is always in eval mode (BatchNorm uses the stored statistics) and computes no gradients.

No weights ship with any package and no machine here can download them: pass a local file, set
``MIL_INCEPTION_WEIGHTS``, put the file at ``~/.cache/mil_core/``, or (online) call
:func:`download_inception_weights`.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.download import download_file
from ..errors import ConfigError, DataError, OfflineError

__all__ = ["InceptionFeatures", "InceptionWeightsMissing", "resolve_inception_weights",
           "download_inception_weights", "load_inception_state_dict", "inception_feature_size",
           "INCEPTION_WEIGHTS_FILE", "INCEPTION_WEIGHTS_URL", "INCEPTION_WEIGHTS_ENV", "LAYERS"]

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                         + INCEPTION_WEIGHTS_FILE)
INCEPTION_WEIGHTS_ENV = "MIL_INCEPTION_WEIGHTS"

# (name, in_channels, out_channels, kernel, stride, padding), in network order.
_BLOCKS = (
    ("Conv2d_1a_3x3", 3, 32, 3, 2, 0),
    ("Conv2d_2a_3x3", 32, 32, 3, 1, 0),
    ("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
    ("Conv2d_3b_1x1", 64, 80, 1, 1, 0),   # after max-pool 3/2
    ("Conv2d_4a_3x3", 80, 192, 3, 1, 0),
)
# layer name → (number of blocks used, output channels)
LAYERS = {"2b": (3, 64), "4a": (5, 192)}
_BN_KEYS = ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")


class InceptionWeightsMissing(DataError, OfflineError):
    """No Inception weights file could be found (catchable as DataError or OfflineError)."""


def default_weights_path() -> Path:
    """``~/.cache/mil_core/pt_inception-2015-12-05-6726825d.pth`` (where downloads go)."""
    return Path.home() / ".cache" / "mil_core" / INCEPTION_WEIGHTS_FILE


def _missing_message() -> str:
    return (f"Inception weights are needed for SIFID but none were found. Get the file "
            f"{INCEPTION_WEIGHTS_FILE} from {INCEPTION_WEIGHTS_URL} (or torchvision's "
            f"inception_v3_google-*.pth) and either pass its path (weights=...), set the "
            f"environment variable {INCEPTION_WEIGHTS_ENV}=/path/to/file, or save it as "
            f"{default_weights_path()}. With internet, download_inception_weights() does the "
            f"last. Offline alternatives: mil_core.metrics.swd / patch_nn_distance (no weights).")


def resolve_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """Find the weights file: ``path``, else ``$MIL_INCEPTION_WEIGHTS``, else the cache file.

    Raises:
        DataError: ``path`` or the environment variable names a file that does not exist.
        InceptionWeightsMissing: nothing given and the cache file is absent (the message names
            the file, its URL and the environment variable).
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataError(f"Inception weights file {p} (argument weights/path) does not exist; "
                            f"check the path. Expected {INCEPTION_WEIGHTS_FILE} from "
                            f"{INCEPTION_WEIGHTS_URL}.")
        return p
    env = os.environ.get(INCEPTION_WEIGHTS_ENV, "").strip()
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise DataError(f"{INCEPTION_WEIGHTS_ENV}={env} does not point to a file; fix or unset "
                            f"it. Expected {INCEPTION_WEIGHTS_FILE} from {INCEPTION_WEIGHTS_URL}.")
        return p
    p = default_weights_path()
    if p.is_file():
        return p
    raise InceptionWeightsMissing(_missing_message())


def download_inception_weights(dest: str | os.PathLike | None = None) -> Path:
    """Opt-in: download the FID Inception weights to ``dest`` (default: the cache path).

    Raises:
        OfflineError: no network (or ``MIL_OFFLINE=1``); the message says where to put the file.
    """
    return download_file(INCEPTION_WEIGHTS_URL, default_weights_path() if dest is None else dest)


def _expected_keys(n_blocks: int) -> list[str]:
    return [f"{name}.{k}" for name, *_ in _BLOCKS[:n_blocks] for k in _BN_KEYS]


def load_inception_state_dict(path: str | os.PathLike, layer: str = "2b"
                              ) -> dict[str, torch.Tensor]:
    """Read ``path`` safely (``weights_only=True``) and keep the stem keys ``layer`` needs.

    A ``{"state_dict": {...}}`` wrapper and a DataParallel ``module.`` prefix are accepted.
    ``bn.num_batches_tracked`` is kept when present and not required.

    Raises:
        DataError: the file cannot be read, holds pickled code (refused by weights_only), is not
            a dict of tensors, or misses some of the required keys (all listed).
    """
    n_blocks = _layer_spec(layer)[0]
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path} was refused by torch.load(weights_only=True): it contains "
                        f"pickled code or objects, not just tensors ({str(exc)[:200]}...). Use an "
                        f"official state dict such as {INCEPTION_WEIGHTS_FILE}.") from exc
    except Exception as exc:  # truncated / not a torch file
        raise DataError(f"Could not read Inception weights {path}: {exc}. The file is corrupt or "
                        f"not a PyTorch checkpoint; download {INCEPTION_WEIGHTS_URL} again.") \
            from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, not a state dict; expected an "
                        f"Inception-v3 state dict such as {INCEPTION_WEIGHTS_FILE}.")
    if obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    expected = _expected_keys(n_blocks)
    missing = [k for k in expected if k not in obj]
    if missing:
        raise DataError(f"{path} is not an Inception-v3 state dict usable for layer={layer!r}: "
                        f"missing keys {missing}. Expected the official key names, as in "
                        f"{INCEPTION_WEIGHTS_FILE} or torchvision's inception_v3_google-*.pth.")
    keep = set(expected) | {f"{name}.bn.num_batches_tracked" for name, *_ in _BLOCKS[:n_blocks]}
    out = {k: v for k, v in obj.items() if k in keep}
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{path}: entries {bad} are not tensors; not an Inception state dict.")
    return out


def _layer_spec(layer: str) -> tuple[int, int]:
    if layer not in LAYERS:
        raise ConfigError(f"layer must be one of {sorted(LAYERS)} ('2b': 64 channels before the "
                          f"first max-pool, SinGAN's code; '4a': 192 channels before the second "
                          f"max-pool, SinGAN's paper), got {layer!r}.")
    return LAYERS[layer]


def inception_feature_size(h: int, w: int, layer: str = "2b") -> tuple[int, int]:
    """Spatial size ``(h', w')`` of the ``layer`` map for an ``H × W`` input (may be ≤ 0)."""
    n_blocks = _layer_spec(layer)[0]

    def one(s: int) -> int:
        s = (s - 3) // 2 + 1              # Conv2d_1a_3x3, stride 2
        s = s - 2                         # Conv2d_2a_3x3 (Conv2d_2b_3x3 keeps the size)
        if n_blocks > 3:
            s = (s - 3) // 2 + 1          # max-pool 3/2 (Conv2d_3b_1x1 keeps the size)
            s = s - 2                     # Conv2d_4a_3x3
        return s
    return one(h), one(w)


class BasicConv2d(nn.Module):
    """Conv2d (no bias) → BatchNorm2d(eps=0.001) → ReLU, as in Inception-v3."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class InceptionFeatures(nn.Module):
    """Spatial Inception-v3 features ``(B, C, h, w)`` of images ``(B, 3, H, W)`` in [-1, 1].

    Args:
        layer: ``"2b"`` (64 channels, default, SinGAN's code) or ``"4a"`` (192, SinGAN's paper).
        weights: a weights file; None resolves it with :func:`resolve_inception_weights`.
        random_init: skip loading and keep a random initialisation (seeded by ``seed``) — only
            for tests and smoke runs; its distances are NOT comparable to published SIFIDs.
        seed: seed of the random initialisation (the global RNG is left untouched).
    """

    def __init__(self, layer: str = "2b", weights: str | os.PathLike | None = None, *,
                 random_init: bool = False, seed: int = 0):
        super().__init__()
        n_blocks, channels = _layer_spec(layer)
        self.layer, self.channels = layer, channels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for name, cin, cout, k, s, p in _BLOCKS[:n_blocks]:
                self.add_module(name, BasicConv2d(cin, cout, k, s, p))
        self.weights_path: Path | None = None
        if not random_init:
            self.weights_path = resolve_inception_weights(weights)
            state = load_inception_state_dict(self.weights_path, layer)
            for name, *_ in _BLOCKS[:n_blocks]:       # optional key: fill from the module
                key = f"{name}.bn.num_batches_tracked"
                state.setdefault(key, getattr(self, name).bn.num_batches_tracked.clone())
            try:
                self.load_state_dict(state, strict=True)
            except RuntimeError as exc:               # wrong shapes
                raise DataError(f"{self.weights_path} does not fit Inception-v3's stem: {exc}") \
                    from exc
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "InceptionFeatures":
        """Always stays in eval mode: BatchNorm must use the stored statistics."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise DataError(f"InceptionFeatures expects a tensor, got {type(x).__name__}.")
        if x.dim() == 3:
            x = x.unsqueeze(0)                                         # (1, 3, H, W)
        if x.dim() != 4 or x.shape[1] != 3:
            raise DataError(f"InceptionFeatures expects (B, 3, H, W) or (3, H, W) images, got "
                            f"shape {tuple(x.shape)}.")
        h, w = inception_feature_size(x.shape[2], x.shape[3], self.layer)
        if h < 1 or w < 1:
            raise DataError(f"Image of {x.shape[2]}×{x.shape[3]} px is too small for layer "
                            f"{self.layer!r} (the feature map would be {h}×{w}).")
        if x.numel() and (x.min() < -1.5 or x.max() > 1.5):
            raise DataError(f"InceptionFeatures expects images in [-1, 1], got values in "
                            f"[{x.min().item():.3g}, {x.max().item():.3g}]; convert uint8 "
                            "images with x / 127.5 − 1.")
        p = next(self.parameters())
        x = x.to(device=p.device, dtype=p.dtype)
        x = self.Conv2d_1a_3x3(x)                                      # (B, 32, H1, W1)
        x = self.Conv2d_2a_3x3(x)                                      # (B, 32, H1-2, W1-2)
        x = self.Conv2d_2b_3x3(x)                                      # (B, 64, H1-2, W1-2)
        if self.layer == "2b":
            return x
        x = F.max_pool2d(x, kernel_size=3, stride=2)                   # (B, 64, h2, w2)
        x = self.Conv2d_3b_1x1(x)                                      # (B, 80, h2, w2)
        return self.Conv2d_4a_3x3(x)                                   # (B, 192, h2-2, w2-2)

    def extra_repr(self) -> str:
        src = "random init" if self.weights_path is None else str(self.weights_path)
        return f"layer={self.layer!r}, channels={self.channels}, weights={src}"
