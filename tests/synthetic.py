"""Synthetic images shared by the metric tests (not collected by pytest)."""
import torch
import torch.nn.functional as F


def smooth_image(seed: int, h: int = 48, w: int = 56) -> torch.Tensor:
    """A smooth random colour image (3, h, w) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 4, w // 4, generator=g) * 2 - 1
    return F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0]


def noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    """``x`` plus seeded Gaussian noise of std ``sigma``, clamped to [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)
