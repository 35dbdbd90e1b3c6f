"""Pictures of attribution maps: heatmaps over the image, as PNG bytes."""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image
from torch import Tensor


def _to_uint8_image(x: Tensor, value_range) -> np.ndarray:
    lo, hi = value_range
    arr = ((x.detach().cpu().float() - lo) / (hi - lo)).clamp(0, 1).numpy()
    arr = arr.transpose(1, 2, 0)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return (arr[:, :, :3] * 255).round().astype(np.uint8)


def heatmap_png(
    image: Tensor, reduced_map: Tensor, value_range, *, min_side: int = 160, alpha: float = 0.6
) -> bytes:
    """The image in grey with the map (normalised to its max) over it in the 'inferno' colours,
    side by side with the map alone; upscaled (nearest) to at least ``min_side`` pixels.

    Shape:
        image: (C, H, W)
        reduced_map: (H, W)
    """
    img = _to_uint8_image(image, value_range).astype(np.float32) / 255
    grey = img.mean(2, keepdims=True).repeat(3, 2)
    m = reduced_map.detach().cpu().float().abs().numpy()
    m = m / m.max() if m.max() > 0 else m
    heat = colormaps["inferno"](m)[:, :, :3]
    overlay = (1 - alpha) * grey + alpha * heat
    both = np.concatenate([overlay, np.ones((m.shape[0], 1, 3)), heat], axis=1)
    out = Image.fromarray((both * 255).round().astype(np.uint8))
    scale = max(1, -(-min_side // min(m.shape)))
    if scale > 1:
        out = out.resize((out.width * scale, out.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()
