"""Pictures of attribution maps: heatmaps over the image, as PNG bytes."""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image
from torch import Tensor


def grey_image(x: np.ndarray, value_range) -> np.ndarray:
    """The image's luminance (ITU-R BT.601 weights; a one-channel image as it is) in [0, 1].

    Shape:
        x: (C, H, W) in ``value_range``
        returns: (H, W)
    """
    if x.ndim != 3:
        raise ValueError(f"images must have shape (C, H, W), got {x.shape}")
    lo, hi = value_range
    arr = np.clip((x - lo) / (hi - lo), 0, 1)
    if arr.shape[0] >= 3:
        return np.tensordot(np.array([0.299, 0.587, 0.114]), arr[:3], axes=1)
    return arr.mean(0)


def overlay(
    grey: np.ndarray, m: np.ndarray, scale: float, *, alpha: float = 0.75, cmap: str = "inferno"
) -> np.ndarray:
    """``|m| / scale`` (clipped to 1) in ``cmap`` colours over the grey image, each pixel's
    opacity ``alpha`` times its value: where the map is 0 the image shows unchanged.

    Shape:
        grey: (H, W) in [0, 1]
        m: (H, W)
        returns: (H, W, 3) in [0, 1]
    """
    if grey.shape != m.shape or grey.ndim != 2:
        raise ValueError(f"grey and m must both have shape (H, W), got {grey.shape}, {m.shape}")
    v = np.clip(np.abs(m) / scale, 0, 1) if scale > 0 else np.zeros_like(grey)
    a = (alpha * v)[:, :, None]
    return (1 - a) * grey[:, :, None] + a * colormaps[cmap](v)[:, :, :3]


def heatmap_png(image: Tensor, reduced_map: Tensor, value_range, *, min_side: int = 160) -> bytes:
    """The map over a grey copy of the image (:func:`overlay`, scaled to the map's max), side
    by side with the map alone; upscaled (nearest) to at least ``min_side`` pixels.

    Shape:
        image: (C, H, W)
        reduced_map: (H, W)
    """
    grey = grey_image(image.detach().cpu().float().numpy(), value_range)
    m = reduced_map.detach().cpu().float().abs().numpy()
    scale = float(m.max())
    heat = colormaps["inferno"](m / scale if scale > 0 else m)[:, :, :3]
    both = np.concatenate([overlay(grey, m, scale), np.ones((m.shape[0], 1, 3)), heat], axis=1)
    out = Image.fromarray((np.clip(both, 0, 1) * 255).round().astype(np.uint8))
    scale = max(1, -(-min_side // min(m.shape)))
    if scale > 1:
        out = out.resize((out.width * scale, out.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()
