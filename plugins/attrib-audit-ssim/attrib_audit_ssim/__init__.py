"""Structural similarity (SSIM, Wang et al. 2004) between attribution maps.

Rank statistics ignore where the pixels are; SSIM compares local structure (mean, contrast
and correlation in sliding windows), so it notices a map whose blobs moved or smeared even
when its ranking barely changed. Each map is scaled to [0, 1] by its own maximum first, so
the metric compares shapes, not magnitudes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from attrib_audit.params import Params, setting
from attrib_audit.registry import METRICS

__all__ = ["SSIMParams", "ssim"]

C1, C2 = 0.01**2, 0.03**2  # the standard constants for a data range of 1


def _window(side: int, sigma: float, dtype, device) -> Tensor:
    coords = torch.arange(side, dtype=dtype, device=device) - (side - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


@dataclass(frozen=True)
class SSIMParams(Params):
    window: int = setting(7, "side of the Gaussian window (capped to the map, made odd)", min=1)
    sigma: float = setting(1.5, "std of the Gaussian window, in pixels", above=0)


@METRICS.declare("ssim", params=SSIMParams)
def ssim(a: Tensor, b: Tensor, *, window: int = 7, sigma: float = 1.5) -> Tensor:
    """Mean SSIM per sample between two maps, Gaussian window (``window`` capped to the image,
    made odd), no padding.

    Shape:
        a, b: (B, H, W)
        returns: (B,)
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(
            f"maps must both have shape (B, H, W), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    side = min(window, a.shape[-1], a.shape[-2])
    side -= 1 - side % 2
    w = _window(side, sigma, a.dtype, a.device)

    def unit(m: Tensor) -> Tensor:
        m = m.abs()
        return (m / m.flatten(1).amax(1).clamp_min(1e-30)[:, None, None])[:, None]

    x, y = unit(a), unit(b)
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    vx = F.conv2d(x * x, w) - mx**2
    vy = F.conv2d(y * y, w) - my**2
    cxy = F.conv2d(x * y, w) - mx * my
    s = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    return s.flatten(1).mean(1)
